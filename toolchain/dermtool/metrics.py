"""Every metric, defined once, in numpy (no TensorFlow): training, evaluate, the export gate and bench call these.

Conventions (the same everywhere, so numbers from different commands are comparable):

- ``y_true`` is an integer array of class indices, ``probabilities`` an ``(N, C)`` array whose columns
  follow ``labels``. The prediction is the arg-max (top-1) class.
- Every returned number is a plain Python ``float``/``int`` (JSON-serialisable); matrices are lists of
  lists of ints. An undefined value is ``None`` (JSON ``null``), never NaN.
- Classes absent from ``y_true`` (no support): their recall is undefined, so they are left out of
  ``balanced_accuracy`` (mean recall over the classes present) and of ``auc_macro`` (which needs both
  positives and negatives). In ``per_class`` they report ``recall = 0.0`` with ``support = 0``.
  ``macro_f1`` averages F1 over the classes present in ``y_true`` or predicted at least once (a class
  predicted but never true scores F1 = 0 and counts; one neither true nor predicted is left out), as
  scikit-learn does when it is not given an explicit label list. Precision of a class never predicted is 0.0.
- ``ece``: expected calibration error with 15 equal-width bins on the top-1 confidence, bins
  ``(lo, hi]`` (a confidence of exactly 0 falls in the first bin).
- ``nll``: mean negative log-likelihood of the true class (natural log; probabilities clipped at 1e-12).
- AUC: one-vs-rest ROC AUC per class with the rank (Mann-Whitney U) formula, tied scores sharing their
  average rank (a tie between a positive and a negative counts one half).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from dermtool import DermtoolError

ECE_BINS = 15
_PROBABILITY_FLOOR = 1e-12


# ----------------------------------------------------------------------------------------------- checks


def _as_labels(y_true: Any, num_classes: int, where: str) -> np.ndarray:
    labels = np.asarray(y_true)
    if labels.ndim != 1:
        raise DermtoolError(f"{where}: y_true must be a 1-D array of class indices, got shape {labels.shape}")
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        if not np.all(np.equal(np.mod(labels, 1), 0)):
            raise DermtoolError(f"{where}: y_true must hold integer class indices")
    labels = labels.astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DermtoolError(
            f"{where}: class indices must lie in [0, {num_classes}), got [{labels.min()}, {labels.max()}]"
        )
    return labels


def _as_probabilities(probabilities: Any, count: int | None, where: str) -> np.ndarray:
    values = np.asarray(probabilities, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] < 1:
        raise DermtoolError(f"{where}: probabilities must be an (N, classes) array, got shape {values.shape}")
    if count is not None and values.shape[0] != count:
        raise DermtoolError(f"{where}: {values.shape[0]} rows of probabilities for {count} labels")
    if not np.all(np.isfinite(values)):
        raise DermtoolError(f"{where}: probabilities contain NaN or infinity")
    return values


def _checked(y_true: Any, probabilities: Any, where: str) -> tuple[np.ndarray, np.ndarray]:
    values = _as_probabilities(probabilities, None, where)
    labels = _as_labels(y_true, values.shape[1], where)
    if len(labels) != len(values):
        raise DermtoolError(f"{where}: {len(values)} rows of probabilities for {len(labels)} labels")
    if len(labels) == 0:
        raise DermtoolError(f"{where}: no samples to score")
    return labels, values


def _mean_or_none(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if len(values) else None


# ----------------------------------------------------------------------------------------- basic pieces


def softmax(logits: Any, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``logits / temperature`` (numerically stable), float64."""
    if not temperature > 0:
        raise DermtoolError(f"softmax: temperature must be positive, got {temperature!r}")
    scaled = np.asarray(logits, dtype=np.float64) / float(temperature)
    scaled = scaled - scaled.max(axis=-1, keepdims=True)
    exponentials = np.exp(scaled)
    return exponentials / exponentials.sum(axis=-1, keepdims=True)


