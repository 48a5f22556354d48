"""Probe (RESULTS.md section 2): why the int8 model disagrees with the float model on test images.

    python benchmarks/probes/probe_int8_disagreements.py

Reads runs/ham10000/models/{float,int8_qat}.tflite; prints agreement, the float top-2 margins of the
disagreements, ties in the uint8 output and the size of the int8 probability error.
"""
import numpy as np
from dermtool.run import RunFolder
from dermtool.runtime import TFLiteModel
from dermtool.data.layouts import read_dataset
from dermtool.data.pipeline import load_images
run = RunFolder("runs/ham10000/run")
want = {r.image_id for r in run.split_rows if r.split=="test"}
recs = [r for r in read_dataset("../shared/data/ham10000").records if r.image_id in want]
imgs,_ = load_images([r.path for r in recs], run.input_spec, progress=False)
f = TFLiteModel("runs/ham10000/models/float.tflite").predict(imgs)
q = TFLiteModel("runs/ham10000/models/int8_qat.tflite")
qp = q.predict(imgs)
print("out quant", q.output_quantization)
fa, qa = f.argmax(1), qp.argmax(1)
dis = fa!=qa
print("agreement", 1-dis.mean(), "n dis", dis.sum())
s = np.sort(f,1); margin = s[:,-1]-s[:,-2]
print("float margin of disagreements", np.round(np.sort(margin[dis]),3))
qs = np.sort(qp,1); ties = (qs[:,-1]==qs[:,-2])
print("uint8 ties", ties.sum(), "ties among dis", (ties&dis).sum())
print("max abs prob diff median/p90", np.median(np.abs(f-qp).max(1)), np.percentile(np.abs(f-qp).max(1),90))
print("fraction with float margin < 0.05:", (margin<0.05).mean(), "<0.1", (margin<0.1).mean())
