"""Fixtures of the explain tests: a linear-probe run on real images, lesion masks, generated non-lesions."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.register_assert_rewrite("tests.explain.contract")

from tests.explain.probe_run import build_probe_run  # noqa: E402


@pytest.fixture(scope="session")
def probe_run(small_ham: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder whose Grad-CAM maps mean something: frozen ImageNet EfficientNet-Lite0 at 96 px with a
    trained linear head on the 84 real images of ``small_ham`` (about 15 s), lesion check fitted (tiny settings)."""
    run = build_probe_run(tmp_path_factory.mktemp("probe") / "run", small_ham, image_size=96)
    from dermtool.prediction.lesion_check_fit import FitSettings, fit_for_run
    from tests.fixtures_export import TINY_LESION_CHECK_SETTINGS

    fit_for_run(run, data_dir=small_ham, settings=FitSettings(**TINY_LESION_CHECK_SETTINGS), progress=False)
    return run


@pytest.fixture(scope="session")
def probe_predictor(probe_run: Path):
    """The probe run's Predictor with default options, loaded once (tests derive others with with_options)."""
    from dermtool.prediction.predictor import get_predictor

    return get_predictor(probe_run)


@pytest.fixture(scope="session")
def probe_explainer(probe_run: Path):
    """The probe run's Grad-CAM explainer, loaded once (the same object the CLI and evaluate get)."""
    from dermtool.explain.gradcam import get_explainer

    return get_explainer(probe_run)


@pytest.fixture(scope="session")
def masks_dir(ham10000_dir: Path) -> Path:
    return ham10000_dir / "masks"


@pytest.fixture(scope="session")
def lesion_paths(small_ham: Path) -> list[Path]:
    """Two real images of each class (14), in class order."""
    import csv

    with open(small_ham / "labels.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    chosen: dict[str, list[str]] = {}
    for row in rows:
        chosen.setdefault(row["dx"], [])
        if len(chosen[row["dx"]]) < 2:
            chosen[row["dx"]].append(row["image_id"])
    return [small_ham / "images" / f"{image_id}.jpg" for ids in chosen.values() for image_id in ids]


@pytest.fixture()
def white_frame() -> np.ndarray:
    return np.full((150, 200, 3), 255, np.uint8)


@pytest.fixture()
def text_image() -> np.ndarray:
    from dermtool.prediction.non_lesion import generate_non_lesion_images

    return next(image.pixels for image in generate_non_lesion_images(2) if image.kind == "text")


@pytest.fixture()
def copied_run(probe_run: Path, tmp_path: Path) -> Path:
    """A copy of the probe run that a test may edit (metrics.json, lesion_check.json)."""
    destination = tmp_path / "run"
    shutil.copytree(probe_run, destination)
    return destination
