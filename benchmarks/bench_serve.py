#!/usr/bin/env python3
"""Latency of `dermtool serve` and the first-load size of the mobile PWA; prints one JSON object.

    python benchmarks/bench_serve.py --tflite lite0_int8.tflite --run runs/lite0 --data ../shared/data/ham10000

- ``predict``: median / p90 wall time of ``POST /api/predict`` (multipart upload of a real HAM10000 JPEG,
  decode, resize, LiteRT inference, JSON) over ``--requests`` sequential requests to a live uvicorn server
  on 127.0.0.1, for the .tflite (typically the int8 export).
- ``predict_phone_photo``: the same with the images upscaled to 3000x2250 JPEGs (a phone photo's upload).
- ``explain``: the same for ``POST /api/explain`` (Grad-CAM + PNG overlay) with the float run.
- ``pwa``: mobile_demo built around the .tflite, opened once in headless Chromium (Debian's
  /usr/bin/chromium) from mobile_demo/serve.py: the bytes the server actually sent until the model was
  ready (app + MediaPipe + the WebAssembly variant the browser picked + model; gzip where the browser
  accepts it, as any static host does), and the same files' sizes on disk.

Needs ``npm ci`` in mobile_demo/ for the PWA part (skipped with a note when absent or with --no-pwa).
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))


def sample_images(data_dir: Path, count: int) -> list[Path]:
    """``count`` real images, spread over the classes (first images of each class in id order)."""
    with open(data_dir / "HAM10000_metadata.csv", newline="") as handle:
        rows = sorted(csv.DictReader(handle), key=lambda row: row["image_id"])
    by_class: dict[str, list[Path]] = {}
    for row in rows:
        by_class.setdefault(row["dx"], []).append(data_dir / "images" / f"{row['image_id']}.jpg")
    picked: list[Path] = []
    while len(picked) < count:
        for paths in by_class.values():
            if paths and len(picked) < count:
                picked.append(paths.pop(0))
    return picked


def phone_sized(images: list[Path], width: int = 3000, height: int = 2250) -> list[bytes]:
    """The images upscaled to a 6.75-megapixel JPEG (quality 90), the size of a phone photo upload."""
    import io

    from PIL import Image

    payloads = []
    for image in images:
        buffer = io.BytesIO()
        Image.open(image).convert("RGB").resize((width, height)).save(buffer, format="JPEG", quality=90)
        payloads.append(buffer.getvalue())
    return payloads


def time_endpoint(model: Path, path: str, images: list[Path] | list[bytes], requests: int) -> dict:
    import httpx

    from dermtool.serve.app import create_app
    from tests.serve.conftest import LiveServer

    started = time.perf_counter()
    app = create_app(model)  # warms up: first inference, OOD guard, Grad-CAM gradient model
    load_seconds = time.perf_counter() - started
    payloads = [image if isinstance(image, bytes) else image.read_bytes() for image in images]
    timings: list[float] = []
    with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=300) as http:
        for index in range(requests + 1):
            data = payloads[index % len(payloads)]
            began = time.perf_counter()
            response = http.post(path, files={"image": ("lesion.jpg", data, "image/jpeg")})
            elapsed = (time.perf_counter() - began) * 1000
            response.raise_for_status()
            if index:  # the first request is reported as "first", not in the statistics
                timings.append(elapsed)
            else:
                first = elapsed
    ordered = sorted(timings)
    return {
        "model": str(model),
        "endpoint": path,
        "requests": len(timings),
        "median_ms": round(statistics.median(timings), 2),
        "p90_ms": round(ordered[int(0.9 * (len(ordered) - 1))], 2),
        "mean_ms": round(statistics.fmean(timings), 2),
        "first_ms": round(first, 2),
        "load_and_warm_up_s": round(load_seconds, 2),
        "image_bytes_mean": int(statistics.fmean(len(p) for p in payloads)),
    }


def pwa_first_load(model: Path) -> dict:
    from tests.serve.conftest import CHROMIUM, CHROMIUM_ARGS, load_mobile_demo_script

    demo = REPO_ROOT / "mobile_demo"
    if not (demo / "node_modules" / "@mediapipe" / "tasks-vision").exists():
        return {"skipped": "run `npm ci` in mobile_demo/ first"}
    if not CHROMIUM.exists():
        return {"skipped": f"{CHROMIUM} missing (apt-get install chromium)"}
    build, serve = load_mobile_demo_script("build"), load_mobile_demo_script("serve")
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="dermtool-pwa-") as folder:
        dist = Path(folder) / "dist"
        build.build(model, dist)
        with serve.DemoServer(dist) as server, sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_context().new_page()
            began = time.perf_counter()
            page.goto(server.url + "/")
            page.wait_for_selector("body[data-ready='true']", state="attached", timeout=120_000)
            ready_seconds = time.perf_counter() - began
            browser.close()
            sent = dict(server.bytes_sent)
            raw = {path: (dist / ("index.html" if path == "/" else path.lstrip("/"))).stat().st_size for path in sent}

        def part(path: str) -> str:
            if path.startswith("/wasm/"):
                return "wasm"
            if path == "/model.tflite":
                return "model"
            if path.startswith("/vendor/"):
                return "mediapipe_js"
            return "app"

        by_part: dict[str, int] = {}
        raw_by_part: dict[str, int] = {}
        for path, count in sent.items():
            by_part[part(path)] = by_part.get(part(path), 0) + count
            raw_by_part[part(path)] = raw_by_part.get(part(path), 0) + raw[path]
        return {
            "transfer_bytes_total": sum(sent.values()),
            "transfer_bytes_by_part": by_part,
            "file_bytes_total": sum(raw.values()),
            "file_bytes_by_part": raw_by_part,
            "files_sent": sorted(sent),
            "ready_seconds_localhost": round(ready_seconds, 2),
            "model_bytes": model.stat().st_size,
            "note": "bytes mobile_demo/serve.py sent on the first visit until the model was ready, gzip-compressed "
            "where build.py wrote a .gz (the browser accepts gzip); file_bytes: the same files uncompressed",
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tflite", type=Path, help="a .tflite for /api/predict and the PWA (e.g. the int8 export)")
    parser.add_argument("--run", type=Path, help="a run folder for /api/explain")
    parser.add_argument("--data", type=Path, default=REPO_ROOT.parent / "shared" / "data" / "ham10000")
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--no-pwa", action="store_true")
    arguments = parser.parse_args(argv)
    if not arguments.tflite and not arguments.run:
        parser.error("give --tflite and/or --run")

    import platform

    images = sample_images(arguments.data, 14)
    import os

    report: dict = {
        "device": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "load_average_at_start": [round(value, 2) for value in os.getloadavg()],
            "python": platform.python_version(),
        }
    }
    if arguments.tflite:
        report["predict"] = time_endpoint(arguments.tflite, "/api/predict", images, arguments.requests)
        report["predict_phone_photo"] = time_endpoint(
            arguments.tflite, "/api/predict", phone_sized(images[:4]), arguments.requests
        )
        report["predict_phone_photo"]["photo"] = "3000x2250 JPEG q90 (HAM10000 image upscaled)"
    if arguments.run:
        report["explain"] = time_endpoint(arguments.run, "/api/explain", images, arguments.requests)
        report["predict_run"] = time_endpoint(arguments.run, "/api/predict", images, arguments.requests)
    if arguments.tflite and not arguments.no_pwa:
        report["pwa"] = pwa_first_load(arguments.tflite)
    report["device"]["load_average_at_end"] = [round(value, 2) for value in os.getloadavg()]
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
