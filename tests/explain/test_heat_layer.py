"""The Grad-CAM heat layer the web page lays over the photo: transparent where cold, the photo's aspect."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from dermtool.explain.gradcam import ExplainResult
from dermtool.explain.heat_layer import MAX_OPACITY, VISIBLE_FROM, heat_layer_png, heat_rgba, layer_shape, plain_png


def test_cold_regions_are_see_through_and_the_hottest_is_the_most_opaque() -> None:
    ramp = np.linspace(0.0, 1.0, 101, dtype=np.float32)[None, :]
    alpha = heat_rgba(ramp)[0, :, 3].astype(int)
    assert (alpha[ramp[0] <= VISIBLE_FROM] == 0).all()
    assert alpha[-1] == round(MAX_OPACITY * 255)
    assert (np.diff(alpha) >= 0).all()  # more influence, more colour
    assert heat_rgba(np.array([[np.nan]], np.float32))[0, 0, 3] == 0  # a NaN shows nothing


def test_layer_keeps_the_photo_aspect_and_bounds_its_size() -> None:
    assert layer_shape(150, 200) == (150, 200)
    assert layer_shape(3000, 4000) == (384, 512)
    assert layer_shape(4000, 10) == (512, 1)
    cam = np.full((4, 4), 0.6, np.float32)  # warm everywhere: the coldest region is still see-through
    cam[1:3, 1:3] = 1.0
    result = ExplainResult(cam=cam, overlay=np.zeros((300, 400, 3), np.uint8), label="mel", probabilities={"mel": 1.0},
                           original_shape=(300, 400), image_size=64, resize_policy="squash")
    layer = Image.open(io.BytesIO(heat_layer_png(result)))
    assert layer.mode == "RGBA" and layer.size == (400, 300)
    alpha = np.asarray(layer)[..., 3]
    assert alpha[150, 200] > 100 and alpha[0, 0] == 0  # the hot centre coloured, the cold corner clear
    plain = Image.open(io.BytesIO(plain_png(np.full((5, 7, 3), 9, np.uint8))))
    assert plain.size == (7, 5) and plain.mode == "RGB"
