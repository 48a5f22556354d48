"""Ask, then look, end to end on the session's two-source run (real HAM10000 and PAD-UFES-20 images, the
phone photos with their questionnaire answers): ``dermtool fuse``, export carrying the fusion, ``predict
--answer/--answers``, and the fused figures of ``evaluate`` and ``bench`` beside the image model's."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from dermtool import DermtoolError
from dermtool.cli.main import cli

FUSED_KEYS = ("image_only", "fused", "fused_all_unknown")


@pytest.fixture(scope="module")
def fused_run(two_source_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the two-source run with a fusion fitted by ``dermtool fuse`` (its stdout in fuse_stdout.txt)."""
    run = tmp_path_factory.mktemp("fused") / "run"
    shutil.copytree(two_source_run, run, ignore=shutil.ignore_patterns("checkpoints", "logs"))
    result = CliRunner().invoke(cli, ["fuse", str(run), "--quiet", "--json", str(run.parent / "fuse.json")])
    assert result.exit_code == 0, result.output
    (run.parent / "fuse_stdout.txt").write_text(result.output)
    return run


@pytest.fixture(scope="module")
def fused_model(fused_run: Path) -> tuple[Path, object]:
    """``(path, ExportResult)``: the fused run exported as a float .tflite (gate off: the tiny run's scores mean
    nothing)."""
    from dermtool.export.tflite import export_model

    path = fused_run.parent / "fused.tflite"
    return path, export_model(fused_run, path, mode="float", gate=False, progress=False)


@pytest.fixture(scope="module")
def pad_test_images(fused_run: Path, small_pad: Path) -> list[Path]:
    with open(fused_run / "split.csv", newline="") as handle:
        names = [row["image_id"] for row in csv.DictReader(handle) if row["source"] == "pad" and row["split"] == "test"]
    return [small_pad / "images" / f"{name}.jpg" for name in sorted(names)]


def _predict(*arguments: str) -> tuple[int, str]:
    """``(exit status, stdout)``, or ``(exit status, stdout and stderr)`` when the command failed."""
    result = CliRunner().invoke(cli, ["predict", *arguments])
    return result.exit_code, result.stdout if result.exit_code == 0 else result.output


def test_fuse_writes_the_fusion_and_its_report_per_source(fused_run: Path) -> None:
    fusion = json.loads((fused_run / "fusion.json").read_text())
    report = json.loads((fused_run / "fusion_report.json").read_text())
    assert fusion["format"] == "dermtool-fusion/1" and fusion["labels"] == (fused_run / "labels.txt").read_text().split()
    assert fusion["fitted_on"]["sources"] == ["ham", "pad"]
    assert 0 < fusion["fitted_on"]["train_images_with_answers"] < fusion["fitted_on"]["train_images"]
    assert set(fusion["weights"]) >= {"bleed", "itch", "site"}  # the phone photos' answers
    assert json.loads((fused_run.parent / "fuse.json").read_text()) == report
    for split in ("val", "test"):
        entries = report["splits"][split]
        assert set(entries) == {"ham", "pad", "pooled"}
        assert entries["ham"]["images_with_answers"] == 0  # small_ham's labels.csv asks nothing
        assert entries["pad"]["images_with_answers"] == entries["pad"]["image_only"]["images"] > 0
    assert "balanced accuracy" in (fused_run.parent / "fuse_stdout.txt").read_text()


def test_export_carries_the_fusion_into_the_metadata_and_the_model_card(fused_run: Path, fused_model) -> None:
    from dermtool.export.metadata import read_metadata

    path, result = fused_model
    fusion = json.loads((fused_run / "fusion.json").read_text())
    metadata = read_metadata(path)
    assert metadata["fusion"] == fusion and metadata["fusion"].get("referral") == fusion.get("referral")
    assert result.fusion and "questionnaire fusion" in result.summary() and result.to_dict()["fusion"] is True
    card = json.loads(result.model_card_json.read_text())["questionnaire_fusion"]
    assert [item["name"] for item in card["questions"]] == ["age", "sex", "site", "itch", "grew", "hurt", "changed",
                                                           "bleed", "elevation"]
    assert "an unknown answer adds nothing" in card["unknown_answers"] and card["fitted_on"] == fusion["fitted_on"]
    report = json.loads((fused_run / "fusion_report.json").read_text())
    assert set(card["figures"]) == {"val", "test"}
    assert card["figures"]["test"]["pad"]["fused"]["balanced_accuracy"] == \
        report["splits"]["test"]["pad"]["fused"]["balanced_accuracy"]
    markdown = result.model_card_markdown.read_text()
    assert "## Questionnaire fusion" in markdown and "| bleed | Does it bleed? | yes or no |" in markdown
    assert "| test | pad |" in markdown and "with every answer unknown the image model decides alone" in markdown
    from tests.export import displayer

    if displayer.available():  # tflite-support's reading, as before the populator changed (Python 3.11)
        displayer.assert_matches_golden(path, "float_fusion")


