"""Probe (RESULTS.md section 2): the pruned + QAT int8 collapse is in the TFLite conversion, and
widen_zero_weight_ranges mends it. Takes the stripped 50 %-pruned Keras model that probe_pruned_qat.py saved
(runs/ham10000/pruned50_keras.keras), applies prune-preserving QAT (activation ranges calibrated on 300
stratified training images, no fit) and measures, on all validation images, the Keras QAT model and its
uint8 TFLite conversion with and without widening the all-zero channels' weight ranges. About 3 minutes on 2 cores.

    python benchmarks/probes/probe_pruned_qat_conversion.py
"""
import numpy as np
import tf_keras as keras
from ai_edge_litert.interpreter import Interpreter

from dermtool.data.pipeline import make_dataset
from dermtool.data.preprocess import normalize
from dermtool.export import convert
from dermtool.export.calibration_data import (load_split, representative_batches, resolve_data_dir, split_records,
                                              stratified_sample)
from dermtool.export.tflite import finetune_augment
from dermtool.optimize.qat import (calibrate_activation_ranges, pin_input_range, quantize_for_training,
                                   widen_zero_weight_ranges)
from dermtool.run import RunFolder

run = RunFolder("runs/ham10000/run"); spec = run.input_spec
records = split_records(run, resolve_data_dir(run, None))
val = load_split(records["val"], "val", spec, progress=False)
chosen = stratified_sample([label for _, _, label in records["train"]], 300, 0)
calibration = load_split([records["train"][i] for i in chosen], "train", spec, progress=False)
dataset = make_dataset(calibration.images, calibration.labels, 7, 32, True, finetune_augment(), spec, seed=0,
                       class_balanced_sampling=True)
reference = convert.fold_temperature(run.load_model(), run.temperature, copy=False)
normalised = normalize(val.images, spec)
float_top1 = reference.predict(normalised, batch_size=64, verbose=0).argmax(1)


def report(name, top1):
    balanced = np.mean([np.mean(top1[val.labels == c] == c) for c in range(len(run.labels))])
    print(f"{name}: agreement with float {(top1 == float_top1).mean():.3f}, val balanced accuracy {balanced:.3f}",
          flush=True)


def tflite_top1(content):
    interpreter = Interpreter(model_content=content, num_threads=2)
    interpreter.allocate_tensors()
    input_index = interpreter.get_input_details()[0]["index"]
    output_index = interpreter.get_output_details()[0]["index"]
    top1 = []
    for image in val.images:  # uint8 input: raw pixels
        interpreter.set_tensor(input_index, image[None])
        interpreter.invoke()
        top1.append(int(np.argmax(interpreter.get_tensor(output_index)[0])))
    return np.asarray(top1)


pruned = keras.models.load_model("runs/ham10000/pruned50_keras.keras", compile=False)
report("pruned float (Keras)", pruned.predict(normalised, batch_size=64, verbose=0).argmax(1))
qat_model = quantize_for_training(pruned, prune_preserve=True)
calibrate_activation_ranges(qat_model, dataset)
pin_input_range(qat_model, spec)
report("prune-preserving QAT (Keras, fake-quant)", qat_model.predict(normalised, batch_size=64, verbose=0).argmax(1))
batches = representative_batches(calibration.images, spec)
report("its uint8 TFLite model, weight ranges as trained", tflite_top1(convert.convert(qat_model, "int8", "uint8", batches)))
print(f"all-zero kernel channels widened: {widen_zero_weight_ranges(qat_model)}", flush=True)
report("its uint8 TFLite model, zero-width ranges widened", tflite_top1(convert.convert(qat_model, "int8", "uint8", batches)))
