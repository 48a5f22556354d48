"""The end of a run: calibration, the contract metrics, and the referral operating points.

``metrics.json`` holds, for the validation and test splits, the contract's metric keys computed on the
*calibrated* probabilities (temperature fitted on validation), plus:

- ``temperature`` and ``ece_before_calibration`` (val and test, at T = 1);
- ``referral``: the malignant classes (mel, bcc, akiec, those the model knows), a threshold on their summed
  probability chosen on validation so that the 95 % lower confidence bound of the sensitivity is at least
  0.90 (a margin for the sampling error of the validation split), and the sensitivity / specificity it
  gives on validation and test;
- ``melanoma``: the same for the melanoma probability alone;
- ``best_epoch``, ``skipped_images``, ``throughput`` (training images/s per phase) and
  ``input_wait_fraction`` (share of training time spent waiting for input).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from dermtool import metrics
from dermtool.train.calibration import calibrated_probabilities, fit_calibration

MALIGNANT_CLASSES = ("mel", "bcc", "akiec")
REFERRAL_SENSITIVITY = 0.90
#: The threshold is set where the lower 95 % confidence bound of the validation sensitivity reaches the
#: target, not the point estimate (which the test split then misses about half the time).
REFERRAL_CONFIDENCE = 0.95


def operating_point(labels: Sequence[str], classes: Sequence[str], splits: dict[str, tuple[np.ndarray, np.ndarray]],
                    target: float = REFERRAL_SENSITIVITY,
                   confidence: float | None = REFERRAL_CONFIDENCE) -> dict[str, Any] | None:
    """Threshold on the summed probability of ``classes`` chosen on "val" for sensitivity >= ``target``
    (the lower ``confidence`` bound of it; None: the point estimate, see
    :func:`dermtool.metrics.threshold_for_sensitivity`).

    ``splits`` maps a split name to ``(y_true, calibrated probabilities)``; the result has the threshold
    and, per split, :func:`dermtool.metrics.sensitivity_specificity` at it. None when the model knows none
    of ``classes`` or the validation split has no positive example.
    """
    columns = [labels.index(name) for name in classes if name in labels]
    if not columns:
        return None
    y_val, p_val = splits["val"]
    if not np.isin(y_val, columns).any():
        return None
    threshold = metrics.threshold_for_sensitivity(y_val, p_val, columns, target, confidence=confidence)
    result: dict[str, Any] = {"classes": [labels[c] for c in columns], "target_sensitivity": target,
                              "confidence": confidence, "threshold": threshold}
    for name, (y_true, probabilities) in splits.items():
        result[name] = metrics.sensitivity_specificity(y_true, probabilities, columns, threshold)
    val_point = result["val"]
    positives = val_point["true_positives"] + val_point["false_negatives"]
    if confidence is not None and positives:
        result["val_sensitivity_lower_bound"] = metrics.wilson_lower_bound(val_point["true_positives"], positives,
                                                                           confidence)
    return result


def final_metrics(labels: Sequence[str], logits: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, Any]:
    """Calibrate on validation logits and compute metrics.json's metric part for every split in ``logits``.

    ``logits`` maps "val" (required) and "test" (optional) to ``(y_true, logits)``.
    """
    labels = list(labels)
    val_true, val_logits = logits["val"]
    calibration = fit_calibration(val_logits, val_true)
    probabilities = {name: (y_true, calibrated_probabilities(split_logits, calibration.temperature))
                     for name, (y_true, split_logits) in logits.items() if len(y_true)}
    result: dict[str, Any] = {}
    for name in ("val", "test"):
        result[name] = (metrics.classification_metrics(*probabilities[name], labels)
                        if name in probabilities else None)
    result["temperature"] = calibration.temperature
    result["ece_before_calibration"] = {
        name: float(metrics.expected_calibration_error(y_true, metrics.softmax(split_logits)))
        for name, (y_true, split_logits) in logits.items() if len(y_true)
    }
    result["referral"] = operating_point(labels, MALIGNANT_CLASSES, probabilities)
    result["melanoma"] = operating_point(labels, ("mel",), probabilities)
    return result