def test_export_refuses_a_fusion_that_does_not_fit_the_run(tmp_path: Path, fused_run: Path) -> None:
    from dermtool.fusion.fitting import read_run_fusion

    fusion = json.loads((fused_run / "fusion.json").read_text())
    run = SimpleNamespace(path=tmp_path, labels=list(fusion["labels"]))
    assert read_run_fusion(run) is None
    for broken, expected in (({**fusion, "labels": fusion["labels"][::-1]}, "not the model's"),
                             ({**fusion, "referral": {"classes": ["mel"], "threshold": 1.5}}, "referral.threshold"),
                             ({**fusion, "referral": {"classes": ["xyz"], "threshold": 0.3}}, "referral.classes")):
        (tmp_path / "fusion.json").write_text(json.dumps(broken))
        with pytest.raises(DermtoolError, match=expected) as caught:
            read_run_fusion(run)
        assert "\n" not in str(caught.value) and "dermtool fuse" in str(caught.value)
    (tmp_path / "fusion.json").write_text("{")
    with pytest.raises(DermtoolError, match="not readable JSON"):
        read_run_fusion(run)


def test_predict_with_answers_gives_the_fused_outcome_and_the_image_alone(fused_model, pad_test_images) -> None:
    path = fused_model[0]
    image = str(pad_test_images[0])
    code, output = _predict(image, "--model", str(path), "--json", "-")
    assert code == 0
    alone = json.loads(output)[0]
    assert "fusion" not in alone  # without answers the contract's object is unchanged
    answers = ["--answer", "bleed=yes", "--answer", "grew=yes", "--answer", "itch=yes", "--answer", "age=70",
               "--answer", "site=head_neck"]
    code, output = _predict(image, "--model", str(path), *answers, "--json", "-")
    assert code == 0
    fused = json.loads(output)[0]
    block = fused["fusion"]
    assert block["applied"] and block["answers"] == {"bleed": "yes", "grew": "yes", "itch": "yes", "age": "60-74",
                                                     "site": "head_neck"}
    assert block["image_only"]["probabilities"] == alone["probabilities"]
    assert fused["probabilities"] != alone["probabilities"]
    assert block["malignant_probability"]["summary"] and block["referral_threshold"] is not None
    code, text = _predict(image, "--model", str(path), *answers)
    assert code == 0
    assert "With answers: refer when the fused malignant probability" in text
    assert f"  Answers: {block['malignant_probability']['summary']}" in text and "  Image alone: " in text
    assert "not a medical device" in text


def test_predict_reads_answers_per_image_from_csv_and_json(tmp_path: Path, fused_model, pad_test_images) -> None:
    path = fused_model[0]
    first, second, third = (str(image) for image in pad_test_images[:3])
    table = tmp_path / "answers.csv"
    table.write_text(f"image_id,bleed,region,notes\n{Path(first).stem},True,FACE,x\n{Path(second).stem},False,,y\n"
                     "PAT_0_0_0,True,,not among the images\n")
    code, output = _predict(first, second, third, "--model", str(path), "--answers", str(table), "--json", "-")
    assert code == 0, output
    results = json.loads(output)
    assert [result["fusion"]["answers"] for result in results] == [{"bleed": "yes", "site": "head_neck"},
                                                                   {"bleed": "no"}, {}]
    assert [result["fusion"]["applied"] for result in results] == [True, True, False]
    by_name = tmp_path / "answers.json"
    by_name.write_text(json.dumps({Path(second).name: {"bleed": "yes"}, first: {"age": 64}}))
    code, output = _predict(first, second, third, "--model", str(path), "--answers", str(by_name), "--json", "-")
    assert code == 0, output
    assert [result["fusion"]["answers"] for result in json.loads(output)] == [{"age": "60-74"}, {"bleed": "yes"}, {}]
    by_name.write_text(json.dumps({Path(second).name: {"bleed": "maybe"}}))
    code, output = _predict(first, "--model", str(path), "--answers", str(by_name))
    assert code == 2 and "answers.json, image" in output and "bleed: yes or no" in output


