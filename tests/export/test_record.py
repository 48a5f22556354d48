"""``ExportRecord``: the model card and the ``ExportResult`` are both built from the one record of an export
(on the tiny run; the record's products chosen so that each one is told apart where it lands)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dermtool.export.gate import measure_gate
from dermtool.export.model_card import build_model_card, render_markdown
from dermtool.export.record import ExportRecord
from dermtool.export.tflite import ExportResult
from dermtool.optimize.bias_correction import BiasCorrectionReport
from dermtool.run import RunFolder


def _record(run: RunFolder, tmp_path: Path) -> ExportRecord:
    labels = run.labels
    y_true = np.arange(len(labels) * 2) % len(labels)
    probabilities = np.eye(len(labels))[y_true] * 0.9 + 0.1 / len(labels)
    referral = run.metrics.get("referral")
    return ExportRecord(
        model_path=tmp_path / "tiny_int8.tflite", mode="int8", io_type="uint8", qat=True, prune=0.5,
        representative_images=12, fine_tune_target="labels", fine_tune_epochs={"prune": 1, "qat": 2},
        fine_tune_learning_rates={"prune": 1e-4, "qat": 2e-5},
        bias_correction=BiasCorrectionReport(rounded_layers=3, corrected_offsets=7, uncorrected_layers=(), images=12,
                                             shift_before=0.2, shift_after=0.01).to_dict(),
        sparsity=0.48, input_quantization={"dtype": "uint8", "scale": 0.017, "zero_point": 124},
        output_quantization={"dtype": "uint8", "scale": 1 / 256, "zero_point": 0},
        size_bytes=123_456, gzip_bytes=98_765,
        gate=measure_gate(y_true, probabilities, probabilities, labels, 1.5, 0.97, referral=referral),
    )


def test_the_model_card_reads_the_record_and_the_run(tiny_run: Path, tmp_path: Path) -> None:
    run = RunFolder(tiny_run)
    record = _record(run, tmp_path)
    card = build_model_card(run, record)
    assert card["model"]["file"] == "tiny_int8.tflite" and card["model"]["run"] == str(run.path)
    assert card["model"]["architecture"] == run.config.model.name and card["model"]["classes"] == run.labels
    assert card["model"]["color_constancy"]["method"] == run.config.model.color_constancy
    assert card["size"] == {"bytes": 123_456, "gzip_bytes": 98_765}
    quantization = card["quantization"]
    assert (quantization["mode"], quantization["io"], quantization["sparsity"]) == ("int8", "uint8", 0.48)
    assert quantization["input"] == record.input_quantization and quantization["representative_images"] == 12
    assert quantization["quantization_aware_training"] is True and quantization["pruning_target_sparsity"] == 0.5
    assert quantization["bias_correction"]["corrected_offsets"] == 7 and quantization["fine_tune_target"] == "labels"
    assert card["gate"] == record.gate.result.to_dict() and card["gate"]["top1_agreement"] == 1.0
    assert card["evaluation"]["exported"] == record.gate.exported_metrics
    assert card["calibration"]["temperature"] == run.temperature
    assert "questionnaire_fusion" not in card  # the record carries no fusion
    assert "yes, 7 biases on 12 representative images" in render_markdown(card)
    assert f"Accuracy gate passed on {len(run.labels) * 2} validation images." in render_markdown(card)

    unmeasured = build_model_card(run, ExportRecord(model_path=tmp_path / "m.tflite", mode="float",
                                                    io_type="float32"))
    assert unmeasured["gate"] is None and unmeasured["evaluation"]["exported"] is None
    assert unmeasured["quantization"]["representative_source"] is None


def test_the_result_is_the_record_with_the_card_paths(tiny_run: Path, tmp_path: Path) -> None:
    run = RunFolder(tiny_run)
    record = _record(run, tmp_path)
    card_json, card_markdown = tmp_path / "tiny_int8.model_card.json", tmp_path / "tiny_int8.model_card.md"
    result = ExportResult.from_record(record, 1.25, card_json, card_markdown, {"total": 1.0})
    summary = result.to_dict()
    assert summary["path"] == str(record.model_path) and (summary["bytes"], summary["gzip_bytes"]) == (123_456, 98_765)
    assert summary["gate"] == record.gate.result.to_dict() and result.gate is record.gate.result
    assert summary["model_card"] == {"json": str(card_json), "markdown": str(card_markdown)}
    assert summary["fine_tune_epochs"] == {"prune": 1, "qat": 2} and summary["temperature"] == 1.25
    assert summary["representative_images"] == 12 and summary["fusion"] is False and summary["lesion_check"] is False
    assert result.exported_metrics == record.gate.exported_metrics
    assert "sparsity of the prunable kernels: 48.0% (target 50%)" in result.summary()
