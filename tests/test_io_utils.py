"""Atomic writes: complete or absent, never half-written; ordinary file permissions."""

from __future__ import annotations

import json
import stat

import pytest

from dermtool.io_utils import atomic_path, atomic_write_json, atomic_write_text


def test_atomic_write_replaces_and_leaves_no_temporary(tmp_path) -> None:
    target = tmp_path / "sub" / "out.json"
    atomic_write_json(target, {"a": 1})
    atomic_write_json(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 2}
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.json"]


def test_failed_write_keeps_the_old_file_and_removes_the_temporary(tmp_path) -> None:
    target = tmp_path / "model.tflite"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as temporary:
            temporary.write_text("half")
            raise RuntimeError("conversion failed")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.tflite"]


def test_written_files_get_umask_permissions_not_0600(tmp_path, monkeypatch) -> None:
    import dermtool.io_utils as io_utils

    monkeypatch.setattr(io_utils, "_UMASK", 0o022)
    target = atomic_write_text(tmp_path / "labels.txt", "mel\n")
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
