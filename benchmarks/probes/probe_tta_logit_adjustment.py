"""Probe (RESULTS.md section 1): test-time flips and logit adjustment on a trained run's val/test logits.

    python benchmarks/probes/probe_tta_logit_adjustment.py runs/ham10000/run

Prints balanced accuracy for one view, 4 flips and the 8 flips/transposes (logits or probabilities
averaged), and for logits + tau x log(training prior) over a range of tau. About 5 minutes on 2 cores.
"""
import numpy as np, sys, time
from dermtool.run import RunFolder
from dermtool.data.layouts import read_dataset
from dermtool.data.pipeline import load_images
from dermtool import metrics
from probe_common import balanced_accuracy
run = RunFolder(sys.argv[1])
ds = read_dataset("../shared/data/ham10000")
idx = {l:i for i,l in enumerate(run.labels)}
out = {}
for split in ("val","test"):
    want = {r.image_id for r in run.split_rows if r.split==split}
    recs = [r for r in ds.records if r.image_id in want]
    imgs,_ = load_images([r.path for r in recs], run.input_spec, progress=False)
    y = np.array([idx[r.label] for r in recs])
    views = [imgs, imgs[:,:,::-1], imgs[:,::-1], imgs[:,::-1,::-1],
             np.transpose(imgs,(0,2,1,3)), np.transpose(imgs,(0,2,1,3))[:,:,::-1], np.transpose(imgs,(0,2,1,3))[:,::-1], np.transpose(imgs,(0,2,1,3))[:,::-1,::-1]]
    t=time.time()
    L = np.stack([run.predict_logits(np.ascontiguousarray(v)) for v in views])
    print(split, "infer", time.time()-t, flush=True)
    out[split]=(L,y)
train_counts = np.bincount([idx[r.label] for r in run.split_rows if r.split == "train"], minlength=len(run.labels))
print("train counts", train_counts)
def ba(L,y): return balanced_accuracy(y, L.argmax(1))
sm = metrics.softmax  # along the last axis, so also for the stacked views
for s,(L,y) in out.items():
    print(s, "plain %.4f  flip4-logit %.4f flip4-prob %.4f  d8-prob %.4f" % (ba(L[0],y), ba(L[:4].mean(0),y), ba(sm(L[:4]).mean(0),y), ba(sm(L).mean(0),y)))
lp = np.log(train_counts/train_counts.sum())
for tau in [-0.5,-0.3,-0.2,-0.1,0,0.1,0.2,0.3,0.5]:
    print("tau", tau, " ".join("%s %.4f/%.4f" % (s, ba(L[0]+tau*lp,y), ba(np.log(sm(L[:4]).mean(0))+tau*lp,y)) for s,(L,y) in out.items()))
