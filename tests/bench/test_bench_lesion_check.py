"""The bench reports the lesion check: real lesions rejected and non-lesions caught, through LiteRT and through
MediaPipe's second head; benchmarks/bench_lesion_check.py measures the same on every source of a run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from dermtool.bench.runner import BenchOptions, run_bench
from dermtool.prediction.lesion_check import NO_CHECK_MESSAGE
from tests.bench.conftest import load_benchmark_script


def _check_block(block: dict, threshold: float) -> None:
    assert block["lesions"] > 0 and 0.0 <= block["false_rejection"] <= 1.0
    generated, crops = block["non_lesions"]["generated"], block["non_lesions"]["skin_crops"]
    assert generated["n"] >= 8 and crops["n"] > 0
    assert 0.0 <= generated["caught"] <= 1.0 and 0.0 <= crops["caught"] <= 1.0
    assert {"blank", "text", "noise"} <= set(generated["per_kind"])


def test_bench_reports_the_lesion_check_through_litert_and_mediapipe(exported_with_lesion_check, lesion_check_run,
                                                                       small_ham: Path) -> None:
    results = run_bench(exported_with_lesion_check["int8"], small_ham,
                        BenchOptions(split="test", reference=lesion_check_run, runs=2, warmup=0, progress=False,
                                     client="both"))
    block = results["lesion_check"]
    threshold = json.loads((lesion_check_run / "lesion_check.json").read_text())["threshold"]
    assert block["threshold"] == pytest.approx(threshold)
    _check_block(block, threshold)
    _check_block(block["mediapipe"], threshold)
    assert block["mediapipe"]["lesions"] == block["lesions"] == results["n"]
    # blank frames are the easiest non-lesions: both clients catch them with the tiny model too
    assert block["non_lesions"]["generated"]["per_kind"]["blank"] >= 0.5
    assert block["mediapipe"]["non_lesions"]["generated"]["per_kind"]["blank"] >= 0.5


def test_bench_of_an_older_export_says_it_has_no_lesion_check(exported_models, tiny_run, small_ham: Path) -> None:
    from dermtool.cli.main import cli

    out = CliRunner().invoke(cli, ["bench", str(exported_models["int8"]), "--data", str(small_ham), "--split", "test",
                                   "--reference", str(tiny_run), "--runs", "2", "--json", "-"])
    assert out.exit_code == 0, out.output
    results = json.loads(out.stdout)
    assert results["lesion_check"] is None and NO_CHECK_MESSAGE in results["notes"]


def test_the_benchmark_script_measures_every_source_and_the_unseen_folder(exported_with_lesion_check,
                                                                        lesion_check_run, small_pad: Path,
                                                                        tmp_path: Path) -> None:
    script = load_benchmark_script("bench_lesion_check")
    results = script.run(str(exported_with_lesion_check["int8"]), str(lesion_check_run), unseen=str(small_pad),
                         per_source=6, per_kind=2, save_crops=str(tmp_path / "crops"), progress=False)
    for client in ("mediapipe", "litert"):
        figures = results["clients"][client]
        assert "unseen" in figures["false_rejection"] and len(figures["false_rejection"]) == 2  # the run's one source
        assert all(0.0 <= value <= 1.0 for value in figures["false_rejection"].values())
        assert len(figures["skin_crops_caught"]) == 1 and "blank" in figures["generated_caught"]
    assert results["counts"]["lesions:unseen"] == 6 and list((tmp_path / "crops").rglob("*.png"))
    assert "lesions rejected: unseen" in script.format_table(results)
    import shutil

    from dermtool.prediction.lesion_check import read_run_check

    run = tmp_path / "run"
    shutil.copytree(lesion_check_run, run)
    assert script.record(str(run), results, "python benchmarks/bench_lesion_check.py ...") == "test_int8"
    recorded = read_run_check(run).figures["test_int8"]
    assert recorded["clients"] == results["clients"] and recorded["command"].startswith("python benchmarks/")


def test_the_terminal_report_has_the_lesion_check_lines() -> None:
    from dermtool.bench.report import lesion_check_lines

    part = {"lesions": 40, "false_rejection": 0.025,
            "non_lesions": {"generated": {"n": 16, "caught": 1.0}, "skin_crops": {"n": 40, "caught": 0.95}}}
    lines = lesion_check_lines({"lesion_check": {"threshold": 0.675, **part, "mediapipe": part}})
    assert lines[1] == "Lesion check (reject at P(not_a_lesion) >= 0.675)"
    assert "lesions rejected 2.5 % of 40" in lines[2] and lines[3].strip().startswith("MediaPipe")
    assert lesion_check_lines({"lesion_check": None}) == []
