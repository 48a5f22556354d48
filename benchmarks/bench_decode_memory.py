"""How much memory decoding an image really takes, against dermtool's estimate (issue 27, item 9).

dermtool refuses an image before decoding it when :func:`dermtool.data.images.decode_cost` (estimated from the
header) exceeds the decode budget (``DERMTOOL_MAX_DECODE_MB``, 256 MB). The estimate is only a guard if it is
close to what decoding costs. This script writes three large images to a temporary folder (never into the
repository), decodes each in a fresh Python process exactly as ``dermtool predict`` does
(:func:`dermtool.data.preprocess.load_image`: decode, orient, 8-bit RGB, resize to the model's input) and
measures the peak resident memory that decoding added (Linux: ``VmHWM`` after decoding minus ``VmRSS`` before,
the peak reset through ``/proc/self/clear_refs``, the file's bytes already read and the libraries warmed up on a
small image of the same kind):

- ``rgb_jpeg``: a 6000x6000 RGB JPEG (a large phone photo, 36 megapixels);
- ``png16``: a 5000x5000 16-bit greyscale PNG;
- ``float_tiff``: a 4800x4800 32-bit float TIFF.

    python benchmarks/bench_decode_memory.py                      # the three shapes above
    python benchmarks/bench_decode_memory.py --scale 0.05 --json decode.json   # tiny copies (the test)

Prints, per image, the estimate, the measured peak and their ratio (the target: within 25 %). Exit status 1
when an estimate is off by more than ``--tolerance`` (only checked at full size, where the allocator's noise
is small).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

#: name -> (width, height, kind)
SHAPES: dict[str, tuple[int, int, str]] = {
    "rgb_jpeg": (6000, 6000, "jpeg"),
    "png16": (5000, 5000, "png16"),
    "float_tiff": (4800, 4800, "tiff_float"),
}

#: The measurement, run in a fresh interpreter: {"estimate", "baseline_kb", "peak_kb", "mode", "size"}.
CHILD = r"""
import io, json, sys
from dermtool.data.images import decode_cost
from dermtool.data.preprocess import InputSpec, load_image
from PIL import Image

def status(field):  # kB, from /proc/self/status (VmHWM is this process's own peak, not inherited)
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])

path, warm, image_size = sys.argv[1], sys.argv[2], int(sys.argv[3])
spec = InputSpec(image_size=image_size, resize_policy="squash", mean=127.0, std=128.0)
load_image(open(warm, "rb").read(), spec)              # warm up the decoder and numpy on a small image
data = open(path, "rb").read()                          # the file's bytes are not decoding memory
with Image.open(io.BytesIO(data)) as header:
    mode, size = header.mode, header.size
estimate = decode_cost(size[0], size[1], mode)
with open("/proc/self/clear_refs", "w") as handle:      # reset the peak (VmHWM) to the current RSS
    handle.write("5")
baseline = status("VmRSS")
pixels = load_image(data, spec)
peak = status("VmHWM")
print(json.dumps({"estimate": estimate, "baseline_kb": baseline, "peak_kb": peak, "mode": mode,
                  "size": list(size), "result": list(pixels.shape)}))
"""


def _write(path: Path, width: int, height: int, kind: str, seed: int = 0) -> Path:
    """A large image of ``kind`` with smooth content plus noise (a realistic JPEG size, not a flat colour)."""
    from PIL import Image

    generator = np.random.default_rng(seed)
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    x = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    base = 0.5 + 0.25 * np.sin(6.0 * x) * np.cos(4.0 * y)
    if kind == "jpeg":
        channels = [np.clip((base + 0.1 * shift) * 255 + generator.normal(0, 6, (height, width)), 0, 255)
                    .astype(np.uint8) for shift in (-1, 0, 1)]
        Image.fromarray(np.dstack(channels)).save(path, "JPEG", quality=90)
    elif kind == "png16":
        values = np.clip(base * 65535 + generator.normal(0, 500, (height, width)), 0, 65535).astype(np.uint16)
        Image.fromarray(values).save(path, "PNG")
    elif kind == "tiff_float":
        Image.fromarray((base + generator.normal(0, 0.01, (height, width))).astype(np.float32)).save(path, "TIFF", compression="tiff_deflate")
    else:
        raise ValueError(kind)
    return path


def measure(path: Path, warm: Path, image_size: int = 224) -> dict:
    """Decode ``path`` in a fresh interpreter; the estimate and the peak memory decoding added (bytes)."""
    completed = subprocess.run([sys.executable, "-c", CHILD, str(path), str(warm), str(image_size)],
                               capture_output=True, text=True, check=False,
                               env={**os.environ, "DERMTOOL_MAX_DECODE_MB": "100000", "DERMTOOL_MAX_IMAGE_MB": "1000"})
    if completed.returncode != 0:
        raise RuntimeError(f"decoding {path} failed: {completed.stderr.strip().splitlines()[-1:]}")
    values = json.loads(completed.stdout.strip().splitlines()[-1])
    measured = (values["peak_kb"] - values["baseline_kb"]) * 1024
    return {"file": path.name, "file_bytes": path.stat().st_size, "mode": values["mode"], "size": values["size"],
            "estimate_bytes": values["estimate"], "measured_peak_bytes": measured,
            "ratio": round(values["estimate"] / measured, 3) if measured > 0 else None}


def run(scale: float = 1.0, folder: Path | None = None) -> list[dict]:
    """Write the three shapes (``scale`` times their sides) and measure each."""
    with tempfile.TemporaryDirectory(prefix="dermtool-decode-") as temporary:
        where = Path(folder or temporary)
        results = []
        for name, (width, height, kind) in SHAPES.items():
            suffix = {"jpeg": ".jpg", "png16": ".png", "tiff_float": ".tif"}[kind]
            big = _write(where / f"{name}{suffix}", max(8, int(width * scale)), max(8, int(height * scale)), kind)
            warm = _write(where / f"warm_{name}{suffix}", 64, 64, kind, seed=1)
            results.append({"name": name, **measure(big, warm)})
        return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="scale the three shapes' sides (tests: 0.05)")
    parser.add_argument("--tolerance", type=float, default=0.25, help="allowed relative error of the estimate")
    parser.add_argument("--json", dest="json_out", default=None, help="write the results as JSON here")
    arguments = parser.parse_args(argv)
    results = run(arguments.scale)
    print(f"{'image':<12} {'mode':<6} {'size':>11} {'estimate':>10} {'measured':>10} {'ratio':>6}")
    for item in results:
        print(f"{item['name']:<12} {item['mode']:<6} {'x'.join(map(str, item['size'])):>11} "
              f"{item['estimate_bytes'] / 1e6:>8.0f}MB {item['measured_peak_bytes'] / 1e6:>8.0f}MB "
              f"{item['ratio'] if item['ratio'] is not None else 'n/a':>6}")
    if arguments.json_out:
        Path(arguments.json_out).write_text(json.dumps({"scale": arguments.scale, "results": results}, indent=2) + "\n")
    if arguments.scale >= 1.0:
        off = [item for item in results if item["ratio"] is None or abs(item["ratio"] - 1.0) > arguments.tolerance]
        if off:
            print(f"estimate off by more than {arguments.tolerance:.0%}: {', '.join(item['name'] for item in off)}",
                  file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
