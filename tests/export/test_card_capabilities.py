"""The model card leads with what the model can and cannot do, in plain words and measured figures per source
and kind of photo, taken from the run's metrics.json, the export's gate and the model's dermtool.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dermtool.export.card_capabilities import EMBEDDING_GUIDE, _percent, build_capabilities, render_capabilities
from dermtool.export.metadata import read_metadata
from dermtool.run import RunFolder


def _card(model: Path) -> tuple[dict, str]:
    from dermtool.export.model_card import card_paths

    json_path, markdown_path = card_paths(model)
    return json.loads(json_path.read_text()), markdown_path.read_text()


def test_an_export_without_a_lesion_check_says_what_it_cannot_do(exported_results: dict, tiny_run: Path) -> None:
    result = exported_results["int8"]
    card, markdown = _card(result.path)
    section = card["can_and_cannot"]
    assert "not a medical device" in section["status"] and "decision-support research tool" in section["status"]
    cannot = " ".join(section["cannot"])
    assert "no lesion check" in cannot and "Diagnose" in cannot
    can = " ".join(section["can"])
    referral = RunFolder(tiny_run).metrics["referral"]
    if referral and referral.get("test", {}).get("sensitivity") is not None:
        assert f"refers {referral['test']['sensitivity']:.0%} of the malignant lesions" in can
    assert f"{result.gate.top1_agreement:.0%} of validation images" in can  # the export's own measurement
    assert "several photos of one lesion" in can and "not measured on this model" in can  # the default rule
    assert read_metadata(result.path)["multi_photo"] == section["multi_photo"]
    assert f"[`{EMBEDDING_GUIDE}`]({EMBEDDING_GUIDE})" in markdown
    assert (Path(__file__).resolve().parents[2] / EMBEDDING_GUIDE).is_file()


def test_an_export_with_a_lesion_check_shows_its_figures(exported_with_lesion_check: dict) -> None:
    model = exported_with_lesion_check["int8"]
    card, markdown = _card(model)
    check = read_metadata(model)["lesion_check"]
    section = card["can_and_cannot"]
    assert section["lesion_check"] == check
    sentence = next(item for item in section["can"] if item.startswith("Turn away photos that show no skin lesion"))
    assert f"P(not_a_lesion) >= {check['threshold']:.2f}" in sentence
    measured = check["figures"].get("refitted_validation") or {}
    for name, value in (measured.get("false_rejection") or {}).items():
        assert f"{_percent(value)} of {name}'s real lesion photos" in sentence
    assert not any("no lesion check" in item for item in section["cannot"])
    crops = measured.get("skin_crops_caught") or {}
    if crops and min(crops.values()) < 0.95:  # what it misses is said under "cannot"
        assert any(f"catches only {_percent(min(crops.values()))}" in item for item in section["cannot"])
    assert sentence in markdown


def test_per_source_figures_in_plain_words(two_source_run: Path) -> None:
    """A HAM10000 + phone-photo run: one sentence and one table row per source, from its metrics.json, the
    measured rule of several photos from a multi_photo block, and the phone photos' caveat."""
    run = RunFolder(two_source_run)
    metrics = run.metrics
    multi_photo = {"rule": "mean", "referral_classes": list(metrics["referral"]["classes"]),
                   "chosen_on": {"collection": "pad", "split": "val"},
                   "figures": {"pad": {"test": {"lesions": 4,
                                                "combined": {"balanced_accuracy": 0.5, "referral_sensitivity": 1.0,
                                                             "referral_specificity": 0.5},
                                                "alone": {"every photo": {"balanced_accuracy": 0.25,
                                                                          "referral_sensitivity": 0.5,
                                                                          "referral_specificity": 0.5}}}}}}
    section = build_capabilities(labels=run.labels, run_metrics=metrics, fusion_report=None,
                                 model_metadata={"multi_photo": multi_photo}, gate=None, mode="int8",
                                 kinds={"ham": "dermoscopic", "pad": "smartphone"})
    assert [row["source"] for row in section["per_source"]] == ["ham", "pad"]
    for row in section["per_source"]:
        test = metrics["per_source"][row["source"]]["test"]
        point = metrics["referral"]["per_source"][row["source"]]["test"]
        assert row["balanced_accuracy"] == test["balanced_accuracy"] and row["test_images"] == test["n"]
        assert row["referral_specificity"] == point["specificity"]
    phone = next(item for item in section["can"] if item.startswith("Phone photos"))
    pad = section["per_source"][1]
    assert f"pad ({pad['test_images']} test images)" in phone
    assert f"clears {pad['referral_specificity']:.0%} of the benign ones" in phone
    several = next(item for item in section["can"] if item.startswith("Give one answer from several photos"))
    assert "balanced accuracy 0.50" in several and "every photo alone 0.25, 50%/50%" in several
    assert any("one Brazilian programme" in item for item in section["cannot"])
    markdown = "\n".join(render_capabilities(section))
    assert markdown.startswith("## What this model can and cannot do")
    assert "| smartphone | pad |" in markdown


