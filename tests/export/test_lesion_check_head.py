"""The lesion check travels inside the .tflite: a second output that MediaPipe's ImageClassifier returns as its
own classification head, and that `predict` reports; older exports without it still load and say so."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dermtool.data.layouts import read_dataset
from dermtool.data.preprocess import load_image
from dermtool.prediction.lesion_check import CATEGORIES, HEAD_NAME, NO_CHECK_MESSAGE
from dermtool.prediction.predictor import Predictor
from dermtool.export.metadata import read_associated_files, read_metadata
from dermtool.runtime import TFLiteModel


@pytest.fixture(scope="module")
def photos(small_ham: Path, lesion_check_run: Path,
           tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], np.ndarray]:
    """Real lesion photos and generated non-lesions (a rendered invoice, a blank frame ...), as files and
    as pixels at the model's input size (so MediaPipe does not resize them)."""
    from dermtool.prediction.non_lesion import generate_non_lesion_images
    from dermtool.run import RunFolder
    from PIL import Image

    spec = RunFolder(lesion_check_run).input_spec
    records = read_dataset(small_ham).records[::12]
    folder = tmp_path_factory.mktemp("lesion_check_photos")
    paths = [record.path for record in records]
    for item in generate_non_lesion_images(count_per_kind=1, seed=0):
        path = folder / f"{item.name}.png"
        Image.fromarray(item.pixels).save(path)
        paths.append(path)
    return paths, np.stack([load_image(path, spec) for path in paths])


@pytest.mark.parametrize("mode", ["float", "int8"])
def test_mediapipe_returns_the_lesion_check_as_a_second_head_and_predict_reports_it(mode, exported_with_lesion_check,
                                                                                       photos) -> None:
    from mediapipe.tasks.python import BaseOptions, vision
    import mediapipe as mp

    path = exported_with_lesion_check[mode]
    metadata = read_metadata(path)
    assert metadata[HEAD_NAME]["categories"] == list(CATEGORIES) and metadata[HEAD_NAME]["head_name"] == HEAD_NAME
    threshold = metadata[HEAD_NAME]["threshold"]
    assert read_associated_files(path)["lesion_check_labels.txt"].decode().split() == ["lesion", "not_a_lesion"]
    model = TFLiteModel(path)
    assert model.lesion_check_output is not None and model.output.shape[-1] == len(metadata["labels"])
    paths, pixels = photos
    results = Predictor(path).predict(list(pixels))
    step = 1 / 256 + 1e-4 if mode == "int8" else 1e-4  # one output step; results are rounded to 4 decimals
    options = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=str(path)), max_results=-1)
    with vision.ImageClassifier.create_from_options(options) as classifier:
        for image, result in zip(pixels, results):
            answer = classifier.classify(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(image)))
            assert [(head.head_index, head.head_name) for head in answer.classifications] == [
                (0, "probability"), (1, HEAD_NAME)]
            scores = {category.category_name: category.score for category in answer.classifications[1].categories}
            assert set(scores) == set(CATEGORIES) and sum(scores.values()) == pytest.approx(1.0, abs=2 * step)
            check = result["lesion_check"]
            assert check["threshold"] == pytest.approx(threshold, abs=1e-4)
            assert scores["not_a_lesion"] == pytest.approx(check["not_a_lesion"], abs=step)
            assert result["ood_score"] == check["not_a_lesion"]
            assert (result["outcome"] == "not_a_lesion") == (check["not_a_lesion"] >= threshold)
            top = {category.category_name: category.score for category in answer.classifications[0].categories}
            assert top[result["label"]] == pytest.approx(result["probability"], abs=step)


def test_the_run_folder_and_its_float_export_give_the_same_lesion_check(lesion_check_run, exported_with_lesion_check,
                                                                        photos) -> None:
    _, pixels = photos
    run = Predictor(lesion_check_run).predict(list(pixels))
    exported = Predictor(exported_with_lesion_check["float"]).predict(list(pixels))
    for ours, theirs in zip(run, exported):
        assert ours["lesion_check"]["not_a_lesion"] == pytest.approx(theirs["lesion_check"]["not_a_lesion"], abs=1e-3)
        assert ours["outcome"] == theirs["outcome"]


def test_predict_command_rejects_with_the_head_and_an_older_export_says_it_has_none(
        exported_with_lesion_check, exported_models, photos) -> None:
    from click.testing import CliRunner

    from dermtool.cli.main import cli

    paths, _ = photos
    result = CliRunner().invoke(cli, ["predict", *map(str, paths), "--model", str(exported_with_lesion_check["int8"]),
                                      "--json", "-"])
    assert result.exit_code == 0, result.output
    for item in json.loads(result.stdout):
        check = item["lesion_check"]
        assert (item["outcome"] == "not_a_lesion") == (check["not_a_lesion"] >= check["threshold"])
    with pytest.warns(UserWarning, match="no lesion check"):
        older = Predictor(exported_models["int8"])
    assert older.lesion_check is None and NO_CHECK_MESSAGE in " ".join(older.notes)
    results = older.predict(paths[:2])
    assert all(item["lesion_check"] is None and item["ood_score"] is None for item in results)
    assert all(item["outcome"] != "not_a_lesion" for item in results)
    import shutil

    copy = Path(shutil.copy(exported_models["int8"], paths[-1].parent / "older.tflite"))  # the CLI caches a
    text = CliRunner().invoke(cli, ["predict", str(paths[0]), "--model", str(copy)])     # model per path
    assert text.exit_code == 0 and "no lesion check" in text.output
