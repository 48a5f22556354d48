"""dermtool.train.checkpoints: the run-folder rules (refuse, overwrite, resume) and the state file."""

from __future__ import annotations

from pathlib import Path

import pytest

from dermtool import DermtoolError
from dermtool.config import Config, apply_overrides
from dermtool.train.checkpoints import (RunState, clear_run_files, prepare_run_folder,
                                        remove_checkpoints_except)


def test_a_new_run_writes_its_config(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert prepare_run_folder(out, Config().to_toml(), resume=False, overwrite=False) is None
    assert (out / "config.toml").read_text() == Config().to_toml()


def test_a_non_empty_folder_is_refused_with_the_way_out(tmp_path: Path) -> None:
    (tmp_path / "something.txt").write_text("x")
    with pytest.raises(DermtoolError) as error:
        prepare_run_folder(tmp_path, Config().to_toml(), resume=False, overwrite=False)
    assert "--resume" in str(error.value) and "--overwrite" in str(error.value)
    assert (tmp_path / "something.txt").read_text() == "x"


def test_overwrite_deletes_run_files_and_nothing_else(tmp_path: Path) -> None:
    for name in ("model.keras", "metrics.json", "history.csv", "split.csv", "labels.txt", "train.log"):
        (tmp_path / name).write_text("old")
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "epoch-1.index").write_text("old")
    (tmp_path / "logs").mkdir()
    (tmp_path / "my_notes.md").write_text("keep me")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "image.jpg").write_text("keep me too")
    prepare_run_folder(tmp_path, Config().to_toml(), resume=False, overwrite=True)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["config.toml", "data", "my_notes.md"]
    assert (tmp_path / "my_notes.md").read_text() == "keep me"
    assert (tmp_path / "data" / "image.jpg").read_text() == "keep me too"


def test_resume_and_overwrite_together_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DermtoolError, match="choose one"):
        prepare_run_folder(tmp_path, Config().to_toml(), resume=True, overwrite=True)


def test_resume_needs_a_run_to_resume(tmp_path: Path) -> None:
    with pytest.raises(DermtoolError, match="nothing to resume"):
        prepare_run_folder(tmp_path / "absent", Config().to_toml(), resume=True, overwrite=False)


def test_resume_refuses_a_different_configuration_and_names_the_keys(tmp_path: Path) -> None:
    prepare_run_folder(tmp_path, Config().to_toml(), resume=False, overwrite=False)
    changed = apply_overrides(Config(), ["train.batch_size=8", "data.image_size=96"])
    with pytest.raises(DermtoolError) as error:
        prepare_run_folder(tmp_path, changed.to_toml(), resume=True, overwrite=False)
    message = str(error.value)
    assert "train.batch_size: 32 -> 8" in message and "data.image_size: 224 -> 96" in message
    assert "--overwrite" in message


def test_resume_with_the_same_configuration_returns_the_state(tmp_path: Path) -> None:
    prepare_run_folder(tmp_path, Config().to_toml(), resume=False, overwrite=False)
    assert prepare_run_folder(tmp_path, Config().to_toml(), resume=True, overwrite=False) == RunState()
    state = RunState(completed_epochs=3, phase="finetune", checkpoint="epoch-3", best_epoch=2, best_score=0.5,
                     best_checkpoint="best-2", seed=7)
    state.write(tmp_path)
    assert prepare_run_folder(tmp_path, Config().to_toml(), resume=True, overwrite=False) == state


def test_resume_accepts_a_run_written_before_a_setting_existed(tmp_path: Path) -> None:
    """A run whose config.toml lacks a setting added later (here export.distill) resumes when the current
    value is that setting's default, and is refused when it is not."""
    old_text = "\n".join(line for line in Config().to_toml().splitlines() if not line.startswith("distill"))
    assert "distill" not in old_text
    prepare_run_folder(tmp_path, old_text, resume=False, overwrite=False)
    assert prepare_run_folder(tmp_path, Config().to_toml(), resume=True, overwrite=False) == RunState()
    changed = apply_overrides(Config(), ["export.distill=false"])
    with pytest.raises(DermtoolError, match="export.distill: True -> False"):
        prepare_run_folder(tmp_path, changed.to_toml(), resume=True, overwrite=False)


def test_an_unreadable_state_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "state.json").write_text("{not json")
    with pytest.raises(DermtoolError, match="unreadable checkpoint state"):
        RunState.read(tmp_path)


def test_old_checkpoints_are_removed_but_the_named_ones_kept(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    names = ["epoch-1.index", "epoch-1.data-00000-of-00001", "epoch-2.index", "best-1.index", "state.json"]
    for name in names:
        (folder / name).write_text("x")
    (folder / "epoch-2_temp").mkdir()  # what an interrupted checkpoint write can leave
    remove_checkpoints_except(tmp_path, {"epoch-2", "best-1"})
    assert sorted(path.name for path in folder.iterdir()) == ["best-1.index", "epoch-2.index", "state.json"]


def test_clear_run_files_on_an_empty_folder_is_harmless(tmp_path: Path) -> None:
    clear_run_files(tmp_path)
    assert list(tmp_path.iterdir()) == []
