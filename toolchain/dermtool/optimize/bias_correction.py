"""Empirical bias correction of int8 weight rounding, before post-training int8 conversion.

Rounding a kernel to its int8 grid does not only add noise to a layer's output: it shifts the *mean* of
each output channel, and every later layer inherits the shift, enough to flip the top-1 class of images
whose two best classes are close. Empirical bias correction (Nagel et al. 2019, "Data-free quantization
through weight equalization and bias correction", section 4.2; Finkelstein et al. 2019) removes the mean
shift:

1. round every Conv2D, DepthwiseConv2D and Dense kernel to the int8 grid the TFLite converter uses
   (symmetric, one scale per output channel = the channel's largest magnitude / 127, round to nearest);
2. run calibration images through the float model and the rounded model and, for each rounded layer,
   take the difference of the per-channel means out of the offset that follows it: the beta of the
   BatchNormalization that consumes it, or the layer's own bias.

The rounded kernels keep each channel's largest magnitude, so the converter's scales are exactly the grid
used here (folding a BatchNorm into a kernel scales whole channels, which commutes with per-channel
rounding): the converted model's int8 weights are the same as without the correction, only the biases
differ. No training; the file size does not change.

The correction runs the rounded model once, layer by layer, over all calibration images: each offset is
corrected on activations that already carry the corrections of every layer before it (what correcting one
layer at a time and re-running the model would give, at the cost of one pass). Correcting all layers at
once from one measurement does not work: each layer's measured shift includes what its upstream layers
pass on, which their own corrections already remove, and the double correction grows with depth until
the model predicts one class. :class:`BiasCorrectionReport` gives the mean shift left.

Example::

    corrected, report = correct_int8_rounding_bias(model, normalize(calibration_images, spec))
    print(report.summary())
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from dermtool import DermtoolError
from dermtool.models.registry import clone_with_weights
from dermtool.optimize.common import check_keras2_model

logger = logging.getLogger(__name__)

#: Axes over which each rounded kernel type shares one scale: all but the output channel. A depthwise
#: kernel (h, w, in, multiplier) has one output channel per (in, multiplier) pair.
ROUNDED_KERNEL_AXES: dict[str, tuple[int, ...]] = {"Conv2D": (0, 1, 2), "DepthwiseConv2D": (0, 1), "Dense": (0,)}
INT8_LEVELS = 127.0


@dataclass(frozen=True)
class BiasCorrectionReport:
    """What :func:`correct_int8_rounding_bias` changed and how much of the mean shift is left."""

    rounded_layers: int  # kernels rounded to their int8 grid
    corrected_offsets: int  # BatchNorm betas and biases that took a correction
    uncorrected_layers: tuple[str, ...]  # rounded layers with no offset to correct (no bias, no BatchNorm)
    images: int
    # Worst layer's root-mean-square channel mean shift against the float model, in units of its channels'
    # standard deviation: with the kernels rounded and no correction, and after the correction
    shift_before: float
    shift_after: float

    def summary(self) -> str:
        text = (f"bias correction: {self.rounded_layers} kernels rounded to int8, {self.corrected_offsets} offsets "
                f"corrected on {self.images} images; mean shift of the worst layer {self.shift_before:.3g} -> "
                f"{self.shift_after:.3g} standard deviations (root mean square over its channels)")
        if self.uncorrected_layers:
            text += f" ({len(self.uncorrected_layers)} layers without an offset: {', '.join(self.uncorrected_layers)})"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "rounded_layers": self.rounded_layers, "corrected_offsets": self.corrected_offsets,
            "uncorrected_layers": list(self.uncorrected_layers), "images": self.images,
            "shift_before": self.shift_before, "shift_after": self.shift_after,
        }


def round_kernel_to_int8(layer: Any) -> None:
    """Round ``layer``'s kernel to its int8 grid in place, as the TFLite converter does: symmetric, one scale
    per output channel (the channel's largest magnitude / 127), round to nearest. The largest magnitude of
    each channel is kept, so converting the rounded model gives the same int8 weights."""
    axes = ROUNDED_KERNEL_AXES.get(type(layer).__name__)
    if axes is None:
        raise DermtoolError(f"{layer.name}: only {', '.join(ROUNDED_KERNEL_AXES)} kernels are rounded, "
                            f"not {type(layer).__name__}")
    variable = layer.depthwise_kernel if type(layer).__name__ == "DepthwiseConv2D" else layer.kernel
    kernel = variable.numpy()
    scale = np.maximum(np.abs(kernel).max(axis=axes, keepdims=True), 1e-12) / INT8_LEVELS
    variable.assign((np.round(kernel / scale) * scale).astype(kernel.dtype))


def rounded_layers(model: Any) -> list[Any]:
    """The layers whose kernels int8 conversion rounds (Conv2D, DepthwiseConv2D, Dense), in graph order."""
    return [layer for layer in model.layers if type(layer).__name__ in ROUNDED_KERNEL_AXES]


def offset_variable(layer: Any) -> tuple[Any, Any] | None:
    """``(layer whose output the offset moves, offset variable)`` for a rounded layer, or None.

    The beta of the BatchNormalization that is the layer's only consumer (it is folded into the layer's
    bias on conversion), else the layer's own bias.
    """
    consumers = [node.outbound_layer for node in layer._outbound_nodes]
    if len(consumers) == 1 and type(consumers[0]).__name__ == "BatchNormalization" and consumers[0].center:
        return consumers[0], consumers[0].beta
    if getattr(layer, "use_bias", False) and layer.bias is not None:
        return layer, layer.bias
    return None


def _channel_statistics(model: Any, layer_names: list[str], images: np.ndarray, batch_size: int) -> tuple[np.ndarray, ...]:
    """Per-channel means and standard deviations of the named layers' outputs over all images and positions.

    Reduced inside the graph per batch (float32), accumulated over batches in float64.
    """
    import tensorflow as tf
    import tf_keras as keras

    outputs = keras.Model(model.inputs, [model.get_layer(name).output for name in layer_names])

    @tf.function
    def reduce(batch: Any) -> list[Any]:
        results = outputs(batch, training=False)
        results = results if isinstance(results, (list, tuple)) else [results]
        sums = []
        for result in results:
            flat = tf.reshape(tf.cast(result, tf.float32), [-1, result.shape[-1]])
            sums.append(tf.stack([tf.reduce_sum(flat, 0), tf.reduce_sum(tf.square(flat), 0),
                                  tf.cast(tf.fill([result.shape[-1]], tf.shape(flat)[0]), tf.float32)]))
        return sums

    totals: list[np.ndarray] | None = None
    for start in range(0, len(images), batch_size):
        batch_sums = [np.asarray(value, dtype=np.float64) for value in reduce(tf.constant(images[start:start + batch_size]))]
        totals = batch_sums if totals is None else [total + value for total, value in zip(totals, batch_sums)]
    means = [total[0] / total[2] for total in totals]
    deviations = [np.sqrt(np.maximum(total[1] / total[2] - mean ** 2, 0.0)) for total, mean in zip(totals, means)]
    return means, deviations


def _producer(tensor: Any) -> tuple[str, int, int]:
    """(layer name, node index, tensor index) of a symbolic tf_keras tensor: the key of its cached value."""
    layer, node_index, tensor_index = tensor._keras_history
    return layer.name, node_index, tensor_index


def _layer_inputs(layer: Any) -> tuple[Any, dict[str, Any], list[tuple[str, int, int]]]:
    """(call args, call kwargs, keys of the symbolic tensors in them) of the layer's one call in the model."""
    import tensorflow as tf

    if len(layer._inbound_nodes) != 1:
        raise DermtoolError(f"bias correction needs a flat model in which each layer is called once; {layer.name} "
                            f"is called {len(layer._inbound_nodes)} times")
    node = layer._inbound_nodes[0]
    keys = [_producer(value) for value in tf.nest.flatten((node.call_args, node.call_kwargs))
            if hasattr(value, "_keras_history")]
    return node.call_args, dict(node.call_kwargs), keys


