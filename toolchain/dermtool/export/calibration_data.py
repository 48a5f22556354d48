"""The run's images for export: a split's files and labels, and the stratified representative set.

Every image goes through :func:`dermtool.data.pipeline.load_images` (that is,
:func:`dermtool.data.preprocess.load_image`) and :func:`dermtool.data.preprocess.normalize`, the very
steps of training and evaluation. Calibrating int8 on pixels prepared any other way is the classic cause
of int8 models that collapse to one class.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from dermtool import DermtoolError
from dermtool.data.pipeline import load_images
from dermtool.data.preprocess import normalize
from dermtool.data.sources import run_split_records


@dataclass
class SplitImages:
    """The decoded images of one split of a run (``uint8 (N, S, S, 3)``, ``load_image`` output)."""

    split: str
    images: np.ndarray
    labels: np.ndarray  # int class indices in the run's label order
    image_ids: list[str]
    failed: list[tuple[str, str]]  # (path, reason) of files that could not be read


def resolve_data_dir(run: Any, data_dir: str | Path | None) -> Path | None:
    """``data_dir`` checked (an explicit folder for a single-source run), or None: the run's own folders
    (:func:`dermtool.data.sources.run_collection` finds them as configured, or next to the run folder)."""
    if data_dir is None:
        return None
    folder = Path(data_dir).expanduser()
    if not folder.is_dir():
        raise DermtoolError(f"data folder not found: {data_dir}")
    return folder


def split_records(run: Any, data_dir: Path | None) -> dict[str, list[tuple[str, Path, int]]]:
    """``{split: [(image_id, path, class_index), ...]}`` for the rows of the run's split.csv found in its
    data (see :func:`dermtool.data.sources.run_split_records`; labels mapped by each source's label map)."""
    index = {label: position for position, label in enumerate(run.labels)}
    return {split: [(record.image_id, record.path, index[record.label]) for record in records]
            for split, records in run_split_records(run, data_dir).items()}


def stratified_sample(labels: Sequence[int], count: int, seed: int = 0) -> np.ndarray:
    """Indices of ``count`` items spread across classes: round-robin over the classes (each class's items
    in a seeded random order), so every class is represented and rare classes are not drowned out."""
    labels = np.asarray(labels)
    if count >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    queues = [list(rng.permutation(np.flatnonzero(labels == label))) for label in np.unique(labels)]
    chosen: list[int] = []
    while len(chosen) < count:
        for queue in queues:
            if queue and len(chosen) < count:
                chosen.append(int(queue.pop()))
    return np.sort(np.asarray(chosen, dtype=np.int64))


def load_split(
    records: Sequence[tuple[str, Path, int]], split: str, spec: Any, progress: bool = True
) -> SplitImages:
    """Decode a split's images with the one preprocessing definition (unreadable files are skipped)."""
    paths = [path for _, path, _ in records]
    images, failed = load_images(paths, spec, progress=progress)
    failed_paths = {str(path) for path, _ in failed}
    kept = [record for record in records if str(record[1]) not in failed_paths]
    return SplitImages(
        split=split,
        images=images,
        labels=np.asarray([label for _, _, label in kept], dtype=np.int64),
        image_ids=[image_id for image_id, _, _ in kept],
        failed=[(str(path), reason) for path, reason in failed],
    )


def load_representative_images(
    train_records: Sequence[tuple[str, Path, int]], count: int, spec: Any, seed: int = 0, progress: bool = True
) -> np.ndarray:
    """Decode a class-stratified sample of ``count`` training images (:func:`stratified_sample`), the images
    export calibrates int8 and bias correction on, without decoding the rest of the split."""
    indices = stratified_sample([label for _, _, label in train_records], count, seed)
    return load_split([train_records[i] for i in indices], "train", spec, progress).images


def with_range_anchor(images: np.ndarray) -> np.ndarray:
    """A copy of ``images`` whose first image has one black and one white pixel (in a corner).

    The int8 converter derives the input quantisation from the smallest and largest calibrated input
    value; with both 0 and 255 present it is exactly scale ``1/std``, zero point ``mean``, so raw uint8
    pixels are the model's input. Two pixels of one image do not move any other calibrated range
    noticeably.
    """
    anchored = np.array(images, copy=True)
    if len(anchored):
        anchored[0, 0, 0, :] = 0
        anchored[0, 0, -1, :] = 255
    return anchored


def representative_batches(
    images: np.ndarray, spec: Any, transform: Callable[[np.ndarray], np.ndarray] | None = None
) -> Callable[[], Iterator[np.ndarray]]:
    """A generator factory of ``(1, S, S, 3)`` float32 inputs for the converter's calibration.

    ``transform`` replaces :func:`dermtool.data.preprocess.normalize` (a test hook only,
    ``dermtool.export.tflite._CALIBRATION_TRANSFORM``: it lets a test prove that the accuracy gate catches a
    model calibrated on wrongly prepared images).
    """
    anchored = with_range_anchor(images)
    prepare = transform if transform is not None else (lambda batch: normalize(batch, spec))

    def batches() -> Iterator[np.ndarray]:
        for image in anchored:
            yield np.asarray(prepare(image[None]), dtype=np.float32)

    return batches


__all__ = [
    "SplitImages",
    "resolve_data_dir",
    "split_records",
    "stratified_sample",
    "load_split",
    "load_representative_images",
    "with_range_anchor",
    "representative_batches",
]
