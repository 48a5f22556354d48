"""Probe (RESULTS.md section 1): a weight average ("model soup") of finished runs, against each run.

    python benchmarks/probes/probe_weight_soup.py runs/ham10000/run runs/ham10000_sampling/run

The runs must share the architecture and the split (the first run's split is used). Prints validation and
test balanced accuracy and melanoma recall of each run, of the average of their logits (several models)
and of the model whose weights are the mean of theirs (one model). Meaningful only for runs fine-tuned
from the same pretrained weights with BatchNorm frozen, so that the averaged statistics are the same ones.
About 2 minutes on 2 CPU cores.
"""
import sys

import numpy as np

from dermtool.data.layouts import read_dataset
from dermtool.data.pipeline import load_images
from dermtool.run import RunFolder
from probe_common import balanced_accuracy


def report(name, split, labels, logits, melanoma):
    predicted = logits.argmax(1)
    recall = np.mean(predicted[labels == melanoma] == melanoma)
    print(f"{name:<40} {split:<5} balanced accuracy {balanced_accuracy(labels, predicted):.4f}, "
          f"melanoma recall {recall:.3f}", flush=True)


paths = sys.argv[1:]
if len(paths) < 2:
    raise SystemExit("usage: probe_weight_soup.py RUN RUN [RUN ...]")
runs = [RunFolder(path) for path in paths]
base = runs[0]
dataset = read_dataset(base.config.data.data_dir)
label_index = {label: index for index, label in enumerate(base.labels)}
melanoma = label_index["mel"]
splits = {}
for split in ("val", "test"):
    wanted = {row.image_id for row in base.split_rows if row.split == split}
    records = [record for record in dataset.records if record.image_id in wanted]
    images, _ = load_images([record.path for record in records], base.input_spec, progress=False)
    splits[split] = (images, np.array([label_index[record.label] for record in records]))

logits = {}
for path, run in zip(paths, runs):
    for split, (images, labels) in splits.items():
        logits[path, split] = run.predict_logits(images)
        report(path, split, labels, logits[path, split], melanoma)
for split, (images, labels) in splits.items():
    report("mean of the logits (several models)", split, labels,
           sum(logits[path, split] for path in paths) / len(paths), melanoma)

models = [run.load_model() for run in runs]
soup = models[0]
soup.set_weights([np.mean(values, axis=0) for values in zip(*(model.get_weights() for model in models))])
base._cached_logits_model = base.logits_model(soup)
base._cached_graph_logits = None
for split, (images, labels) in splits.items():
    report("mean of the weights (one model)", split, labels, base.predict_logits(images), melanoma)
