"""The top-level command line: help, version, lazy loading, one-line errors."""

from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner

from dermtool import DermtoolError, __version__
from dermtool.cli.main import COMMANDS, cli


def test_version() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output


def test_help_lists_the_available_commands_and_the_disclaimer() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "not a medical device" in text
    listed = cli.list_commands(None)  # type: ignore[arg-type]
    assert "data" in listed
    for name in listed:
        assert f"{name} {COMMANDS[name][2]}" in text


def test_help_of_every_command_imports_no_tensorflow() -> None:
    """`dermtool --help` and each command's --help must stay fast: no TensorFlow import."""
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from dermtool.cli.main import cli\n"
        "runner = CliRunner()\n"
        "assert runner.invoke(cli, ['--help']).exit_code == 0\n"
        "for name in cli.list_commands(None):\n"
        "    result = runner.invoke(cli, [name, '--help'])\n"
        "    assert result.exit_code == 0, (name, result.output)\n"
        "heavy = [m for m in ('tensorflow', 'tf_keras', 'matplotlib') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    assert "HEAVY []" in completed.stdout


def test_unknown_command_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["no-such-command"])
    assert result.exit_code == 2
    assert "No such command" in result.output


def test_dermtool_error_becomes_one_line_and_exit_2() -> None:
    @cli.command("raise-for-test", hidden=True)
    def raise_for_test() -> None:
        raise DermtoolError("something the user can fix")

    try:
        result = CliRunner().invoke(cli, ["raise-for-test"])
    finally:
        cli.commands.pop("raise-for-test", None)
    assert result.exit_code == 2
    assert result.output.strip() == "Error: something the user can fix"
    assert "Traceback" not in result.output
