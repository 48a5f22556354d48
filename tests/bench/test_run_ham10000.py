"""benchmarks/run_ham10000.py: argument defaults and the RESULTS.md section (the training/export stages are
exercised by their own modules' tests; the whole script by `make demo`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dermtool.bench.runner import BenchOptions, run_bench
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
    results = run_bench(exported_models["int8"], small_ham,
                        BenchOptions(reference=exported_models["float"], threads=(1, 2), runs=3, warmup=0,
                                     progress=False))
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


def test_multi_source_configs_bench_each_source(script) -> None:
    """A multi-source config: one bench per source's folder, results keyed VARIANT.SOURCE; a HAM-only config
    keeps VARIANT and the --data folder."""
    assert script.bench_sources("configs/multisource_cpu.toml", "ignored") == {
        "ham10000": "../shared/data/ham10000", "milk10k_dermoscopic": "../shared/data/milk10k",
        "milk10k_clinical": "../shared/data/milk10k", "pad_ufes_20": "../shared/data/pad_ufes_20"}
    assert script.bench_sources("configs/ham10000_cpu.toml", "/data/ham") == {"": "/data/ham"}
    assert script.result_key("int8_ptq") == "int8_ptq"
    assert script.result_key("int8_ptq", client="mediapipe") == "int8_ptq.mediapipe"
    assert script.result_key("float", "pad_ufes_20") == "float.pad_ufes_20"
    assert script.result_key("int8_ptq", "ham10000", "mediapipe") == "int8_ptq.ham10000.mediapipe"


def test_bench_stage_runs_the_mediapipe_client(script, monkeypatch, tmp_path: Path) -> None:
    commands = []

    def fake_run(command, *args, **kwargs):
        commands.append(command)
        Path(command[command.index("--json") + 1]).write_text('{"n": 1}')
        return type("Completed", (), {"returncode": 0})()

    monkeypatch.setattr(script.subprocess, "run", fake_run)
    script.bench_stage(Path("m.tflite"), "DATA", Path("RUN"), [1, 2], 10, 1, tmp_path / "a.json")
    script.bench_stage(Path("m.tflite"), "DATA", Path("RUN"), [1, 2], 10, 1, tmp_path / "b.json", client="mediapipe",
                       source="milk10k_clinical")
    litert, mediapipe = commands
    assert "--client" not in litert and litert.count("--threads") == 2 and "--source" not in litert
    assert mediapipe[mediapipe.index("--source") + 1] == "milk10k_clinical"
    assert mediapipe[mediapipe.index("--client") + 1] == "mediapipe" and "--threads" not in mediapipe
    assert mediapipe[mediapipe.index("--data") + 1] == "DATA" and mediapipe[mediapipe.index("--split") + 1] == "test"


def test_results_section_one_row_per_variant_and_source_with_mediapipe(
    script, exported_models: dict[str, Path], tiny_run: Path, small_ham: Path, small_pad: Path
) -> None:
    common = dict(split="test", manifest=tiny_run / "split.csv", reference=exported_models["float"], runs=3, warmup=0,
                  progress=False)
    ham = run_bench(exported_models["int8"], small_ham, BenchOptions(**common))
    ham_mediapipe = run_bench(exported_models["int8"], small_ham, BenchOptions(client="mediapipe", **common))
    all_results = {}
    for variant in ("float", "int8_ptq"):
        for source in ("ham10000", "pad_ufes_20"):
            all_results[script.result_key(variant, source)] = {**ham, "variant": variant, "source": source}
    all_results["int8_ptq.ham10000.mediapipe"] = {**ham_mediapipe, "variant": "int8_ptq", "source": "ham10000"}
    summary = {"command": "python benchmarks/run_ham10000.py --config configs/multisource_cpu.toml",
               "date": "2026-01-01T00:00:00+00:00", "run": "runs/x", "threads": [1], "runs": 3, "warmup": 0,
               "device": ham["device"], "overhead": None, "stage_seconds": {"train": 1.0}}
    section = script.results_section(all_results, summary)
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in section.splitlines()
            if line.startswith("| ") and not line.startswith("| variant")]
    assert [(row[0], row[1]) for row in rows] == [
        ("float", "ham10000"), ("float", "pad_ufes_20"), ("int8_ptq", "ham10000"), ("int8_ptq", "pad_ufes_20"),
        ("int8_ptq (MediaPipe)", "ham10000")]
    assert all(len(row) == 10 for row in rows)  # variant, source, size, gzip, 5 metrics, agreement, 1 latency cell
    assert rows[-1][4] == f"{ham_mediapipe['balanced_accuracy']:.3f}" and rows[-1][-1] == "- / -"
    assert "`int8_ptq.ham10000.mediapipe`: MediaPipe Tasks ImageClassifier" in section
    assert f"{ham_mediapipe['pipeline_drift']['top1_agreement']:.4f}" in section


def test_fusion_lines_report_each_source_image_only_then_fused(script) -> None:
    """The demo's RESULTS.md names the fusion's test figures per source, from RUN/fusion_report.json."""
    def figures(value: float) -> dict:
        return {"images": 93, "balanced_accuracy": value}

    report = {"splits": {"val": {}, "test": {"pad_ufes_20": {
        "images_with_answers": 93, "image_only": figures(0.488), "fused": figures(0.593),
        "fused_all_unknown": figures(0.488)}}}}
    lines = script.fusion_lines(report)
    assert len(lines) == 1
    assert "`pad_ufes_20` (93 images, 93 with answers)" in lines[0]
    assert "0.488 image only -> 0.593 fused" in lines[0] and "every answer unknown 0.488" in lines[0]
    assert script.fusion_lines(None) == []


def test_fuse_stage_reuses_an_existing_fusion(script, tmp_path: Path) -> None:
    (tmp_path / "fusion.json").write_text("{}", encoding="utf-8")
    (tmp_path / "fusion_report.json").write_text('{"splits": {}}', encoding="utf-8")
    assert script.fuse_stage(tmp_path) == {"splits": {}}


def test_lesion_check_stage_reuses_an_existing_check(script, tmp_path: Path, capsys) -> None:
    (tmp_path / "lesion_check.json").write_text("{}", encoding="utf-8")
    script.lesion_check_stage(tmp_path)  # no fit: the file is there (an empty run folder could not be fitted)
    assert "reusing" in capsys.readouterr().out
