"""Per-example training losses on logits: cross-entropy and focal loss, both with label smoothing.

Both functions take one-hot (or soft) targets and raw logits and return one loss per example in
float32, so that the caller decides how to weight (class weights) and how to average (over the global
batch under a distribution strategy, see ``tf.nn.compute_average_loss``).

Label smoothing mixes the one-hot target with the uniform distribution::

    target = one_hot * (1 - smoothing) + smoothing / num_classes

Focal loss (Lin et al., 2017) down-weights examples the model already gets right::

    loss = - sum_c alpha_c * target_c * (1 - p_c) ** gamma * log p_c

with ``p = softmax(logits)``. ``gamma = 0`` and ``alpha = 1`` give back the cross-entropy.
"""

from __future__ import annotations

from typing import Sequence


def smooth_labels(one_hot, label_smoothing: float):
    """One-hot targets mixed with the uniform distribution (``label_smoothing`` in [0, 1))."""
    import tensorflow as tf

    one_hot = tf.cast(one_hot, tf.float32)
    if not label_smoothing:
        return one_hot
    num_classes = tf.cast(tf.shape(one_hot)[-1], tf.float32)
    return one_hot * (1.0 - label_smoothing) + label_smoothing / num_classes


def crossentropy(one_hot, logits, label_smoothing: float = 0.0):
    """Softmax cross-entropy per example, computed in float32 from the logits."""
    import tensorflow as tf

    targets = smooth_labels(one_hot, label_smoothing)
    log_probabilities = tf.nn.log_softmax(tf.cast(logits, tf.float32), axis=-1)
    return -tf.reduce_sum(targets * log_probabilities, axis=-1)


def focal(
    one_hot,
    logits,
    gamma: float = 2.0,
    label_smoothing: float = 0.0,
    alpha: Sequence[float] | None = None,
):
    """Focal loss per example; ``alpha`` (one weight per class, e.g. class weights) is optional."""
    import tensorflow as tf

    targets = smooth_labels(one_hot, label_smoothing)
    log_probabilities = tf.nn.log_softmax(tf.cast(logits, tf.float32), axis=-1)
    probabilities = tf.exp(log_probabilities)
    modulating = tf.pow(1.0 - probabilities, gamma)
    per_class = -targets * modulating * log_probabilities
    if alpha is not None:
        per_class = per_class * tf.constant(alpha, dtype=tf.float32)
    return tf.reduce_sum(per_class, axis=-1)


def make_loss(kind: str, label_smoothing: float, focal_gamma: float = 2.0, focal_alpha=None):
    """The per-example loss function ``(one_hot, logits) -> loss[N]`` named by ``train.loss``."""
    if kind == "crossentropy":
        return lambda one_hot, logits: crossentropy(one_hot, logits, label_smoothing)
    if kind == "focal":
        return lambda one_hot, logits: focal(one_hot, logits, focal_gamma, label_smoothing, focal_alpha)
    raise ValueError(f"unknown loss {kind!r}")  # the config validates the name; reaching this is a bug
