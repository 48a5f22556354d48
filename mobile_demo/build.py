#!/usr/bin/env python3
"""Build the offline PWA of mobile_demo/ around one exported dermtool .tflite.

    python mobile_demo/build.py --model lite0_int8.tflite [--out mobile_demo/dist]

Needs ``npm ci`` run in mobile_demo/ first (it provides @mediapipe/tasks-vision). Writes ``dist/``:

    index.html app.js preprocess.js fusion.js combine.js style.css sw.js manifest.webmanifest icon-192.png icon-512.png
    results.js results.css questionnaire.js   the outcome, bars and questionnaire, shared with `dermtool serve`
    config.json        referral classes + threshold, uncertainty threshold, readable class names, input spec,
                       the outcome messages (the referral one naming the model's referral classes), the
                       lesion check (its head name and threshold; null for a model without one), the rule
                       that combines several photos of one lesion, what the model was trained on, and the
                       questionnaire fusion with its own referral rule when the model carries one (all from
                       the model's dermtool.json metadata, read at build time)
    model.tflite       the model, unchanged (its labels are read on the device from its metadata)
    vendor/vision_bundle.mjs                  MediaPipe Tasks Vision (ES module)
    wasm/vision_wasm_internal.{js,wasm}       its WebAssembly (SIMD) ...
    wasm/vision_wasm_nosimd_internal.{js,wasm} ... and the fallback for browsers without WebAssembly SIMD

and ``FILE.gz`` beside every file that gzip shrinks, for serve.py (or any static host that serves
precompressed files) to send to browsers that accept gzip.

Nothing is fetched from a CDN: the page, the model and the WebAssembly all come from dist/. The service
worker's cache name is a hash of dist/'s content, so a rebuilt app replaces the old cache.

dermtool is a decision-support research tool, not a medical device.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import shutil
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "src"
PACKAGE = HERE / "node_modules" / "@mediapipe" / "tasks-vision"
SHELL_FILES = ("index.html", "app.js", "preprocess.js", "fusion.js", "combine.js", "style.css", "manifest.webmanifest")
#: The outcome box, probability bars and questionnaire form, shared with `dermtool serve` (one implementation
#: for both pages).
SHARED_FILES = ("results.js", "results.css", "questionnaire.js")
WASM_FILES = (
    "vision_wasm_internal.js",
    "vision_wasm_internal.wasm",
    "vision_wasm_nosimd_internal.js",
    "vision_wasm_nosimd_internal.wasm",
)
MODEL_NAME = "model.tflite"


class BuildError(Exception):
    """A problem the person building can fix; printed as one line."""


def shared_static_folder() -> Path:
    """dermtool serve's static folder (in the installed package), which holds the files both pages share."""
    import dermtool

    return Path(dermtool.__file__).resolve().parent / "serve" / "static"


def read_model_metadata(model: Path) -> dict[str, Any]:
    """The model's dermtool.json metadata (labels, input spec, referral rule ...)."""
    from dermtool import DermtoolError
    from dermtool.export.metadata import read_metadata

    try:
        metadata = read_metadata(model)  # every field checked (a NaN or out-of-range threshold is refused)
    except DermtoolError as error:
        raise BuildError(str(error)) from None
    if not metadata or not metadata.get("labels"):
        raise BuildError(
            f"{model} has no dermtool metadata with labels: export it with `dermtool export RUN --out MODEL.tflite`"
        )
    return dict(metadata)


def fusion_config(model: Path, metadata: dict[str, Any], labels: list[str], referral: dict[str, Any]) -> dict | None:
    """The questionnaire fusion of the model's dermtool.json (``fusion``), checked, with the referral rule for
    fused probabilities under ``referral`` (the fusion's own threshold and classes, as ``dermtool predict``
    applies it; the image model's when the fusion has none); None when the model carries no fusion."""
    item = metadata.get("fusion")
    if not item:
        return None
    from dermtool import DermtoolError
    from dermtool.fusion.model import Fusion

    try:
        fusion = Fusion.from_dict(item, f"{model} (dermtool.json fusion)")
    except DermtoolError as error:
        raise BuildError(str(error)) from None
    if fusion.labels != labels:
        raise BuildError(f"{model}: the fusion's labels {fusion.labels} are not the model's {labels}")
    point = item.get("referral") or {}
    if point.get("threshold") is None:
        rule = {**referral, "source": "the image model's (the fusion has no referral threshold)"}
    else:
        classes = [label for label in (point.get("classes") or referral["classes"]) if label in labels]
        rule = {"classes": classes, "threshold": float(point["threshold"]), "source": "dermtool.json fusion"}
    return {**fusion.to_dict(), "referral": rule}


