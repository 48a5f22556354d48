"""Grad-CAM: maps at the image's size in [0, 1], resize policies undone, lesion localisation, flat models only."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import dermtool
from dermtool import DermtoolError
from dermtool.explain.gradcam import Explainer, GradientModel, gradcam_maps, heatmap_to_original, overlay_png


@pytest.fixture(scope="module")
def explainer(probe_explainer: Explainer) -> Explainer:
    return probe_explainer


def _hot_spot(size: int, row: int, column: int) -> np.ndarray:
    heatmap = np.zeros((size, size), np.float32)
    heatmap[row, column] = 1.0
    return heatmap


@pytest.mark.parametrize("policy", ["squash", "center_crop", "pad"])
def test_heatmap_is_mapped_back_onto_the_original(policy: str) -> None:
    # a 12x12 map whose hottest cell is the model input's centre lands on the original's centre
    mapped = heatmap_to_original(_hot_spot(12, 6, 6), height=150, width=200, image_size=96, policy=policy)
    assert mapped.shape == (150, 200) and mapped.dtype == np.float32
    assert mapped.min() >= 0.0 and mapped.max() == pytest.approx(1.0)
    row, column = np.unravel_index(np.argmax(mapped), mapped.shape)
    assert abs(row - 75) <= 10 and abs(column - 100) <= 12


def test_policies_differ_where_the_model_saw_nothing() -> None:
    uniform = np.ones((6, 6), np.float32)
    cropped = heatmap_to_original(uniform, 150, 200, 96, "center_crop")
    assert cropped[:, :20].max() == 0.0 and cropped[:, -20:].max() == 0.0  # cut-off sides: never seen
    assert cropped[:, 100].min() == pytest.approx(1.0)
    # pad: the map's top/bottom rows cover the black borders and are dropped, the content fills the image
    top_heavy = np.zeros((96, 96), np.float32)
    top_heavy[:10, :] = 1.0  # only inside the top border (content starts at row 12 for 4:3 at 96 px)
    top_heavy[48, 48] = 0.5
    padded = heatmap_to_original(top_heavy, 150, 200, 96, "pad")
    row, column = np.unravel_index(np.argmax(padded), padded.shape)
    assert abs(row - 75) <= 6 and abs(column - 100) <= 6


def test_explain_a_real_image(explainer: Explainer, lesion_paths: list[Path]) -> None:
    result = explainer.explain(lesion_paths[0])
    original = np.asarray(Image.open(lesion_paths[0]))
    assert result.heatmap.shape == original.shape[:2]
    assert result.heatmap.dtype == np.float32
    assert 0.0 <= result.heatmap.min() and result.heatmap.max() <= 1.0
    assert result.heatmap.max() == pytest.approx(1.0)
    assert result.overlay.shape == original.shape and result.overlay.dtype == np.uint8
    assert result.label == max(result.probabilities, key=result.probabilities.get)
    assert result.explained_label == result.label
    assert sum(result.probabilities.values()) == pytest.approx(1.0)
    png = overlay_png(result)
    assert png.startswith(b"\x89PNG")
    assert Image.open(io.BytesIO(png)).size[0] >= 400
    melanoma = explainer.explain(lesion_paths[0].read_bytes(), class_name="melanoma")
    assert melanoma.explained_label == "mel" and melanoma.image_name == "<upload>"
    with pytest.raises(DermtoolError, match="unknown class"):
        explainer.explain(lesion_paths[0], class_name="freckle")


def test_heat_is_higher_on_the_lesion_than_around_it(explainer: Explainer, small_ham: Path, masks_dir: Path) -> None:
    """Average over 28 real images (4 per class): mean heat inside the lesion mask > outside."""
    from dermtool.data.images import load_rgb
    from dermtool.data.preprocess import resize
    from dermtool.explain.evaluate import localisation_scores, read_mask

    paths = sorted((small_ham / "images").glob("*.jpg"))[::3]
    originals = [load_rgb(path) for path in paths]
    spec = explainer.input_spec
    maps, _, _ = explainer.maps(np.stack([resize(image, spec.image_size, spec.resize_policy) for image in originals]))
    inside, outside = [], []
    for path, original, cam in zip(paths, originals, maps):
        heatmap = explainer.heatmap_for_original(cam, *original.shape[:2])
        scores = localisation_scores(heatmap, read_mask(masks_dir / f"{path.stem}_segmentation.png", *heatmap.shape))
        inside.append(scores["heat_inside"])
        outside.append(scores["heat_outside"])
    assert np.nanmean(inside) > np.nanmean(outside) + 0.05, (np.nanmean(inside), np.nanmean(outside))


def test_top_level_explain_accepts_a_run_or_a_predictor(probe_run: Path, probe_predictor, lesion_paths: list[Path]) -> None:
    by_path = dermtool.explain(lesion_paths[1], probe_run)
    by_predictor = dermtool.explain(lesion_paths[1], probe_predictor, class_name="nv")
    assert by_path.heatmap.shape == by_predictor.heatmap.shape
    assert by_predictor.explained_label == "nv"


def test_a_tflite_or_a_missing_run_is_refused(tmp_path: Path) -> None:
    model = tmp_path / "model.tflite"
    model.write_bytes(b"TFL3")
    with pytest.raises(DermtoolError, match="float model"):
        Explainer(model)
    with pytest.raises(DermtoolError, match="not a run folder"):
        Explainer(tmp_path / "missing")


def _tiny_backbone(keras, name: str):
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="conv_a")(inputs)
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu", name="top_conv")(x)
    return keras.Model(inputs, x, name=name)


def test_a_nested_model_is_refused_with_a_clear_error() -> None:
    """Grad-CAM works on one flat functional model (what build_classifier builds); a nested backbone is named."""
    import tf_keras as keras

    backbone = _tiny_backbone(keras, "backbone")
    inputs = keras.Input((32, 32, 3), name="image")
    features = keras.layers.GlobalAveragePooling2D(name="pooled")(backbone(inputs))
    nested = keras.Model(inputs, keras.layers.Dense(4, name="logits")(features))
    with pytest.raises(DermtoolError, match="flat functional model.*backbone"):
        GradientModel(nested, "top_conv")


def test_mobilenet_backbone_from_the_registry() -> None:
    """Grad-CAM through a MobileNetV2 classifier (random weights: offline) with the registry's layer name."""
    from dermtool.config import ModelConfig
    from dermtool.models.registry import build_classifier, get_spec

    model = build_classifier(ModelConfig(name="mobilenet-v2", weights="none"), num_classes=3, image_size=64)
    gradient_model = GradientModel(model, get_spec("mobilenet-v2").last_conv_layer_name)
    images = np.random.default_rng(0).normal(size=(2, 64, 64, 3)).astype(np.float32)
    maps, logits, chosen = gradcam_maps(gradient_model, images)
    assert maps.shape == (2, 2, 2) and logits.shape == (2, 3)
    assert 0.0 <= maps.min() and maps.max() <= 1.0


