"""Probe (RESULTS.md section 2): do clipped activation ranges cut the 8-bit flips of the bias-corrected int8 model?

    python benchmarks/probes/probe_int8_activation_clipping.py [RUN] [--bins 2048] [--smallest-factor 0.05]

Default run: runs/ham10000/run. The converter sets each activation tensor's int8 range to the smallest and
largest value it saw on the calibration images, so one outlier widens the step of every value in that
tensor. Clipping the range where the expected squared error (rounding inside the range + clipping outside)
is smallest is the usual remedy ("MSE calibration"). This probe:

1. bias-corrects the float model as ``dermtool export --int8`` does (300 stratified training images, the
   same images as calibration, through the package's ``representative_batches``, range anchor included);
2. calibrates it with the TFLite converter only (``_experimental_calibrate_only``: a float model whose
   activation tensors carry the calibrated min and max);
3. runs that model over the calibration images, keeps a histogram of every calibrated activation tensor,
   and picks for each the range [lower, upper] with the least expected squared error (each end shrunk by one
   of 96 factors from ``--smallest-factor`` to 1);
4. quantizes the calibrated model twice with the call the converter itself makes after calibrating
   (``mlir_quantize``, uint8 input and output, per-channel weights): ranges as calibrated (what export does)
   and clipped. The classifier's last tensors (pooling, logits, softmax) and the input keep their ranges:
   clipping logits would make ties.

Prints, for the validation and the test split, top-1 agreement with the float Keras model and balanced
accuracy of each int8 model, and the tensors whose range shrank most. About 5 minutes on 2 cores.
"""
import argparse
import time

import numpy as np

from dermtool.data.preprocess import normalize
from dermtool.export import calibration_data
from dermtool.export.calibration_data import load_representative_images, load_split, representative_batches
from dermtool.export.convert import _converter, configure_full_integer
from dermtool.optimize.bias_correction import correct_int8_rounding_bias
from dermtool.run import RunFolder
from dermtool.runtime import TFLiteModel
from probe_common import balanced_accuracy

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("run", nargs="?", default="runs/ham10000/run")
parser.add_argument("--bins", type=int, default=2048, help="histogram bins per activation tensor")
parser.add_argument("--smallest-factor", type=float, default=0.05,
                    help="the most a range end may shrink: factors from this to 1 in 96 steps")
arguments = parser.parse_args()

import tensorflow as tf  # noqa: E402 (after argparse: --help stays fast)
from ai_edge_litert.interpreter import Interpreter  # noqa: E402
from tensorflow.lite.python import convert as lite_convert  # noqa: E402
from tensorflow.lite.tools import flatbuffer_utils  # noqa: E402

KEPT_AS_CALIBRATED = ("pooled", "logits", "Identity")  # the classifier's tensors (names as in the layer probe)
SHRINK_FACTORS = np.linspace(arguments.smallest_factor, 1.00, 96)

run = RunFolder(arguments.run)
spec = run.input_spec
records = calibration_data.split_records(run, calibration_data.resolve_data_dir(run, None))
splits = {name: load_split(records[name], name, spec, progress=False) for name in ("val", "test")}
float_top1 = {name: run.predict_logits(split.images).argmax(1) for name, split in splits.items()}
calibration_raw = load_representative_images(records["train"], 300, spec, progress=False)
corrected, _ = correct_int8_rounding_bias(run.load_model(), normalize(calibration_raw, spec).astype(np.float32))
calibration_batches = representative_batches(calibration_raw, spec)

converter = _converter(corrected)
configure_full_integer(converter, "uint8", calibration_batches)  # as export's convert() does
converter._experimental_calibrate_only = True
started = time.perf_counter()
calibrated = bytes(converter.convert())
structure = flatbuffer_utils.convert_bytearray_to_object(bytearray(calibrated))
graph = structure.subgraphs[0]
input_index = graph.inputs[0]


def tensor_name(index):
    name = graph.tensors[index].name
    return name.decode() if isinstance(name, bytes) else name


