"""benchmarks/bench_decode_memory.py (issue 27, item 9) on tiny copies of its three shapes: it writes a JPEG, a
16-bit PNG and a float TIFF to a temporary folder, decodes each in a fresh process and reports dermtool's
estimate beside the measured peak (the full-size run is in RESULTS: 'Decode memory')."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.bench.conftest import load_benchmark_script


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="measures memory through Linux /proc")
def test_decode_memory_benchmark_runs_on_tiny_images(tmp_path: Path) -> None:
    script = load_benchmark_script("bench_decode_memory")
    out = tmp_path / "decode.json"
    assert script.main(["--scale", "0.02", "--json", str(out)]) == 0
    results = json.loads(out.read_text())["results"]
    assert [item["name"] for item in results] == ["rgb_jpeg", "png16", "float_tiff"]
    assert [item["mode"] for item in results] == ["RGB", "I;16", "F"]
    for item in results:
        assert item["size"] == [max(8, int(side * 0.02)) for side in script.SHAPES[item["name"]][:2]]
        assert item["estimate_bytes"] > 0 and item["measured_peak_bytes"] >= 0
    assert not list(tmp_path.glob("*.jpg")) and not list(Path.cwd().glob("rgb_jpeg*"))  # nothing left behind