def _log_softmax(logits: np.ndarray, temperature: float) -> np.ndarray:
    scaled = logits / temperature
    scaled = scaled - scaled.max(axis=1, keepdims=True)
    return scaled - np.log(np.exp(scaled).sum(axis=1, keepdims=True))


def confusion_matrix(y_true: Any, predictions: Any, num_classes: int) -> np.ndarray:
    """``(C, C)`` int64 counts; rows are the true class, columns the predicted class."""
    truth = _as_labels(y_true, num_classes, "confusion_matrix")
    predicted = _as_labels(predictions, num_classes, "confusion_matrix")
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (truth, predicted), 1)
    return matrix


def _midranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, tied values sharing the average of the ranks they span."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    starts = ends - counts
    return ((starts + 1 + ends) / 2.0)[inverse]


def roc_auc(is_positive: Any, scores: Any) -> float | None:
    """Binary ROC AUC by the Mann-Whitney formula with midranks for ties; ``None`` without both classes."""
    positive = np.asarray(is_positive, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    positives = int(positive.sum())
    negatives = int(positive.size - positives)
    if positives == 0 or negatives == 0:
        return None
    ranks = _midranks(scores)
    rank_sum = float(ranks[positive].sum())
    return float((rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives))


def one_vs_rest_auc(y_true: Any, probabilities: Any) -> list[float | None]:
    """Per-class one-vs-rest ROC AUC (``None`` for a class without positives or without negatives)."""
    labels, values = _checked(y_true, probabilities, "one_vs_rest_auc")
    return [roc_auc(labels == index, values[:, index]) for index in range(values.shape[1])]


def _bin_statistics(labels: np.ndarray, values: np.ndarray, bins: int) -> tuple[np.ndarray, ...]:
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
        raise DermtoolError(f"calibration bins must be a positive integer, got {bins!r}")
    confidence = values.max(axis=1)
    correct = (values.argmax(axis=1) == labels).astype(np.float64)
    index = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)
    counts = np.bincount(index, minlength=bins)
    confidence_sums = np.bincount(index, weights=confidence, minlength=bins)
    correct_sums = np.bincount(index, weights=correct, minlength=bins)
    return counts, confidence_sums, correct_sums


def expected_calibration_error(y_true: Any, probabilities: Any, bins: int = ECE_BINS) -> float:
    """ECE: ``sum_b (n_b / N) * |accuracy_b - mean confidence_b|`` over equal-width top-1 confidence bins."""
    labels, values = _checked(y_true, probabilities, "expected_calibration_error")
    counts, confidence_sums, correct_sums = _bin_statistics(labels, values, bins)
    return float(np.abs(correct_sums - confidence_sums).sum() / len(labels))


def reliability_curve(y_true: Any, probabilities: Any, bins: int = ECE_BINS) -> dict[str, list[Any]]:
    """The points of a reliability diagram (the bins of :func:`expected_calibration_error`).

    ``{"bin_edges": [bins + 1 floats], "confidence": [mean top-1 confidence per bin],
    "accuracy": [accuracy per bin], "count": [images per bin]}``; empty bins give ``None``.
    """
    labels, values = _checked(y_true, probabilities, "reliability_curve")
    counts, confidence_sums, correct_sums = _bin_statistics(labels, values, bins)
    confidence = [float(s / c) if c else None for s, c in zip(confidence_sums, counts)]
    accuracy = [float(s / c) if c else None for s, c in zip(correct_sums, counts)]
    return {
        "bin_edges": [float(edge) for edge in np.linspace(0.0, 1.0, bins + 1)],
        "confidence": confidence,
        "accuracy": accuracy,
        "count": [int(c) for c in counts],
    }


def negative_log_likelihood(y_true: Any, probabilities: Any) -> float:
    """Mean ``-log p(true class)`` (natural log), probabilities clipped at 1e-12."""
    labels, values = _checked(y_true, probabilities, "negative_log_likelihood")
    chosen = np.clip(values[np.arange(len(labels)), labels], _PROBABILITY_FLOOR, 1.0)
    return float(-np.log(chosen).mean())


