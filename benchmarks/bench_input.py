"""Measure the throughput of the training input pipeline on real HAM10000 images.

    python benchmarks/bench_input.py --limit 2000                      # 224x224, batch 32, default augmentation
    python benchmarks/bench_input.py --limit 0 --json input_bench.json # every image, result also written as JSON
    python benchmarks/bench_input.py --image-size 160 --balanced       # class-balanced sampling at 160 px

Two stages, each repeated (--repeats) and reported as the median:

1. decode + resize: ``load_images`` (PIL decode and bilinear resize in a thread pool) of the first --limit
   images, in images/s. The first run may read cold files from disk; later runs come from the page cache.
2. augmentation pipeline: iterating ``make_dataset(training=True)`` over the decoded, in-memory images
   (gather, rotation/zoom/flips warp, colour jitter, normalisation, one-hot; parallel map, prefetch), after a
   warm-up epoch (which includes the XLA compilation), for --seconds per run, in images/s. Also reported per
   CPU-second of this process (``augment_images_per_cpu_s``), which other processes on the machine do not
   lower: on a shared machine the wall-clock rate is a lower bound. The evaluation pipeline (no
   augmentation) is measured the same way for comparison.

Prints one flat JSON object (and writes it with --json). Target: augment_images_per_s >= 400 at 224x224.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "ham10000"
TARGET_AUGMENT_IMAGES_PER_S = 400.0


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def find_images(data_dir: Path) -> tuple[list[Path], list[str]]:
    """Image paths and labels from a HAM10000-style folder (metadata CSV + images/), sorted by image_id."""
    for name in ("HAM10000_metadata.csv", "labels.csv"):
        csv_path = data_dir / name
        if csv_path.exists():
            with open(csv_path, newline="") as handle:
                rows = sorted(csv.DictReader(handle), key=lambda row: row["image_id"])
            images = data_dir / "images"
            return [images / f"{row['image_id']}.jpg" for row in rows], [row.get("dx", "?") for row in rows]
    paths = sorted(path for path in data_dir.rglob("*.jpg"))
    return paths, ["?"] * len(paths)


def time_dataset(dataset, seconds: float) -> tuple[float, float]:
    """Iterate whole epochs until ``seconds`` have passed: (images per second, images per CPU-second)."""
    images = 0
    started_wall, started_cpu = time.perf_counter(), time.process_time()
    while time.perf_counter() - started_wall < seconds:
        for batch_images, _ in dataset:
            images += int(batch_images.shape[0])
            if time.perf_counter() - started_wall >= seconds:
                break
    wall = time.perf_counter() - started_wall
    cpu = time.process_time() - started_cpu
    return images / wall, images / cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"HAM10000 folder (default {DEFAULT_DATA})")
    parser.add_argument("--limit", type=int, default=2000, help="use the first N images by image_id (0 = all; default 2000)")
    parser.add_argument("--image-size", type=int, default=224, help="model input side in pixels (default 224)")
    parser.add_argument("--resize-policy", default="squash", choices=["squash", "center_crop", "pad"])
    parser.add_argument("--batch-size", type=int, default=32, help="default 32")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of one timed pipeline run (default 10)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per stage; the median is reported (default 3)")
    parser.add_argument("--workers", type=int, default=None, help="decoding threads (default: 2 per core, at most 16)")
    parser.add_argument("--balanced", action="store_true", help="class-balanced sampling instead of shuffling")
    parser.add_argument("--json", dest="json_path", type=Path, default=None, help="also write the result here")
    args = parser.parse_args(argv)

    from dermtool.config import AugmentConfig
    from dermtool.data.pipeline import default_workers, load_images, make_dataset
    from dermtool.data.preprocess import InputSpec

    if args.repeats < 1 or args.seconds <= 0 or args.batch_size < 1:
        parser.error("--repeats and --batch-size must be at least 1 and --seconds positive")
    paths, labels = find_images(args.data)
    if not paths:
        print(f"Error: no images found in {args.data}", file=sys.stderr)
        return 2
    if args.limit:
        paths, labels = paths[: args.limit], labels[: args.limit]
    spec = InputSpec(image_size=args.image_size, resize_policy=args.resize_policy, mean=127.5, std=127.5)
    load_start = os.getloadavg()[0]

    decode_rates = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        images, failed = load_images(paths, spec, workers=args.workers, progress=False)
        decode_rates.append(len(paths) / (time.perf_counter() - started))
    classes = sorted(set(labels))
    label_ids = [classes.index(label) for label, path in zip(labels, paths) if path not in {p for p, _ in failed}]

    import tensorflow as tf  # after decoding: the pipeline module imports it lazily too

    augment = AugmentConfig()
    training = make_dataset(images, label_ids, len(classes), args.batch_size, training=True, augment=augment,
                            spec=spec, seed=0, class_balanced_sampling=args.balanced)
    evaluation = make_dataset(images, label_ids, len(classes), args.batch_size, training=False, augment=None,
                              spec=spec)
    for dataset in (training, evaluation):  # warm-up: one full epoch, compiling every batch shape
        for _ in dataset:
            pass
    augment_runs = [time_dataset(training, args.seconds) for _ in range(args.repeats)]
    evaluation_runs = [time_dataset(evaluation, args.seconds) for _ in range(args.repeats)]

    augment_median = statistics.median(rate for rate, _ in augment_runs)
    result = {
        "data": str(args.data),
        "images": len(images),
        "failed": len(failed),
        "image_size": args.image_size,
        "resize_policy": args.resize_policy,
        "batch_size": args.batch_size,
        "class_balanced_sampling": args.balanced,
        "augment": ",".join(f"{key}={value}" for key, value in vars(augment).items()),
        "repeats": args.repeats,
        "seconds_per_run": args.seconds,
        "decode_workers": args.workers or default_workers(),
        "decode_images_per_s": round(statistics.median(decode_rates), 1),
        "decode_runs": [round(rate, 1) for rate in decode_rates],
        "augment_images_per_s": round(augment_median, 1),
        "augment_runs": [round(rate, 1) for rate, _ in augment_runs],
        "augment_images_per_cpu_s": round(statistics.median(per_cpu for _, per_cpu in augment_runs), 1),
        "eval_images_per_s": round(statistics.median(rate for rate, _ in evaluation_runs), 1),
        "eval_images_per_cpu_s": round(statistics.median(per_cpu for _, per_cpu in evaluation_runs), 1),
        "target_augment_images_per_s": TARGET_AUGMENT_IMAGES_PER_S,
        "meets_target": augment_median >= TARGET_AUGMENT_IMAGES_PER_S,
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "load_average_1min_start": round(load_start, 2),
        "load_average_1min_end": round(os.getloadavg()[0], 2),
        "tensorflow": tf.__version__,
        "python": platform.python_version(),
    }
    print(json.dumps(result, indent=2))
    if args.json_path:
        from dermtool.io_utils import atomic_write_json

        atomic_write_json(args.json_path, result)  # the same text as printed
    return 0


if __name__ == "__main__":
    sys.exit(main())
