"""Temperature scaling: one scalar ``T`` fitted on validation logits, ``p = softmax(logits / T)``.

Temperature scaling (Guo et al., 2017) keeps the arg-max (accuracy, balanced accuracy and the confusion
matrix do not change) and only makes the confidence honest, which matters for the referral threshold and
for the "uncertain" outcome of ``predict``. Numpy only; the fit itself is
:func:`dermtool.metrics.fit_temperature` (it minimises the validation NLL).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dermtool import metrics


@dataclass(frozen=True)
class Calibration:
    """The fitted temperature and the validation ECE (15 bins) before and after applying it."""

    temperature: float
    ece_before: float
    ece_after: float


def fit_calibration(val_logits: np.ndarray, val_labels: np.ndarray) -> Calibration:
    """Fit ``T`` on validation logits (N x C) and integer labels; report the ECE before and after."""
    val_logits = np.asarray(val_logits, dtype=np.float64)
    val_labels = np.asarray(val_labels)
    temperature = float(metrics.fit_temperature(val_logits, val_labels))
    if not np.isfinite(temperature) or temperature <= 0:
        temperature = 1.0  # a degenerate fit (e.g. a single class in a tiny val split): leave as is
    before = metrics.expected_calibration_error(val_labels, metrics.softmax(val_logits))
    after = metrics.expected_calibration_error(val_labels, metrics.softmax(val_logits, temperature))
    return Calibration(temperature=temperature, ece_before=float(before), ece_after=float(after))


def calibrated_probabilities(logits: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(logits / temperature)`` as float64 (N x C)."""
    return metrics.softmax(np.asarray(logits, dtype=np.float64), temperature)
