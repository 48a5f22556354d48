"""The end of a run: calibration, the contract metrics, and the referral operating points.

``metrics.json`` holds, for the validation and test splits, the contract's metric keys computed on the
*calibrated* probabilities (temperature fitted on validation), plus:

- ``temperature`` and ``ece_before_calibration`` (val and test, at T = 1);
- ``referral``: the malignant classes (mel, bcc, akiec, scc: those the model knows), a threshold on their
  summed probability chosen on validation so that the 95 % lower confidence bound of the sensitivity is at
  least 0.90 (a margin for the sampling error of the validation split), and the sensitivity / specificity
  it gives on validation and test. With several sources the bound must hold on *each* source's
  validation images, so the threshold is the lowest of the pooled and the per-source thresholds;
  ``referral.per_source`` gives each source's own threshold and its sensitivity / specificity at the one
  that is used;
- ``per_source`` (several sources only): ``{source: {kind, val: {metrics}, test: {metrics}}}``, the same
  metric keys on each source's images alone;
- ``per_skin_type`` (where the data has Fitzpatrick types): for the test split, per type, the images and
  per class the recall with its count and 95 % Wilson interval, or ``"too few"`` below
  :data:`MIN_IMAGES_FOR_RECALL` images;
- ``melanoma``: the same for the melanoma probability alone;
- ``best_epoch``, ``skipped_images``, ``throughput`` (training images/s per phase) and
  ``input_wait_fraction`` (share of training time spent waiting for input).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from dermtool import metrics
from dermtool.train.calibration import calibrated_probabilities, fit_calibration

MALIGNANT_CLASSES = ("mel", "bcc", "akiec", "scc")
#: Below this many images of a class, a recall is reported as "too few" rather than as a number.
MIN_IMAGES_FOR_RECALL = 10
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


@dataclass
class SplitStrata:
    """Who each image of a split is: its source (index into ``names``) and its Fitzpatrick type ("" unknown)."""

    sources: np.ndarray
    skin_types: Sequence[str]
    names: Sequence[str]
    kinds: Sequence[str]


def wilson_interval(successes: int, total: int, confidence: float = 0.95) -> list[float]:
    """Two-sided ``confidence`` Wilson interval of ``successes / total``."""
    one_sided = 0.5 + confidence / 2
    return [metrics.wilson_lower_bound(successes, total, one_sided),
            1.0 - metrics.wilson_lower_bound(total - successes, total, one_sided)]


def recall_table(y_true: np.ndarray, probabilities: np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    """Per class present: ``{recall, n, ci95}``, or ``{n, recall: "too few"}`` below MIN_IMAGES_FOR_RECALL."""
    predictions = probabilities.argmax(axis=1)
    table: dict[str, Any] = {}
    for index, label in enumerate(labels):
        count = int((y_true == index).sum())
        if count == 0:
            continue
        if count < MIN_IMAGES_FOR_RECALL:
            table[label] = {"n": count, "recall": "too few"}
            continue
        hits = int(((predictions == index) & (y_true == index)).sum())
        table[label] = {"n": count, "recall": hits / count, "ci95": wilson_interval(hits, count)}
    return table


def _per_source(labels: list[str], probabilities: dict[str, tuple[np.ndarray, np.ndarray]],
                strata: dict[str, SplitStrata]) -> dict[str, Any]:
    any_strata = next(iter(strata.values()))
    result: dict[str, Any] = {}
    for index, name in enumerate(any_strata.names):
        entry: dict[str, Any] = {"kind": any_strata.kinds[index]}
        for split in ("val", "test"):
            if split not in probabilities or split not in strata:
                entry[split] = None
                continue
            y_true, values = probabilities[split]
            mask = strata[split].sources == index
            entry[split] = metrics.classification_metrics(y_true[mask], values[mask], labels) if mask.any() else None
        result[name] = entry
    return result


def _per_skin_type(labels: list[str], probabilities: dict[str, tuple[np.ndarray, np.ndarray]],
                   strata: dict[str, SplitStrata]) -> dict[str, Any] | None:
    if "test" not in probabilities or "test" not in strata:
        return None
    types = np.asarray(list(strata["test"].skin_types) or [""] * len(probabilities["test"][0]))
    known = sorted({value for value in types if value})
    if not known:
        return None
    y_true, values = probabilities["test"]
    result: dict[str, Any] = {"split": "test", "unknown_images": int((types == "").sum()), "types": {}}
    for skin_type in known:
        mask = types == skin_type
        result["types"][skin_type] = {"n": int(mask.sum()),
                                      "per_class_recall": recall_table(y_true[mask], values[mask], labels)}
    return result


def referral_over_sources(labels: list[str], probabilities: dict[str, tuple[np.ndarray, np.ndarray]],
                          strata: dict[str, SplitStrata] | None) -> dict[str, Any] | None:
    """The referral operating point whose validation sensitivity bound holds pooled *and* on each source."""
    pooled = operating_point(labels, MALIGNANT_CLASSES, probabilities)
    if pooled is None or not strata or len(next(iter(strata.values())).names) < 2:
        return pooled
    columns = [labels.index(name) for name in pooled["classes"]]
    names = next(iter(strata.values())).names
    alone: dict[str, float | None] = {}
    for index, name in enumerate(names):
        mask = strata["val"].sources == index
        y_val, p_val = probabilities["val"]
        if mask.any() and np.isin(y_val[mask], columns).any():
            alone[name] = metrics.threshold_for_sensitivity(y_val[mask], p_val[mask], columns, REFERRAL_SENSITIVITY,
                                                            confidence=REFERRAL_CONFIDENCE)
        else:
            alone[name] = None
    threshold = min([pooled["threshold"]] + [value for value in alone.values() if value is not None])
    result = {key: value for key, value in pooled.items() if key not in ("val", "test", "val_sensitivity_lower_bound")}
    result["threshold"] = threshold
    result["pooled_threshold"] = pooled["threshold"]
    for split, (y_true, values) in probabilities.items():
        result[split] = metrics.sensitivity_specificity(y_true, values, columns, threshold)
    positives = result["val"]["true_positives"] + result["val"]["false_negatives"]
    result["val_sensitivity_lower_bound"] = metrics.wilson_lower_bound(result["val"]["true_positives"], positives,
                                                                       REFERRAL_CONFIDENCE)
    result["per_source"] = {}
    for index, name in enumerate(names):
        entry: dict[str, Any] = {"threshold_alone": alone[name]}
        for split, (y_true, values) in probabilities.items():
            mask = strata[split].sources == index if split in strata else np.zeros(len(y_true), bool)
            entry[split] = (metrics.sensitivity_specificity(y_true[mask], values[mask], columns, threshold)
                            if mask.any() else None)
        point = entry.get("val")
        if point and point["true_positives"] + point["false_negatives"]:
            entry["val_sensitivity_lower_bound"] = metrics.wilson_lower_bound(
                point["true_positives"], point["true_positives"] + point["false_negatives"], REFERRAL_CONFIDENCE)
        result["per_source"][name] = entry
    return result


def final_metrics(labels: Sequence[str], logits: dict[str, tuple[np.ndarray, np.ndarray]],
                  strata: dict[str, SplitStrata] | None = None) -> dict[str, Any]:
    """Calibrate on validation logits and compute metrics.json's metric part for every split in ``logits``.

    ``logits`` maps "val" (required) and "test" (optional) to ``(y_true, logits)``; ``strata`` (optional)
    maps the same split names to each image's source and skin type, for the per-source and per-skin-type
    figures and the referral threshold that holds on every source.
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
    result["referral"] = referral_over_sources(labels, probabilities, strata)
    result["melanoma"] = operating_point(labels, ("mel",), probabilities)
    if strata and len(next(iter(strata.values())).names) > 1:
        result["per_source"] = _per_source(labels, probabilities, strata)
    if strata:
        skin_types = _per_skin_type(labels, probabilities, strata)
        if skin_types is not None:
            result["per_skin_type"] = skin_types
    return result
