"""Several labelled folders in one run: each a *source* with its own layout, label map and sampling share.

A config names its sources as ``[[data.sources]]`` tables (:class:`dermtool.config.SourceConfig`); a config
without any has one source, the folder ``data.data_dir``. :func:`read_sources` reads every folder in its
own layout (:func:`dermtool.data.layouts.read_dataset`), keeps the rows its ``where`` selects (one kind of
photo of a folder that holds two), renames its labels onto the model's classes with the source's
``label_map``, keeps its ``out_of_scope`` labels aside, and tags every record with the source's name and,
where the folder's CSV has them, the Fitzpatrick skin type and the dataset's own skin-tone class.
:func:`make_source_split` splits each folder on its own (grouped by its lesion or patient ids, so two
sources of one folder share a lesion's split; stratified by class, seeded) and concatenates the rows, each
carrying its source.

Example::

    sources = resolve_sources(config.data)
    collection = read_sources(sources)           # records of every source, labels mapped
    rows = make_source_split(collection.records, seed=0, val_fraction=0.15, test_fraction=0.15)
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Sequence

from dermtool import DermtoolError
from dermtool.config import DataConfig, SourceConfig
from dermtool.data.images import identical_files
from dermtool.data.layouts import Dataset, Record, read_dataset
from dermtool.data.split import make_split

#: CSV columns read as the Fitzpatrick skin type (1-6) of an image, first match wins.
SKIN_TYPE_COLUMNS = ("fitzpatrick", "fitzpatrick_skin_type", "skin_type")
#: CSV columns read as a dataset's own skin-tone class (MILK10k: 0 very dark .. 5 very light), not Fitzpatrick.
SKIN_TONE_COLUMNS = ("skin_tone_class", "skin_tone")
SKIN_TONE_VALUES = {"0", "1", "2", "3", "4", "5"}


@dataclass(frozen=True)
class SourceRecord:
    """One labelled image of a source: the layout's record with its label mapped onto the model's classes."""

    image_id: str
    path: Path
    label: str
    group: str
    source: str
    skin_type: str = ""  # "1".."6" where known
    skin_tone: str = ""  # the dataset's skin-tone class "0".."5" where known (MILK10k), not Fitzpatrick
    pool: str = ""  # the folder read: sources reading one folder are split together (one lesion namespace)


@dataclass
class SourceCollection:
    """Every source's records (labels mapped), in source order, and what reading them found."""

    sources: list[SourceConfig]
    records: list[SourceRecord]
    datasets: dict[str, Dataset] = field(default_factory=dict)  # source name -> its folder as read
    dropped: dict[str, int] = field(default_factory=dict)  # "source:label" -> images left out by the label map
    out_of_scope: list[SourceRecord] = field(default_factory=list)  # labels kept aside, original label kept

    @property
    def classes(self) -> list[str]:
        return sorted({record.label for record in self.records})

    def source(self, name: str) -> SourceConfig:
        return next(item for item in self.sources if item.name == name)


def resolve_sources(data: DataConfig) -> list[SourceConfig]:
    """The config's sources; without ``[[data.sources]]``, one source for ``data.data_dir``."""
    if data.sources:
        return list(data.sources)
    if not data.data_dir:
        raise DermtoolError("the config names no data folder: set data.data_dir (a labelled image folder) or "
                            "[[data.sources]]")
    name = Path(data.data_dir).name or "data"
    return [SourceConfig(name=name, data_dir=data.data_dir, labels_csv=data.labels_csv)]


