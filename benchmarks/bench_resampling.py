#!/usr/bin/env python
"""How much the resampler changes a model's answers: the same images resized to the model input in different ways.

    python benchmarks/bench_resampling.py MODEL.tflite --data ../shared/data/ham10000 \\
        --data ../shared/data/pad_ufes_20 --split test --reference runs/multisource_cpu --json resampling.json
    python benchmarks/bench_resampling.py MODEL.tflite --data DATA --split test --reference RUN --upscale 4
    python benchmarks/bench_resampling.py MODEL.tflite --data DATA --limit 50        # every labelled image, first 50

For every data folder (each one source: a multi-source model's label map applies and a multi-source split
is restricted to that source's rows, as in ``dermtool bench``), every image is decoded once (EXIF
orientation applied; with ``--upscale N`` enlarged N times with Pillow LANCZOS in memory, as a
high-resolution camera frame cropped to the lesion) and then given to the model in these ways:

- ``pillow_bilinear``: dermtool's own pipeline (:func:`dermtool.data.preprocess.resize`, the model's resize
  policy, Pillow's antialiased bilinear filter), run with LiteRT: the reference every other row is compared with;
- ``pillow_box``, ``pillow_bicubic``, ``pillow_nearest``, ``pillow_lanczos``, ``pillow_hamming``: the same
  resize policy with another Pillow filter, run with LiteRT;
- ``mediapipe``: the decoded image at its own size handed to MediaPipe Tasks' ``ImageClassifier``, which
  resizes and normalises by itself (what a phone app computes; :mod:`dermtool.bench.mediapipe_client`).

Output (timm style): a JSON list of flat rows, printed and written with ``--json``. One row per source and
resampler (``kind: "resampler"``: ``n``, ``accuracy``, ``balanced_accuracy``, ``mel_recall``), and one row per
source and pair of resamplers (``kind: "pair"``: ``resampler_a``, ``resampler_b``, ``top1_agreement``,
``delta_balanced_accuracy`` (b - a), ``mean_abs_prob_diff``, ``max_abs_prob_diff``). Every row names the
model, data folder, source, split, upscale and date.

The targets of issue #18 are checked on the pairs with ``pillow_bilinear``: ``meets_target`` is true when
the top-1 agreement is at least 0.98 and (for ``mediapipe``) the balanced accuracy is within 0.5 points.
"""

from __future__ import annotations

import argparse
import datetime as _datetime
import itertools
import json
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from dermtool import DermtoolError

REFERENCE = "pillow_bilinear"
PILLOW_FILTERS = ("bilinear", "box", "bicubic", "nearest", "lanczos", "hamming")
MEDIAPIPE = "mediapipe"
TARGET_AGREEMENT = 0.98
TARGET_BALANCED_ACCURACY_POINTS = 0.5


