"""Fitting the lesion check: weights, the logistic fit, the leave-one-source-out choice, and the skin crops."""

from __future__ import annotations

import numpy as np
import pytest

from dermtool.prediction.lesion_check_fit import Features, FitSettings, choose, fit_check, fit_logistic, sample_weights
from dermtool.prediction.skin_crops import corner_crop, mask_crop


def test_sample_weights_give_lesions_and_negatives_half_each_and_sources_equal_shares() -> None:
    groups = ["lesion:a"] * 6 + ["lesion:b"] * 2 + ["crop:a"] * 3 + ["crop:b"] + ["generated"] * 4
    weights = sample_weights(groups)
    share = lambda prefix: weights[[g.startswith(prefix) for g in groups]].sum()  # noqa: E731
    assert share("lesion:") == pytest.approx(0.5) and share("lesion:a") == pytest.approx(share("lesion:b"))
    assert share("generated") == pytest.approx(0.25) and share("crop:") == pytest.approx(0.25)


def _synthetic(rng: np.random.Generator, sources: tuple[str, ...], count: int) -> Features:
    parts = []
    for position, source in enumerate(sources):
        shift = np.zeros(6)
        shift[position + 1] = 1.0  # each source its own "camera" direction, lesions apart on axis 0
        parts.append(Features(rng.normal(size=(count, 6)) + shift + [2, 0, 0, 0, 0, 0],
                              [f"lesion:{source}"] * count, [source] * count))
        parts.append(Features(rng.normal(size=(count, 6)) + shift - [2, 0, 0, 0, 0, 0],
                              [f"crop:{source}"] * count, [source] * count))
    parts.append(Features(rng.normal(size=(count, 6)) - [3, 0, 0, 0, 0, 0], ["generated"] * count, ["noise"] * count))
    return Features.concatenate(parts)


def test_the_logistic_fit_separates_and_the_choice_holds_on_left_out_sources() -> None:
    rng = np.random.default_rng(0)
    train, validation = _synthetic(rng, ("a", "b", "c"), 200), _synthetic(rng, ("a", "b", "c"), 100)
    w, b = fit_logistic(train.values, train.not_a_lesion, sample_weights(train.groups), 1e-3)
    accuracy = np.mean(((train.values @ w + b) > 0) == train.not_a_lesion)
    assert accuracy > 0.95
    weights, bias = fit_check(train, 1e-3)  # the standardisation folded into raw-feature weights
    assert np.mean(((validation.values @ weights + bias) > 0) == validation.not_a_lesion) > 0.95
    choice = choose(train, validation, FitSettings(l2_strengths=(1e-3, 1e-1), target_false_rejection=0.05))
    assert set(choice.leave_one_source_out) == {"a", "b", "c"}
    for figures in choice.leave_one_source_out.values():
        assert figures["false_rejection"] <= 0.05 and figures["skin_crops_caught"] > 0.8
        assert figures["generated_caught"] > 0.9


def test_mask_crops_hold_no_lesion_pixel_and_corner_crops_sit_in_a_corner() -> None:
    rng = np.random.default_rng(0)
    image = np.zeros((150, 200, 3), np.uint8)
    image[..., 0] = np.arange(200)[None, :]
    image[..., 1] = np.arange(150)[:, None]
    mask = np.zeros((150, 200), bool)
    mask[40:110, 60:140] = True
    for _ in range(10):
        crop = mask_crop(image, mask, rng)
        assert crop is not None and crop.shape[0] == crop.shape[1] >= 37
        left, top = int(crop[0, 0, 0]), int(crop[0, 0, 1])
        side = crop.shape[0]
        assert not mask[top:top + side, left:left + side].any()
    assert mask_crop(image, np.ones((150, 200), bool), rng) is None
    crop = corner_crop(image, rng)
    assert crop.shape == (45, 45, 3) and int(crop[0, 0, 0]) in (0, 155) and int(crop[0, 0, 1]) in (0, 105)