def test_gradcam_points_at_local_evidence_on_a_learned_task() -> None:
    """Correctness on a task whose evidence is known to be local: a small CNN learns "is there a bright square
    somewhere?"; the Grad-CAM map of the "square" class must peak on the square (pointing game)."""
    import tensorflow as tf
    import tf_keras as keras

    rng = np.random.default_rng(0)
    tf.random.set_seed(0)

    def make(count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        images = rng.normal(0.0, 0.3, (count, 32, 32, 3)).astype(np.float32)
        labels = rng.integers(0, 2, count)
        masks = np.zeros((count, 32, 32), bool)
        for index in np.flatnonzero(labels):
            row, column = rng.integers(0, 25, 2)
            images[index, row : row + 7, column : column + 7] += 1.5
            masks[index, row : row + 7, column : column + 7] = True
        return images, labels, masks

    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(x)
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu", name="top_conv")(x)
    logits = keras.layers.Dense(2, name="logits")(keras.layers.GlobalAveragePooling2D(name="pooled")(x))
    model = keras.Model(inputs, keras.layers.Activation("softmax")(logits))
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    train_images, train_labels, _ = make(768)
    model.fit(train_images, train_labels, epochs=6, batch_size=64, verbose=0)
    test_images, test_labels, test_masks = make(200)
    accuracy = float(np.mean(model.predict(test_images, verbose=0).argmax(1) == test_labels))
    assert accuracy >= 0.9, accuracy
    with_square = np.flatnonzero(test_labels)
    maps, _, _ = gradcam_maps(GradientModel(model, "top_conv"), test_images[with_square], [1] * len(with_square))
    hits = []
    for cam, mask in zip(maps, test_masks[with_square]):
        heatmap = heatmap_to_original(cam, 32, 32, image_size=32, policy="squash")
        row, column = np.unravel_index(np.argmax(heatmap), heatmap.shape)
        hits.append(mask[max(0, row - 2) : row + 3, max(0, column - 2) : column + 3].any())  # within 2 px (8x8 map)
    assert np.mean(hits) >= 0.85, np.mean(hits)
