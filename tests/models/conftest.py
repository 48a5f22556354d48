"""Fixtures of the model-zoo tests: a private weights cache per test, lite0 converted once per session."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def private_weights_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own empty $DERMTOOL_CACHE (nothing is written to ~/.cache)."""
    cache = tmp_path / "dermtool-cache"
    monkeypatch.setenv("DERMTOOL_CACHE", str(cache))
    return cache


@pytest.fixture(scope="session")
def lite0_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache folder holding the converted EfficientNet-Lite0 ImageNet weights (converted once)."""
    from dermtool.models.weights import import_weights

    cache = tmp_path_factory.mktemp("lite0-cache")
    import_weights("efficientnet-lite0", cache)
    return cache


@pytest.fixture
def with_lite0_weights(lite0_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point $DERMTOOL_CACHE at the session cache, so "imagenet" lite0 weights are a cache hit."""
    monkeypatch.setenv("DERMTOOL_CACHE", str(lite0_cache))
    return lite0_cache
