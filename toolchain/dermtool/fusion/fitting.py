"""Fit a run's fusion (``dermtool fuse RUN``): the image model's answers on its own split, plus the
questionnaire answers that the sources' metadata CSVs hold, combined by :mod:`dermtool.fusion.model`.

1. The image model's calibrated probabilities for every image of the run's split (dermtool's evaluation
   preprocessing, no augmentation).
2. The weights are fitted on the **training** split, every source weighing the same and every class within
   a source the same (the fit aims at balanced accuracy on each source), with an L2 penalty.
3. A temperature fitted on the **validation** split is folded into the weights (calibration), and the
   referral threshold of the fused probabilities is chosen on validation so that the sensitivity bound
   holds pooled and on each source (as ``dermtool train`` does for the image model).
4. The report gives, per split and per source, image-only and fused figures side by side, and the fused
   figures with every answer unknown.

Writes ``RUN/fusion.json`` (the fusion, :meth:`Fusion.to_dict`, with its ``referral`` operating point) and
``RUN/fusion_report.json``; ``dermtool export`` carries the first into the model's ``dermtool.json``.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from dermtool import DermtoolError, metrics
from dermtool.data.pipeline import load_images
from dermtool.data.sources import resolve_sources, run_collection, run_split_records
from dermtool.files import read_text_file
from dermtool.fusion.model import Fusion, balanced_weights, fit_fusion
from dermtool.fusion.questionnaire import Answers, QUESTION_NAMES, answers_from_row
from dermtool.io_utils import atomic_write_json
from dermtool.run import RunFolder
from dermtool.train.report import SplitStrata, referral_over_sources

FUSION_FILE = "fusion.json"
REPORT_FILE = "fusion_report.json"
DEFAULT_L2 = 0.001
MIN_ANSWERED_IMAGES = 20


def answers_of_csv(path: Path) -> dict[str, Answers]:
    """``{image_id: answers}`` from a metadata CSV (an ``image_id`` or ``image`` column and any question
    columns); a value that no question understands is an error naming the file and the image."""
    answers: dict[str, Answers] = {}
    with open(path, newline="", encoding="utf-8-sig") as handle:
        for row in csv.DictReader(handle):
            image_id = (row.get("image_id") or row.get("image") or "").strip()
            if not image_id:
                continue
            try:
                answers[Path(image_id).stem] = answers_from_row(row)
            except DermtoolError as error:
                raise DermtoolError(f"{path}, image {image_id}: {error}") from None
    return answers


def answers_of_collection(collection: Any) -> dict[str, Answers]:
    """The answers of every image of a run's sources (:class:`dermtool.data.sources.SourceCollection`), read
    from each source's metadata CSV (none for a source without one)."""
    answers: dict[str, Answers] = {}
    for dataset in collection.datasets.values():
        if dataset.csv_path is not None:
            answers.update(answers_of_csv(dataset.csv_path))
    return answers


def _probabilities(run: Any, records: Sequence[Any], progress: bool) -> np.ndarray:
    """The image model's calibrated probabilities of ``records``: decoded in a thread pool, then one pass of
    the model (an image that cannot be decoded is an error naming it: the answers must stay aligned)."""
    if not records:
        return np.zeros((0, len(run.labels)))
    images, failed = load_images([record.path for record in records], run.input_spec, progress=progress)
    if failed:
        path, reason = failed[0]
        raise DermtoolError(f"{len(failed)} image(s) of the run's split cannot be read (first: {path}, {reason}); "
                            "the fusion needs every image of its splits")
    return run.predict_probabilities(images)


def _figures(y_true: np.ndarray, probabilities: np.ndarray, labels: list[str], referral: dict | None) -> dict:
    figures = metrics.classification_metrics(y_true, probabilities, labels)
    result = {"images": int(len(y_true)), "balanced_accuracy": figures["balanced_accuracy"],
              "accuracy": figures["accuracy"], "ece": figures.get("ece"),
              "recall": {label: figures["per_class"][label]["recall"] for label in labels
                         if figures["per_class"][label].get("support")}}
    if referral:
        columns = [labels.index(name) for name in referral["classes"]]
        result["referral"] = metrics.sensitivity_specificity(y_true, probabilities, columns, referral["threshold"])
    return result


