"""dermtool.runtime.TFLiteModel: the LiteRT wrapper that bench, predict and the web app share."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dermtool import DermtoolError
from dermtool.data.preprocess import InputSpec
from dermtool.runtime import TFLiteModel, check_tflite_file
from tests.tflite_files import dermtool_metadata, with_metadata


@pytest.fixture(scope="module")
def eval_images(small_ham: Path, exported_models: dict[str, Path]) -> np.ndarray:
    """Real HAM10000 images (two per class), decoded with the exported model's input contract."""
    from dermtool.data.layouts import read_dataset
    from dermtool.data.preprocess import load_image

    spec = TFLiteModel(exported_models["float"]).input_spec
    records = read_dataset(small_ham).records
    chosen = [record for position, record in enumerate(records) if position % 6 == 0][:14]
    return np.stack([load_image(record.path, spec) for record in chosen])


def test_float_tflite_matches_the_keras_model_on_real_images(
    tiny_run: Path, exported_models: dict[str, Path], eval_images: np.ndarray
) -> None:
    from dermtool.run import RunFolder

    run = RunFolder(tiny_run)
    model = TFLiteModel(exported_models["float"])
    assert model.labels == run.labels
    assert model.input_spec == run.input_spec
    assert model.input_dtype == np.float32
    tflite = model.predict(eval_images)
    keras = run.predict_probabilities(eval_images)
    assert tflite.shape == keras.shape == (len(eval_images), len(run.labels))
    np.testing.assert_allclose(tflite, keras, atol=1e-4)
    # one image at a time or all at once: the same numbers
    np.testing.assert_array_equal(model.predict(eval_images[:1]), tflite[:1])


def test_int8_model_takes_raw_pixels_and_returns_dequantised_probabilities(
    exported_models: dict[str, Path], eval_images: np.ndarray
) -> None:
    model = TFLiteModel(exported_models["int8"])
    spec = model.input_spec
    scale, zero_point = model.input_quantization
    assert model.input_dtype in (np.uint8, np.int8)
    # the general formula q = round(((p - mean) / std) / scale + zero_point), clipped to the type's range
    pixels = np.arange(256, dtype=np.float64)
    expected = np.clip(np.round((pixels - spec.mean) / spec.std / scale + zero_point),
                       np.iinfo(model.input_dtype).min, np.iinfo(model.input_dtype).max)
    prepared = model.prepare(eval_images[0])
    assert prepared.shape == (1, *eval_images[0].shape) and prepared.dtype == model.input_dtype
    np.testing.assert_array_equal(prepared[0].astype(np.int64), expected[eval_images[0]].astype(np.int64))
    if model.input_dtype == np.uint8 and abs(scale * spec.std - 1) < 1e-6 and zero_point == spec.mean:
        np.testing.assert_array_equal(prepared[0], eval_images[0])  # the usual export: pixels unchanged
    probabilities = model.predict(eval_images)
    output_scale, _ = model.output_quantization
    assert probabilities.dtype == np.float32 and probabilities.shape == (len(eval_images), model.num_classes)
    assert probabilities.min() >= 0 and probabilities.max() <= 1 + 1e-6
    # a quantised softmax sums to 1 up to its rounding: at most half a step per class
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=model.num_classes * (output_scale or 1e-6))
    float_probabilities = TFLiteModel(exported_models["float"]).predict(eval_images)
    assert np.abs(probabilities - float_probabilities).mean() < 0.05


@pytest.mark.parametrize("mode", ["fp16", "dynamic"])
def test_float_input_exports_agree_with_the_float_export(
    mode: str, exported_models: dict[str, Path], eval_images: np.ndarray
) -> None:
    model = TFLiteModel(exported_models[mode])
    assert model.input_dtype == np.float32 and not model.input.quantized
    probabilities = model.predict(eval_images)
    reference = TFLiteModel(exported_models["float"]).predict(eval_images)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)
    assert np.abs(probabilities - reference).max() < (0.01 if mode == "fp16" else 0.1)


def test_input_quantisation_follows_the_spec_generally(exported_models: dict[str, Path], eval_images: np.ndarray) -> None:
    """A spec other than the export's (mean 100, std 50): the lookup table is the general formula, not identity."""
    base = TFLiteModel(exported_models["int8"])
    spec = InputSpec(base.image_size, "squash", mean=100.0, std=50.0)
    model = TFLiteModel(exported_models["int8"], input_spec=spec)
    scale, zero_point = model.input_quantization
    limits = np.iinfo(model.input_dtype)
    for pixel in (0, 37, 100, 128, 255):
        expected = np.clip(np.floor((pixel - 100.0) / 50.0 / scale + zero_point + 0.5), limits.min, limits.max)
        image = np.full(eval_images[0].shape, pixel, dtype=np.uint8)
        assert int(model.prepare(image)[0, 0, 0, 0]) == int(expected)


def test_float_input_is_normalised_with_the_spec(exported_models: dict[str, Path], eval_images: np.ndarray) -> None:
    model = TFLiteModel(exported_models["float"])
    spec = model.input_spec
    prepared = model.prepare(eval_images[0])
    assert prepared.dtype == np.float32
    np.testing.assert_allclose(prepared[0], (eval_images[0].astype(np.float32) - spec.mean) / spec.std, rtol=1e-6)