# ------------------------------------------------------------------------------------ the metrics dict


def classification_metrics(y_true: Any, probabilities: Any, labels: Sequence[str]) -> dict[str, Any]:
    """The contract's metric object (metrics.json, evaluate --json, bench --json).

    Keys: ``n, accuracy, balanced_accuracy, macro_f1, auc_macro, ece, nll,
    per_class {label: {precision, recall, f1, support}}, confusion_matrix {labels, matrix}``.
    See the module docstring for how absent classes are treated.
    """
    labels = [str(label) for label in labels]
    truth, values = _checked(y_true, probabilities, "classification_metrics")
    if values.shape[1] != len(labels):
        raise DermtoolError(
            f"classification_metrics: probabilities have {values.shape[1]} columns but there are "
            f"{len(labels)} labels ({', '.join(labels)})"
        )
    num_classes = len(labels)
    predictions = values.argmax(axis=1)
    matrix = confusion_matrix(truth, predictions, num_classes)
    true_positives = np.diag(matrix)
    support = matrix.sum(axis=1)
    predicted = matrix.sum(axis=0)

    per_class: dict[str, dict[str, Any]] = {}
    recalls_present: list[float] = []
    f1_counted: list[float] = []
    for index, label in enumerate(labels):
        precision = true_positives[index] / predicted[index] if predicted[index] else 0.0
        recall = true_positives[index] / support[index] if support[index] else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
        per_class[label] = {
            "precision": float(precision),
            "recall": float(recall),
            "f1": float(f1),
            "support": int(support[index]),
        }
        if support[index]:
            recalls_present.append(float(recall))
        if support[index] or predicted[index]:
            f1_counted.append(float(f1))

    aucs = [auc for auc in one_vs_rest_auc(truth, values) if auc is not None]
    return {
        "n": int(len(truth)),
        "accuracy": float(true_positives.sum() / len(truth)),
        "balanced_accuracy": float(np.mean(recalls_present)),
        "macro_f1": float(np.mean(f1_counted)),
        "auc_macro": _mean_or_none(aucs),
        "ece": expected_calibration_error(truth, values),
        "nll": negative_log_likelihood(truth, values),
        "per_class": per_class,
        "confusion_matrix": {"labels": list(labels), "matrix": matrix.tolist()},
    }


