"""history.csv: one row per epoch, rewritten atomically after every epoch (so it is never half-written)."""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from dermtool.io_utils import atomic_write_text
from dermtool.run import HISTORY_FILE


@dataclass
class EpochRecord:
    """What one epoch did. ``epoch`` counts from 1 across both phases."""

    epoch: int
    phase: str  # "head" (frozen backbone) | "finetune"
    loss: float  # mean training loss (class-weighted when train.class_balance = "weights")
    train_accuracy: float  # running accuracy on the augmented training batches
    val_loss: float  # cross-entropy of the uncalibrated validation predictions
    val_balanced_accuracy: float
    val_accuracy: float
    learning_rate: float  # at the epoch's last step
    seconds: float  # training time of the epoch (validation excluded)
    images_per_second: float  # training throughput
    input_wait_fraction: float  # share of the training time spent waiting for the next batch


COLUMNS = [field.name for field in fields(EpochRecord)]


def write_history(run_dir: Path, records: list[EpochRecord]) -> Path:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for record in records:
        row = asdict(record)
        writer.writerow({key: (f"{value:.6g}" if isinstance(value, float) else value) for key, value in row.items()})
    return atomic_write_text(run_dir / HISTORY_FILE, buffer.getvalue())


def read_history(run_dir: Path) -> list[EpochRecord]:
    path = run_dir / HISTORY_FILE
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    records = []
    for row in rows:
        values = {}
        for field in fields(EpochRecord):
            text = row[field.name]
            values[field.name] = int(text) if field.type in (int, "int") else (
                text if field.type in (str, "str") else float(text))
        records.append(EpochRecord(**values))
    return records
