"""The three labelled-folder layouts of the command-line contract, read into one list of records.

1. ``csv``: ISIC / HAM10000 style. A CSV at the top of the folder with a column ``image_id`` and a label
   column ``dx`` (or ``label``), optionally ``lesion_id`` (or ``patient_id``) grouping images of one
   lesion; the image files lie anywhere below the folder and are found by file stem
   (``ISIC_0024306`` -> ``images/ISIC_0024306.jpg``). A ``masks/`` folder and files named
   ``*_segmentation.*`` are never taken as images.
2. ``onehot``: ISIC challenge ground truth. A CSV with a column ``image`` and one column per class holding
   0/1 or probabilities (``image,MEL,NV,BCC,AKIEC,BKL,DF,VASC``); the label is the column with the largest
   value, lower-cased.
3. ``folders``: one sub-folder per class (``DATA/mel/*.jpg``, ``DATA/nv/*.jpg`` ...).

Example::

    dataset = read_dataset("~/data/ham10000")
    dataset.layout, len(dataset.records), dataset.classes[:3]   # ('csv', 10015, ['akiec', 'bcc', 'bkl'])

Labels are lower-cased. A record's ``group`` is its lesion (or patient) id when the CSV has one, otherwise
its own image id: splits keep a group on one side. Problems that do not stop reading (a duplicated CSV
row, a row without a label, two files with one stem) are collected in ``Dataset.notes``.
"""

from __future__ import annotations

import csv
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from dermtool import DermtoolError
from dermtool.data.images import IMAGE_SUFFIXES
from dermtool.files import check_regular_file

LABEL_COLUMNS = ("dx", "label")
GROUP_COLUMNS = ("lesion_id", "patient_id", "group")
IMAGE_COLUMNS_CSV = ("image_id",)
IMAGE_COLUMNS_ONEHOT = ("image", "image_id", "image_name")
#: Numeric columns of ISIC metadata that are not classes.
NOT_CLASS_COLUMNS = frozenset({"age", "age_approx", "lesion_id", "patient_id", "group", "split"})
#: Folders never scanned for images (segmentation masks).
SKIPPED_FOLDERS = frozenset({"masks"})
MASK_SUFFIX = "_segmentation"
#: Preferred label CSV names when a folder holds several that fit (lower case).
PREFERRED_CSV_NAMES = ("labels.csv", "ham10000_metadata.csv", "metadata.csv")

LAYOUT_HELP = (
    "dermtool reads three layouts: (1) a CSV at the top of the folder with columns image_id and dx "
    "(or label), optional lesion_id, and the images anywhere below; (2) an ISIC ground-truth CSV with a "
    "column 'image' and one 0/1 column per class (image,MEL,NV,...); (3) one sub-folder per class holding "
    "its images. Name the CSV with --labels if it is elsewhere."
)


@dataclass(frozen=True)
class Record:
    """One labelled image."""

    image_id: str
    path: Path
    label: str
    group: str


@dataclass(frozen=True)
class DatasetNote:
    """A problem found while reading the layout that did not stop it (shown as a warning by ``data check``).

    ``issue`` is a short code: "duplicate_row", "conflicting_labels", "no_label", "no_image_id",
    "ambiguous_file" (one id, several files), "duplicate_image_id" (one file name in two class folders),
    "outside_data" (an id that names a path outside DATA: absolute, with ``..``, or through a symbolic
    link to a folder outside; or a folder link inside DATA, in any layout, that leads outside it, named by
    its path in DATA and never scanned; such an image is never read, and :func:`read_dataset` refuses the
    folder unless ``allow_outside=True``, which ``data check`` uses to list them as defects).
    """

    issue: str
    path: str
    detail: str


