#!/usr/bin/env bash
# Wheel check: dermtool installed as a package, not from the source tree, must run.
#
# Builds the wheel (pip, with the build backend of pyproject.toml), installs it into a new
# throwaway virtual environment of $PYTHON the documented way (README, "Install as a package"):
#   pip install -c constraints.txt 'dermtool-*.whl[serve]'
# checks that `pip check` passes there and that neither tflite-support nor MediaPipe came with it, then, from a
# folder outside the repository: the CLI's help, the runtime modules' imports, and the whole path on real
# images: train configs/smoke.toml on 12 HAM10000 images per class, export a float .tflite and an int8 one
# (TFLite metadata written without tflite-support), predict one image with each. About 3 GB, a few minutes.
#
# Usage: .ci/wheel_check.sh   (after `make install`; PYTHON defaults to .venv's Python, e.g.
#        PYTHON=$(.ci/python 3.13) .ci/wheel_check.sh; DATA defaults to ../shared/data/ham10000)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
DATA=$(cd "${DATA:-${DERMTOOL_HAM10000:-../shared/data/ham10000}}" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/dermtool-wheel.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

step() { echo "== wheel check: $*"; }

test -x .venv/bin/pip || { echo "no .venv: run make install first" >&2; exit 2; }
PYTHON=${PYTHON:-$(.venv/bin/python -c 'import sys; print(sys._base_executable)')}

step "build the wheel"
.venv/bin/pip wheel --quiet --no-deps --wheel-dir "$WORK/dist" .
rm -rf build  # setuptools' scratch copy of the package (git-ignored); stale copies only confuse grep
WHEEL=$(ls "$WORK"/dist/dermtool-*.whl)
echo "$WHEEL"

step "install it into a new venv of $("$PYTHON" --version) (constraints.txt, one step), then pip check"
"$PYTHON" -m venv "$WORK/venv"
"$WORK/venv/bin/pip" install --quiet --upgrade pip
"$WORK/venv/bin/pip" install --quiet -c constraints.txt "$WHEEL[serve]"
"$WORK/venv/bin/pip" check

cd "$WORK"  # nothing of the source tree on sys.path from here on
export PATH="$WORK/venv/bin:$PATH"
export TF_CPP_MIN_LOG_LEVEL=2

step "the installed package and its CLI"
python - <<'EOF'
import sys
from pathlib import Path

import dermtool
import dermtool.bench.runner
import dermtool.export.metadata
import dermtool.runtime
import dermtool.serve.app

where = Path(dermtool.__file__).resolve()
assert Path(sys.prefix).resolve() in where.parents, f"dermtool imported from {where}, not from the wheel's venv"
assert (where.parent / "serve" / "static").is_dir(), "the web app's static files are missing from the wheel"
import importlib.util
for name in ("tensorflow_lite_support", "tflite_support", "mediapipe"):  # the test-only --no-deps packages
    assert importlib.util.find_spec(name) is None, f"{name} came with the runtime install"
print(f"dermtool {dermtool.__version__} from {where.parent}, Python {sys.version.split()[0]}")
EOF
dermtool --version
dermtool --help > /dev/null
dermtool predict --help > /dev/null

step "train (configs/smoke.toml, 12 images per class), export float and int8, predict one image with each"
python - "$DATA" subset <<'EOF'
import csv
import sys
from collections import defaultdict
from pathlib import Path

data, destination = Path(sys.argv[1]), Path(sys.argv[2])
with open(data / "HAM10000_metadata.csv", newline="") as handle:
    rows = sorted(csv.DictReader(handle), key=lambda row: row["image_id"])
by_class = defaultdict(list)
for row in rows:
    if len(by_class[row["dx"]]) < 12:
        by_class[row["dx"]].append(row)
(destination / "images").mkdir(parents=True)
with open(destination / "labels.csv", "w", newline="") as handle:
    writer = csv.writer(handle)
    writer.writerow(["image_id", "dx", "lesion_id"])
    for label in sorted(by_class):
        for row in by_class[label]:
            writer.writerow([row["image_id"], row["dx"], row["lesion_id"]])
            (destination / "images" / f"{row['image_id']}.jpg").symlink_to(data / "images" / f"{row['image_id']}.jpg")
EOF
dermtool train --config "$REPO/configs/smoke.toml" --data subset --out run --quiet
test -f run/model.keras
dermtool export run --out model.tflite --float --no-gate --quiet
dermtool export run --out model_int8.tflite --int8 --no-gate --quiet
python - <<'EOF'
from dermtool.export.metadata import read_metadata

for path, mode in (("model.tflite", "float"), ("model_int8.tflite", "int8")):
    metadata = read_metadata(path)
    assert metadata["mode"] == mode and len(metadata["labels"]) == 7, metadata
    assert b"TFLITE_METADATA" in open(path, "rb").read(), f"{path}: no TFLite metadata"
EOF
IMAGE=$(ls subset/images/*.jpg | head -n 1)
for model in model.tflite model_int8.tflite; do
  dermtool predict "$IMAGE" --model "$model" | tee predict.txt
  grep -q "$(basename "$IMAGE" .jpg)" predict.txt
done

step "passed"