def fit_run_fusion(run_path: str | Path, *, l2: float = DEFAULT_L2, data_dir: str | Path | None = None,
                   progress: bool = True) -> tuple[Fusion, dict[str, Any]]:
    """Fit, calibrate and report ``run_path``'s fusion; writes ``fusion.json`` and ``fusion_report.json``
    into the run folder (atomically) and returns ``(fusion, report)``."""
    if not l2 > 0:
        raise DermtoolError(f"--l2 must be a positive number, got {l2}")
    run = RunFolder(run_path)
    labels = list(run.labels)
    collection = run_collection(run.config, run.path, data_dir)  # each source's folder read once
    splits = run_split_records(run, data_dir, collection)
    for needed in ("train", "val"):
        if not splits.get(needed):
            raise DermtoolError(f"{run.path}/split.csv has no {needed} images; the fusion is fitted on train "
                                "and calibrated on val")
    answers = answers_of_collection(collection)
    answered = sum(1 for record in splits["train"] if answers.get(record.image_id))
    if answered < MIN_ANSWERED_IMAGES:
        raise DermtoolError(
            f"only {answered} training images of {run.path} have questionnaire answers in their metadata CSV "
            f"(columns named {', '.join(QUESTION_NAMES)}); a fusion needs at least {MIN_ANSWERED_IMAGES}")
    names = [source.name for source in resolve_sources(run.config.data)]
    kinds = [source.kind for source in resolve_sources(run.config.data)]
    data: dict[str, dict[str, Any]] = {}
    for split in ("train", "val", "test"):
        records = splits.get(split) or []
        if not records:
            continue
        data[split] = {
            "y": np.array([labels.index(record.label) for record in records]),
            "p": _probabilities(run, records, progress),
            "answers": [answers.get(record.image_id, {}) for record in records],
            "source": np.array([record.source for record in records]),
        }
    train = data["train"]
    fusion = fit_fusion(train["p"], train["answers"], train["y"], labels,
                        sample_weight=balanced_weights(train["y"], train["source"]), l2=l2)
    val = data["val"]
    temperature = metrics.fit_temperature(fusion.logits(val["p"], val["answers"]), val["y"])
    fusion.image_scale /= temperature
    fusion.weights = {name: {level: [value / temperature for value in values] for level, values in levels.items()}
                      for name, levels in fusion.weights.items()}
    fused = {split: fusion.apply(item["p"], item["answers"]) for split, item in data.items()}
    strata = {split: SplitStrata(np.array([names.index(source) for source in item["source"]]),
                                 [""] * len(item["y"]), names, kinds) for split, item in data.items()}
    referral = referral_over_sources(
        labels, {split: (data[split]["y"], fused[split]) for split in data if split != "train"},
        {split: strata[split] for split in data if split != "train"})
    image_referral = dict(run.metrics.get("referral") or {}) or None
    fusion.fitted_on = {
        "train_images": int(len(train["y"])),
        "train_images_with_answers": int(answered),
        "sources": names,
        "l2": float(l2),
        "validation_temperature": float(temperature),
    }
    report = _report(labels, data, fusion, referral, image_referral, names)
    item = fusion.to_dict()
    if referral:
        item["referral"] = {key: referral[key] for key in ("classes", "threshold", "target_sensitivity", "confidence")
                            if key in referral}
    atomic_write_json(run.path / FUSION_FILE, item)
    atomic_write_json(run.path / REPORT_FILE, report)
    return fusion, report


def _report(labels: list[str], data: dict, fusion: Fusion, referral: dict | None,
            image_referral: dict | None, names: list[str]) -> dict[str, Any]:
    report: dict[str, Any] = {"labels": labels, "fitted_on": fusion.fitted_on, "referral": referral, "splits": {}}
    for split in ("val", "test"):
        if split not in data:
            continue
        item = data[split]
        entry: dict[str, Any] = {}
        for name in names + ["pooled"]:
            mask = np.ones(len(item["y"]), bool) if name == "pooled" else item["source"] == name
            if mask.any():
                answers = [answers for answers, keep in zip(item["answers"], mask) if keep]
                entry[name] = side_by_side(item["y"][mask], item["p"][mask], answers, fusion, referral,
                                           image_referral)
        report["splits"][split] = entry
    return report


