"""Measure the out-of-distribution guard of a model: real lesions of a split against generated non-lesions.

    python benchmarks/bench_ood.py --model runs/lite0 --split test [--data DATA] [--json ood_bench.json]
    python benchmarks/bench_ood.py --model lite0_int8.tflite --reference-run runs/lite0 --split test

Positives (should be rejected): :func:`dermtool.explain.non_lesion.generate_non_lesion_images` (blank,
overexposed, noise, rendered text, gradients, patterns, matplotlib's sample photos, real lesions overexposed
3-5x), ``--per-kind`` of each kind. Negatives (should pass): every image of ``--split`` of the run's split.csv.

Reports AUROC (overall and per kind), the share of real lesion images wrongly rejected (targets: AUROC >= 0.95,
false rejection <= 5 %), the share of non-lesion images caught at the threshold, and the same for each of the
detector's two components alone (image statistics, max-softmax). Prints JSON (and writes it with --json).
For a .tflite, the split comes from --reference-run (the run it was exported from).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="run folder or .tflite")
    parser.add_argument("--reference-run", default=None, help="for a .tflite: the run folder with split.csv")
    parser.add_argument("--data", default=None, help="the run's image folder (default: its config's)")
    parser.add_argument("--split", default="test", help="split of lesion images (default test)")
    parser.add_argument("--limit", type=int, default=None, help="at most N lesion images")
    parser.add_argument("--per-kind", type=int, default=8, help="generated images per non-lesion kind")
    parser.add_argument("--json", dest="json_path", default=None, help="also write the JSON here")
    args = parser.parse_args(argv)

    from dermtool.data.images import load_rgb
    from dermtool.data.pipeline import load_images
    from dermtool.data.preprocess import resize
    from dermtool.explain.non_lesion import generate_non_lesion_images
    from dermtool.explain.ood import split_records
    from dermtool.metrics import roc_auc

    def auroc(lesion_scores, other_scores) -> float | None:
        """AUROC of telling the non-lesions (should score high) from the lesions."""
        return roc_auc(np.r_[np.zeros(len(lesion_scores)), np.ones(len(other_scores))], np.r_[lesion_scores, other_scores])
    from dermtool.explain.predict import Predictor
    from dermtool.run import RunFolder

    started = time.perf_counter()
    predictor = Predictor(args.model, data_dir=args.data, progress=True)
    detector = predictor.ood_detector
    if detector is None:
        print(f"{args.model}: no out-of-distribution detector (see the warnings above)", file=sys.stderr)
        return 2
    run = RunFolder(args.reference_run or args.model)
    records = split_records(run, args.data, args.split)
    if args.limit:
        records = records[: args.limit]
    spec = predictor.input_spec
    lesions, failed = load_images([record.path for record in records], spec, progress=True)
    # real lesions for the "overexposed_lesion" kind: taken from the *training* split, never from the measured one
    train_records = split_records(run, args.data, "train")[: args.per_kind]
    generated = generate_non_lesion_images(
        count_per_kind=args.per_kind, lesion_images=[load_rgb(record.path) for record in train_records]
    )
    others = np.stack([resize(image.pixels, spec.image_size, spec.resize_policy) for image in generated])
    kinds = [image.kind for image in generated]

    lesion_probabilities = predictor.predict_arrays(lesions)
    other_probabilities = predictor.predict_arrays(others)
    lesion_raw = detector.raw_scores(lesions, lesion_probabilities)
    other_raw = detector.raw_scores(others, other_probabilities)
    lesion_scores = detector.combine(lesion_raw)
    other_scores = detector.combine(other_raw)

    per_kind = {}
    for kind in sorted(set(kinds)):
        selected = np.array([k == kind for k in kinds])
        per_kind[kind] = {
            "n": int(selected.sum()),
            "auroc": auroc(lesion_scores, other_scores[selected]),
            "caught": float(np.mean(detector.rejects(other_scores[selected]))),
        }
    components = {
        name: {"auroc": auroc(lesion_raw[name], other_raw[name]), "weight": detector.weights.get(name, 0.0)}
        for name in lesion_raw
    }
    result = {
        "model": str(args.model),
        "kind": predictor.kind,
        "split": args.split,
        "lesion_images": int(len(lesions)),
        "unreadable_lesion_images": len(failed),
        "non_lesion_images": int(len(others)),
        "threshold": float(detector.threshold),
        "auroc": auroc(lesion_scores, other_scores),
        "false_rejection": float(np.mean(detector.rejects(lesion_scores))),
        "non_lesion_caught": float(np.mean(detector.rejects(other_scores))),
        "per_kind": per_kind,
        "components": components,
        "calibration": detector.calibration,
        "targets": {"auroc": 0.95, "false_rejection": 0.05},
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(result, indent=2))
    if args.json_path:
        from dermtool.io_utils import atomic_write_json

        atomic_write_json(args.json_path, result)  # the same text as printed
    return 0


if __name__ == "__main__":
    sys.exit(main())
