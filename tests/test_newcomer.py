"""The newcomer's path (issue 28 item 3): what the README says to type after `make demo` uses what `make demo`
made, the Workflow needs no training run first, `make mobile-demo`'s port is documented, and `serve` and
`explain` say what they are doing while they load."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from dermtool import DermtoolError
from dermtool.cli.main import cli

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
DEMO_RUN, DEMO_MODEL = "runs/demo/run", "runs/demo/models/int8_ptq.tflite"


def _section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start:end]


def test_make_demo_makes_what_the_readme_uses_next() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "benchmarks/run_ham10000.py --config configs/demo_cpu.toml --data $(DATA) --out runs/demo --quick" in makefile
    script = (ROOT / "benchmarks" / "run_ham10000.py").read_text(encoding="utf-8")
    assert 'run_dir = out / "run"' in script and 'models_dir = out / "models"' in script
    assert 'QUICK_VARIANTS = "float,int8_ptq"' in script
    after_demo = _section("The two commands")
    for command in ("dermtool predict", "dermtool explain", "dermtool serve", "make mobile-demo"):
        line = next(line for line in after_demo.splitlines() if line.strip().startswith(command))
        assert DEMO_RUN in line or DEMO_MODEL in line, line


def test_the_workflow_runs_on_the_demo_run_and_model() -> None:
    workflow = _section("Workflow")
    assert f"RUN={DEMO_RUN}" in workflow and f"MODEL={DEMO_MODEL}" in workflow
    for line in workflow.splitlines():
        command = line.strip()
        if command.startswith(("dermtool ", "python benchmarks/", "make ")) and not command.startswith(
                ("dermtool train", "dermtool data", "dermtool weights")):
            # every command after training reads $RUN or $MODEL, not a run the reader has not made
            assert "runs/lite0" not in command and "lite0_" not in command, command
    assert "MOBILE_PORT" in workflow


def test_mobile_port_is_documented_in_make_help() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^MOBILE_PORT \?= 8080$", makefile, re.M)
    assert "MOBILE_PORT=" in makefile.split("help:", 1)[1].split("\ninstall:", 1)[0]


def test_explain_says_what_it_is_doing(tmp_path: Path, monkeypatch) -> None:
    """On a terminal (progress lines, like the progress bars, stay off a script's stderr)."""
    import dermtool.cli.explain
    import dermtool.explain.gradcam

    monkeypatch.setattr(dermtool.cli.explain, "_on_terminal", lambda: True)

    def stop(model):
        raise DermtoolError("stopped while loading (test)")

    monkeypatch.setattr(dermtool.explain.gradcam, "get_explainer", stop)
    image = tmp_path / "lesion.jpg"
    image.write_bytes(b"not read")
    result = CliRunner().invoke(cli, ["explain", str(image), "--model", str(tmp_path), "--out",
                                      str(tmp_path / "overlay.png")])
    assert f"Loading {tmp_path}" in result.output and "stopped while loading" in result.output
