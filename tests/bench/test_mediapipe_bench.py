"""`dermtool bench --client mediapipe`: the exports run through MediaPipe Tasks' ImageClassifier on the original
image files, as a phone app runs them, on real HAM10000 and PAD-UFES-20 images.

Parity (measured on the session's tiny exports, 64 px, 84 HAM10000 + 60 PAD-UFES-20 images, 2026-12-05):

- the same pixels (already at the model's size) give MediaPipe and LiteRT the same scores in every export
  mode: the largest difference measured was 0.0 (tolerance: 1e-6, and one output step 1/256 for int8);
  MediaPipe's scores sum to 1 (int8: within 2/256): they are the model's softmax probabilities, MediaPipe
  adds no softmax of its own;
- the original files (MediaPipe resizes 200x150 or up to 512 px photos itself) give answers that differ by
  at most 0.11 per class; the mean over images of the largest difference was 0.015 on HAM10000 and 0.030 on
  PAD-UFES-20 in every mode. Tolerance: twice that (0.03 and 0.06). A model whose metadata told MediaPipe
  another normalisation, another label order or another input would be far outside it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from dermtool import DermtoolError
from dermtool.bench.mediapipe_client import MediaPipeClassifier, check_upscale, load_original, upscale_image
from dermtool.bench.runner import BenchOptions, run_bench
from dermtool.cli.main import cli
from dermtool.data.layouts import read_dataset
from dermtool.data.preprocess import load_image
from dermtool.runtime import TFLiteModel
from tests.bench.test_runner import DRIFT_KEYS, LATENCY_KEYS, METRIC_KEYS

#: Mean over images of max_c |p_MediaPipe(original) - p_LiteRT(dermtool pipeline)|, per data folder (see above).
ORIGINAL_PARITY_TOLERANCE = {"small_ham": 0.03, "small_pad": 0.06}
SAME_PIXELS_TOLERANCE = 1e-6


@pytest.fixture(scope="module")
def mediapipe_bench(exported_models: dict[str, Path], tiny_run: Path, small_ham: Path) -> dict:
    """The int8 export through MediaPipe on the run's test split, against the run's float Keras model."""
    return run_bench(exported_models["int8"], small_ham, BenchOptions(split="test", reference=tiny_run, progress=False,
                                                                      client="mediapipe"))


def test_mediapipe_bench_has_the_litert_keys_and_agreement_against_both_references(
    mediapipe_bench: dict, exported_models: dict[str, Path], tiny_run: Path, small_ham: Path
) -> None:
    results = mediapipe_bench
    litert = run_bench(exported_models["int8"], small_ham,
                       BenchOptions(split="test", reference=tiny_run, runs=3, warmup=0, progress=False))
    labels = TFLiteModel(exported_models["int8"]).labels
    assert results["client"] == "mediapipe" and litert["client"] == "litert"
    for key in METRIC_KEYS + ("model", "latency_ms", "peak_rss_mb", "device", "reference", "drift", "data"):
        assert key in results, key
    assert set(results["per_class"]) == set(labels) and results["confusion_matrix"]["labels"] == labels
    assert results["n"] == litert["n"] and results["data"] == litert["data"]
    # dermtool's pipeline is exactly what the LiteRT bench measured
    pipeline = results["pipeline"]
    assert pipeline["client"] == "litert" and "Pillow bilinear" in pipeline["preprocessing"]
    for key in ("accuracy", "balanced_accuracy", "macro_f1", "nll"):
        assert pipeline[key] == pytest.approx(litert[key]), key
    for key in DRIFT_KEYS:
        assert key in results["pipeline_drift"] and key in results["drift"], key
    assert 0.0 <= results["pipeline_drift"]["top1_agreement"] <= 1.0
    assert results["pipeline_drift"]["delta_balanced_accuracy"] == pytest.approx(
        results["balanced_accuracy"] - pipeline["balanced_accuracy"])
    # --reference: the same float run as the LiteRT bench, compared with MediaPipe's answers
    assert results["reference"]["balanced_accuracy"] == pytest.approx(litert["reference"]["balanced_accuracy"])
    assert results["drift"]["delta_accuracy"] == pytest.approx(results["accuracy"] - results["reference"]["accuracy"])
    # MediaPipe's latency: one classify call per image at its own size
    assert list(results["latency_ms"]) == ["mediapipe"]
    entry = results["latency_ms"]["mediapipe"]
    for key in LATENCY_KEYS:
        assert key in entry, key
    assert entry["runs"] == results["n"] and 0 < entry["p50"] <= entry["p90"] and entry["init"] > 0
    assert results["input_images"]["median_width"] == 200 and results["input_images"]["median_height"] == 150
    assert results["upscale"] == 1.0 and results["device"]["client_runtime"].startswith("mediapipe ")


def test_mediapipe_answers_match_the_benched_agreement(mediapipe_bench: dict, exported_models, tiny_run, small_ham):
    """pipeline_drift's agreement is what a MediaPipe classifier and LiteRT answer image by image."""
    from dermtool.bench.runner import select_records

    model = TFLiteModel(exported_models["int8"])
    records, _ = select_records(small_ham, split="test", reference=tiny_run)
    with MediaPipeClassifier(model.path, model.labels) as classifier:
        ours = np.stack([classifier.classify(load_original(record.path)) for record in records])
    litert = model.predict(np.stack([load_image(record.path, model.input_spec) for record in records]))
    agreement = float(np.mean(ours.argmax(axis=1) == litert.argmax(axis=1)))
    assert mediapipe_bench["pipeline_drift"]["top1_agreement"] == pytest.approx(agreement)
    assert mediapipe_bench["pipeline_drift"]["max_abs_prob_diff"] == pytest.approx(float(np.abs(ours - litert).max()),
                                                                                   abs=1e-6)


