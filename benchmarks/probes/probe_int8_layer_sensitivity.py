"""Probe (RESULTS.md section 2): which tensors' 8-bit activations cost the bias-corrected int8 model its agreement.

    python benchmarks/probes/probe_int8_layer_sensitivity.py [RUN] [--top 1,3,8,16 | --groups]

Default run: runs/ham10000/run. Bias-corrects the float model as ``dermtool export --int8`` does (300
stratified training images), then runs TensorFlow Lite's own ``QuantizationDebugger`` (the tool the converter
ships for this) on 64 of those images: per quantized tensor, the root-mean-square quantization error divided
by the tensor's scale (1/sqrt(12) = 0.289 for pure rounding noise; more means clipping or a skewed range)
and the mean error. It prints the worst tensors, then converts the same model with the ``k`` worst tensors
left in float (the debugger's ``denylisted_nodes``; everything else int8, float input and output) for each
``k`` of ``--top`` (or, with ``--groups``, each kind of layer in turn) and prints top-1 agreement with the
float Keras model on the test split. Calibration uses the package's ``representative_batches``, as export
does. This answers whether a few tensors carry the flips (a range worth fixing) or the noise is spread over
the whole network.
About 10 minutes on 2 cores.
"""
import argparse
import csv
import io
import time

import numpy as np

from dermtool.data.preprocess import normalize
from dermtool.export import calibration_data
from dermtool.export.calibration_data import load_representative_images, load_split, representative_batches
from dermtool.export.convert import _converter
from dermtool.optimize.bias_correction import correct_int8_rounding_bias
from dermtool.run import RunFolder
from dermtool.runtime import TFLiteModel
from probe_common import balanced_accuracy

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("run", nargs="?", default="runs/ham10000/run")
parser.add_argument("--top", default="1,3,8,16", help="comma-separated numbers of worst tensors to keep in float")
parser.add_argument("--groups", action="store_true",
                    help="instead of --top: keep each group of tensors in float in turn (expansion convolutions, "
                         "depthwise convolutions, projections and residual adds, pooling and classifier)")
arguments = parser.parse_args()

import tensorflow as tf  # noqa: E402 (after argparse: --help stays fast)

run = RunFolder(arguments.run)
spec = run.input_spec
records = calibration_data.split_records(run, calibration_data.resolve_data_dir(run, None))
test = load_split(records["test"], "test", spec, progress=False)
calibration_raw = load_representative_images(records["train"], 300, spec, progress=False)
calibration = normalize(calibration_raw, spec).astype(np.float32)
float_top1 = run.predict_logits(test.images).argmax(1)
corrected, _ = correct_int8_rounding_bias(run.load_model(), calibration)


def debug_images():
    for image in calibration[::5][:64]:
        yield [image[None]]


def report(name, content):
    path = f"/tmp/probe_layer_sensitivity_{name.replace(' ', '_')}.tflite"
    with open(path, "wb") as handle:
        handle.write(content)
    predicted = TFLiteModel(path, input_spec=spec, labels=run.labels).predict(test.images).argmax(1)
    print(f"{name:<44} agreement {np.mean(predicted == float_top1):.4f} "
          f"({int(np.sum(predicted != float_top1))} differ), balanced accuracy "
          f"{balanced_accuracy(test.labels, predicted):.4f}", flush=True)


converter = _converter(corrected)
converter.optimizations = [tf.lite.Optimize.DEFAULT]
calibration_batches = representative_batches(calibration_raw, spec)
converter.representative_dataset = lambda: ([batch] for batch in calibration_batches())
started = time.perf_counter()
debugger = tf.lite.experimental.QuantizationDebugger(converter=converter, debug_dataset=debug_images)
debugger.run()
dump = io.StringIO()
debugger.layer_statistics_dump(dump)
rows = list(csv.DictReader(io.StringIO(dump.getvalue())))
for row in rows:
    row["rmse/scale"] = float(np.sqrt(float(row["mean_squared_error"])) / float(row["scale"]))
rows.sort(key=lambda row: -row["rmse/scale"])
print(f"debugger: {len(rows)} quantized tensors, {time.perf_counter() - started:.0f} s", flush=True)
print(f"{'tensor':<60} {'op':<18} {'scale':>9} {'rmse/scale':>10} {'mean err/scale':>14}")
for row in rows[:20]:
    print(f"{row['tensor_name'][:60]:<60} {row['op_name']:<18} {float(row['scale']):>9.4f} "
          f"{row['rmse/scale']:>10.3f} {float(row['mean_error']) / float(row['scale']):>14.3f}")
ratios = np.array([row["rmse/scale"] for row in rows])
print(f"rmse/scale over all tensors: median {np.median(ratios):.3f}, 90th percentile {np.percentile(ratios, 90):.3f}")

GROUPS = {  # substrings of the fused tensors' names (a TFLite tensor name joins the names of the fused ops)
    "expansion convolutions (stem, expand, head)": ("stem_activation", "expand_activation", "head_activation"),
    "depthwise convolutions": ("dwconv_activation",),
    "projections and residual adds": ("project_bn", "_add/"),
    "pooling, logits and softmax": ("pooled", "logits", "Identity"),
}
report("int8, all tensors quantized", debugger.get_nondebug_quantized_model())
if arguments.groups:
    selections = [(name, [row["tensor_name"] for row in rows if any(part in row["tensor_name"] for part in parts)])
                  for name, parts in GROUPS.items()]
else:
    selections = [(f"{count} worst tensors", [row["tensor_name"] for row in rows[:count]])
                  for count in [int(value) for value in arguments.top.split(",")]]
for name, names in selections:
    options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=names)
    selective = tf.lite.experimental.QuantizationDebugger(converter=converter, debug_dataset=debug_images,
                                                          debug_options=options)
    report(f"int8, {name} in float ({len(names)} tensors)", selective.get_nondebug_quantized_model())
