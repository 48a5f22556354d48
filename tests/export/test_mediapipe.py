"""A third-party client reads the exports: MediaPipe's ImageClassifier (labels and normalisation from the
metadata) agrees with dermtool's own LiteRT run on real HAM10000 images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dermtool.data.layouts import read_dataset
from dermtool.data.preprocess import load_image
from dermtool.run import RunFolder
from dermtool.runtime import TFLiteModel

IMAGES_PER_MODE = 6


@pytest.fixture(scope="module")
def real_images(small_ham: Path, tiny_run: Path) -> np.ndarray:
    """A handful of real HAM10000 images of different classes, already at the model's input size, so
    MediaPipe does not resize them (its own resampling differs from dermtool's)."""
    spec = RunFolder(tiny_run).input_spec
    records = read_dataset(small_ham).records
    chosen = records[:: max(1, len(records) // IMAGES_PER_MODE)][:IMAGES_PER_MODE]
    return np.stack([load_image(record.path, spec) for record in chosen])


@pytest.mark.parametrize("mode", ["float", "fp16", "dynamic", "int8"])
def test_mediapipe_image_classifier_agrees_with_litert(mode, exported_models, real_images, tiny_run):
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision

    labels = RunFolder(tiny_run).labels
    ours = TFLiteModel(exported_models[mode]).predict(real_images)
    options = vision.ImageClassifierOptions(
        base_options=BaseOptions(model_asset_path=str(exported_models[mode])), max_results=-1
    )
    with vision.ImageClassifier.create_from_options(options) as classifier:
        for image, probabilities in zip(real_images, ours):
            result = classifier.classify(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(image)))
            categories = result.classifications[0].categories
            # every class, named from the model's labels.txt
            assert sorted(category.category_name for category in categories) == sorted(labels)
            assert all(category.category_name == labels[category.index] for category in categories)
            top = categories[0]  # sorted by score
            # the same top-1 (a tie of quantised scores may be listed in either order)
            assert probabilities[top.index] == pytest.approx(probabilities.max(), abs=1e-6)
            assert top.score == pytest.approx(float(probabilities.max()), abs=2e-3)
