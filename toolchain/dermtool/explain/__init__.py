"""Explain: why the model answered what it answered, Grad-CAM.

- :mod:`dermtool.explain.gradcam`: Grad-CAM heat maps on the float model, overlays as PNG.
- :mod:`dermtool.explain.heat_layer`: the heat map as a transparent layer (the web app lays it over the photo).
- :mod:`dermtool.explain.evaluate`: does the heat map point at the lesion (pointing game, energy in mask)?

The answer itself (probabilities, the lesion check, the outcome, several photos of one lesion) is made in
:mod:`dermtool.prediction`.

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
