"""Fixtures shared by the export tests (the session fixtures for other modules' tests are in
tests/fixtures_export.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.export.tiny_models import build_tiny_classifier, train_tiny_classifier

#: Image size of the tiny classifier's tests (optimisation, bias correction)
TINY_SIZE = 32


@dataclass
class ValidationSet:
    images: np.ndarray  # load_image output, uint8 (N, S, S, 3)
    labels: np.ndarray
    float_probabilities: np.ndarray  # the run's calibrated float model (RunFolder.predict_probabilities)


@pytest.fixture(scope="session")
def tiny_run_validation(tiny_run: Path) -> ValidationSet:
    """The tiny run's validation images with the calibrated probabilities of its float Keras model."""
    from dermtool.export.calibration_data import load_split, resolve_data_dir, split_records
    from dermtool.run import RunFolder

    run = RunFolder(tiny_run)
    split = load_split(split_records(run, resolve_data_dir(run, None))["val"], "val", run.input_spec, progress=False)
    return ValidationSet(split.images, split.labels, run.predict_probabilities(split.images))


@pytest.fixture(scope="module")
def tiny_data(small_ham: Path):
    """Real images of small_ham at 32 px: (uint8 images, labels, InputSpec)."""
    from dermtool.data.layouts import read_dataset
    from dermtool.data.pipeline import load_images
    from dermtool.data.preprocess import InputSpec

    spec = InputSpec(image_size=TINY_SIZE, resize_policy="squash", mean=127.0, std=128.0)
    dataset = read_dataset(small_ham)
    images, failed = load_images([record.path for record in dataset.records], spec, progress=False)
    assert not failed
    labels = np.asarray([dataset.classes.index(record.label) for record in dataset.records])
    return images, labels, spec


@pytest.fixture(scope="module")
def tiny_trained(tiny_data):
    from dermtool.data.preprocess import normalize

    images, labels, spec = tiny_data
    return train_tiny_classifier(build_tiny_classifier(7, TINY_SIZE), normalize(images, spec), labels, epochs=6)
