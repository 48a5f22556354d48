"""Several photos of one lesion: which rule combines them best, against each photo alone.

    python benchmarks/bench_multi_photo.py --model runs/multisource_cpu/run --json multi_photo.json
    python benchmarks/bench_multi_photo.py --model runs/multisource_cpu/run --write-run   # RUN/multi_photo.json
    python benchmarks/bench_multi_photo.py --model runs/multisource_cpu/models/int8_ptq.tflite \
        --run runs/multisource_cpu/run                                 # the exported model's probabilities

The lesions are those of the run's own split (``RUN/split.csv``) with two or more photos in one split: MILK10k's
pairs (a clinical close-up and a dermoscopic photo of every lesion, two sources reading one folder),
PAD-UFES-20's lesions photographed more than once (a patient's lesion: ``lesion_id`` + ``pad_lesion_number``,
see ``--lesion-key``) and HAM10000's lesions with several dermoscopic images. A *collection* is the sources
that read one folder (named by the folder). Every image is scored alone by the model (calibrated probabilities,
as ``dermtool predict`` gives them; the lesion check is not applied here: every photo is kept), then:

- each rule of :data:`dermtool.prediction.multi_photo.RULES` combines the photos of a lesion;
- "each photo alone": every photo is its own answer for the lesion, per kind of photo where a collection has
  several kinds (MILK10k: the clinical close-up alone, the dermoscopic photo alone), else all photos.

Figures per collection and split (val, test), lesion level: balanced accuracy over the model's classes, the
referral (the model's referral classes and threshold, as shipped: an app does not know which kind of photo it
holds) sensitivity and specificity, and the referral AUC (malignant against benign lesions on the summed
referral probability: how well the answer separates them at any threshold). The rule is **chosen on the validation split** of one collection
(``--choose-on``; default: a collection with several kinds of photo, MILK10k): among the rules whose referral
sensitivity there is at least the run's target (0.90), the highest balanced accuracy (ties: the order of
RULES); the test split only reports. ``--write-run`` writes the chosen rule with its figures to
``RUN/multi_photo.json``, which ``dermtool export`` copies into the model's ``dermtool.json`` as ``multi_photo``.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import Any

import numpy as np

SPLITS = ("val", "test")
#: A collection sets a lesion-level referral threshold only with at least this many malignant val lesions.
MIN_MALIGNANT = 30
#: The columns that name one lesion in a folder whose lesion_id column names the patient.
DEFAULT_LESION_KEYS = {"pad_ufes_20": ("lesion_id", "pad_lesion_number")}


def lesion_keys(data_dir: Path, columns: tuple[str, ...]) -> dict[str, str]:
    """``{image_id: lesion key}`` from the folder's CSV: ``columns`` joined by ``/``."""
    from dermtool.data.layouts import read_dataset

    dataset = read_dataset(data_dir)
    with open(dataset.csv_path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    missing = [column for column in columns if rows and column not in rows[0]]
    if missing:
        from dermtool import DermtoolError

        raise DermtoolError(f"{dataset.csv_path} has no column {', '.join(missing)} (--lesion-key)")
    return {row["image_id"]: "/".join(row[column] for column in columns) for row in rows}


def collect(run_path: Path, source_names: list[str] | None, key_columns: dict[str, tuple[str, ...]],
            ) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """``{collection: {split: [lesion, ...]}}``: every lesion with two or more photos in one split, as
    ``{"key", "label", "photos": [{"path", "source", "kind"}, ...]}``."""
    from dermtool.bench.runner import select_records
    from dermtool.run import RunFolder

    run = RunFolder(run_path)
    sources = list(run.config.data.sources)
    if not sources:
        from dermtool import DermtoolError

        raise DermtoolError(f"{run_path}: a single-folder run; the benchmark reads the run's sources")
    chosen = [source for source in sources if source_names is None or source.name in source_names]
    collections: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
    for source in chosen:
        folder = Path(source.data_dir)
        name = folder.resolve().name
        columns = key_columns.get(source.name) or key_columns.get(name)
        keys = lesion_keys(folder, columns) if columns else None
        for split in SPLITS:
            records, _ = select_records(folder, None, split, None, run_path, sources=sources, source_name=source.name)
            lesions = collections.setdefault(name, {}).setdefault(split, {})
            for record in records:
                key = keys.get(record.image_id, record.group) if keys is not None else record.group
                lesion = lesions.setdefault(key, {"key": key, "label": record.label, "photos": []})
                lesion["photos"].append({"path": str(record.path), "source": source.name, "kind": source.kind})
    return {name: {split: [lesion for lesion in lesions.values() if len(lesion["photos"]) >= 2]
                   for split, lesions in splits.items()}
            for name, splits in collections.items()}


def score_photos(predictor: Any, collections: dict[str, dict[str, list[dict[str, Any]]]], progress: bool) -> None:
    """Each photo's calibrated probabilities, stored in the photo as ``probabilities`` (a numpy row)."""
    from dermtool.data.pipeline import load_images

    photos = [photo for splits in collections.values() for lesions in splits.values()
              for lesion in lesions for photo in lesion["photos"]]
    paths = sorted({photo["path"] for photo in photos})
    images, failed = load_images(paths, predictor.input_spec, progress=progress)
    if failed:
        from dermtool import DermtoolError

        raise DermtoolError(f"{len(failed)} photo(s) could not be read, e.g. {failed[0][0]} ({failed[0][1]})")
    rows: list[np.ndarray] = []
    for start in range(0, len(images), 64):
        rows.append(predictor.predict_arrays(images[start:start + 64]))
    by_path = dict(zip(paths, np.concatenate(rows) if rows else []))
    for photo in photos:
        photo["probabilities"] = by_path[photo["path"]]


def figures(labels: list[str], truth: list[str], rows: np.ndarray, referral: dict[str, Any]) -> dict[str, Any]:
    """Lesion-level (or photo-level) balanced accuracy and referral sensitivity/specificity."""
    from dermtool import metrics

    y_true = np.array([labels.index(label) for label in truth])
    columns = [labels.index(label) for label in referral["classes"] if label in labels]
    measured = metrics.classification_metrics(y_true, rows, labels)
    point = metrics.sensitivity_specificity(y_true, rows, columns, referral["threshold"])
    auc = metrics.roc_auc(np.isin(y_true, columns), rows[:, columns].sum(axis=1))
    return {"n": int(len(truth)), "balanced_accuracy": measured["balanced_accuracy"],
            "referral_sensitivity": point["sensitivity"], "referral_specificity": point["specificity"],
            "referral_auc": auc,
            "malignant": point["true_positives"] + point["false_negatives"],
            "benign": point["true_negatives"] + point["false_positives"]}


def combined_rows(labels: list[str], lesions: list[dict[str, Any]], name: str,
                  referral: dict[str, Any]) -> np.ndarray:
    """One combined probability row per lesion under the rule ``name``."""
    from dermtool.prediction.multi_photo import MultiPhotoRule, combine_rows

    rule = MultiPhotoRule(name, referral_classes=tuple(referral["classes"]))
    return np.array([combine_rows(np.array([photo["probabilities"] for photo in lesion["photos"]]), labels, rule)
                     for lesion in lesions])


def measure_rule(labels: list[str], lesions: list[dict[str, Any]], name: str, referral: dict[str, Any]) -> dict:
    """One rule's lesion-level figures (``referral``'s threshold)."""
    lesions = [lesion for lesion in lesions if lesion["label"] in labels]
    return figures(labels, [lesion["label"] for lesion in lesions], combined_rows(labels, lesions, name, referral),
                   referral)


def lesion_referral_threshold(labels: list[str], collections: dict[str, dict[str, list[dict[str, Any]]]],
                              rule: str, referral: dict[str, Any], target: float) -> dict[str, Any] | None:
    """A referral threshold for combined lesions, set as the image threshold is: the highest whose 95 % lower
    confidence bound of the validation sensitivity is at least ``target``, on every collection with at least
    :data:`MIN_MALIGNANT` malignant validation lesions (the lowest of theirs). Reported, not shipped."""
    from dermtool import metrics

    columns = [labels.index(label) for label in referral["classes"] if label in labels]
    chosen: dict[str, float] = {}
    for name, splits in collections.items():
        lesions = [lesion for lesion in splits.get("val", []) if lesion["label"] in labels]
        y_true = np.array([labels.index(lesion["label"]) for lesion in lesions])
        if int(np.isin(y_true, columns).sum()) < MIN_MALIGNANT:
            continue
        rows = combined_rows(labels, lesions, rule, referral)
        chosen[name] = metrics.threshold_for_sensitivity(y_true, rows, columns, target, confidence=0.95)
    if not chosen:
        return None
    return {"threshold": min(chosen.values()), "per_collection": chosen}


def measure(labels: list[str], lesions: list[dict[str, Any]], referral: dict[str, Any]) -> dict[str, Any]:
    """Every rule and each photo alone, on the lesions of one collection and split."""
    from dermtool.prediction.multi_photo import RULES

    lesions = [lesion for lesion in lesions if lesion["label"] in labels]
    if not lesions:
        return {}
    truth = [lesion["label"] for lesion in lesions]
    result: dict[str, Any] = {"lesions": len(lesions),
                              "photos": sum(len(lesion["photos"]) for lesion in lesions), "rules": {}, "alone": {}}
    for name in RULES:
        result["rules"][name] = measure_rule(labels, lesions, name, referral)
    kinds = sorted({photo["kind"] for lesion in lesions for photo in lesion["photos"]})
    for kind in kinds if len(kinds) > 1 else ["every photo"]:
        pairs = [(lesion["label"], photo["probabilities"]) for lesion in lesions for photo in lesion["photos"]
                 if kind == "every photo" or photo["kind"] == kind]
        result["alone"][kind] = figures(labels, [label for label, _ in pairs], np.array([row for _, row in pairs]),
                                        referral)
    return result


def choose(measured: dict[str, Any], target: float) -> tuple[str, str]:
    """``(rule, why)``: among the rules whose referral sensitivity is at least ``target``, the highest balanced
    accuracy (ties: the order of RULES); when none reaches it, the highest sensitivity."""
    from dermtool.prediction.multi_photo import RULES

    rules = measured["rules"]
    eligible = [name for name in RULES if (rules[name]["referral_sensitivity"] or 0.0) >= target]
    if eligible:
        best = max(eligible, key=lambda name: (rules[name]["balanced_accuracy"], -RULES.index(name)))
        return best, (f"the highest balanced accuracy among the rules with referral sensitivity >= {target:g}")
    best = max(RULES, key=lambda name: (rules[name]["referral_sensitivity"] or 0.0, -RULES.index(name)))
    return best, f"no rule reaches referral sensitivity {target:g}: the most sensitive"


def default_collection(collections: dict[str, dict[str, list[dict[str, Any]]]]) -> str:
    """A collection with several kinds of photo (MILK10k), else the one with the most validation lesions."""
    def kinds(name: str) -> int:
        return len({photo["kind"] for lesion in collections[name].get("val", []) for photo in lesion["photos"]})

    return max(collections, key=lambda name: (kinds(name) > 1, len(collections[name].get("val", []))))


def run(model: str, run_path: str | None, source_names: list[str] | None, choose_on: str | None,
        key_columns: dict[str, tuple[str, ...]], progress: bool = True) -> dict[str, Any]:
    from dermtool import DermtoolError
    from dermtool.prediction.multi_photo import MultiPhotoRule
    from dermtool.prediction.predictor import Predictor

    run_folder = Path(run_path or model)
    if not run_folder.is_dir():
        raise DermtoolError("--run RUN is needed with a .tflite (the split and the sources come from the run)")
    predictor = Predictor(model)  # predict_arrays: probabilities only (every photo kept, no lesion check)
    referral = {"classes": list(predictor.thresholds.malignant_classes),
                "threshold": float(predictor.thresholds.referral)}
    target = float(predictor.referral.get("target_sensitivity") or 0.9)
    collections = collect(run_folder, source_names, key_columns)
    collections = {name: splits for name, splits in collections.items() if any(splits.values())}
    if not collections:
        raise DermtoolError(f"{run_folder}: no lesion with two or more photos in the val or test split")
    choose_on = choose_on or default_collection(collections)
    if choose_on not in collections or not collections[choose_on].get("val"):
        raise DermtoolError(f"--choose-on {choose_on}: no validation lesions with several photos there; the "
                            f"collections are {', '.join(collections)}")
    score_photos(predictor, collections, progress)
    labels = list(predictor.labels)
    measured = {name: {split: measure(labels, lesions, referral) for split, lesions in splits.items() if lesions}
                for name, splits in collections.items()}
    rule, why = choose(measured[choose_on]["val"], target)
    lesion_threshold = lesion_referral_threshold(labels, collections, rule, referral, target)
    if lesion_threshold is not None:
        at_threshold = {**referral, "threshold": lesion_threshold["threshold"]}
        for name, splits in collections.items():
            for split, lesions in splits.items():
                if lesions and measured[name].get(split):
                    measured[name][split]["rules"][f"{rule} at the lesion threshold"] = measure_rule(
                        labels, lesions, rule, at_threshold)
    chosen = MultiPhotoRule(rule, referral_classes=tuple(referral["classes"]), extra={
        "chosen_on": {"collection": choose_on, "split": "val", "criterion": why,
                      "lesions": measured[choose_on]["val"]["lesions"]},
        "model": str(model),
        "figures": {name: {split: {"lesions": entry["lesions"],
                                   "combined": entry["rules"][rule], "alone": entry["alone"]}
                           for split, entry in splits.items() if entry}
                    for name, splits in measured.items()},
    })
    return {"model": str(model), "run": str(run_folder), "referral": referral, "target_sensitivity": target,
            "lesion_threshold": lesion_threshold, "collections": measured, "chosen": chosen.to_dict()}


def _cell(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def format_table(result: dict[str, Any]) -> str:
    lines = [f"referral: {' + '.join(result['referral']['classes'])} >= {result['referral']['threshold']:.3f} "
             f"(the model's own); chosen: {result['chosen']['rule']} ({result['chosen']['chosen_on']['criterion']}, "
             f"{result['chosen']['chosen_on']['collection']} val)",
             "| collection | split | lesions | answer | balanced accuracy | referral sensitivity (malignant) | "
             "referral specificity (benign) | referral AUC |",
             "|---|---|---|---|---|---|---|---|"]
    for name, splits in result["collections"].items():
        for split, entry in splits.items():
            if not entry:
                continue
            rows = [(f"rule {rule}", values) for rule, values in entry["rules"].items()]
            rows += [(f"{kind} alone" if kind != "every photo" else "each photo alone", values)
                     for kind, values in entry["alone"].items()]
            for title, values in rows:
                mark = " **chosen**" if title == f"rule {result['chosen']['rule']}" else ""
                lines.append(f"| {name} | {split} | {entry['lesions']} ({values['n']} answers) | {title}{mark} | "
                             f"{_cell(values['balanced_accuracy'])} | {_cell(values['referral_sensitivity'])} "
                             f"({values['malignant']}) | {_cell(values['referral_specificity'])} ({values['benign']}) | "
                             f"{_cell(values['referral_auc'])} |")
    return "\n".join(lines)


def _key_option(text: str) -> tuple[str, tuple[str, ...]]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--lesion-key {text!r}: give SOURCE=COLUMN[+COLUMN...]")
    name, columns = text.split("=", 1)
    return name.strip(), tuple(column.strip() for column in columns.split("+") if column.strip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="run folder or .tflite (whose probabilities are combined)")
    parser.add_argument("--run", default=None, help="the run folder (split, sources); default: --model")
    parser.add_argument("--sources", default=None, help="comma-separated source names (default: every source)")
    parser.add_argument("--choose-on", default=None, metavar="COLLECTION",
                        help="the folder name whose validation lesions choose the rule (default: one with several "
                             "kinds of photo, e.g. milk10k)")
    parser.add_argument("--lesion-key", action="append", type=_key_option, default=[], metavar="SOURCE=COLUMNS",
                        help="columns of a folder's CSV that name one lesion, joined by + (default: "
                             "pad_ufes_20=lesion_id+pad_lesion_number; others: the split's group)")
    parser.add_argument("--json", dest="json_path", default=None, help="also write the JSON here")
    parser.add_argument("--write-run", action="store_true",
                        help="write the chosen rule and its figures to RUN/multi_photo.json (export carries it)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    from dermtool import DermtoolError
    from dermtool.io_utils import atomic_write_json

    keys = {**DEFAULT_LESION_KEYS, **dict(args.lesion_key)}
    names = [name.strip() for name in args.sources.split(",")] if args.sources else None
    try:
        result = run(args.model, args.run, names, args.choose_on, keys, progress=not args.no_progress)
    except DermtoolError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 2
    print(format_table(result))
    if args.json_path:
        atomic_write_json(args.json_path, result)
    if args.write_run:
        from dermtool.prediction.multi_photo import RUN_FILE_NAME

        path = Path(result["run"]) / RUN_FILE_NAME
        atomic_write_json(path, result["chosen"])
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
