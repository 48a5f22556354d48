"""benchmarks/bench_compression.py: the entropy bound behind the pruning-size claims in RESULTS.md."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.bench.conftest import load_benchmark_script


@pytest.fixture(scope="module")
def script():
    return load_benchmark_script("bench_compression")


def test_byte_entropy(script) -> None:
    assert script.byte_entropy_bits(np.arange(256, dtype=np.uint8).astype(np.int8)) == pytest.approx(8.0)
    assert script.byte_entropy_bits(np.zeros(100, np.int8)) == pytest.approx(0.0)
    # half zeros, a quarter each of two other values: 1.5 bits
    assert script.byte_entropy_bits(np.array([0, 0, 1, -1] * 25, np.int8)) == pytest.approx(1.5)


def test_measures_an_exported_int8_model(script, exported_models: dict[str, Path], tmp_path: Path, capsys) -> None:
    model = exported_models["int8"]
    out = tmp_path / "compression.json"
    script.main([str(model), str(model), "--json", str(out)])
    rows = json.loads(out.read_text())["models"]
    assert len(rows) == 2 and rows[0]["gzip_ratio"] == rows[1]["gzip_ratio"] == 1.0
    row = rows[0]
    assert row["int8_weights"] > 0 and 0.0 <= row["int8_weight_zero_fraction"] < 0.5
    assert 0 < row["int8_weight_entropy_bound_bytes"] <= row["int8_weights"] < row["bytes"]
    assert row["gzip_bytes"] < row["bytes"]
    assert model.name in capsys.readouterr().out
