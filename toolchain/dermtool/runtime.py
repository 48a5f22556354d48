"""Run an exported ``.tflite`` classifier with LiteRT, the runtime that ships to devices.

:class:`TFLiteModel` wraps ``ai_edge_litert.interpreter.Interpreter`` (XNNPACK is on by default and is
never switched off: without it int8 models run several times slower) and hides the two details every
caller would otherwise get wrong:

- **Input preparation.** Images arrive as ``uint8 (S, S, 3)`` pixels, the output of
  :func:`dermtool.data.preprocess.load_image`. A float-input model receives
  ``(pixels - mean) / std`` (:func:`dermtool.data.preprocess.normalize`, the exact training definition,
  with ``mean``/``std`` from the model's metadata). A uint8- or int8-input model receives
  ``round(((pixels - mean) / std) / scale + zero_point)`` with the input tensor's own scale and zero point,
  computed as a 256-entry lookup table: exact, general and fast. For the usual export (uint8 input,
  scale 1/128, zero point 127, mean 127, std 128) the table is the identity and raw pixels go in unchanged.
- **Output dequantisation.** A quantised output becomes ``(q - zero_point) * scale``; the result is the
  model's (calibrated) probabilities, ``float32 (N, C)``.

Labels and the input specification come from the model's metadata (the associated file ``dermtool.json``
that ``dermtool export`` writes, read with :func:`dermtool.export.metadata.read_metadata`). A model without
metadata still loads and runs on prepared inputs; ``labels`` and ``input_spec`` are then ``None`` and the
methods that need them raise a :class:`dermtool.DermtoolError` that says so.

This module imports no TensorFlow: ``import dermtool.runtime`` takes about 0.1 s.

Example::

    model = TFLiteModel("lite0_int8.tflite", threads=2)
    image = load_image("ISIC_0024306.jpg", model.input_spec)
    probabilities = model.predict(image[None])   # float32 (1, 7), columns in model.labels order
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from dermtool import DermtoolError, check_finite_outputs
from dermtool.data.preprocess import InputSpec, normalize
from dermtool.export.metadata import LABELS_FILE_NAME, read_associated_files, read_metadata
from dermtool.files import read_regular_file

#: The FlatBuffers file identifier of a TFLite model, stored at bytes 4..8 of the file.
TFLITE_IDENTIFIER = b"TFL3"


@dataclass(frozen=True)
class TensorInfo:
    """Shape, element type and (per-tensor) quantisation of a model input or output."""

    name: str
    index: int
    shape: tuple[int, ...]
    dtype: str  # "float32" | "uint8" | "int8" | ...
    scale: float  # 0.0 when the tensor is not quantised
    zero_point: int

    @property
    def quantized(self) -> bool:
        return self.scale != 0.0

    def to_dict(self) -> dict[str, Any]:
        """``{shape, dtype, scale, zero_point}``: the ``model.input`` / ``model.output`` entries of bench --json."""
        return {"shape": list(self.shape), "dtype": self.dtype, "scale": self.scale, "zero_point": self.zero_point}


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def check_tflite_file(path: str | Path) -> bytes:
    """Read ``path`` and return its bytes if it looks like a TFLite model; a clear error otherwise.

    Checks that the file exists, is a regular file within the model size cap (:mod:`dermtool.files`), is
    not empty and carries the ``TFL3`` FlatBuffers identifier at bytes 4..8, before anything is handed to
    the interpreter.
    """
    path = Path(path)
    if not path.exists():
        raise DermtoolError(f"model file not found: {path}")
    if path.is_dir():
        raise DermtoolError(f"{path} is a folder, not a .tflite model file (a run folder needs `dermtool export` first)")
    # a regular file within DERMTOOL_MAX_MODEL_MB: a FIFO never blocks, /dev/zero is never read whole
    content = read_regular_file(path, "model file", model=True)
    if len(content) < 8 or content[4:8] != TFLITE_IDENTIFIER:
        hint = ""
        if content[:2] == b"PK":
            hint = " (it is a zip archive, e.g. a Keras .keras file: export it with `dermtool export`)"
        elif len(content) == 0:
            hint = " (the file is empty)"
        raise DermtoolError(
            f"{path} is not a TFLite model: no 'TFL3' identifier at bytes 4-8{hint}"
        )
    return content


def _read_model_metadata(content: bytes, path: Path, num_classes: int | None = None) -> dict[str, Any]:
    """The dermtool metadata of the model (``content`` = the file's bytes), or ``{}`` when it has none.

    Every field is checked (:mod:`dermtool.export.metadata_check`); when the metadata is refused and its
    labels.txt does not even have one label per output, that more basic mismatch is the error reported."""
    try:
        metadata = read_metadata(content)
    except DermtoolError as error:
        try:
            text = read_associated_files(content).get(LABELS_FILE_NAME, b"").decode("utf-8", "replace")
        except DermtoolError:
            text = ""
        labels = [line.strip() for line in text.splitlines() if line.strip()]
        if labels and num_classes is not None and len(labels) != num_classes:
            raise DermtoolError(
                f"{path} has {num_classes} outputs but its label list has {len(labels)} labels "
                f"({', '.join(labels[:20])}); the metadata does not belong to this model") from None
        raise DermtoolError(f"{path}: {error}".replace("<model bytes>: ", "").replace(f"{path}: {path}: ", f"{path}: ")) from None
    return dict(metadata) if metadata else {}


def _tensor_info(details: Mapping[str, Any]) -> TensorInfo:
    parameters = details.get("quantization_parameters") or {}
    scales = np.asarray(parameters.get("scales", []))
    if scales.size > 1:
        raise DermtoolError(
            f"tensor {details['name']!r} has per-channel quantisation ({scales.size} scales); "
            "dermtool supports per-tensor input/output quantisation only"
        )
    scale, zero_point = details.get("quantization", (0.0, 0))
    return TensorInfo(
        name=str(details["name"]),
        index=int(details["index"]),
        shape=tuple(int(value) for value in details["shape"]),
        dtype=np.dtype(details["dtype"]).name,
        scale=float(scale),
        zero_point=int(zero_point),
    )


#: Native log lines of a successful load that carry no information for a user (printed once per process).
_ROUTINE_NATIVE_LINES = ("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",)


@contextlib.contextmanager
def _native_stderr_filtered() -> Any:
    """Route what native code writes to file descriptor 2 through a filter while the interpreter is built.

    LiteRT prints "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." on the first load in a process;
    that line would break the command line's promise of a single-line error on stderr. Known routine lines
    are dropped; anything else is written back to stderr after a successful load. Yields a list that
    receives the captured lines; after a failed load the caller puts them into its error message instead.
    If file descriptors cannot be redirected, nothing is filtered. (While the interpreter is being built,
    about a millisecond, other threads' writes to stderr go through the same filter.)
    """
    captured: list[str] = []
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield captured
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        failed = False
        try:
            yield captured
        except BaseException:
            failed = True  # the caller reports the captured lines in its error message
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            lines = capture.read().decode("utf-8", errors="replace").splitlines()
            captured.extend(line for line in lines if line.strip())
            other = [line for line in captured if line.strip() not in _ROUTINE_NATIVE_LINES]
            if other and not failed:
                os.write(2, ("\n".join(other) + "\n").encode("utf-8"))


def _round_half_away_from_zero(values: np.ndarray) -> np.ndarray:
    return np.sign(values) * np.floor(np.abs(values) + 0.5)


class TFLiteModel:
    """A ``.tflite`` image classifier loaded into a LiteRT interpreter (XNNPACK on, ``threads`` threads).

    Attributes: ``path``, ``threads``, ``model_bytes`` (file size), ``input`` / ``output``
    (:class:`TensorInfo`), ``input_shape``, ``input_dtype``, ``input_quantization`` ``(scale, zero_point)``,
    ``output_quantization``, ``num_classes``, ``labels`` (list or ``None``), ``input_spec``
    (:class:`InputSpec` or ``None``), ``metadata`` (the dermtool.json dict, ``{}`` when absent).

    ``labels`` / ``input_spec`` override the metadata (for models exported elsewhere).
    """

    def __init__(
        self,
        path: str | Path,
        threads: int = 1,
        *,
        labels: Sequence[str] | None = None,
        input_spec: InputSpec | None = None,
    ) -> None:
        from ai_edge_litert.interpreter import Interpreter

        if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
            raise DermtoolError(f"threads must be a positive integer, got {threads!r}")
        self.path = Path(path)
        self.threads = int(threads)
        content = check_tflite_file(self.path)
        self.model_bytes = len(content)
        self._content = content
        native_log: list[str] = []
        try:
            with _native_stderr_filtered() as native_log:
                self._interpreter = Interpreter(model_content=content, num_threads=self.threads)
                self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as error:
            detail = "; ".join([_one_line(error)] + [_one_line(line) for line in native_log[:2]])
            raise DermtoolError(f"{self.path} is truncated or corrupt: LiteRT cannot load it ({detail})") from None
        inputs = self._interpreter.get_input_details()
        outputs = self._interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) not in (1, 2):
            raise DermtoolError(
                f"{self.path} has {len(inputs)} inputs and {len(outputs)} outputs; "
                "an image classifier has one input and one output (two with the lesion check)"
            )
        self.input = _tensor_info(inputs[0])
        self.output = _tensor_info(outputs[0])
        #: the second output, the lesion check (P(lesion), P(not_a_lesion)), or None (older exports)
        self.lesion_check_output = _tensor_info(outputs[1]) if len(outputs) == 2 else None
        if self.lesion_check_output is not None and self.lesion_check_output.shape[-1:] != (2,):
            raise DermtoolError(f"{self.path} second output shape {list(self.lesion_check_output.shape)} is not the "
                                "lesion check's [1, 2]")
        if len(self.input.shape) != 4 or self.input.shape[0] != 1 or self.input.shape[3] != 3:
            raise DermtoolError(
                f"{self.path} input shape {list(self.input.shape)} is not one RGB image [1, height, width, 3]"
            )
        if len(self.output.shape) != 2 or self.output.shape[0] != 1:
            raise DermtoolError(f"{self.path} output shape {list(self.output.shape)} is not [1, classes]")
        if self.input.dtype not in ("float32", "uint8", "int8"):
            raise DermtoolError(f"{self.path} input type {self.input.dtype} is not supported (float32, uint8, int8)")

        self.metadata = _read_model_metadata(content, self.path, self.num_classes)
        self.labels = list(labels) if labels is not None else self._metadata_labels()
        self.input_spec = input_spec if input_spec is not None else self._metadata_input_spec()
        if self.labels is not None and len(self.labels) != self.num_classes:
            raise DermtoolError(
                f"{self.path} has {self.num_classes} outputs but its label list has {len(self.labels)} labels "
                f"({', '.join(self.labels)}); the metadata does not belong to this model"
            )
        if self.input_spec is not None and self.input_spec.image_size != self.image_size:
            raise DermtoolError(
                f"{self.path} takes {self.image_size}x{self.image_size} images but its input spec says "
                f"{self.input_spec.image_size}x{self.input_spec.image_size}"
            )
        self._lookup_table: np.ndarray | None = None

    # ----------------------------------------------------------------------------------------- metadata
    def _metadata_labels(self) -> list[str] | None:
        labels = self.metadata.get("labels")
        if labels is None:
            return None
        if not isinstance(labels, (list, tuple)) or not all(isinstance(label, str) for label in labels):
            raise DermtoolError(f"{self.path}: metadata 'labels' is not a list of strings")
        return [label.strip().lower() for label in labels]

    def _metadata_input_spec(self) -> InputSpec | None:
        values = self.metadata.get("input_spec")
        if values is None:
            return None
        if not isinstance(values, Mapping):
            raise DermtoolError(f"{self.path}: metadata 'input_spec' is not an object")
        return InputSpec.from_dict(values)

    def require_labels(self) -> list[str]:
        """The labels, or an error explaining that the model carries none."""
        if self.labels is None:
            raise DermtoolError(
                f"{self.path} has no label metadata (dermtool.json / labels.txt), so its outputs cannot be "
                "named; export it with `dermtool export`"
            )
        return self.labels

    def require_input_spec(self) -> InputSpec:
        """The input specification, or an error explaining that the model carries none."""
        if self.input_spec is None:
            raise DermtoolError(
                f"{self.path} has no input specification in its metadata (dermtool.json), so images cannot "
                "be resized and normalised for it; export it with `dermtool export`"
            )
        return self.input_spec

    # ------------------------------------------------------------------------------------- properties
    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.input.shape

    @property
    def input_dtype(self) -> np.dtype:
        return np.dtype(self.input.dtype)

    @property
    def input_quantization(self) -> tuple[float, int]:
        return (self.input.scale, self.input.zero_point)

    @property
    def output_quantization(self) -> tuple[float, int]:
        return (self.output.scale, self.output.zero_point)

    @property
    def image_size(self) -> int:
        return self.input.shape[1]

    @property
    def num_classes(self) -> int:
        return self.output.shape[1]

    # ------------------------------------------------------------------------------------ preparation
    def _quantization_table(self) -> np.ndarray:
        """Pixel value 0..255 -> quantised input value, for uint8/int8 input tensors."""
        if self._lookup_table is None:
            spec = self.require_input_spec()
            if not self.input.quantized:
                raise DermtoolError(f"{self.path}: {self.input.dtype} input without quantisation parameters")
            pixels = np.arange(256, dtype=np.float64)
            real = (pixels - spec.mean) / spec.std
            quantized = _round_half_away_from_zero(real / self.input.scale + self.input.zero_point)
            limits = np.iinfo(self.input_dtype)
            self._lookup_table = np.clip(quantized, limits.min, limits.max).astype(self.input_dtype)
        return self._lookup_table

    def _check_image(self, image: np.ndarray) -> np.ndarray:
        image = np.asarray(image)
        expected = (self.image_size, self.input.shape[2], 3)
        if image.shape != expected:
            raise DermtoolError(
                f"input shape mismatch: {self.path.name} expects {expected[0]}x{expected[1]}x3 images, "
                f"got an array of shape {tuple(image.shape)} (prepare images with the model's input spec)"
            )
        if image.dtype != np.uint8:
            raise DermtoolError(f"expected uint8 pixels (output of load_image), got {image.dtype}")
        return image

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """One ``uint8 (S, S, 3)`` image -> the input tensor ``(1, S, S, 3)`` in the model's input type."""
        image = self._check_image(image)
        if self.input.dtype == "float32":
            prepared = normalize(image, self.require_input_spec())
        else:
            prepared = self._quantization_table()[image]
        return np.ascontiguousarray(prepared[None, ...])

    def dequantize(self, output: np.ndarray, tensor: TensorInfo | None = None) -> np.ndarray:
        """Raw output tensor (of ``tensor``, default the class probabilities) -> float32 values."""
        tensor = tensor or self.output
        if tensor.quantized and tensor.dtype != "float32":
            return (output.astype(np.float32) - np.float32(tensor.zero_point)) * np.float32(tensor.scale)
        return output.astype(np.float32, copy=False)

    # -------------------------------------------------------------------------------------- inference
    def invoke_once(self, prepared_input: np.ndarray) -> np.ndarray:
        """Set the input, run the model once, return the raw output tensor (a copy). Used to time latency."""
        interpreter = self._interpreter
        interpreter.set_tensor(self.input.index, prepared_input)
        interpreter.invoke()
        return interpreter.get_tensor(self.output.index)

    def predict_prepared(self, prepared_input: np.ndarray) -> np.ndarray:
        """Probabilities ``float32 (C,)`` for one input already passed through :meth:`prepare`.

        Raises :class:`dermtool.ModelOutputError` when the model gives NaN or infinity (a corrupt model)."""
        probabilities = self.dequantize(self.invoke_once(prepared_input))[0]
        check_finite_outputs(probabilities, self.path)
        return probabilities

    def predict_prepared_with_check(self, prepared_input: np.ndarray) -> tuple[np.ndarray, float | None]:
        """(probabilities ``float32 (C,)``, P(not_a_lesion) or None) for one prepared input: both outputs of
        one invocation."""
        probabilities = self.predict_prepared(prepared_input)
        if self.lesion_check_output is None:
            return probabilities, None
        check = self.dequantize(self._interpreter.get_tensor(self.lesion_check_output.index),
                                self.lesion_check_output)[0]
        check_finite_outputs(check, self.path)
        return probabilities, float(check[1])

    def predict_with_check(self, images: np.ndarray | Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        """(probabilities ``float32 (N, C)``, P(not_a_lesion) ``float32 (N,)`` or None for a model without the
        lesion check) for ``uint8 (N, S, S, 3)`` images, one invocation per image."""
        probabilities = np.empty((len(images), self.num_classes), dtype=np.float32)
        not_a_lesion = np.empty(len(images), dtype=np.float32)
        for position, image in enumerate(images):
            probabilities[position], score = self.predict_prepared_with_check(self.prepare(image))
            not_a_lesion[position] = np.nan if score is None else score
        return probabilities, (not_a_lesion if self.lesion_check_output is not None else None)

    def predict(self, images: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """``uint8 (N, S, S, 3)`` images (or a list of ``(S, S, 3)``) -> probabilities ``float32 (N, C)``.

        Images run one at a time through the batch-1 interpreter (the shape a device uses), so results do
        not depend on how a caller batches them.
        """
        if isinstance(images, np.ndarray) and images.ndim == 3:
            raise DermtoolError(
                f"predict expects a batch (N, {self.image_size}, {self.image_size}, 3); "
                "wrap a single image as image[None]"
            )
        probabilities = np.empty((len(images), self.num_classes), dtype=np.float32)
        for position, image in enumerate(images):
            probabilities[position] = self.predict_prepared(self.prepare(image))
        return probabilities

    def __repr__(self) -> str:
        return (
            f"TFLiteModel({str(self.path)!r}, threads={self.threads}, input={self.input.dtype}"
            f"{list(self.input.shape)}, classes={self.num_classes})"
        )


__all__ = ["TFLITE_IDENTIFIER", "TensorInfo", "TFLiteModel", "check_tflite_file"]
