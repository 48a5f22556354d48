"""dermtool.train.losses: cross-entropy and focal loss with label smoothing, against reference values."""

from __future__ import annotations

import numpy as np
import pytest

from dermtool.train.losses import crossentropy, focal, make_loss, smooth_labels

LOGITS = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3], [-3.0, 4.0, 0.0]], dtype=np.float32)
ONE_HOT = np.eye(3, dtype=np.float32)[[0, 2, 1]]


def reference_crossentropy(one_hot: np.ndarray, logits: np.ndarray, smoothing: float) -> np.ndarray:
    targets = one_hot * (1 - smoothing) + smoothing / one_hot.shape[1]
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -(targets * log_p).sum(axis=1)


def test_smoothing_mixes_with_the_uniform_distribution() -> None:
    smoothed = np.asarray(smooth_labels(ONE_HOT, 0.3))
    np.testing.assert_allclose(smoothed.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(smoothed[0], [0.8, 0.1, 0.1], rtol=1e-6)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_crossentropy_matches_numpy_and_keras(smoothing: float) -> None:
    import tf_keras as keras

    ours = np.asarray(crossentropy(ONE_HOT, LOGITS, smoothing))
    np.testing.assert_allclose(ours, reference_crossentropy(ONE_HOT, LOGITS, smoothing), rtol=1e-5)
    keras_loss = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=smoothing,
                                                      reduction="none")(ONE_HOT, LOGITS)
    np.testing.assert_allclose(ours, np.asarray(keras_loss), rtol=1e-5)


def test_focal_with_gamma_zero_is_crossentropy() -> None:
    np.testing.assert_allclose(np.asarray(focal(ONE_HOT, LOGITS, gamma=0.0, label_smoothing=0.05)),
                               np.asarray(crossentropy(ONE_HOT, LOGITS, 0.05)), rtol=1e-5)


def test_focal_down_weights_easy_examples() -> None:
    easy = np.array([[6.0, 0.0, 0.0]], dtype=np.float32)
    hard = np.array([[0.0, 1.0, 0.0]], dtype=np.float32)
    target = np.array([[1.0, 0.0, 0.0]], dtype=np.float32)
    ratio_easy = float(focal(target, easy, gamma=2.0)[0] / crossentropy(target, easy)[0])
    ratio_hard = float(focal(target, hard, gamma=2.0)[0] / crossentropy(target, hard)[0])
    assert ratio_easy < 0.01 < ratio_hard
    p = np.exp(6.0) / (np.exp(6.0) + 2.0)
    assert float(focal(target, easy, gamma=2.0)[0]) == pytest.approx(-(1 - p) ** 2 * np.log(p), rel=1e-4)


def test_focal_alpha_weights_each_class() -> None:
    alpha = [2.0, 1.0, 0.5]
    plain = np.asarray(focal(ONE_HOT, LOGITS, gamma=2.0))
    weighted = np.asarray(focal(ONE_HOT, LOGITS, gamma=2.0, alpha=alpha))
    np.testing.assert_allclose(weighted, plain * np.array([2.0, 0.5, 1.0]), rtol=1e-5)


def test_make_loss_by_name() -> None:
    np.testing.assert_allclose(np.asarray(make_loss("crossentropy", 0.1)(ONE_HOT, LOGITS)),
                               reference_crossentropy(ONE_HOT, LOGITS, 0.1), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(make_loss("focal", 0.0, focal_gamma=0.0)(ONE_HOT, LOGITS)),
                               reference_crossentropy(ONE_HOT, LOGITS, 0.0), rtol=1e-5)
    with pytest.raises(ValueError):
        make_loss("hinge", 0.0)
