"""dermtool.data.check: every image validated, every problem reported, on real and generated files."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from dermtool import DermtoolError
from dermtool.data.check import check_dataset
from dermtool.data.layouts import read_dataset
from dermtool.data.split import SplitRow, make_split, write_split_csv
from tests.data.conftest import Sample, ham_image, link, write_csv


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_full_ham10000_check(ham10000_dir: Path) -> None:
    # No time limit here: timings belong in benchmarks/ (a loaded 2-core machine took 84 s, a quiet one < 60 s).
    report = check_dataset(ham10000_dir, workers=4, progress=False)
    assert report.layout == "csv" and report.n_images == 10_015 and report.n_valid == 10_015
    assert report.errors == [] and report.warnings == []
    assert [group["image_ids"] for group in report.duplicates] == [
        ["ISIC_0024366", "ISIC_0029861"],
        ["ISIC_0024777", "ISIC_0029938"],
    ]
    assert all(group["same_label"] and group["same_group"] for group in report.duplicates)
    assert report.missing == [] and report.unlisted == [] and report.rare_labels == {}
    assert report.counts["nv"] == 6705 and report.valid_counts["df"] == 115
    assert report.split is None and report.cross_split_duplicates == []
    assert report.strict_failures() == []


def test_messy_folder_reports_everything(messy_folder: Path, samples: list[Sample]) -> None:
    report = check_dataset(messy_folder, workers=3, progress=False)
    n_samples = len(samples)
    assert report.n_images == 84 + n_samples + 1  # + the byte-identical copy
    broken = {Path(sample.name).stem: sample.reason for sample in samples if sample.reason}
    assert {error["image_id"]: error["reason"] for error in report.errors} == broken
    assert all(error["message"] and error["path"] for error in report.errors)
    assert report.n_valid == report.n_images - len(broken)  # the check went on past every bad file

    found = Counter(warning["issue"] for warning in report.warnings)
    for issue in ("cmyk", "16-bit", "rgba", "palette", "greyscale", "tiny", "exif_rotated"):
        assert found[issue] >= 1, issue
    warned = {(warning["image_id"], warning["issue"]) for warning in report.warnings}
    for sample in samples:
        for issue in sample.problems:
            assert (Path(sample.name).stem, issue) in warned

    assert report.missing == ["ISIC_9999999"]
    assert len(report.unlisted) == 1 and report.unlisted[0].endswith(".jpg")
    copies = [group for group in report.duplicates if "copy_of_first" in group["image_ids"]]
    assert len(copies) == 1 and len(copies[0]["image_ids"]) == 2
    assert copies[0]["same_label"] and not copies[0]["same_group"]
    assert report.rare_labels == {}  # 12 per class (akiec 13 with the copy, nv more) >= 10
    assert report.valid_counts["akiec"] == 13
    rare = check_dataset(messy_folder, min_per_class=13, progress=False).rare_labels
    assert rare == {"bcc": 12, "bkl": 12, "df": 12, "mel": 12, "vasc": 12}
    failures = " ".join(report.strict_failures())
    assert "unusable" in failures and "without a file" in failures

    as_json = json.loads(json.dumps(report.to_dict()))
    assert as_json["warning_counts"]["cmyk"] == 1
    assert {"errors", "warnings", "duplicates", "cross_split_duplicates", "missing", "unlisted",
            "rare_labels", "counts"} <= set(as_json)


def test_cross_split_duplicates_from_a_split_file(messy_folder: Path, tmp_path: Path) -> None:
    dataset = read_dataset(messy_folder)
    rows = make_split(dataset.records, seed=0)
    original = next(row for row in rows if row.image_id != "copy_of_first" and row.label == "akiec")
    rows = [row for row in rows if row.image_id != "copy_of_first"]
    other = "test" if original.split != "test" else "train"
    rows.append(SplitRow("copy_of_first", original.label, "HAM_copy", other))
    split_path = write_split_csv(rows, tmp_path / "split.csv")

    report = check_dataset(messy_folder, split_csv=split_path, progress=False)
    assert report.split is not None and report.split["shared_groups"] == 0
    assert len(report.cross_split_duplicates) == 1
    leak = report.cross_split_duplicates[0]
    assert set(leak["image_ids"]) == {original.image_id, "copy_of_first"} and len(set(leak["splits"])) == 2
    assert any("across splits" in failure for failure in report.strict_failures())


def test_split_file_inside_the_data_folder_is_found(small_ham: Path, tmp_path: Path) -> None:
    root = tmp_path / "with_split"
    for image in (small_ham / "images").iterdir():  # linked files (a folder link out of DATA is refused)
        link(root / "images" / image.name, image.resolve())
    link(root / "labels.csv", small_ham / "labels.csv")
    rows = make_split(read_dataset(small_ham).records, seed=0)
    leaking = [SplitRow(row.image_id, row.label, "one_group", row.split) for row in rows[:3]] + rows[3:]
    write_split_csv(leaking, root / "split.csv")
    report = check_dataset(root, progress=False)
    assert report.split is not None and report.split["path"].endswith("split.csv")
    assert report.split["shared_groups"] >= 1 and report.split["not_in_split"] == 0
    assert any("shared between splits" in failure for failure in report.strict_failures())


def test_split_rows_that_disagree_with_the_data(small_ham: Path, tmp_path: Path) -> None:
    rows = make_split(read_dataset(small_ham).records, seed=0)
    rows = [SplitRow(rows[0].image_id, "vasc" if rows[0].label != "vasc" else "nv", rows[0].group, rows[0].split)]
    rows.append(SplitRow("ISIC_1234567", "nv", "g", "train"))
    split_path = write_split_csv(rows, tmp_path / "split.csv")
    report = check_dataset(small_ham, split_csv=split_path, progress=False)
    assert report.split["not_in_data"] == 1 and report.split["not_in_data_examples"] == ["ISIC_1234567"]
    assert report.split["not_in_split"] == 83
    assert [warning["issue"] for warning in report.warnings] == ["split_label_mismatch"]


def test_label_file_notes_become_warnings(tmp_path: Path) -> None:
    link(tmp_path / "images" / "ISIC_0024306.jpg", ham_image("ISIC_0024306"))
    write_csv(tmp_path / "labels.csv", ["image_id", "dx"], [["ISIC_0024306", "nv"], ["ISIC_0024306", "mel"]])
    report = check_dataset(tmp_path, progress=False)
    assert [(warning["issue"], bool(warning["detail"])) for warning in report.warnings] == [("conflicting_labels", True)]


def test_user_errors(tmp_path: Path, small_ham: Path) -> None:
    with pytest.raises(DermtoolError, match="three layouts"):
        check_dataset(tmp_path, progress=False)
    with pytest.raises(DermtoolError, match="min-per-class"):
        check_dataset(small_ham, min_per_class=-1, progress=False)
    bad_split = tmp_path / "bad.csv"
    bad_split.write_text("image_id,label\nx,nv\n")
    with pytest.raises(DermtoolError, match="not a split file"):
        check_dataset(small_ham, split_csv=bad_split, progress=False)
