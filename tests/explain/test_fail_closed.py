"""Issue #19: a corrupted model (weights overwritten with NaN) fails closed everywhere: it never gives an
outcome. The NaN models are real exports and a real run folder of the tiny training fixture, rewritten."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from dermtool import ModelOutputError
from dermtool.cli.main import cli
from tests.tflite_files import with_nan_weights


@pytest.fixture(scope="module")
def float_export(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A float .tflite of the tiny run (exported here: only the float mode is needed)."""
    from dermtool.export.tflite import export_model

    folder = tmp_path_factory.mktemp("float_export")
    return export_model(tiny_run, folder / "tiny_float.tflite", mode="float", gate=False, progress=False).path


@pytest.fixture(scope="module")
def nan_model(float_export: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return with_nan_weights(float_export, tmp_path_factory.mktemp("nan_model") / "bad.tflite")


@pytest.fixture(scope="module")
def nan_run(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the tiny run whose Keras weights are all NaN."""
    import tf_keras as keras

    run = tmp_path_factory.mktemp("nan_run") / "run"
    shutil.copytree(tiny_run, run)
    model = keras.models.load_model(run / "model.keras", compile=False)
    model.set_weights([np.full_like(weights, np.nan) for weights in model.get_weights()])
    model.save(run / "model.keras")
    return run


def test_the_rewritten_model_loads_but_answers_nan(nan_model: Path) -> None:
    from dermtool.runtime import TFLiteModel

    model = TFLiteModel(nan_model)  # loads fine: the corruption is invisible until it runs
    image = np.full((model.image_size, model.image_size, 3), 90, dtype=np.uint8)
    assert np.isnan(model.dequantize(model.invoke_once(model.prepare(image)))).all()
    with pytest.raises(ModelOutputError, match="non-finite"):
        model.predict(image[None])  # what bench (predict_all) and every caller goes through


def test_python_api_refuses_at_load(nan_model: Path) -> None:
    from dermtool.prediction.predictor import Predictor

    with pytest.raises(ModelOutputError, match="non-finite"):
        Predictor(nan_model)


def test_predict_cli_fails_closed(nan_model: Path, small_ham: Path) -> None:
    image = next((small_ham / "images").iterdir())
    for options in (["--json"], []):
        result = CliRunner().invoke(cli, ["predict", str(image), "--model", str(nan_model), *options])
        assert result.exit_code == 3, result.output  # refused by a check (docs/contract.md)
        assert '"outcome"' not in result.output and "nan %" not in result.output.lower()
        assert "non-finite" in result.output
        assert result.output.count("\n") == 1 and result.output.startswith("Error: ")


def test_serve_refuses_to_start(nan_model: Path) -> None:
    from dermtool.serve.app import create_app

    with pytest.raises(ModelOutputError):
        create_app(nan_model)


def test_bench_refuses(nan_model: Path, small_ham: Path) -> None:
    result = CliRunner().invoke(cli, ["bench", str(nan_model), "--data", str(small_ham), "--runs", "2"])
    assert result.exit_code == 3
    assert "non-finite" in result.output and "Traceback" not in result.output


def test_run_folder_with_nan_weights_fails_closed(nan_run: Path, small_ham: Path, tmp_path: Path) -> None:
    from dermtool.explain.gradcam import Explainer
    from dermtool.prediction.predictor import Predictor

    with pytest.raises(ModelOutputError):
        Predictor(nan_run, lesion_check=False)
    with pytest.raises(ModelOutputError):
        Explainer(nan_run)
    image = next((small_ham / "images").iterdir())
    result = CliRunner().invoke(cli, ["explain", str(image), "--model", str(nan_run), "--out", str(tmp_path / "o.png")])
    assert result.exit_code == 3 and "non-finite" in result.output
    assert not (tmp_path / "o.png").exists()


def test_a_prediction_that_turns_non_finite_is_never_an_outcome(tiny_run: Path, small_ham: Path) -> None:
    """The per-prediction check, for a model that passed the load probe and goes bad later."""
    from dermtool.prediction.predictor import Predictor

    predictor = Predictor(tiny_run, lesion_check=False)
    backend = predictor._shared.backend
    original = backend.predict
    backend.predict = lambda images: (np.full((len(images), len(predictor.labels)), np.nan), None)
    try:
        with pytest.raises(ModelOutputError):
            predictor.predict([next((small_ham / "images").iterdir())])
        # a lesion check that answers NaN is no outcome either
        backend.predict = lambda images: (original(images)[0], np.full(len(images), np.nan))
        with pytest.raises(ModelOutputError):
            predictor.predict([next((small_ham / "images").iterdir())])
    finally:
        backend.predict = original
    json.dumps(predictor.predict([next((small_ham / "images").iterdir())]), allow_nan=False)
