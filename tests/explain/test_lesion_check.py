"""The lesion check's head: its numbers, its file, and the same head in Keras, in LiteRT and through MediaPipe."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dermtool import DermtoolError
from dermtool.prediction.lesion_check import (CATEGORIES, HEAD_NAME, LesionCheck, attach_head, metadata_block,
                                           read_run_check, sigmoid, threshold_from_metadata)


def _check(count: int = 5, threshold: float = 0.5) -> LesionCheck:
    rng = np.random.default_rng(0)
    return LesionCheck(weights=rng.normal(size=count), bias=0.3, threshold=threshold)


def test_the_dense_pair_is_the_logistic_unit() -> None:
    check = _check()
    features = np.random.default_rng(1).normal(size=(7, 5))
    kernel, bias = check.dense_weights()
    logits = features @ kernel + bias
    softmax = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert np.allclose(softmax[:, 1], check.not_a_lesion_probability(features), atol=1e-6)
    assert np.allclose(sigmoid(np.array([-800.0, 0.0, 800.0])), [0.0, 0.5, 1.0])


def test_the_file_round_trips_and_bad_numbers_are_refused() -> None:
    check = _check()
    again = LesionCheck.from_dict(json.loads(json.dumps(check.to_dict())))
    assert np.array_equal(again.weights, check.weights) and again.threshold == check.threshold
    for field, value in (("threshold", float("nan")), ("threshold", 0.0), ("threshold", 2.0),
                         ("weights", [1.0, float("inf")]), ("format_version", 9), ("categories", ["a", "b"])):
        with pytest.raises(DermtoolError, match=field.split("_")[0]):
            LesionCheck.from_dict({**check.to_dict(), field: value}, "x")
    with pytest.raises(DermtoolError, match="pooled features"):
        check.not_a_lesion_probability(np.zeros((2, 4)))


def test_metadata_block_says_what_clients_read() -> None:
    block = metadata_block(_check(threshold=0.7))
    assert block["head_name"] == HEAD_NAME == "lesion_check" and block["categories"] == ["lesion", "not_a_lesion"]
    assert list(CATEGORIES) == block["categories"] and block["output_index"] == 1
    assert threshold_from_metadata({"lesion_check": block}) == 0.7
    assert threshold_from_metadata({}) is None
    with pytest.raises(DermtoolError, match="threshold"):
        threshold_from_metadata({"lesion_check": {**block, "threshold": "high"}})


def test_the_keras_head_on_the_run_model_matches_the_fitted_numbers(lesion_check_run: Path) -> None:
    from dermtool.data.preprocess import normalize
    from dermtool.prediction.lesion_check import features_and_logits_model
    from dermtool.run import RunFolder

    run = RunFolder(lesion_check_run)
    check = read_run_check(run)
    assert check is not None and 0 < check.threshold < 1
    assert set(check.figures) == {"leave_one_source_out_validation", "refitted_validation"}
    model = run.load_model()
    images = np.random.default_rng(2).integers(0, 256, (3, run.input_spec.image_size, run.input_spec.image_size, 3),
                                                 dtype=np.uint8)
    batch = normalize(images, run.input_spec)
    probabilities, head = attach_head(model, check)(batch, training=False)
    _, features = features_and_logits_model(model)(batch, training=False)
    assert np.allclose(np.asarray(head)[:, 1], check.not_a_lesion_probability(np.asarray(features)), atol=1e-5)
    assert np.allclose(np.asarray(probabilities), np.asarray(model(batch, training=False)), atol=1e-6)
