"""Probe (RESULTS.md section 2): where the int8 model's disagreements with the float model come from.

    python benchmarks/probes/probe_int8_agreement_sources.py [RUN] [INT8_TFLITE]

Defaults: runs/ham10000/run and runs/ham10000/models/int8_ptq_uncorrected.tflite (int8 PTQ without bias
correction, as published). On the test split, top-1 agreement
with the float Keras model of:
  1. the float model with only its weights rounded to int8 (per output channel, symmetric, as the
     TFLite converter quantizes conv kernels; activations stay float32);
  2. the full-integer int8 TFLite model given (int8 weights and int8 activations);
  3. a 16x8 TFLite model of the same float model (int8 weights, int16 activations), calibrated on the
     same 300 stratified training images the int8 export uses;
plus the share of test images whose float top-2 probability margin is under 0.01 / 0.02 / 0.05.
If (1) and (3) stay near 0.99 while (2) does not, the disagreements come from 8-bit activations.
About 10 minutes on 2 CPU cores (the 16x8 model runs on LiteRT's reference kernels).
"""
import sys
import time

import numpy as np
import tensorflow as tf

from ai_edge_litert.interpreter import Interpreter

from dermtool.export import calibration_data
from dermtool.export.calibration_data import load_representative_images, load_split, representative_batches
from dermtool.export.convert import _converter
from dermtool.metrics import softmax
from dermtool.run import RunFolder
from dermtool.optimize.bias_correction import round_kernel_to_int8, rounded_layers
from dermtool.runtime import TFLiteModel
from probe_common import balanced_accuracy

run_path = sys.argv[1] if len(sys.argv) > 1 else "runs/ham10000/run"
int8_path = sys.argv[2] if len(sys.argv) > 2 else "runs/ham10000/models/int8_ptq_uncorrected.tflite"
run = RunFolder(run_path)
spec = run.input_spec
folder = calibration_data.resolve_data_dir(run, None)
records = calibration_data.split_records(run, folder)
test = load_split(records["test"], "test", spec, progress=False)
print(f"test images: {len(test.labels)}", flush=True)

float_logits = run.predict_logits(test.images)
float_top1 = float_logits.argmax(1)
probabilities = softmax(float_logits, run.temperature)
top2 = np.sort(probabilities, 1)
margin = top2[:, -1] - top2[:, -2]
for limit in (0.01, 0.02, 0.05):
    print(f"float top-2 margin < {limit}: {np.mean(margin < limit):.4f} of test images", flush=True)
print(f"float balanced accuracy {balanced_accuracy(test.labels, float_top1):.4f}")


def report(name, predicted):
    agreement = np.mean(predicted == float_top1)
    print(f"{name:<44} agreement {agreement:.4f} ({int(np.sum(predicted != float_top1))} differ), "
          f"balanced accuracy {balanced_accuracy(test.labels, predicted):.4f}", flush=True)


# 1. weights rounded to int8, activations float
model = run.load_model()
for layer in rounded_layers(model):
    round_kernel_to_int8(layer)
run._cached_logits_model = run.logits_model(model)
run._cached_graph_logits = None
report("float, weights rounded to int8", run.predict_logits(test.images).argmax(1))

# 2. the full-integer int8 model, and the float logits rounded to its logits' int8 grid (then its uint8
#    softmax grid): what the rounding of the last two tensors alone costs
interpreter = Interpreter(model_path=int8_path)
interpreter.allocate_tensors()
tensors = interpreter.get_tensor_details()
softmax_op = [op for op in interpreter._get_ops_details() if op["op_name"] == "SOFTMAX"][0]
logit_scale, logit_zero = tensors[softmax_op["inputs"][0]]["quantization"]
print(f"int8 logits: scale {logit_scale:.4f}, zero point {logit_zero}, range "
      f"[{logit_scale * (-128 - logit_zero):.2f}, {logit_scale * (127 - logit_zero):.2f}]", flush=True)
scaled = float_logits / run.temperature
rounded = (np.clip(np.round(scaled / logit_scale) + logit_zero, -128, 127) - logit_zero) * logit_scale
report("float, logits rounded to the int8 grid", rounded.argmax(1))
output = np.clip(np.round(softmax(rounded) * 256), 0, 255)
report("  ... and probabilities to the uint8 grid", output.argmax(1))
report(f"int8 TFLite ({int8_path.split('/')[-1]})", TFLiteModel(int8_path).predict(test.images).argmax(1))

# 3. 16x8: int8 weights, int16 activations
calibration = load_representative_images(records["train"], 300, spec, progress=False)
converter = _converter(run.load_model())
converter.optimizations = [tf.lite.Optimize.DEFAULT]
converter.representative_dataset = lambda: ([batch] for batch in representative_batches(calibration, spec)())
converter.target_spec.supported_ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
path_16x8 = "/tmp/probe_16x8.tflite"
with open(path_16x8, "wb") as handle:
    handle.write(converter.convert())
started = time.time()
report("16x8 TFLite (int16 activations)", TFLiteModel(path_16x8, input_spec=spec, labels=run.labels).predict(test.images).argmax(1))
print(f"16x8 inference: {time.time() - started:.0f} s for {len(test.labels)} images")
