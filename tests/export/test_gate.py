"""The accuracy gate: numbers, message, and an export refused (nothing written) when int8 calibration is wrong."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dermtool import CheckFailed, DermtoolError
from dermtool.export.gate import enforce, measure_gate

LABELS = ["a", "b", "c"]


def _one_hot_like(predictions: list[int], confidence: float = 0.8) -> np.ndarray:
    probabilities = np.full((len(predictions), 3), (1 - confidence) / 2)
    probabilities[np.arange(len(predictions)), predictions] = confidence
    return probabilities


def test_gate_numbers_and_limits():
    y_true = np.array([0, 0, 1, 1, 2, 2, 2, 2, 1, 0])
    float_predictions = [0, 0, 1, 1, 2, 2, 2, 2, 1, 0]  # perfect
    exported_predictions = [0, 0, 1, 1, 2, 2, 2, 0, 1, 0]  # one class-2 image wrong
    measurement = measure_gate(
        y_true, _one_hot_like(float_predictions), _one_hot_like(exported_predictions), LABELS, 1.5, 0.97
    )
    result, float_metrics, exported_metrics = (measurement.result, measurement.float_metrics,
                                               measurement.exported_metrics)
    assert measurement.exported_referral is None  # no referral point given
    assert result.float_balanced_accuracy == pytest.approx(1.0)
    assert result.exported_balanced_accuracy == pytest.approx((1 + 1 + 0.75) / 3)
    assert result.balanced_accuracy_drop_points == pytest.approx(100 * 0.25 / 3)
    assert result.top1_agreement == pytest.approx(0.9)
    assert not result.passed and result.enforced
    assert float_metrics["balanced_accuracy"] == result.float_balanced_accuracy
    assert exported_metrics["per_class"]["c"]["recall"] == pytest.approx(0.75)
    with pytest.raises(DermtoolError) as error:
        enforce(result, "int8", qat=False)
    message = str(error.value)
    assert "1.0000" in message and "0.9167" in message and "8.33 points" in message  # both numbers, the drop
    assert "0.9000" in message and "--qat" in message and "Nothing was written" in message

    relaxed = measure_gate(y_true, _one_hot_like(float_predictions), _one_hot_like(exported_predictions),
                           LABELS, 10.0, 0.9).result
    assert relaxed.passed
    enforce(relaxed, "int8", qat=False)  # no error
    off = measure_gate(y_true, _one_hot_like(float_predictions), _one_hot_like(exported_predictions),
                       LABELS, 1.5, 0.97, enforced=False).result
    enforce(off, "int8", qat=False)  # measured, failed, not enforced: no error
    assert not off.passed and "gate off" in off.summary()


def test_gate_refuses_an_int8_model_calibrated_without_normalisation(tiny_run: Path, tiny_run_validation,
                                                                      tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The classic int8 failure: calibration images that skip ``normalize``. The gate catches it and the
    export leaves nothing behind (no model, no model card, no temporary file)."""
    from dermtool.export import tflite
    from dermtool.export.tflite import export_model

    float_classes = set(tiny_run_validation.float_probabilities.argmax(axis=1).tolist())
    assert len(float_classes) >= 2, "the float model predicts one class only: no gate could see a collapse"

    out = tmp_path / "exports" / "broken_int8.tflite"

    def skip_normalisation(pixels: np.ndarray) -> np.ndarray:
        return pixels.astype(np.float32)  # raw 0..255 instead of (pixels - mean) / std

    monkeypatch.setattr(tflite, "_CALIBRATION_TRANSFORM", skip_normalisation)  # the test hook
    with pytest.raises(CheckFailed) as error:  # exit 3 on the command line, a DermtoolError in the API
        export_model(tiny_run, out, mode="int8", representative_images=32, progress=False)
    message = str(error.value)
    assert "accuracy gate" in message and "--qat" in message
    assert "top-1 agreement" in message or "balanced accuracy fell" in message
    assert not out.exists()
    assert list(out.parent.iterdir()) == []  # no model card, no temporary file


def test_cli_refused_gate_exits_3_with_json_and_passed_gate_writes_the_summary(tiny_run: Path, tmp_path: Path,
                                                                               monkeypatch: pytest.MonkeyPatch):
    """`dermtool export`: a refusing gate exits 3 (2 is a usage error), writes no model, and --json - says why
    on stdout alone; a passing export's --json PATH is the summary (path, mode, size, gate, model card)."""
    import dataclasses
    import json

    from click.testing import CliRunner

    from dermtool.cli.main import cli
    from dermtool.export import gate

    measure = gate.measure_gate

    def unpassable(*args, **kwargs):  # the real numbers against a limit no model meets
        measurement = measure(*args, **kwargs)
        return dataclasses.replace(measurement, result=dataclasses.replace(measurement.result, min_agreement=1.5,
                                                                           passed=False))

    out = tmp_path / "tiny_float.tflite"
    with monkeypatch.context() as patch:
        patch.setattr(gate, "measure_gate", unpassable)
        refused = CliRunner().invoke(cli, ["export", str(tiny_run), "--out", str(out), "--float", "--quiet",
                                           "--json", "-"])
    assert refused.exit_code == 3, refused.output
    assert refused.stderr.strip().splitlines()[-1].startswith("Error: export refused by the accuracy gate")
    summary = json.loads(refused.stdout)  # the JSON and nothing else
    assert summary["written"] is False and summary["path"] is None and summary["mode"] == "float"
    assert summary["gate"]["passed"] is False and summary["gate"]["min_agreement"] == 1.5
    assert "accuracy gate" in summary["error"]
    assert list(tmp_path.iterdir()) == []  # no model, no model card, and no JSON file in --json - mode

    report = tmp_path / "reports" / "export.json"
    passed = CliRunner().invoke(cli, ["export", str(tiny_run), "--out", str(out), "--float", "--quiet",
                                      "--json", str(report)])
    assert passed.exit_code == 0, passed.output
    assert "model card:" in passed.stdout  # the text summary still printed with --json PATH
    summary = json.loads(report.read_text())
    assert summary["written"] is True and summary["path"] == str(out) and summary["mode"] == "float"
    assert summary["bytes"] == out.stat().st_size and summary["gate"]["passed"] is True
    assert Path(summary["model_card"]["json"]).is_file() and Path(summary["model_card"]["markdown"]).is_file()


def test_gate_measures_the_exported_referral_point():
    """``referral`` (metrics.json "referral") gives the exported model's sensitivity / specificity at the run's
    threshold, on the referral classes; a run without one, or whose classes are not the model's, gives None."""
    y_true = np.array([0, 0, 1, 1, 2, 2])
    exported = _one_hot_like([0, 0, 1, 0, 2, 1])
    measurement = measure_gate(y_true, exported, exported, LABELS, 1.5, 0.97,
                               referral={"classes": ["a"], "threshold": 0.5})
    # referred (p(a) >= 0.5): images 0, 1, 3; positives (class a): images 0, 1
    assert measurement.exported_referral["sensitivity"] == pytest.approx(1.0)
    assert measurement.exported_referral["specificity"] == pytest.approx(3 / 4)
    assert measure_gate(y_true, exported, exported, LABELS, 1.5, 0.97,
                        referral={"classes": ["z"], "threshold": 0.5}).exported_referral is None
    assert measure_gate(y_true, exported, exported, LABELS, 1.5, 0.97,
                        referral={"classes": ["a"], "threshold": None}).exported_referral is None
