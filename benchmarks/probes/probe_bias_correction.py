"""Probe (RESULTS.md section 2): int8 weights with empirical bias correction, against plain rounding.

    python benchmarks/probes/probe_bias_correction.py [RUN]

Default run: runs/ham10000/run. Rounds every Conv2D, DepthwiseConv2D and Dense kernel of the float model to
its int8 grid (per output channel, symmetric, round to nearest: what the TFLite converter does), one layer
at a time in graph order, and after each layer shifts the offset that follows it (the BatchNorm beta, or the
Dense bias) by the mean per-channel change of that offset's output on 300 stratified training images: the
empirical bias correction of Nagel et al. 2019 ("Data-free quantization", section 4.2) and Finkelstein et
al. 2019. The rounded kernels keep their largest magnitude, so the converter's per-channel scales, and
hence its int8 weights, are exactly these (BatchNorm folding scales whole channels and commutes with them).

Prints top-1 agreement with the float model on the test split for the float model with rounded weights
(corrected) and for full-integer uint8 TFLite models converted from the plain and the corrected model
(post-training quantization, the same 300 images as representative data). About 7 minutes on 2 cores.
"""
import sys

import numpy as np
import tf_keras as keras

from dermtool.data.preprocess import normalize
from dermtool.export import calibration_data
from dermtool.export.calibration_data import load_split, representative_batches, stratified_sample
from dermtool.export.convert import convert
from dermtool.run import RunFolder
from dermtool.runtime import TFLiteModel
from probe_common import ROUNDED_KERNEL_AXES, balanced_accuracy, round_kernel_to_int8

run = RunFolder(sys.argv[1] if len(sys.argv) > 1 else "runs/ham10000/run")
spec = run.input_spec
records = calibration_data.split_records(run, calibration_data.resolve_data_dir(run, None))
test = load_split(records["test"], "test", spec, progress=False)
train_records = records["train"]
chosen = stratified_sample([label for _, _, label in train_records], 300, 0)
calibration_raw = load_split([train_records[i] for i in chosen], "train", spec, progress=False).images
calibration = normalize(calibration_raw, spec).astype(np.float32)
float_top1 = run.predict_logits(test.images).argmax(1)


def report(name, predicted):
    print(f"{name:<52} agreement {np.mean(predicted == float_top1):.4f} "
          f"({int(np.sum(predicted != float_top1))} differ), "
          f"balanced accuracy {balanced_accuracy(test.labels, predicted):.4f}", flush=True)


def offset_layer(layer):
    """The BatchNorm that follows ``layer`` (its beta absorbs the shift), else the layer itself (its bias)."""
    consumers = [node.outbound_layer for node in layer._outbound_nodes]
    if len(consumers) == 1 and type(consumers[0]).__name__ == "BatchNormalization":
        return consumers[0]
    if not layer.use_bias:
        raise SystemExit(f"{layer.name}: no bias and no BatchNorm after it to correct")
    return layer


def channel_means(model, layer_names):
    """Per-channel means of the named layers' outputs over all calibration images and positions."""
    outputs = keras.Model(model.inputs, [model.get_layer(name).output for name in layer_names])
    sums = [0.0] * len(layer_names)
    counts = [0] * len(layer_names)
    for start in range(0, len(calibration), 25):
        batch_outputs = outputs(calibration[start:start + 25], training=False)
        if len(layer_names) == 1:
            batch_outputs = [batch_outputs]
        for position, output in enumerate(batch_outputs):
            values = np.asarray(output, dtype=np.float64).reshape(-1, output.shape[-1])
            sums[position] = sums[position] + values.sum(0)
            counts[position] += len(values)
    return {name: total / count for name, total, count in zip(layer_names, sums, counts)}


reference = run.load_model()
corrected = run.load_model()
rounded_layers = [layer for layer in corrected.layers if type(layer).__name__ in ROUNDED_KERNEL_AXES]
offsets = [offset_layer(layer) for layer in rounded_layers]
reference_means = channel_means(reference, [offset.name for offset in offsets])  # the float model: one pass
for layer, offset in zip(rounded_layers, offsets):
    round_kernel_to_int8(layer)
    shift = channel_means(corrected, [offset.name])[offset.name] - reference_means[offset.name]
    weights = offset.get_weights()
    weights[1] = weights[1] - shift.astype(weights[1].dtype)  # BatchNorm [gamma, beta, ...]; conv/Dense [kernel, bias]
    offset.set_weights(weights)

run._cached_logits_model = run.logits_model(corrected)
run._cached_graph_logits = None
report("float, weights rounded to int8 + bias correction", run.predict_logits(test.images).argmax(1))
for name, model in (("plain", reference), ("bias-corrected", corrected)):
    path = f"/tmp/probe_bias_correction_{name}.tflite"
    with open(path, "wb") as handle:
        handle.write(convert(model, "int8", "uint8", representative_batches(calibration_raw, spec)))
    report(f"int8 PTQ TFLite, {name}", TFLiteModel(path, input_spec=spec, labels=run.labels).predict(test.images).argmax(1))
