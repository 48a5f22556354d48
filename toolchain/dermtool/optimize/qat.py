"""Quantization-aware fine-tuning (QAT): train with int8 rounding simulated, so int8 export loses little.

:func:`quantization_aware_finetune` applies ``tfmot.quantization.keras.quantize_model`` (the default 8-bit
scheme: per-channel int8 weights, per-tensor int8 activations, BatchNorm folded into the convolutions) to
the whole classifier, starts its activation ranges at the ranges of real data
(:func:`calibrate_activation_ranges`: TF-MOT's own start, [-6, 6] moved by a slow moving average, is far
off after a short fine-tune) and fine-tunes it briefly at a small learning rate. A dermtool classifier is a flat
functional model with no ``Rescaling`` layer (normalisation happens outside the model), so every layer
quantizes; :func:`unquantized_layers` checks that nothing with weights was left in float. The one custom
layer, colour constancy (weightless), keeps float inside and has its output fake-quantised.

With ``prune_preserve=True`` (a model pruned by :func:`dermtool.optimize.prune.prune_finetune` and
stripped) the scheme is ``Default8BitPrunePreserveQuantizeScheme``: the zeros stay zeros through QAT.

Before conversion, :func:`widen_zero_weight_ranges` gives every all-zero output channel of a kernel (pruning
leaves a few) the typical range of its layer: a zero-width range becomes a weight scale near 1e-9 in the
converter, the channel's bias then overflows int32, and the error grows from layer to layer: the TFLite
model collapses while its Keras QAT model is sound (docs/experiments.md, the pruned + QAT investigation).

The returned model is a QAT model: convert it with the TFLite converter (``Optimize.DEFAULT``); its
quantisation ranges come from training, no representative data set is needed. The input range is pinned
to the full pixel range (:func:`pin_input_range`) so that raw uint8 pixels are the exported model's input.
"""

from __future__ import annotations

from typing import Any

from dermtool import DermtoolError
from dermtool.models import color_constancy
from dermtool.models.registry import clone_with_weights
from dermtool.optimize.common import (check_keras2_model, compile_and_fit, freeze_batch_normalization,
                                      variable_short_name)


def _quantize_wrappers(model: Any) -> list[Any]:
    """The layers of a QAT model that TF-MOT wrapped (``QuantizeWrapper`` / ``QuantizeWrapperV2``)."""
    return [layer for layer in model.layers if type(layer).__name__.startswith("QuantizeWrapper")]


def unquantized_layers(model: Any) -> list[str]:
    """Names of layers of a QAT model that hold weights but are not quantize-wrapped (should be none)."""
    names = []
    for layer in model.layers:
        wrapped = type(layer).__name__.startswith("QuantizeWrapper") or type(layer).__name__ == "QuantizeLayer"
        if not wrapped and layer.weights:
            names.append(layer.name)
    return names


def pin_input_range(model: Any, input_spec: Any) -> None:
    """Set the QAT model's input quantizer to the full normalised pixel range ``[(0-mean)/std, (255-mean)/std]``.

    The moving-average range learnt during fine-tuning rarely reaches both 0 and 255 exactly; pinned, the
    exported uint8 input has scale ``1/std`` and zero point ``mean``: raw pixels go in.
    """
    low = (0.0 - float(input_spec.mean)) / float(input_spec.std)
    high = (255.0 - float(input_spec.mean)) / float(input_spec.std)
    pinned = 0
    for layer in model.layers:
        if type(layer).__name__ == "QuantizeLayer":
            for weight in layer.weights:  # named "<layer name>_min:0" and "<layer name>_max:0"
                short_name = variable_short_name(weight)
                if short_name == f"{layer.name}_min":
                    weight.assign(low)
                    pinned += 1
                elif short_name == f"{layer.name}_max":
                    weight.assign(high)
                    pinned += 1
    if pinned != 2:
        raise DermtoolError(f"cannot find the QAT model's input quantizer range (found {pinned} of 2 variables)")


def weight_range_variables(model: Any) -> list[tuple[Any, Any]]:
    """The ``(min, max)`` variable pairs of a QAT model's weight quantizers (``kernel_min`` / ``kernel_max``,
    ``depthwise_kernel_min`` / ``..._max``): per output channel for convolutions, one pair for dense."""
    pairs = []
    for layer in _quantize_wrappers(model):
        by_name = {variable_short_name(weight): weight for weight in layer.non_trainable_weights}
        for short_name, weight in by_name.items():
            if "kernel" in short_name and short_name.endswith("_min") and short_name[:-4] + "_max" in by_name:
                pairs.append((weight, by_name[short_name[:-4] + "_max"]))
    return pairs


