"""The fusion model fitted on real PAD-UFES-20 answers: direction of its effects, unknown answers, JSON."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from dermtool import DermtoolError
from dermtool.fusion.model import Fusion, balanced_weights, fit_fusion
from dermtool.fusion.questionnaire import answers_from_row


@pytest.fixture(scope="module")
def pad_rows(pad_ufes_dir: Path) -> list[dict[str, str]]:
    with open(pad_ufes_dir / "metadata.csv", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def pad_answers(pad_rows: list[dict[str, str]]):
    """(labels, class index per image, answers per image) of every PAD-UFES-20 image."""
    labels = sorted({row["dx"] for row in pad_rows})
    y_true = np.array([labels.index(row["dx"]) for row in pad_rows])
    return labels, y_true, [answers_from_row(row) for row in pad_rows]


def _site_frequencies(pad_rows, labels, answers) -> np.ndarray:
    """Per image, the class frequencies of the images of the same body site (real data, not an image model):
    probabilities that differ between images and leave room for the other answers to add something."""
    sites = [item.get("site", "") for item in answers]
    rows = {}
    for site in set(sites):
        counts = np.array([sum(1 for row, other in zip(pad_rows, sites) if other == site and row["dx"] == label)
                           for label in labels], dtype=np.float64) + 1.0
        rows[site] = counts / counts.sum()
    return np.array([rows[site] for site in sites])


@pytest.fixture(scope="module")
def uniform_fusion(pad_answers) -> Fusion:
    """Fitted on uniform image probabilities: the answers alone carry the information."""
    labels, y_true, answers = pad_answers
    uniform = np.full((len(y_true), len(labels)), 1.0 / len(labels))
    return fit_fusion(uniform, answers, y_true, labels, l2=0.001)


@pytest.mark.parametrize("name", ["bleed", "grew", "elevation"])
def test_an_answer_moves_the_probabilities_the_way_the_data_does(uniform_fusion: Fusion, pad_answers,
                                                                  name: str) -> None:
    labels, y_true, answers = pad_answers
    share = {}
    for level in ("yes", "no"):
        chosen = np.array([item.get(name) == level for item in answers])
        share[level] = np.bincount(y_true[chosen], minlength=len(labels)) / chosen.sum()
    ratio = share["yes"] / np.maximum(share["no"], 1e-9)
    most, least = int(np.argmax(ratio)), int(np.argmin(ratio))
    uniform = np.full(len(labels), 1.0 / len(labels))
    yes, no = uniform_fusion.apply_one(uniform, {name: "yes"}), uniform_fusion.apply_one(uniform, {name: "no"})
    assert yes[most] > no[most], (name, labels[most])
    assert yes[least] < no[least], (name, labels[least])


def test_with_every_answer_unknown_the_image_decides(pad_rows, pad_answers) -> None:
    labels, y_true, answers = pad_answers
    image = _site_frequencies(pad_rows, labels, answers)
    fusion = fit_fusion(image, answers, y_true, labels, sample_weight=balanced_weights(y_true, np.zeros(len(y_true))),
                        l2=0.01)
    assert fusion.image_scale > 0 and fusion.weights
    unknown = fusion.apply(image, [{}] * len(image))
    assert np.array_equal(unknown.argmax(axis=1), image.argmax(axis=1))
    assert np.allclose(unknown.sum(axis=1), 1.0)
    answered = fusion.apply(image, answers)
    assert not np.allclose(answered, unknown)  # the answers do change the probabilities


def test_the_json_round_trip_is_exact(uniform_fusion: Fusion) -> None:
    item = json.loads(json.dumps(uniform_fusion.to_dict()))
    again = Fusion.from_dict(item, "test")
    assert again.to_dict() == item
    assert Fusion.from_dict(json.loads(json.dumps(again.to_dict()))).to_dict() == item
    probabilities = np.full((2, len(again.labels)), 1.0 / len(again.labels))
    answers = [{"bleed": "yes", "age": "60-74"}, {}]
    assert np.array_equal(again.apply(probabilities, answers),
                          Fusion.from_dict(again.to_dict()).apply(probabilities, answers))


def _broken(item: dict, change) -> dict:
    copy = json.loads(json.dumps(item))
    change(copy)
    return copy


@pytest.mark.parametrize("change, expected", [
    (lambda item: item["weights"]["bleed"].__setitem__("yes", [math.nan] * len(item["labels"])), "finite numbers"),
    (lambda item: item["weights"]["bleed"].__setitem__("yes", [0.0]), "finite numbers"),
    (lambda item: item["weights"].__setitem__("colour", {"brown": [0.0] * len(item["labels"])}), "unknown question"),
    (lambda item: item["weights"]["bleed"].__setitem__("maybe", [0.0] * len(item["labels"])), "'maybe'"),
    (lambda item: item.__setitem__("image_scale", math.nan), "image_scale"),
    (lambda item: item.__setitem__("format", "other/1"), "not a dermtool fusion"),
    (lambda item: item.__setitem__("labels", []), "labels"),
])
def test_from_dict_refuses_a_broken_fusion_in_one_line(uniform_fusion: Fusion, change, expected: str) -> None:
    with pytest.raises(DermtoolError) as caught:
        Fusion.from_dict(_broken(uniform_fusion.to_dict(), change), "model.tflite (dermtool.json fusion)")
    message = str(caught.value)
    assert "\n" not in message and expected in message and message.startswith("model.tflite")
