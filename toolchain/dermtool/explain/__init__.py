"""Predict and explain: calibrated outcomes per image, the lesion check, Grad-CAM.

- :mod:`dermtool.explain.predict`: :class:`~dermtool.explain.predict.Predictor` (run folder or .tflite) and
  the outcome rule (``not_a_lesion`` > ``refer`` > ``uncertain`` > ``benign``).
- :mod:`dermtool.explain.lesion_check`: the model's second head behind ``not_a_lesion`` ("no skin lesion in
  this photo"), carried inside the exported .tflite; :mod:`dermtool.explain.lesion_check_fit` fits it
  (``dermtool lesion-check RUN``) on lesions against :mod:`dermtool.explain.non_lesion`'s generated images
  and :mod:`dermtool.explain.skin_crops`' lesion-free skin.
- :mod:`dermtool.explain.gradcam`: Grad-CAM heat maps on the float model, overlays as PNG.
- :mod:`dermtool.explain.evaluate`: does the heat map point at the lesion (pointing game, energy in mask)?
- :mod:`dermtool.explain.non_lesion`: generated non-lesion images, to fit and measure the lesion check.

This package is also *callable*: ``dermtool.explain(image, model, class_name=None)`` is the Grad-CAM
convenience function of the public API (:func:`dermtool.explain.gradcam.explain`). The package and the
function share the name ``dermtool.explain``; making the module object callable keeps both working whichever
was imported first. Nothing heavy (TensorFlow, matplotlib) is imported here.
"""

from __future__ import annotations

import sys
import types
from typing import Any


class _CallableModule(types.ModuleType):
    def __call__(self, image: Any, model: Any, class_name: str | None = None):
        """Grad-CAM of ``image`` with the run folder ``model`` (see :func:`dermtool.explain.gradcam.explain`)."""
        from dermtool.explain.gradcam import explain

        return explain(image, model, class_name=class_name)


sys.modules[__name__].__class__ = _CallableModule