def format_report(report: dict[str, Any]) -> str:
    """A table: per split and source, balanced accuracy, ECE and referral, image only -> fused."""
    lines = [f"{'split':<6} {'source':<14} {'images':>6}  {'balanced accuracy':>22}  {'ECE':>15}  "
             f"{'referral sens/spec':>27}  all unknown"]
    for split, sources in report["splits"].items():
        for name, entry in sources.items():
            image, fused = entry["image_only"], entry["fused"]

            def referral(figures: dict) -> str:
                point = figures.get("referral")
                return f"{point['sensitivity']:.3f}/{point['specificity']:.3f}" if point else "-"

            lines.append(
                f"{split:<6} {name:<14} {image['images']:>6}  {image['balanced_accuracy']:.3f} -> "
                f"{fused['balanced_accuracy']:.3f} ({fused['balanced_accuracy'] - image['balanced_accuracy']:+.3f})  "
                f"{image['ece']:.3f} -> {fused['ece']:.3f}  {referral(image):>12} -> {referral(fused):<12}  "
                f"{entry['fused_all_unknown']['balanced_accuracy']:.3f}")
    return "\n".join(lines)


def side_by_side(y_true: np.ndarray, probabilities: np.ndarray, answers: Sequence[Answers], fusion: Fusion,
                 fusion_referral: dict | None, image_referral: dict | None) -> dict[str, Any]:
    """``{images_with_answers, image_only, fused, fused_all_unknown}`` of one set of images, as the report
    gives them per source: the image model's ``probabilities``, fused with each image's ``answers``, and
    fused with every answer unknown (each with images, balanced accuracy, accuracy, ECE, recall per class,
    and the referral point at the image model's or the fusion's threshold)."""
    labels = list(fusion.labels)
    fused = fusion.apply(probabilities, list(answers))
    unknown = fusion.apply(probabilities, [{}] * len(answers))
    return {"images_with_answers": int(sum(1 for item in answers if item)),
            "image_only": _figures(y_true, probabilities, labels, image_referral),
            "fused": _figures(y_true, fused, labels, fusion_referral),
            "fused_all_unknown": _figures(y_true, unknown, labels, None)}


def read_run_fusion(run: Any) -> dict[str, Any] | None:
    """``RUN/fusion.json`` as written (the fusion and its ``referral``), checked as any reader checks it
    (:meth:`Fusion.from_dict`), its labels the run's and its referral a threshold in [0, 1] on the run's
    classes; None when the run has none. ``run``: a :class:`dermtool.run.RunFolder`."""
    import json

    path = run.path / FUSION_FILE
    if not path.exists() and not path.is_symlink():
        return None  # (a FIFO or a link to a device is refused by the reader below, not taken for "no fusion")
    again = f"run `dermtool fuse {run.path}` again"

    try:
        item = json.loads(read_text_file(path, "fusion"))  # a regular file, size-capped
    except (OSError, ValueError, RecursionError) as error:
        raise DermtoolError(f"{path}: not readable JSON ({error}); {again}") from None
    fusion = Fusion.from_dict(item, str(path))
    if fusion.labels != list(run.labels):
        raise DermtoolError(f"{path}: its labels {fusion.labels} are not the model's {list(run.labels)}; {again}")
    _check_referral(item.get("referral"), fusion.labels, f"{path}", again)
    return item


def _check_referral(referral: Any, labels: list[str], where: str, again: str) -> None:
    """A fusion's ``referral``: absent, or a threshold in [0, 1] on some of the model's classes."""
    if referral is None:
        return
    threshold = referral.get("threshold") if isinstance(referral, dict) else None
    classes = referral.get("classes") if isinstance(referral, dict) else None
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0:
        raise DermtoolError(f"{where}: referral.threshold must be a number in [0, 1], got {threshold!r}; {again}")
    if not isinstance(classes, list) or not classes or any(name not in labels for name in classes):
        raise DermtoolError(f"{where}: referral.classes must be some of the model's labels, got {classes!r}; {again}")


def read_fusion_report(run_path: str | Path) -> dict[str, Any] | None:
    """``RUN/fusion_report.json``, or None when it is absent or unreadable (it only feeds model cards)."""
    import json

    try:
        report = json.loads((Path(run_path) / REPORT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return report if isinstance(report, dict) else None
