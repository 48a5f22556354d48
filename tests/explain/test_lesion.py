"""Several photos of one lesion: ``predict_lesion`` (Python API) and ``dermtool predict --lesion / --lesions``,
on the tiny run's real int8 export (which carries the multi-photo rule in its dermtool.json)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from dermtool import DermtoolError
from dermtool.cli.main import cli
from dermtool.prediction.lesion import model_rule, predict_lesion
from dermtool.prediction.multi_photo import MultiPhotoRule, combine_photos
from dermtool.prediction.predictor import Predictor
from tests.explain.contract import check_contract


@pytest.fixture(scope="module")
def int8_predictor(exported_models: dict) -> Predictor:
    """The int8 export (uint8 outputs: a photo's probabilities sum to 1 within a few 1/256 steps)."""
    return Predictor(exported_models["int8"])


@pytest.fixture(scope="module")
def float_predictor(exported_models: dict) -> Predictor:
    return Predictor(exported_models["float"])


@pytest.mark.parametrize("mode", ["float", "int8"])
def test_the_export_carries_the_rule_and_the_lesion_answer_is_the_rule_over_its_photos(
        mode: str, float_predictor: Predictor, int8_predictor: Predictor, lesion_paths: list[Path]) -> None:
    predictor = {"float": float_predictor, "int8": int8_predictor}[mode]
    rule = model_rule(predictor)
    metadata = predictor._shared.backend.metadata
    assert metadata["multi_photo"]["rule"] == rule.rule
    assert list(rule.referral_classes) == list(predictor.thresholds.malignant_classes)
    photos = [lesion_paths[0], lesion_paths[9]]
    answer = predict_lesion(predictor, photos, lesion="L1", top_k=2)
    if mode == "float":
        lesion_fields = {"lesion", "photos", "combined", "left_out", "multi_photo"}  # added to the contract's keys
        assert lesion_fields <= set(answer)
        check_contract({key: value for key, value in answer.items() if key not in lesion_fields}, predictor.labels, 2)
    assert answer["image"] == answer["lesion"] == "L1" and answer["left_out"] == []
    assert answer["combined"] == [str(path) for path in photos] and answer["multi_photo"]["photos_combined"] == 2
    alone = [result["probabilities"] for result in answer["photos"]]
    expected = combine_photos(alone, rule)
    for label in predictor.labels:
        assert answer["probabilities"][label] == pytest.approx(expected[label], abs=1e-6)
    for name in ("geometric_mean", "max_referral"):  # another rule: other numbers, same photos
        other = predict_lesion(predictor, photos, rule=name)
        assert other["multi_photo"]["rule"] == name
        assert other["probabilities"] == pytest.approx(combine_photos(alone, {**rule.to_dict(), "rule": name}),
                                                       abs=1e-6)
    single = predict_lesion(predictor, photos[0])
    assert single["probabilities"] == answer["photos"][0]["probabilities"]  # one photo is its own answer


def test_unreadable_photos_are_left_out_and_a_lesion_with_none_readable_has_no_answer(
        int8_predictor: Predictor, lesion_paths: list[Path], tmp_path: Path) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    answer = predict_lesion(int8_predictor, [lesion_paths[0], broken])
    assert answer["combined"] == [str(lesion_paths[0])]
    assert [(item["image"], item["reason"]) for item in answer["left_out"]] == [(str(broken), "error")]
    assert answer["probabilities"] == answer["photos"][0]["probabilities"]
    nothing = predict_lesion(int8_predictor, [broken])
    assert "error" in nothing and "outcome" not in nothing and nothing["left_out"][0]["reason"] == "error"
    with pytest.raises(DermtoolError, match="no photos"):
        predict_lesion(int8_predictor, [])


def test_predict_lesion_and_lesions_on_the_command_line(exported_models: dict, lesion_paths: list[Path],
                                                        tmp_path: Path) -> None:
    model = str(tmp_path / "lesion_int8.tflite")  # a copy: the command line's model cache keys on the path, and
    shutil.copy(exported_models["int8"], model)     # other tests load the shared export with other limits set
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    photos = [str(lesion_paths[0]), str(lesion_paths[1]), str(broken)]
    runner = CliRunner()
    result = runner.invoke(cli, ["predict", *photos, "--lesion", "--model", model, "--json", str(tmp_path / "one.json")],
                           catch_exceptions=False)
    assert result.exit_code == 1, result.output  # a photo could not be read: exit 1 after the answer
    [lesion] = json.loads((tmp_path / "one.json").read_text())
    assert lesion["lesion"] == "lesion" and len(lesion["photos"]) == 3 and lesion["left_out"][0]["image"] == str(broken)
    assert "Photos combined: 2 of 3" in result.output and f"Left out: {broken}" in result.output

    grouping = tmp_path / "lesions.csv"
    grouping.write_text(f"image,lesion\n{lesion_paths[0].name},A\n{lesion_paths[1].name},A\n{lesion_paths[2].name},B\n")
    images = [str(path) for path in lesion_paths[:4]]
    result = runner.invoke(cli, ["predict", *images, "--lesions", str(grouping), "--model", model, "--json", "-"],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    answers = json.loads(result.stdout)
    assert [item["lesion"] for item in answers] == ["A", "B", images[3]]  # an image the file does not name: its own
    assert [len(item["photos"]) for item in answers] == [2, 1, 1]
    grouping_json = tmp_path / "lesions.json"
    grouping_json.write_text(json.dumps({"A": [images[0], images[1]]}))
    again = runner.invoke(cli, ["predict", *images[:2], "--lesions", str(grouping_json), "--model", model, "--json", "-"],
                          catch_exceptions=False)
    assert json.loads(again.stdout)[0]["probabilities"] == answers[0]["probabilities"]

    twice = tmp_path / "twice.csv"
    twice.write_text(f"image,lesion\n{lesion_paths[0].name},A\n{lesion_paths[0].name},B\n")
    refused = runner.invoke(cli, ["predict", images[0], "--lesions", str(twice), "--model", model])
    assert refused.exit_code == 2 and "is in two lesions" in refused.output
    both = runner.invoke(cli, ["predict", images[0], "--lesion", "--lesions", str(grouping), "--model", model])
    assert both.exit_code == 2 and "not both" in both.output
    columns = tmp_path / "columns.csv"
    columns.write_text("photo,who\nx.jpg,A\n")
    unclear = runner.invoke(cli, ["predict", images[0], "--lesions", str(columns), "--model", model])
    assert unclear.exit_code == 2 and "needs an image column" in unclear.output


def test_a_tampered_rule_in_the_metadata_is_refused_in_one_line() -> None:
    from dermtool.export.metadata_check import check_metadata

    labels = ["mel", "nv"]
    check_metadata({"labels": labels, "multi_photo": {"rule": "mean", "referral_classes": ["mel"]}})
    with pytest.raises(DermtoolError, match="multi_photo: unknown multi-photo rule 'vote'"):
        check_metadata({"labels": labels, "multi_photo": {"rule": "vote"}})
    with pytest.raises(DermtoolError, match="multi_photo.referral_classes names 'scc'"):
        check_metadata({"labels": labels, "multi_photo": {"rule": "mean", "referral_classes": ["scc"]}})
    assert MultiPhotoRule.from_dict({"rule": "mean", "referral_classes": ["mel"]}).referral_classes == ("mel",)
    assert np.isclose(sum(combine_photos([{"mel": 0.2, "nv": 0.8}, {"mel": 0.6, "nv": 0.4}], "geometric_mean").values()), 1)


def test_photos_the_lesion_check_rejects_are_left_out_and_listed(exported_with_lesion_check: dict,
                                                                 lesion_paths: list[Path]) -> None:
    """A real model with the lesion check as its second output: a plain blue square among a lesion's photos is
    left out (reason not_a_lesion) and the lesion's answer is its real photos'. The threshold is set between
    the two photos' P(not_a_lesion), so the tiny model's weak check still splits them."""
    blue = np.zeros((240, 320, 3), np.uint8)
    blue[..., 2] = 200
    predictor = Predictor(exported_with_lesion_check["float"])
    lesion_score, blue_score = (result["lesion_check"]["not_a_lesion"]
                                for result in predictor.predict([lesion_paths[0], blue]))
    assert blue_score > lesion_score, (blue_score, lesion_score)
    strict = predictor.with_options(lesion_check_threshold=(lesion_score + blue_score) / 2)
    answer = predict_lesion(strict, [lesion_paths[0], blue, lesion_paths[1]], lesion="L2")
    assert [item["reason"] for item in answer["left_out"]] == ["not_a_lesion"]
    assert answer["left_out"][0]["image"] == "<upload>" and answer["multi_photo"]["photos_combined"] == 2
    assert answer["outcome"] != "not_a_lesion"
    kept = [answer["photos"][0]["probabilities"], answer["photos"][2]["probabilities"]]
    assert answer["probabilities"] == pytest.approx(combine_photos(kept, model_rule(strict)), abs=1e-6)
    assert answer["lesion_check"]["not_a_lesion"] == max(answer["photos"][index]["lesion_check"]["not_a_lesion"]
                                                         for index in (0, 2))
    only_blue = predict_lesion(strict, [blue])
    assert only_blue["outcome"] == "not_a_lesion" and only_blue["combined"] == []
