"""The shades-of-grey colour-constancy layer: its arithmetic on real photos, the config, the classifier,
saving, TF-MOT (QAT, pruning) and int8 conversion."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dermtool import DermtoolError
from dermtool.config import ModelConfig, load_config
from dermtool.data.preprocess import InputSpec, load_image, normalize
from dermtool.models import color_constancy
from dermtool.models.registry import build_classifier

SIZE = 64
SPEC = InputSpec(image_size=SIZE, resize_policy="squash", mean=127.0, std=128.0)


def photos(small_ham: Path, small_pad: Path, start: int, count: int) -> np.ndarray:
    """``count`` dermoscopic and ``count`` smartphone photos, uint8 (2 * count, 64, 64, 3)."""
    paths = (sorted((small_ham / "images").glob("*.jpg"))[start:start + count]
             + sorted((small_pad / "images").glob("*.jpg"))[start:start + count])
    return np.stack([load_image(path, SPEC) for path in paths])


@pytest.fixture(scope="module")
def real_images(small_ham: Path, small_pad: Path) -> np.ndarray:
    """Eight dermoscopic and eight smartphone photos, uint8 (16, 64, 64, 3)."""
    return photos(small_ham, small_pad, 0, 8)


@pytest.fixture(scope="module")
def layer():
    return color_constancy.color_constancy_layer("shades_of_grey", 6.0, SPEC.mean, SPEC.std)


def corrected_pixels(layer, uint8_images: np.ndarray) -> np.ndarray:
    return layer(normalize(uint8_images, SPEC)).numpy().astype(np.float64) * SPEC.std + SPEC.mean


def test_layer_matches_the_numpy_reference(layer, real_images: np.ndarray) -> None:
    np.testing.assert_allclose(
        corrected_pixels(layer, real_images), color_constancy.shades_of_grey_numpy(real_images), atol=0.01)


def test_a_colour_cast_is_undone(layer, real_images: np.ndarray) -> None:
    """Shades of grey is invariant to a per-channel gain up to overall brightness: a photo with a cast (red
    up, blue down, kept below saturation) comes out as the photo without it, times one number per image, and
    its channels' power means become equal."""
    darker = (real_images.astype(np.float64) * 0.6).round()
    cast = np.clip(darker * np.array([1.5, 1.0, 0.7]), 0, 255).round()
    plain_out, cast_out = corrected_pixels(layer, darker), corrected_pixels(layer, cast)
    brightness = cast_out.mean(axis=(1, 2, 3), keepdims=True) / plain_out.mean(axis=(1, 2, 3), keepdims=True)
    assert np.median(np.abs(cast_out / brightness - plain_out)) < 1.0
    assert np.median(np.abs(cast - darker)) > 10  # the cast itself is large
    means = np.mean((cast_out / 255.0) ** 6, axis=(1, 2)) ** (1 / 6)
    assert np.max(np.abs(means - means.mean(axis=1, keepdims=True))) < 0.02


def test_a_grey_image_is_left_alone(layer) -> None:
    grey = np.full((1, SIZE, SIZE, 3), 120, np.uint8)
    np.testing.assert_allclose(corrected_pixels(layer, grey), 120.0, atol=1e-3)


def test_config_values_and_errors(tmp_path: Path) -> None:
    assert ModelConfig().color_constancy == "none"
    config = load_config(None, ["model.color_constancy=shades_of_grey", "model.color_constancy_power=2"])
    assert (config.model.color_constancy, config.model.color_constancy_power) == ("shades_of_grey", 2.0)
    with pytest.raises(DermtoolError, match="color_constancy"):
        load_config(None, ["model.color_constancy=grey_edge"])
    with pytest.raises(DermtoolError, match="color_constancy_power"):
        load_config(None, ["model.color_constancy=shades_of_grey", "model.color_constancy_power=0.5"])
    assert 'color_constancy = "shades_of_grey"' in config.to_toml()
    assert color_constancy.color_constancy_layer("none", 6.0, 127.0, 128.0) is None


