"""``data check``: validate every image of a labelled folder and report everything found, in one pass.

Every listed image is read, hashed (sha256) and fully decoded in a thread pool; a bad file is recorded and
the check goes on. The report holds:

- ``errors``: images that cannot be used, each ``{image_id, path, reason, message}`` (reasons of
  :class:`dermtool.data.images.ImageError`: empty, not_an_image, truncated, too_large, unreadable; and
  ``outside_data`` for a CSV row whose image id names a path outside the folder, which is never read);
- ``warnings``: usable images with something unusual (``{image_id, path, issue}``: greyscale, rgba, cmyk,
  16-bit, palette, exif_rotated, tiny ...) and problems of the label file (duplicate rows, rows without a
  label, ...; with a ``detail``);
- ``duplicates``: groups of byte-identical files (same sha256), with their labels and lesion groups;
- ``cross_split_duplicates``: duplicates whose copies sit in different splits (a leak), when a split file
  is given or the data folder holds one (a CSV with columns image_id,label,group,split);
- ``missing`` (ids in the CSV without a file), ``unlisted`` (image files the CSV does not name),
  ``rare_labels`` (classes with fewer usable images than ``min_per_class``), counts per class.

Example::

    report = check_dataset("~/data/ham10000")
    len(report.errors), [group["image_ids"] for group in report.duplicates]
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dermtool import DermtoolError
from dermtool.data.images import ImageError, ImageInfo, inspect_bytes, read_image_file
from dermtool.data.layouts import OUTSIDE_DATA, Dataset, Record, read_csv_head, read_dataset
from dermtool.data.split import SPLIT_COLUMNS, SPLITS, SplitRow, read_split_csv, shared_groups

#: How many examples of a long list the report keeps inline (the full lists stay in the dataclass).
EXAMPLES = 20


@dataclass
class CheckReport:
    """Everything :func:`check_dataset` found. ``to_dict()`` gives the JSON form."""

    data_dir: str
    layout: str
    csv_path: str | None
    classes: list[str]
    counts: dict[str, int]  # listed images (with a file) per class
    valid_counts: dict[str, int]  # usable images per class
    n_images: int
    n_valid: int
    errors: list[dict[str, str]] = field(default_factory=list)
    warnings: list[dict[str, str]] = field(default_factory=list)
    duplicates: list[dict[str, Any]] = field(default_factory=list)
    cross_split_duplicates: list[dict[str, Any]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unlisted: list[str] = field(default_factory=list)
    rare_labels: dict[str, int] = field(default_factory=dict)
    min_per_class: int = 10
    split: dict[str, Any] | None = None
    seconds: float = 0.0

    def warning_counts(self) -> dict[str, int]:
        """Number of warnings per issue, most frequent first."""
        return dict(Counter(warning["issue"] for warning in self.warnings).most_common())

    def strict_failures(self) -> list[str]:
        """What makes ``data check --strict`` fail: unusable images, listed images without a file, and
        leakage between splits. Empty when the data is fit for training."""
        failures = []
        if self.errors:
            failures.append(f"{len(self.errors)} unusable image(s)")
        if self.missing:
            failures.append(f"{len(self.missing)} listed image(s) without a file")
        if self.split and self.split.get("shared_groups"):
            failures.append(f"{self.split['shared_groups']} group(s) shared between splits")
        if self.cross_split_duplicates:
            failures.append(f"{len(self.cross_split_duplicates)} duplicate(s) across splits")
        return failures

    def to_dict(self) -> dict[str, Any]:
        result = asdict(self)
        result["warning_counts"] = self.warning_counts()
        result["strict_failures"] = self.strict_failures()
        return result


@dataclass
class _Outcome:
    record: Record
    sha256: str | None
    info: ImageInfo | None
    error: ImageError | None


def _check_one(record: Record) -> _Outcome:
    try:  # regular files only, within the decoding budget: a FIFO or /dev/zero never hangs the check
        data = read_image_file(record.path)
    except ImageError as error:
        return _Outcome(record, None, None, error)
    digest = hashlib.sha256(data).hexdigest() if data else None
    try:
        return _Outcome(record, digest, inspect_bytes(data, str(record.path)), None)
    except ImageError as error:
        return _Outcome(record, digest, None, error)


def default_workers() -> int:
    """Decoding releases the GIL: a few threads per core keep the disk and the cores busy."""
    return max(2, min(16, 2 * (os.cpu_count() or 1)))


def _validate(records: list[Record], workers: int | None, progress: bool) -> list[_Outcome]:
    from tqdm import tqdm

    outcomes: list[_Outcome | None] = [None] * len(records)
    with ThreadPoolExecutor(max_workers=workers or default_workers()) as pool, tqdm(
        total=len(records), desc="checking images", unit="img", file=sys.stderr,
        disable=None if progress else True, leave=False,
    ) as bar:
        futures = {pool.submit(_check_one, record): index for index, record in enumerate(records)}
        for future in as_completed(futures):
            outcomes[futures[future]] = future.result()
            bar.update(1)
    return [outcome for outcome in outcomes if outcome is not None]


def _find_split_file(dataset: Dataset) -> Path | None:
    """A split CSV at the top of the data folder (image_id,label,group,split), if there is one."""
    found = []
    for path in sorted(dataset.root.iterdir()):
        if path.suffix.lower() == ".csv" and path.is_file() and not path.name.startswith("."):
            try:
                header = read_csv_head(path)[0]
            except DermtoolError:
                continue
            if set(SPLIT_COLUMNS) <= set(header):
                found.append(path)
    if len(found) == 1:
        return found[0]
    named = [path for path in found if path.name.lower() == "split.csv"]
    return named[0] if named else None


def _examples(items: list[Any], limit: int = EXAMPLES) -> list[Any]:
    return items[:limit]


def _split_section(
    split_path: Path, rows: list[SplitRow], dataset: Dataset, warnings: list[dict[str, str]]
) -> dict[str, Any]:
    by_id = {record.image_id: record for record in dataset.records}
    in_split = {row.image_id for row in rows}
    not_in_data = sorted(row.image_id for row in rows if row.image_id not in by_id)
    not_in_split = sorted(image_id for image_id in by_id if image_id not in in_split)
    for row in rows:
        record = by_id.get(row.image_id)
        if record is not None and record.label != row.label.lower():
            warnings.append({
                "image_id": row.image_id, "path": str(record.path), "issue": "split_label_mismatch",
                "detail": f"labelled {record.label!r} in the data but {row.label!r} in {split_path.name}",
            })
    # Rows of this folder share its lesion ids, whichever source of a config they were split under (a
    # folder's clinical and dermoscopic photos as two sources): a lesion split apart is a leak.
    pools = {row.source: dataset.root.name for row in rows if row.source and row.image_id in by_id}
    leaks = shared_groups(rows, pools)
    return {
        "path": str(split_path),
        "images_per_split": {split: sum(1 for row in rows if row.split == split) for split in SPLITS},
        "shared_groups": len(leaks),
        "leaking_groups": _examples([{"group": group, "splits": splits} for group, splits in leaks.items()]),
        "not_in_data": len(not_in_data),
        "not_in_data_examples": _examples(not_in_data),
        "not_in_split": len(not_in_split),
        "not_in_split_examples": _examples(not_in_split),
    }


def _sort_outcomes(outcomes: list[_Outcome], dataset: Dataset) -> tuple[
        list[dict[str, str]], list[dict[str, str]], dict[str, list[Record]], dict[str, int]]:
    """The validated images (and the layout's notes) sorted into errors, warnings, files by content digest
    and usable images per class."""
    errors: list[dict[str, str]] = []
    warnings: list[dict[str, str]] = []
    by_digest: dict[str, list[Record]] = defaultdict(list)
    valid_counts = {label: 0 for label in dataset.classes}
    for outcome in outcomes:
        record = outcome.record
        if outcome.sha256 is not None:
            by_digest[outcome.sha256].append(record)
        if outcome.error is not None:
            errors.append({"image_id": record.image_id, "path": str(record.path), "reason": outcome.error.reason,
                           "message": str(outcome.error)})
            continue
        valid_counts[record.label] += 1
        for issue in outcome.info.problems:
            warnings.append({"image_id": record.image_id, "path": str(record.path), "issue": issue})
    for note in dataset.notes:
        if note.issue == OUTSIDE_DATA:  # a defect: the id names a file outside DATA (never read)
            image_id = note.detail.split(": refused", 1)[0]
            errors.append({"image_id": image_id, "path": image_id, "reason": OUTSIDE_DATA, "message": note.detail})
            continue
        warnings.append({"image_id": "", "path": note.path, "issue": note.issue, "detail": note.detail})
    return errors, warnings, by_digest, valid_counts


def _duplicate_groups(by_digest: dict[str, list[Record]]) -> list[dict[str, Any]]:
    """Groups of byte-identical files (two or more), with their labels and lesion groups, by first image id."""
    duplicates = []
    for digest, copies in by_digest.items():
        if len(copies) < 2:
            continue
        copies = sorted(copies, key=lambda record: record.image_id)
        duplicates.append({
            "sha256": digest,
            "image_ids": [record.image_id for record in copies],
            "paths": [str(record.path) for record in copies],
            "labels": [record.label for record in copies],
            "groups": [record.group for record in copies],
            "same_label": len({record.label for record in copies}) == 1,
            "same_group": len({record.group for record in copies}) == 1,
        })
    duplicates.sort(key=lambda group: group["image_ids"][0])
    return duplicates


def _cross_split_duplicates(duplicates: list[dict[str, Any]], split_rows: list[SplitRow]) -> list[dict[str, Any]]:
    """The duplicate groups whose copies the split put in different splits."""
    split_of = {row.image_id: row.split for row in split_rows}
    cross_split = []
    for group in duplicates:
        splits = {image_id: split_of[image_id] for image_id in group["image_ids"] if image_id in split_of}
        if len(set(splits.values())) > 1:
            cross_split.append({"sha256": group["sha256"], "image_ids": list(splits), "splits": list(splits.values())})
    return cross_split


def check_dataset(
    data_dir: str | os.PathLike,
    labels_csv: str | os.PathLike | None = None,
    split_csv: str | os.PathLike | None = None,
    min_per_class: int = 10,
    workers: int | None = None,
    progress: bool = True,
) -> CheckReport:
    """Read the folder's layout, validate every listed image and return a :class:`CheckReport`.

    Never stops at a bad image. Raises :class:`dermtool.DermtoolError` only when the folder itself cannot
    be read (no layout fits, the CSV or split file is malformed).
    """
    started = time.perf_counter()
    if min_per_class < 0:
        raise DermtoolError(f"--min-per-class must be 0 or more, got {min_per_class}")
    if workers is not None and workers < 1:
        raise DermtoolError(f"workers must be at least 1, got {workers}")
    dataset = read_dataset(data_dir, labels_csv, allow_outside=True)
    split_path = Path(split_csv) if split_csv else _find_split_file(dataset)
    split_rows = read_split_csv(split_path) if split_path else None

    outcomes = _validate(dataset.records, workers, progress)
    errors, warnings, by_digest, valid_counts = _sort_outcomes(outcomes, dataset)
    duplicates = _duplicate_groups(by_digest)
    cross_split = []
    split_section = None
    if split_rows is not None:
        cross_split = _cross_split_duplicates(duplicates, split_rows)
        split_section = _split_section(split_path, split_rows, dataset, warnings)

    errors.sort(key=lambda error: error["path"])
    return CheckReport(
        data_dir=str(dataset.root),
        layout=dataset.layout,
        csv_path=str(dataset.csv_path) if dataset.csv_path else None,
        classes=dataset.classes,
        counts=dataset.counts(),
        valid_counts=valid_counts,
        n_images=len(dataset.records),
        n_valid=sum(valid_counts.values()),
        errors=errors,
        warnings=warnings,
        duplicates=duplicates,
        cross_split_duplicates=cross_split,
        missing=list(dataset.missing),
        unlisted=[str(path) for path in dataset.unlisted],
        rare_labels={label: count for label, count in valid_counts.items() if count < min_per_class},
        min_per_class=min_per_class,
        split=split_section,
        seconds=round(time.perf_counter() - started, 3),
    )


__all__ = ["CheckReport", "check_dataset", "default_workers"]
