"""Probe (RESULTS.md section 2), small scale: prune 50 % (20 steps at 1e-4), then QAT vs prune-preserving QAT (20 steps at 1e-5), agreement
with the float model on 400 val images, in Keras. About 10 minutes on 2 cores.

    python benchmarks/probes/probe_pruned_qat_small.py
"""
from dermtool.run import RunFolder
from dermtool.export.calibration_data import resolve_data_dir, split_records, load_split
from dermtool.data.pipeline import make_dataset
from dermtool.data.preprocess import normalize
from dermtool.export import convert
from dermtool.optimize.qat import quantization_aware_finetune
from dermtool.optimize.prune import prune_finetune, sparsity_report
from dermtool.export.tflite import finetune_augment
run = RunFolder("runs/ham10000/run"); spec = run.input_spec
rec = split_records(run, resolve_data_dir(run, None))
val = load_split(rec["val"][:400], "val", spec, progress=False)
tr = load_split(rec["train"][:640], "train", spec, progress=False)
ds = make_dataset(tr.images, tr.labels, 7, 32, True, finetune_augment(), spec, seed=0, class_balanced_sampling=True)
ref = convert.fold_temperature(run.load_model(), run.temperature, copy=False)
x = normalize(val.images, spec)
fp = ref.predict(x, batch_size=64, verbose=0).argmax(1)
pr = prune_finetune(ref, ds, None, 0.5, 1, 1e-4, False, teacher=ref)
print("pruned agreement", (pr.predict(x, batch_size=64, verbose=0).argmax(1) == fp).mean(), "sparsity", sparsity_report(pr).overall, flush=True)
for pp in (False, True):
    q = quantization_aware_finetune(pr, ds, None, 1, 1e-5, input_spec=spec, prune_preserve=pp, progress=False, teacher=ref)
    print("prune_preserve", pp, "keras QAT agreement", (q.predict(x, batch_size=64, verbose=0).argmax(1) == fp).mean(),
          "sparsity", sparsity_report(q).overall, flush=True)
