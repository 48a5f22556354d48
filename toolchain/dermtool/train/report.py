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
  :data:`MIN_IMAGES_FOR_RECALL` images; ``per_skin_tone`` the same per skin-tone class of a dataset that
  has its own scale (MILK10k: 0 very dark .. 5 very light), with the sources it comes from;
- ``referral.per_source[...].own_threshold``: the threshold the source would get alone and the test
  sensitivity / specificity at it, beside those at the one threshold that is used;
- ``out_of_scope`` (sources with out-of-scope labels): per source, how many such images there are, how
  many the outcome rule (referral threshold, then the uncertainty band) calls benign, refers or calls
  uncertain, per label;
- ``paired_photos`` (sources that read one folder, e.g. a lesion's clinical and dermoscopic photos): on
  the test lesions with a photo in two sources, how often both photos get the same outcome and the same
  top class;
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
#: The top probability under which the outcome is "uncertain" (dermtool.prediction.predictor's default).
UNCERTAINTY_THRESHOLD = 0.5


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
    """Who each image of a split is: its source (index into ``names``), its Fitzpatrick type and its
    dataset's own skin-tone class ("" unknown), and its lesion (group) id."""

    sources: np.ndarray
    skin_types: Sequence[str]
    names: Sequence[str]
    kinds: Sequence[str]
    skin_tones: Sequence[str] = ()
    groups: Sequence[str] = ()


@dataclass
class OutOfScope:
    """Images of labels no source trains (never seen in training): their source index and own label."""

    sources: np.ndarray
    labels: Sequence[str]
    logits: np.ndarray


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


def _per_stratum(labels: list[str], probabilities: dict[str, tuple[np.ndarray, np.ndarray]],
                 strata: dict[str, SplitStrata], attribute: str, key: str) -> dict[str, Any] | None:
    """Per value of ``attribute`` (skin type or tone) on the test split: images and per-class recall."""
    if "test" not in probabilities or "test" not in strata:
        return None
    test = strata["test"]
    values = np.asarray(list(getattr(test, attribute)) or [""] * len(probabilities["test"][0]))
    known = sorted({value for value in values if value})
    if not known:
        return None
    y_true, calibrated = probabilities["test"]
    result: dict[str, Any] = {"split": "test", "unknown_images": int((values == "").sum()), key: {}}
    for value in known:
        mask = values == value
        entry: dict[str, Any] = {"n": int(mask.sum()),
                                 "per_class_recall": recall_table(y_true[mask], calibrated[mask], labels)}
        if key == "tones":
            entry["sources"] = sorted({test.names[index] for index in test.sources[mask]})
        result[key][value] = entry
    return result


def _per_skin_type(labels: list[str], probabilities: dict[str, tuple[np.ndarray, np.ndarray]],
                   strata: dict[str, SplitStrata]) -> dict[str, Any] | None:
    return _per_stratum(labels, probabilities, strata, "skin_types", "types")


def _per_skin_tone(labels: list[str], probabilities: dict[str, tuple[np.ndarray, np.ndarray]],
                   strata: dict[str, SplitStrata]) -> dict[str, Any] | None:
    result = _per_stratum(labels, probabilities, strata, "skin_tones", "tones")
    if result is not None:
        result["scale"] = "the dataset's own skin-tone class: 0 very dark .. 5 very light (not Fitzpatrick)"
    return result


def outcomes(probabilities: np.ndarray, columns: Sequence[int], threshold: float,
             uncertainty: float = UNCERTAINTY_THRESHOLD) -> np.ndarray:
    """The outcome rule without the photo check, per row: "refer" (malignant sum at or above
    ``threshold``), else "uncertain" (top probability below ``uncertainty``), else "benign"."""
    referred = probabilities[:, list(columns)].sum(axis=1) >= threshold
    unsure = probabilities.max(axis=1) < uncertainty
    return np.where(referred, "refer", np.where(unsure, "uncertain", "benign"))


def out_of_scope_outcomes(labels: list[str], aside: OutOfScope, temperature: float,
                          referral: dict[str, Any] | None, names: Sequence[str]) -> dict[str, Any] | None:
    """Per source: how the outcome rule treats images of labels the model was never trained on (the share
    called benign is the one that matters: such a lesion is then not sent to a clinician)."""
    if referral is None or not len(aside.labels):
        return None
    columns = [labels.index(name) for name in referral["classes"]]
    calibrated = calibrated_probabilities(aside.logits, temperature)
    decided = outcomes(calibrated, columns, referral["threshold"])
    own = np.asarray(list(aside.labels))
    result: dict[str, Any] = {}
    for index, name in enumerate(names):
        mask = aside.sources == index
        if not mask.any():
            continue
        entry: dict[str, Any] = {"n": int(mask.sum())}
        for outcome in ("benign", "refer", "uncertain"):
            entry[outcome] = int((decided[mask] == outcome).sum())
        entry["called_benign"] = entry["benign"] / entry["n"]
        entry["per_label"] = {label: {"n": int((own[mask] == label).sum()),
                                      "called_benign": int(((own == label) & mask & (decided == "benign")).sum())}
                              for label in sorted(set(own[mask]))}
        result[name] = entry
    return result


def paired_photos(labels: list[str], probabilities: dict[str, tuple[np.ndarray, np.ndarray]],
                  strata: dict[str, SplitStrata], referral: dict[str, Any] | None) -> dict[str, Any] | None:
    """On the test lesions photographed in two sources (a folder read as two kinds of photo): how often
    both photos get the same outcome and the same top class, and how often the lesion is referred by
    either photo, by both, or only by one."""
    test = strata.get("test")
    if referral is None or test is None or not len(test.groups) or "test" not in probabilities:
        return None
    y_true, calibrated = probabilities["test"]
    columns = [labels.index(name) for name in referral["classes"]]
    decided = outcomes(calibrated, columns, referral["threshold"])
    top = calibrated.argmax(axis=1)
    photos: dict[str, list[int]] = {}
    for row, group in enumerate(test.groups):
        photos.setdefault(group, []).append(row)
    pairs = [rows for rows in photos.values()
             if len(rows) == 2 and test.sources[rows[0]] != test.sources[rows[1]]]
    if not pairs:
        return None
    first = np.asarray([rows[0] for rows in pairs])
    second = np.asarray([rows[1] for rows in pairs])
    malignant = np.isin(y_true[first], columns)
    referred_first, referred_second = decided[first] == "refer", decided[second] == "refer"
    kinds = sorted({test.names[test.sources[row]] for rows in pairs for row in rows})
    return {
        "split": "test", "lesions": len(pairs), "sources": kinds,
        "same_outcome": float((decided[first] == decided[second]).mean()),
        "same_top_class": float((top[first] == top[second]).mean()),
        "malignant_lesions": int(malignant.sum()),
        "malignant_referred_by_either": (float((referred_first | referred_second)[malignant].mean())
                                         if malignant.any() else None),
        "malignant_referred_by_both": (float((referred_first & referred_second)[malignant].mean())
                                       if malignant.any() else None),
    }


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
        if alone[name] is not None:
            own: dict[str, Any] = {"threshold": alone[name]}
            for split, (y_true, values) in probabilities.items():
                mask = strata[split].sources == index if split in strata else np.zeros(len(y_true), bool)
                own[split] = (metrics.sensitivity_specificity(y_true[mask], values[mask], columns, alone[name])
                              if mask.any() else None)
            entry["own_threshold"] = own
        point = entry.get("val")
        if point and point["true_positives"] + point["false_negatives"]:
            entry["val_sensitivity_lower_bound"] = metrics.wilson_lower_bound(
                point["true_positives"], point["true_positives"] + point["false_negatives"], REFERRAL_CONFIDENCE)
        result["per_source"][name] = entry
    return result


def final_metrics(labels: Sequence[str], logits: dict[str, tuple[np.ndarray, np.ndarray]],
                  strata: dict[str, SplitStrata] | None = None,
                  out_of_scope: OutOfScope | None = None) -> dict[str, Any]:
    """Calibrate on validation logits and compute metrics.json's metric part for every split in ``logits``.

    ``logits`` maps "val" (required) and "test" (optional) to ``(y_true, logits)``; ``strata`` (optional)
    maps the same split names to each image's source and skin type, for the per-source and per-skin-type
    figures and the referral threshold that holds on every source; ``out_of_scope`` (optional): images of
    labels no source trains, for how often they are called benign.
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
        skin_tones = _per_skin_tone(labels, probabilities, strata)
        if skin_tones is not None:
            result["per_skin_tone"] = skin_tones
        pairs = paired_photos(labels, probabilities, strata, result["referral"])
        if pairs is not None:
            result["paired_photos"] = pairs
    if out_of_scope is not None and strata:
        aside = out_of_scope_outcomes(labels, out_of_scope, calibration.temperature, result["referral"],
                                      next(iter(strata.values())).names)
        if aside is not None:
            result["out_of_scope"] = aside
    return result
