"""Leave-one-source-out check of the not-a-lesion guard of a multi-source run.

    python benchmarks/bench_guard_sources.py --run runs/multisource_cpu [--json guard_sources.json]
    python benchmarks/bench_guard_sources.py --run runs/multisource_cpu --unseen ../shared/data/isic2017

The guard (:mod:`dermtool.explain.ood`) must mean "not a usable photo of skin", never "unlike the training
set". For a run trained on several sources this fits the guard exactly as the product does (Gaussian of the
image statistics on training images, threshold on validation images, the run's float model for the
confidence part) several times:

- ``all``: on every source (what ``dermtool export`` ships);
- ``without_SOURCE``: on every source but one, then measured on the left-out source too (a kind of image
  the guard has never seen, as a new phone or dermatoscope would be).

For each fit it reports the share of each source's *test* lesions rejected (target: at most 5 %) and the
share of generated non-lesion images caught (blank, overexposed, noise, text, patterns, everyday photos;
target: at least 95 %). ``--unseen DATA`` (repeatable) adds a folder of lesion images that no fit uses
(another clinic's dermatoscope, a new phone): its rejected share, per label too when the folder has labels.

Each fit is made twice: ``default`` (this version's guard: 14 statistics, diagonal covariance) and
``format1`` (all 20 statistics, full covariance: the guard of ood.json files written before format 2), so
the two can be compared on the same images: ``fits`` holds the default guard's figures, ``format1_fits``
the format-1 guard's. Output: flat JSON (and a table on stdout).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import numpy as np


def _images_of(records: list[Any], spec: Any, limit: int | None, seed: int) -> np.ndarray:
    from dermtool.data.pipeline import load_images

    if limit is not None and len(records) > limit:
        order = np.random.default_rng(seed).permutation(len(records))[:limit]
        records = [records[index] for index in sorted(order)]
    images, _ = load_images([record.path for record in records], spec, progress=False)
    return images


GUARDS: dict[str, dict[str, Any]] = {
    "default": {},
    "format1": {"features": None, "covariance": "full"},  # features None: all FEATURE_NAMES
}


def _unseen_images(folder: str, spec: Any, limit: int | None, seed: int) -> tuple[np.ndarray, list[str]]:
    """Every readable image of a lesion folder (any layout ``dermtool`` reads), with its label ('' if none)."""
    from dermtool.data.layouts import read_dataset
    from dermtool.data.pipeline import load_images

    records = list(read_dataset(folder).records)
    if limit is not None and len(records) > limit:
        order = np.random.default_rng(seed).permutation(len(records))[:limit]
        records = [records[index] for index in sorted(order)]
    images, failed = load_images([record.path for record in records], spec, progress=False)
    bad = {str(path) for path, _ in failed}
    labels = [record.label or "" for record in records if str(record.path) not in bad]
    return images, labels


def run(run_path: str, per_kind: int = 8, max_reference: int = 2000, seed: int = 0,
        unseen: list[str] | None = None, unseen_limit: int | None = None) -> dict[str, Any]:
    from dermtool.data.preprocess import resize
    from dermtool.data.images import load_rgb
    from dermtool.data.sources import run_split_records
    from dermtool.explain.non_lesion import generate_non_lesion_images
    from dermtool.explain.ood import FEATURE_NAMES, fit_detector, image_statistics
    from dermtool.run import RunFolder

    started = time.perf_counter()
    run = RunFolder(run_path)
    spec = run.input_spec
    records = run_split_records(run)
    names = sorted({record.source for split in records.values() for record in split})
    if len(names) < 2:
        raise SystemExit(f"{run_path}: a single-source run; leave-one-source-out needs two sources or more")

    def of(split: str, source: str) -> list[Any]:
        return [record for record in records.get(split, []) if record.source == source]

    train = {name: _images_of(of("train", name), spec, max_reference, seed) for name in names}
    val = {name: _images_of(of("val", name), spec, None, seed) for name in names}
    test = {name: _images_of(of("test", name), spec, None, seed) for name in names}
    probabilities = {key: {name: run.predict_probabilities(images[name]) for name in names}
                     for key, images in (("val", val), ("test", test))}
    lesions_for_overexposure = [load_rgb(record.path) for record in of("train", names[0])[:per_kind]]
    generated = generate_non_lesion_images(count_per_kind=per_kind, lesion_images=lesions_for_overexposure)
    others = np.stack([resize(image.pixels, spec.image_size, spec.resize_policy) for image in generated])
    other_probabilities = run.predict_probabilities(others)
    extra = {folder: _unseen_images(folder, spec, unseen_limit, seed) for folder in unseen or []}
    extra_probabilities = {folder: run.predict_probabilities(images) for folder, (images, _) in extra.items()}
    # the statistics of every scored image, once (each fit only reweighs them)
    statistics = {("test", name): image_statistics(test[name]) for name in names}
    statistics["others"] = image_statistics(others)
    statistics.update({("unseen", folder): image_statistics(images) for folder, (images, _) in extra.items()})

    def rejected(detector: Any, key: Any, probabilities: np.ndarray) -> np.ndarray:
        raw = {"image_statistics": detector.statistics_distance(statistics[key]),
               "max_softmax": 1.0 - np.asarray(probabilities, np.float64).max(axis=1)}
        return detector.rejects(detector.combine(raw))

    fits = {"all": names} | {f"without_{name}": [other for other in names if other != name] for name in names}
    result: dict[str, Any] = {"run": str(run_path), "sources": names,
                              "test_images": {name: int(len(test[name])) for name in names},
                              "unseen": {folder: int(len(images)) for folder, (images, _) in extra.items()},
                              "fits": {}, "format1_fits": {}}
    for fit_name, fitted_on in fits.items():
        reference = np.concatenate([train[name] for name in fitted_on])
        if len(reference) > max_reference:
            reference = reference[np.random.default_rng(seed).permutation(len(reference))[:max_reference]]
        calibration = np.concatenate([val[name] for name in fitted_on])
        calibration_probabilities = np.concatenate([probabilities["val"][name] for name in fitted_on])
        for guard, options in GUARDS.items():
            options = {key: (FEATURE_NAMES if key == "features" and value is None else value)
                       for key, value in options.items()}
            detector = fit_detector(reference, calibration, calibration_probabilities, **options)
            entry: dict[str, Any] = {"fitted_on": fitted_on, "guard": guard, "threshold": float(detector.threshold)}
            for name in names:
                hits = rejected(detector, ("test", name), probabilities["test"][name])
                entry[f"rejected_{name}"] = float(np.mean(hits))
            entry["non_lesion_caught"] = float(np.mean(rejected(detector, "others", other_probabilities)))
            for folder, (_, labels) in extra.items():
                hits = rejected(detector, ("unseen", folder), extra_probabilities[folder])
                entry[f"rejected_unseen:{folder}"] = float(np.mean(hits))
                label_array = np.asarray(labels)
                entry[f"rejected_unseen_by_label:{folder}"] = {
                    label: float(np.mean(hits[label_array == label])) for label in sorted(set(labels)) if label}
            result["fits" if guard == "default" else f"{guard}_fits"][fit_name] = entry
    result["targets"] = {"rejected_max": 0.05, "non_lesion_caught_min": 0.95}
    result["non_lesion_images"] = int(len(others))
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def format_table(result: dict[str, Any]) -> str:
    """One row per fitted guard: "all" or "without SOURCE" (the source left out), its format, the share of
    each source's (and unseen folder's) real lesions it rejects, and the generated non-lesions it catches."""
    names = result["sources"]
    unseen = [folder.rstrip("/").split("/")[-1] for folder in result.get("unseen", {})]
    columns = [f"rejects {name}" for name in names] + ["non-lesions caught"] + [f"unseen {name}" for name in unseen]
    widths = [max(len(column) + 2, 8) for column in columns]
    entries = [entry for fit_name in result["fits"]
               for entry in (result["fits"][fit_name], result.get("format1_fits", {}).get(fit_name)) if entry]
    labels = []
    for entry in entries:
        left_out = [name for name in names if name not in entry["fitted_on"]]
        labels.append("all" if not left_out else "without " + "+".join(left_out))
    first = max([len("guard fitted on")] + [len(label) for label in labels]) + 2
    lines = [f"{'guard fitted on':<{first}}{'guard':<10}" + "".join(f"{column:>{width}}" for column, width in
                                                                   zip(columns, widths))]
    for label, entry in zip(labels, entries):
        values = ([entry["rejected_" + name] for name in names] + [entry["non_lesion_caught"]]
                  + [entry["rejected_unseen:" + folder] for folder in result.get("unseen", {})])
        lines.append(f"{label:<{first}}{entry.get('guard', 'default'):<10}"
                     + "".join(f"{value:>{width}.3f}" for value, width in zip(values, widths)))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="a multi-source run folder")
    parser.add_argument("--per-kind", type=int, default=8, help="generated images per non-lesion kind")
    parser.add_argument("--max-reference", type=int, default=2000, help="training images for the Gaussian")
    parser.add_argument("--unseen", action="append", default=[], metavar="DATA",
                        help="a folder of lesion images never used for fitting (repeatable): its rejected share")
    parser.add_argument("--unseen-limit", type=int, default=None, help="at most N images of each --unseen folder")
    parser.add_argument("--json", dest="json_path", default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    result = run(args.run, args.per_kind, args.max_reference, unseen=args.unseen, unseen_limit=args.unseen_limit)
    print(format_table(result))
    if args.json_path:
        from dermtool.io_utils import atomic_write_json

        atomic_write_json(args.json_path, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