def widen_zero_weight_ranges(model: Any, fallback: float = 1e-3) -> int:
    """Give each zero-width weight range of a QAT model (an all-zero output channel) the median range of
    its layer's other channels (``fallback`` if it has none); returns the number of channels widened.

    Pruning zeroes whole output channels now and then (66 of the 50 %-pruned EfficientNet-Lite0's). Their
    fake-quant range is [0, 0], which the TFLite converter turns into a weight scale near 1e-9; the
    channel's bias (the folded BatchNorm offset, its only output) divided by ``input scale x weight scale``
    then saturates int32, so the channel's constant output is wrong in the int8 model and every later layer
    inherits the error. The weights stay zero under any range; only the bias scale becomes sane. Call it
    after fine-tuning (a training step resets the ranges from the weights) and before conversion.
    """
    import numpy as np

    widened = 0
    for minimum, maximum in weight_range_variables(model):
        low, high = minimum.numpy(), maximum.numpy()
        width = np.maximum(np.abs(low), np.abs(high))
        zero = width <= 0
        if not np.any(zero):
            continue
        half_width = float(np.median(width[~zero])) if np.any(~zero) else fallback
        minimum.assign(np.where(zero, -half_width, low).astype(np.float32))
        maximum.assign(np.where(zero, half_width, high).astype(np.float32))
        widened += int(np.sum(zero))
    return widened


#: TF-MOT's MovingAverageQuantizer: ``range <- decay * range + (1 - decay) * batch range``, no bias correction.
TFMOT_EMA_DECAY = 0.999


def activation_range_variables(model: Any) -> list[Any]:
    """The moving-average range variables (``*_min`` / ``*_max``) of a QAT model's activation and output
    quantizers. Not the weight quantizers' (``kernel_min`` ...: set from the weights at every step) nor the
    input quantizer's (a running min / max, and pinned by :func:`pin_input_range`)."""
    variables = []
    for layer in _quantize_wrappers(model):
        for weight in layer.non_trainable_weights:
            short_name = variable_short_name(weight)
            if short_name.endswith(("_min", "_max")) and "kernel" not in short_name:
                variables.append(weight)
    return variables


def calibrate_activation_ranges(model: Any, dataset: Any, batches: int = 10, rounds: int = 3) -> int:
    """Start every activation range of a fresh QAT model at the mean per-batch range of real training data.

    TF-MOT starts activation ranges at [-6, 6] and moves them by an exponential moving average with decay
    0.999 and no bias correction, so a fine-tune of a few hundred steps leaves them mostly at the initial
    value: after 438 steps (2 epochs of HAM10000 at batch 32) 65 % of [-6, 6] remains. ReLU6 outputs then
    waste half of the int8 range on negatives and larger activations are clipped, so the QAT model agrees
    with the float model less often than post-training int8, which calibrates its ranges on data.

    This reaches what the moving average would converge to at once. Each forward pass in training mode makes
    one update, ``new = decay * old + (1 - decay) * batch range``, so the batch range is
    ``(new - decay * old) / (1 - decay)``; the variables are restored after each batch so that every batch
    of a round sees the same ranges. A layer's observed range depends on the quantisation of the layers
    before it, so ``rounds`` passes refine the ranges from the input down. Returns the batches per round.
    """
    import numpy as np

    freeze_batch_normalization(model)  # training mode must not normalise with batch statistics (nor move them)
    variables = activation_range_variables(model)
    if not variables:
        raise DermtoolError("this QAT model has no activation range variables to calibrate")
    used = 0
    for _ in range(rounds):
        before = [variable.numpy().astype(np.float64) for variable in variables]
        totals = [np.zeros_like(value) for value in before]
        used = 0
        for images, _labels in dataset.take(batches):
            model(images, training=True)
            for total, variable, old in zip(totals, variables, before):
                total += (variable.numpy().astype(np.float64) - TFMOT_EMA_DECAY * old) / (1.0 - TFMOT_EMA_DECAY)
                variable.assign(old.astype(np.float32))
            used += 1
        if used == 0:
            raise DermtoolError("cannot calibrate the QAT activation ranges: the training dataset is empty")
        for total, variable in zip(totals, variables):
            variable.assign((total / used).astype(np.float32))
    return used


