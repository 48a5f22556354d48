"""The out-of-distribution guard: statistics, fitting, separation of non-lesions from lesions, storage."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dermtool import DermtoolError
from dermtool.explain import ood
from dermtool.explain.non_lesion import generate_non_lesion_images
from dermtool.metrics import roc_auc


@pytest.fixture(scope="module")
def lesion_images(small_ham: Path) -> np.ndarray:
    from dermtool.data.pipeline import load_images
    from dermtool.data.preprocess import InputSpec

    paths = sorted((small_ham / "images").glob("*.jpg"))
    images, failed = load_images(paths, InputSpec(96, "squash", 127.5, 127.5), progress=False)
    assert not failed
    return images


def _uniform_probabilities(count: int) -> np.ndarray:
    return np.full((count, 7), 1 / 7)


def test_statistics_are_finite_for_degenerate_images() -> None:
    blank = np.zeros((40, 30, 3), np.uint8)
    white = np.full((64, 64, 3), 255, np.uint8)
    noise = np.random.default_rng(0).integers(0, 256, (50, 80, 3), dtype=np.uint8)
    statistics = ood.image_statistics([blank, white, noise])
    assert statistics.shape == (3, len(ood.FEATURE_NAMES))
    assert np.isfinite(statistics).all()
    with pytest.raises(DermtoolError):
        ood.image_statistics([np.zeros((10, 10), np.uint8)])


def test_generated_non_lesions_are_separated_from_real_lesions(lesion_images: np.ndarray) -> None:
    """Fit on half of 84 real images, calibrate on the other half, score generated non-lesion images."""
    reference, calibration = lesion_images[0::2], lesion_images[1::2]
    detector = ood.fit_detector(reference, calibration, _uniform_probabilities(len(calibration)))
    calibration_scores = detector.score(calibration, _uniform_probabilities(len(calibration)))
    assert np.mean(detector.rejects(calibration_scores)) <= ood.DEFAULT_TARGET_FALSE_REJECTION + 1e-9
    from dermtool.data.preprocess import resize

    generated = generate_non_lesion_images(3, lesion_images=list(reference[:3]))
    others = np.stack([resize(image.pixels, 96, "squash") for image in generated])
    other_scores = detector.score(others, _uniform_probabilities(len(others)))
    is_other = np.r_[np.zeros(len(calibration_scores)), np.ones(len(other_scores))]
    assert roc_auc(is_other, np.r_[calibration_scores, other_scores]) >= 0.95
    by_kind = {image.kind: score for image, score in zip(generated, other_scores)}
    white = np.full((96, 96, 3), 255, np.uint8)
    assert detector.score(white[None], _uniform_probabilities(1))[0] >= detector.threshold
    assert by_kind["text"] >= detector.threshold  # the first text image: dark text on white
    assert by_kind["text"] > calibration_scores.max()


def test_detector_round_trips_through_json(lesion_images: np.ndarray) -> None:
    detector = ood.fit_detector(lesion_images[:40], lesion_images[40:], _uniform_probabilities(44))
    text = json.dumps(detector.to_dict())
    again = ood.OODDetector.from_dict(json.loads(text))
    probabilities = np.random.default_rng(0).dirichlet(np.ones(7), size=10)
    np.testing.assert_allclose(again.score(lesion_images[:10], probabilities), detector.score(lesion_images[:10], probabilities))
    broken = detector.to_dict()
    del broken["threshold"]
    with pytest.raises(DermtoolError, match="malformed"):
        ood.OODDetector.from_dict(broken)
    with pytest.raises(DermtoolError, match="at least 5"):
        ood.fit_detector(lesion_images[:3], lesion_images[3:6], _uniform_probabilities(3))


def test_run_folder_guard_is_stored_and_reused(copied_run: Path, small_ham: Path, probe_predictor) -> None:
    path = copied_run / ood.OOD_FILE_NAME
    path.unlink()
    assert ood.load_for_run(copied_run, fit_if_missing=False) is None
    # fitted now, then written (the copy has the same weights: the loaded probe model computes its probabilities)
    detector = ood.load_for_run(
        copied_run, data_dir=small_ham, progress=False, predict_probabilities=probe_predictor.predict_arrays
    )
    assert path.exists()
    stored = json.loads(path.read_text())
    assert stored["threshold"] == pytest.approx(detector.threshold)
    assert stored["calibration"]["split"] == "val"
    assert not list(copied_run.glob(".ood.json.*"))  # atomic write leaves no temporary behind
    assert ood.load_for_run(copied_run).threshold == pytest.approx(detector.threshold)
    path.write_text("{not json")
    with pytest.raises(DermtoolError, match="not valid JSON"):
        ood.load_for_run(copied_run)


def test_format_1_guard_still_loads_and_scores_as_before(lesion_images: np.ndarray) -> None:
    """ood.json / dermtool.json written before format 2 (all statistics, full covariance) keep their meaning."""
    old = ood.fit_detector(lesion_images[:40], lesion_images[40:], _uniform_probabilities(44),
                           features=ood.FEATURE_NAMES, covariance="full")
    values = old.to_dict()
    assert values["format_version"] == 1 and "covariance" not in values
    assert len(values["feature_precision"]) == len(ood.FEATURE_NAMES)
    again = ood.OODDetector.from_dict(json.loads(json.dumps(values)))
    assert again.covariance == "full" and again.feature_names == ood.FEATURE_NAMES
    probabilities = np.random.default_rng(1).dirichlet(np.ones(7), size=10)
    np.testing.assert_allclose(again.score(lesion_images[:10], probabilities), old.score(lesion_images[:10], probabilities))

    new = ood.fit_detector(lesion_images[:40], lesion_images[40:], _uniform_probabilities(44)).to_dict()
    assert new["format_version"] == 2 and new["covariance"] == ood.DEFAULT_COVARIANCE
    assert tuple(new["feature_names"]) == ood.DEFAULT_FEATURES
    precision = np.asarray(new["feature_precision"])
    assert np.allclose(precision, np.diag(np.diag(precision)))  # diagonal: no device-specific correlations
    with pytest.raises(DermtoolError, match="differ"):
        ood.OODDetector.from_dict(values | {"feature_names": list(ood.DEFAULT_FEATURES)})  # format 1 needs all
    with pytest.raises(DermtoolError, match="differ"):
        ood.OODDetector.from_dict(new | {"feature_names": ["colour_of_the_sky"] + new["feature_names"][1:]})
    with pytest.raises(DermtoolError, match="covariance"):
        ood.OODDetector.from_dict(new | {"covariance": "spherical"})
    with pytest.raises(DermtoolError, match="format_version"):
        ood.OODDetector.from_dict(new | {"format_version": 3})