def resize_with(pixels: np.ndarray, size: int, policy: str, resampler: str) -> np.ndarray:
    """``uint8 (size, size, 3)``: :func:`dermtool.data.preprocess.resize`'s geometry with another Pillow filter."""
    from PIL import Image

    resample = getattr(Image.Resampling, resampler.upper())
    picture = Image.fromarray(np.ascontiguousarray(pixels))
    height, width = pixels.shape[:2]

    def scaled(image: Image.Image, new_width: int, new_height: int) -> Image.Image:
        return image if image.size == (new_width, new_height) else image.resize((new_width, new_height), resample=resample)

    if policy == "squash":
        result = scaled(picture, size, size)
    elif policy == "center_crop":
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        result = scaled(picture.crop((left, top, left + side, top + side)), size, size)
    elif policy == "pad":
        scale = size / max(height, width)
        new_width, new_height = min(size, max(1, round(width * scale))), min(size, max(1, round(height * scale)))
        result = Image.new("RGB", (size, size), (0, 0, 0))
        result.paste(scaled(picture, new_width, new_height), ((size - new_width) // 2, (size - new_height) // 2))
    else:
        raise DermtoolError(f"unknown resize policy {policy!r}")
    return np.asarray(result, dtype=np.uint8).copy()


def source_probabilities(
    model_path: Path, records: Sequence[Any], upscale: float, resamplers: Sequence[str], progress: bool
) -> tuple[dict[str, np.ndarray], list[int]]:
    """``{resampler: probabilities (N, C)}`` in the model's label order, and the indices of the records read."""
    from tqdm import tqdm

    from dermtool.bench.mediapipe_client import MediaPipeClassifier, load_original
    from dermtool.data.images import ImageError
    from dermtool.runtime import TFLiteModel

    model = TFLiteModel(model_path)
    spec = model.require_input_spec()
    pillow = [name for name in resamplers if name != MEDIAPIPE]
    outputs: dict[str, list[np.ndarray]] = {name: [] for name in resamplers}
    kept: list[int] = []
    classifier = MediaPipeClassifier(model_path, model.require_labels()) if MEDIAPIPE in resamplers else None
    try:
        for position, record in enumerate(tqdm(records, unit="img", desc="Resampling", disable=None if progress else True)):
            try:
                pixels = load_original(record.path, upscale)
            except (ImageError, OSError):
                continue
            kept.append(position)
            for name in pillow:
                resized = resize_with(pixels, spec.image_size, spec.resize_policy, name.removeprefix("pillow_"))
                outputs[name].append(model.predict_prepared(model.prepare(resized)))
            if classifier is not None:
                outputs[MEDIAPIPE].append(classifier.classify(pixels))
    finally:
        if classifier is not None:
            classifier.close()
    if not kept:
        raise DermtoolError("none of the images could be read")
    return {name: np.stack(values).astype(np.float64) for name, values in outputs.items()}, kept


def rows_for_source(
    probabilities: dict[str, np.ndarray], y_true: np.ndarray, labels: Sequence[str], common: dict[str, Any]
) -> list[dict[str, Any]]:
    """The flat rows of one source: one per resampler, one per pair of resamplers."""
    from dermtool import metrics

    rows: list[dict[str, Any]] = []
    scores = {}
    for name, values in probabilities.items():
        scores[name] = metrics.classification_metrics(y_true, values, labels)
        mel = scores[name]["per_class"].get("mel", {}).get("recall")
        rows.append({**common, "kind": "resampler", "resampler": name, "n": int(len(y_true)),
                     "accuracy": scores[name]["accuracy"], "balanced_accuracy": scores[name]["balanced_accuracy"],
                     "macro_f1": scores[name]["macro_f1"], "mel_recall": mel})
    for first, second in itertools.combinations(probabilities, 2):
        a, b = probabilities[first], probabilities[second]
        difference = np.abs(a - b)
        row = {**common, "kind": "pair", "resampler_a": first, "resampler_b": second, "n": int(len(y_true)),
               "top1_agreement": float(np.mean(a.argmax(axis=1) == b.argmax(axis=1))),
               "delta_balanced_accuracy": scores[second]["balanced_accuracy"] - scores[first]["balanced_accuracy"],
               "mean_abs_prob_diff": float(difference.mean()), "max_abs_prob_diff": float(difference.max())}
        if first == REFERENCE:
            meets = row["top1_agreement"] >= TARGET_AGREEMENT
            if second == MEDIAPIPE:
                meets = meets and abs(row["delta_balanced_accuracy"]) * 100 <= TARGET_BALANCED_ACCURACY_POINTS
            row["meets_target"] = bool(meets)
        rows.append(row)
    return rows


def run(arguments: argparse.Namespace) -> list[dict[str, Any]]:
    from dermtool.bench.mediapipe_client import check_upscale
    from dermtool.bench.runner import _model_sources, check_labels, select_records
    from dermtool.runtime import TFLiteModel

    upscale = check_upscale(arguments.upscale)
    model = TFLiteModel(arguments.model)
    labels = model.require_labels()
    sources = _model_sources(model, arguments.reference)
    resamplers = [REFERENCE] + [f"pillow_{name}" for name in PILLOW_FILTERS if name != "bilinear"]
    if not arguments.no_mediapipe:
        resamplers.append(MEDIAPIPE)
    date = _datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    rows: list[dict[str, Any]] = []
    for data_dir in arguments.data:
        records, description = select_records(data_dir, None, arguments.split, arguments.manifest, arguments.reference,
                                              sources=sources)
        records, _ignored, _notes = check_labels(records, labels, arguments.ignore_unknown)
        if arguments.limit:
            records = records[: arguments.limit]
        started = time.perf_counter()
        probabilities, kept = source_probabilities(Path(arguments.model), records, upscale, resamplers,
                                                   not arguments.quiet)
        index = {label: position for position, label in enumerate(labels)}
        y_true = np.array([index[records[position].label] for position in kept], dtype=np.int64)
        source = (description.get("source") or {}).get("name") or Path(data_dir).name
        common = {"model": str(arguments.model), "data": str(data_dir), "source": source,
                  "split": arguments.split or "all", "upscale": upscale, "date": date}
        source_rows = rows_for_source(probabilities, y_true, labels, common)
        for row in source_rows:
            row["seconds"] = round(time.perf_counter() - started, 1)
        rows += source_rows
    return rows


def summary_lines(rows: Sequence[dict[str, Any]]) -> list[str]:
    """One line per source and resampler: balanced accuracy, and agreement with dermtool's pipeline."""
    pairs = {(row["source"], row["resampler_b"]): row for row in rows
             if row["kind"] == "pair" and row["resampler_a"] == REFERENCE}
    lines = [f"{'source':<14} {'resampler':<16} {'n':>5} {'bal.acc':>8} {'agree':>7} {'d bal.acc':>10}  target"]
    for row in rows:
        if row["kind"] != "resampler":
            continue
        pair = pairs.get((row["source"], row["resampler"]))
        agree = f"{pair['top1_agreement']:.4f}" if pair else "(ref)"
        delta = f"{pair['delta_balanced_accuracy'] * 100:+.2f} pt" if pair else ""
        target = ("met" if pair["meets_target"] else "missed") if pair else ""
        lines.append(f"{row['source']:<14} {row['resampler']:<16} {row['n']:>5} {row['balanced_accuracy']:>8.4f} "
                     f"{agree:>7} {delta:>10}  {target}")
    return lines


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="the exported .tflite (with dermtool metadata)")
    parser.add_argument("--data", action="append", required=True,
                        help="a labelled data folder (one source); repeat for several")
    parser.add_argument("--split", default=None, help="only this split (test, val, train) of --manifest or --reference's split.csv")
    parser.add_argument("--manifest", default=None, help="the split file for --split")
    parser.add_argument("--reference", default=None, help="the run folder (its split.csv, and its sources' label maps)")
    parser.add_argument("--upscale", type=float, default=1.0, help="enlarge every image N times first (LANCZOS)")
    parser.add_argument("--limit", type=int, default=0, help="at most this many images per source (0: all)")
    parser.add_argument("--no-mediapipe", action="store_true", help="Pillow filters only")
    parser.add_argument("--ignore-unknown", action="store_true", help="skip images whose label the model does not know")
    parser.add_argument("--json", dest="json_path", type=Path, default=None, help="write the rows here")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    try:
        rows = run(arguments)
    except DermtoolError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 2
    print("\n".join(summary_lines(rows)), file=sys.stderr)
    print(json.dumps(rows, indent=1))
    if arguments.json_path:
        from dermtool.io_utils import atomic_write_json

        atomic_write_json(arguments.json_path, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
