"""Fixtures shared by the export tests (the session fixtures for other modules' tests are in
tests/fixtures_export.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest


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
