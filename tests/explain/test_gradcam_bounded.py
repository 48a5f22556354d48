"""Issue #19: Grad-CAM memory is bounded: the map is computed at model resolution and upsampled lazily, the
overlay drawn at most OVERLAY_MAX_PIXELS large."""

from __future__ import annotations

import numpy as np


def test_explain_of_a_large_image_is_bounded(probe_explainer) -> None:
    """Grad-CAM of a 9-megapixel image: the map stays at model resolution, the overlay at most 4 MP."""
    from dermtool.explain.gradcam import OVERLAY_MAX_PIXELS

    large = np.full((2600, 3500, 3), 150, dtype=np.uint8)
    result = probe_explainer.explain(large)
    height, width = result.overlay.shape[:2]
    assert height * width <= OVERLAY_MAX_PIXELS and abs(width / height - 3500 / 2600) < 0.01
    assert result.cam.shape[0] <= probe_explainer.input_spec.image_size
    assert result._heatmap is None  # no full-size float map unless asked for
    assert result.heatmap.shape == (2600, 3500)
