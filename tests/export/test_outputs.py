"""Output rules of the export (refused overwrite, file names, argument checks) and the model card."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from click.testing import CliRunner

from dermtool import DermtoolError
from dermtool.cli.main import cli
from dermtool.export.model_card import SECTIONS
from dermtool.export.tflite import export_model
from dermtool.run import RunFolder


def test_existing_output_is_refused_without_overwrite(tiny_run, tmp_path):
    out = tmp_path / "model.tflite"
    out.write_bytes(b"an earlier model")
    with pytest.raises(DermtoolError, match="already exists.*--overwrite"):
        export_model(tiny_run, out, mode="float", progress=False)
    assert out.read_bytes() == b"an earlier model"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"mode": "int4"}, "unknown export mode"),
        ({"mode": "int8", "io": "uint16"}, "unknown input/output type"),
        ({"mode": "fp16", "qat": True}, "is for int8 export"),
        ({"mode": "float", "prune": 1.0}, "target sparsity"),
        ({"mode": "int8", "representative_images": 0}, "representative image"),
        ({"mode": "float", "min_agreement": 1.5}, "min-agreement"),
        ({"mode": "float", "max_balanced_accuracy_drop": -1}, "max-drop"),
        ({"mode": "int8", "prune": 0.5, "prune_learning_rate": 0.0}, "--prune-learning-rate must be positive"),
        ({"mode": "int8", "qat": True, "qat_learning_rate": -1e-5}, "--qat-learning-rate must be positive"),
    ],
)
def test_bad_arguments_are_clear_errors(tiny_run, tmp_path, arguments, message):
    with pytest.raises(DermtoolError, match=message):
        export_model(tiny_run, tmp_path / "model.tflite", progress=False, **arguments)
    assert list(tmp_path.iterdir()) == []


def test_output_must_be_a_tflite_file(tiny_run, tmp_path):
    with pytest.raises(DermtoolError, match=".tflite"):
        export_model(tiny_run, tmp_path / "model.bin", mode="float", progress=False)
    folder = tmp_path / "folder.tflite"
    folder.mkdir()
    with pytest.raises(DermtoolError, match="is a folder"):
        export_model(tiny_run, folder, mode="float", progress=False)
    with pytest.raises(DermtoolError, match="no such run folder"):
        export_model(tmp_path / "no_run", tmp_path / "model.tflite", progress=False)


def test_model_card_has_every_section(exported_results, tiny_run):
    result = exported_results["int8"]
    run = RunFolder(tiny_run)
    card = json.loads(result.model_card_json.read_text())
    markdown = result.model_card_markdown.read_text()
    assert result.model_card_json == result.path.with_name("tiny_int8.model_card.json")
    headings = {"can_and_cannot": "What this model can and cannot do"}
    for section in SECTIONS:
        assert card[section], section
        assert f"## {headings.get(section, section.replace('_', ' ').capitalize())}" in markdown, section
    assert list(card)[0] == "can_and_cannot"  # the card leads with what the model can and cannot do
    assert markdown.split("\n## ", 2)[1].startswith("What this model can and cannot do")
    # intended use: decision support for referral, not diagnosis or screening; dermoscopic images
    use = json.dumps(card["intended_use"])
    assert "referral" in use and "not a diagnosis" in use and "Screening" in use and "ermoscopic" in use
    # training data: counts per class per split, from split.csv
    expected = Counter((row.split, row.label) for row in run.split_rows)
    for split, counts in card["training_data"]["images_per_class_and_split"].items():
        for label, count in counts.items():
            assert count == expected.get((split, label), 0)
    # per-class metrics of the float and the exported model on validation
    for kind in ("float", "exported"):
        assert set(card["evaluation"][kind]["per_class"]) == set(run.labels)
    assert card["evaluation"]["exported"]["balanced_accuracy"] == pytest.approx(result.gate.exported_balanced_accuracy)
    # quantization, size, calibration, referral, gate
    assert card["quantization"]["mode"] == "int8" and card["quantization"]["input"]["zero_point"] == 127
    assert card["size"] == {"bytes": result.bytes, "gzip_bytes": result.gzip_bytes}
    assert card["calibration"]["temperature"] == pytest.approx(run.temperature)
    assert card["calibration"]["ece_val_before"] == pytest.approx(run.metrics["ece_before_calibration"]["val"])
    assert card["calibration"]["ece_val_after"] == pytest.approx(run.metrics["val"]["ece"])
    assert card["referral"]["threshold"] == pytest.approx(run.metrics["referral"]["threshold"])
    assert card["gate"] == result.gate.to_dict()
    # limitations and licence, stated correctly
    limitations = " ".join(card["limitations"])
    for fact in ("Medical University of Vienna", "Cliff Rosendahl", "Queensland", "Australia", "Skin type",
                 "not recorded", "eczema", "psoriasis"):
        assert fact in limitations, fact
    assert "CC BY-NC-SA 4.0" in card["licence"]["data"] and "Tschandl" in card["licence"]["citation"]
    assert "2018" in card["licence"]["citation"]


def test_cli_exports_int8_with_int8_io_and_reports(tiny_run, tmp_path):
    """`dermtool export RUN --out M --int8 --io int8`: int8 tensors (zero point mean - 128), summary printed."""
    from dermtool.runtime import TFLiteModel

    out = tmp_path / "lite0_int8io.tflite"
    runner = CliRunner()
    result = runner.invoke(cli, ["export", str(tiny_run), "--out", str(out), "--int8", "--io", "int8",
                                 "--representative", "32", "--no-gate", "--quiet", "--no-bias-correction"])
    assert result.exit_code == 0, result.output
    for text in ("size:", "gzip", "sparsity", "balanced accuracy", "top-1 agreement", "model card:",
                 "lite0_int8io.model_card.md"):
        assert text in result.output, text
    assert "bias correction:" not in result.output  # --no-bias-correction (on by default for int8)
    assert "--no-bias-correction" in runner.invoke(cli, ["export", "--help"]).output
    model = TFLiteModel(out)
    spec = RunFolder(tiny_run).input_spec
    assert (model.input.dtype, model.output.dtype) == ("int8", "int8")
    assert model.input.scale == pytest.approx(1.0 / spec.std, rel=1e-6)
    assert model.input.zero_point == round(spec.mean) - 128

    again = runner.invoke(cli, ["export", str(tiny_run), "--out", str(out), "--float"])
    assert again.exit_code == 2
    assert again.output.strip().splitlines()[-1].startswith("Error: ") and "--overwrite" in again.output
    wrong_io = runner.invoke(cli, ["export", str(tiny_run), "--out", str(tmp_path / "x.tflite"), "--fp16", "--io", "int8"])
    assert wrong_io.exit_code == 2 and "--io" in wrong_io.output
    float_corrected = runner.invoke(cli, ["export", str(tiny_run), "--out", str(tmp_path / "y.tflite"), "--fp16",
                                          "--bias-correction"])
    assert float_corrected.exit_code == 2 and "add --int8" in float_corrected.output


def test_export_options_from_the_config_and_single_keywords(tiny_run, tmp_path):
    """ExportOptions.from_config: the run's [export] section, replaced by what is given (None: left out);
    export_model's keywords replace single options; the test hook is no keyword."""
    from dermtool.config import ExportConfig
    from dermtool.export.tflite import ExportOptions

    config = ExportConfig(mode="fp16", prune_sparsity=0.5, bias_correction=False, gate_min_agreement=0.9)
    options = ExportOptions.from_config(config, mode="int8", qat=None, prune=None, gate=False)
    assert (options.mode, options.prune, options.qat, options.gate) == ("int8", 0.5, False, False)
    assert options.bias_correction is False and options.min_agreement == 0.9
    assert options.qat_learning_rate == config.qat_learning_rate
    assert ExportOptions.from_config(ExportConfig()).bias_correction is None  # on for post-training int8

    with pytest.raises(DermtoolError, match="is for int8 export"):  # the keyword replaces the options' mode
        export_model(tiny_run, tmp_path / "model.tflite", ExportOptions(mode="int8", qat=True), mode="fp16")
    with pytest.raises(TypeError, match="representative_transform"):
        export_model(tiny_run, tmp_path / "model.tflite", representative_transform=lambda batch: batch)
    assert list(tmp_path.iterdir()) == []
