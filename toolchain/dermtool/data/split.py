"""Train / validation / test splits: stratified by label, grouped by lesion, reproducible for a seed.

Several HAM10000 images show the same lesion; if one lands in training and another in test, the test
score measures memory, not generalisation. :func:`make_split` therefore assigns whole groups (lesion ids)
to one split, and balances each class separately:

1. Each group takes its majority label (ties: the alphabetically first label).
2. Per class, the class's groups are sorted and shuffled with a random generator seeded by
   ``(seed, class)``; a class with at least three groups first gives one group to each split whose
   fraction is above zero, so every class is present everywhere it can be.
3. The remaining groups go, one by one, to the split furthest below its target image count
   (class images x fraction).

The result depends only on the records (not their order) and the seed.

``SPLIT.csv`` (the contract's format) has one row per image: ``image_id,label,group,split`` with split in
{train, val, test}. Example::

    rows = make_split(read_dataset(DATA).records, seed=0, val_fraction=0.15, test_fraction=0.15)
    write_split_csv(rows, "split.csv")
    table, shared = split_summary(read_split_csv("split.csv"))   # shared == 0
"""

from __future__ import annotations

import csv
import io
import os
import random
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from dermtool import DermtoolError
from dermtool.files import check_regular_file
from dermtool.io_utils import atomic_write_text

SPLITS = ("train", "val", "test")
SPLIT_COLUMNS = ("image_id", "label", "group", "split")
#: Written after SPLIT_COLUMNS when any row has a source (multi-source runs); optional when reading.
SOURCE_COLUMN = "source"


@dataclass(frozen=True)
class SplitRow:
    """One image's place in a split."""

    image_id: str
    label: str
    group: str
    split: str  # "train" | "val" | "test"
    source: str = ""  # the data source's name in a multi-source run (the optional column "source")


def _check_fractions(val_fraction: float, test_fraction: float) -> None:
    for name, value in (("val", val_fraction), ("test", test_fraction)):
        if not 0.0 <= value < 1.0:
            raise DermtoolError(f"the {name} fraction (--{name}) must be in [0, 1), got {value}")
    if val_fraction + test_fraction >= 0.9:
        raise DermtoolError(
            f"val {val_fraction} + test {test_fraction} leaves less than 10 % of the images to train on; "
            "lower --val or --test"
        )


def _majority_labels(records: Sequence) -> dict[str, str]:
    """group -> its most frequent label (ties: alphabetically first)."""
    votes: dict[str, Counter] = defaultdict(Counter)
    for record in records:
        votes[record.group][record.label] += 1
    return {group: min(counter, key=lambda label: (-counter[label], label)) for group, counter in votes.items()}


def _assign_class(
    groups: list[str], sizes: dict[str, int], targets: dict[str, float], rng: random.Random
) -> dict[str, str]:
    """group -> split for one class's groups (see the module docstring)."""
    order = sorted(groups)
    rng.shuffle(order)
    assigned: dict[str, str] = {}
    filled = {split: 0 for split in SPLITS}
    open_splits = [split for split in SPLITS if targets[split] > 0]
    if len(order) >= len(open_splits):
        # Seed every split that should exist, the smaller targets first so test and val are never empty.
        for split in sorted(open_splits, key=lambda name: (targets[name], SPLITS.index(name))):
            group = order.pop(0)
            assigned[group] = split
            filled[split] += sizes[group]
    for group in order:
        split = max(open_splits, key=lambda name: (targets[name] - filled[name], -SPLITS.index(name)))
        assigned[group] = split
        filled[split] += sizes[group]
    return assigned


def make_split(
    records: Iterable, seed: int = 0, val_fraction: float = 0.15, test_fraction: float = 0.15
) -> list[SplitRow]:
    """Split ``records`` (anything with ``image_id``, ``label`` and ``group``) into train/val/test.

    Returns one :class:`SplitRow` per record, in the records' order. No group appears in two splits;
    every class with at least three groups is present in every split whose fraction is above zero.
    """
    records = list(records)
    if not records:
        raise DermtoolError("no labelled images to split")
    _check_fractions(val_fraction, test_fraction)
    seen: set[str] = set()
    for record in records:
        if record.image_id in seen:
            raise DermtoolError(f"image id {record.image_id} occurs twice: ids must be unique to split")
        seen.add(record.image_id)

    majority = _majority_labels(records)
    group_sizes = Counter(record.group for record in records)
    groups_by_class: dict[str, list[str]] = defaultdict(list)
    for group, label in majority.items():
        groups_by_class[label].append(group)

    fractions = {"train": 1.0 - val_fraction - test_fraction, "val": val_fraction, "test": test_fraction}
    split_of_group: dict[str, str] = {}
    for label in sorted(groups_by_class):
        groups = groups_by_class[label]
        class_images = sum(group_sizes[group] for group in groups)
        targets = {split: class_images * fraction for split, fraction in fractions.items()}
        rng = random.Random(f"dermtool-split:{int(seed)}:{label}")
        split_of_group.update(_assign_class(groups, group_sizes, targets, rng))

    return [
        SplitRow(image_id=record.image_id, label=record.label, group=record.group, split=split_of_group[record.group])
        for record in records
    ]