def _csv_rows(dataset: Dataset) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """The folder CSV's columns (lower-cased name -> name) and its rows by image id; empty without a CSV."""
    if dataset.csv_path is None:
        return {}, {}
    try:
        with open(dataset.csv_path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = {name.strip().lower(): name for name in reader.fieldnames or [] if name}
            id_column = columns.get("image_id") or columns.get("image")
            if id_column is None:
                return columns, {}
            return columns, {(row.get(id_column) or "").strip(): row for row in reader}
    except (OSError, UnicodeDecodeError, csv.Error):
        return {}, {}


def _column_values(columns: dict[str, str], rows: dict[str, dict[str, str]], names: Sequence[str],
                   allowed: set[str]) -> dict[str, str]:
    """image_id -> the first of ``names`` found among the columns, where its value is one of ``allowed``
    (``"3.0"`` read as ``"3"``)."""
    column = next((columns[name] for name in names if name in columns), None)
    if column is None:
        return {}
    values = {}
    for image_id, row in rows.items():
        value = (row.get(column) or "").strip()
        if value.endswith(".0"):
            value = value[:-2]
        if value in allowed:
            values[image_id] = value
    return values


def _selected(source: SourceConfig, columns: dict[str, str], rows: dict[str, dict[str, str]]) -> set[str] | None:
    """The image ids that ``source.where`` keeps (None: no ``where``); a column the CSV lacks is an error."""
    if not source.where:
        return None
    missing = [name for name in source.where if name.strip().lower() not in columns]
    if missing:
        raise DermtoolError(f"source {source.name!r}: where names the column(s) {', '.join(map(repr, missing))}, "
                            f"which the CSV of {source.data_dir} does not have (its columns: "
                            f"{', '.join(columns.values()) or 'none'})")
    wanted = {columns[name.strip().lower()]: value.strip().lower() for name, value in source.where.items()}
    return {image_id for image_id, row in rows.items()
            if all((row.get(column) or "").strip().lower() == value for column, value in wanted.items())}


def _pool(source: SourceConfig, dataset: Dataset) -> str:
    try:
        return str(Path(dataset.root).resolve())
    except OSError:
        return source.name


def _mapped_label(source: SourceConfig, label: str) -> str:
    mapping = {key.strip().lower(): value.strip().lower() for key, value in source.label_map.items()}
    return mapping.get(label, label)


def read_source(source: SourceConfig) -> tuple[Dataset, list[SourceRecord], dict[str, int], list[SourceRecord]]:
    """Read one source's folder, keep the images its ``where`` selects and map their labels: the dataset,
    the labelled records, the images the label map left out per label, and the out-of-scope records
    (their own labels kept). An unknown label-map or out-of-scope label is an error naming the labels."""
    dataset = read_dataset(source.data_dir, source.labels_csv or None)
    present = set(dataset.classes)
    named = list(source.label_map) + list(source.out_of_scope)
    unknown = [key for key in named if key.strip().lower() not in present]
    if unknown:
        raise DermtoolError(
            f"source {source.name!r}: label_map or out_of_scope names {', '.join(repr(key) for key in unknown)}, "
            f"which {source.data_dir} does not have (its labels: {', '.join(dataset.classes)})"
        )
    columns, rows = _csv_rows(dataset)
    selected = _selected(source, columns, rows)
    skin_types = _column_values(columns, rows, SKIN_TYPE_COLUMNS, {"1", "2", "3", "4", "5", "6"})
    skin_tones = _column_values(columns, rows, SKIN_TONE_COLUMNS, SKIN_TONE_VALUES)
    out_of_scope_labels = {label.strip().lower() for label in source.out_of_scope}
    pool = _pool(source, dataset)
    records: list[SourceRecord] = []
    aside: list[SourceRecord] = []
    dropped: dict[str, int] = {}
    for record in dataset.records:
        if selected is not None and record.image_id not in selected:
            continue
        tagged = SourceRecord(record.image_id, record.path, record.label, record.group, source.name,
                              skin_types.get(record.image_id, ""), skin_tones.get(record.image_id, ""), pool)
        if record.label in out_of_scope_labels:
            aside.append(tagged)
            continue
        label = _mapped_label(source, record.label)
        if not label:
            key = f"{source.name}:{record.label}"
            dropped[key] = dropped.get(key, 0) + 1
            continue
        records.append(replace(tagged, label=label))
    return dataset, records, dropped, aside


def read_sources(sources: Sequence[SourceConfig]) -> SourceCollection:
    """Read every source; an image id found in two sources is an error (ids key the split file)."""
    if not sources:
        raise DermtoolError("no data source: set data.data_dir or add [[data.sources]] tables to the config")
    collection = SourceCollection(sources=list(sources), records=[])
    owner: dict[str, str] = {}
    for source in sources:
        dataset, records, dropped, aside = read_source(source)
        if not records:
            selection = f" with {source.where}" if source.where else ""
            raise DermtoolError(f"source {source.name!r}: no labelled images{selection} in {source.data_dir}")
        for record in records:
            if record.image_id in owner:
                raise DermtoolError(
                    f"image id {record.image_id} is in source {owner[record.image_id]!r} and in {source.name!r}; "
                    "ids must be unique across sources"
                )
            owner[record.image_id] = source.name
        collection.datasets[source.name] = dataset
        collection.records.extend(records)
        collection.dropped.update(dropped)
        collection.out_of_scope.extend(aside)
    return collection


def merge_identical_files(records: Sequence[SourceRecord]) -> list[SourceRecord]:
    """The records with the groups of byte-identical image files merged (each takes the alphabetically first
    group among its copies), so that a picture filed under two lesion ids lands in one split
    (:func:`dermtool.data.images.identical_files` finds the copies)."""
    parent: dict[str, str] = {}

    def root(group: str) -> str:
        while parent.get(group, group) != group:
            group = parent[group]
        return group

    for copies in identical_files(records, lambda record: record.path):
        first, *others = sorted({root(record.group) for record in copies})
        for other in others:
            parent[other] = first
    if not parent:
        return list(records)
    return [replace(record, group=root(record.group)) if record.group in parent else record for record in records]


def make_source_split(records: Iterable[SourceRecord], seed: int = 0, val_fraction: float = 0.15,
                      test_fraction: float = 0.15) -> list:
    """A grouped, stratified split made within each source (see :func:`dermtool.data.split.make_split`),
    the rows in record order and tagged with their source. Sources that read the same folder (``pool``:
    e.g. a folder's clinical and dermoscopic photos as two sources) are split together, grouped by the
    folder's lesion ids, so both photos of a lesion land in the same split; the lesions of byte-identical
    files filed under two lesion ids then join the split of the first of them (:func:`merge_identical_files`),
    which leaves every other lesion where it was."""
    records = list(records)
    by_pool: dict[str, list[SourceRecord]] = {}
    for record in records:
        by_pool.setdefault(record.pool or record.source, []).append(record)
    split_of: dict[str, object] = {}
    for pool_records in by_pool.values():
        rows = make_split(pool_records, seed=seed, val_fraction=val_fraction, test_fraction=test_fraction)
        # A picture filed under two lesion ids: both lesions go where the first (merged) group went. Moved
        # after the split, so that the other lesions' splits do not depend on the copies.
        merged = merge_identical_files(pool_records)
        split_of_group = {row.group: row.split for row in rows}
        for record, row, merged_record in zip(pool_records, rows, merged):
            split = split_of_group[merged_record.group] if merged_record.group in split_of_group else row.split
            split_of[row.image_id] = replace(row, source=record.source, split=split)
    return [split_of[record.image_id] for record in records]


def _same_folder(first: str | os.PathLike, second: str | os.PathLike) -> bool:
    try:
        return Path(first).expanduser().resolve() == Path(second).expanduser().resolve()
    except OSError:
        return False


def source_of_folder(sources: Sequence[SourceConfig], dataset: Dataset, split_rows: Sequence = (),
                     name: str | None = None) -> SourceConfig | None:
    """The source of a multi-source run that a folder given on the command line is: the one named
    (``--source NAME``), else the one with the same path, else the one whose split rows name images of the
    folder, else the only one whose label map fits the folder's labels. None for a single-source run or a
    folder that matches none. A folder that several sources read (one kind of photo each) needs the name."""
    if name:
        chosen = next((source for source in sources if source.name == name), None)
        if chosen is None:
            known = ", ".join(source.name for source in sources) or "none: the model was trained on one folder"
            raise DermtoolError(f"--source {name}: the model has no such source (its sources: {known})")
        return chosen
    if len(sources) < 2:
        return None
    same = [source for source in sources if source.data_dir and _same_folder(source.data_dir, dataset.root)]
    if len(same) > 1:
        raise DermtoolError(f"{dataset.root} is read by the sources {', '.join(source.name for source in same)} "
                            f"(one kind of photo each): choose one with --source NAME")
    if same:
        return same[0]
    ids = {record.image_id for record in dataset.records}
    named = {row.source for row in split_rows if row.source and row.image_id in ids}
    if len(named) > 1:
        raise DermtoolError(f"{dataset.root} holds images of the sources {', '.join(sorted(named))} (one kind of "
                            f"photo each): choose one with --source NAME")
    if len(named) == 1:
        found = named.pop()
        return next((source for source in sources if source.name == found), None)
    present = set(dataset.classes)
    fitting = [source for source in sources
               if source.label_map and {key.strip().lower() for key in source.label_map} <= present]
    return fitting[0] if len(fitting) == 1 else None


def _source_selection(dataset: Dataset, source: SourceConfig | None) -> list[Record]:
    if source is None or not source.where:
        return list(dataset.records)
    columns, rows = _csv_rows(dataset)
    selected = _selected(source, columns, rows)
    return [record for record in dataset.records if selected is None or record.image_id in selected]


def map_dataset_labels(dataset: Dataset, source: SourceConfig | None) -> list[Record]:
    """The folder's records that ``source`` reads (its ``where``), with its label map applied (labels mapped
    to "" and out-of-scope labels left out)."""
    if source is None:
        return list(dataset.records)
    aside = {label.strip().lower() for label in source.out_of_scope}
    records = []
    for record in _source_selection(dataset, source):
        if record.label in aside:
            continue
        label = _mapped_label(source, record.label)
        if label:
            records.append(replace(record, label=label))
    return records


def out_of_scope_records(dataset: Dataset, source: SourceConfig | None) -> list[Record]:
    """The folder's records that ``source`` reads and keeps out of scope (their own labels)."""
    if source is None or not source.out_of_scope:
        return []
    aside = {label.strip().lower() for label in source.out_of_scope}
    return [record for record in _source_selection(dataset, source) if record.label in aside]


def sources_from_dicts(items: Iterable[dict] | None) -> list[SourceConfig]:
    """SourceConfig objects from the ``sources`` list of an exported model's metadata (unknown keys ignored)."""
    sources = []
    for item in items or ():
        if isinstance(item, dict) and item.get("name"):
            sources.append(SourceConfig(name=str(item["name"]), data_dir=str(item.get("data_dir", "")),
                                        kind=str(item.get("kind", "other")),
                                        label_map={str(k): str(v) for k, v in (item.get("label_map") or {}).items()},
                                        where={str(k): str(v) for k, v in (item.get("where") or {}).items()},
                                        out_of_scope=[str(v) for v in (item.get("out_of_scope") or [])]))
    return sources


def source_to_dict(source: SourceConfig) -> dict[str, Any]:
    """What an exported model's metadata says of a source (read back by :func:`sources_from_dicts`)."""
    entry: dict[str, Any] = {"name": source.name, "kind": source.kind, "label_map": dict(source.label_map)}
    if source.where:
        entry["where"] = dict(source.where)
    if source.out_of_scope:
        entry["out_of_scope"] = list(source.out_of_scope)
    return entry


def locate_folder(folder: str | os.PathLike, run_path: str | os.PathLike | None = None) -> Path | None:
    """A configured data folder as written (absolute or relative to the current folder), else relative to
    the run folder or its parent (a run folder moved together with its data); None when none exists."""
    configured = Path(folder).expanduser()
    candidates = [configured]
    if not configured.is_absolute() and run_path is not None:
        candidates += [Path(run_path) / configured, Path(run_path).parent / configured]
    return next((candidate for candidate in candidates if candidate.is_dir()), None)


def run_collection(config: Any, run_path: str | os.PathLike | None = None,
                   data_dir: str | os.PathLike | None = None) -> SourceCollection:
    """Every folder a run was trained on, read: its sources, or its one folder (``data_dir`` replaces that one
    folder; a multi-source run reads its configured sources)."""
    sources = resolve_sources(config.data)
    if data_dir is not None and len(sources) == 1:
        sources = [replace(sources[0], data_dir=str(data_dir))]
    located = []
    for source in sources:
        folder = locate_folder(source.data_dir, run_path)
        if folder is None:
            hint = ("pass it with --data DATA" if len(sources) == 1 else
                    "run from the folder the run was trained in, or fix data_dir in the run's config.toml")
            raise DermtoolError(f"cannot find the image folder {source.data_dir} of source {source.name!r}; {hint}")
        labels_csv = source.labels_csv
        if labels_csv and not Path(labels_csv).exists() and not (folder / labels_csv).exists():
            labels_csv = ""  # the run's CSV is not where it was: detect the layout instead
        located.append(replace(source, data_dir=str(folder), labels_csv=labels_csv))
    return read_sources(located)


def run_split_records(run: Any, data_dir: str | os.PathLike | None = None,
                      collection: SourceCollection | None = None) -> dict[str, list[SourceRecord]]:
    """``{split: [record, ...]}`` in split-file order for the rows of ``run``'s split.csv found in its data
    (its sources, or ``data_dir`` instead of its one folder; ``collection``: those already read by
    :func:`run_collection`). A row whose label the model does not know is
    an error naming it. Export (calibration, gate, fine-tuning) and the not-a-lesion guard read the run's
    images through this one function."""
    if collection is None:
        collection = run_collection(run.config, run.path, data_dir)
    records = {record.image_id: record for record in collection.records}
    known = set(run.labels)
    splits: dict[str, list[SourceRecord]] = {}
    for row in run.split_rows:
        if row.label not in known:
            raise DermtoolError(f"{run.path}/split.csv: label {row.label!r} of {row.image_id} is not one of the "
                                f"model's labels ({', '.join(run.labels)})")
        record = records.get(row.image_id)
        if record is not None:
            splits.setdefault(row.split, []).append(record)
    return splits


def run_data_description(run: Any, data_dir: str | os.PathLike | None = None) -> str:
    """Where a run's images are read from, for messages: the folder, or the sources' folders."""
    if data_dir is not None:
        return str(data_dir)
    return ", ".join(source.data_dir for source in resolve_sources(run.config.data))


def describe_sources(collection: SourceCollection) -> str:
    """One line per source: name, kind, folder, images per class (after the label map), share."""
    lines = []
    for source in collection.sources:
        counts: dict[str, int] = {}
        for record in collection.records:
            if record.source == source.name:
                counts[record.label] = counts.get(record.label, 0) + 1
        share = f"share {source.share:g}" if source.share else "share by image count"
        listing = ", ".join(f"{label} {count}" for label, count in sorted(counts.items()))
        lines.append(f"{source.name} ({source.kind}, {os.fspath(source.data_dir)}): {sum(counts.values())} images "
                     f"[{listing}]; {share}")
    return "\n".join(lines)


__all__ = ["SKIN_TONE_COLUMNS", "SKIN_TYPE_COLUMNS", "out_of_scope_records", "merge_identical_files", "source_to_dict", "SourceCollection", "SourceRecord", "describe_sources", "make_source_split",
           "locate_folder", "map_dataset_labels", "run_data_description", "run_collection", "run_split_records", "read_source", "read_sources", "resolve_sources", "source_of_folder",
           "sources_from_dicts"]
