"""benchmarks/bench_resampling.py: the same real images resized with different filters (and by MediaPipe)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dermtool.data.images import load_rgb
from dermtool.data.layouts import read_dataset
from dermtool.data.preprocess import RESIZE_POLICIES, resize
from tests.bench.conftest import load_benchmark_script


@pytest.fixture(scope="module")
def script():
    return load_benchmark_script("bench_resampling")


@pytest.mark.parametrize("policy", RESIZE_POLICIES)
def test_pillow_bilinear_is_dermtools_own_resize(script, small_pad: Path, policy: str) -> None:
    pixels = load_rgb(read_dataset(small_pad).records[0].path)
    assert np.array_equal(script.resize_with(pixels, 48, policy, "bilinear"), resize(pixels, 48, policy))
    assert script.resize_with(pixels, 48, policy, "box").shape == (48, 48, 3)


def test_rows_per_source_and_pair(script, exported_models: dict[str, Path], tiny_run: Path, small_ham: Path,
                                  tmp_path: Path, capsys) -> None:
    out = tmp_path / "resampling.json"
    code = script.main([str(exported_models["int8"]), "--data", str(small_ham), "--split", "test",
                        "--reference", str(tiny_run), "--limit", "6", "--upscale", "2", "--quiet", "--json", str(out)])
    assert code == 0
    rows = json.loads(out.read_text())
    assert rows == json.loads(capsys.readouterr().out)
    singles = [row for row in rows if row["kind"] == "resampler"]
    pairs = [row for row in rows if row["kind"] == "pair"]
    names = [row["resampler"] for row in singles]
    assert names[0] == "pillow_bilinear" and names[-1] == "mediapipe" and len(names) == 7
    assert len(pairs) == 7 * 6 // 2
    for row in rows:  # flat: no nested values
        assert all(not isinstance(value, (dict, list)) for value in row.values())
        assert row["n"] == 6 and row["split"] == "test" and row["upscale"] == 2.0 and row["source"] == small_ham.name
    for row in pairs:
        assert 0.0 <= row["top1_agreement"] <= 1.0 and row["mean_abs_prob_diff"] <= row["max_abs_prob_diff"]
        assert ("meets_target" in row) == (row["resampler_a"] == "pillow_bilinear")
    mediapipe = next(row for row in pairs if row["resampler_a"] == "pillow_bilinear" and row["resampler_b"] == "mediapipe")
    assert mediapipe["meets_target"] == (mediapipe["top1_agreement"] >= 0.98
                                         and abs(mediapipe["delta_balanced_accuracy"]) <= 0.005)


def test_errors_are_one_line(script, exported_models: dict[str, Path], small_ham: Path, capsys) -> None:
    assert script.main([str(exported_models["int8"]), "--data", str(small_ham), "--split", "test"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("Error: ") and "--split" in error[0]
