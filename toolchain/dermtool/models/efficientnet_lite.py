"""EfficientNet-Lite0/1/2 as one flat tf_keras functional model.

EfficientNet-Lite is EfficientNet made for mobile accelerators and int8: no squeeze-excite, ReLU6
instead of swish, and the stem (32 channels) and head (1280 channels) kept fixed when the network is
scaled. Width/depth multipliers and the default input size per variant:

    efficientnet-lite0  width 1.0  depth 1.0  224 px   16 blocks
    efficientnet-lite1  width 1.0  depth 1.1  240 px   21 blocks
    efficientnet-lite2  width 1.1  depth 1.2  260 px   21 blocks

The input is the already normalised image, ``(pixel - 127) / 128`` (no Rescaling layer: TF-MOT cannot
quantize one). Padding is ``"same"`` (TensorFlow SAME, as in the upstream TPU checkpoints),
BatchNormalization uses epsilon 1e-3 and momentum 0.99.

Layer names (``N`` = flat block index, 0 .. block count - 1)::

    image                                  Input
    stem_conv, stem_bn, stem_activation    3x3/2 conv, 32 channels
    blockN_expand_conv, blockN_expand_bn, blockN_expand_activation    (absent when expansion is 1)
    blockN_dwconv, blockN_dwconv_bn, blockN_dwconv_activation
    blockN_project_conv, blockN_project_bn
    blockN_drop, blockN_add                (stride 1 and equal channels; drop only with drop_connect_rate)
    head_conv, head_bn, head_activation    1x1 conv, 1280 channels (the last conv layer, for Grad-CAM)
    avg_pool, predictions                  only with include_top: 1000 ImageNet logits (no softmax)

Example::

    model = build_efficientnet_lite("efficientnet-lite0", image_size=224)   # no top, output 7x7x1280
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dermtool import DermtoolError

if TYPE_CHECKING:  # pragma: no cover
    import tf_keras as keras

STEM_FILTERS = 32
HEAD_FILTERS = 1280
BATCH_NORM_EPSILON = 1e-3
BATCH_NORM_MOMENTUM = 0.99
DEPTH_DIVISOR = 8
INPUT_MEAN = 127.0
INPUT_STD = 128.0


@dataclass(frozen=True)
class StageArgs:
    """One stage of the EfficientNet-B0 / Lite0 base network (before scaling)."""

    repeats: int
    kernel_size: int
    stride: int
    expand_ratio: int
    input_filters: int
    output_filters: int


BASE_STAGES: tuple[StageArgs, ...] = (
    StageArgs(1, 3, 1, 1, 32, 16),
    StageArgs(2, 3, 2, 6, 16, 24),
    StageArgs(2, 5, 2, 6, 24, 40),
    StageArgs(3, 3, 2, 6, 40, 80),
    StageArgs(3, 5, 1, 6, 80, 112),
    StageArgs(4, 5, 2, 6, 112, 192),
    StageArgs(1, 3, 1, 6, 192, 320),
)


@dataclass(frozen=True)
class LiteVariant:
    name: str
    width: float
    depth: float
    default_image_size: int
    dropout: float  # upstream top dropout (informational; dermtool's classifier head has its own)


VARIANTS: dict[str, LiteVariant] = {
    variant.name: variant
    for variant in (
        LiteVariant("efficientnet-lite0", 1.0, 1.0, 224, 0.2),
        LiteVariant("efficientnet-lite1", 1.0, 1.1, 240, 0.2),
        LiteVariant("efficientnet-lite2", 1.1, 1.2, 260, 0.3),
    )
}


@dataclass(frozen=True)
class BlockConfig:
    """One MBConv block after scaling, in flat order."""

    index: int
    kernel_size: int
    stride: int
    expand_ratio: int
    input_filters: int
    output_filters: int

    @property
    def has_residual(self) -> bool:
        return self.stride == 1 and self.input_filters == self.output_filters


def round_filters(filters: int, width: float, divisor: int = DEPTH_DIVISOR) -> int:
    """Channel count scaled by ``width`` and rounded to a multiple of ``divisor`` (as upstream)."""
    if not width:
        return filters
    scaled = filters * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * scaled:  # never round down by more than 10 %
        rounded += divisor
    return int(rounded)


def round_repeats(repeats: int, depth: float) -> int:
    return int(math.ceil(depth * repeats))


def get_variant(name: str) -> LiteVariant:
    try:
        return VARIANTS[name]
    except KeyError:
        raise DermtoolError(f"unknown EfficientNet-Lite variant {name!r}; known: {', '.join(VARIANTS)}") from None


def block_configs(name: str) -> list[BlockConfig]:
    """The flat list of blocks of a variant (Lite keeps the first and last stage's repeats fixed)."""
    variant = get_variant(name)
    blocks: list[BlockConfig] = []
    previous_filters = STEM_FILTERS
    for stage_index, stage in enumerate(BASE_STAGES):
        output_filters = round_filters(stage.output_filters, variant.width)
        fixed = stage_index in (0, len(BASE_STAGES) - 1)
        repeats = stage.repeats if fixed else round_repeats(stage.repeats, variant.depth)
        for repeat in range(repeats):
            blocks.append(
                BlockConfig(
                    index=len(blocks),
                    kernel_size=stage.kernel_size,
                    stride=stage.stride if repeat == 0 else 1,
                    expand_ratio=stage.expand_ratio,
                    input_filters=previous_filters,
                    output_filters=output_filters,
                )
            )
            previous_filters = output_filters
    return blocks


def build_efficientnet_lite(
    name: str,
    image_size: int | None = None,
    include_top: bool = False,
    classes: int = 1000,
    drop_connect_rate: float = 0.0,
    input_layer: Any = None,
) -> "keras.Model":
    """Build EfficientNet-Lite ``name`` (random weights) as one flat functional model.

    ``include_top`` adds ``avg_pool`` and ``predictions`` (``classes`` logits, no softmax) as in the
    upstream checkpoint; without it the output is ``head_activation`` (S/32 x S/32 x 1280).
    ``drop_connect_rate`` > 0 adds upstream's stochastic depth (``blockN_drop``, linearly increasing
    per block) before each residual add; the default 0 adds no such layers. ``input_layer`` (a weightless
    Keras layer, e.g. colour constancy) runs on the input before ``stem_conv``.
    """
    import tf_keras as keras

    variant = get_variant(name)
    image_size = image_size or variant.default_image_size
    if image_size < 32:
        raise DermtoolError(f"image size must be at least 32 pixels (got {image_size})")
    layers = keras.layers

    def batch_norm(layer_name: str) -> keras.layers.Layer:
        return layers.BatchNormalization(epsilon=BATCH_NORM_EPSILON, momentum=BATCH_NORM_MOMENTUM, name=layer_name)

    def relu6(layer_name: str) -> keras.layers.Layer:
        return layers.ReLU(6.0, name=layer_name)

    image = keras.Input(shape=(image_size, image_size, 3), dtype="float32", name="image")
    x = image if input_layer is None else input_layer(image)
    x = layers.Conv2D(STEM_FILTERS, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(x)
    x = batch_norm("stem_bn")(x)
    x = relu6("stem_activation")(x)

    blocks = block_configs(name)
    for block in blocks:
        prefix = f"block{block.index}_"
        shortcut = x
        input_channels = x.shape[-1]
        if block.expand_ratio != 1:
            x = layers.Conv2D(
                input_channels * block.expand_ratio, 1, padding="same", use_bias=False, name=prefix + "expand_conv"
            )(x)
            x = batch_norm(prefix + "expand_bn")(x)
            x = relu6(prefix + "expand_activation")(x)
        x = layers.DepthwiseConv2D(
            block.kernel_size, strides=block.stride, padding="same", use_bias=False, name=prefix + "dwconv"
        )(x)
        x = batch_norm(prefix + "dwconv_bn")(x)
        x = relu6(prefix + "dwconv_activation")(x)
        x = layers.Conv2D(block.output_filters, 1, padding="same", use_bias=False, name=prefix + "project_conv")(x)
        x = batch_norm(prefix + "project_bn")(x)
        if block.stride == 1 and input_channels == block.output_filters:
            rate = drop_connect_rate * block.index / len(blocks)
            if rate > 0:
                x = layers.Dropout(rate, noise_shape=(None, 1, 1, 1), name=prefix + "drop")(x)
            x = layers.Add(name=prefix + "add")([x, shortcut])

    x = layers.Conv2D(HEAD_FILTERS, 1, padding="same", use_bias=False, name="head_conv")(x)
    x = batch_norm("head_bn")(x)
    x = relu6("head_activation")(x)
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = layers.Dense(classes, name="predictions")(x)
    return keras.Model(image, x, name=name.replace("-", "_"))
