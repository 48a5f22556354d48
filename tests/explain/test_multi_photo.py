"""The combination rules of several photos of one lesion (dermtool.prediction.multi_photo)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dermtool import DermtoolError
from dermtool.prediction.multi_photo import (RULES, MultiPhotoRule, combine_photos, combine_rows, default_rule,
                                          read_run_rule)

LABELS = ["akiec", "bcc", "mel", "nv"]
REFERRAL = ("mel", "bcc", "akiec")


def rule(name: str) -> MultiPhotoRule:
    return MultiPhotoRule(name, referral_classes=REFERRAL)


def test_one_photo_is_its_own_answer_under_every_rule() -> None:
    row = np.array([[0.1, 0.2, 0.3, 0.4]])
    for name in RULES:
        np.testing.assert_allclose(combine_rows(row, LABELS, rule(name)), row[0], atol=1e-12)


def test_the_rules_on_two_photos() -> None:
    rows = np.array([[0.0, 0.1, 0.1, 0.8], [0.2, 0.2, 0.5, 0.1]])
    np.testing.assert_allclose(combine_rows(rows, LABELS, rule("mean")), [0.1, 0.15, 0.3, 0.45])
    geometric = combine_rows(rows, LABELS, rule("geometric_mean"))
    expected = np.sqrt(np.maximum(rows[0], 1e-4) * np.maximum(rows[1], 1e-4))
    np.testing.assert_allclose(geometric, expected / expected.sum())
    assert geometric.sum() == pytest.approx(1.0)
    assert geometric[0] < 0.02  # a class one photo rules out (0.0, floored) is pulled down hard
    np.testing.assert_allclose(combine_rows(rows, LABELS, rule("max_referral")), rows[1])  # 0.9 vs 0.2


def test_combine_photos_takes_maps_in_any_key_order_and_keeps_the_first_maps_order() -> None:
    maps = [{"nv": 0.8, "mel": 0.1, "bcc": 0.1, "akiec": 0.0}, {"akiec": 0.2, "bcc": 0.2, "mel": 0.5, "nv": 0.1}]
    combined = combine_photos(maps, {"rule": "mean"})
    assert list(combined) == ["nv", "mel", "bcc", "akiec"]
    assert combined == pytest.approx({"nv": 0.45, "mel": 0.3, "bcc": 0.15, "akiec": 0.1})


def test_the_rule_travels_as_json_and_bad_rules_are_refused_in_words() -> None:
    item = {"rule": "geometric_mean", "probability_floor": 0.001, "referral_classes": ["mel"], "chosen_on": "val"}
    assert MultiPhotoRule.from_dict(json.loads(json.dumps(item))).to_dict() == item
    assert MultiPhotoRule.from_dict("mean").rule == "mean"
    with pytest.raises(DermtoolError, match="unknown multi-photo rule 'median'"):
        MultiPhotoRule.from_dict({"rule": "median"})
    with pytest.raises(DermtoolError, match="needs referral_classes"):
        MultiPhotoRule.from_dict({"rule": "max_referral"})
    with pytest.raises(DermtoolError, match=r"probability_floor must be a number in \(0, 1\)"):
        MultiPhotoRule.from_dict({"rule": "mean", "probability_floor": float("nan")})
    with pytest.raises(DermtoolError, match="must come from one model"):
        combine_photos([{"mel": 1.0}, {"nv": 1.0}], "mean")
    with pytest.raises(DermtoolError, match="at least one photo"):
        combine_photos([], "mean")
    assert default_rule(REFERRAL).referral_classes == REFERRAL


def test_a_run_file_is_read_and_checked(tmp_path: Path) -> None:
    assert read_run_rule(tmp_path) is None
    (tmp_path / "multi_photo.json").write_text(json.dumps({"rule": "max_referral", "referral_classes": ["mel"]}))
    assert read_run_rule(tmp_path)["rule"] == "max_referral"
    (tmp_path / "multi_photo.json").write_text("{not json")
    with pytest.raises(DermtoolError, match="not a readable JSON file"):
        read_run_rule(tmp_path)


def test_export_takes_the_runs_rule_or_the_default_with_the_models_referral_classes(tmp_path: Path) -> None:
    from dermtool.prediction.multi_photo import rule_for_export

    default = rule_for_export(tmp_path, ["mel", "bcc"])
    assert default["rule"] == "mean" and default["referral_classes"] == ["mel", "bcc"]
    assert default["chosen_on"].startswith("default")
    (tmp_path / "multi_photo.json").write_text(json.dumps({"rule": "geometric_mean", "chosen_on": {"split": "val"}}))
    measured = rule_for_export(tmp_path, ["mel"])
    assert measured == {"rule": "geometric_mean", "probability_floor": 1e-4, "referral_classes": ["mel"],
                        "chosen_on": {"split": "val"}}