@pytest.mark.parametrize("mode", ["float", "int8"])
def test_parity_of_mediapipe_and_litert(mode: str, exported_models: dict[str, Path], small_ham: Path,
                                        small_pad: Path) -> None:
    """Same pixels: the same probabilities. Original files: within the measured tolerance (module docstring)."""
    model = TFLiteModel(exported_models[mode])
    step = model.output.scale if model.output.quantized else 0.0
    with MediaPipeClassifier(model.path, model.labels) as classifier:
        for name, folder in (("small_ham", small_ham), ("small_pad", small_pad)):
            largest = []
            for record in read_dataset(folder).records:
                pixels = load_image(record.path, model.input_spec)
                litert = model.predict(pixels[None])[0]
                same = classifier.classify(pixels)
                assert np.abs(same - litert).max() <= SAME_PIXELS_TOLERANCE + step, record.path
                assert same.sum() == pytest.approx(1.0, abs=1e-5 + 2 * step)
                original = classifier.classify(load_original(record.path))
                largest.append(float(np.abs(original - litert).max()))
            assert np.mean(largest) <= ORIGINAL_PARITY_TOLERANCE[name], (name, np.mean(largest), max(largest))


def test_both_clients_and_upscaled_copies(exported_models: dict[str, Path], tiny_run: Path, small_ham: Path) -> None:
    results = run_bench(exported_models["int8"], small_ham,
                        BenchOptions(split="test", manifest=tiny_run / "split.csv",
                                     reference=exported_models["float"], runs=3, warmup=0, progress=False,
                                     client="both", upscale=4))
    assert results["client"] == "litert" and results["upscale"] == 4.0 and list(results["latency_ms"]) == ["1"]
    part = results["mediapipe"]
    assert part["client"] == "mediapipe" and part["n"] == results["n"]
    assert part["input_images"]["median_width"] == 800 and part["input_images"]["upscale"] == 4.0
    for key in ("pipeline_drift", "drift"):
        assert set(part[key]) >= set(DRIFT_KEYS), key
    assert part["drift"]["delta_accuracy"] == pytest.approx(part["accuracy"] - results["reference"]["accuracy"])
    # the LiteRT part (dermtool's pipeline) on the enlarged copies hardly differs from the files
    files = run_bench(exported_models["int8"], small_ham, BenchOptions(split="test", manifest=tiny_run / "split.csv",
                                                                       runs=3, warmup=0, progress=False))
    assert results["n"] == files["n"] and results["accuracy"] == pytest.approx(files["accuracy"], abs=0.15)


def test_upscale_helpers_and_bad_values() -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (15, 20, 3), dtype=np.uint8)
    assert upscale_image(pixels, 1.0) is pixels
    assert upscale_image(pixels, 4.0).shape == (60, 80, 3)
    assert upscale_image(pixels, 2.5).shape == (38, 50, 3)
    for bad in (0.5, 0, -2, float("nan"), "x", 100):
        with pytest.raises(DermtoolError, match="--upscale"):
            check_upscale(bad)


def test_cli_client_mediapipe(exported_models: dict[str, Path], tiny_run: Path, small_ham: Path, tmp_path: Path) -> None:
    out = tmp_path / "int8.mediapipe.json"
    result = CliRunner().invoke(cli, ["bench", str(exported_models["int8"]), "--data", str(small_ham), "--split", "test",
                                      "--manifest", str(tiny_run / "split.csv"), "--client", "mediapipe", "--quiet",
                                      "--json", str(out)])
    assert result.exit_code == 0, result.output
    results = json.loads(out.read_text())
    assert results["client"] == "mediapipe" and "pipeline_drift" in results and "drift" not in results
    table = CliRunner().invoke(cli, ["bench", str(exported_models["int8"]), "--data", str(small_ham), "--split", "test",
                                     "--manifest", str(tiny_run / "split.csv"), "--client", "mediapipe"])
    assert table.exit_code == 0 and "Client: MediaPipe Tasks ImageClassifier" in table.stdout
    assert "MediaPipe against dermtool's pipeline" in table.stdout
    help_text = CliRunner().invoke(cli, ["bench", "--help"]).output
    for fragment in ("--client", "--upscale", "--client mediapipe", "--upscale 4", "pipeline_drift"):
        assert fragment in help_text, fragment
    bad = CliRunner().invoke(cli, ["bench", str(exported_models["int8"]), "--data", str(small_ham),
                                   "--client", "mediapipe", "--upscale", "0.5"])
    assert bad.exit_code == 2 and "--upscale" in bad.stderr and "Traceback" not in bad.output


def test_a_cropping_model_gets_a_note(exported_models: dict[str, Path], tiny_run: Path, small_ham: Path,
                                      tmp_path: Path) -> None:
    """MediaPipe stretches the whole image; a model trained on centre crops is told so (and agrees less)."""
    from tests.tflite_files import dermtool_metadata, with_metadata

    metadata = TFLiteModel(exported_models["int8"]).metadata
    spec = {**metadata["input_spec"], "resize_policy": "center_crop"}
    cropping = with_metadata(exported_models["int8"], tmp_path / "crop.tflite", dermtool_metadata(metadata, input_spec=spec))
    results = run_bench(cropping, small_ham, BenchOptions(split="test", manifest=tiny_run / "split.csv", progress=False,
                                                          client="mediapipe"))
    assert any("stretches the whole image" in note and "center_crop" in note for note in results["notes"])
