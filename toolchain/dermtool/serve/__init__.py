"""The local web app (``dermtool serve``): a page and a JSON API around one model, on this computer.

``create_app(model, ...)`` builds the FastAPI application (see :mod:`dermtool.serve.app` for the endpoints);
``dermtool serve --model RUN_or_MODEL`` runs it with uvicorn on 127.0.0.1.

dermtool is a decision-support research tool, not a medical device.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def create_app(model: Any, **options: Any):
    """The FastAPI app serving ``model`` (imported lazily: FastAPI is not needed by the rest of dermtool)."""
    from dermtool.serve.app import create_app as _create_app

    return _create_app(model, **options)
