"""Interruption and resume: the run folder's start-up rules, per-epoch checkpoints and their state file.

After every epoch the trainer writes, in ``RUN/checkpoints/``:

1. ``epoch-N.*``: a ``tf.train.Checkpoint`` of the model weights and the current phase's optimiser
   state (moments, step count, hence the learning-rate schedule's position);
2. ``best-N.*`` when epoch N is the best so far (model weights only);
3. ``state.json`` (atomically, last): the completed epoch, its phase, the best epoch and score, the
   checkpoint prefixes, and the seed scheme. ``state.json`` is the commit point: a crash while writing
   a checkpoint leaves the previous, complete one in charge. Older checkpoints are deleted afterwards.

Randomness: data order and augmentation of epoch ``e`` are seeded by ``(train.seed, e)``, so a resumed
run sees exactly the batches an uninterrupted one would; dropout masks are not replayed.

Folder rules: a new run refuses a non-empty folder unless ``overwrite`` (which deletes only the files a
run writes, nothing else) or ``resume`` (which requires the same resolved configuration).
"""

from __future__ import annotations

import json
import shutil
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dermtool import DermtoolError
from dermtool.config import Config
from dermtool.io_utils import atomic_write_json, atomic_write_text
from dermtool.run import CHECKPOINTS_DIR, CONFIG_FILE, RUN_ENTRIES

STATE_FILE = "state.json"


@dataclass
class RunState:
    """What a resumed run needs to continue exactly where the last one stopped."""

    completed_epochs: int = 0
    phase: str = ""  # phase of the last completed epoch: "head" | "finetune"
    checkpoint: str = ""  # prefix (relative to checkpoints/) of the latest checkpoint
    best_epoch: int = 0
    best_score: float = -1.0  # validation balanced accuracy of the best epoch
    best_checkpoint: str = ""
    seed: int = 0
    seed_scheme: str = "epoch e: data order and augmentation seeded by (train.seed, e)"
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def read(cls, run_dir: Path) -> "RunState | None":
        path = run_dir / CHECKPOINTS_DIR / STATE_FILE
        if not path.is_file():
            return None
        try:
            values = json.loads(path.read_text(encoding="utf-8"))
            return cls(**{key: values[key] for key in cls.__dataclass_fields__ if key in values})
        except (json.JSONDecodeError, TypeError) as error:
            raise DermtoolError(f"{path}: unreadable checkpoint state ({error}); start again with --overwrite") from None

    def write(self, run_dir: Path) -> None:
        atomic_write_json(run_dir / CHECKPOINTS_DIR / STATE_FILE, asdict(self))


def _is_empty(folder: Path) -> bool:
    return not folder.exists() or not any(folder.iterdir())


def _config_differences(old_text: str, new_text: str) -> list[str]:
    """``section.key: old -> new`` for each setting that differs. A key missing from either text (a run
    written by a dermtool that did not have that setting yet) counts as its default value."""
    defaults = Config().to_dict()
    old, new = tomllib.loads(old_text), tomllib.loads(new_text)
    differences = []
    for section in sorted(set(old) | set(new)):
        section_defaults = defaults.get(section, {})
        old_values = {**section_defaults, **old.get(section, {})}
        new_values = {**section_defaults, **new.get(section, {})}
        for key in sorted(set(old_values) | set(new_values)):
            if old_values.get(key) != new_values.get(key):
                differences.append(f"{section}.{key}: {old_values.get(key)!r} -> {new_values.get(key)!r}")
    return differences


def prepare_run_folder(run_dir: Path, config_toml: str, resume: bool, overwrite: bool) -> RunState | None:
    """Apply the folder rules; return the state to resume from (None for a fresh run).

    Writes ``config.toml`` for a fresh run. Raises :class:`DermtoolError` with the way out when the folder
    is in use or the configuration differs from the one being resumed.
    """
    if resume and overwrite:
        raise DermtoolError("--resume and --overwrite contradict each other: choose one")
    if resume:
        config_path = run_dir / CONFIG_FILE
        if not config_path.is_file():
            raise DermtoolError(f"nothing to resume in {run_dir}: no {CONFIG_FILE} there "
                                f"(start a new run without --resume)")
        differences = _config_differences(config_path.read_text(encoding="utf-8"), config_toml)
        if differences:
            raise DermtoolError(
                f"cannot resume {run_dir} with a different configuration ({'; '.join(differences)}); "
                f"resume with the same config and options, or start over with --overwrite"
            )
        return RunState.read(run_dir) or RunState()
    if not _is_empty(run_dir):
        if not overwrite:
            raise DermtoolError(
                f"{run_dir} is not empty: continue an interrupted run with --resume, "
                f"or replace it with --overwrite, or choose another --out"
            )
        clear_run_files(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / CONFIG_FILE, config_toml)
    return None


def clear_run_files(run_dir: Path) -> None:
    """Delete what a training run writes (and only that) from ``run_dir``."""
    for name in RUN_ENTRIES:
        path = run_dir / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def remove_checkpoints_except(run_dir: Path, keep: set[str]) -> None:
    """Delete checkpoint files whose prefix is not in ``keep`` (call after the state file names ``keep``)."""
    folder = run_dir / CHECKPOINTS_DIR
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        prefix = path.name.split(".", 1)[0]
        if path.name == STATE_FILE or prefix in keep or not (prefix.startswith("epoch-") or prefix.startswith("best-")):
            continue
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
