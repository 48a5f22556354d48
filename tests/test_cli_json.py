"""``--json PATH`` / ``--json -`` and the exit statuses, the same on every command (docs/contract.md).

Fast: the trained ``tiny_run`` session fixture, ``--no-ood`` predictions, and ``train`` with the training
itself replaced (only the command line's part is under test here).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from dermtool import CheckFailed
from dermtool.cli.main import cli

#: every command that produces results, with arguments that need no files (for the usage checks)
RESULT_COMMANDS = (
    ["predict", "x.jpg", "--model", "m.tflite"],
    ["bench", "m.tflite", "--data", "d"],
    ["evaluate", "run", "--data", "d"],
    ["data", "check", "d"],
    ["train", "--config", "c.toml"],
    ["export", "run", "--out", "m.tflite"],
    ["explain", "--evaluate", "--model", "run", "--data", "d", "--masks", "m"],
)


def invoke(arguments: list[str]):
    return CliRunner().invoke(cli, [str(argument) for argument in arguments])


@pytest.mark.parametrize("command", RESULT_COMMANDS, ids=lambda command: " ".join(command[:2]))
def test_every_result_command_documents_json_path_and_stdout(command: list[str]) -> None:
    help_text = " ".join(invoke([*command[: 2 if command[0] == "data" else 1], "--help"]).output.split())
    assert "--json PATH" in help_text and "'-' prints it to stdout" in help_text


@pytest.mark.parametrize("command", RESULT_COMMANDS, ids=lambda command: " ".join(command[:2]))
def test_usage_errors_exit_2(command: list[str], tmp_path: Path) -> None:
    unknown = invoke([*command, "--no-such-option"])
    assert unknown.exit_code == 2 and "No such option" in unknown.output
    folder = invoke([*command, "--json", tmp_path])  # refused before any work: a folder is no JSON file
    assert folder.exit_code == 2, folder.output
    assert folder.output.startswith("Error: ") and "is a folder" in folder.output


def test_check_failed_exits_3() -> None:
    @cli.command("refuse-for-test", hidden=True)
    def refuse_for_test() -> None:
        raise CheckFailed("refused by a check for the test")

    try:
        result = CliRunner().invoke(cli, ["refuse-for-test"])
    finally:
        cli.commands.pop("refuse-for-test", None)
    assert result.exit_code == 3
    assert result.output.strip() == "Error: refused by a check for the test"


def test_evaluate_json_path_and_stdout(tiny_run: Path, small_ham: Path, tmp_path: Path) -> None:
    base = ["evaluate", tiny_run, "--data", small_ham, "--split", "test", "--quiet"]
    out = tmp_path / "new_folder" / "metrics.json"  # missing folders are made
    to_file = invoke([*base, "--json", out])
    assert to_file.exit_code == 0, to_file.output
    assert "balanced accuracy" in to_file.stdout and f"Wrote {out}" in to_file.stderr
    to_stdout = invoke([*base, "--json", "-"])
    assert to_stdout.exit_code == 0, to_stdout.output
    assert json.loads(to_stdout.stdout) == json.loads(out.read_text())  # stdout holds the JSON and nothing else
    assert {"n", "accuracy", "balanced_accuracy", "macro_f1", "per_class"} <= set(json.loads(to_stdout.stdout))


def test_predict_json_path_stdout_and_the_old_flag(tiny_run: Path, small_ham: Path, tmp_path: Path) -> None:
    images = sorted((small_ham / "images").glob("*.jpg"))[:2]
    missing = tmp_path / "missing.jpg"
    base = ["predict", *images, missing, "--model", tiny_run, "--no-ood", "--top-k", "2"]
    out = tmp_path / "predictions.json"
    to_file = invoke([*base, "--json", out])
    assert to_file.exit_code == 1, to_file.output  # partial failure: one image unreadable
    assert "Referral:" in to_file.stdout and "could not be read" in to_file.stderr
    listed = json.loads(out.read_text())
    assert [entry["image"] for entry in listed] == [str(path) for path in [*images, missing]]
    assert set(listed[2]) == {"image", "error"}

    for option in (["--json", "-"], ["--json"]):  # a bare --json (last) still means stdout
        to_stdout = invoke([*base, *option])
        assert to_stdout.exit_code == 1, to_stdout.output
        assert json.loads(to_stdout.stdout) == listed
    bare_then_option = invoke(["predict", images[0], "--model", tiny_run, "--json", "--no-ood"])
    assert bare_then_option.exit_code == 0 and len(json.loads(bare_then_option.stdout)) == 1

    swallowed = invoke(["predict", "--json", images[0], images[1], "--model", tiny_run, "--no-ood"])
    assert swallowed.exit_code == 2 and "looks like an image" in swallowed.output  # never written over
    assert images[0].stat().st_size > 1000


def test_train_json_is_metrics_plus_the_run_folder(tiny_run: Path, small_ham: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The command line's part of train --json; the training is the finished tiny run."""
    from dermtool.run import RunFolder
    from dermtool.train import trainer

    def fake_train(config, out_dir, **_):
        print("Epoch 1/1 ... a library's progress line")  # must not reach stdout with --json -
        return RunFolder(tiny_run)

    monkeypatch.setattr(trainer, "train", fake_train)
    config = Path(__file__).resolve().parents[1] / "configs" / "smoke.toml"
    base = ["train", "--config", config, "--data", small_ham, "--out", tmp_path / "run"]
    to_stdout = invoke([*base, "--json", "-"])
    assert to_stdout.exit_code == 0, to_stdout.output
    result = json.loads(to_stdout.stdout)
    assert result["run"] == str(tiny_run)
    assert {key: value for key, value in result.items() if key != "run"} == RunFolder(tiny_run).metrics
    assert "progress line" in to_stdout.stderr

    out = tmp_path / "train.json"
    to_file = invoke([*base, "--json", out])
    assert to_file.exit_code == 0, to_file.output
    assert "Run folder:" in to_file.stdout and "progress line" in to_file.stdout
    assert json.loads(out.read_text()) == result
