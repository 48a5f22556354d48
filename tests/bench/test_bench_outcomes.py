"""benchmarks/bench_outcomes.py on a real (tiny) run: outcome shares, guard rejections, out-of-class all-clears."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tests.bench.conftest import load_benchmark_script

bench_outcomes = load_benchmark_script("bench_outcomes")


@pytest.fixture(scope="module")
def folder_with_an_unknown_class(small_ham: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 real images: 8 labelled as the model's classes, 4 (really vasc) relabelled 'eczema'."""
    destination = tmp_path_factory.mktemp("unknown_class")
    (destination / "images").mkdir()
    with open(small_ham / "labels.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    chosen = [row for row in rows if row["dx"] == "nv"][:4] + [row for row in rows if row["dx"] == "mel"][:4]
    chosen += [dict(row, dx="eczema") for row in rows if row["dx"] == "vasc"][:4]
    with open(destination / "labels.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image_id", "dx", "lesion_id"])
        for row in chosen:
            writer.writerow([row["image_id"], row["dx"], row["lesion_id"]])
            (destination / "images" / f"{row['image_id']}.jpg").symlink_to(
                (small_ham / "images" / f"{row['image_id']}.jpg").resolve())
    return destination


def test_outcome_shares_per_label_and_the_out_of_class_all_clears(tiny_run: Path, folder_with_an_unknown_class: Path,
                                                                   tmp_path: Path) -> None:
    out = tmp_path / "outcomes.json"
    assert bench_outcomes.main(["--model", str(tiny_run), "--data", str(folder_with_an_unknown_class),
                                "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["n"] == 12 and result["out_of_class_images"] == 4
    assert set(result["by_label"]) == {"eczema", "mel", "nv"}
    assert result["by_label"]["eczema"]["known"] is False and result["by_label"]["nv"]["known"] is True
    for entry in result["by_label"].values():
        assert sum(entry[outcome] for outcome in bench_outcomes.OUTCOME_ORDER) == pytest.approx(1.0)
    eczema = result["by_label"]["eczema"]
    assert result["out_of_class_benign"] == pytest.approx(eczema["benign"])
    assert 0.0 <= result["lesions_rejected"] <= 1.0
    assert result["thresholds"]["malignant_classes"]


def test_out_of_scope_lesions_of_one_kind_are_the_out_of_class_images(milk_run: Path, small_milk: Path,
                                                                       tmp_path: Path) -> None:
    """A run on MILK10k's two kinds: --source picks the clinical photos of the test split, --out-of-scope adds
    that kind's 18 inf / ben_oth / mal_oth images (6 lesions each in small_milk), never trained."""
    out = tmp_path / "outcomes.json"
    assert bench_outcomes.main(["--model", str(milk_run), "--data", str(small_milk), "--split", "test",
                                "--source", "milk_clinical", "--out-of-scope", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    test_rows = [line.split(",") for line in (milk_run / "split.csv").read_text().splitlines()[1:]]
    clinical_test = sum(row[3] == "test" and row[4] == "milk_clinical" for row in test_rows)
    assert result["out_of_class_images"] == 18 and result["n"] == clinical_test + 18
    assert {"inf", "ben_oth", "mal_oth"} <= set(result["by_label"])
    assert result["data"]["source"] == {"name": "milk_clinical", "kind": "clinical"}
    assert bench_outcomes.main(["--model", str(milk_run), "--data", str(small_milk), "--out-of-scope"]) == 2
