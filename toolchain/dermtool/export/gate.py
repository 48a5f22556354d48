"""The accuracy gate: an exported model must agree with the float model it came from.

After conversion the exported ``.tflite`` runs in LiteRT (:class:`dermtool.runtime.TFLiteModel`, the
runtime that ships to devices) on the run's validation images, and the float Keras model runs on the same
images. The export is refused when

- balanced accuracy drops by more than ``max_balanced_accuracy_drop`` points (percentage points), or
- top-1 agreement (the share of images on which both models pick the same class) is below
  ``min_agreement``.

All numbers come from :mod:`dermtool.metrics` (the same definitions as training, evaluate and bench).
:func:`measure_gate` returns one :class:`GateMeasurement`: the gate's verdict, the full metrics of both
models and the exported model's referral point, which the model card and ``dermtool export --json`` report.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from dermtool import CheckFailed, metrics


@dataclass(frozen=True)
class GateResult:
    """The gate's numbers on the validation split."""

    images: int
    float_balanced_accuracy: float
    exported_balanced_accuracy: float
    balanced_accuracy_drop_points: float  # 100 * (float - exported); positive = the export is worse
    top1_agreement: float
    max_balanced_accuracy_drop: float
    min_agreement: float
    passed: bool
    enforced: bool  # False when the gate was switched off (the numbers are still measured)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """One line: both balanced accuracies, the drop and the agreement against their limits."""
        verdict = "passed" if self.passed else ("FAILED" if self.enforced else "failed (gate off)")
        return (
            f"gate {verdict} on {self.images} validation images: balanced accuracy float "
            f"{self.float_balanced_accuracy:.4f} -> exported {self.exported_balanced_accuracy:.4f} "
            f"(drop {self.balanced_accuracy_drop_points:+.2f} points, limit {self.max_balanced_accuracy_drop:g}); "
            f"top-1 agreement {self.top1_agreement:.4f} (minimum {self.min_agreement:g})"
        )


@dataclass(frozen=True)
class GateMeasurement:
    """What the export measured on the validation split: the gate's verdict and, for the model card, the
    full metrics of both models and the exported model's referral point."""

    result: GateResult
    float_metrics: dict[str, Any]  # dermtool.metrics.classification_metrics of the float (calibrated) model
    exported_metrics: dict[str, Any]  # the same for the exported model in LiteRT
    exported_referral: dict[str, Any] | None  # sensitivity / specificity at the run's referral threshold, or None


def referral_point(referral: Mapping[str, Any] | None, labels: Sequence[str], y_true: np.ndarray,
                   probabilities: np.ndarray) -> dict[str, Any] | None:
    """Sensitivity / specificity of ``probabilities`` at the run's referral threshold (``metrics.json``
    "referral"); None when the run has no referral point or none of its classes is in ``labels``."""
    if not referral or referral.get("threshold") is None:
        return None
    columns = [list(labels).index(name) for name in referral.get("classes", []) if name in labels]
    if not columns:
        return None
    return metrics.sensitivity_specificity(y_true, probabilities, columns, float(referral["threshold"]))


def measure_gate(
    y_true: np.ndarray,
    float_probabilities: np.ndarray,
    exported_probabilities: np.ndarray,
    labels: Sequence[str],
    max_balanced_accuracy_drop: float,
    min_agreement: float,
    enforced: bool = True,
    referral: Mapping[str, Any] | None = None,
) -> GateMeasurement:
    """The gate's numbers, plus the full metrics of the float and the exported model and the exported model's
    point at the run's referral threshold (``referral``: ``metrics.json`` "referral"; None: no point)."""

    float_metrics = metrics.classification_metrics(y_true, float_probabilities, list(labels))
    exported_metrics = metrics.classification_metrics(y_true, exported_probabilities, list(labels))
    drift = metrics.drift(exported_probabilities, float_probabilities, y_true, list(labels))
    float_balanced = float(float_metrics["balanced_accuracy"])
    exported_balanced = float(exported_metrics["balanced_accuracy"])
    drop = 100.0 * (float_balanced - exported_balanced)
    agreement = float(drift["top1_agreement"])
    passed = drop <= max_balanced_accuracy_drop + 1e-9 and agreement >= min_agreement - 1e-9
    result = GateResult(
        images=int(len(y_true)),
        float_balanced_accuracy=float_balanced,
        exported_balanced_accuracy=exported_balanced,
        balanced_accuracy_drop_points=drop,
        top1_agreement=agreement,
        max_balanced_accuracy_drop=float(max_balanced_accuracy_drop),
        min_agreement=float(min_agreement),
        passed=bool(passed),
        enforced=enforced,
    )
    return GateMeasurement(result, float_metrics, exported_metrics,
                           referral_point(referral, labels, y_true, exported_probabilities))


def enforce(result: GateResult, mode: str, qat: bool) -> None:
    """Raise :class:`dermtool.CheckFailed` (exit 3) with both numbers and what to try when an enforced gate failed."""
    if result.passed or not result.enforced:
        return
    problems = []
    if result.balanced_accuracy_drop_points > result.max_balanced_accuracy_drop:
        problems.append(
            f"balanced accuracy fell from {result.float_balanced_accuracy:.4f} (float) to "
            f"{result.exported_balanced_accuracy:.4f} ({mode}), a drop of {result.balanced_accuracy_drop_points:.2f} "
            f"points (limit {result.max_balanced_accuracy_drop:g})"
        )
    if result.top1_agreement < result.min_agreement:
        problems.append(
            f"top-1 agreement with the float model is {result.top1_agreement:.4f} (minimum {result.min_agreement:g})"
        )
    advice = (
        "try --qat (quantization-aware fine-tuning)" if not qat else "try more --qat-epochs or a milder mode (--dynamic, --fp16)"
    )
    raise CheckFailed(
        f"export refused by the accuracy gate on {result.images} validation images: {'; '.join(problems)}. "
        f"Nothing was written. To fix it, {advice}; --max-drop / --min-agreement change the limits and "
        "--no-gate skips the gate.",
        details={"gate": result.to_dict()},
    )


__all__ = ["GateMeasurement", "GateResult", "enforce", "measure_gate", "referral_point"]
