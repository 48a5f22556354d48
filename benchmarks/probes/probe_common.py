"""Helpers shared by the probes in this folder (imported as a sibling module when a probe runs as a script)."""
import numpy as np

#: Per-channel reduction axes of the kernels the TFLite converter quantizes per output channel.
ROUNDED_KERNEL_AXES = {"Conv2D": (0, 1, 2), "DepthwiseConv2D": (0, 1, 3), "Dense": (0,)}


def balanced_accuracy(labels, predicted):
    """Mean recall over the classes present in ``labels`` (the metric of dermtool.metrics, from hard labels)."""
    return float(np.mean([np.mean(predicted[labels == c] == c) for c in np.unique(labels)]))


def round_kernel_to_int8(layer):
    """Round ``layer``'s kernel to its int8 grid in place, as the converter does: symmetric, one scale per
    output channel (per channel for a depthwise kernel), round to nearest. The largest magnitude of each
    channel is kept, so converting the rounded model gives the same int8 weights."""
    weights = layer.get_weights()
    kernel = weights[0]
    axes = ROUNDED_KERNEL_AXES[type(layer).__name__]
    scale = np.maximum(np.abs(kernel).max(axis=axes, keepdims=True), 1e-12) / 127.0
    weights[0] = (np.round(kernel / scale) * scale).astype(kernel.dtype)
    layer.set_weights(weights)
