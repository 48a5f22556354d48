"""How far can a pruned int8 model shrink under compression? Sizes against the entropy bound.

    python benchmarks/bench_compression.py runs/ham10000/models/int8_qat.tflite \
        runs/ham10000/models/pruned50_qat_int8.tflite --json benchmarks/results/compression.json

For each ``.tflite`` file: raw, gzip (level 9, what ``dermtool bench`` reports) and xz sizes, the share of
zeros among the int8 weight tensors, and the order-0 entropy bound of those tensors: the sum over tensors
of size x the entropy of its byte histogram. No coder that codes each weight on its own (Huffman, gzip's
literals, arithmetic coding with a per-tensor model) can beat that bound; gzip's matching of repeated
strings helps little on quantised weights. Ratios are given against the first file (the unpruned model);
``entropy_bound_ratio`` compares the weights' bounds only, a floor for the whole file's ratio (the rest
of the file, the same in both models, can only pull the ratio towards 1).

Why it matters: the issue's target, "pruned 50 % + int8 gzip at most 0.6x the unpruned int8 gzip", is a
claim about this bound. Half of an int8 tensor's bytes set to zero saves at most about half of the
non-zero bits minus the bit that says where the zeros are.
"""

from __future__ import annotations

import argparse
import datetime as _datetime
import gzip
import json
import lzma
import platform
from pathlib import Path

import numpy as np

#: int8 tensors smaller than this (scales, zero points, tiny biases) are not counted as weights.
MIN_WEIGHT_TENSOR = 1000


def byte_entropy_bits(values: np.ndarray) -> float:
    """Order-0 entropy of the bytes of ``values`` in bits per byte."""
    counts = np.bincount(values.view(np.uint8).ravel(), minlength=256)
    probabilities = counts[counts > 0] / counts.sum()
    return float(-(probabilities * np.log2(probabilities)).sum())


def int8_weight_tensors(model_path: Path) -> list[np.ndarray]:
    """The int8 constant tensors (weights) of a TFLite model, read with LiteRT."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(model_path))
    tensors = []
    for detail in interpreter.get_tensor_details():
        try:
            values = interpreter.get_tensor(detail["index"])
        except ValueError:  # activations: no data before allocation
            continue
        if values.dtype == np.int8 and values.size >= MIN_WEIGHT_TENSOR:
            tensors.append(values)
    return tensors


def measure(model_path: Path) -> dict:
    content = model_path.read_bytes()
    tensors = int8_weight_tensors(model_path)
    weights = sum(tensor.size for tensor in tensors)
    zeros = sum(int(np.sum(tensor == 0)) for tensor in tensors)
    bound_bits = sum(byte_entropy_bits(tensor) * tensor.size for tensor in tensors)
    return {
        "model": str(model_path),
        "bytes": len(content),
        "gzip_bytes": len(gzip.compress(content, compresslevel=9)),
        "xz_bytes": len(lzma.compress(content, preset=9)),
        "int8_weights": int(weights),  # one byte each
        "int8_weight_zero_fraction": zeros / weights if weights else 0.0,
        "int8_weight_entropy_bound_bytes": int(round(bound_bits / 8)),
        "other_bytes": len(content) - int(weights),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     epilog="The first model is the reference (the unpruned int8 model).")
    parser.add_argument("models", nargs="+", type=Path, help=".tflite files; the first is the reference")
    parser.add_argument("--json", type=Path, help="also write the results here")
    arguments = parser.parse_args(argv)
    for path in arguments.models:
        if not path.is_file():
            parser.error(f"{path}: no such file")
    rows = [measure(path) for path in arguments.models]
    reference = rows[0]
    for row in rows:
        row["gzip_ratio"] = row["gzip_bytes"] / reference["gzip_bytes"]
        row["xz_ratio"] = row["xz_bytes"] / reference["xz_bytes"]
        # A floor for any per-weight coder's ratio: the weights at their bound. The rest of the file (biases,
        # scales, graph, metadata) is the same in both models; counting it in would only raise the ratio.
        row["entropy_bound_ratio"] = (row["int8_weight_entropy_bound_bytes"]
                                      / reference["int8_weight_entropy_bound_bytes"])
    print(f"{'model':42s} {'zeros':>6s} {'raw KB':>8s} {'gzip KB':>8s} {'gzip x':>7s} {'xz x':>6s} {'bound x':>8s}")
    for row in rows:
        print(f"{Path(row['model']).name:42s} {row['int8_weight_zero_fraction']:6.1%} {row['bytes'] / 1e3:8.0f} "
              f"{row['gzip_bytes'] / 1e3:8.0f} {row['gzip_ratio']:7.3f} {row['xz_ratio']:6.3f} {row['entropy_bound_ratio']:8.3f}")
    if arguments.json:
        result = {"date": _datetime.date.today().isoformat(), "machine": platform.platform(), "models": rows}
        arguments.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