@pytest.mark.parametrize("missing", ["referral", "per_source"])
def test_a_missing_figure_is_left_out_not_invented(two_source_run: Path, missing: str) -> None:
    metrics = {key: value for key, value in RunFolder(two_source_run).metrics.items() if key != missing}
    section = build_capabilities(labels=RunFolder(two_source_run).labels, run_metrics=metrics, fusion_report=None,
                                 model_metadata=None, gate=None, mode="float", kinds={"all": "dermoscopic"})
    can = " ".join(section["can"])
    assert section["status"] and section["cannot"] and "n/a" not in can
    if missing == "referral":
        assert "Suggest a referral" not in can and "its referral was not measured" in can
    else:  # a single-source view: one pooled row of the test split
        assert [row["source"] for row in section["per_source"]] == ["all"]
        assert section["per_source"][0]["test_images"] == metrics["test"]["n"]


def test_the_lesion_checks_test_figures_through_mediapipe_are_preferred(two_source_run: Path) -> None:
    """A lesion check whose figures carry the test splits measured through MediaPipe (``bench_lesion_check
    --record``, as the recommended model's do): the card quotes those for an int8 export, ISIC 2017 named as
    unseen clinics, and says under "cannot" which skin crops it misses most."""
    clients = {"mediapipe": {"false_rejection": {"ham": 0.003, "unseen": 0.055}, "skin_crops_caught": {"ham": 0.91},
                             "generated_caught_overall": 0.993},
               "litert": {"false_rejection": {"ham": 0.004, "unseen": 0.059}, "skin_crops_caught": {"ham": 0.92},
                          "generated_caught_overall": 0.993}}
    check = {"head_name": "lesion_check", "categories": ["lesion", "not_a_lesion"], "threshold": 0.675,
             "figures": {"refitted_validation": {"false_rejection": {"ham": 0.5}},
                         "test_int8": {"unseen": "../shared/data/isic2017", "clients": clients}}}
    run = RunFolder(two_source_run)
    section = build_capabilities(labels=run.labels, run_metrics=run.metrics, fusion_report=None,
                                 model_metadata={"lesion_check": check}, gate=None, mode="int8",
                                 kinds={"ham": "dermoscopic", "pad": "smartphone"})
    sentence = next(item for item in section["can"] if item.startswith("Turn away photos"))
    assert "run through MediaPipe as a phone runs it" in sentence and "P(not_a_lesion) >= 0.68" in sentence
    assert "0.3% of ham's real lesion photos" in sentence and "50%" not in sentence
    assert "5.5% of isic2017's real lesion photos (clinics it never saw)" in sentence
    assert "99% of generated non-lesion images" in sentence
    assert any("catches only 91% of ham's lesion-free skin crops (test split)" in item for item in section["cannot"])
