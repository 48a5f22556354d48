"""``dermtool train`` through click: help, exit codes and one-line errors, and one real (tiny) run."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from dermtool.cli.main import cli

SMOKE = str(Path(__file__).resolve().parents[2] / "configs" / "smoke.toml")


def invoke(*arguments: str):
    return CliRunner().invoke(cli, ["train", *arguments])


def test_help_teaches_with_examples() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    for text in ("--config", "--resume", "--overwrite", "--set", "Examples:", "dermtool train --config"):
        assert text in result.output


def test_config_is_required() -> None:
    result = invoke()
    assert result.exit_code == 2
    assert "--config" in result.output


def test_a_missing_config_file_is_one_line(tmp_path: Path) -> None:
    result = invoke("--config", str(tmp_path / "absent.toml"), "--out", str(tmp_path / "run"))
    assert result.exit_code == 2
    assert result.output.strip().startswith("Error: config file not found")
    assert "Traceback" not in result.output
    assert not (tmp_path / "run").exists()


def test_a_config_without_a_data_folder_asks_for_one(tmp_path: Path) -> None:
    """The package has no default folder (a pip-installed user has none): the error says what to pass."""
    config = tmp_path / "no_data.toml"
    config.write_text("[train]\nfinetune_epochs = 1\n")
    result = invoke("--config", str(config), "--out", str(tmp_path / "run"))
    assert result.exit_code == 2
    assert "names no data folder: give --data DATA" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "run").exists()


def test_a_bad_override_names_the_key(tmp_path: Path) -> None:
    result = invoke("--config", SMOKE, "--set", "train.batchsize=8", "--out", str(tmp_path / "run"))
    assert result.exit_code == 2
    assert "Error:" in result.output and "train.batchsize" in result.output
    result = invoke("--config", SMOKE, "--set", "train.loss=hinge", "--out", str(tmp_path / "run"))
    assert result.exit_code == 2 and "'hinge'" in result.output and "'focal'" in result.output


def test_an_existing_run_is_not_overwritten(tiny_run: Path, small_ham: Path) -> None:
    result = invoke("--config", SMOKE, "--data", str(small_ham), "--out", str(tiny_run), "--quiet")
    assert result.exit_code == 2
    assert "Error:" in result.output and "--resume" in result.output and "--overwrite" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_resume_of_a_folder_without_a_run_is_refused(tmp_path: Path, small_ham: Path) -> None:
    result = invoke("--config", SMOKE, "--data", str(small_ham), "--out", str(tmp_path / "none"), "--resume")
    assert result.exit_code == 2 and "nothing to resume" in result.output


def test_a_real_run_prints_where_it_is_and_the_test_metrics(small_ham: Path, tmp_path: Path) -> None:
    """One head-only epoch, with the GPU code path forced on (MirroredStrategy, mixed_float16 with loss
    scaling) so that it runs somewhere: the saved model must still be float32."""
    from dermtool.run import RunFolder

    out = tmp_path / "run"
    result = invoke("--config", SMOKE, "--data", str(small_ham), "--out", str(out), "--epochs", "0",
                    "--batch-size", "32", "--set", "train.mixed_precision=on", "--set", "train.strategy=mirrored",
                    "--quiet")
    assert result.exit_code == 0, result.output
    assert f"Run folder: {out}" in result.output
    assert "Test metrics" in result.output and "balanced accuracy" in result.output
    config = (out / "config.toml").read_text()
    assert "finetune_epochs = 0" in config and "batch_size = 32" in config
    assert f'data_dir = "{small_ham}"' in config
    assert "MirroredStrategy" in (out / "train.log").read_text() and "mixed_float16" in (out / "train.log").read_text()
    model = RunFolder(out).load_model()
    assert {layer.dtype_policy.name for layer in model.layers} == {"float32"}
