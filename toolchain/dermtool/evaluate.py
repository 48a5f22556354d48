"""Metrics of a trained (float) model on a labelled folder: ``dermtool evaluate RUN --data DATA``.

    result = evaluate("runs/ham10000_cpu", "data/ham10000", split="test")
    result["balanced_accuracy"], result["per_class"]["mel"]["recall"]

The images go through the run's own input spec (resize policy, size, normalisation); probabilities are
calibrated with the run's temperature. ``split`` restricts DATA to the rows of that split in the run's
``split.csv`` (the split the model was trained with); without it every labelled image in DATA counts.
For a multi-source run, DATA is one of its sources (recognised by its path, its images in the split or
its labels): that source's label map applies and the result names it under ``source``.
When the run has a questionnaire fusion (``dermtool fuse``) and DATA's metadata CSV holds answers, the
result gains ``fusion`` (:func:`fusion_comparison`): the image model's and the fused figures side by side.
A label in DATA that the model does not know is an error naming it, unless ``ignore_unknown`` (then those
images are left out and counted in ``ignored_unknown``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dermtool import DermtoolError, metrics
from dermtool.data.layouts import check_labels, read_dataset
from dermtool.data.pipeline import load_images
from dermtool.data.sources import map_dataset_labels, source_of_folder
from dermtool.data.split import SPLITS
from dermtool.fusion.fitting import answers_of_csv, read_run_fusion, side_by_side
from dermtool.fusion.model import Fusion
from dermtool.run import RunFolder


def select_records(records: list, run, split: str | None) -> list:
    """The records of DATA to evaluate: all, or those listed under ``split`` in the run's split.csv."""
    if split is None:
        return list(records)

    if split not in SPLITS:
        raise DermtoolError(f"--split {split!r} is not one of {', '.join(SPLITS)}")
    wanted = {row.image_id for row in run.split_rows if row.split == split}
    if not wanted:
        raise DermtoolError(f"{run.path}: split.csv has no {split!r} rows")
    chosen = [record for record in records if record.image_id in wanted]
    if not chosen:
        raise DermtoolError(
            f"none of the {len(wanted)} {split!r} images of {run.path / 'split.csv'} are in this data folder "
            f"(the split refers to image ids such as {sorted(wanted)[0]})"
        )
    return chosen


def evaluate(
    run_dir: "str | Path | RunFolder",
    data_dir: str | Path,
    split: str | None = None,
    labels_csv: str | Path | None = None,
    ignore_unknown: bool = False,
    progress: bool = True,
    batch_size: int = 64,
    source: str | None = None,
) -> dict[str, Any]:
    """The contract metrics (calibrated) of the run's model on ``data_dir``.

    ``run_dir`` is a run folder's path or an open :class:`~dermtool.run.RunFolder` (whose loaded model is
    then reused across calls).

    Returns the metric keys (n, accuracy, balanced_accuracy, macro_f1, auc_macro, ece, nll, per_class,
    confusion_matrix) plus ``temperature``, ``skipped_images`` (files that could not be decoded),
    ``ignored_unknown`` ({label: count}, only with ``ignore_unknown``), and ``split`` and ``data``.
    """
    run = run_dir if isinstance(run_dir, RunFolder) else RunFolder(run_dir)
    dataset = read_dataset(data_dir, labels_csv or None)
    source = source_of_folder(run.config.data.sources, dataset, run.split_rows if split else (), source)
    records = select_records(map_dataset_labels(dataset, source), run, split)
    records, ignored, _ = check_labels(records, run.labels, ignore_unknown)
    if not records:
        raise DermtoolError(f"{data_dir}: no images with a label the model knows ({', '.join(run.labels)})")

    images, failed = load_images([record.path for record in records], run.input_spec, progress=progress)
    failed_paths = {str(path): reason for path, reason in failed}
    kept = [record for record in records if str(record.path) not in failed_paths]
    if not kept:
        raise DermtoolError(f"{data_dir}: none of the {len(records)} images could be read")
    index_of = {label: index for index, label in enumerate(run.labels)}
    y_true = np.asarray([index_of[record.label] for record in kept], dtype=np.int64)
    probabilities = run.predict_probabilities(images, batch_size=batch_size)

    result = metrics.classification_metrics(y_true, probabilities, run.labels)
    result["temperature"] = run.temperature
    result["split"] = split
    result["data"] = str(data_dir)
    result["run"] = str(run.path)
    if source is not None:
        result["source"] = {"name": source.name, "kind": source.kind}
    result["skipped_images"] = [{"path": str(path), "reason": reason} for path, reason in failed]
    if ignore_unknown:
        result["ignored_unknown"] = ignored

    fused = fusion_comparison(read_run_fusion(run), run.metrics.get("referral"), dataset.csv_path,
                              [record.image_id for record in kept], y_true, probabilities, run.labels)
    if fused is not None:
        result["fusion"] = fused
    return result