def test_model_properties_and_threads(exported_models: dict[str, Path]) -> None:
    model = TFLiteModel(exported_models["int8"], threads=2)
    assert model.threads == 2
    assert model.input_shape == (1, model.image_size, model.image_size, 3)
    assert model.num_classes == len(model.labels)
    assert model.model_bytes == exported_models["int8"].stat().st_size
    assert model.input.to_dict()["dtype"] == model.input.dtype
    with pytest.raises(DermtoolError, match="threads"):
        TFLiteModel(exported_models["int8"], threads=0)


# ------------------------------------------------------------------------------------------------ errors
def test_a_file_that_is_not_a_tflite_model(tmp_path: Path) -> None:
    text = tmp_path / "notes.tflite"
    text.write_text("this is not a model\n")
    with pytest.raises(DermtoolError, match="not a TFLite model: no 'TFL3' identifier"):
        TFLiteModel(text)
    empty = tmp_path / "empty.tflite"
    empty.write_bytes(b"")
    with pytest.raises(DermtoolError, match="empty"):
        check_tflite_file(empty)
    with pytest.raises(DermtoolError, match="not found"):
        TFLiteModel(tmp_path / "missing.tflite")
    with pytest.raises(DermtoolError, match="folder"):
        TFLiteModel(tmp_path)


def test_a_truncated_model(exported_models: dict[str, Path], tmp_path: Path) -> None:
    content = exported_models["float"].read_bytes()
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(content[: len(content) // 3])
    with pytest.raises(DermtoolError, match="truncated or corrupt") as error:
        TFLiteModel(truncated)
    assert "\n" not in str(error.value)


def test_images_of_the_wrong_shape(exported_models: dict[str, Path], eval_images: np.ndarray) -> None:
    model = TFLiteModel(exported_models["float"])
    with pytest.raises(DermtoolError, match="input shape mismatch"):
        model.prepare(eval_images[0][:-1])
    with pytest.raises(DermtoolError, match="input shape mismatch"):
        model.predict(eval_images[:, 1:, 1:])
    with pytest.raises(DermtoolError, match="batch"):
        model.predict(eval_images[0])


def test_a_model_without_metadata_runs_but_cannot_name_labels(
    exported_models: dict[str, Path], eval_images: np.ndarray, tmp_path: Path
) -> None:
    bare = with_metadata(exported_models["int8"], tmp_path / "bare.tflite", {})  # an empty archive: no files
    model = TFLiteModel(bare)
    assert model.labels is None and model.input_spec is None and model.metadata == {}
    with pytest.raises(DermtoolError, match="no label metadata"):
        model.require_labels()
    with pytest.raises(DermtoolError, match="no input specification"):
        model.predict(eval_images[:1])
    # prepared input still runs, and explicit labels / spec make it usable
    reference = TFLiteModel(exported_models["int8"])
    raw = model.invoke_once(reference.prepare(eval_images[0]))
    assert raw.shape == (1, reference.num_classes)
    usable = TFLiteModel(bare, labels=reference.labels, input_spec=reference.input_spec)
    np.testing.assert_array_equal(usable.predict(eval_images[:2]), reference.predict(eval_images[:2]))


def test_metadata_that_does_not_fit_the_model(exported_models: dict[str, Path], tmp_path: Path) -> None:
    model = TFLiteModel(exported_models["float"])
    fewer = with_metadata(exported_models["float"], tmp_path / "fewer.tflite",
                          dermtool_metadata(model.metadata, labels=model.labels[:-2]))
    with pytest.raises(DermtoolError, match=f"{model.num_classes} outputs but its label list has {model.num_classes - 2}"):
        TFLiteModel(fewer)
    spec = dict(model.input_spec.to_dict(), image_size=model.image_size + 32)
    bigger = with_metadata(exported_models["float"], tmp_path / "bigger.tflite", dermtool_metadata(model.metadata, input_spec=spec))
    with pytest.raises(DermtoolError, match=f"takes {model.image_size}x{model.image_size} images"):
        TFLiteModel(bigger)


def test_runtime_imports_no_tensorflow(exported_models: dict[str, Path]) -> None:
    code = (
        "import sys, time\n"
        "start = time.perf_counter()\n"
        "from dermtool.runtime import TFLiteModel\n"
        "elapsed = time.perf_counter() - start\n"
        "import numpy as np\n"
        f"model = TFLiteModel({str(exported_models['int8'])!r})\n"
        "image = np.zeros((model.image_size, model.image_size, 3), np.uint8)\n"
        "model.predict(image[None])\n"
        "print('TF', 'tensorflow' in sys.modules, 'IMPORT', round(elapsed, 3))\n"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    assert "TF False" in completed.stdout
    seconds = float(completed.stdout.split("IMPORT")[1])
    assert seconds < 2.0  # about 0.2 s (numpy + Pillow); generous for a busy 2-core machine
    # the routine "INFO: Created TensorFlow Lite XNNPACK delegate" line is not printed
    assert "XNNPACK" not in completed.stderr
