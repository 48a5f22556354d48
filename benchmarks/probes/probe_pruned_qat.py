"""Probe (RESULTS.md section 2), full scale: where does pruned + QAT break? Prune 50 % (1 epoch, 1e-4, distilled, all training images),
save the stripped model; then measure Keras agreement with the float model on all val images: pruned float,
QAT default scheme (calibrated, no fit), PQAT (calibrated, no fit), then each after 60 fit steps at 1e-5. About 20 minutes on 2 cores.

    python benchmarks/probes/probe_pruned_qat.py
"""
import numpy as np, time
from dermtool.run import RunFolder
from dermtool.export.calibration_data import resolve_data_dir, split_records, load_split
from dermtool.data.pipeline import make_dataset
from dermtool.data.preprocess import normalize
from dermtool.export import convert
from dermtool.optimize.qat import quantize_for_training, calibrate_activation_ranges
from dermtool.optimize.prune import prune_finetune
from dermtool.optimize.common import compile_and_fit
from dermtool.export.tflite import finetune_augment
run = RunFolder("runs/ham10000/run"); spec = run.input_spec
rec = split_records(run, resolve_data_dir(run, None))
val = load_split(rec["val"], "val", spec, progress=False)
tr = load_split(rec["train"], "train", spec, progress=False)
ds = make_dataset(tr.images, tr.labels, 7, 32, True, finetune_augment(), spec, seed=0, class_balanced_sampling=True)
ref = convert.fold_temperature(run.load_model(), run.temperature, copy=False)
x = normalize(val.images, spec)
fp = ref.predict(x, batch_size=64, verbose=0).argmax(1)
def report(name, model):
    p = model.predict(x, batch_size=64, verbose=0).argmax(1)
    ba = np.mean([np.mean(p[val.labels == c] == c) for c in range(7)])
    print(f"{name}: agreement {(p == fp).mean():.3f} balanced accuracy {ba:.3f}", flush=True)
report("float", ref)
t = time.time()
pr = prune_finetune(ref, ds, None, 0.5, 1, 1e-4, False, teacher=ref)
print("prune s", time.time() - t, flush=True)
pr.save("runs/ham10000/pruned50_keras.keras")
report("pruned float", pr)
for pp in (False, True):
    q = quantize_for_training(pr, prune_preserve=pp)
    calibrate_activation_ranges(q, ds)
    report(f"QAT prune_preserve={pp} before fit", q)
    compile_and_fit(q, ds.take(60), None, 1, 1e-5, progress=False, teacher=ref)
    report(f"QAT prune_preserve={pp} after 60 steps", q)
