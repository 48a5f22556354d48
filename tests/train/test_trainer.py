"""dermtool.train.trainer: a real (tiny) run end to end, resume after an interruption, folder rules."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from dermtool import DermtoolError
from dermtool.run import RunFolder
from tests.fixtures_run import smoke_config

CONTRACT_METRIC_KEYS = {"n", "accuracy", "balanced_accuracy", "macro_f1", "auc_macro", "ece", "nll", "per_class",
                        "confusion_matrix"}
HISTORY_COLUMNS = ["epoch", "phase", "loss", "train_accuracy", "val_loss", "val_balanced_accuracy", "val_accuracy",
                   "learning_rate", "seconds", "images_per_second", "input_wait_fraction"]


def read_history(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "history.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_the_run_folder_is_complete(tiny_run: Path) -> None:
    for name in ("model.keras", "labels.txt", "split.csv", "config.toml", "history.csv", "metrics.json",
                 "input_spec.json", "confusion_matrix.png", "training_curves.png", "train.log"):
        assert (tiny_run / name).is_file(), name
        assert (tiny_run / name).stat().st_size > 0, name
    assert (tiny_run / "confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert any((tiny_run / "logs").iterdir()), "TensorBoard event file"
    assert (tiny_run / "checkpoints" / "state.json").is_file()
    labels = (tiny_run / "labels.txt").read_text().split()
    assert labels == ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]
    assert json.loads((tiny_run / "input_spec.json").read_text())["image_size"] == 64


def test_metrics_json_has_every_contract_key(tiny_run: Path) -> None:
    result = json.loads((tiny_run / "metrics.json").read_text())
    labels = (tiny_run / "labels.txt").read_text().split()
    for split in ("val", "test"):
        assert CONTRACT_METRIC_KEYS <= set(result[split]), split
        assert set(result[split]["per_class"]) == set(labels)
        for values in result[split]["per_class"].values():
            assert {"precision", "recall", "f1", "support"} <= set(values)
        assert result[split]["confusion_matrix"]["labels"] == labels
        assert sum(map(sum, result[split]["confusion_matrix"]["matrix"])) == result[split]["n"]
        assert 0.0 <= result[split]["balanced_accuracy"] <= 1.0
    split_rows = list(csv.DictReader(open(tiny_run / "split.csv", newline="")))
    assert result["val"]["n"] == sum(row["split"] == "val" for row in split_rows)
    assert result["test"]["n"] == sum(row["split"] == "test" for row in split_rows)
    assert result["temperature"] > 0
    assert set(result["ece_before_calibration"]) == {"val", "test"}
    assert result["best_epoch"] in (1, 2)
    assert result["skipped_images"] == []
    assert set(result["throughput"]) == {"head", "finetune"} and all(v > 0 for v in result["throughput"].values())
    assert 0.0 <= result["input_wait_fraction"] < 1.0
    referral = result["referral"]
    assert referral["classes"] == ["mel", "bcc", "akiec"]
    assert referral["val"]["sensitivity"] >= 0.9  # the threshold is chosen on val for exactly this
    assert {"sensitivity", "specificity"} <= set(referral["test"])
    assert result["melanoma"]["classes"] == ["mel"]


def test_history_has_one_row_per_epoch(tiny_run: Path) -> None:
    rows = read_history(tiny_run)
    assert list(rows[0]) == HISTORY_COLUMNS
    assert [(row["epoch"], row["phase"]) for row in rows] == [("1", "head"), ("2", "finetune")]
    for row in rows:
        assert float(row["seconds"]) > 0 and float(row["images_per_second"]) > 0
        assert 0.0 <= float(row["input_wait_fraction"]) < 1.0
        assert float(row["learning_rate"]) > 0


def test_the_saved_model_is_the_best_epoch_and_float32(tiny_run: Path) -> None:
    run = RunFolder(tiny_run)
    model = run.load_model()
    assert model.get_layer("logits").dtype_policy.name == "float32"
    assert model.output_shape == (None, len(run.labels))
    best = run.metrics["best_epoch"]
    rows = read_history(tiny_run)
    best_val = max(float(row["val_balanced_accuracy"]) for row in rows)
    assert float(rows[best - 1]["val_balanced_accuracy"]) == pytest.approx(best_val)
    # Calibration keeps the arg-max: the calibrated val balanced accuracy is the best epoch's.
    assert run.metrics["val"]["balanced_accuracy"] == pytest.approx(best_val, abs=1e-6)


def test_a_second_run_into_the_folder_is_refused(tiny_run: Path, small_ham: Path) -> None:
    from dermtool.train.trainer import train

    before = {path.name: path.stat().st_mtime_ns for path in tiny_run.iterdir()}
    with pytest.raises(DermtoolError, match="--resume.*--overwrite"):
        train(smoke_config(small_ham), tiny_run, progress=False)
    assert {path.name: path.stat().st_mtime_ns for path in tiny_run.iterdir()} == before


def test_resume_after_an_interruption_finishes_every_epoch(small_ham: Path, tmp_path: Path) -> None:
    """Interrupted after epoch 1 of 3, then resumed: three epochs in history, loss went down."""
    from dermtool.train.trainer import train

    config = smoke_config(small_ham, ["train.finetune_epochs=2"])
    out = tmp_path / "run"

    def interrupt_after_first_epoch(record) -> None:
        if record.epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config, out, progress=False, on_epoch_end=interrupt_after_first_epoch)
    state = json.loads((out / "checkpoints" / "state.json").read_text())
    assert state["completed_epochs"] == 1 and state["phase"] == "head"
    assert len(read_history(out)) == 1
    assert not (out / "metrics.json").exists()
    with pytest.raises(DermtoolError, match="resume"):
        RunFolder(out)  # not finished: the error says how to go on

    with pytest.raises(DermtoolError, match="different configuration.*train.finetune_epochs"):
        train(smoke_config(small_ham, ["train.finetune_epochs=3"]), out, resume=True, progress=False)

    run = train(config, out, resume=True, progress=False)
    rows = read_history(out)
    assert [(row["epoch"], row["phase"]) for row in rows] == [("1", "head"), ("2", "finetune"), ("3", "finetune")]
    assert run.metrics["epochs"] == 3
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"]), "the training loss went down"
    assert "resuming" in (out / "train.log").read_text()
    # Old checkpoints are cleaned up: only the latest and the best remain.
    prefixes = {path.name.split(".")[0] for path in (out / "checkpoints").iterdir() if path.name != "state.json"}
    assert prefixes <= {"epoch-3", f"best-{run.metrics['best_epoch']}"}
