"""Issue #19, item 4: each of these failures is one line on stderr and a non-zero exit, with nothing left
behind; TensorFlow's start-up logging never comes before the Error: line."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from dermtool.cli.main import cli

REPO_ROOT = Path(__file__).resolve().parents[1]
DERMTOOL = Path(sys.executable).with_name("dermtool")


def one_error_line(result) -> str:
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1 and result.output.startswith("Error: "), result.output
    assert "Traceback" not in result.output
    return result.output


def test_config_that_is_not_utf8(tmp_path: Path) -> None:
    config = tmp_path / "latin1.toml"
    config.write_bytes("[train]\n# caf\xe9\n".encode("latin-1"))
    output = one_error_line(CliRunner().invoke(cli, ["train", "--config", str(config), "--out", str(tmp_path / "r")]))
    assert "not a UTF-8 text file" in output
    assert not (tmp_path / "r").exists()


def test_train_with_missing_data_leaves_nothing_and_can_be_retried(tmp_path: Path) -> None:
    out = tmp_path / "r"
    arguments = ["train", "--config", str(REPO_ROOT / "configs" / "smoke.toml"), "--data", str(tmp_path / "nope"),
                 "--out", str(out)]
    for _ in range(2):  # the retry gets the same message, not "continue an interrupted run with --resume"
        output = one_error_line(CliRunner().invoke(cli, arguments))
        assert "data folder not found" in output and "--resume" not in output
        assert not out.exists()


def test_train_failing_after_the_run_folder_was_started_cleans_up(tmp_path: Path) -> None:
    data = tmp_path / "empty_data"
    data.mkdir()  # a folder, but no labelled images: the trainer fails after writing config.toml
    out = tmp_path / "r"
    arguments = ["train", "--config", str(REPO_ROOT / "configs" / "smoke.toml"), "--data", str(data), "--out",
                 str(out), "--quiet"]
    result = CliRunner().invoke(cli, arguments)
    assert result.exit_code == 2 and "no labelled images found" in result.output, result.output
    assert not out.exists()
    assert "--resume" not in CliRunner().invoke(cli, arguments).output


def test_explain_out_is_a_folder(tmp_path: Path) -> None:
    image = tmp_path / "x.jpg"
    image.write_bytes(b"\xff\xd8\xff")
    output = one_error_line(CliRunner().invoke(
        cli, ["explain", str(image), "--model", str(tmp_path), "--out", str(tmp_path)]))
    assert "is a folder" in output


def test_serve_on_a_port_in_use_exits_before_loading_the_model(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        # pyproject.toml is no model: loading it would fail differently, so the port is checked first
        result = CliRunner().invoke(cli, ["serve", "--model", str(REPO_ROOT / "pyproject.toml"), "--port", str(port)])
    output = one_error_line(result)
    assert "port is in use" in output and str(port) in output


def test_no_tensorflow_log_lines_before_the_error(tiny_run: Path, small_ham: Path, tmp_path: Path) -> None:
    """A real subprocess: explain imports TensorFlow, loads the run, then fails on the class name."""
    image = next((small_ham / "images").iterdir())
    completed = subprocess.run(
        [str(DERMTOOL), "explain", str(image), "--model", str(tiny_run), "--out", str(tmp_path / "o.png"),
         "--class", "no_such_class"],
        capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 2, completed.stderr
    assert completed.stderr.splitlines() == [completed.stderr.strip()], completed.stderr
    assert completed.stderr.startswith("Error: unknown class")
    assert not (tmp_path / "o.png").exists()
