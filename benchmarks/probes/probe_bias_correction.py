"""Probe (RESULTS.md section 2): int8 weights with empirical bias correction, against plain rounding.

    python benchmarks/probes/probe_bias_correction.py [RUN]

Default run: runs/ham10000/run. Applies ``dermtool.optimize.bias_correction.correct_int8_rounding_bias`` (what
``dermtool export --int8`` now does by default) to the float model with 300 stratified training images: every
Conv2D, DepthwiseConv2D and Dense kernel rounded to its int8 grid (per output channel, symmetric, round to
nearest: what the TFLite converter does), and the mean per-channel shift this causes taken out of the offset
that follows (the BatchNorm beta, or the Dense bias), layer by layer.

Prints top-1 agreement with the float model on the test split for the float model with rounded weights
(corrected), and for full-integer uint8 TFLite models converted from the plain and the corrected model
(post-training quantization, the same 300 images as representative data), and the process's peak
resident memory before and after the correction. About 4 minutes on 2 cores.
"""
import resource
import sys
import time

import numpy as np

from dermtool.data.preprocess import normalize
from dermtool.export import calibration_data
from dermtool.export.calibration_data import load_representative_images, load_split, representative_batches
from dermtool.export.convert import convert
from dermtool.optimize.bias_correction import correct_int8_rounding_bias
from dermtool.run import RunFolder
from dermtool.runtime import TFLiteModel
from probe_common import balanced_accuracy

run = RunFolder(sys.argv[1] if len(sys.argv) > 1 else "runs/ham10000/run")
spec = run.input_spec
records = calibration_data.split_records(run, calibration_data.resolve_data_dir(run, None))
test = load_split(records["test"], "test", spec, progress=False)
calibration_raw = load_representative_images(records["train"], 300, spec, progress=False)
float_top1 = run.predict_logits(test.images).argmax(1)


def report(name, predicted):
    print(f"{name:<52} agreement {np.mean(predicted == float_top1):.4f} "
          f"({int(np.sum(predicted != float_top1))} differ), "
          f"balanced accuracy {balanced_accuracy(test.labels, predicted):.4f}", flush=True)


def peak_resident_gb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # Linux: kilobytes


reference = run.load_model()
calibration = normalize(calibration_raw, spec).astype(np.float32)
started, peak_before = time.perf_counter(), peak_resident_gb()
corrected, correction = correct_int8_rounding_bias(reference, calibration)
print(f"{correction.summary()} ({time.perf_counter() - started:.0f} s; peak resident memory "
      f"{peak_before:.2f} GB before, {peak_resident_gb():.2f} GB after)", flush=True)

run._cached_logits_model = run.logits_model(corrected)
run._cached_graph_logits = None
report("float, weights rounded to int8 + bias correction", run.predict_logits(test.images).argmax(1))
for name, model in (("plain", reference), ("bias-corrected", corrected)):
    path = f"/tmp/probe_bias_correction_{name}.tflite"
    with open(path, "wb") as handle:
        handle.write(convert(model, "int8", "uint8", representative_batches(calibration_raw, spec)))
    report(f"int8 PTQ TFLite, {name}", TFLiteModel(path, input_spec=spec, labels=run.labels).predict(test.images).argmax(1))