def test_answers_are_refused_for_a_model_without_fusion_and_with_both_options(two_source_run: Path,
                                                                              pad_test_images) -> None:
    image = str(pad_test_images[0])
    code, output = _predict(image, "--model", str(two_source_run), "--no-ood", "--answer", "bleed=yes")
    assert code == 2 and "has no questionnaire fusion" in output and "dermtool fuse" in output
    assert len([line for line in output.splitlines() if line.startswith("Error:")]) == 1
    code, output = _predict(image, "--model", str(two_source_run), "--answer", "bleed=yes", "--answers", "a.csv")
    assert code == 2 and "not both" in output
    code, output = _predict(image, "--model", str(two_source_run), "--answer", "age=200")
    assert code == 2 and "age: a number of years (0-120)" in output


def test_evaluate_gives_the_fused_figures_beside_the_image_models(fused_run: Path, small_pad: Path,
                                                                 tmp_path: Path) -> None:
    out = tmp_path / "evaluate.json"
    result = CliRunner().invoke(cli, ["evaluate", str(fused_run), "--data", str(small_pad), "--split", "test",
                                      "--quiet", "--json", str(out)])
    assert result.exit_code == 0, result.output
    figures = json.loads(out.read_text())
    for key in ("n", "accuracy", "balanced_accuracy", "ece", "per_class", "confusion_matrix", "temperature"):
        assert key in figures, key
    block = figures["fusion"]
    assert block["images"] == block["images_with_answers"] == figures["n"]
    assert block["image_only"]["balanced_accuracy"] == pytest.approx(figures["balanced_accuracy"])
    expected = json.loads((fused_run / "fusion_report.json").read_text())["splits"]["test"]["pad"]
    for kind in FUSED_KEYS:
        assert block[kind]["balanced_accuracy"] == pytest.approx(expected[kind]["balanced_accuracy"], abs=1e-6)
    assert block["fused"]["referral"]["threshold"] == block["referral_threshold"]
    assert "Questionnaire fusion:" in result.output and "all unknown" in result.output


def test_bench_gives_the_fused_figures_for_litert_and_mediapipe(fused_run: Path, fused_model, small_pad: Path,
                                                               small_ham: Path) -> None:
    from dermtool.bench.report import format_table, to_markdown
    from dermtool.bench.runner import BenchOptions, run_bench

    path = fused_model[0]
    results = run_bench(path, small_pad, BenchOptions(split="test", manifest=fused_run / "split.csv", runs=2, warmup=1,
                                                      progress=False, client="both"))
    block = results["fusion"]
    assert block["images_with_answers"] == results["n"] and set(FUSED_KEYS) <= set(block)
    assert block["image_only"]["balanced_accuracy"] == pytest.approx(results["balanced_accuracy"])
    assert results["mediapipe"]["fusion"]["image_only"]["balanced_accuracy"] == pytest.approx(
        results["mediapipe"]["balanced_accuracy"])
    assert "Questionnaire fusion (" in format_table(results) and "### Questionnaire fusion" in to_markdown(results)
    without = run_bench(path, small_ham, BenchOptions(split="test", manifest=fused_run / "split.csv", runs=2, warmup=1,
                                                      progress=False))
    assert "fusion" not in without and any("no answers" in note for note in without["notes"])


def test_a_lesions_answers_are_fused_once_with_its_combined_photos(fused_model, pad_test_images: list[Path]) -> None:
    """Several photos of one lesion with answers: the photos' image-only probabilities are combined by the
    model's rule, then the fusion applies the answers once (dermtool.prediction.lesion)."""
    import numpy as np

    from dermtool.prediction.lesion import model_rule, predict_lesion
    from dermtool.prediction.multi_photo import combine_photos
    from dermtool.prediction.predictor import Predictor
    from dermtool.fusion.questionnaire import read_answers

    predictor = Predictor(fused_model[0])
    photos = pad_test_images[:2]
    answers = {"bleed": "yes", "age": "64", "site": "trunk"}
    lesion = predict_lesion(predictor, photos, lesion="P1", answers=answers)
    combined = combine_photos([photo["probabilities"] for photo in lesion["photos"]], model_rule(predictor))
    assert lesion["fusion"]["applied"] is True
    assert lesion["fusion"]["image_only"]["probabilities"] == pytest.approx(combined, abs=1e-6)
    row = np.array([combined[label] for label in predictor.labels])
    fused = predictor.fusion.apply_one(row, read_answers(answers))
    assert [lesion["probabilities"][label] for label in predictor.labels] == pytest.approx(list(fused), abs=1e-6)
    cli_result = CliRunner().invoke(cli, ["predict", *map(str, photos), "--lesion", "--model", str(fused_model[0]),
                                          "--answer", "bleed=yes", "--answer", "age=64", "--answer", "site=trunk",
                                          "--json", "-"], catch_exceptions=False)
    assert cli_result.exit_code == 0, cli_result.output
    assert json.loads(cli_result.stdout)[0]["probabilities"] == lesion["probabilities"]