ranged = [index for index, tensor in enumerate(graph.tensors)
          if index != input_index and tensor.quantization is not None and tensor.quantization.min is not None
          and len(tensor.quantization.min) == 1
          and not any(part in tensor_name(index) for part in KEPT_AS_CALIBRATED)]
calibrated_range = {index: (min(float(graph.tensors[index].quantization.min[0]), 0.0),
                            max(float(graph.tensors[index].quantization.max[0]), 0.0)) for index in ranged}
print(f"calibrated in {time.perf_counter() - started:.0f} s; {len(ranged)} activation tensors to clip", flush=True)

# Histograms of every calibrated tensor over the calibration images (the ranges were set on these)
interpreter = Interpreter(model_content=calibrated, experimental_preserve_all_tensors=True)
interpreter.allocate_tensors()
histograms = {index: np.zeros(arguments.bins) for index in ranged}
for batch in calibration_batches():
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], batch)
    interpreter.invoke()
    for index in ranged:
        lower, upper = calibrated_range[index]
        histograms[index] += np.histogram(np.clip(interpreter.get_tensor(index), lower, upper), bins=arguments.bins,
                                          range=(lower, upper))[0]


def best_range(index):
    """The (lower, upper) of least expected squared error: rounding (step^2 / 12) inside, distance outside."""
    lower, upper = calibrated_range[index]
    counts = histograms[index]
    edges = np.linspace(lower, upper, arguments.bins + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    lowers = lower * SHRINK_FACTORS if lower < 0 else np.zeros(1)
    uppers = upper * SHRINK_FACTORS
    low, high = lowers[:, None, None], uppers[None, :, None]
    step = (high - low) / 255.0
    error = np.where(centres < low, (low - centres) ** 2,
                     np.where(centres > high, (centres - high) ** 2, step ** 2 / 12.0))
    total = (error * counts).sum(-1)
    best = np.unravel_index(np.argmin(total), total.shape)
    full = total[-1 if lower < 0 else 0, -1]
    return float(lowers[best[0]]), float(uppers[best[1]]), float(total[best] / full)


clipped = {index: best_range(index) for index in ranged}
print(f"ranges chosen ({time.perf_counter() - started:.0f} s in all); most shrunk:")
for index in sorted(ranged, key=lambda index: (clipped[index][1] - clipped[index][0])
                    / (calibrated_range[index][1] - calibrated_range[index][0]))[:10]:
    lower, upper = calibrated_range[index]
    print(f"  {tensor_name(index)[:70]:<70} [{lower:.2f}, {upper:.2f}] -> [{clipped[index][0]:.2f}, "
          f"{clipped[index][1]:.2f}], expected squared error x{clipped[index][2]:.2f}")
ratios = np.array([value[2] for value in clipped.values()])
print(f"expected squared error, clipped / calibrated: median {np.median(ratios):.2f}, smallest {ratios.min():.2f}")


def quantized(ranges):
    for index, (lower, upper, *_) in ranges.items():
        graph.tensors[index].quantization.min = [lower]
        graph.tensors[index].quantization.max = [upper]
    # the call TFLiteConverter.convert() makes after calibrating (lite.py, _quantize)
    return lite_convert.mlir_quantize(bytes(flatbuffer_utils.convert_object_to_bytearray(structure)),
                                      input_data_type=tf.uint8, output_data_type=tf.uint8)


for name, ranges in (("int8, ranges as calibrated (export)", calibrated_range), ("int8, MSE-clipped ranges", clipped)):
    path = f"/tmp/probe_activation_clipping_{'clipped' if ranges is clipped else 'calibrated'}.tflite"
    with open(path, "wb") as handle:
        handle.write(quantized(ranges))
    model = TFLiteModel(path, input_spec=spec, labels=run.labels)
    for split_name, split in splits.items():
        predicted = model.predict(split.images).argmax(1)
        print(f"{name:<38} {split_name:<4} agreement {np.mean(predicted == float_top1[split_name]):.4f} "
              f"({int(np.sum(predicted != float_top1[split_name]))} differ), balanced accuracy "
              f"{balanced_accuracy(split.labels, predicted):.4f}", flush=True)
