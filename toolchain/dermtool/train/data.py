"""The images a training run uses: the split, the per-class limit, and one decode into memory.

:func:`prepare_training_data` reads the labelled folder (any of the three layouts), or every folder of a
multi-source config (:mod:`dermtool.data.sources`: labels mapped, each image tagged with its source and
skin type), takes the split (a given ``SPLIT.csv``, the run's own ``split.csv`` when resuming, or a fresh
lesion-grouped split, made within each source),
limits the training images per class when asked (``data.max_images_per_class``, for quick runs), and
decodes every image it needs exactly once with :func:`dermtool.data.pipeline.load_images` into uint8
arrays held in memory for all epochs. Files that cannot be decoded are skipped and reported.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from dermtool import DermtoolError, metrics
from dermtool.config import Config
from dermtool.data.pipeline import load_images
from dermtool.data.sources import make_source_split, read_sources, resolve_sources
from dermtool.data.split import SplitRow, make_split, read_split_csv

SPLITS = ("train", "val", "test")


@dataclass
class SplitImages:
    """The decoded images of one split and their integer labels (indices into ``labels``)."""

    images: np.ndarray  # uint8 (N, S, S, 3)
    labels: np.ndarray  # int32 (N,)
    image_ids: list[str]
    sources: np.ndarray | None = None  # int32 (N,): index into TrainingData.source_names
    skin_types: list[str] = field(default_factory=list)  # Fitzpatrick "1".."6" or "" per image
    skin_tones: list[str] = field(default_factory=list)  # the dataset's skin-tone class "0".."5" or "" per image
    original_labels: list[str] = field(default_factory=list)  # out-of-scope images: their own labels

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class TrainingData:
    """Everything the training loop needs to know about the data."""

    labels: list[str]  # class names, sorted: the model's output order
    rows: list[SplitRow]  # the full split, as written to RUN/split.csv
    splits: dict[str, SplitImages]
    skipped: list[dict[str, str]] = field(default_factory=list)  # [{image_id, path, reason}]
    train_limited_from: int | None = None  # training images before max_images_per_class, if it applied
    source_names: list[str] = field(default_factory=list)  # in config order
    source_kinds: list[str] = field(default_factory=list)
    source_shares: list[float] = field(default_factory=list)  # as configured (0: by image count)
    # Images of labels a source keeps out of scope (never trained; labels -1, their own in original_labels).
    out_of_scope: SplitImages | None = None

    @property
    def num_classes(self) -> int:
        return len(self.labels)


def choose_split(records: Sequence, config: Config, split_csv: str | Path | None) -> list[SplitRow]:
    """The split rows: read from ``split_csv`` when given, else a lesion-grouped split from the config
    (made within each source when the config names several)."""
    if split_csv:
        return read_split_csv(split_csv)
    make = make_source_split if config.data.sources else make_split
    return make(records, seed=config.data.split_seed, val_fraction=config.data.val_fraction,
                test_fraction=config.data.test_fraction)


def sampling_shares(data: "TrainingData") -> list[float] | None:
    """The per-source shares of every training batch (normalised), or None when batches are a plain shuffle
    (one source, or no share configured)."""
    if len(data.source_names) < 2 or not any(data.source_shares):
        return None
    total = float(sum(data.source_shares))
    return [share / total for share in data.source_shares]


def effective_class_weights(data: "TrainingData") -> np.ndarray:
    """Balanced class weights ``1 / (k * p_c)`` for the class frequencies ``p_c`` that training batches
    actually have: with source shares, ``p_c = sum_s share_s * n_sc / n_s``; without, the training split's
    own frequencies. ``k`` counts the classes present, so the mean weight over the batches' samples is 1;
    absent classes get 0."""
    split = data.splits["train"]
    shares = sampling_shares(data)
    if shares is None:
        frequencies = np.bincount(split.labels, minlength=data.num_classes).astype(np.float64)
    else:
        frequencies = np.zeros(data.num_classes)
        for index, share in enumerate(shares):
            in_source = split.labels[split.sources == index]
            if len(in_source):
                frequencies += share * np.bincount(in_source, minlength=data.num_classes) / len(in_source)
    frequencies = frequencies / frequencies.sum()
    present = int((frequencies > 0).sum())
    with np.errstate(divide="ignore"):
        return np.where(frequencies > 0, 1.0 / (present * frequencies), 0.0).astype(np.float32)


def source_balanced_accuracies(split: SplitImages, probabilities: np.ndarray, data: "TrainingData") -> dict[str, float]:
    """Balanced accuracy of each source's images in ``split`` (sources without images there left out)."""
    scores = {}
    for index, name in enumerate(data.source_names):
        mask = split.sources == index
        if mask.any():
            scores[name] = float(metrics.classification_metrics(split.labels[mask], probabilities[mask],
                                                                data.labels)["balanced_accuracy"])
    return scores


