"""A two-source run on small real subsets of HAM10000 (dermoscopic) and PAD-UFES-20 (smartphone photos)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dermtool.train.report import MIN_IMAGES_FOR_RECALL, SplitStrata, final_metrics, recall_table
from tests.fixtures_run import PAD_MAP, model_card_of_run

# two_source_run: the session fixture of tests/fixtures_run.py (ham + pad, trained once per session)


def test_the_run_writes_per_source_splits_and_metrics(two_source_run: Path) -> None:
    header, *lines = (two_source_run / "split.csv").read_text().splitlines()
    assert header == "image_id,label,group,split,source"
    assert {line.rsplit(",", 1)[1] for line in lines} == {"ham", "pad"}
    assert (two_source_run / "labels.txt").read_text().split() == [
        "akiec", "bcc", "bkl", "df", "mel", "nv", "scc", "vasc"]
    result = json.loads((two_source_run / "metrics.json").read_text())
    assert set(result["per_source"]) == {"ham", "pad"}
    assert result["per_source"]["pad"]["kind"] == "smartphone"
    for name in ("ham", "pad"):
        test = result["per_source"][name]["test"]
        assert {"n", "balanced_accuracy", "per_class", "auc_macro", "ece"} <= set(test)
    pad_test = result["per_source"]["pad"]["test"]["per_class"]
    assert pad_test["df"]["support"] == 0 and pad_test["scc"]["support"] > 0
    assert result["per_source"]["ham"]["test"]["n"] + result["per_source"]["pad"]["test"]["n"] == result["test"]["n"]
    referral = result["referral"]
    assert referral["classes"] == ["mel", "bcc", "akiec", "scc"]
    alone = [entry["threshold_alone"] for entry in referral["per_source"].values() if entry["threshold_alone"]]
    assert referral["threshold"] == pytest.approx(min([referral["pooled_threshold"], *alone]))
    assert "per_skin_type" in result and result["per_skin_type"]["split"] == "test"
    log = (two_source_run / "train.log").read_text()
    assert "source pad (smartphone):" in log and "val balanced accuracy per source" in log


def test_the_referral_threshold_keeps_the_bound_on_each_source() -> None:
    """Source 1's positives score lower than source 0's: the threshold must come down to source 1's."""
    rng = np.random.default_rng(0)
    labels = ["mel", "nv"]
    count = 400
    sources = np.repeat([0, 1], count // 2)
    y_true = rng.integers(0, 2, count)
    score = np.where(y_true == 0, np.where(sources == 0, 0.8, 0.45), 0.2) + rng.normal(0, 0.1, count)
    probabilities = np.stack([np.clip(score, 0.01, 0.99), 1 - np.clip(score, 0.01, 0.99)], axis=1)
    logits = {"val": (y_true, np.log(probabilities)), "test": (y_true, np.log(probabilities))}
    strata = {split: SplitStrata(sources, [""] * count, ["derm", "phone"], ["dermoscopic", "smartphone"])
              for split in logits}
    result = final_metrics(labels, logits, strata)
    referral = result["referral"]
    assert referral["threshold"] < referral["pooled_threshold"]
    for name in ("derm", "phone"):
        assert referral["per_source"][name]["val"]["sensitivity"] >= 0.9
        assert referral["per_source"][name]["val_sensitivity_lower_bound"] >= 0.9 - 1e-9
    assert set(result["per_source"]) == {"derm", "phone"}


def test_recalls_from_a_handful_of_images_say_too_few() -> None:
    y_true = np.array([0] * (MIN_IMAGES_FOR_RECALL - 1) + [1] * 20)
    probabilities = np.tile([[0.2, 0.8]], (len(y_true), 1))
    table = recall_table(y_true, probabilities, ["mel", "nv"])
    assert table["mel"] == {"n": MIN_IMAGES_FOR_RECALL - 1, "recall": "too few"}
    assert table["nv"]["recall"] == 1.0 and table["nv"]["ci95"][0] > 0.8 and table["nv"]["ci95"][1] == pytest.approx(1.0)


def test_evaluate_on_one_source_applies_its_label_map(two_source_run: Path, small_pad: Path, small_ham: Path) -> None:
    from dermtool.evaluate import evaluate

    pad = evaluate(two_source_run, small_pad, split="test", progress=False)
    result = json.loads((two_source_run / "metrics.json").read_text())
    assert pad["source"] == {"name": "pad", "kind": "smartphone"}
    assert pad["n"] == result["per_source"]["pad"]["test"]["n"]
    assert pad["balanced_accuracy"] == pytest.approx(result["per_source"]["pad"]["test"]["balanced_accuracy"], abs=1e-6)
    ham = evaluate(two_source_run, small_ham, split="test", progress=False)
    assert ham["source"]["name"] == "ham" and ham["n"] == result["per_source"]["ham"]["test"]["n"]


def test_train_refuses_data_with_sources_and_names_a_missing_source_folder(tmp_path: Path, small_ham: Path) -> None:
    from click.testing import CliRunner

    from dermtool.cli.main import cli

    config = tmp_path / "two.toml"
    config.write_text(f'[[data.sources]]\nname = "ham"\ndata_dir = "{small_ham}"\n\n'
                      f'[[data.sources]]\nname = "phone"\ndata_dir = "{tmp_path / "nowhere"}"\n')
    result = CliRunner().invoke(cli, ["train", "--config", str(config), "--out", str(tmp_path / "run"),
                                      "--data", str(small_ham)])
    assert result.exit_code != 0 and "[[data.sources]]" in result.output
    result = CliRunner().invoke(cli, ["train", "--config", str(config), "--out", str(tmp_path / "run")])
    assert result.exit_code != 0 and "source 'phone'" in result.output and not (tmp_path / "run").exists()


def test_the_model_card_of_a_two_source_run_reports_each_source(two_source_run: Path) -> None:
    from dermtool.export.model_card import render_markdown

    card = model_card_of_run(two_source_run)
    assert [source["name"] for source in card["training_data"]["sources"]] == ["ham", "pad"]
    assert set(card["evaluation"]["per_source_test_float"]) == {"ham", "pad"}
    assert "smartphone photos" in card["intended_use"]["input"]
    assert "PAD-UFES-20, CC BY 4.0" in card["licence"]["data"]
    markdown = render_markdown(card)
    assert "## Per source (float model, test split)" in markdown and "| pad | smartphone |" in markdown
    assert "float, test, pad only: sensitivity" in markdown
    assert card["model"]["color_constancy"]["method"] == "none" and "Colour constancy" not in markdown
    card["model"]["color_constancy"] = {"method": "shades_of_grey", "power": 6.0}
    assert "- Colour constancy: shades of grey (power 6) is the model's first layer" in render_markdown(card)


def test_an_exported_two_source_model_benches_on_one_source_with_its_label_map(two_source_run: Path, small_pad: Path,
                                                                              tmp_path: Path) -> None:
    """Export reads the representative and gate images from both sources; the .tflite carries the label
    maps, so bench on the phone folder needs neither the run nor a label CSV in the model's classes."""
    from dermtool.bench.runner import BenchOptions, run_bench
    from dermtool.export.metadata import read_metadata
    from dermtool.export.tflite import export_model

    model = tmp_path / "two.tflite"
    export_model(two_source_run, model, mode="float", gate=False, progress=False)
    assert read_metadata(model)["sources"][1] == {"name": "pad", "kind": "smartphone", "label_map": PAD_MAP}
    assert "fusion" not in read_metadata(model)  # no `dermtool fuse`, no fusion in the metadata
    result = run_bench(model, small_pad,
                       BenchOptions(split="test", manifest=two_source_run / "split.csv", runs=2, warmup=1,
                                    progress=False))
    expected = json.loads((two_source_run / "metrics.json").read_text())["per_source"]["pad"]["test"]
    assert result["data"]["source"] == {"name": "pad", "kind": "smartphone"}
    assert result["n"] == expected["n"]
    assert result["balanced_accuracy"] == pytest.approx(expected["balanced_accuracy"], abs=0.05)


def test_model_card_of_a_two_source_model_names_its_inputs_and_classes() -> None:
    """A multi-source card does not keep the dermoscopic-only, seven-class wording of the HAM10000 card."""
    from dermtool.export.model_card import INTENDED_USE, LIMITATIONS, _add_sources

    card = {"intended_use": dict(INTENDED_USE), "limitations": list(LIMITATIONS), "training_data": {},
            "evaluation": {}, "licence": {"data": "HAM10000"}, "referral": None}
    per_source = {"ham10000": {"kind": "dermoscopic"}, "pad_ufes_20": {"kind": "smartphone"}}
    labels = ["akiec", "bcc", "bkl", "df", "mel", "nv", "scc", "vasc"]
    _add_sources(card, per_source, [], labels, None, {})
    text = " ".join([card["intended_use"]["summary"], *card["intended_use"]["not_intended_for"],
                     *card["limitations"]])
    assert "seven" not in text
    assert "8 lesion classes" in card["intended_use"]["summary"] and "smartphone" in card["intended_use"]["summary"]
    assert any("PAD-UFES-20" in item for item in card["limitations"])
