"""dermtool.train.schedule: warm-up + cosine learning rate and the AdamW optimiser."""

from __future__ import annotations

import numpy as np
import pytest

from dermtool.train.schedule import (build_optimizer, current_learning_rate, make_optimizer, make_warmup_cosine,
                                     warmup_cosine_value)


def test_warmup_then_cosine_to_zero() -> None:
    peak, total, warmup = 1e-3, 100, 10
    values = [warmup_cosine_value(step, peak, total, warmup) for step in range(total + 1)]
    assert values[0] == pytest.approx(peak / warmup)
    assert all(a < b for a, b in zip(values[:warmup], values[1:warmup]))  # rising during warm-up
    assert max(values) == pytest.approx(peak)
    assert all(a >= b for a, b in zip(values[warmup:], values[warmup + 1:]))  # then decaying
    assert values[total] == pytest.approx(0.0, abs=1e-12)
    assert values[(total + warmup) // 2] == pytest.approx(peak / 2, rel=1e-6)


def test_no_warmup_starts_at_the_peak() -> None:
    assert warmup_cosine_value(0, 0.01, 50, 0) == pytest.approx(0.01)


def test_the_keras_schedule_matches_the_python_one() -> None:
    schedule = make_warmup_cosine(3e-4, 200, 20)
    for step in (0, 5, 19, 20, 21, 100, 199, 200, 250):
        assert float(schedule(step)) == pytest.approx(warmup_cosine_value(step, 3e-4, 200, 20), rel=1e-5, abs=1e-9)
    assert schedule.get_config() == {"peak": 3e-4, "total_steps": 200, "warmup_steps": 20}


def test_adamw_decays_weights_but_not_biases() -> None:
    import tensorflow as tf

    kernel = tf.Variable(np.ones(3, dtype=np.float32), name="kernel")
    bias = tf.Variable(np.ones(3, dtype=np.float32), name="bias")
    optimizer = make_optimizer(0.1, weight_decay=0.5, mixed_precision=False)
    build_optimizer(optimizer, [kernel, bias])
    assert current_learning_rate(optimizer) == pytest.approx(0.1)
    optimizer.apply_gradients([(tf.zeros(3), kernel), (tf.zeros(3), bias)])
    np.testing.assert_allclose(kernel.numpy(), 1 - 0.1 * 0.5, rtol=1e-6)  # decoupled decay only
    np.testing.assert_allclose(bias.numpy(), 1.0)


def test_mixed_precision_wraps_in_a_loss_scale_optimizer() -> None:
    optimizer = make_optimizer(1e-3, weight_decay=0.0, mixed_precision=True)
    assert hasattr(optimizer, "get_scaled_loss") and hasattr(optimizer, "inner_optimizer")
