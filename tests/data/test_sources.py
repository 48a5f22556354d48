"""Multi-source configs and data: parsing, label maps, per-source splits (real HAM10000 and PAD-UFES-20 subsets)."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import pytest

from dermtool import DermtoolError
from dermtool.config import SourceConfig, config_from_mapping, load_config
from dermtool.data.sources import make_source_split, read_source, read_sources, resolve_sources
from dermtool.data.split import read_split_csv, write_split_csv

REPO_ROOT = Path(__file__).resolve().parents[2]
PAD_MAP = {"ack": "akiec", "sek": "bkl", "nev": "nv"}


def two_sources(ham: Path, pad: Path, **pad_options) -> list[SourceConfig]:
    return [SourceConfig(name="ham", data_dir=str(ham), share=0.7),
            SourceConfig(name="pad", data_dir=str(pad), kind="smartphone", share=0.3,
                         label_map=pad_options.pop("label_map", dict(PAD_MAP)), **pad_options)]


def test_the_recommended_config_parses_and_round_trips() -> None:
    import tomllib

    config = load_config(REPO_ROOT / "configs" / "multisource_cpu.toml")
    assert [source.name for source in config.data.sources] == ["ham10000", "milk10k_dermoscopic", "milk10k_clinical",
                                                               "pad_ufes_20"]
    assert config.data.sources[3].label_map == PAD_MAP
    assert config.data.sources[3].kind == "smartphone"
    assert config.data.sources[2].where == {"image_type": "clinical"}
    assert config.data.sources[2].out_of_scope == ["inf", "ben_oth", "mal_oth"]
    assert config_from_mapping(tomllib.loads(config.to_toml())) == config


@pytest.mark.parametrize("sources, message", [
    ([{"name": "a", "data_dir": "x", "colour": 1}], "unknown key 'colour'"),
    ([{"name": "a", "data_dir": "x"}, {"name": "a", "data_dir": "y"}], "'a' is used twice"),
    ([{"name": "a", "data_dir": "x", "share": 0.5}, {"name": "b", "data_dir": "y"}], "give every source a share"),
    ([{"name": "a", "data_dir": "x", "label_map": {"ACK": "akiec", "ack": "akiec"}}], "names ack more than once"),
    ([{"name": "a", "data_dir": "x", "label_map": {"ack": 3}}], "table of strings"),
    ([{"name": "", "data_dir": "x"}], "needs a name"),
    ([{"name": "a"}], "needs a data_dir"),
    ([{"name": "a", "data_dir": "x", "kind": "xray"}], "is not one of"),
])
def test_a_bad_source_is_one_line_naming_the_problem(sources, message) -> None:
    with pytest.raises(DermtoolError, match=message):
        config_from_mapping({"data": {"sources": sources}}, "test.toml")


def test_without_sources_the_data_dir_is_the_one_source() -> None:
    config = load_config(None, ["data.data_dir=/some/where/ham"])
    (source,) = resolve_sources(config.data)
    assert source.name == "ham" and source.data_dir == "/some/where/ham"


def test_a_config_naming_no_folder_is_an_error_not_the_working_directory() -> None:
    with pytest.raises(DermtoolError, match="names no data folder: set data.data_dir"):
        resolve_sources(load_config(None).data)


def test_the_label_map_renames_and_drops_and_skin_types_are_read(small_pad: Path) -> None:
    source = SourceConfig(name="pad", data_dir=str(small_pad), label_map={**PAD_MAP, "scc": ""})
    dataset, records, dropped, _ = read_source(source)
    assert {record.label for record in records} == {"akiec", "bcc", "bkl", "mel", "nv"}
    assert dropped == {"pad:scc": 10}
    assert all(record.source == "pad" for record in records)
    with open(small_pad / "labels.csv", newline="") as handle:
        expected = {row["image_id"]: row["fitzpatrick"] for row in csv.DictReader(handle)}
    assert {record.image_id: record.skin_type for record in records} == {
        image_id: value.removesuffix(".0") for image_id, value in expected.items() if image_id in
        {record.image_id for record in records}}
    assert any(record.skin_type for record in records)


def test_a_label_map_key_the_data_lacks_is_an_error_naming_its_labels(small_pad: Path) -> None:
    source = SourceConfig(name="pad", data_dir=str(small_pad), label_map={"actinic": "akiec"})
    with pytest.raises(DermtoolError, match=r"'actinic'.*its labels: ack, bcc, mel, nev, scc, sek"):
        read_source(source)


def test_an_image_id_in_two_sources_is_an_error(small_ham: Path) -> None:
    with pytest.raises(DermtoolError, match="in source 'one' and in 'two'"):
        read_sources([SourceConfig(name="one", data_dir=str(small_ham)),
                      SourceConfig(name="two", data_dir=str(small_ham))])


def test_splits_keep_every_patient_in_one_split_per_source_and_are_stable(small_ham: Path, small_pad: Path,
                                                                          tmp_path: Path) -> None:
    collection = read_sources(two_sources(small_ham, small_pad))
    assert collection.classes == ["akiec", "bcc", "bkl", "df", "mel", "nv", "scc", "vasc"]
    rows = make_source_split(collection.records, seed=3)
    assert rows == make_source_split(list(reversed(collection.records)), seed=3)[::-1]
    splits_of_group = defaultdict(set)
    for row in rows:
        splits_of_group[row.source, row.group].add(row.split)
    assert all(len(splits) == 1 for splits in splits_of_group.values())
    for source in ("ham", "pad"):
        assert {row.split for row in rows if row.source == source} == {"train", "val", "test"}
    # the dermoscopic part is exactly the split a single-source run of that folder makes
    from dermtool.data.split import make_split
    alone = {row.image_id: row.split for row in make_split(read_sources(two_sources(small_ham, small_pad)[:1]).records,
                                                           seed=3)}
    assert {row.image_id: row.split for row in rows if row.source == "ham"} == alone
    path = write_split_csv(rows, tmp_path / "split.csv")
    assert path.read_text().splitlines()[0] == "image_id,label,group,split,source"
    assert read_split_csv(path) == rows


MILK_OUT_OF_SCOPE = ["inf", "ben_oth", "mal_oth"]


def milk_sources(milk: Path) -> list[SourceConfig]:
    return [SourceConfig(name=f"milk_{kind}", data_dir=str(milk), kind=kind, where={"image_type": kind},
                         out_of_scope=list(MILK_OUT_OF_SCOPE)) for kind in ("dermoscopic", "clinical")]


def test_where_reads_one_kind_of_photo_and_out_of_scope_labels_are_kept_aside(small_milk: Path) -> None:
    collection = read_sources(milk_sources(small_milk))
    with open(small_milk / "metadata.csv", newline="") as handle:
        rows = {row["image_id"]: row for row in csv.DictReader(handle)}
    for record in collection.records:
        assert rows[record.image_id]["image_type"] == record.source.removeprefix("milk_")
        assert record.skin_tone == rows[record.image_id]["skin_tone_class"] and record.skin_type == ""
    assert collection.classes == ["akiec", "bcc", "bkl", "df", "mel", "nv", "scc", "vasc"]
    assert len(collection.records) == 2 * 6 * 8
    aside = collection.out_of_scope
    assert sorted({record.label for record in aside}) == sorted(MILK_OUT_OF_SCOPE)
    assert len(aside) == 2 * 6 * 3 and {record.source for record in aside} == {"milk_dermoscopic", "milk_clinical"}


def test_a_lesions_two_photos_are_always_in_one_split(small_milk: Path, small_ham: Path) -> None:
    sources = [SourceConfig(name="ham", data_dir=str(small_ham))] + milk_sources(small_milk)
    collection = read_sources(sources)
    rows = make_source_split(collection.records, seed=3)
    splits_of_lesion: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        if row.source.startswith("milk"):
            splits_of_lesion[row.group].add(row.split)
    assert len(splits_of_lesion) == 6 * 8
    assert all(len(splits) == 1 for splits in splits_of_lesion.values())
    assert {row.split for row in rows if row.source.startswith("milk")} == {"train", "val", "test"}
    # HAM10000's part is the split it gets alone: sharing a run with another folder changes nothing
    alone = make_source_split(read_sources(sources[:1]).records, seed=3)
    assert [row for row in rows if row.source == "ham"] == alone


def test_where_naming_a_missing_column_or_matching_nothing_is_an_error(small_milk: Path) -> None:
    with pytest.raises(DermtoolError, match=r"where names the column\(s\) 'kind'.*its columns: image_id"):
        read_source(SourceConfig(name="milk", data_dir=str(small_milk), where={"kind": "clinical"}))
    with pytest.raises(DermtoolError, match="no labelled images with"):
        read_sources([SourceConfig(name="milk", data_dir=str(small_milk), where={"image_type": "tbp"})])


@pytest.mark.parametrize("source, message", [
    ({"name": "a", "data_dir": "x", "where": {"image_type": ""}}, "where needs a column and a value"),
    ({"name": "a", "data_dir": "x", "out_of_scope": "inf"}, "list of strings"),
    ({"name": "a", "data_dir": "x", "out_of_scope": ["inf"], "label_map": {"INF": ""}}, "in label_map and in out_of_scope"),
])
def test_bad_where_or_out_of_scope_is_one_line(source, message) -> None:
    with pytest.raises(DermtoolError, match=message):
        config_from_mapping({"data": {"sources": [source]}}, "test.toml")


def test_data_check_lists_a_lesion_whose_two_photos_straddle_two_splits(small_milk: Path, tmp_path: Path) -> None:
    from dataclasses import replace

    from dermtool.data.check import check_dataset

    rows = make_source_split(read_sources(milk_sources(small_milk)).records, seed=0)
    split_path = write_split_csv(rows, tmp_path / "split.csv")
    assert check_dataset(small_milk, split_csv=split_path).split["shared_groups"] == 0
    first = next(row for row in rows if row.source == "milk_clinical" and row.split == "train")
    moved = [replace(row, split="test") if row.image_id == first.image_id else row for row in rows]
    report = check_dataset(small_milk, split_csv=write_split_csv(moved, tmp_path / "leaky.csv")).split
    assert report["shared_groups"] == 1
    assert report["leaking_groups"][0]["group"].endswith(first.group)


def test_a_picture_filed_under_two_lesion_ids_lands_in_one_split(small_milk: Path, tmp_path: Path) -> None:
    """MILK10k files three pictures under two lesion ids each; a copy of one photo under a new id stands in."""
    import shutil

    from dermtool.data.sources import merge_identical_files

    folder = tmp_path / "milk"
    shutil.copytree(small_milk, folder, symlinks=True)
    with open(folder / "metadata.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    original = next(row for row in rows if row["dx"] == "bcc" and row["image_type"] == "clinical")
    rows += [dict(original, image_id=f"ISIC_COPY{index}", lesion_id=f"IL_COPY{index}") for index in range(12)]
    with open(folder / "metadata.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    for index in range(12):
        shutil.copyfile(folder / "images" / f"{original['image_id']}.jpg", folder / "images" / f"ISIC_COPY{index}.jpg")
    records = read_sources(milk_sources(folder)).records
    merged = {record.image_id: record.group for record in merge_identical_files(records)}
    copies = {original["image_id"]} | {f"ISIC_COPY{index}" for index in range(12)}
    assert {merged[image_id] for image_id in copies} == {min(original["lesion_id"], "IL_COPY0")}
    split = {row.image_id: row.split for row in make_source_split(records, seed=0)}
    assert len({split[image_id] for image_id in copies}) == 1
    # the lesion's other photo (its dermoscopic image) stays with it
    partner = next(row["image_id"] for row in rows if row["lesion_id"] == original["lesion_id"]
                   and row["image_type"] == "dermoscopic")
    assert split[partner] == split[original["image_id"]]
