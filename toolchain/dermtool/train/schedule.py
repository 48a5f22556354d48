"""Optimisers and learning-rate schedules of the two training phases.

- Head phase (frozen backbone): AdamW at a constant ``train.head_learning_rate``.
- Fine-tuning phase: AdamW with a linear warm-up over ``warmup_fraction`` of the phase's steps, then a
  cosine decay to zero at the last step (:class:`WarmupCosine`).

AdamW's weight decay is decoupled from the gradient (Loshchilov and Hutter): every step multiplies each
weight by ``1 - learning_rate * weight_decay``; biases and BatchNorm parameters are not decayed. Under
mixed precision the optimiser is wrapped in a ``LossScaleOptimizer``. Each phase gets its own optimiser
(the trainable variables differ), which also keeps a checkpoint's optimiser state tied to its phase.
"""

from __future__ import annotations

import math
from typing import Any


def warmup_cosine_value(step: float, peak: float, total_steps: int, warmup_steps: int) -> float:
    """The schedule in plain Python (for tests and logs): the value at optimiser step ``step`` (0-based)."""
    if warmup_steps > 0 and step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, max(0.0, (step - warmup_steps) / decay_steps))
    return peak * 0.5 * (1.0 + math.cos(math.pi * progress))


def _schedule_base():
    import tf_keras as keras

    return keras.optimizers.schedules.LearningRateSchedule


def make_warmup_cosine(peak: float, total_steps: int, warmup_steps: int):
    """A Keras ``LearningRateSchedule`` equal to :func:`warmup_cosine_value`."""
    import tensorflow as tf

    class WarmupCosine(_schedule_base()):
        def __init__(self, peak: float, total_steps: int, warmup_steps: int) -> None:
            self.peak = float(peak)
            self.total_steps = int(total_steps)
            self.warmup_steps = int(warmup_steps)

        def __call__(self, step: Any) -> Any:
            step = tf.cast(step, tf.float32)
            peak = tf.constant(self.peak, tf.float32)
            warmup = tf.constant(float(self.warmup_steps), tf.float32)
            decay_steps = tf.constant(float(max(1, self.total_steps - self.warmup_steps)), tf.float32)
            progress = tf.clip_by_value((step - warmup) / decay_steps, 0.0, 1.0)
            cosine = peak * 0.5 * (1.0 + tf.cos(math.pi * progress))
            if self.warmup_steps <= 0:
                return cosine
            return tf.where(step < warmup, peak * (step + 1.0) / warmup, cosine)

        def get_config(self) -> dict[str, Any]:
            return {"peak": self.peak, "total_steps": self.total_steps, "warmup_steps": self.warmup_steps}

    return WarmupCosine(peak, total_steps, warmup_steps)


def make_optimizer(learning_rate: Any, weight_decay: float, mixed_precision: bool):
    """AdamW (decoupled weight decay; none on biases and BatchNorm), loss-scaled under mixed precision."""
    import tf_keras as keras

    optimizer = keras.optimizers.AdamW(learning_rate=learning_rate, weight_decay=weight_decay)
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    if mixed_precision:
        optimizer = keras.mixed_precision.LossScaleOptimizer(optimizer)
    return optimizer


def current_learning_rate(optimizer) -> float:
    """The learning rate of the optimiser's latest step (its initial value before any step)."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    rate = inner.learning_rate
    if callable(rate) and not hasattr(rate, "numpy"):
        rate = rate(inner.iterations)
    return float(rate.numpy() if hasattr(rate, "numpy") else rate)


def build_optimizer(optimizer, variables) -> None:
    """Create the optimiser's slot variables now (so that a checkpoint can be restored into them)."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    inner.build(variables)
