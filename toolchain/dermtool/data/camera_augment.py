"""Camera and device variation for training: what a phone camera or another dermatoscope does to a picture.

HAM10000 is dermoscopic: one kind of device, the lesion centred and sharp, no compression artefacts. A
health worker's phone photo differs in ways a model should not care about. :func:`camera_augment` applies,
per image and at random (each off when its :class:`dermtool.config.AugmentConfig` value is 0):

- ``grid``: on that fraction of the images, thin dark ruler/grid lines at a random period and offset;
- ``vignette``: the corners darkened by up to that fraction (a radial fall-off, as lens shading);
- ``white_balance``: per-channel gains ``exp(u)`` with ``u`` in ``[-white_balance, white_balance]`` (colour casts);
- ``blur``: on half of the images, a Gaussian defocus with sigma up to that many pixels;
- ``motion_blur``: on a quarter of the images, a line kernel of up to that many pixels at a random angle;
- ``noise``: Gaussian sensor noise with a standard deviation up to that fraction of 255;
- ``jpeg_quality``: on half of the images, JPEG re-compression at a quality in ``[jpeg_quality, 95]``;
- ``downscale``: on half of the images, a resize to a side ``(1 - u * downscale)`` times the input and back,
  each way with a resampler drawn at random (bilinear with or without antialiasing, area, bicubic,
  nearest): a camera frame of another size reaching the model through another runtime's resizer.

The geometric part of phone photos (the lesion small in the frame, off-centre) is the affine warp's
``zoom_out`` and ``shift`` (:mod:`dermtool.data.pipeline`). Everything works on float pixels in [0, 255]
with stateless random ops keyed by the seed: the same seed and images give the same output. Evaluation
never calls it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from dermtool import DermtoolError
from dermtool.config import AugmentConfig

#: Salts of this module's random draws (split from the batch seed with a salt of their own).
_GRID, _GRID_PERIOD, _GRID_OFFSET, _VIGNETTE, _WHITE_BALANCE = 0, 1, 2, 3, 4
_BLUR_PICK, _BLUR_SIGMA, _MOTION_PICK, _MOTION_LENGTH, _MOTION_ANGLE = 5, 6, 7, 8, 9
_NOISE_STD, _NOISE, _JPEG_PICK, _JPEG_QUALITY = 10, 11, 12, 13
_DOWN_PICK, _DOWN_SCALE, _DOWN_METHOD, _UP_METHOD = 14, 15, 16, 17
_DRAWS = 18
_SEED_SALT = 7919

#: Resamplers drawn for the down- and up-scaling: (tf.image.resize method, antialias).
RESAMPLERS = (("bilinear", False), ("bilinear", True), ("area", False), ("bicubic", False), ("nearest", False))

CAMERA_FIELDS = ("zoom_out", "shift", "white_balance", "vignette", "blur", "motion_blur", "noise", "downscale",
                 "jpeg_quality", "grid")


def check_camera_config(augment: AugmentConfig) -> None:
    """A clear error for values outside their range."""
    for name in CAMERA_FIELDS:
        value = getattr(augment, name)
        if not math.isfinite(value) or value < 0:
            raise DermtoolError(f"augment.{name} must be 0 (off) or a positive number, got {value!r}")
    for name in ("shift", "vignette", "downscale", "grid"):
        if getattr(augment, name) >= 1:
            raise DermtoolError(f"augment.{name} is a fraction and must be below 1, got {getattr(augment, name)!r}")
    if augment.jpeg_quality > 95:
        raise DermtoolError(f"augment.jpeg_quality is the lowest JPEG quality (1-95), got {augment.jpeg_quality!r}")
    if augment.motion_blur > 31:
        raise DermtoolError(f"augment.motion_blur is a length in pixels (at most 31), got {augment.motion_blur!r}")


def camera_enabled(augment: AugmentConfig | None) -> bool:
    """Whether any pixel-level camera transform is on (zoom_out and shift belong to the affine warp)."""
    return augment is not None and any(
        getattr(augment, name) > 0 for name in CAMERA_FIELDS if name not in ("zoom_out", "shift"))


def _uniform(shape: Any, seed: Any, low: float = 0.0, high: float = 1.0) -> Any:
    import tensorflow as tf

    return tf.random.stateless_uniform(shape, seed=seed, minval=low, maxval=high)


def _choose(pick: Any, changed: Any, original: Any) -> Any:
    """Per image: ``changed`` where ``pick`` (shape [B]) is true, else ``original``."""
    import tensorflow as tf

    return tf.where(pick[:, None, None, None], changed, original)


def _grid(pixels: Any, fraction: float, seeds: Any) -> Any:
    import tensorflow as tf

    shape = tf.shape(pixels)
    batch, height, width = shape[0], shape[1], shape[2]
    period = tf.floor(_uniform([batch, 1, 1], seeds[_GRID_PERIOD], 10.0, 40.0))
    offset = tf.floor(_uniform([batch, 2, 1, 1], seeds[_GRID_OFFSET], 0.0, 40.0))
    rows = tf.cast(tf.range(height), tf.float32)[None, :, None]
    columns = tf.cast(tf.range(width), tf.float32)[None, None, :]
    lines = tf.logical_or(tf.math.floormod(rows + offset[:, 0], period) < 1.0,
                          tf.math.floormod(columns + offset[:, 1], period) < 1.0)
    darkened = pixels * (1.0 - 0.5 * tf.cast(lines, tf.float32)[..., None])
    return _choose(_uniform([batch], seeds[_GRID]) < fraction, darkened, pixels)


def _vignette(pixels: Any, strength: float, seeds: Any) -> Any:
    import tensorflow as tf

    shape = tf.shape(pixels)
    batch, height, width = shape[0], shape[1], shape[2]
    y = tf.linspace(-1.0, 1.0, height)[:, None]
    x = tf.linspace(-1.0, 1.0, width)[None, :]
    radius = (x * x + y * y) / 2.0  # 0 at the centre, 1 in the corners
    amount = _uniform([batch, 1, 1, 1], seeds[_VIGNETTE], 0.0, strength)
    return pixels * (1.0 - amount * radius[None, :, :, None])


def _separable_blur(pixels: Any, sigma: Any, radius: int) -> Any:
    """Gaussian blur with a (possibly tensor) sigma, reflected borders."""
    import tensorflow as tf

    taps = tf.cast(tf.range(-radius, radius + 1), tf.float32)
    kernel = tf.exp(-0.5 * tf.square(taps / tf.maximum(sigma, 1e-3)))
    kernel = kernel / tf.reduce_sum(kernel)
    padded = tf.pad(pixels, [[0, 0], [radius, radius], [radius, radius], [0, 0]], mode="REFLECT")
    horizontal = tf.tile(tf.reshape(kernel, [1, -1, 1, 1]), [1, 1, 3, 1])
    vertical = tf.tile(tf.reshape(kernel, [-1, 1, 1, 1]), [1, 1, 3, 1])
    blurred = tf.nn.depthwise_conv2d(padded, horizontal, [1, 1, 1, 1], "VALID")
    return tf.nn.depthwise_conv2d(blurred, vertical, [1, 1, 1, 1], "VALID")


def _motion_kernel(length: Any, angle: Any, size: int) -> Any:
    """A ``size x size`` line kernel of ``length`` pixels through the centre at ``angle`` (radians)."""
    import tensorflow as tf

    taps = tf.cast(tf.range(size), tf.float32) - (size - 1) / 2.0
    y, x = taps[:, None], taps[None, :]
    along = x * tf.cos(angle) + y * tf.sin(angle)
    across = -x * tf.sin(angle) + y * tf.cos(angle)
    weight = tf.nn.relu(1.0 - tf.abs(across)) * tf.cast(tf.abs(along) <= length / 2.0, tf.float32)
    weight = weight / tf.maximum(tf.reduce_sum(weight), 1e-6)
    return tf.tile(weight[:, :, None, None], [1, 1, 3, 1])


def _jpeg(pixels: Any, lowest_quality: int, seeds: Any) -> Any:
    import tensorflow as tf

    batch = tf.shape(pixels)[0]
    pick = _uniform([batch], seeds[_JPEG_PICK]) < 0.5
    quality = tf.cast(tf.floor(_uniform([batch], seeds[_JPEG_QUALITY], float(lowest_quality), 96.0)), tf.int32)
    as_uint8 = tf.cast(tf.round(tf.clip_by_value(pixels, 0.0, 255.0)), tf.uint8)

    def one(arguments: Any) -> Any:
        image, chosen, image_quality = arguments
        return tf.cond(chosen, lambda: tf.image.adjust_jpeg_quality(image, image_quality), lambda: image)

    compressed = tf.map_fn(one, (as_uint8, pick, quality), fn_output_signature=tf.uint8)
    return _choose(pick, tf.cast(compressed, tf.float32), pixels)


def _resize_with(pixels: Any, size: Any, method_index: Any) -> Any:
    import tensorflow as tf

    branches = [
        (lambda method=method, antialias=antialias: tf.image.resize(pixels, size, method=method, antialias=antialias))
        for method, antialias in RESAMPLERS
    ]
    return tf.switch_case(method_index, branches)


def _downscale(pixels: Any, amount: float, seeds: Any) -> Any:
    import tensorflow as tf

    shape = tf.shape(pixels)
    batch, height, width = shape[0], shape[1], shape[2]
    factor = 1.0 - _uniform([], seeds[_DOWN_SCALE], 0.0, amount)
    small = tf.maximum(8, tf.cast(tf.round(tf.cast(tf.stack([height, width]), tf.float32) * factor), tf.int32))
    down_method = tf.random.stateless_uniform([], seeds[_DOWN_METHOD], 0, len(RESAMPLERS), dtype=tf.int32)
    up_method = tf.random.stateless_uniform([], seeds[_UP_METHOD], 0, len(RESAMPLERS), dtype=tf.int32)
    reduced = _resize_with(pixels, small, down_method)
    restored = _resize_with(reduced, tf.stack([height, width]), up_method)
    restored = tf.reshape(restored, tf.shape(pixels))
    return _choose(_uniform([batch], seeds[_DOWN_PICK]) < 0.5, restored, pixels)


def seed_pair(seed: Any) -> Any:
    """An int or a shape-[2] integer tensor -> the shape-[2] int64 seed stateless random ops take (the
    augmentation pipeline's and the camera transforms' one rule)."""
    import tensorflow as tf

    if isinstance(seed, (int, np.integer)):
        return tf.constant([int(seed), 0], dtype=tf.int64)
    seed = tf.cast(tf.convert_to_tensor(seed), tf.int64)
    seed.shape.assert_is_compatible_with([2])
    return seed


def camera_augment(pixels: Any, augment: AugmentConfig, seed: Any) -> Any:
    """Apply the camera transforms of ``augment`` to float pixels ``(B, H, W, 3)`` in [0, 255]; returns
    float32 pixels clipped to [0, 255]. ``seed`` is a shape-[2] integer tensor (or an int)."""
    import tensorflow as tf

    check_camera_config(augment)
    pixels = tf.cast(pixels, tf.float32)
    base = seed_pair(seed)
    seeds = tf.random.experimental.stateless_split(base + tf.constant([0, _SEED_SALT], tf.int64), num=_DRAWS)
    batch = tf.shape(pixels)[0]
    if augment.grid > 0:
        pixels = _grid(pixels, augment.grid, seeds)
    if augment.vignette > 0:
        pixels = _vignette(pixels, augment.vignette, seeds)
    if augment.white_balance > 0:
        gains = tf.exp(_uniform([batch, 1, 1, 3], seeds[_WHITE_BALANCE], -augment.white_balance,
                                augment.white_balance))
        pixels = pixels * gains
    if augment.blur > 0:
        sigma = _uniform([], seeds[_BLUR_SIGMA], 0.3, max(augment.blur, 0.31))
        blurred = _separable_blur(pixels, sigma, radius=int(math.ceil(3 * augment.blur)))
        pixels = _choose(_uniform([batch], seeds[_BLUR_PICK]) < 0.5, blurred, pixels)
    if augment.motion_blur > 1:
        size = int(augment.motion_blur) | 1  # odd
        length = _uniform([], seeds[_MOTION_LENGTH], 2.0, float(size) + 1e-3)
        angle = _uniform([], seeds[_MOTION_ANGLE], 0.0, math.pi)
        radius = size // 2
        padded = tf.pad(pixels, [[0, 0], [radius, radius], [radius, radius], [0, 0]], mode="REFLECT")
        smeared = tf.nn.depthwise_conv2d(padded, _motion_kernel(length, angle, size), [1, 1, 1, 1], "VALID")
        pixels = _choose(_uniform([batch], seeds[_MOTION_PICK]) < 0.25, smeared, pixels)
    if augment.noise > 0:
        std = 255.0 * _uniform([batch, 1, 1, 1], seeds[_NOISE_STD], 0.0, augment.noise)
        pixels = pixels + std * tf.random.stateless_normal(tf.shape(pixels), seed=seeds[_NOISE])
    pixels = tf.clip_by_value(pixels, 0.0, 255.0)
    if augment.jpeg_quality > 0:
        pixels = _jpeg(pixels, int(augment.jpeg_quality), seeds)
    if augment.downscale > 0:
        pixels = tf.clip_by_value(_downscale(pixels, augment.downscale, seeds), 0.0, 255.0)
    return pixels


__all__ = ["CAMERA_FIELDS", "RESAMPLERS", "camera_augment", "camera_enabled", "check_camera_config", "seed_pair"]
