"""MobileNet ImageNet weights: offline they fail at once; a file in the Keras cache is used without network."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from dermtool import DermtoolError
from dermtool.config import ModelConfig
from dermtool.models import mobilenet
from dermtool.models.registry import build_classifier


@pytest.fixture
def empty_keras_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "keras-home"
    monkeypatch.setattr(mobilenet, "keras_cache_directories", lambda: [cache])
    return cache


def test_imagenet_offline_fails_at_once_with_advice(empty_keras_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DERMTOOL_OFFLINE", raising=False)
    if mobilenet.can_reach_weights_host():
        pytest.skip("storage.googleapis.com is reachable: this test is about the offline case")
    started = time.perf_counter()
    with pytest.raises(DermtoolError) as error:
        build_classifier(ModelConfig(name="mobilenet-v3-small", weights="imagenet"), 7, 96)
    assert time.perf_counter() - started < 5.0
    message = str(error.value)
    assert "offline" in message and "efficientnet-lite0" in message and "model.weights=PATH" in message
    assert "weights_mobilenet_v3_small_minimalistic_224_1.0_float_no_top_v2.h5" in message


def test_forced_offline_mode_needs_no_network_attempt(empty_keras_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DERMTOOL_OFFLINE", "1")
    assert not mobilenet.can_reach_weights_host()
    with pytest.raises(DermtoolError, match="cannot be reached"):
        mobilenet.imagenet_weights_file("mobilenet-v2", 160)
    assert mobilenet.keras_weights_file("mobilenet-v2", 100).file_name.endswith("_1.0_224_no_top.h5")


@pytest.mark.slow
def test_imagenet_weights_from_the_keras_cache_load_in_layer_order(empty_keras_cache: Path) -> None:
    """A Keras-applications weights file (original layer names) in ~/.keras/models is used offline."""
    import tf_keras as keras

    application = keras.applications.MobileNetV2(input_shape=(96, 96, 3), include_top=False, weights=None)
    expected = application.get_layer("block_5_depthwise").get_weights()[0]
    weights_file = empty_keras_cache / "models" / mobilenet.keras_weights_file("mobilenet-v2", 96).file_name
    weights_file.parent.mkdir(parents=True)
    application.save_weights(str(weights_file))

    model = build_classifier(ModelConfig(name="mobilenet-v2", weights="imagenet"), 7, 96)
    np.testing.assert_array_equal(model.get_layer("block5_dwconv").get_weights()[0], expected)

    # The same file given as a path (a weights file the user supplies).
    model = build_classifier(ModelConfig(name="mobilenet-v2", weights=str(weights_file)), 7, 96)
    np.testing.assert_array_equal(model.get_layer("block5_dwconv").get_weights()[0], expected)
