"""One folder, two kinds of photo (MILK10k's clinical close-ups and dermoscopy of the same lesions) as two
sources: per-kind figures, skin tones, out-of-scope lesions and paired photos, through train, the model
card, export and bench (real MILK10k subsets; ``milk_run`` is the session fixture of tests/fixtures_run.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dermtool import DermtoolError
from dermtool.train.report import OutOfScope, SplitStrata, final_metrics
from tests.fixtures_run import MILK_OUT_OF_SCOPE, model_card_of_run


def test_the_run_reports_each_kind_skin_tones_out_of_scope_and_paired_photos(milk_run: Path, small_milk: Path) -> None:
    result = json.loads((milk_run / "metrics.json").read_text())
    assert set(result["per_source"]) == {"milk_dermoscopic", "milk_clinical"}
    assert result["per_source"]["milk_clinical"]["kind"] == "clinical"
    tones = result["per_skin_tone"]
    assert tones["split"] == "test" and set(tones["tones"]) <= {"0", "1", "2", "3", "4", "5"}
    assert sum(entry["n"] for entry in tones["tones"].values()) + tones["unknown_images"] == result["test"]["n"]
    aside = result["out_of_scope"]
    assert set(aside) == {"milk_dermoscopic", "milk_clinical"}
    for entry in aside.values():  # 6 lesions of each out-of-scope label in small_milk, one photo per kind
        assert entry["n"] == 6 * len(MILK_OUT_OF_SCOPE) == entry["benign"] + entry["refer"] + entry["uncertain"]
        assert set(entry["per_label"]) == set(MILK_OUT_OF_SCOPE)
        assert entry["called_benign"] == pytest.approx(entry["benign"] / entry["n"])
    pairs = result["paired_photos"]
    test_rows = [line.split(",") for line in (milk_run / "split.csv").read_text().splitlines()[1:]]
    assert pairs["lesions"] == len({row[2] for row in test_rows if row[3] == "test"})
    assert 0.0 <= pairs["same_outcome"] <= 1.0 and pairs["sources"] == ["milk_clinical", "milk_dermoscopic"]
    for entry in result["referral"]["per_source"].values():
        if entry["threshold_alone"] is not None:
            assert entry["own_threshold"]["threshold"] == entry["threshold_alone"]
            assert entry["own_threshold"]["threshold"] >= result["referral"]["threshold"]
    log = (milk_run / "train.log").read_text()
    assert "out of scope (not trained, checked at the end): 36 image(s) labelled ben_oth, inf, mal_oth" in log


def test_out_of_scope_and_paired_photos_follow_the_outcome_rule() -> None:
    """Calibrated hand-made probabilities (each score's class frequencies match it, so the temperature stays
    near 1): out-of-scope images the model calls nv with 0.95 are called benign, and paired photos whose top
    classes disagree are counted as such."""
    labels = ["mel", "nv"]
    kinds = [([0.8, 0.2], 24, 0), ([0.2, 0.8], 6, 0), ([0.7, 0.3], 21, 1), ([0.3, 0.7], 9, 1)]  # p, mel of 30, source
    rows, truth, sources = [], [], []
    for probability, melanomas, source in kinds:
        rows += [probability] * 30
        truth += [0] * melanomas + [1] * (30 - melanomas)
        sources += [source] * 30
    probabilities, y_true, sources = np.array(rows), np.array(truth), np.array(sources)
    logits = {split: (y_true, np.log(probabilities)) for split in ("val", "test")}
    # lesion i: row i of the first kind (source 0) with row i of the fourth (source 1), and the second with the third
    groups = [f"a{i}" for i in range(30)] + [f"b{i}" for i in range(30)] + [f"b{i}" for i in range(30)] + [
        f"a{i}" for i in range(30)]
    strata = {split: SplitStrata(sources, [""] * 120, ["derm", "clin"], ["dermoscopic", "clinical"],
                                 ["3"] * 60 + [""] * 60, groups) for split in logits}
    aside = OutOfScope(np.array([0, 1, 1]), ["inf", "inf", "ben_oth"], np.log(np.array([[0.05, 0.95]] * 3)))
    result = final_metrics(labels, logits, strata, aside)
    assert 0.5 < result["temperature"] < 2.0 and result["referral"]["threshold"] < 0.4
    assert result["out_of_scope"]["clin"]["n"] == 2 and result["out_of_scope"]["derm"]["n"] == 1
    assert result["out_of_scope"]["clin"]["benign"] == 2 and result["out_of_scope"]["clin"]["called_benign"] == 1.0
    assert result["out_of_scope"]["clin"]["per_label"] == {"ben_oth": {"n": 1, "called_benign": 1},
                                                          "inf": {"n": 1, "called_benign": 1}}
    pairs = result["paired_photos"]
    assert pairs["lesions"] == 60 and pairs["same_top_class"] == 0.0
    assert pairs["malignant_referred_by_either"] == 1.0
    assert result["per_skin_tone"]["tones"]["3"]["n"] == 60 and result["per_skin_tone"]["unknown_images"] == 60


def test_the_model_card_reports_tones_out_of_scope_and_pairs(milk_run: Path) -> None:
    from dermtool.export.model_card import render_markdown

    card = model_card_of_run(milk_run)
    assert "clinical close-up photographs" in card["intended_use"]["input"]
    assert "MILK10k" in " ".join(card["limitations"])
    markdown = render_markdown(card)
    assert "Recall per skin-tone class (the dataset's own skin-tone class: 0 very dark .. 5 very light" in markdown
    assert "- milk_clinical: " in markdown and "called benign" in markdown
    assert "Two photos of one lesion (milk_clinical and milk_dermoscopic" in markdown


def test_an_exported_model_benches_one_kind_of_a_shared_folder(milk_run: Path, small_milk: Path,
                                                                tmp_path: Path) -> None:
    from dermtool.bench.runner import BenchOptions, run_bench
    from dermtool.export.metadata import read_metadata
    from dermtool.export.tflite import export_model

    model = tmp_path / "milk.tflite"
    export_model(milk_run, model, mode="float", gate=False, progress=False)
    assert read_metadata(model)["sources"][1] == {
        "name": "milk_clinical", "kind": "clinical", "label_map": {}, "where": {"image_type": "clinical"},
        "out_of_scope": MILK_OUT_OF_SCOPE}
    with pytest.raises(DermtoolError, match="sources milk_clinical, milk_dermoscopic .* --source NAME"):
        run_bench(model, small_milk,
                  BenchOptions(split="test", manifest=milk_run / "split.csv", runs=2, warmup=1, progress=False))
    with pytest.raises(DermtoolError, match="no such source.*milk_dermoscopic, milk_clinical"):
        run_bench(model, small_milk, BenchOptions(split="test", manifest=milk_run / "split.csv", runs=2, warmup=1,
                                                  progress=False, source="milk"))
    result = run_bench(model, small_milk, BenchOptions(split="test", manifest=milk_run / "split.csv", runs=2, warmup=1,
                                                       progress=False, source="milk_clinical"))
    expected = json.loads((milk_run / "metrics.json").read_text())["per_source"]["milk_clinical"]["test"]
    assert result["data"]["source"] == {"name": "milk_clinical", "kind": "clinical"}
    assert result["n"] == expected["n"]
    assert result["balanced_accuracy"] == pytest.approx(expected["balanced_accuracy"], abs=0.05)


def test_evaluate_reads_one_kind_with_source(milk_run: Path, small_milk: Path) -> None:
    from dermtool.evaluate import evaluate

    result = evaluate(milk_run, small_milk, split="test", progress=False, source="milk_dermoscopic")
    expected = json.loads((milk_run / "metrics.json").read_text())["per_source"]["milk_dermoscopic"]["test"]
    assert result["source"] == {"name": "milk_dermoscopic", "kind": "dermoscopic"}
    assert result["n"] == expected["n"]
    assert result["balanced_accuracy"] == pytest.approx(expected["balanced_accuracy"], abs=1e-6)
