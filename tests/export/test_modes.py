"""Every named export mode converts the tiny run and runs in LiteRT with the right tensor types."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from dermtool.run import RunFolder
from dermtool.runtime import TFLiteModel

EXPECTED_TYPES = {
    "float": ("float32", "float32"),
    "fp16": ("float32", "float32"),
    "dynamic": ("float32", "float32"),
    "int8": ("uint8", "uint8"),
}


@pytest.fixture(scope="module")
def val_images(tiny_run_validation) -> tuple[np.ndarray, np.ndarray]:
    """The tiny run's validation images (load_image output) and labels."""
    return tiny_run_validation.images, tiny_run_validation.labels


@pytest.mark.parametrize("mode", list(EXPECTED_TYPES))
def test_mode_runs_in_litert_with_its_tensor_types(mode, exported_models, exported_results, tiny_run, val_images):
    path = exported_models[mode]
    result = exported_results[mode]
    model = TFLiteModel(path)
    run = RunFolder(tiny_run)
    input_type, output_type = EXPECTED_TYPES[mode]
    assert model.input.dtype == input_type
    assert model.output.dtype == output_type
    assert model.input_shape == (1, run.input_spec.image_size, run.input_spec.image_size, 3)
    assert model.num_classes == len(run.labels)
    # the result's sizes are the file's
    content = path.read_bytes()
    assert result.bytes == len(content) == path.stat().st_size
    assert result.gzip_bytes == len(gzip.compress(content, compresslevel=9))
    assert result.mode == mode
    # probabilities on real validation images: rows sum to one
    images, _ = val_images
    probabilities = model.predict(images[:8])
    assert probabilities.shape == (min(8, len(images)), len(run.labels))
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=0.02)


def test_int8_takes_raw_pixels(exported_models, exported_results, tiny_run):
    """uint8 input: scale 1/std and zero point mean (1/128 and 127 for EfficientNet-Lite0), recorded."""
    spec = RunFolder(tiny_run).input_spec
    model = TFLiteModel(exported_models["int8"])
    scale, zero_point = model.input_quantization
    assert scale == pytest.approx(1.0 / spec.std, rel=1e-6)
    assert zero_point == round(spec.mean)
    if (spec.mean, spec.std) == (127.0, 128.0):  # EfficientNet-Lite0, the tiny run's backbone
        assert (scale, zero_point) == (1 / 128, 127)
    recorded = exported_results["int8"].input_quantization
    assert recorded == {"dtype": "uint8", "scale": scale, "zero_point": zero_point}


def test_sizes_shrink_with_quantization(exported_results):
    sizes = {mode: result.bytes for mode, result in exported_results.items()}
    assert sizes["fp16"] < 0.6 * sizes["float"]
    assert sizes["dynamic"] < 0.35 * sizes["float"]
    assert sizes["int8"] < 0.35 * sizes["float"]


def test_float_export_is_the_calibrated_float_model(exported_models, tiny_run, tiny_run_validation):
    """The temperature is folded into the logits: the float .tflite gives the run's calibrated probabilities
    (``softmax(logits / T)`` as RunFolder computes them), not the raw softmax."""
    from dermtool import metrics

    run = RunFolder(tiny_run)
    images, expected = tiny_run_validation.images, tiny_run_validation.float_probabilities
    exported = TFLiteModel(exported_models["float"]).predict(images)
    assert np.abs(exported - expected).max() < 1e-4
    logits = np.log(np.clip(expected, 1e-30, 1.0)) * run.temperature  # the logits, up to a constant per row
    if abs(run.temperature - 1.0) > 0.05:
        assert np.abs(exported - metrics.softmax(logits)).max() > 1e-3  # T = 1 would give this instead


def test_quantized_modes_stay_close_to_float(exported_models, val_images):
    images, _ = val_images
    reference = TFLiteModel(exported_models["float"]).predict(images)
    for mode, tolerance in (("fp16", 0.01), ("dynamic", 0.15), ("int8", 0.15)):
        probabilities = TFLiteModel(exported_models[mode]).predict(images)
        assert np.abs(probabilities - reference).mean() < tolerance / 3, mode
