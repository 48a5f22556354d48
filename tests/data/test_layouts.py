"""dermtool.data.layouts: the three folder layouts, on real HAM10000 images (symlinked, never copied)."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from dermtool import DermtoolError
from dermtool.data.layouts import read_dataset
from tests.data.conftest import ham_image, link, write_csv

HAM_COUNTS = {"nv": 6705, "mel": 1113, "bkl": 1099, "bcc": 514, "akiec": 327, "vasc": 142, "df": 115}
ONEHOT_CLASSES = ["MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"]


def test_full_ham10000_folder_is_layout_1_and_fast(ham10000_dir: Path) -> None:
    # CPU time, not wall time: the test machine's cores are shared, and neighbours must not make this flaky.
    started = time.process_time()
    dataset = read_dataset(ham10000_dir)
    elapsed = time.process_time() - started
    assert elapsed < 2.0, f"reading the layout took {elapsed:.2f} s of CPU"
    assert dataset.layout == "csv"
    assert dataset.csv_path == ham10000_dir.absolute() / "HAM10000_metadata.csv"
    assert len(dataset.records) == 10_015
    assert dataset.counts() == dict(sorted(HAM_COUNTS.items()))
    assert dataset.classes == sorted(HAM_COUNTS)
    assert dataset.missing == [] and dataset.unlisted == [] and dataset.notes == []
    assert len({record.group for record in dataset.records}) == 7_470
    for record in dataset.records:  # the masks are never taken as images
        assert record.path.parent.name == "images" and record.path.name == f"{record.image_id}.jpg"
    first = next(record for record in dataset.records if record.image_id == "ISIC_0027419")
    assert (first.label, first.group) == ("bkl", "HAM_0000118")


def test_small_ham_labels_csv(small_ham: Path) -> None:
    dataset = read_dataset(small_ham)
    assert dataset.layout == "csv" and dataset.csv_path.name == "labels.csv"
    assert len(dataset.records) == 84 and set(dataset.counts().values()) == {12}
    assert all(record.group.startswith("HAM_") for record in dataset.records)


def test_layout_1_nested_images_masks_missing_and_unlisted(tmp_path: Path, few_per_class: list[dict]) -> None:
    root = tmp_path / "isic"
    rows = []
    for index, row in enumerate(few_per_class):
        # images anywhere below: two nesting levels, alternating
        folder = root / ("part_a/deeper" if index % 2 else "part_b")
        link(folder / f"{row['image_id']}.jpg", ham_image(row["image_id"]))
        link(root / "masks" / f"{row['image_id']}_segmentation.png",
             ham_image(row["image_id"]).parents[1] / "masks" / f"{row['image_id']}_segmentation.png")
        rows.append([row["image_id"], row["dx"].upper(), row["lesion_id"]])
    # a stray mask outside masks/ is not an image either; an unlisted real image is reported
    link(root / "part_b" / f"{few_per_class[0]['image_id']}_segmentation.png",
         ham_image(few_per_class[0]["image_id"]).parents[1] / "masks" / f"{few_per_class[0]['image_id']}_segmentation.png")
    link(root / "part_b" / "ISIC_0034320.jpg", ham_image("ISIC_0034320"))
    rows.append(["ISIC_0000000", "MEL", "HAM_X"])  # listed, no file
    write_csv(root / "metadata.csv", ["image_id", "label", "patient_id"], rows)

    dataset = read_dataset(root)
    assert dataset.layout == "csv"
    assert len(dataset.records) == 28 and dataset.classes == sorted(HAM_COUNTS)  # labels lower-cased
    assert dataset.missing == ["ISIC_0000000"]
    assert [path.name for path in dataset.unlisted] == ["ISIC_0034320.jpg"]
    assert all("segmentation" not in record.path.name for record in dataset.records)
    assert {record.group for record in dataset.records} == {row["lesion_id"] for row in few_per_class}


def test_layout_1_duplicate_and_unlabelled_rows_become_notes(tmp_path: Path, few_per_class: list[dict]) -> None:
    root = tmp_path / "notes"
    ids = [row["image_id"] for row in few_per_class[:3]]
    for image_id in ids:
        link(root / "images" / f"{image_id}.jpg", ham_image(image_id))
    write_csv(root / "labels.csv", ["image_id", "dx"], [
        [ids[0], "mel"], [ids[0], "mel"], [ids[1], "nv"], [ids[1], "bcc"], [ids[2], ""],
    ])
    dataset = read_dataset(root)
    assert [record.image_id for record in dataset.records] == ids[:2]
    assert [record.label for record in dataset.records] == ["mel", "nv"]  # the first label is kept
    assert [record.group for record in dataset.records] == ids[:2]  # no lesion column: the image is its group
    assert [note.issue for note in dataset.notes] == ["duplicate_row", "conflicting_labels", "no_label"]


def test_layout_2_isic_ground_truth_one_hot(tmp_path: Path, few_per_class: list[dict]) -> None:
    root = tmp_path / "isic2018"
    rows = []
    for index, row in enumerate(few_per_class):
        link(root / "ISIC2018_Task3_Training_Input" / f"{row['image_id']}.jpg", ham_image(row["image_id"]))
        values = [1.0 if name.lower() == row["dx"] else 0.0 for name in ONEHOT_CLASSES]
        if index % 3 == 0:  # probabilities instead of 0/1: the arg-max is the label
            values = [0.6 if value else 0.4 / 6 for value in values]
        rows.append([row["image_id"], *values])
    write_csv(root / "ISIC2018_Task3_Training_GroundTruth.csv", ["image", *ONEHOT_CLASSES], rows)

    dataset = read_dataset(root)
    assert dataset.layout == "onehot"
    assert dataset.classes == sorted(HAM_COUNTS)
    expected = {row["image_id"]: row["dx"] for row in few_per_class}
    assert {record.image_id: record.label for record in dataset.records} == expected
    assert all(record.group == record.image_id for record in dataset.records)
    assert dataset.missing == [] and dataset.unlisted == []


def test_layout_3_one_folder_per_class(tmp_path: Path, few_per_class: list[dict]) -> None:
    root = tmp_path / "by_class"
    for row in few_per_class:
        folder = row["dx"].upper() if row["dx"] == "mel" else row["dx"]  # folder names are lower-cased
        link(root / folder / f"{row['image_id']}.jpg", ham_image(row["image_id"]))
    link(root / "stray.jpg", ham_image(few_per_class[0]["image_id"]))
    (root / "empty_folder").mkdir()

    dataset = read_dataset(root)
    assert dataset.layout == "folders" and dataset.csv_path is None
    assert dataset.counts() == {label: 4 for label in sorted(HAM_COUNTS)}
    assert {record.image_id: record.label for record in dataset.records} == {
        row["image_id"]: row["dx"] for row in few_per_class
    }
    assert [path.name for path in dataset.unlisted] == ["stray.jpg"]


def test_layout_3_same_file_name_in_two_classes_keeps_ids_unique(tmp_path: Path) -> None:
    link(tmp_path / "mel" / "a.jpg", ham_image("ISIC_0024306"))
    link(tmp_path / "nv" / "a.jpg", ham_image("ISIC_0024307"))
    dataset = read_dataset(tmp_path)
    assert sorted(record.image_id for record in dataset.records) == ["mel/a", "nv/a"]
    assert Counter(note.issue for note in dataset.notes) == {"duplicate_image_id": 2}


def test_explicit_labels_csv_outside_the_folder(tmp_path: Path, few_per_class: list[dict]) -> None:
    images = tmp_path / "images_only"
    for row in few_per_class:
        link(images / f"{row['image_id']}.jpg", ham_image(row["image_id"]))
    labels = write_csv(tmp_path / "elsewhere.csv", ["image_id", "dx", "lesion_id"],
                       [[row["image_id"], row["dx"], row["lesion_id"]] for row in few_per_class])
    with pytest.raises(DermtoolError, match="no labelled images found"):
        read_dataset(images)
    dataset = read_dataset(images, labels_csv=labels)
    assert dataset.layout == "csv" and len(dataset.records) == 28 and dataset.csv_path == labels


def test_split_file_beside_the_labels_is_not_taken_for_them(tmp_path: Path, small_ham: Path) -> None:
    for image in (small_ham / "images").iterdir():  # linked files (a folder link out of DATA is refused)
        link(tmp_path / "images" / image.name, image.resolve())
    link(tmp_path / "labels.csv", small_ham / "labels.csv")
    write_csv(tmp_path / "split.csv", ["image_id", "label", "group", "split"], [["ISIC_0024306", "nv", "g", "train"]])
    dataset = read_dataset(tmp_path)
    assert dataset.csv_path.name == "labels.csv" and len(dataset.records) == 84


def test_detection_errors_are_clear(tmp_path: Path, few_per_class: list[dict]) -> None:
    with pytest.raises(DermtoolError, match="data folder not found"):
        read_dataset(tmp_path / "absent")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DermtoolError, match="three layouts"):
        read_dataset(empty)
    write_csv(empty / "notes.csv", ["name", "comment"], [["a", "b"]])
    with pytest.raises(DermtoolError, match="notes.csv"):
        read_dataset(empty)
    with pytest.raises(DermtoolError, match="image_id"):
        read_dataset(empty, labels_csv=empty / "notes.csv")
    with pytest.raises(DermtoolError, match="labels CSV not found"):
        read_dataset(empty, labels_csv="nope.csv")
    two = tmp_path / "two"
    two.mkdir()
    for name in ("first.csv", "second.csv"):
        write_csv(two / name, ["image_id", "dx"], [["ISIC_0024306", "nv"]])
    with pytest.raises(DermtoolError, match="--labels"):
        read_dataset(two)
    with pytest.raises(DermtoolError, match="not a folder"):
        read_dataset(two / "first.csv")
