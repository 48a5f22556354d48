"""EfficientNet-Lite architecture and the conversion fingerprint of pretrained-weights.md."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dermtool.models import efficientnet_lite
from dermtool.models.efficientnet_lite import block_configs, round_filters


def synthetic_image(size: int = 224) -> np.ndarray:
    """pixel[i, j, c] = (7 i + 13 j + 29 c) % 256, preprocessed as (pixel - 127) / 128, batch of one."""
    rows, columns, channels = np.meshgrid(np.arange(size), np.arange(size), np.arange(3), indexing="ij")
    pixels = ((7 * rows + 13 * columns + 29 * channels) % 256).astype(np.float32)
    return ((pixels - 127.0) / 128.0)[None]


def test_scaling_rules_match_upstream() -> None:
    assert [round_filters(f, 1.1) for f in (16, 24, 40, 80, 112, 192, 320)] == [16, 24, 48, 88, 120, 208, 352]
    assert [len(block_configs(name)) for name in efficientnet_lite.VARIANTS] == [16, 21, 21]
    lite0 = block_configs("efficientnet-lite0")
    assert [block.stride for block in lite0].count(2) == 4
    assert lite0[0].expand_ratio == 1 and lite0[-1].output_filters == 320
    assert sum(block.has_residual for block in lite0) == 9


@pytest.mark.slow
def test_imagenet_conversion_fingerprint(with_lite0_weights: Path) -> None:
    """Full 1000-class Lite0 on a synthetic image: top-5 indices exact, logits within 1e-3."""
    import tf_keras as keras

    from dermtool.models.weights import assign_named_weights, import_weights, load_converted_weights

    model = efficientnet_lite.build_efficientnet_lite("efficientnet-lite0", 224, include_top=True)
    report = assign_named_weights(
        model,
        load_converted_weights(import_weights("efficientnet-lite0")),
        required_layers=[layer.name for layer in model.layers if layer.weights],
    )
    assert report.unused_layers == () and "predictions" in report.loaded_layers
    image = synthetic_image()
    logits = model(image, training=False).numpy()[0]
    top5 = np.argsort(-logits)[:5]
    assert top5.tolist() == [905, 807, 753, 581, 789]
    np.testing.assert_allclose(logits[top5], [6.5515, 6.3605, 4.8735, 4.3756, 4.0160], atol=1e-3)
    np.testing.assert_allclose(logits[:5], [-0.5892, -0.2914, 1.3787, -1.6329, -0.7689], atol=1e-3)

    # The global-pooled 1280-d feature (the no-top backbone followed by global average pooling).
    pooled = keras.Model(model.input, model.get_layer("avg_pool").output)(image, training=False).numpy()
    assert pooled.shape == (1, 1280)
    assert abs(pooled.mean() - 0.10975) < 1e-3 and abs(pooled.std() - 0.45984) < 1e-3
