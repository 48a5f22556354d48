"""Predictor: the contract dict, the outcome rule, run folders and .tflite models, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import dermtool
from dermtool import DermtoolError
from dermtool.prediction.predictor import (
    DEFAULT_REFERRAL_THRESHOLD,
    Predictor,
    Thresholds,
    decide_outcome,
)
from tests.explain.contract import check_contract

LABELS = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]


# ---- the decision rule (pure) ---------------------------------------------------------------------------


def test_outcome_precedence_not_a_lesion_then_refer_then_uncertain_then_benign() -> None:
    rule = Thresholds(referral=0.3, uncertainty=0.5, malignant_classes=("mel", "bcc", "akiec"), referral_source="argument")
    confident_benign = np.array([0.0, 0.0, 0.0, 0.0, 0.05, 0.9, 0.05])
    unsure_malignant = np.array([0.1, 0.1, 0.2, 0.1, 0.2, 0.2, 0.1])  # malignant 0.4, top 0.2
    unsure_benign = np.array([0.05, 0.05, 0.3, 0.2, 0.1, 0.2, 0.1])  # malignant 0.2, top 0.3
    assert decide_outcome(confident_benign, LABELS, rule, not_a_lesion=False) == "benign"
    assert decide_outcome(unsure_malignant, LABELS, rule, not_a_lesion=False) == "refer"  # refer beats uncertain
    assert decide_outcome(unsure_benign, LABELS, rule, not_a_lesion=False) == "uncertain"
    assert decide_outcome(unsure_malignant, LABELS, rule, not_a_lesion=True) == "not_a_lesion"
    at_threshold = np.array([0.1, 0.1, 0.0, 0.0, 0.1, 0.7, 0.0])  # malignant exactly 0.3: refer (>=)
    assert decide_outcome(at_threshold, LABELS, rule, not_a_lesion=False) == "refer"


# ---- a run folder ---------------------------------------------------------------------------------------


def test_predict_real_images_with_a_run(probe_predictor: Predictor, lesion_paths: list[Path]) -> None:
    predictor = probe_predictor
    assert predictor.kind == "run"
    assert predictor.labels == LABELS
    assert predictor.thresholds.referral_source == "metrics.json"
    results = predictor.predict(lesion_paths, top_k=3)
    assert [result["image"] for result in results] == [str(path) for path in lesion_paths]
    for result in results:
        check_contract(result, LABELS, 3)
        assert isinstance(result["ood_score"], float)
    # the same image as a path, as bytes and as a decoded array gives the same probabilities
    from dermtool.data.images import load_rgb

    path = lesion_paths[0]
    as_bytes, as_array = predictor.predict([path.read_bytes(), load_rgb(path)])
    assert as_bytes["image"] == as_array["image"] == "<upload>"
    for other in (as_bytes, as_array):
        for label in LABELS:
            assert other["probabilities"][label] == pytest.approx(results[0]["probabilities"][label], abs=1e-5)
    # real lesions pass the lesion check (almost all)
    assert sum(result["outcome"] != "not_a_lesion" for result in results) >= len(results) - 1


def test_each_outcome_is_reachable(probe_predictor: Predictor, lesion_paths: list[Path], white_frame: np.ndarray,
                                   text_image: np.ndarray) -> None:
    images = lesion_paths[:4]
    refer_all = probe_predictor.with_options(referral_threshold=0.0, lesion_check=False)
    assert {r["outcome"] for r in refer_all.predict(images)} == {"refer"}
    assert refer_all.thresholds.referral_source == "argument"
    uncertain_all = probe_predictor.with_options(referral_threshold=1.0, uncertainty_threshold=1.0, lesion_check=False)
    assert {r["outcome"] for r in uncertain_all.predict(images)} == {"uncertain"}
    benign_all = probe_predictor.with_options(referral_threshold=1.0, uncertainty_threshold=0.0, ood=False)  # old name
    assert {r["outcome"] for r in benign_all.predict(images)} == {"benign"}
    for result in benign_all.predict(images):
        assert result["ood_score"] is None and result["lesion_check"] is None  # check switched off
    blank, text = probe_predictor.predict([white_frame, text_image])
    for result in (blank, text):
        assert result["outcome"] == "not_a_lesion"
        assert result["lesion_check"]["not_a_lesion"] >= probe_predictor.lesion_check_threshold
        assert result["ood_score"] == result["lesion_check"]["not_a_lesion"]
        check_contract(result, LABELS, 3)  # probabilities are still reported (apps show none of them)
    reject_all = probe_predictor.with_options(lesion_check_threshold=1e-9)
    assert {r["outcome"] for r in reject_all.predict(images)} == {"not_a_lesion"}
    assert probe_predictor.lesion_check_threshold > 1e-9  # the original predictor is unchanged


def test_referral_threshold_falls_back_to_the_default_with_a_warning(copied_run: Path, lesion_paths: list[Path]) -> None:
    metrics_path = copied_run / "metrics.json"
    metrics = json.loads(metrics_path.read_text())
    metrics.pop("referral")
    metrics_path.write_text(json.dumps(metrics))
    with pytest.warns(UserWarning, match="no referral threshold"):
        predictor = Predictor(copied_run)
    assert predictor.thresholds.referral == DEFAULT_REFERRAL_THRESHOLD
    assert predictor.thresholds.referral_source == "default"
    assert len(predictor.predict(lesion_paths[:2])) == 2


def test_unreadable_images_give_an_error_in_place(probe_predictor: Predictor, lesion_paths: list[Path],
                                                  tmp_path: Path) -> None:
    not_an_image = tmp_path / "notes.jpg"
    not_an_image.write_text("this is text, not a JPEG")
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(lesion_paths[0].read_bytes()[:500])
    predictor = probe_predictor.with_options(lesion_check=False)
    images = [lesion_paths[0], not_an_image, tmp_path / "missing.jpg", truncated, b"", lesion_paths[1]]
    results = predictor.predict(images)
    assert len(results) == len(images)
    assert "outcome" in results[0] and "outcome" in results[-1]
    for result, name in zip(results[1:5], [str(not_an_image), str(tmp_path / "missing.jpg"), str(truncated), "<upload>"]):
        assert set(result) == {"image", "error"}
        assert result["image"] == name
        assert result["error"]


def test_wrong_model_files_give_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(DermtoolError, match="model not found"):
        Predictor(tmp_path / "nothing_here")
    fake = tmp_path / "model.tflite"
    fake.write_text("not a flatbuffer")
    with pytest.raises(DermtoolError, match="model.tflite"):
        Predictor(fake)
    other = tmp_path / "weights.h5"
    other.write_bytes(b"\x89HDF")
    with pytest.raises(DermtoolError, match="unsupported model file"):
        Predictor(other)
    empty_folder = tmp_path / "empty_run"
    empty_folder.mkdir()
    with pytest.raises(DermtoolError, match="missing"):
        Predictor(empty_folder)
    with pytest.raises(DermtoolError):
        Predictor(tmp_path, threads=0)


def test_top_level_api_is_lazy_and_cached(probe_run: Path, probe_predictor: Predictor, lesion_paths: list[Path]) -> None:
    first = dermtool.predict([lesion_paths[0]], probe_run, top_k=2)
    second = dermtool.predict(lesion_paths[0], str(probe_run), top_k=2)
    assert first == second
    check_contract(first[0], LABELS, 2)
    from dermtool.prediction.predictor import get_predictor

    assert get_predictor(probe_run) is get_predictor(str(probe_run)) is probe_predictor
