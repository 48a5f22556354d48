"""dermtool.bench.runner.run_bench: the results dict of bench --json, on real images and real exports."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from dermtool import DermtoolError
from dermtool.bench.runner import (
    BenchOptions,
    bare_interpreter_loop,
    check_labels,
    harness_overhead,
    latency_statistics,
    run_bench,
    select_records,
)
from dermtool.data.layouts import Record

METRIC_KEYS = ("n", "accuracy", "balanced_accuracy", "macro_f1", "auc_macro", "ece", "nll", "per_class", "confusion_matrix")
DRIFT_KEYS = ("top1_agreement", "delta_accuracy", "delta_balanced_accuracy", "delta_macro_f1",
              "mean_abs_prob_diff", "max_abs_prob_diff", "mean_kl", "per_class_recall_delta")
LATENCY_KEYS = ("init", "first", "mean", "std", "p50", "p90", "p99", "runs")


def assert_bench_schema(results: dict, labels: list[str], threads: list[int], reference: bool) -> None:
    """Every key of the contract's bench --json, with the right shapes."""
    for key in METRIC_KEYS:
        assert key in results, key
    assert set(results["per_class"]) == set(labels)
    for values in results["per_class"].values():
        assert set(values) >= {"precision", "recall", "f1", "support"}
    assert results["confusion_matrix"]["labels"] == labels
    assert np.asarray(results["confusion_matrix"]["matrix"]).sum() == results["n"]
    model = results["model"]
    assert set(model) >= {"path", "bytes", "gzip_bytes", "input", "output"}
    for tensor in ("input", "output"):
        assert set(model[tensor]) >= {"shape", "dtype", "scale", "zero_point"}
    assert 0 < model["gzip_bytes"] and model["bytes"] == Path(model["path"]).stat().st_size
    assert list(results["latency_ms"]) == [str(count) for count in threads]
    for entry in results["latency_ms"].values():
        for key in LATENCY_KEYS:
            assert key in entry, key
        assert 0 < entry["p50"] <= entry["p90"] <= entry["p99"]
        assert entry["min"] <= entry["p50"] <= entry["max"]
        assert entry["init"] > 0 and entry["first"] > 0
    assert results["peak_rss_mb"] > 10
    assert results["device"]["cpu"] and results["device"]["threads"] >= 1
    assert ("reference" in results) == reference and ("drift" in results) == reference
    if reference:
        assert "path" in results["reference"]
        for key in METRIC_KEYS:
            assert key in results["reference"], key
        for key in DRIFT_KEYS:
            assert key in results["drift"], key
        assert set(results["drift"]["per_class_recall_delta"]) == set(labels)


@pytest.fixture(scope="module")
def int8_against_run(exported_models: dict[str, Path], tiny_run: Path, small_ham: Path) -> dict:
    """The int8 export on the run's test split, against the run's float Keras model, 1 and 2 threads."""
    return run_bench(exported_models["int8"], small_ham,
                     BenchOptions(split="test", reference=tiny_run, threads=(1, 2), runs=30, warmup=3,
                                  progress=False))


def test_int8_against_the_float_run_on_the_test_split(int8_against_run: dict, tiny_run: Path) -> None:
    from dermtool.run import RunFolder

    run = RunFolder(tiny_run)
    results = int8_against_run
    assert_bench_schema(results, run.labels, [1, 2], reference=True)
    test_ids = {row.image_id for row in run.split_rows if row.split == "test"}
    assert results["n"] == len(test_ids) == results["reference"]["n"]
    assert results["data"]["split"] == "test" and results["data"]["manifest"].endswith("split.csv")
    assert results["model"]["input"]["dtype"] in ("uint8", "int8") and results["model"]["input"]["scale"] > 0
    assert results["reference"]["path"] == str(tiny_run)
    assert 0.0 <= results["drift"]["top1_agreement"] <= 1.0
    assert results["drift"]["delta_accuracy"] == pytest.approx(results["accuracy"] - results["reference"]["accuracy"])
    # raw samples behind the percentiles and the reliability bins are kept for the plots
    samples = results["latency_samples_ms"]
    assert [len(samples[key]) for key in ("1", "2")] == [30, 30]
    assert results["latency_ms"]["1"]["p50"] == pytest.approx(float(np.percentile(samples["1"], 50)))
    assert sum(results["reliability"]["count"]) == results["n"]


