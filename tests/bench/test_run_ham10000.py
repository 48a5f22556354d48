"""benchmarks/run_ham10000.py: argument defaults and the RESULTS.md section (the training/export stages are
exercised by their own modules' tests; the whole script by `make demo`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dermtool.bench.runner import run_bench
from tests.bench.conftest import load_benchmark_script


@pytest.fixture(scope="module")
def script():
    return load_benchmark_script("run_ham10000")


def test_arguments(script, tmp_path: Path) -> None:
    published = script.parse_arguments([])
    assert published.variant_list == ["float", "int8_ptq", "int8_qat", "pruned50_qat_int8"]
    assert published.threads == [1, 2] and published.runs == 200
    assert published.results_dir == script.PUBLISHED_RESULTS_DIR and published.results_md == script.PUBLISHED_RESULTS_MD
    demo = script.parse_arguments(["--config", "configs/demo_cpu.toml", "--out", str(tmp_path / "demo"), "--quick"])
    assert demo.variant_list == ["float", "int8_ptq"]
    # a demo never overwrites the published results
    assert demo.results_dir == tmp_path / "demo" / "results" and demo.results_md == tmp_path / "demo" / "RESULTS.md"
    with pytest.raises(SystemExit):
        script.parse_arguments(["--variants", "float,int4"])


def test_results_section_replaces_only_the_text_between_the_markers(
    script, exported_models: dict[str, Path], small_ham: Path, tmp_path: Path
) -> None:
    results = run_bench(exported_models["int8"], small_ham, reference=exported_models["float"], threads=(1, 2),
                        runs=3, warmup=0, progress=False)
    summary = {
        "command": "python benchmarks/run_ham10000.py --quick", "date": "2026-01-01T00:00:00+00:00", "run": "runs/x",
        "threads": [1, 2], "runs": 3, "warmup": 0, "device": results["device"],
        "overhead": {"model": "int8_ptq.tflite", "overhead": 0.01, "harness_cpu_ms": 1.01, "bare_cpu_ms": 1.0,
                     "overhead_wall": 0.02, "harness_ms": 1.02, "bare_ms": 1.0, "runs": 100, "repeats": 20},
        "stage_seconds": {"train": 10.0, "export int8_ptq": 5.0, "bench int8_ptq": 3.0},
    }
    section = script.results_section({"int8_ptq": results}, summary)
    assert section.startswith(script.BEGIN_MARKER) and section.endswith(script.END_MARKER)
    row = next(line for line in section.splitlines() if line.startswith("| int8_ptq |"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert len(cells) == 10  # variant, size, gzip, bal. acc., macro F1, mel recall, ECE, agreement, 2 latency cells
    assert cells[3] == f"{results['balanced_accuracy']:.3f}" and cells[7] == f"{results['drift']['top1_agreement']:.3f}"
    assert cells[6] == f"{results['ece']:.3f}" and cells[5] == f"{results['per_class']['mel']['recall']:.3f}"
    assert f"{results['latency_ms']['2']['p50']:.2f} / {results['latency_ms']['2']['p99']:.2f}" == cells[9]
    for fragment in ("CPU:", "thread counts timed: 1, 2", "Date: 2026-01-01", "Command: `python benchmarks",
                     "Harness overhead", "+1.0 %", "Wall time per stage: train 10 s"):
        assert fragment in section, fragment

    markdown = tmp_path / "RESULTS.md"
    markdown.write_text(f"# Results\n\nIntro.\n\n{script.BEGIN_MARKER}\nold table\n{script.END_MARKER}\n\nOutro.\n")
    script.write_results_markdown(markdown, section)
    text = markdown.read_text()
    assert text.startswith("# Results\n\nIntro.\n\n") and text.endswith("\n\nOutro.\n")
    assert "old table" not in text and text.count(script.BEGIN_MARKER) == 1 and "| int8_ptq |" in text
    fresh = tmp_path / "new" / "RESULTS.md"
    script.write_results_markdown(fresh, section)
    assert script.BEGIN_MARKER in fresh.read_text()