def write_split_csv(rows: Sequence[SplitRow], path: str | os.PathLike) -> Path:
    """Write ``image_id,label,group,split`` atomically (a crash never leaves half a file)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    with_source = any(row.source for row in rows)
    writer.writerow(SPLIT_COLUMNS + ((SOURCE_COLUMN,) if with_source else ()))
    for row in rows:
        writer.writerow([row.image_id, row.label, row.group, row.split] + ([row.source] if with_source else []))
    return atomic_write_text(path, buffer.getvalue())


def read_split_csv(path: str | os.PathLike) -> list[SplitRow]:
    """Read a split file; a malformed one is a :class:`dermtool.DermtoolError` naming the line and problem."""
    path = Path(path)
    if not path.is_file():
        raise DermtoolError(f"split file not found: {path}")

    check_regular_file(path, "split file")  # within DERMTOOL_MAX_FILE_MB
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = [name.strip().lower() for name in next(reader, [])]
            missing_columns = [name for name in SPLIT_COLUMNS if name not in header]
            if missing_columns:
                raise DermtoolError(
                    f"{path}: not a split file: missing column(s) {', '.join(missing_columns)} "
                    f"(expected a header {','.join(SPLIT_COLUMNS)}; found {','.join(header) or 'nothing'})"
                )
            index = {name: header.index(name) for name in SPLIT_COLUMNS}
            source_index = header.index(SOURCE_COLUMN) if SOURCE_COLUMN in header else None
            rows: list[SplitRow] = []
            seen: dict[str, int] = {}
            for line_number, values in enumerate(reader, start=2):
                if not any(value.strip() for value in values):
                    continue
                if len(values) < len(header):
                    raise DermtoolError(f"{path}, line {line_number}: {len(values)} values for {len(header)} columns")
                fields = {name: values[index[name]].strip() for name in SPLIT_COLUMNS}
                for name in ("image_id", "label", "split"):
                    if not fields[name]:
                        raise DermtoolError(f"{path}, line {line_number}: empty {name}")
                if fields["split"] not in SPLITS:
                    raise DermtoolError(
                        f"{path}, line {line_number}: split {fields['split']!r} is not one of {', '.join(SPLITS)}"
                    )
                if fields["image_id"] in seen:
                    raise DermtoolError(
                        f"{path}, line {line_number}: image {fields['image_id']} already listed on line "
                        f"{seen[fields['image_id']]}"
                    )
                seen[fields["image_id"]] = line_number
                group = fields["group"] or fields["image_id"]
                source = values[source_index].strip() if source_index is not None else ""
                rows.append(SplitRow(fields["image_id"], fields["label"], group, fields["split"], source))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DermtoolError(f"{path}: cannot read the split file ({error})") from None
    if not rows:
        raise DermtoolError(f"{path}: the split file has no rows")
    return rows


def shared_groups(rows: Iterable[SplitRow], pools: Mapping[str, str] | None = None) -> dict[str, list[str]]:
    """Groups found in more than one split: group -> the splits (sorted in train/val/test order).

    Groups are per source (a patient id of one source is not the same patient as in another): in a
    multi-source split the key is ``source:group``. ``pools`` maps sources that read one folder to one
    name (e.g. a folder's clinical and dermoscopic photos as two sources): their lesion ids are one
    namespace, and a lesion whose two photos sit in two splits is a leak keyed ``pool:group``."""
    pools = pools or {}
    splits_of_group: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        owner = pools.get(row.source, row.source)
        splits_of_group[f"{owner}:{row.group}" if owner else row.group].add(row.split)
    return {
        group: [split for split in SPLITS if split in splits]
        for group, splits in sorted(splits_of_group.items())
        if len(splits) > 1
    }


def split_summary(rows: Sequence[SplitRow]) -> tuple[str, int]:
    """A per-class table of images (and distinct lesions) per split, and the number of groups shared
    between splits (0 for a leak-free split)."""
    images: dict[tuple[str, str], int] = Counter()
    lesions: dict[tuple[str, str], set[str]] = defaultdict(set)
    for row in rows:
        for label in (row.label, "total"):
            for split in (row.split, "all"):
                images[label, split] += 1
                lesions[label, split].add(row.group)
    labels = sorted({row.label for row in rows}) + ["total"]
    columns = list(SPLITS) + ["all"]

    def cell(label: str, split: str) -> str:
        count = images[label, split]
        text = f"{count} ({len(lesions[label, split])})"
        if split == "all":
            return text
        share = 100.0 * count / images[label, "all"] if images[label, "all"] else 0.0
        return f"{text} {share:5.1f}%"

    table = [["label", *columns], ["", *(["images (lesions)"] * len(columns))]]
    table += [[label, *(cell(label, split) for split in columns)] for label in labels]
    widths = [max(len(row[index]) for row in table) for index in range(len(table[0]))]

    def format_row(row: list[str]) -> str:
        return "  ".join(
            value.ljust(width) if index == 0 else value.rjust(width)
            for index, (value, width) in enumerate(zip(row, widths))
        ).rstrip()

    lines = [format_row(row) for row in table[:-1]]
    lines.append("-" * len(format_row(table[0])))
    lines.append(format_row(table[-1]))
    shared = shared_groups(rows)
    lines.append(f"groups shared between splits: {len(shared)}")
    if shared:
        examples = ", ".join(f"{group} ({'/'.join(splits)})" for group, splits in list(shared.items())[:5])
        lines.append(f"  leaking groups, e.g.: {examples}")
    return "\n".join(lines), len(shared)


__all__ = ["SPLITS", "SplitRow", "make_split", "read_split_csv", "shared_groups", "split_summary", "write_split_csv"]
