"""A quickly made, honest run folder for the explain tests and measurements: a *linear probe*.

The ImageNet EfficientNet-Lite0 backbone (real weights) stays frozen; only the ``logits`` layer is trained,
on the pooled features of real HAM10000 images (class-weighted softmax regression, L-BFGS). That takes
seconds instead of the minutes of fine-tuning, and gives a model whose Grad-CAM maps are meaningful (the
backbone's features are real), unlike a model trained for one step. The folder has what
:class:`dermtool.run.RunFolder` requires (model.keras, labels.txt, input_spec.json, metrics.json) plus
config.toml and split.csv, with a temperature fitted on validation and a referral threshold chosen on
validation for sensitivity >= 0.90, as the trainer writes them.

Used by tests/explain (a session fixture); it is not a replacement for ``dermtool train``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

MALIGNANT = ("mel", "bcc", "akiec")


def _threshold_for_sensitivity(positive: np.ndarray, scores: np.ndarray, target: float) -> float:
    """The largest threshold whose sensitivity (scores >= t among positives) is >= target."""
    positive_scores = np.sort(scores[positive])[::-1]
    if positive_scores.size == 0:
        return 0.5
    needed = int(np.ceil(target * positive_scores.size))
    return float(positive_scores[max(needed, 1) - 1])


def _sensitivity_specificity(positive: np.ndarray, scores: np.ndarray, threshold: float) -> dict:
    flagged = scores >= threshold
    return {
        "sensitivity": float((flagged & positive).sum() / max(positive.sum(), 1)),
        "specificity": float((~flagged & ~positive).sum() / max((~positive).sum(), 1)),
        "positives": int(positive.sum()),
        "negatives": int((~positive).sum()),
    }


def fit_softmax_regression(
    features: np.ndarray, y: np.ndarray, num_classes: int, steps: int = 300, l2: float = 1e-3
) -> tuple[np.ndarray, np.ndarray]:
    """Class-weighted multinomial logistic regression (L-BFGS, numpy/scipy): ``(kernel (D, C), bias (C,))``."""
    from scipy.optimize import minimize

    counts = np.bincount(y, minlength=num_classes).astype(np.float64)
    class_weights = np.where(counts > 0, len(y) / (num_classes * np.maximum(counts, 1)), 0.0)
    sample_weights = class_weights[y] / len(y)
    dimension = features.shape[1]
    one_hot = np.eye(num_classes)[y]

    def loss_and_gradient(flat: np.ndarray) -> tuple[float, np.ndarray]:
        kernel, bias = flat[:-num_classes].reshape(dimension, num_classes), flat[-num_classes:]
        logits = features @ kernel + bias
        logits = logits - logits.max(axis=1, keepdims=True)
        log_probabilities = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        loss = -(sample_weights * (one_hot * log_probabilities).sum(axis=1)).sum() + l2 * (kernel**2).sum()
        error = (np.exp(log_probabilities) - one_hot) * sample_weights[:, None]
        gradient_kernel = features.T @ error + 2 * l2 * kernel
        return loss, np.concatenate([gradient_kernel.ravel(), error.sum(axis=0)])

    start = np.zeros(dimension * num_classes + num_classes)
    solution = minimize(loss_and_gradient, start, jac=True, method="L-BFGS-B", options={"maxiter": steps})
    flat = solution.x
    return flat[:-num_classes].reshape(dimension, num_classes), flat[-num_classes:]


def build_probe_run(
    out_dir: str | Path,
    data_dir: str | Path,
    image_size: int = 96,
    model_name: str = "efficientnet-lite0",
    resize_policy: str = "squash",
    seed: int = 0,
    head_steps: int = 300,
    max_train_images: int | None = None,
) -> Path:
    """Write a linear-probe run folder for the labelled images in ``data_dir`` and return its path."""
    import tf_keras as keras

    from dermtool import metrics
    from dermtool.config import Config
    from dermtool.data.layouts import read_dataset
    from dermtool.data.pipeline import load_images
    from dermtool.data.preprocess import normalize
    from dermtool.data.split import make_split, write_split_csv
    from dermtool.models.registry import build_classifier, input_spec

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dataset = read_dataset(data_dir)
    labels = list(dataset.classes)
    rows = make_split(dataset.records, seed=seed)
    write_split_csv(rows, out / "split.csv")
    config = Config()
    config.data.data_dir = str(Path(data_dir).absolute())
    config.data.image_size = image_size
    config.data.resize_policy = resize_policy
    config.model.name = model_name
    spec = input_spec(config.model, config.data)
    model = build_classifier(config.model, len(labels), image_size)
    features_model = keras.Model(model.input, model.get_layer("pooled").output)

    by_id = {record.image_id: record for record in dataset.records}
    splits = {}
    rng = np.random.default_rng(seed)
    for split in ("train", "val", "test"):
        records = [by_id[row.image_id] for row in rows if row.split == split]
        if split == "train" and max_train_images is not None and len(records) > max_train_images:
            records = [records[i] for i in sorted(rng.permutation(len(records))[:max_train_images])]
        images, failed = load_images([record.path for record in records], spec, progress=False)
        assert not failed, failed
        features = np.concatenate(
            [np.asarray(features_model(normalize(images[i : i + 64], spec), training=False)) for i in range(0, len(images), 64)]
        ).astype(np.float64)
        y = np.array([labels.index(record.label) for record in records])
        splits[split] = (features, y)

    kernel, bias = fit_softmax_regression(*splits["train"], num_classes=len(labels), steps=head_steps)
    model.get_layer("logits").set_weights([kernel.astype(np.float32), bias.astype(np.float32)])

    def split_logits(split: str) -> tuple[np.ndarray, np.ndarray]:
        split_features, split_y = splits[split]
        return split_features @ kernel + bias, split_y

    val_logits, val_y = split_logits("val")
    temperature = float(metrics.fit_temperature(val_logits, val_y))
    result: dict = {"temperature": temperature}
    probabilities = {}
    for split in ("val", "test"):
        logits, split_y = split_logits(split)
        probabilities[split] = (metrics.softmax(logits, temperature), split_y)
        result[split] = metrics.classification_metrics(split_y, probabilities[split][0], labels)
    columns = [labels.index(name) for name in MALIGNANT if name in labels]
    val_p, val_y = probabilities["val"]
    threshold = _threshold_for_sensitivity(np.isin(val_y, columns), val_p[:, columns].sum(axis=1), 0.9)
    referral = {"classes": [labels[c] for c in columns], "target_sensitivity": 0.9, "threshold": threshold}
    for split, (split_p, split_y) in probabilities.items():
        referral[split] = _sensitivity_specificity(np.isin(split_y, columns), split_p[:, columns].sum(axis=1), threshold)
    result["referral"] = referral
    result["probe"] = "linear probe on frozen ImageNet features (tests/explain/probe_run.py)"

    model.save(out / "model.keras")
    (out / "labels.txt").write_text("\n".join(labels) + "\n", encoding="utf-8")
    (out / "input_spec.json").write_text(json.dumps(spec.to_dict()), encoding="utf-8")
    (out / "metrics.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    (out / "config.toml").write_text(config.to_toml(), encoding="utf-8")
    return out
