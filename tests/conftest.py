"""Shared fixtures: real HAM10000 subsets read from ../shared (never copied into the repo)."""

from __future__ import annotations

import csv
import os
from collections import defaultdict
from pathlib import Path

import pytest

pytest_plugins = ["tests.fixtures_run", "tests.fixtures_export"]

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = Path(__file__).resolve().parents[1]
HAM10000_DIR = Path(os.environ.get("DERMTOOL_HAM10000", REPO_ROOT.parent / "shared" / "data" / "ham10000"))


def read_ham10000_metadata(root: Path = HAM10000_DIR) -> list[dict[str, str]]:
    with open(root / "HAM10000_metadata.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def pick_per_class(rows: list[dict[str, str]], per_class: int) -> list[dict[str, str]]:
    """The first ``per_class`` images of each class, in image_id order (deterministic)."""
    by_class: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in sorted(rows, key=lambda r: r["image_id"]):
        if len(by_class[row["dx"]]) < per_class:
            by_class[row["dx"]].append(row)
    return [row for label in sorted(by_class) for row in by_class[label]]


def make_subset(destination: Path, rows: list[dict[str, str]], root: Path = HAM10000_DIR) -> Path:
    """A layout-1 folder (labels.csv + images/ of symlinks into the shared data)."""
    images = destination / "images"
    images.mkdir(parents=True, exist_ok=True)
    with open(destination / "labels.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image_id", "dx", "lesion_id"])
        for row in rows:
            writer.writerow([row["image_id"], row["dx"], row["lesion_id"]])
            link = images / f"{row['image_id']}.jpg"
            if not link.exists():
                link.symlink_to(root / "images" / f"{row['image_id']}.jpg")
    return destination


@pytest.fixture(scope="session")
def ham10000_dir() -> Path:
    if not (HAM10000_DIR / "HAM10000_metadata.csv").exists():
        pytest.fail(f"HAM10000 data not found at {HAM10000_DIR} (set DERMTOOL_HAM10000)")
    return HAM10000_DIR


@pytest.fixture(scope="session")
def small_ham(ham10000_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """84 real HAM10000 images, 12 per class, in layout 1 (labels.csv with lesion_id)."""
    rows = pick_per_class(read_ham10000_metadata(ham10000_dir), 12)
    return make_subset(tmp_path_factory.mktemp("small_ham"), rows, ham10000_dir)


PAD_UFES_DIR = Path(os.environ.get("DERMTOOL_PAD_UFES", REPO_ROOT.parent / "shared" / "data" / "pad_ufes_20"))


@pytest.fixture(scope="session")
def pad_ufes_dir() -> Path:
    if not (PAD_UFES_DIR / "metadata.csv").exists():
        pytest.fail(f"PAD-UFES-20 data not found at {PAD_UFES_DIR} (set DERMTOOL_PAD_UFES)")
    return PAD_UFES_DIR


#: PAD-UFES-20's questionnaire columns (dermtool.fusion.questionnaire reads them as they are).
PAD_QUESTION_COLUMNS = ("age", "gender", "region", "itch", "grew", "hurt", "changed", "bleed", "elevation")


@pytest.fixture(scope="session")
def small_pad(pad_ufes_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real PAD-UFES-20 smartphone photos, 10 per class (6 classes), in layout 1 with the patient as
    lesion_id, the Fitzpatrick type column and the questionnaire's columns (age, gender, region, itch ...)."""
    with open(pad_ufes_dir / "metadata.csv", newline="") as handle:
        rows = pick_per_class(list(csv.DictReader(handle)), 10)
    destination = tmp_path_factory.mktemp("small_pad")
    (destination / "images").mkdir()
    with open(destination / "labels.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image_id", "dx", "lesion_id", "fitzpatrick", *PAD_QUESTION_COLUMNS])
        for row in rows:
            writer.writerow([row["image_id"], row["dx"], row["lesion_id"], row["fitzpatrick"],
                             *(row[column] for column in PAD_QUESTION_COLUMNS)])
            (destination / "images" / f"{row['image_id']}.jpg").symlink_to(
                pad_ufes_dir / "images" / f"{row['image_id']}.jpg")
    return destination


MILK10K_DIR = Path(os.environ.get("DERMTOOL_MILK10K", REPO_ROOT.parent / "shared" / "data" / "milk10k"))
#: MILK10k's metadata columns kept in the subset (the answers, the kind of photo and the skin tone).
MILK_COLUMNS = ("image_id", "dx", "lesion_id", "image_type", "age", "sex", "site", "skin_tone_class")


@pytest.fixture(scope="session")
def milk10k_dir() -> Path:
    if not (MILK10K_DIR / "metadata.csv").exists():
        pytest.fail(f"MILK10k data not found at {MILK10K_DIR} (set DERMTOOL_MILK10K)")
    return MILK10K_DIR


@pytest.fixture(scope="session")
def small_milk(milk10k_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real MILK10k lesions, 6 per label (8 classes and the out-of-scope inf, ben_oth, mal_oth), each with
    both of its photos (clinical and dermoscopic), in layout 1 with MILK's own columns."""
    with open(milk10k_dir / "metadata.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    lesions: dict[str, list[str]] = defaultdict(list)
    for row in sorted(rows, key=lambda r: r["lesion_id"]):
        if row["lesion_id"] not in lesions[row["dx"]] and len(lesions[row["dx"]]) < 6:
            lesions[row["dx"]].append(row["lesion_id"])
    chosen = {lesion for ids in lesions.values() for lesion in ids}
    destination = tmp_path_factory.mktemp("small_milk")
    (destination / "images").mkdir()
    with open(destination / "metadata.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(MILK_COLUMNS)
        for row in rows:
            if row["lesion_id"] in chosen:
                writer.writerow([row[column] for column in MILK_COLUMNS])
                (destination / "images" / f"{row['image_id']}.jpg").symlink_to(
                    milk10k_dir / "images" / f"{row['image_id']}.jpg")
    return destination
