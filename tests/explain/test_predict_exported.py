"""Predict with the tiny trained run and its .tflite exports (fixtures of the training and export modules)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dermtool.prediction.predictor import Predictor
from tests.explain.contract import check_contract


def test_tiny_run_and_its_tflite_exports_agree(tiny_run: Path, exported_models: dict, small_ham: Path) -> None:
    images = sorted((small_ham / "images").glob("*.jpg"))[::4]  # 21 real images, every class
    run_predictor = Predictor(tiny_run)
    run_results = run_predictor.predict(images)
    for result in run_results:
        check_contract(result, run_predictor.labels, 3)
    float_path = exported_models.get("float")
    assert float_path is not None, f"no float export among {sorted(exported_models)}"
    float_predictor = Predictor(float_path)
    assert float_predictor.kind == "tflite"
    assert float_predictor.labels == run_predictor.labels
    float_results = float_predictor.predict(images)
    # the float .tflite is the same network with the temperature folded in: same top-1 and close probabilities
    assert [r["label"] for r in float_results] == [r["label"] for r in run_results]
    for ours, theirs in zip(float_results, run_results):
        for label in run_predictor.labels:
            assert ours["probabilities"][label] == pytest.approx(theirs["probabilities"][label], abs=2e-3)
    if "int8" in exported_models:
        int8_results = Predictor(exported_models["int8"]).predict(images)
        agreement = np.mean([a["label"] == b["label"] for a, b in zip(int8_results, run_results)])
        assert agreement >= 0.6, agreement  # the tiny model is weak: most, not all, top-1 classes agree


def test_a_tflite_carries_the_referral_threshold_and_the_lesion_check(tiny_run: Path, lesion_check_run: Path,
                                                                     exported_with_lesion_check: dict) -> None:
    """export embeds metrics.json's referral point and the lesion check (second output, threshold in
    dermtool.json); predict uses them: a white frame and noise are not lesions."""
    import json

    predictor = Predictor(exported_with_lesion_check["int8"])
    referral = json.loads((lesion_check_run / "metrics.json").read_text()).get("referral")
    if referral and referral.get("threshold") is not None:
        assert predictor.thresholds.referral_source == "metadata"
        assert predictor.thresholds.referral == pytest.approx(referral["threshold"])
    assert predictor.lesion_check is not None, predictor.notes
    threshold = json.loads((lesion_check_run / "lesion_check.json").read_text())["threshold"]
    assert predictor.lesion_check_threshold == pytest.approx(threshold)
    white, noise = np.full((150, 200, 3), 255, np.uint8), np.random.default_rng(0).integers(0, 256, (150, 200, 3), np.uint8)
    for result in predictor.predict([white, noise]):
        assert result["outcome"] == "not_a_lesion", result