def lesion_check_config(model: Path, metadata: dict[str, Any]) -> dict[str, Any] | None:
    """``{head_name, categories, threshold}`` of the model's lesion check (dermtool.json's ``lesion_check``:
    the model's second output, which MediaPipe returns as the classification head ``head_name``); None for a
    model without one (the app then says "this model has no lesion check")."""
    item = metadata.get("lesion_check")
    if not item:
        return None
    from dermtool import DermtoolError
    from dermtool.prediction.lesion_check import HEAD_NAME, threshold_from_metadata

    try:
        threshold = threshold_from_metadata(metadata, f"{model} (dermtool.json)")
    except DermtoolError as error:
        raise BuildError(str(error)) from None
    return {"head_name": str(item.get("head_name") or HEAD_NAME),
            "categories": list(item.get("categories") or ["lesion", "not_a_lesion"]),
            "threshold": float(threshold)}


def multi_photo_config(model: Path, metadata: dict[str, Any], referral_classes: list[str]) -> dict[str, Any]:
    """How the app combines several photos of one lesion (combine.js): dermtool.json's ``multi_photo``, or the
    default rule for a model that carries none; the model's referral classes when the rule names none."""
    from dermtool import DermtoolError
    from dermtool.prediction.multi_photo import MultiPhotoRule, default_rule

    item = metadata.get("multi_photo")
    try:
        where = f"{model} (dermtool.json multi_photo)"
        rule = MultiPhotoRule.from_dict(item, where) if item else default_rule(referral_classes)
    except DermtoolError as error:
        raise BuildError(str(error)) from None
    if not rule.referral_classes:
        rule = MultiPhotoRule(rule.rule, rule.probability_floor, tuple(referral_classes), rule.extra)
    return rule.to_dict()


def app_config(model: Path, metadata: dict[str, Any]) -> dict[str, Any]:
    """config.json: what the page needs beyond the model's own metadata."""
    from dermtool import DISCLAIMER, __version__
    from dermtool.prediction.predictor import (
        CLASS_NAMES,
        DEFAULT_MALIGNANT_CLASSES,
        DEFAULT_REFERRAL_THRESHOLD,
        DEFAULT_UNCERTAINTY_THRESHOLD,
    )
    from dermtool.serve.service import describe_training_photos, outcome_guidance

    labels = [str(label) for label in metadata["labels"]]
    referral = dict(metadata.get("referral") or {})
    threshold = referral.get("threshold")
    source = "dermtool.json metadata"
    if threshold is None:
        threshold, source = DEFAULT_REFERRAL_THRESHOLD, "default (the model's metadata has none)"
        print(f"warning: {model} has no referral threshold in its metadata; using {threshold}", file=sys.stderr)
    classes = [label for label in (referral.get("classes") or DEFAULT_MALIGNANT_CLASSES) if label in labels]
    image_referral = {"classes": classes, "threshold": float(threshold), "source": source}
    fusion = fusion_config(model, metadata, labels, image_referral)
    if fusion is not None:  # the referral message of fused probabilities names the fusion's own classes
        fusion["outcomes"] = outcome_guidance(fusion["referral"]["classes"])
    return {
        "model": MODEL_NAME,
        "model_name": model.name,
        "model_bytes": model.stat().st_size,
        "mode": metadata.get("mode"),
        "labels": labels,
        "names": {label: CLASS_NAMES.get(label, label) for label in labels},
        "input_spec": metadata.get("input_spec"),
        "referral": image_referral,
        "fusion": fusion,
        "lesion_check": lesion_check_config(model, metadata),
        "multi_photo": multi_photo_config(model, metadata, classes),
        "trained_on": describe_training_photos(metadata.get("sources") or []),
        "uncertainty_threshold": DEFAULT_UNCERTAINTY_THRESHOLD,
        "outcomes": outcome_guidance(classes),
        "disclaimer": DISCLAIMER,
        "model_dermtool_version": metadata.get("dermtool_version"),
        "built_with_dermtool": __version__,
    }