def drift(
    probabilities: Any, reference_probabilities: Any, y_true: Any, labels: Sequence[str]
) -> dict[str, Any]:
    """How far a model (e.g. the int8 export) strays from a reference (e.g. the float model) on the same images.

    ``top1_agreement``: share of images with the same top-1 class. ``delta_accuracy``,
    ``delta_balanced_accuracy``, ``delta_macro_f1``: model minus reference. ``mean_abs_prob_diff`` /
    ``max_abs_prob_diff``: mean / max of ``|p - p_ref|`` over every image and class. ``mean_kl``: mean over
    images of ``KL(reference || model)`` (natural log; model probabilities clipped at 1e-12).
    ``per_class_recall_delta {label: model recall - reference recall}`` (0.0 for classes absent from ``y_true``).
    """
    truth, values = _checked(y_true, probabilities, "drift")
    reference = _as_probabilities(reference_probabilities, len(values), "drift (reference)")
    if reference.shape != values.shape:
        raise DermtoolError(
            f"drift: the model gives {values.shape[1]} classes but the reference {reference.shape[1]}"
        )
    model_metrics = classification_metrics(truth, values, labels)
    reference_metrics = classification_metrics(truth, reference, labels)
    difference = np.abs(values - reference)
    reference_part = np.clip(reference, 0.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(
            reference_part > 0,
            reference_part * (np.log(np.maximum(reference_part, _PROBABILITY_FLOOR))
                              - np.log(np.clip(values, _PROBABILITY_FLOOR, 1.0))),
            0.0,
        )
    return {
        "top1_agreement": float(np.mean(values.argmax(axis=1) == reference.argmax(axis=1))),
        "delta_accuracy": model_metrics["accuracy"] - reference_metrics["accuracy"],
        "delta_balanced_accuracy": model_metrics["balanced_accuracy"] - reference_metrics["balanced_accuracy"],
        "delta_macro_f1": model_metrics["macro_f1"] - reference_metrics["macro_f1"],
        "mean_abs_prob_diff": float(difference.mean()),
        "max_abs_prob_diff": float(difference.max()),
        "mean_kl": float(terms.sum(axis=1).mean()),
        "per_class_recall_delta": {
            label: model_metrics["per_class"][label]["recall"] - reference_metrics["per_class"][label]["recall"]
            for label in model_metrics["per_class"]
        },
    }


# -------------------------------------------------------------------------------------- calibration


def fit_temperature(
    logits: Any, y_true: Any, lower: float = 0.05, upper: float = 20.0, tolerance: float = 1e-5
) -> float:
    """The temperature ``T`` that minimises the NLL of ``softmax(logits / T)`` (temperature scaling).

    Golden-section search on ``log T`` in ``[lower, upper]`` (the NLL is unimodal in ``log T``), in float64.
    Fit on validation logits, never on the test set.
    """
    values = np.asarray(logits, dtype=np.float64)
    if values.ndim != 2:
        raise DermtoolError(f"fit_temperature: logits must be an (N, classes) array, got shape {values.shape}")
    if not np.all(np.isfinite(values)):
        raise DermtoolError("fit_temperature: logits contain NaN or infinity")
    truth = _as_labels(y_true, values.shape[1], "fit_temperature")
    if len(truth) != len(values) or len(truth) == 0:
        raise DermtoolError(f"fit_temperature: {len(values)} rows of logits for {len(truth)} labels")
    if not 0 < lower < upper:
        raise DermtoolError(f"fit_temperature: need 0 < lower < upper, got {lower}, {upper}")
    rows = np.arange(len(truth))

    def nll(log_temperature: float) -> float:
        return float(-_log_softmax(values, math.exp(log_temperature))[rows, truth].mean())

    ratio = (math.sqrt(5.0) - 1.0) / 2.0
    left, right = math.log(lower), math.log(upper)
    inner_left = right - ratio * (right - left)
    inner_right = left + ratio * (right - left)
    loss_left, loss_right = nll(inner_left), nll(inner_right)
    while right - left > tolerance:
        if loss_left <= loss_right:
            right, inner_right, loss_right = inner_right, inner_left, loss_left
            inner_left = right - ratio * (right - left)
            loss_left = nll(inner_left)
        else:
            left, inner_left, loss_left = inner_left, inner_right, loss_right
            inner_right = left + ratio * (right - left)
            loss_right = nll(inner_right)
    return float(math.exp((left + right) / 2.0))


# --------------------------------------------------------------------------------------- referral


def _referral_scores(y_true: Any, probabilities: Any, positive_classes: Sequence[int], where: str) -> tuple[np.ndarray, np.ndarray]:
    truth, values = _checked(y_true, probabilities, where)
    classes = [int(index) for index in positive_classes]
    if not classes:
        raise DermtoolError(f"{where}: name at least one positive class")
    if min(classes) < 0 or max(classes) >= values.shape[1]:
        raise DermtoolError(f"{where}: positive class indices must lie in [0, {values.shape[1]}), got {classes}")
    return np.isin(truth, classes), values[:, sorted(set(classes))].sum(axis=1)


def sensitivity_specificity(
    y_true: Any, probabilities: Any, positive_classes: Sequence[int], threshold: float
) -> dict[str, Any]:
    """Referral performance: an image is referred when the summed probability of ``positive_classes`` is
    at least ``threshold``; it is truly positive when its true class is one of them.

    Returns ``{threshold, sensitivity, specificity, true_positives, false_negatives, true_negatives,
    false_positives}`` (sensitivity / specificity ``None`` when there are no positives / negatives).
    """
    is_positive, score = _referral_scores(y_true, probabilities, positive_classes, "sensitivity_specificity")
    referred = score >= threshold
    true_positives = int(np.sum(referred & is_positive))
    false_negatives = int(np.sum(~referred & is_positive))
    true_negatives = int(np.sum(~referred & ~is_positive))
    false_positives = int(np.sum(referred & ~is_positive))
    positives, negatives = true_positives + false_negatives, true_negatives + false_positives
    return {
        "threshold": float(threshold),
        "sensitivity": float(true_positives / positives) if positives else None,
        "specificity": float(true_negatives / negatives) if negatives else None,
        "true_positives": true_positives,
        "false_negatives": false_negatives,
        "true_negatives": true_negatives,
        "false_positives": false_positives,
    }


def wilson_lower_bound(successes: int, total: int, confidence: float = 0.95) -> float:
    """One-sided lower confidence bound of a proportion ``successes / total`` (Wilson score interval).

    With ``confidence`` 0.95, the true proportion is above the bound with 95 % confidence. Wilson's interval
    behaves well near 0 and 1, where the normal approximation does not.
    """
    if total < 1 or not 0 <= successes <= total:
        raise DermtoolError(f"wilson_lower_bound: need 0 <= successes <= total and total >= 1, got {successes}/{total}")
    if not 0.5 <= confidence < 1:
        raise DermtoolError(f"wilson_lower_bound: confidence must be in [0.5, 1), got {confidence!r}")
    from statistics import NormalDist

    z = NormalDist().inv_cdf(confidence)
    proportion = successes / total
    centre = proportion + z * z / (2 * total)
    spread = z * math.sqrt(proportion * (1 - proportion) / total + z * z / (4 * total * total))
    return float((centre - spread) / (1 + z * z / total))


def threshold_for_sensitivity(
    y_true: Any, probabilities: Any, positive_classes: Sequence[int], target: float = 0.9,
    confidence: float | None = None,
) -> float:
    """The highest referral threshold whose sensitivity (see :func:`sensitivity_specificity`) is >= ``target``.

    The highest such threshold refers the fewest negatives, so it gives the best specificity at that
    sensitivity. It is the ``ceil(target * P)``-th highest score among the ``P`` positives.

    ``confidence`` (e.g. 0.95): instead, the highest threshold at which the *lower confidence bound* of the
    sensitivity (:func:`wilson_lower_bound`) is >= ``target``: a margin for the sampling error of a
    threshold chosen on a few hundred positives, so that the target also holds on new images (a threshold
    set for exactly the target on validation falls short of it on new images about half the time). When no
    threshold reaches the bound, the lowest positive score (every validation positive referred).
    """
    if not 0 < target <= 1:
        raise DermtoolError(f"threshold_for_sensitivity: target must be in (0, 1], got {target!r}")
    is_positive, score = _referral_scores(y_true, probabilities, positive_classes, "threshold_for_sensitivity")
    positive_scores = np.sort(score[is_positive])[::-1]
    if positive_scores.size == 0:
        raise DermtoolError("threshold_for_sensitivity: no positive images, so sensitivity is undefined")
    count = positive_scores.size
    needed = max(1, math.ceil(target * count - 1e-9))
    if confidence is not None:
        while needed < count and wilson_lower_bound(needed, count, confidence) < target:
            needed += 1
    return float(positive_scores[needed - 1])


__all__ = [
    "ECE_BINS",
    "softmax",
    "confusion_matrix",
    "roc_auc",
    "one_vs_rest_auc",
    "expected_calibration_error",
    "reliability_curve",
    "negative_log_likelihood",
    "classification_metrics",
    "drift",
    "fit_temperature",
    "sensitivity_specificity",
    "threshold_for_sensitivity",
    "wilson_lower_bound",
]
