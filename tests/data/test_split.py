"""dermtool.data.split: lesion-grouped, stratified, reproducible splits (on the full HAM10000 metadata)."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from dermtool import DermtoolError
from dermtool.data.layouts import Record, read_dataset
from dermtool.data.split import SPLITS, SplitRow, make_split, read_split_csv, split_summary, write_split_csv


@pytest.fixture(scope="module")
def ham_records(ham10000_dir: Path) -> list[Record]:
    return read_dataset(ham10000_dir).records


def groups_in_several_splits(rows: list[SplitRow]) -> set[str]:
    splits_of_group: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        splits_of_group[row.group].add(row.split)
    return {group for group, splits in splits_of_group.items() if len(splits) > 1}


def record(image_id: str, label: str, group: str | None = None) -> Record:
    return Record(image_id=image_id, path=Path(f"/nowhere/{image_id}.jpg"), label=label, group=group or image_id)


def test_full_ham10000_70_15_15_seed_0(ham_records: list[Record]) -> None:
    rows = make_split(ham_records, seed=0, val_fraction=0.15, test_fraction=0.15)
    assert [row.image_id for row in rows] == [record.image_id for record in ham_records]
    assert groups_in_several_splits(rows) == set()
    per_split = Counter(row.split for row in rows)
    for label in {record.label for record in ham_records}:
        counts = Counter(row.split for row in rows if row.label == label)
        assert set(counts) == set(SPLITS), label  # all 7 classes in every split
        total = sum(counts.values())
        assert abs(counts["test"] / total - 0.15) < 0.03 and abs(counts["val"] / total - 0.15) < 0.03, (label, counts)
    assert abs(per_split["train"] / len(rows) - 0.70) < 0.01
    assert abs(per_split["test"] / len(rows) - 0.15) < 0.01
    table, shared = split_summary(rows)
    assert shared == 0 and "groups shared between splits: 0" in table
    for label in ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc", "total"):
        assert any(line.startswith(label) for line in table.splitlines())
    assert "10015 (7470)" in table  # images (lesions) overall


def test_deterministic_for_a_seed_and_independent_of_record_order(ham_records: list[Record]) -> None:
    first = make_split(ham_records, seed=0)
    shuffled = list(ham_records)
    random.Random(1).shuffle(shuffled)
    again = {row.image_id: row.split for row in make_split(shuffled, seed=0)}
    assert {row.image_id: row.split for row in first} == again
    other = make_split(ham_records, seed=1)
    changed = sum(a.split != b.split for a, b in zip(first, other))
    assert changed > 1000  # another seed gives another split
    assert groups_in_several_splits(other) == set()


def test_mixed_label_group_follows_its_majority_and_stays_together() -> None:
    records = [record(f"img{index}", "nv", f"lesion{index}") for index in range(40)]
    records += [record("mixed_a", "mel", "mixed"), record("mixed_b", "mel", "mixed"), record("mixed_c", "nv", "mixed")]
    records += [record(f"mel{index}", "mel", f"mel_lesion{index}") for index in range(6)]
    rows = make_split(records, seed=3)
    mixed = {row.split for row in rows if row.group == "mixed"}
    assert len(mixed) == 1
    assert [row.label for row in rows if row.group == "mixed"] == ["mel", "mel", "nv"]  # labels are kept per image
    assert groups_in_several_splits(rows) == set()


def test_class_with_three_groups_is_in_every_split_and_rare_classes_go_to_train() -> None:
    records = [record(f"nv{index}", "nv") for index in range(100)]
    records += [record(f"df{index}", "df", f"dfgroup{index % 3}") for index in range(9)]  # 3 groups
    records += [record("vasc0", "vasc"), record("vasc1", "vasc")]  # 2 groups: cannot be everywhere
    for seed in range(5):
        rows = make_split(records, seed=seed)
        assert {row.split for row in rows if row.label == "df"} == set(SPLITS)
        assert "train" in {row.split for row in rows if row.label == "vasc"}


def test_zero_validation_fraction_and_bad_fractions() -> None:
    records = [record(f"nv{index}", "nv") for index in range(50)]
    rows = make_split(records, seed=0, val_fraction=0.0, test_fraction=0.2)
    assert Counter(row.split for row in rows) == {"train": 40, "test": 10}
    for val, test in ((-0.1, 0.1), (0.1, 1.0), (0.5, 0.45)):
        with pytest.raises(DermtoolError):
            make_split(records, val_fraction=val, test_fraction=test)
    with pytest.raises(DermtoolError, match="no labelled images"):
        make_split([])
    with pytest.raises(DermtoolError, match="twice"):
        make_split([record("a", "nv"), record("a", "mel")])


def test_write_and_read_round_trip(tmp_path: Path, ham_records: list[Record]) -> None:
    rows = make_split(ham_records[:500], seed=0)
    path = write_split_csv(rows, tmp_path / "split.csv")
    assert path.read_text().splitlines()[0] == "image_id,label,group,split"
    assert read_split_csv(path) == rows
    assert sorted(item.name for item in tmp_path.iterdir()) == ["split.csv"]  # no temporary file left


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "missing column"),
        ("image_id,label,split\na,nv,train\n", "missing column.*group"),
        ("image_id,label,group,split\na,nv,g,training\n", "line 2: split 'training'"),
        ("image_id,label,group,split\na,nv,g,train\na,nv,g,test\n", "line 3: image a already listed on line 2"),
        ("image_id,label,group,split\n,nv,g,train\n", "line 2: empty image_id"),
        ("image_id,label,group,split\na,nv\n", "line 2: 2 values"),
        ("image_id,label,group,split\n", "no rows"),
    ],
)
def test_malformed_split_files_are_clear_errors(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "split.csv"
    path.write_text(content)
    with pytest.raises(DermtoolError, match=message):
        read_split_csv(path)


def test_missing_split_file(tmp_path: Path) -> None:
    with pytest.raises(DermtoolError, match="split file not found"):
        read_split_csv(tmp_path / "absent.csv")


def test_summary_counts_a_leak() -> None:
    rows = [SplitRow("a", "nv", "g1", "train"), SplitRow("b", "nv", "g1", "test"), SplitRow("c", "mel", "g2", "val")]
    table, shared = split_summary(rows)
    assert shared == 1
    assert "groups shared between splits: 1" in table and "g1 (train/test)" in table
