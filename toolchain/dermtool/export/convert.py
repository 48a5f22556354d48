"""The TFLite converter settings of each named export mode, and temperature folding.

Modes (``MODES``):

- ``"float"``: float32 weights and activations (the reference; largest file).
- ``"fp16"``: float16 weights, float32 compute (about half the size; GPU delegates run it natively).
- ``"dynamic"``: dynamic-range quantisation: int8 weights, activations quantised on the fly; no
  calibration data needed (about a quarter of the size).
- ``"int8"``: full integer quantisation: int8 weights and activations, calibrated on representative
  images; input and output ``uint8`` by default (``io="int8"`` for int8 tensors, ``io="float32"`` to keep
  float tensors at the edges). With uint8 input the converter picks the input scale ``1/std`` and zero
  point ``mean`` (the calibrated input range ``[(0 - mean)/std, (255 - mean)/std]``), so raw ``load_image``
  pixels go in unchanged; :func:`export_model` verifies and records this.

Calibration (:func:`fold_temperature`): the run's temperature ``T`` is folded into the Dense "logits" layer
of a clone of the model (kernel / T, bias / T), so the exported softmax output is already calibrated.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import numpy as np

from dermtool import CheckFailed, DermtoolError
from dermtool.models.registry import clone_with_weights

MODES: tuple[str, ...] = ("float", "fp16", "dynamic", "int8")
IO_TYPES: tuple[str, ...] = ("uint8", "int8", "float32")
LOGITS_LAYER = "logits"


def check_mode(mode: str, io_type: str) -> None:
    """A :class:`DermtoolError` for an unknown mode or input/output type."""
    if mode not in MODES:
        raise DermtoolError(f"unknown export mode {mode!r}; choose one of {', '.join(MODES)}")
    if io_type not in IO_TYPES:
        raise DermtoolError(f"unknown input/output type {io_type!r}; choose one of {', '.join(IO_TYPES)}")


def effective_io(mode: str, io_type: str) -> str:
    """The tensor type at the model's edges: ``io_type`` for int8, float32 for every other mode."""
    return io_type if mode == "int8" else "float32"


def fold_temperature(model: Any, temperature: float, copy: bool = True) -> Any:
    """``model`` (a clone of it unless ``copy=False``) with the "logits" Dense layer divided by
    ``temperature`` (kernel/T, bias/T).

    ``softmax(logits / T)`` is then the model's own output: the exported model is calibrated without any
    extra operation. With ``copy=True`` (default) ``model`` itself is left unchanged.
    """
    if not np.isfinite(temperature) or temperature <= 0:
        raise DermtoolError(f"calibration temperature must be a positive number, got {temperature!r}")
    clone = clone_with_weights(model) if copy else model
    try:
        layer = clone.get_layer(LOGITS_LAYER)
    except ValueError:
        raise DermtoolError(
            f"the model has no layer named {LOGITS_LAYER!r} (a dermtool classifier ends with Dense 'logits' "
            "and softmax 'probabilities')"
        ) from None
    weights = layer.get_weights()
    if len(weights) != 2:
        raise DermtoolError(f"the {LOGITS_LAYER!r} layer must be a Dense layer with a bias")
    kernel, bias = weights
    layer.set_weights([kernel / np.float32(temperature), bias / np.float32(temperature)])
    return clone


@dataclass(frozen=True)
class TensorQuantization:
    """Type and per-tensor quantisation of a converted model's input or output."""

    dtype: str
    scale: float
    zero_point: int

    def to_dict(self) -> dict[str, Any]:
        return {"dtype": self.dtype, "scale": self.scale, "zero_point": self.zero_point}


