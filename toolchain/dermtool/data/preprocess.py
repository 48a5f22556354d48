"""THE one preprocessing definition: how an image file becomes a model input.

Training, evaluation, int8 calibration (the representative data set), ``bench`` and ``predict`` all go
through exactly these two steps, so a model never sees pixels prepared differently from those it was
trained and quantised on (the classic cause of int8 models collapsing to one class):

1. ``load_image(path_or_bytes, spec)`` -> ``uint8 (S, S, 3)`` RGB:
   decode with :func:`dermtool.data.images.load_rgb` (EXIF orientation applied, any mode -> 8-bit RGB,
   metadata dropped), then :func:`resize` to ``spec.image_size`` with ``spec.resize_policy``.
2. ``normalize(uint8_batch, spec)`` -> ``float32`` = ``(pixels - spec.mean) / spec.std``
   (or :func:`normalize_tf`, the identical operation in TensorFlow, inside ``tf.data``).

A uint8-input int8 TFLite model receives the output of step 1 directly; its own input quantisation
(scale ``std``, zero point ``mean``) stands in for step 2.

Resize policies (all with PIL's bilinear filter on uint8, which is deterministic: the same bytes in give
the same bytes out on every machine):

- ``"squash"``: resize the whole image to ``S x S``; the aspect ratio is not kept (HAM10000's 4:3
  images are squeezed horizontally). Nothing is cut off and there are no borders.
- ``"center_crop"``: cut the central square of side ``min(height, width)``, then resize it to ``S x S``.
  The aspect ratio is kept; the edges of the long side are lost.
- ``"pad"``: letterbox. Resize so that the long side is ``S`` (aspect ratio kept), then centre the result
  on a black ``S x S`` canvas. Nothing is cut off; the borders are black (0, 0, 0).

This module imports no TensorFlow at import time (``normalize_tf`` imports it when called), so the
TFLite paths (bench, predict, the web app) can use it without loading TensorFlow.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from PIL import Image

from dermtool import DermtoolError
from dermtool.data.images import load_rgb

RESIZE_POLICIES: tuple[str, ...] = ("squash", "center_crop", "pad")


@dataclass(frozen=True)
class InputSpec:
    """What a model expects as input: ``(S, S, 3)`` images, resized one way, normalised one way.

    The model input is ``(uint8_pixels - mean) / std``. Stored in every run folder
    (``input_spec.json``) and in exported TFLite metadata, so every consumer prepares images identically.
    """

    image_size: int
    resize_policy: str  # "squash" | "center_crop" | "pad"
    mean: float
    std: float

    def __post_init__(self) -> None:
        if isinstance(self.image_size, bool) or not isinstance(self.image_size, int) or self.image_size < 1:
            raise DermtoolError(f"input spec: image_size must be a positive integer, got {self.image_size!r}")
        if self.resize_policy not in RESIZE_POLICIES:
            raise DermtoolError(
                f"input spec: resize_policy {self.resize_policy!r} is not one of {', '.join(RESIZE_POLICIES)}"
            )
        if not np.isfinite(self.mean) or not np.isfinite(self.std) or self.std <= 0:
            raise DermtoolError(
                f"input spec: mean must be finite and std a positive number, got mean={self.mean!r}, std={self.std!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict: ``{"image_size", "resize_policy", "mean", "std"}``."""
        values = asdict(self)
        values["mean"] = float(values["mean"])
        values["std"] = float(values["std"])
        return values

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "InputSpec":
        """The inverse of :meth:`to_dict`. Unknown keys are ignored (written by a newer version)."""
        missing = [key for key in ("image_size", "resize_policy", "mean", "std") if key not in values]
        if missing:
            raise DermtoolError(f"input spec: missing key(s) {', '.join(missing)} in {dict(values)!r}")
        image_size = values["image_size"]
        if isinstance(image_size, float) and image_size.is_integer():
            image_size = int(image_size)
        return cls(
            image_size=image_size,
            resize_policy=str(values["resize_policy"]),
            mean=float(values["mean"]),
            std=float(values["std"]),
        )


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise DermtoolError(
            f"expected a uint8 RGB image of shape (height, width, 3), got {image.dtype} {image.shape}"
        )
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise DermtoolError(f"expected a non-empty image, got shape {image.shape}")
    return image


def _pil_resize(image: Image.Image, width: int, height: int) -> Image.Image:
    if image.size == (width, height):
        return image
    return image.resize((width, height), resample=Image.Resampling.BILINEAR)


def resize(image: np.ndarray, size: int, policy: str = "squash") -> np.ndarray:
    """Resize a ``uint8 (H, W, 3)`` RGB image to ``uint8 (size, size, 3)`` with one of :data:`RESIZE_POLICIES`.

    See the module docstring for what each policy does. PIL bilinear filtering throughout.
    """
    image = _check_image(image)
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise DermtoolError(f"resize: size must be a positive integer, got {size!r}")
    size = int(size)
    height, width = image.shape[:2]
    if policy == "center_crop":  # cut on the array: Pillow copies only the square (the same pixels as its crop)
        side = min(height, width)
        top = (height - side) // 2
        left = (width - side) // 2
        image = image[top : top + side, left : left + side]
    if policy not in RESIZE_POLICIES:
        raise DermtoolError(f"resize: policy {policy!r} is not one of {', '.join(RESIZE_POLICIES)}")
    picture = Image.fromarray(np.ascontiguousarray(image))
    if policy in ("squash", "center_crop"):
        result = _pil_resize(picture, size, size)
    elif policy == "pad":
        scale = size / max(height, width)
        new_width = min(size, max(1, round(width * scale)))
        new_height = min(size, max(1, round(height * scale)))
        canvas = Image.new("RGB", (size, size), (0, 0, 0))
        canvas.paste(_pil_resize(picture, new_width, new_height), ((size - new_width) // 2, (size - new_height) // 2))
        result = canvas
    else:
        raise DermtoolError(f"resize: policy {policy!r} is not one of {', '.join(RESIZE_POLICIES)}")
    return np.asarray(result, dtype=np.uint8).copy()


def load_image(path_or_bytes: str | Path | bytes, spec: InputSpec) -> np.ndarray:
    """Decode an image file (or its raw bytes) and resize it: ``uint8 (S, S, 3)``, ready for :func:`normalize`.

    Raises :class:`dermtool.data.images.ImageError` (with ``.reason``) for unreadable files.
    """
    return resize(load_rgb(path_or_bytes), spec.image_size, spec.resize_policy)


def normalize(images: np.ndarray, spec: InputSpec) -> np.ndarray:
    """``(pixels - spec.mean) / spec.std`` as float32, for one image or a batch (uint8 or pixel-scale float).

    Computed in float32 with float32 constants, exactly like :func:`normalize_tf`, so both give
    bit-identical results.
    """
    pixels = np.asarray(images)
    if pixels.ndim < 3 or pixels.shape[-1] != 3:
        raise DermtoolError(f"normalize: expected RGB images (..., height, width, 3), got shape {pixels.shape}")
    return (pixels.astype(np.float32) - np.float32(spec.mean)) / np.float32(spec.std)


def normalize_tf(images: Any, spec: InputSpec) -> Any:
    """The TensorFlow twin of :func:`normalize` (for ``tf.data`` maps): float32 ``(pixels - mean) / std``."""
    import tensorflow as tf

    pixels = tf.cast(images, tf.float32)
    return (pixels - tf.constant(spec.mean, tf.float32)) / tf.constant(spec.std, tf.float32)


__all__ = ["RESIZE_POLICIES", "InputSpec", "resize", "load_image", "normalize", "normalize_tf"]
