"""``dermtool predict`` and ``dermtool explain`` on the command line: outputs, exit codes, errors."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from PIL import Image

from dermtool.cli.main import cli

CONTRACT_KEYS = {"image", "outcome", "label", "probability", "probabilities", "top_k", "ood_score", "lesion_check"}


def invoke(arguments: list[str]):
    return CliRunner().invoke(cli, arguments, catch_exceptions=False)


def test_predict_json_text_and_an_unreadable_image(probe_run: Path, lesion_paths: list[Path], tmp_path: Path) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    white = tmp_path / "white.png"
    Image.new("RGB", (200, 150), (255, 255, 255)).save(white)
    images = [str(lesion_paths[0]), str(broken), str(white)]

    result = invoke(["predict", *images, "--model", str(probe_run), "--json", "--top-k", "2"])
    assert result.exit_code == 1  # the unreadable image, reported after the others
    listed = json.loads(result.stdout)
    assert [entry["image"] for entry in listed] == images
    assert set(listed[0]) == CONTRACT_KEYS and len(listed[0]["top_k"]) == 2
    assert set(listed[1]) == {"image", "error"}
    assert listed[2]["outcome"] == "not_a_lesion"

    text = invoke(["predict", str(lesion_paths[0]), str(white), "--model", str(probe_run), "--uncertainty-threshold", "0.99"])
    assert text.exit_code == 0, text.output
    assert "Referral:" in text.output and "chosen on the validation split" in text.output
    assert "sensitivity" in text.output and "specificity" in text.output
    assert " %" in text.output and "not a medical device" in text.output
    assert "NOT A LESION IMAGE" in text.output
    assert "UNCERTAIN" in text.output or "REFER" in text.output  # 0.99 makes the lesion uncertain unless referred


def test_predict_a_folder_and_a_glob(probe_run: Path, small_ham: Path) -> None:
    folder = invoke(["predict", str(small_ham / "images"), "--model", str(probe_run), "--json", "--no-ood"])
    assert folder.exit_code == 0
    assert len(json.loads(folder.stdout)) == 84
    pattern = invoke(["predict", str(small_ham / "images" / "ISIC_00243*.jpg"), "--model", str(probe_run), "--json"])
    assert pattern.exit_code == 0
    assert 0 < len(json.loads(pattern.stdout)) < 84


def test_predict_with_a_wrong_model_is_one_line_and_exit_2(tmp_path: Path, lesion_paths: list[Path]) -> None:
    fake = tmp_path / "model.tflite"
    fake.write_text("hello")
    result = CliRunner().invoke(cli, ["predict", str(lesion_paths[0]), "--model", str(fake)])
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: ") and len(result.stderr.strip().splitlines()) == 1
    missing = CliRunner().invoke(cli, ["predict", str(lesion_paths[0]), "--model", str(tmp_path / "no_run")])
    assert missing.exit_code == 2 and "model not found" in missing.stderr


def test_explain_writes_an_overlay_and_evaluates(probe_run: Path, lesion_paths: list[Path], small_ham: Path,
                                                 masks_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "overlay.png"
    result = invoke(["explain", str(lesion_paths[2]), "--model", str(probe_run), "--out", str(out), "--class", "mel"])
    assert result.exit_code == 0, result.output
    assert Image.open(out).format == "PNG"
    assert "Heat map for melanoma" in result.output or "predicted melanoma" in result.output
    report = tmp_path / "eval.json"
    evaluation = invoke(["explain", "--evaluate", "--model", str(probe_run), "--data", str(small_ham), "--masks",
                         str(masks_dir), "--split", "test", "--limit", "4", "--json", str(report)])
    assert evaluation.exit_code == 0, evaluation.output
    assert "pointing game hit rate" in evaluation.output
    assert json.loads(report.read_text())["n"] == 4
    no_out = CliRunner().invoke(cli, ["explain", str(lesion_paths[0]), "--model", str(probe_run)])
    assert no_out.exit_code == 2 and "--out" in no_out.stderr