def _output_only_quantize_config() -> Any:
    """A TF-MOT ``QuantizeConfig`` for a weightless layer whose inside stays float: only its output is
    fake-quantised (as post-training int8 quantises the colour-constancy layer's output)."""
    import tensorflow_model_optimization as tfmot

    class OutputOnlyQuantizeConfig(tfmot.quantization.keras.QuantizeConfig):
        def get_weights_and_quantizers(self, layer: Any) -> list:
            return []

        def get_activations_and_quantizers(self, layer: Any) -> list:
            return []

        def set_quantize_weights(self, layer: Any, quantize_weights: list) -> None:
            pass

        def set_quantize_activations(self, layer: Any, quantize_activations: list) -> None:
            pass

        def get_output_quantizers(self, layer: Any) -> list:
            return [tfmot.quantization.keras.quantizers.MovingAverageQuantizer(
                num_bits=8, per_axis=False, symmetric=False, narrow_range=False)]

        def get_config(self) -> dict:
            return {}

    return OutputOnlyQuantizeConfig


def _annotate(model: Any) -> tuple[Any, dict[str, Any]]:
    """``model`` annotated for quantization, and the custom objects ``quantize_apply`` needs.

    Every built-in layer gets TF-MOT's default annotation; the colour-constancy layer
    (:mod:`dermtool.models.color_constancy`) gets an output-only config."""
    import tf_keras as keras
    import tensorflow_model_optimization as tfmot

    annotate = tfmot.quantization.keras.quantize_annotate_layer
    if not any(layer.name == color_constancy.LAYER_NAME for layer in model.layers):
        return tfmot.quantization.keras.quantize_annotate_model(model), {}
    config_class = _output_only_quantize_config()

    def clone(layer: Any) -> Any:
        copy = layer.__class__.from_config(layer.get_config())
        return annotate(copy, config_class()) if layer.name == color_constancy.LAYER_NAME else copy

    annotated = keras.models.clone_model(model, clone_function=clone)
    annotated.set_weights(model.get_weights())
    custom = {config_class.__name__: config_class, "ShadesOfGrey": color_constancy.shades_of_grey_class()}
    return tfmot.quantization.keras.quantize_annotate_model(annotated), custom


def quantize_for_training(model: Any, prune_preserve: bool = False) -> Any:
    """The QAT model of ``model`` (a clone: ``model`` is not modified), checked to be fully quantized."""
    import tensorflow_model_optimization as tfmot

    check_keras2_model(model, "quantization-aware training")
    source = clone_with_weights(model)
    try:
        if prune_preserve:
            scheme = tfmot.quantization.keras.collab_opts.Default8BitPrunePreserveQuantizeScheme()
        else:
            scheme = tfmot.quantization.keras.default_8bit.Default8BitQuantizeScheme()
        annotated, custom_objects = _annotate(source)
        with tfmot.quantization.keras.quantize_scope(custom_objects):
            quantized = tfmot.quantization.keras.quantize_apply(annotated, scheme)
    except (ValueError, RuntimeError) as error:
        raise DermtoolError(
            f"quantization-aware training cannot quantize this model: {' '.join(str(error).split())[:400]} "
            "(TF-MOT rejects Rescaling and squeeze-excite Multiply layers and Keras 3 models)"
        ) from None
    left = unquantized_layers(quantized)
    if left:
        raise DermtoolError(f"quantization-aware training left layers in float: {', '.join(left)}")
    return quantized


def quantization_aware_finetune(
    model: Any,
    train_dataset: Any,
    val_dataset: Any | None = None,
    epochs: int = 2,
    learning_rate: float = 1e-5,
    input_spec: Any | None = None,
    prune_preserve: bool = False,
    progress: bool = True,
    teacher: Any | None = None,
) -> Any:
    """Quantization-aware fine-tuning of a float classifier; returns the QAT model (ready to convert).

    Datasets: ``(normalised images, one-hot)`` batches from :func:`dermtool.data.pipeline.make_dataset`.
    ``input_spec`` given: the input quantizer is pinned to the full pixel range afterwards
    (:func:`pin_input_range`). ``prune_preserve``: keep a pruned model's zeros (prune-preserving QAT).
    ``teacher``: distil from this (float) model's softmax instead of the labels
    (:mod:`dermtool.optimize.distill`), which keeps the int8 model's answers the float model's.
    """
    quantized = quantize_for_training(model, prune_preserve=prune_preserve)
    calibrate_activation_ranges(quantized, train_dataset)
    compile_and_fit(
        quantized,
        train_dataset,
        val_dataset,
        epochs,
        learning_rate,
        description="prune-preserving QAT" if prune_preserve else "quantization-aware training",
        progress=progress,
        teacher=teacher,
    )
    widen_zero_weight_ranges(quantized)
    if input_spec is not None:
        pin_input_range(quantized, input_spec)
    return quantized


__all__ = ["quantization_aware_finetune", "quantize_for_training", "unquantized_layers", "pin_input_range",
           "calibrate_activation_ranges", "activation_range_variables", "weight_range_variables",
           "widen_zero_weight_ranges"]