def draw_icon(size: int, path: Path) -> None:
    """A plain app icon (a lesion-like disc on the brand colour), drawn here rather than stored as binary."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (size, size), (23, 92, 211))
    draw = ImageDraw.Draw(image)
    for fraction, colour in ((0.30, (241, 214, 194)), (0.22, (201, 154, 122)), (0.13, (140, 90, 60))):
        radius = size * fraction
        centre = size / 2
        draw.ellipse((centre - radius, centre - radius, centre + radius, centre + radius), fill=colour)
    image.save(path, format="PNG", optimize=True)


def write_compressed_copies(folder: Path, minimum_saving: float = 0.05) -> int:
    """Write ``FILE.gz`` beside every file of ``folder`` that gzip shrinks by at least ``minimum_saving``.

    serve.py (like nginx's gzip_static) sends these to browsers that accept gzip: the first load then
    transfers MediaPipe's 13 MB WebAssembly as 3.8 MB. Deterministic (no timestamp in the header).
    Returns the number of files written.
    """
    written = 0
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix != ".gz"):
        data = path.read_bytes()
        compressed = gzip.compress(data, compresslevel=9, mtime=0)
        if len(compressed) <= (1.0 - minimum_saving) * len(data):
            path.with_name(path.name + ".gz").write_bytes(compressed)
            written += 1
    return written


def build(model: Path, out: Path) -> dict[str, Any]:
    if not model.is_file():
        raise BuildError(f"model not found: {model} (give an exported .tflite, e.g. MODEL=lite0_int8.tflite)")
    if model.suffix.lower() != ".tflite":
        raise BuildError(f"{model} is not a .tflite file")
    if not (PACKAGE / "vision_bundle.mjs").exists():
        raise BuildError(
            f"{PACKAGE} is missing: run `npm ci` in {HERE} first (make mobile-demo does it)"
        )
    metadata = read_model_metadata(model)
    if not metadata.get("input_spec"):
        raise BuildError(f"{model} has no input_spec in its dermtool metadata: export it with `dermtool export`")
    config = app_config(model, metadata)

    staging = out.with_name(out.name + ".partial")
    if staging.exists():
        shutil.rmtree(staging)
    (staging / "vendor").mkdir(parents=True)
    (staging / "wasm").mkdir()
    for name in SHELL_FILES:
        shutil.copyfile(SOURCE / name, staging / name)
    shared = shared_static_folder()
    for name in SHARED_FILES:
        shutil.copyfile(shared / name, staging / name)
    shutil.copyfile(PACKAGE / "vision_bundle.mjs", staging / "vendor" / "vision_bundle.mjs")
    for name in WASM_FILES:
        shutil.copyfile(PACKAGE / "wasm" / name, staging / "wasm" / name)
    shutil.copyfile(model, staging / MODEL_NAME)
    (staging / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    draw_icon(192, staging / "icon-192.png")
    draw_icon(512, staging / "icon-512.png")

    # The service worker: its cache version is the hash of every other file; it precaches the app shell, the
    # model and its config; the WebAssembly variant the browser picks is cached as it is first fetched.
    digest = hashlib.sha256()
    for path in sorted(p for p in staging.rglob("*") if p.is_file()):
        digest.update(path.relative_to(staging).as_posix().encode())
        digest.update(path.read_bytes())
    precache = [*SHELL_FILES, *SHARED_FILES, "icon-192.png", "icon-512.png", "config.json", MODEL_NAME, "vendor/vision_bundle.mjs"]
    worker = (SOURCE / "sw.js").read_text(encoding="utf-8")
    worker = worker.replace("__CACHE_VERSION__", digest.hexdigest()[:16]).replace(
        "__PRECACHE_LIST__", json.dumps(precache)
    )
    (staging / "sw.js").write_text(worker, encoding="utf-8")
    write_compressed_copies(staging)

    if out.exists():
        shutil.rmtree(out)
    staging.rename(out)
    return config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, type=Path, help="an exported .tflite (dermtool export)")
    parser.add_argument("--out", type=Path, default=HERE / "dist", help="output folder (default mobile_demo/dist)")
    arguments = parser.parse_args(argv)
    try:
        config = build(arguments.model, arguments.out)
    except BuildError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 2
    total = sum(path.stat().st_size for path in arguments.out.rglob("*") if path.is_file() and path.suffix != ".gz")
    print(
        f"built {arguments.out} ({total / 1e6:.1f} MB in all, plus .gz copies): {config['model_name']} "
        f"({', '.join(config['labels'])}); referral {'+'.join(config['referral']['classes'])} >= "
        f"{config['referral']['threshold']:.3f} ({config['referral']['source']})"
        + ("; questionnaire fusion included" if config["fusion"] else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
