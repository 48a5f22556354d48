"""dermtool.run.RunFolder: reading a finished run and predicting with it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from dermtool import DermtoolError, metrics
from dermtool.run import RunFolder


def test_a_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DermtoolError, match="no such run folder"):
        RunFolder(tmp_path / "absent")


def test_a_folder_without_run_files_names_them(tmp_path: Path) -> None:
    with pytest.raises(DermtoolError) as error:
        RunFolder(tmp_path)
    message = str(error.value)
    for name in ("model.keras", "labels.txt", "input_spec.json", "metrics.json"):
        assert name in message


def test_one_missing_file_is_named(tiny_run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(tiny_run, copy, ignore=shutil.ignore_patterns("checkpoints"))
    (copy / "input_spec.json").unlink()
    with pytest.raises(DermtoolError, match=r"missing input_spec.json$"):
        RunFolder(copy)


@pytest.fixture(scope="module")
def run(tiny_run: Path) -> RunFolder:
    return RunFolder(tiny_run)


def test_the_run_files_are_read(run: RunFolder, tiny_run: Path) -> None:
    assert run.labels == ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]
    assert run.input_spec.image_size == 64 and run.input_spec.resize_policy == "squash"
    assert run.temperature == pytest.approx(json.loads((tiny_run / "metrics.json").read_text())["temperature"])
    assert run.config.data.image_size == 64
    assert {row.split for row in run.split_rows} == {"train", "val", "test"}
    assert len(run.split_rows) == 84
    assert [row["phase"] for row in run.history] == ["head", "finetune"]


def test_predictions_are_calibrated_softmax_of_the_logits(run: RunFolder, small_ham: Path) -> None:
    from dermtool.data.pipeline import load_images
    from dermtool.data.preprocess import normalize

    paths = sorted((small_ham / "images").glob("*.jpg"))[:10]
    images, failed = load_images(paths, run.input_spec, progress=False)
    assert failed == []
    logits = run.predict_logits(images, batch_size=4)
    probabilities = run.predict_probabilities(images, batch_size=4)
    assert probabilities.shape == (10, 7)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-9)
    np.testing.assert_allclose(probabilities, metrics.softmax(logits, run.temperature), rtol=1e-9)

    # load_model() gives an independent model: its softmax is the uncalibrated softmax(logits), and
    # changing it leaves the run's own predictions alone.
    model = run.load_model()
    full = np.asarray(model(normalize(images, run.input_spec), training=False))
    np.testing.assert_allclose(full, metrics.softmax(logits), atol=1e-5)
    logits_model = run.logits_model(model)
    assert logits_model.output_shape == (None, 7)
    assert logits_model.get_layer("logits") is model.get_layer("logits")
    kernel = model.get_layer("logits").kernel
    kernel.assign(kernel * 0.0)
    np.testing.assert_allclose(run.predict_logits(images, batch_size=4), logits)


def test_wrongly_sized_images_are_refused(run: RunFolder) -> None:
    with pytest.raises(DermtoolError, match=r"shape \(N, 64, 64, 3\)"):
        run.predict_probabilities(np.zeros((2, 32, 32, 3), dtype=np.uint8))


def test_logits_predictor_graph_and_eager_paths_agree() -> None:
    """Above GRAPH_MODE_MIN_IMAGES the logits come from one traced tf.function, below from eager calls."""
    import tf_keras as keras

    from dermtool.run import GRAPH_MODE_MIN_IMAGES, LogitsPredictor

    inputs = keras.Input((4, 4, 3))
    model = keras.Model(inputs, keras.layers.Dense(5, name="logits")(keras.layers.Flatten()(inputs)))
    images = np.random.default_rng(0).normal(size=(GRAPH_MODE_MIN_IMAGES + 4, 4, 4, 3)).astype(np.float32)
    batches = [images[start:start + 64] for start in range(0, len(images), 64)]
    predictor = LogitsPredictor(model)
    graph = predictor.predict_batches(batches, len(images))
    eager = np.concatenate([LogitsPredictor(model).predict_batches([batch], len(batch)) for batch in batches])
    assert graph.dtype == np.float64 and graph.shape == (len(images), 5)
    np.testing.assert_allclose(graph, eager, rtol=1e-5, atol=1e-5)
    dataset = [(batch, np.zeros(len(batch))) for batch in batches]
    np.testing.assert_allclose(predictor(dataset, len(images)), graph)
    assert predictor.predict_batches([], 0).shape == (0, 5)