@dataclass
class Dataset:
    """A labelled image folder, whatever its layout."""

    root: Path
    layout: str  # "csv" | "onehot" | "folders"
    records: list[Record]
    classes: list[str]  # sorted
    csv_path: Path | None = None
    missing: list[str] = field(default_factory=list)  # ids in the CSV without an image file
    unlisted: list[Path] = field(default_factory=list)  # image files on disk that the CSV does not name
    notes: list[DatasetNote] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Images per class, in class order."""
        totals = {label: 0 for label in self.classes}
        for record in self.records:
            totals[record.label] += 1
        return totals


# ----------------------------------------------------------------------------------------------- scanning


def _is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES


def _is_mask_name(name: str) -> bool:
    return os.path.splitext(name)[0].lower().endswith(MASK_SUFFIX)


def _walk_images(folder: str, skip_masks: bool = True, real_root: str | None = None) -> tuple[list[str], list[str]]:
    """Image files below ``folder`` as sorted strings (much faster than Path objects on 10,000 files), and,
    with ``real_root``, the folder links that lead outside it once symbolic links are resolved, never
    entered: ``(images, outside folders)``. Each real folder is visited once; hidden entries are skipped, and
    mask files and mask folders too with ``skip_masks``."""
    found: list[str] = []
    outside: list[str] = []
    visited: set[str] = set()
    stack = [folder]
    while stack:
        current = stack.pop()
        real = os.path.realpath(current)
        if real in visited:
            continue
        visited.add(real)
        try:
            entries = list(os.scandir(current))
        except OSError:
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                if entry.is_dir():
                    if skip_masks and entry.name.lower() in SKIPPED_FOLDERS:
                        continue
                    if real_root is not None and not _inside(real_root, os.path.realpath(entry.path)):
                        outside.append(entry.path)
                        continue
                    stack.append(entry.path)
                elif _is_image_name(entry.name) and not (skip_masks and _is_mask_name(entry.name)):
                    found.append(entry.path)
            except OSError:
                continue
    return sorted(found), sorted(outside)


def _scan_image_paths(folder: str, skip_masks: bool = True) -> list[str]:
    """Like :func:`scan_images`, as sorted strings."""
    return _walk_images(folder, skip_masks)[0]


def _inside(real_root: str, real_path: str) -> bool:
    return real_path == real_root or os.path.commonpath([real_root, real_path]) == real_root


def _scan_data(folder: str, real_root: str) -> tuple[list[str], list[str]]:
    """Image files below ``folder`` whose folders stay inside ``real_root`` once symbolic links are resolved,
    and the folders (links) that lead outside it, never entered: ``(images, outside folders)``, sorted.

    A file may itself be a link (folders of linked images are common: decoding reads only regular files);
    a folder link to outside DATA is never scanned, so neither its images nor their names are used."""
    return _walk_images(folder, True, real_root)


def _outside_folder_note(root: Path, folder: str, where: Path | str) -> DatasetNote:
    """The ``outside_data`` defect of a folder link in DATA that leads outside it (named, not its target)."""
    shown = os.path.relpath(folder, root)
    return DatasetNote(OUTSIDE_DATA, str(where), f"{shown}: refused, a folder link that leads outside the data "
                       f"folder; images must lie below the data folder {root} (link the image files, or give the "
                       "real folder as DATA)")


def _behind_link(image_id: str, links: Sequence[str]) -> str | None:
    """The folder link (of ``links``, leading outside DATA) whose folder holds ``image_id``'s file, by name only
    (a few ``lstat`` calls; nothing there is listed or read)."""
    text = image_id.replace("\\", "/")
    stem = _strip_image_suffix(os.path.basename(text))
    for link in links:
        name = os.path.basename(link)
        inner = text.split(name + "/", 1)[1] if (name + "/") in text else os.path.basename(text)
        inner_stem = os.path.join(os.path.dirname(inner), _strip_image_suffix(os.path.basename(inner)))
        for candidate in {inner_stem, stem}:
            if any(os.path.lexists(os.path.join(link, candidate + suffix)) for suffix in IMAGE_SUFFIXES):
                return link
    return None


def scan_images(folder: str | os.PathLike, skip_masks: bool = True) -> list[Path]:
    """Every image file below ``folder`` (recursive, sorted), skipping hidden entries, ``masks/`` folders
    and ``*_segmentation`` files. Symbolic links are followed (a folder linked twice is visited once)."""
    return [Path(path) for path in _scan_image_paths(os.fspath(folder), skip_masks)]


# ------------------------------------------------------------------------------------------- CSV sniffing


@dataclass(frozen=True)
class _CsvShape:
    path: Path
    kind: str  # "csv" | "onehot"
    header: list[str]
    is_split_file: bool


def read_csv_head(path: Path, rows: int = 0) -> tuple[list[str], list[list[str]]]:
    """The lower-cased header and up to ``rows`` first data rows."""
    check_regular_file(path, "labels CSV")  # not a FIFO or a link to /dev/zero; within DERMTOOL_MAX_FILE_MB
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = [name.strip().lower() for name in next(reader, [])]
            head = [row for _, row in zip(range(rows), reader)]
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DermtoolError(f"{path}: cannot read the CSV ({error})") from None
    return header, head


def _sniff(path: Path) -> _CsvShape | None:
    """The layout a CSV fits (from its header and first rows), or None."""
    header, head = read_csv_head(path, rows=50)
    names = set(header)
    is_split = {"image_id", "label", "group", "split"} <= names
    if names & set(IMAGE_COLUMNS_CSV) and names & set(LABEL_COLUMNS):
        return _CsvShape(path, "csv", header, is_split)
    image_column = next((name for name in IMAGE_COLUMNS_ONEHOT if name in names), None)
    if image_column is not None and not names & set(LABEL_COLUMNS):
        numeric_columns = [
            index
            for index, name in enumerate(header)
            if name and name != image_column and name not in NOT_CLASS_COLUMNS
            and all(_as_number(row[index].strip() if index < len(row) else "") is not None for row in head)
        ]
        if len(numeric_columns) >= 2:
            return _CsvShape(path, "onehot", header, False)
    return None


def _choose_csv(root: Path, shapes: list[_CsvShape]) -> _CsvShape:
    if len(shapes) == 1:
        return shapes[0]
    labels_files = [shape for shape in shapes if not shape.is_split_file] or shapes
    if len(labels_files) == 1:
        return labels_files[0]
    for preferred in PREFERRED_CSV_NAMES:
        matches = [shape for shape in labels_files if shape.path.name.lower() == preferred]
        if len(matches) == 1:
            return matches[0]
    names = ", ".join(shape.path.name for shape in labels_files)
    raise DermtoolError(f"{root}: several CSV files could hold the labels ({names}); name one with --labels")


def _resolve_labels_csv(root: Path, labels_csv: str | os.PathLike) -> Path:
    path = Path(labels_csv).expanduser()
    if not path.is_absolute() and not path.exists() and (root / path).exists():
        path = root / path
    if not path.is_file():
        raise DermtoolError(f"labels CSV not found: {labels_csv}")
    return path.absolute()


# ---------------------------------------------------------------------------------------------- readers


def _csv_rows(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """The lower-cased header and the non-blank rows as (line number, {column: stripped value})."""
    check_regular_file(path, "labels CSV")
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = [name.strip().lower() for name in next(reader, [])]
            rows = [
                (reader.line_num, dict(zip(header, (value.strip() for value in row))))
                for row in reader
                if any(value.strip() for value in row)
            ]
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DermtoolError(f"{path}: cannot read the CSV ({error})") from None
    if not rows:
        raise DermtoolError(f"{path}: the CSV has a header but no rows")
    return header, rows


def _strip_image_suffix(image_id: str) -> str:
    stem, suffix = os.path.splitext(image_id)
    return stem if suffix.lower() in IMAGE_SUFFIXES else image_id


def _collect_labels(
    path: Path,
    rows: list[tuple[int, dict[str, str]]],
    label_of_row: Callable[[dict[str, str]], str],
    image_column: str,
    group_column: str | None,
) -> tuple[dict[str, tuple[str, str]], list[DatasetNote]]:
    """image_id -> (label, group) in CSV order, with notes for duplicated or unlabelled rows."""
    labelled: dict[str, tuple[str, str]] = {}
    notes: list[DatasetNote] = []
    for line_number, row in rows:
        image_id = row.get(image_column, "")
        if not image_id:
            notes.append(DatasetNote("no_image_id", str(path), f"line {line_number}: empty {image_column}"))
            continue
        label = label_of_row(row)
        if not label:
            notes.append(DatasetNote("no_label", str(path), f"line {line_number}: {image_id} has no label"))
            continue
        group = (row.get(group_column, "") if group_column else "") or image_id
        if image_id in labelled:
            previous = labelled[image_id][0]
            issue = "duplicate_row" if previous == label else "conflicting_labels"
            detail = f"line {line_number}: {image_id} listed again" + (
                "" if previous == label else f" as {label!r} (first as {previous!r}, which is kept)"
            )
            notes.append(DatasetNote(issue, str(path), detail))
            continue
        labelled[image_id] = (label, group)
    return labelled, notes


OUTSIDE_DATA = "outside_data"


def _outside_reason(root: Path, image_id: str) -> str | None:
    """Why the path-like ``image_id`` would name a file outside ``root``, or None when it stays inside.

    Refused: an absolute path (``/etc/passwd``, ``C:\\x``, ``~/x``), any ``..`` component, and an id whose
    folders lead outside ``root`` once symbolic links are resolved. The file itself may be a symbolic link
    (folders of linked images are common); decoding reads only regular files.
    """
    text = image_id.replace("\\", "/")
    if os.path.isabs(image_id) or text.startswith("/") or text.startswith("~") or (len(text) > 1 and text[1] == ":"):
        return "an absolute path"
    if ".." in text.split("/"):
        return "a '..' component"
    if "/" in text:
        real_root = os.path.realpath(root)
        real_folder = os.path.realpath(os.path.dirname(os.path.join(root, text)))
        if not _inside(real_root, real_folder):
            return "in a folder link that leads outside the data folder"  # the id is named, never the target
    return None


def _match_files(
    root: Path, csv_path: Path, labelled: dict[str, tuple[str, str]], layout: str
) -> Dataset:
    """Find each listed id's file below ``root`` by stem; the rest are missing, and unmatched files unlisted.

    An id naming a path outside ``root`` is never matched: it becomes an ``outside_data`` note, and so does
    every folder link below ``root`` that leads outside it (never scanned)."""
    files, outside_folders = _scan_data(str(root), os.path.realpath(root))
    by_stem: dict[str, list[str]] = defaultdict(list)
    for file in files:
        by_stem[os.path.splitext(os.path.basename(file))[0]].append(file)
    records: list[Record] = []
    missing: list[str] = []
    notes: list[DatasetNote] = []
    used: set[str] = set()
    for image_id, (label, group) in labelled.items():
        outside = _outside_reason(root, image_id)
        if outside is not None:
            notes.append(DatasetNote(
                OUTSIDE_DATA, str(csv_path),
                f"{image_id}: refused, the image id is {outside}; images must lie below the data folder {root}",
            ))
            continue
        candidates = by_stem.get(_strip_image_suffix(os.path.basename(image_id)), [])
        if ("/" in image_id or "\\" in image_id) and (root / image_id).is_file():
            candidates = [str(root / image_id)]
        if not candidates:
            missing.append(image_id)
            continue
        if len(candidates) > 1:
            shown = ", ".join(os.path.relpath(path, root) for path in candidates[:4])
            notes.append(
                DatasetNote("ambiguous_file", candidates[0], f"{image_id}: several files ({shown}); the first is used")
            )
        used.update(candidates)
        records.append(Record(image_id=image_id, path=Path(candidates[0]), label=label, group=group))
    notes.extend(_outside_folder_note(root, folder, csv_path) for folder in outside_folders)
    if outside_folders and missing:  # an id whose file lies behind such a link is that defect, named by its id
        behind = [image_id for image_id in missing if _behind_link(image_id, outside_folders)]
        for image_id in behind:
            link = os.path.relpath(_behind_link(image_id, outside_folders), root)
            notes.append(DatasetNote(
                OUTSIDE_DATA, str(csv_path),
                f"{image_id}: refused, its file lies in a folder link ({link}) that leads outside the data folder; "
                f"images must lie below the data folder {root}",
            ))
        missing = [image_id for image_id in missing if image_id not in set(behind)]
    unlisted = [Path(file) for file in files if file not in used]
    classes = sorted({record.label for record in records})
    return Dataset(root, layout, records, classes, csv_path, missing, unlisted, notes)


def _read_csv_layout(root: Path, path: Path) -> Dataset:
    header, rows = _csv_rows(path)
    label_column = next(name for name in LABEL_COLUMNS if name in header)
    group_column = next((name for name in GROUP_COLUMNS if name in header), None)
    labelled, notes = _collect_labels(
        path, rows, lambda row: row.get(label_column, "").lower(), "image_id", group_column
    )
    dataset = _match_files(root, path, labelled, "csv")
    dataset.notes = notes + dataset.notes
    return dataset


def _as_number(text: str) -> float | None:
    if text == "":
        return 0.0
    try:
        return float(text)
    except ValueError:
        return None


def _read_onehot_layout(root: Path, path: Path) -> Dataset:
    header, rows = _csv_rows(path)
    image_column = next(name for name in IMAGE_COLUMNS_ONEHOT if name in header)
    group_column = next((name for name in GROUP_COLUMNS if name in header), None)
    candidates = [name for name in header if name and name != image_column and name not in NOT_CLASS_COLUMNS]
    class_columns = [
        name for name in candidates if all(_as_number(row.get(name, "")) is not None for _, row in rows)
    ]
    if len(class_columns) < 2:
        raise DermtoolError(
            f"{path}: an ISIC ground-truth CSV needs at least two numeric class columns besides "
            f"'{image_column}' (found {', '.join(header)})"
        )

    def label_of_row(row: dict[str, str]) -> str:
        values = [_as_number(row.get(name, "")) or 0.0 for name in class_columns]
        best = max(values)
        return class_columns[values.index(best)].lower() if best > 0 else ""

    labelled, notes = _collect_labels(path, rows, label_of_row, image_column, group_column)
    dataset = _match_files(root, path, labelled, "onehot")
    dataset.notes = notes + dataset.notes
    return dataset


def _class_folders(root: Path) -> tuple[list[Path], list[str]]:
    """The class folders (those holding images) and the folder links at the top that lead outside DATA."""
    folders: list[Path] = []
    outside: list[str] = []
    real_root = os.path.realpath(root)
    for entry in sorted(os.scandir(root), key=lambda item: item.name):
        if entry.name.startswith(".") or entry.name.lower() in SKIPPED_FOLDERS or not entry.is_dir():
            continue
        if not _inside(real_root, os.path.realpath(entry.path)):
            outside.append(entry.path)  # a class folder linked from elsewhere: never scanned
            continue
        images, _ = _scan_data(entry.path, real_root)
        if images:
            folders.append(Path(entry.path))
    return folders, outside


def _read_folders_layout(root: Path, folders: list[Path], outside_folders: Sequence[str] = ()) -> Dataset:
    found: list[tuple[str, Path]] = []
    notes: list[DatasetNote] = []
    real_root = os.path.realpath(root)
    for folder in folders:
        label = folder.name.strip().lower()
        images, outside = _scan_data(str(folder), real_root)
        found.extend((label, Path(file)) for file in images)
        notes.extend(_outside_folder_note(root, link, link) for link in outside)
    notes.extend(_outside_folder_note(root, link, link) for link in outside_folders)
    stems: dict[str, int] = defaultdict(int)
    for _, file in found:
        stems[file.stem] += 1
    records: list[Record] = []
    for label, file in found:
        image_id = file.stem
        if stems[image_id] > 1:  # the same name in two places: the relative path keeps ids unique
            image_id = file.relative_to(root).with_suffix("").as_posix()
            detail = f"file name {file.stem} occurs {stems[file.stem]} times; id {image_id} used"
            notes.append(DatasetNote("duplicate_image_id", str(file), detail))
        records.append(Record(image_id=image_id, path=file, label=label, group=image_id))
    unlisted = [Path(entry.path) for entry in sorted(os.scandir(root), key=lambda item: item.name)
                if entry.is_file() and _is_image_name(entry.name) and not entry.name.startswith(".")]
    classes = sorted({record.label for record in records})
    return Dataset(root, "folders", records, classes, None, [], unlisted, notes)


def read_dataset(
    data_dir: str | os.PathLike, labels_csv: str | os.PathLike | None = None, *, allow_outside: bool = False
) -> Dataset:
    """Read a labelled folder in any of the three layouts (detected automatically).

    An image id that names a path outside the folder (absolute, ``..``, a linked folder outside) is an
    error (:class:`DermtoolError` naming it) unless ``allow_outside``: then it is only an ``outside_data``
    note (and no record), which ``data check`` lists as a defect.

    ``labels_csv`` names the label CSV explicitly (absolute, relative to the current folder, or relative
    to ``data_dir``); otherwise the CSV files at the top of ``data_dir`` are examined, and without a fitting
    CSV the sub-folders are taken as classes. Raises :class:`dermtool.DermtoolError` when nothing fits.
    """
    root = Path(data_dir).expanduser().absolute()
    if not root.exists():
        raise DermtoolError(f"data folder not found: {data_dir}")
    if not root.is_dir():
        raise DermtoolError(f"not a folder: {data_dir} (DATA is a folder of labelled images)")

    dataset = _read_any_layout(root, data_dir, labels_csv)
    outside = [note for note in dataset.notes if note.issue == OUTSIDE_DATA]
    if outside and not allow_outside:
        more = f" (and {len(outside) - 1} more)" if len(outside) > 1 else ""
        where = dataset.csv_path or dataset.root
        raise DermtoolError(f"{where}: {outside[0].detail}{more}; fix the CSV or the links "
                            "(`dermtool data check` lists every one)")
    return dataset


def _read_any_layout(root: Path, data_dir: str | os.PathLike, labels_csv: str | os.PathLike | None) -> Dataset:
    if labels_csv is not None and str(labels_csv) != "":
        path = _resolve_labels_csv(root, labels_csv)
        shape = _sniff(path)
        if shape is None:
            raise DermtoolError(f"{path}: no image_id+dx (or label) columns and no image+class columns "
                                f"(header: {', '.join(read_csv_head(path)[0]) or 'empty'}). {LAYOUT_HELP}")
        return _read_csv_layout(root, path) if shape.kind == "csv" else _read_onehot_layout(root, path)

    top_csvs = sorted(path for path in root.iterdir() if path.suffix.lower() == ".csv" and path.is_file()
                      and not path.name.startswith("."))
    shapes = [shape for shape in (_sniff(path) for path in top_csvs) if shape is not None]
    if shapes:
        shape = _choose_csv(root, shapes)
        return _read_csv_layout(root, shape.path) if shape.kind == "csv" else _read_onehot_layout(root, shape.path)

    folders, outside = _class_folders(root)
    if folders or outside:
        return _read_folders_layout(root, folders, outside)

    found = f" The CSV files there fit none of them: {', '.join(path.name for path in top_csvs)}." if top_csvs else ""
    raise DermtoolError(f"{root}: no labelled images found.{found} {LAYOUT_HELP}")


__all__ = ["Dataset", "DatasetNote", "LAYOUT_HELP", "Record", "read_csv_head", "read_dataset", "scan_images"]


def check_labels(
    records: Sequence, model_labels: Sequence[str], ignore_unknown: bool
) -> tuple[list, dict[str, Any], list[str]]:
    """Drop (``ignore_unknown``) or refuse images whose label the model does not know.

    Returns ``(records, {label: images left out}, notes)`` (the ``ignored_unknown`` entry, as in evaluate).
    """
    known = set(model_labels)
    unknown_counts: dict[str, int] = {}
    for record in records:
        if record.label not in known:
            unknown_counts[record.label] = unknown_counts.get(record.label, 0) + 1
    ignored = dict(sorted(unknown_counts.items()))
    if not unknown_counts:
        return list(records), ignored, []
    listing = ", ".join(f"{label!r} ({count} images)" for label, count in sorted(unknown_counts.items()))
    if not ignore_unknown:
        raise DermtoolError(
            f"labels in DATA that the model does not know: {listing}; the model knows "
            f"{', '.join(model_labels)} (pass --ignore-unknown to skip those images)"
        )
    kept = [record for record in records if record.label in known]
    if not kept:
        raise DermtoolError(f"no image of DATA has a label the model knows (unknown: {listing})")
    note = f"ignored {sum(ignored.values())} image(s) with labels the model does not know: {listing}"
    return kept, ignored, [note]