def _run_layer(layer: Any, cached: dict[tuple[str, int, int], np.ndarray], count: int, batch_size: int) -> np.ndarray:
    """The layer's output on all calibration images, its inputs taken from ``cached``, in inference mode."""
    import tensorflow as tf

    args, kwargs, _ = _layer_inputs(layer)
    if getattr(layer, "_expects_training_arg", False):
        kwargs["training"] = False
    output = None  # filled chunk by chunk: no second copy of the largest activations
    for start in range(0, count, batch_size):
        def value(item: Any, start: int = start) -> Any:
            return cached[_producer(item)][start:start + batch_size] if hasattr(item, "_keras_history") else item

        chunk_args, chunk_kwargs = tf.nest.map_structure(value, (args, kwargs))
        chunk = np.asarray(layer(*chunk_args, **chunk_kwargs), dtype=np.float32)
        if output is None:
            output = np.empty((count, *chunk.shape[1:]), dtype=np.float32)
        output[start:start + len(chunk)] = chunk
    return output


def correct_int8_rounding_bias(
    model: Any, images: np.ndarray, batch_size: int = 32, progress: bool = False,
) -> tuple[Any, BiasCorrectionReport]:
    """A copy of ``model`` with its kernels rounded to int8 and the mean shift corrected, and a report; see the
    module docstring. ``model`` itself is left unchanged.

    ``images``: normalised calibration images (what the model takes), a few hundred from the training
    split, prepared exactly as in evaluation. The model runs layer by layer over all of them at once,
    keeping the activations later layers still need, so memory grows with the number of images (about 2 GB
    more for 300 images at 192 px through EfficientNet-Lite0).
    """
    check_keras2_model(model, "bias correction")
    # A fresh graph: a model rebuilt from another one (strip_pruning, a clone) may share its layers with it,
    # and then a layer's output tensor can belong to the other model's graph.
    model = clone_with_weights(model)
    images = np.asarray(images, dtype=np.float32)
    if len(images) == 0:
        raise DermtoolError("bias correction needs calibration images, got none")
    if len(model.inputs) != 1:
        raise DermtoolError(f"bias correction needs a model with one input, this one has {len(model.inputs)}")
    layers = rounded_layers(model)
    targets = {layer.name: offset_variable(layer) for layer in layers}
    uncorrected = tuple(name for name, target in targets.items() if target is None)
    offsets = {target[0].name: target[1] for target in targets.values() if target is not None}
    names = list(offsets)
    float_means, float_deviations = _channel_statistics(model, names, images, batch_size)  # before rounding
    float_means, float_deviations = dict(zip(names, float_means)), dict(zip(names, float_deviations))

    def relative_shift(name: str, means: np.ndarray) -> float:
        """Root-mean-square channel mean shift of one output, in units of its channels' standard deviation."""
        return float(np.sqrt(np.mean((means - float_means[name]) ** 2)
                             / max(float(np.mean(float_deviations[name] ** 2)), 1e-12)))

    for layer in layers:
        round_kernel_to_int8(layer)
    rounded_means, _ = _channel_statistics(model, names, images, batch_size)
    shift_before = max((relative_shift(name, means) for name, means in zip(names, rounded_means)), default=0.0)

    # One pass, layer by layer (a Gauss-Seidel sweep): each offset is corrected on activations that already
    # carry the corrections of every layer before it, and its cached output is shifted to match.
    input_layer = model.inputs[0]._keras_history.layer
    remaining_uses: dict[tuple[str, int, int], int] = {}
    for layer in model.layers[1:]:
        for key in _layer_inputs(layer)[2]:
            remaining_uses[key] = remaining_uses.get(key, 0) + 1
    cached = {_producer(model.inputs[0]): images}
    sequence = [layer for layer in model.layers if layer is not input_layer]
    if progress:
        from tqdm import tqdm

        # disable=None: off when stderr is not a terminal, as the fine-tuning bars
        sequence = tqdm(sequence, desc="bias correction", unit="layer", leave=False, disable=None)
    for layer in sequence:
        output = _run_layer(layer, cached, len(images), batch_size)
        if layer.name in offsets:
            positions = tuple(range(output.ndim - 1))
            shift = output.mean(axis=positions, dtype=np.float64) - float_means[layer.name]  # no float64 copy
            variable = offsets[layer.name]
            variable.assign(variable.numpy() - shift.astype(variable.dtype.as_numpy_dtype))
            output -= shift.astype(np.float32)  # exact: the offset adds to every position of its channel
        for key in _layer_inputs(layer)[2]:
            remaining_uses[key] -= 1
            if remaining_uses[key] == 0:
                del cached[key]
        if remaining_uses.get((layer.name, 0, 0), 0) > 0:
            cached[(layer.name, 0, 0)] = output

    corrected_means, _ = _channel_statistics(model, names, images, batch_size)
    shift_after = max((relative_shift(name, means) for name, means in zip(names, corrected_means)), default=0.0)
    report = BiasCorrectionReport(
        rounded_layers=len(layers), corrected_offsets=len(names), uncorrected_layers=uncorrected,
        images=len(images), shift_before=shift_before, shift_after=shift_after,
    )
    logger.info(report.summary())
    return model, report


__all__ = ["BiasCorrectionReport", "ROUNDED_KERNEL_AXES", "correct_int8_rounding_bias", "offset_variable",
           "round_kernel_to_int8", "rounded_layers"]