def test_a_model_against_itself_agrees_completely(exported_models: dict[str, Path], small_ham: Path) -> None:
    model = exported_models["float"]
    results = run_bench(model, small_ham, BenchOptions(reference=model, threads=(1,), runs=5, warmup=1, progress=False))
    from dermtool.runtime import TFLiteModel

    assert_bench_schema(results, TFLiteModel(model).labels, [1], reference=True)
    assert results["n"] == 84  # every labelled image of DATA without --split
    drift = results["drift"]
    assert drift["top1_agreement"] == 1.0
    assert drift["max_abs_prob_diff"] == 0.0 and drift["mean_kl"] == pytest.approx(0.0, abs=1e-9)
    assert drift["delta_balanced_accuracy"] == 0.0
    assert set(drift["per_class_recall_delta"].values()) == {0.0}
    assert results["reference"]["accuracy"] == results["accuracy"]


def test_split_with_a_manifest_file(exported_models: dict[str, Path], tiny_run: Path, small_ham: Path, tmp_path: Path) -> None:
    from dermtool.run import RunFolder

    rows = RunFolder(tiny_run).split_rows
    manifest = tmp_path / "split.csv"
    with open(manifest, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image_id", "label", "group", "split"])
        for row in rows:
            writer.writerow([row.image_id, row.label, row.group, row.split])
    results = run_bench(exported_models["int8"], small_ham,
                        BenchOptions(split="val", manifest=manifest, runs=3, warmup=0, progress=False))
    assert results["n"] == sum(row.split == "val" for row in rows)
    assert results["data"]["manifest"] == str(manifest)


def test_select_records_errors(small_ham: Path, tmp_path: Path, exported_models: dict[str, Path]) -> None:
    with pytest.raises(DermtoolError, match="--split test needs a split file"):
        select_records(small_ham, split="test")
    with pytest.raises(DermtoolError, match="needs --split"):
        select_records(small_ham, manifest=tmp_path / "split.csv")
    manifest = tmp_path / "other.csv"
    manifest.write_text("image_id,label,group,split\nISIC_9999999,mel,g,test\nISIC_9999998,nv,h,train\n")
    with pytest.raises(DermtoolError, match="1 of the 1 'test' images .* are not labelled images"):
        select_records(small_ham, split="test", manifest=manifest)
    with pytest.raises(DermtoolError, match="no rows in split 'val'"):
        select_records(small_ham, split="val", manifest=manifest)


def test_unknown_labels_are_refused_or_ignored() -> None:
    records = [Record(f"id{n}", Path(f"{n}.jpg"), label, f"g{n}") for n, label in enumerate(["mel", "nv", "scc", "scc", "xyz"])]
    with pytest.raises(DermtoolError, match=r"'scc' \(2 images\), 'xyz' \(1 images\).*--ignore-unknown"):
        check_labels(records, ["mel", "nv"], ignore_unknown=False)
    kept, ignored, notes = check_labels(records, ["mel", "nv"], ignore_unknown=True)
    assert [record.label for record in kept] == ["mel", "nv"]
    assert ignored == {"scc": 2, "xyz": 1}
    assert "ignored 3 image(s)" in notes[0]
    with pytest.raises(DermtoolError, match="no image of DATA"):
        check_labels(records[2:], ["mel", "nv"], ignore_unknown=True)


def test_latency_statistics() -> None:
    statistics = latency_statistics(list(range(1, 101)))
    assert statistics["p50"] == pytest.approx(50.5) and statistics["p99"] == pytest.approx(99.01)
    assert statistics["runs"] == 100 and statistics["min"] == 1 and statistics["max"] == 100
    with pytest.raises(DermtoolError):
        latency_statistics([])


def test_bad_run_settings(exported_models: dict[str, Path], small_ham: Path) -> None:
    with pytest.raises(DermtoolError, match="--runs"):
        run_bench(exported_models["int8"], small_ham, BenchOptions(runs=0, progress=False))
    with pytest.raises(DermtoolError, match="--threads"):
        run_bench(exported_models["int8"], small_ham, BenchOptions(threads=(0,), progress=False))
    with pytest.raises(DermtoolError, match="reference not found"):
        run_bench(exported_models["int8"], small_ham,
                  BenchOptions(reference=small_ham / "nothing.tflite", progress=False))


@pytest.mark.parametrize(("setting", "message"), [
    ({"client": "tflite"}, "--client must be one of litert, mediapipe, both, got 'tflite'"),
    ({"upscale": "big"}, "--upscale must be a number of 1 or more, got 'big'"),
    ({"upscale": 0.5}, r"--upscale must be a number of 1 or more \(e.g. 4\), got 0.5"),
    ({"upscale": 32}, r"--upscale 32 is too large \(at most 16"),
    ({"threads": (2, 0, 2)}, "--threads must be positive integers, got 2, 0, 2"),
    ({"runs": 0}, "--runs must be at least 1, got 0"),
    ({"warmup": -1}, "--warmup must be 0 or more, got -1"),
    ({"client": "both", "upscale": 1, "runs": 0, "warmup": -1}, "--runs must"),  # the first invalid one
])
def test_bench_options_check_names_the_option_of_a_bad_setting(setting: dict, message: str, tmp_path: Path) -> None:
    options = BenchOptions(**setting)
    with pytest.raises(DermtoolError, match=f"^{message}"):
        options.check()
    with pytest.raises(DermtoolError, match=f"^{message}"):  # before the model or DATA is read
        run_bench(tmp_path / "missing.tflite", tmp_path / "missing", options)


def test_bench_options_defaults_and_thread_counts() -> None:
    options = BenchOptions()
    options.check()
    assert (options.client, options.runs, options.warmup, options.upscale) == ("litert", 200, 20, 1.0)
    assert options.thread_counts() == [1] and BenchOptions(threads=()).thread_counts() == [1]
    assert BenchOptions(threads=(4, 1, 4, 2)).thread_counts() == [4, 1, 2]  # each once, in the given order
    with pytest.raises(AttributeError):  # frozen: a bench cannot change the caller's options
        options.runs = 5  # type: ignore[misc]


def test_bare_interpreter_loop_and_harness_overhead(exported_models: dict[str, Path], small_ham: Path) -> None:
    from dermtool.data.layouts import read_dataset
    from dermtool.data.preprocess import load_image
    from dermtool.runtime import TFLiteModel

    model = TFLiteModel(exported_models["int8"])
    images = np.stack([load_image(record.path, model.input_spec) for record in read_dataset(small_ham).records[:4]])
    bare = bare_interpreter_loop(exported_models["int8"], images[0], runs=50, threads=1)
    assert bare["runs"] == 50 and bare["mean"] > 0 and bare["total_s"] == pytest.approx(bare["mean"] * 50 / 1e3)
    overhead = harness_overhead(exported_models["int8"], images, runs=50, threads=1, repeats=3)
    assert bare["p50"] > 0 and bare["cpu_mean"] > 0
    assert overhead["harness_ms"] > 0 and overhead["bare_ms"] > 0 and overhead["harness_cpu_ms"] > 0
    # the harness times the same three calls as the bare loop; on a busy 2-core machine allow a wide margin
    assert overhead["overhead"] < 0.5, overhead