def tensor_quantization(model_content: bytes) -> tuple[TensorQuantization, TensorQuantization]:
    """(input, output) type and quantisation of a ``.tflite`` model, read with LiteRT."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model_content)
    details = []
    for tensor in (interpreter.get_input_details()[0], interpreter.get_output_details()[0]):
        scale, zero_point = tensor["quantization"]
        details.append(TensorQuantization(np.dtype(tensor["dtype"]).name, float(scale), int(zero_point)))
    return details[0], details[1]


def _converter(model: Any) -> Any:
    """A TFLite converter for one inference call of ``model`` (batch of any size, ``training=False``).

    Not ``from_keras_model``: it first writes the whole Keras model as a SavedModel, tracing every layer
    (about 7x slower for EfficientNet-Lite0). The converter's frozen-function path
    (``experimental_lower_to_saved_model = False``) converts the one traced inference function directly;
    the graph and the outputs are the same.
    """
    import tensorflow as tf

    shape = [None, *model.input_shape[1:]]
    function = tf.function(lambda image: model(image, training=False))
    concrete = function.get_concrete_function(tf.TensorSpec(shape, tf.float32, name="image"))
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], model)
    converter.experimental_lower_to_saved_model = False
    return converter


def configure_full_integer(
    converter: Any, io_type: str, representative_batches: Callable[[], Iterable[np.ndarray]]
) -> None:
    """Set ``converter`` up for full-integer int8 with ``io_type`` ("uint8", "int8" or "float32") input and
    output, calibrated on ``representative_batches`` (see :func:`convert`)."""
    import tensorflow as tf

    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([batch] for batch in representative_batches())
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    edge_type = {"uint8": tf.uint8, "int8": tf.int8, "float32": tf.float32}[io_type]
    converter.inference_input_type = edge_type
    converter.inference_output_type = edge_type


def convert(
    model: Any,
    mode: str,
    io_type: str = "uint8",
    representative_batches: Callable[[], Iterable[np.ndarray]] | None = None,
) -> bytes:
    """Convert a tf_keras classifier to a ``.tflite`` FlatBuffer in ``mode``.

    ``representative_batches`` (int8 only): a callable returning an iterable of normalised float32 batches
    of shape ``(1, S, S, 3)``, exactly as the model sees them in evaluation. Required; a
    quantization-aware-trained model keeps its own fake-quantisation ranges wherever it has them.
    """
    import tensorflow as tf

    check_mode(mode, io_type)
    converter = _converter(model)
    if mode == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif mode == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif mode == "int8":
        if representative_batches is None:
            raise DermtoolError("int8 export needs representative images for calibration")
        configure_full_integer(converter, io_type, representative_batches)
    try:
        with warnings.catch_warnings():
            # uint8/int8 input without "quantized input stats" is what we want: the calibrated input range
            # (pinned to the full pixel range) defines the input quantisation
            warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")
            return bytes(converter.convert())
    except Exception as error:  # the converter raises many types (ConverterError, RuntimeError, ...)
        message = " ".join(str(error).split())[:500]
        raise DermtoolError(f"TFLite conversion ({mode}) failed: {message}") from error


def expected_input_quantization(input_spec: Any, io_type: str) -> tuple[float, float]:
    """The (scale, zero point) with which raw pixels are the quantised input: ``(1/std, mean)``
    (``mean - 128`` for int8 tensors)."""
    zero_point = float(input_spec.mean) - (128.0 if io_type == "int8" else 0.0)
    return 1.0 / float(input_spec.std), zero_point


def check_raw_pixel_input(quantization: TensorQuantization, input_spec: Any, io_type: str) -> None:
    """Raise :class:`dermtool.CheckFailed` (exit 3) unless the quantised input takes raw pixels: scale ``1/std`` (within 0.5 %) and zero point
    ``mean`` (within half a step)."""
    scale, zero_point = expected_input_quantization(input_spec, io_type)
    if abs(quantization.scale - scale) > 0.005 * scale or abs(quantization.zero_point - zero_point) > 0.5:
        raise CheckFailed(
            f"the converter chose input scale {quantization.scale:.6g} and zero point {quantization.zero_point}, "
            f"not {scale:.6g} and {zero_point:g} (1/std and mean of the input spec): raw pixels would not be "
            "the model's input. The representative images do not span the 0-255 pixel range."
        )


__all__ = [
    "MODES",
    "IO_TYPES",
    "check_mode",
    "effective_io",
    "fold_temperature",
    "configure_full_integer",
    "convert",
    "tensor_quantization",
    "TensorQuantization",
    "expected_input_quantization",
    "check_raw_pixel_input",
]