@pytest.fixture(scope="module")
def classifier():
    return build_classifier(ModelConfig(weights="none", color_constancy="shades_of_grey"), 3, SIZE)


def test_classifier_starts_with_the_layer_and_reloads(classifier, real_images: np.ndarray, tmp_path: Path) -> None:
    import tf_keras as keras

    assert [layer.name for layer in classifier.layers[:3]] == ["image", "color_constancy", "stem_conv"]
    assert not classifier.get_layer("color_constancy").weights
    path = tmp_path / "model.keras"
    classifier.save(path)
    color_constancy.register()
    reloaded = keras.models.load_model(path, compile=False, safe_mode=True)
    inputs = normalize(real_images[:4], SPEC)
    np.testing.assert_allclose(reloaded(inputs).numpy(), classifier(inputs).numpy(), atol=1e-6)
    assert reloaded.get_layer("color_constancy").get_config()["power"] == 6.0


def test_qat_and_pruning_accept_the_layer(classifier) -> None:
    import tensorflow_model_optimization as tfmot

    from dermtool.optimize import qat

    quantized = qat.quantize_for_training(classifier)
    # Keras numbers a layer name taken earlier in the process (quantize_layer_8 after other QAT tests)
    first, second = (layer.name for layer in quantized.layers[1:3])
    assert first.startswith("quantize_layer") and second == "quant_color_constancy"
    # what dermtool.optimize.prune.prune_finetune wraps first (TF-MOT asks every layer for prunable weights)
    pruned = tfmot.sparsity.keras.prune_low_magnitude(classifier)
    assert pruned.get_layer("prune_low_magnitude_color_constancy").layer.get_prunable_weights() == []


def test_int8_conversion_keeps_the_correction(layer, real_images: np.ndarray, small_ham: Path,
                                              small_pad: Path) -> None:
    """Full-integer int8 with uint8 input, calibrated on 80 real photos as export calibrates: on those photos
    the converted layer gives the float layer's image to within about one pixel level (its output's int8
    step), as the powers are taken of each channel divided by its maximum (dark channels keep their
    precision when the converter quantises them before the mean). On other photos most are as close; one
    brighter than every calibration photo has its statistics clipped at the calibrated range and is off by a
    few levels, still a small part of the correction."""
    import tf_keras as keras
    from ai_edge_litert.interpreter import Interpreter

    from dermtool.export.convert import convert

    image = keras.Input((SIZE, SIZE, 3), name="image")
    model = keras.Model(image, layer(image))
    calibration_pixels = photos(small_ham, small_pad, 8, 40)
    calibration = normalize(calibration_pixels, SPEC)
    content = convert(model, "int8", representative_batches=lambda: (image[None] for image in calibration))
    interpreter = Interpreter(model_content=content)
    interpreter.allocate_tensors()
    inputs, outputs = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    scale, zero_point = outputs["quantization"]

    def errors(pixels: np.ndarray) -> np.ndarray:
        found = []
        for index in range(len(pixels)):
            interpreter.set_tensor(inputs["index"], pixels[index:index + 1])
            interpreter.invoke()
            out = (interpreter.get_tensor(outputs["index"]).astype(np.float64) - zero_point) * scale
            found.append(np.mean(np.abs(out - model(normalize(pixels[index:index + 1], SPEC)).numpy())) * SPEC.std)
        return np.array(found)

    calibrated, held_out = errors(calibration_pixels), errors(real_images)
    assert np.median(calibrated) < 1.0 and calibrated.max() < 2.0, calibrated
    assert np.median(held_out) < 1.0 and held_out.max() < 6.0, held_out
    corrections = np.mean(np.abs(corrected_pixels(layer, real_images) - real_images), axis=(1, 2, 3))
    assert np.all(held_out < 0.6 * corrections)
