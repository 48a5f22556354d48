"""The Grad-CAM heat map as a layer a page lays over the photo (or shows beside it), legend left to the page.

:func:`heat_layer_png` draws :class:`~dermtool.explain.gradcam.ExplainResult`'s map, mapped back onto the
original photo (same aspect ratio) and stretched from its coldest (0) to its hottest (1) region, as a
transparent PNG: regions below :data:`VISIBLE_FROM` are fully see-through, so the lesion stays visible;
above it the colour (``jet``: blue, green, yellow, red as the influence grows) becomes more opaque (faint
until hot), up to :data:`MAX_OPACITY`. Nothing is written on the picture: the legend is page text, readable
at any screen size. :func:`plain_png` encodes an RGB array as a PNG.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from dermtool.explain.gradcam import colorize, heatmap_to_original

#: fraction of the hottest value below which the layer is transparent
VISIBLE_FROM = 0.35
#: opacity of the hottest region
MAX_OPACITY = 0.6
#: the longest side of the layer in pixels (the browser scales it onto the photo)
LAYER_MAX_SIDE = 512


def layer_shape(height: int, width: int, max_side: int = LAYER_MAX_SIDE) -> tuple[int, int]:
    """``(height, width)`` of the layer of a ``height x width`` photo: the same aspect, at most ``max_side``."""
    scale = min(1.0, max_side / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def heat_rgba(heatmap: np.ndarray) -> np.ndarray:
    """uint8 RGBA of a [0, 1] heat map: ``jet`` colours, transparent below :data:`VISIBLE_FROM`."""
    values = np.clip(np.nan_to_num(np.asarray(heatmap, dtype=np.float32)), 0.0, 1.0)
    strength = np.clip((values - VISIBLE_FROM) / (1.0 - VISIBLE_FROM), 0.0, 1.0) ** 1.5  # faint until hot
    alpha = np.rint(strength * MAX_OPACITY * 255).astype(np.uint8)
    return np.dstack([colorize(values), alpha])


def heat_layer_png(result, max_side: int = LAYER_MAX_SIDE) -> bytes:
    """The transparent heat layer (PNG) of a Grad-CAM ``result``, the original photo's aspect ratio."""
    height, width = layer_shape(*result.original_shape, max_side=max_side)
    heatmap = heatmap_to_original(result.cam, height, width, result.image_size, result.resize_policy)
    low, high = float(heatmap.min()), float(heatmap.max())
    heatmap = (heatmap - low) / (high - low) if high > low else np.zeros_like(heatmap)  # coldest 0, hottest 1
    buffer = io.BytesIO()
    Image.fromarray(heat_rgba(heatmap), mode="RGBA").save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def plain_png(pixels: np.ndarray) -> bytes:
    """A PNG of a uint8 RGB array, nothing drawn on it."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()
