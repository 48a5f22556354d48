"""Bias correction of the int8 weight rounding (dermtool.optimize.bias_correction), on the tiny classifier and
real HAM10000 images, and its place in dermtool export."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dermtool import DermtoolError


def _int8_weight_and_bias_tensors(content: bytes) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The int8 weight tensors and int32 bias tensors of the CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED ops of
    a .tflite, in graph order."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(model_content=content,
                              experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interpreter.allocate_tensors()
    weights, biases = [], []
    for operator in interpreter._get_ops_details():  # noqa: SLF001 - the only way to map ops to their weights
        if operator["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            weights.append(interpreter.get_tensor(operator["inputs"][1]))
            biases.append(interpreter.get_tensor(operator["inputs"][2]))
    return weights, biases


@pytest.fixture(scope="module")
def corrected(tiny_trained, tiny_data):
    """(the tiny model with int8-rounded kernels and corrected biases, its report, normalised calibration images)."""
    from dermtool.data.preprocess import normalize
    from dermtool.optimize.bias_correction import correct_int8_rounding_bias

    images, _, spec = tiny_data
    calibration = normalize(images[::2], spec).astype(np.float32)
    before = [weights.copy() for weights in tiny_trained.get_weights()]
    model, report = correct_int8_rounding_bias(tiny_trained, calibration)
    for original, now in zip(before, tiny_trained.get_weights()):
        np.testing.assert_array_equal(original, now)  # the input model is left unchanged
    return model, report, calibration


def test_kernels_land_on_their_int8_grid_and_keep_their_zeros(tiny_trained, corrected):
    from dermtool.optimize.bias_correction import ROUNDED_KERNEL_AXES, rounded_layers

    model, report, _ = corrected
    assert report.rounded_layers == 5 and report.corrected_offsets == 5 and report.uncorrected_layers == ()
    for layer in rounded_layers(model):
        before = tiny_trained.get_layer(layer.name).get_weights()[0]
        after = layer.get_weights()[0]
        axes = ROUNDED_KERNEL_AXES[type(layer).__name__]
        scale = np.abs(before).max(axis=axes, keepdims=True) / 127.0
        steps = after / scale
        np.testing.assert_allclose(steps, np.round(steps), atol=1e-3)  # on the grid
        assert np.all(np.abs(steps) <= 127.0 + 1e-3)
        np.testing.assert_allclose(np.abs(after).max(axis=axes), np.abs(before).max(axis=axes), rtol=1e-6)
        assert np.all(np.abs(after - before) <= scale / 2 + 1e-7)  # round to nearest
        assert np.all(after[before == 0] == 0)  # pruned weights stay zero


def test_correction_takes_the_mean_shift_out_of_every_corrected_output(tiny_trained, corrected):
    from dermtool.models.registry import clone_with_weights
    from dermtool.optimize.bias_correction import _channel_statistics, round_kernel_to_int8, rounded_layers

    model, report, calibration = corrected
    names = ["stem_bn", "block1_bn", "block1_project_bn", "head_bn", "logits"]
    float_means, float_deviations = _channel_statistics(tiny_trained, names, calibration, 16)
    rounded_only = clone_with_weights(tiny_trained)
    for layer in rounded_layers(rounded_only):
        round_kernel_to_int8(layer)
    rounded_means, _ = _channel_statistics(rounded_only, names, calibration, 16)
    corrected_means, _ = _channel_statistics(model, names, calibration, 16)
    for name, float_mean, deviation, rounded_mean, corrected_mean in zip(
            names, float_means, float_deviations, rounded_means, corrected_means):
        assert np.max(np.abs(corrected_mean - float_mean) / np.maximum(deviation, 1e-3)) < 1e-3, name
    later = names.index("head_bn")  # by the head the rounding has shifted the channel means measurably
    assert np.max(np.abs(rounded_means[later] - float_means[later]) / float_deviations[later]) > 1e-3
    assert report.shift_after < 1e-3 < report.shift_before


def test_converter_keeps_the_int8_weights_and_changes_only_the_biases(tiny_trained, corrected, tiny_data):
    """The rounded kernels keep each channel's largest magnitude, so after BatchNorm folding the converter picks the
    same scales and int8 weights as for the uncorrected model; only the int32 biases differ."""
    from dermtool.export.calibration_data import representative_batches
    from dermtool.export.convert import convert

    model, _, _ = corrected
    images, _, spec = tiny_data
    batches = representative_batches(images[::2], spec)
    plain_weights, plain_biases = _int8_weight_and_bias_tensors(convert(tiny_trained, "int8", "uint8", batches))
    weights, biases = _int8_weight_and_bias_tensors(convert(model, "int8", "uint8", batches))
    assert len(weights) == len(plain_weights) == 5
    for plain, ours in zip(plain_weights, weights):
        assert ours.dtype == np.int8
        np.testing.assert_array_equal(ours, plain)
    assert any(not np.array_equal(ours, plain) for plain, ours in zip(plain_biases, biases))


def test_bias_correction_rejects_what_it_cannot_correct(tiny_trained):
    import tf_keras as keras

    from dermtool.optimize.bias_correction import correct_int8_rounding_bias

    with pytest.raises(DermtoolError, match="calibration images"):
        correct_int8_rounding_bias(tiny_trained, np.zeros((0, 32, 32, 3), np.float32))
    image = keras.Input((8,))
    shared = keras.layers.Dense(8, name="shared")
    twice = keras.Model(image, keras.layers.Dense(3, name="logits")(shared(shared(image))))
    with pytest.raises(DermtoolError, match="called once"):
        correct_int8_rounding_bias(twice, np.ones((4, 8), np.float32))


def test_export_corrects_int8_by_default_and_says_so(exported_results):
    from dermtool.export.metadata import read_metadata

    int8, float_result = exported_results["int8"], exported_results["float"]
    assert read_metadata(int8.path)["bias_correction"] is True
    assert read_metadata(float_result.path)["bias_correction"] is False
    assert int8.bias_correction["corrected_offsets"] > 0
    assert int8.bias_correction["images"] == int8.representative_images
    assert float_result.bias_correction is None
    card = json.loads(int8.model_card_json.read_text())
    assert card["quantization"]["bias_correction"] == int8.bias_correction
    assert "Bias correction of the int8 weight rounding: yes" in int8.model_card_markdown.read_text()
    assert "Bias correction of the int8 weight rounding: no" in float_result.model_card_markdown.read_text()
    assert "bias correction:" in int8.summary()


def test_export_without_bias_correction_and_refused_for_float(tiny_run, tmp_path):
    from dermtool.export.tflite import export_model

    with pytest.raises(DermtoolError, match="add --int8"):
        export_model(tiny_run, tmp_path / "model.tflite", mode="fp16", bias_correction=True, progress=False)
    result = export_model(tiny_run, tmp_path / "plain.tflite", mode="int8", bias_correction=False, gate=False,
                          representative_images=16, progress=False)
    assert result.bias_correction is None
    assert json.loads(result.model_card_json.read_text())["quantization"]["bias_correction"] is None