def limit_per_class(rows: Sequence[SplitRow], max_per_class: int, seed: int) -> list[SplitRow]:
    """Keep at most ``max_per_class`` training rows per class (per class and source in a multi-source
    split; val and test untouched), deterministically.

    Within each class the rows are ordered by image id and shuffled with a generator seeded by
    ``(seed, class)``, so the choice does not depend on the order of the input.
    """
    if max_per_class <= 0:
        return list(rows)
    by_class: dict[tuple[str, str], list[SplitRow]] = defaultdict(list)
    for row in rows:
        if row.split == "train":
            by_class[row.source, row.label].append(row)
    kept: set[str] = set()
    for (source, label), class_rows in by_class.items():
        ordered = sorted(class_rows, key=lambda row: row.image_id)
        key = f"{source}:{label}" if source else label
        random.Random(f"dermtool-limit:{seed}:{key}").shuffle(ordered)
        kept.update(row.image_id for row in ordered[:max_per_class])
    return [row for row in rows if row.split != "train" or row.image_id in kept]


def prepare_training_data(config: Config, spec, split_rows: Sequence[SplitRow] | None = None,
                          split_csv: str | Path | None = None, progress: bool = True,
                          log=print) -> TrainingData:
    """Read the labelled folder, settle the split and decode the images of every split once.

    ``split_rows`` (the run's own split when resuming) wins over ``split_csv``, which wins over
    ``config.data.split_csv``; without any, a fresh split is made with the config's seed and fractions.
    """
    sources = resolve_sources(config.data)
    where = ", ".join(source.data_dir for source in sources)
    collection = read_sources(sources)
    if config.data.sources:
        for note in collection.dropped.items():
            log("label map: left out {1} image(s) labelled {0}".format(*note))
    rows = list(split_rows) if split_rows is not None else choose_split(
        collection.records, config, split_csv or config.data.split_csv or None)
    records = {record.image_id: record for record in collection.records}

    unknown = [row.image_id for row in rows if row.image_id not in records]
    if unknown:
        raise DermtoolError(
            f"the split lists {len(unknown)} image(s) that are not in {where} "
            f"(first: {', '.join(unknown[:5])}); use the split made for this data folder"
        )
    relabelled = [row.image_id for row in rows if records[row.image_id].label != row.label.lower()]
    if relabelled:
        raise DermtoolError(
            f"the split and {where} disagree on the label of {len(relabelled)} image(s) "
            f"(first: {', '.join(relabelled[:5])})"
        )
    source_names = [source.name for source in sources]
    source_index = {name: index for index, name in enumerate(source_names)}
    not_in_split = len(records) - len({row.image_id for row in rows})
    if not_in_split:
        log(f"{not_in_split} labelled image(s) of the data folder are not in the split and are not used")

    used_rows = limit_per_class(rows, config.data.max_images_per_class, config.data.split_seed)
    train_before = sum(row.split == "train" for row in rows)
    train_after = sum(row.split == "train" for row in used_rows)
    labels = sorted({records[row.image_id].label for row in rows})
    if len(labels) < 2:
        raise DermtoolError(f"need at least two classes to train a classifier, found {labels}")
    index_of = {label: index for index, label in enumerate(labels)}

    splits: dict[str, SplitImages] = {}
    skipped: list[dict[str, str]] = []
    for name in SPLITS:
        split_rows_here = [row for row in used_rows if row.split == name]
        paths = [records[row.image_id].path for row in split_rows_here]
        images, failed = load_images(paths, spec, progress=progress)
        failed_reasons = {str(path): reason for path, reason in failed}
        kept_rows = []
        for row in split_rows_here:
            path = str(records[row.image_id].path)
            if path in failed_reasons:
                skipped.append({"image_id": row.image_id, "path": path, "reason": failed_reasons[path]})
                log(f"skipped {path}: {failed_reasons[path]}")
            else:
                kept_rows.append(row)
        splits[name] = SplitImages(
            images=images,
            labels=np.asarray([index_of[records[row.image_id].label] for row in kept_rows], dtype=np.int32),
            image_ids=[row.image_id for row in kept_rows],
            sources=np.asarray([source_index[records[row.image_id].source] for row in kept_rows], dtype=np.int32),
            skin_types=[records[row.image_id].skin_type for row in kept_rows],
            skin_tones=[records[row.image_id].skin_tone for row in kept_rows],
        )
    if len(splits["train"]) == 0:
        raise DermtoolError("the training split has no readable images")
    if len(splits["val"]) == 0:
        raise DermtoolError("the validation split has no readable images: training needs one to pick the "
                            "best epoch and to calibrate (set data.val_fraction above 0)")
    out_of_scope = None
    if collection.out_of_scope:
        aside = collection.out_of_scope
        images, failed = load_images([record.path for record in aside], spec, progress=progress)
        failed_paths = {str(path) for path, _ in failed}
        kept = [record for record in aside if str(record.path) not in failed_paths]
        out_of_scope = SplitImages(
            images=images, labels=np.full(len(kept), -1, dtype=np.int32), image_ids=[r.image_id for r in kept],
            sources=np.asarray([source_index[r.source] for r in kept], dtype=np.int32),
            skin_types=[r.skin_type for r in kept], skin_tones=[r.skin_tone for r in kept],
            original_labels=[r.label for r in kept])
        log(f"out of scope (not trained, checked at the end): {len(kept)} image(s) labelled "
            + ", ".join(sorted({r.label for r in kept})))
    return TrainingData(labels=labels, rows=list(rows), splits=splits, skipped=skipped, out_of_scope=out_of_scope,
                        train_limited_from=train_before if train_after < train_before else None,
                        source_names=source_names, source_kinds=[source.kind for source in sources],
                        source_shares=[source.share for source in sources])
