"""dermtool.evaluate and ``dermtool evaluate``: metrics of a run on folders in each of the three layouts."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from dermtool import DermtoolError
from dermtool.cli.main import cli
from dermtool.evaluate import evaluate
from dermtool.run import RunFolder

CONTRACT_METRIC_KEYS = {"n", "accuracy", "balanced_accuracy", "macro_f1", "auc_macro", "ece", "nll", "per_class",
                        "confusion_matrix"}
ONEHOT_COLUMNS = ["MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"]


def small_ham_rows(small_ham: Path) -> list[dict[str, str]]:
    with open(small_ham / "labels.csv", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def onehot_layout(small_ham: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Layout 2: ISIC ground-truth CSV (image + one 0/1 column per class), images beside it (symlinks)."""
    root = tmp_path_factory.mktemp("onehot")
    (root / "images").mkdir()
    with open(root / "GroundTruth.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", *ONEHOT_COLUMNS])
        for row in small_ham_rows(small_ham):
            writer.writerow([row["image_id"], *("1.0" if column.lower() == row["dx"] else "0.0"
                                                for column in ONEHOT_COLUMNS)])
            (root / "images" / f"{row['image_id']}.jpg").symlink_to(
                (small_ham / "images" / f"{row['image_id']}.jpg").resolve())
    return root


@pytest.fixture(scope="module")
def folders_layout(small_ham: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Layout 3: one sub-folder per class holding its images (symlinks)."""
    root = tmp_path_factory.mktemp("folders")
    for row in small_ham_rows(small_ham):
        (root / row["dx"]).mkdir(exist_ok=True)
        (root / row["dx"] / f"{row['image_id']}.jpg").symlink_to(
            (small_ham / "images" / f"{row['image_id']}.jpg").resolve())
    return root


@pytest.fixture(scope="module")
def run(tiny_run: Path) -> RunFolder:
    """One open run for the module: its model is loaded once and reused by every evaluate() call."""
    return RunFolder(tiny_run)


@pytest.fixture(scope="module")
def csv_layout_result(run: RunFolder, small_ham: Path) -> dict:
    return evaluate(run, small_ham, progress=False)


def test_csv_layout_gives_the_contract_metrics(csv_layout_result: dict) -> None:
    assert CONTRACT_METRIC_KEYS <= set(csv_layout_result)
    assert csv_layout_result["n"] == 84
    assert sum(values["support"] for values in csv_layout_result["per_class"].values()) == 84
    assert csv_layout_result["skipped_images"] == []
    assert 0.0 <= csv_layout_result["balanced_accuracy"] <= 1.0


@pytest.mark.parametrize("layout", ["onehot_layout", "folders_layout"])
def test_every_layout_gives_the_same_metrics(layout: str, request: pytest.FixtureRequest, run: RunFolder,
                                             csv_layout_result: dict) -> None:
    result = evaluate(run, request.getfixturevalue(layout), progress=False)
    for key in ("n", "accuracy", "balanced_accuracy", "macro_f1", "auc_macro", "ece", "nll"):
        assert result[key] == pytest.approx(csv_layout_result[key]), key
    assert result["confusion_matrix"] == csv_layout_result["confusion_matrix"]


def test_split_uses_the_runs_split_rows(run: RunFolder, tiny_run: Path, small_ham: Path) -> None:
    result = evaluate(run, small_ham, split="test", progress=False)
    stored = json.loads((tiny_run / "metrics.json").read_text())["test"]
    assert result["n"] == stored["n"]
    assert result["balanced_accuracy"] == pytest.approx(stored["balanced_accuracy"])
    assert result["nll"] == pytest.approx(stored["nll"], rel=1e-4)  # calibrated with the run's temperature


def test_unknown_labels_are_named_unless_ignored(run: RunFolder, small_ham: Path, tmp_path: Path) -> None:
    rows = small_ham_rows(small_ham)
    (tmp_path / "images").mkdir()
    with open(tmp_path / "labels.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image_id", "dx"])
        for index, row in enumerate(rows[:20]):
            label = "scc" if index < 3 else row["dx"]
            writer.writerow([row["image_id"], label])
            (tmp_path / "images" / f"{row['image_id']}.jpg").symlink_to(
                (small_ham / "images" / f"{row['image_id']}.jpg").resolve())
    with pytest.raises(DermtoolError, match=r"does not know: 'scc' \(3 images\).*--ignore-unknown"):
        evaluate(run, tmp_path, progress=False)
    result = evaluate(run, tmp_path, ignore_unknown=True, progress=False)
    assert result["n"] == 17
    assert result["ignored_unknown"] == {"scc": 3}


def test_split_rows_missing_from_the_data_are_an_error(run: RunFolder, folders_layout: Path, tmp_path: Path) -> None:
    (tmp_path / "nv").mkdir()
    (tmp_path / "nv" / "other.jpg").symlink_to(next(folders_layout.glob("nv/*.jpg")).resolve())
    with pytest.raises(DermtoolError, match="none of the .* 'test' images"):
        evaluate(run, tmp_path, split="test", progress=False)


def test_cli_prints_the_table_and_writes_json(tiny_run: Path, small_ham: Path, tmp_path: Path) -> None:
    out = tmp_path / "metrics.json"
    result = CliRunner().invoke(cli, ["evaluate", str(tiny_run), "--data", str(small_ham), "--split", "test",
                                      "--json", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    for text in ("balanced accuracy", "macro F1", "AUC", "ECE", "NLL", "precision", "recall", "support", "mel"):
        assert text in result.output
    assert CONTRACT_METRIC_KEYS <= set(json.loads(out.read_text()))


def test_cli_errors_are_one_line_with_exit_2(tiny_run: Path, small_ham: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["evaluate", str(tmp_path), "--data", str(small_ham)])
    assert result.exit_code == 2
    assert "Error:" in result.output and "missing model.keras" in result.output
    assert "Traceback" not in result.output
    missing = CliRunner().invoke(cli, ["evaluate", str(tiny_run)])
    assert missing.exit_code == 2 and "--data" in missing.output