def fusion_comparison(fusion_item: dict[str, Any] | None, image_referral: dict[str, Any] | None,
                      csv_path: str | Path | None, image_ids: list[str], y_true: np.ndarray,
                      probabilities: np.ndarray, labels: list[str], where: str = "the model's fusion",
                      answers_table: dict[str, dict[str, Any]] | None = None) -> dict[str, Any] | None:
    """The ``fusion`` entry of evaluate and bench: ``{images, images_with_answers, referral_threshold,
    answers_from, image_only, fused, fused_all_unknown}`` (:func:`dermtool.fusion.fitting.side_by_side`), the
    answers read from ``csv_path`` (DATA's metadata CSV) by image id (``answers_table``: that CSV already
    read by :func:`dermtool.fusion.fitting.answers_of_csv`). None when there is no fusion (``fusion_item``: a
    fusion.json / dermtool.json ``fusion``) or no image has answers."""
    if not fusion_item or csv_path is None:
        return None
    fusion = Fusion.from_dict(fusion_item, where, model_labels=labels)
    table = answers_of_csv(Path(csv_path)) if answers_table is None else answers_table
    answers = [table.get(Path(image_id).stem, {}) for image_id in image_ids]
    if not any(answers):
        return None
    referral = fusion_item.get("referral")
    block = side_by_side(y_true, probabilities, answers, fusion, referral, image_referral)
    return {"images": int(len(image_ids)), "images_with_answers": block.pop("images_with_answers"),
            "referral_threshold": (referral or {}).get("threshold"), "answers_from": str(csv_path), **block}


def format_fusion_table(block: dict[str, Any]) -> str:
    """Image only, fused, and fused with every answer unknown, side by side (the ``fusion`` entry); the
    referral points at the image model's and at the fusion's threshold."""
    kinds = ("image_only", "fused", "fused_all_unknown")

    def number(value: Any) -> str:
        return "-" if value is None else f"{value:.4f}"

    def row(title: str, values: list[Any]) -> str:
        return f"{title:<22}" + "".join(f"{number(value):>13}" for value in values)

    lines = [f"Questionnaire fusion: {block['images_with_answers']} of {block['images']} images with answers "
             f"(from {block['answers_from']})",
             f"{'':<22}{'image only':>13}{'fused':>13}{'all unknown':>13}"]
    for key, title in (("balanced_accuracy", "balanced accuracy"), ("accuracy", "accuracy"), ("ece", "ECE")):
        lines.append(row(title, [block[kind].get(key) for kind in kinds]))
    for key in ("sensitivity", "specificity"):
        lines.append(row(f"referral {key}", [(block[kind].get("referral") or {}).get(key) for kind in kinds]))
    for label in block["fused"]["recall"]:
        lines.append(row(f"{label} recall", [block[kind]["recall"].get(label) for kind in kinds]))
    return "\n".join(lines)


def format_metrics_table(result: dict[str, Any]) -> str:
    """A plain-text table: the summary metrics, then precision / recall / F1 / support per class."""

    def number(value: Any) -> str:
        return "n/a" if value is None or (isinstance(value, float) and not np.isfinite(value)) else f"{value:.4f}"

    lines = [f"{'images':<20}{result['n']}"]
    for key, title in (("accuracy", "accuracy"), ("balanced_accuracy", "balanced accuracy"),
                       ("macro_f1", "macro F1"), ("auc_macro", "AUC (macro, OvR)"),
                       ("ece", "ECE (15 bins)"), ("nll", "NLL")):
        lines.append(f"{title:<20}{number(result.get(key))}")
    lines.append("")
    lines.append(f"{'class':<10}{'precision':>10}{'recall':>10}{'F1':>10}{'support':>10}")
    for label, values in result["per_class"].items():
        lines.append(f"{label:<10}{number(values.get('precision')):>10}{number(values.get('recall')):>10}"
                     f"{number(values.get('f1')):>10}{values.get('support', 0):>10}")
    return "\n".join(lines)
