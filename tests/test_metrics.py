"""Metrics against values computed by hand (scikit-learn is deliberately not a dependency)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from dermtool import DermtoolError
from dermtool.metrics import (
    classification_metrics,
    drift,
    expected_calibration_error,
    fit_temperature,
    one_vs_rest_auc,
    reliability_curve,
    roc_auc,
    sensitivity_specificity,
    softmax,
    threshold_for_sensitivity,
)

LABELS = ["a", "b", "c"]
Y_TRUE = np.array([0, 0, 0, 1, 1, 2])
PROBABILITIES = np.array(
    [
        [0.70, 0.20, 0.10],  # a, predicted a, confidence 0.70 (bin 10 of 0..14)
        [0.50, 0.40, 0.10],  # a, predicted a, 0.50 (bin 7)
        [0.20, 0.55, 0.25],  # a, predicted b (wrong), 0.55 (bin 8)
        [0.10, 0.85, 0.05],  # b, predicted b, 0.85 (bin 12)
        [0.30, 0.32, 0.38],  # b, predicted c (wrong), 0.38 (bin 5)
        [0.10, 0.20, 0.70],  # c, predicted c, 0.70 (bin 10)
    ]
)


def test_classification_metrics_by_hand() -> None:
    metrics = classification_metrics(Y_TRUE, PROBABILITIES, LABELS)
    assert list(metrics) == [
        "n", "accuracy", "balanced_accuracy", "macro_f1", "auc_macro", "ece", "nll", "per_class", "confusion_matrix",
    ]
    assert metrics["n"] == 6
    assert metrics["confusion_matrix"] == {"labels": LABELS, "matrix": [[2, 1, 0], [0, 1, 1], [0, 0, 1]]}
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    # recalls 2/3, 1/2, 1
    assert metrics["balanced_accuracy"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    # precisions 1, 1/2, 1/2 -> F1 0.8, 0.5, 2/3
    assert metrics["per_class"]["a"] == pytest.approx({"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3})
    assert metrics["per_class"]["b"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert metrics["per_class"]["c"] == pytest.approx({"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1})
    assert metrics["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    # AUC a: positives .7 .5 .2 vs negatives .1 .3 .1 -> 8/9; b: .85 .32 vs .2 .4 .55 .2 -> 6/8; c: 5/5
    assert metrics["auc_macro"] == pytest.approx((8 / 9 + 6 / 8 + 1) / 3)
    # ECE: bins {10: .7,.7 both right}, {7: .5 right}, {8: .55 wrong}, {12: .85 right}, {5: .38 wrong}
    assert metrics["ece"] == pytest.approx((0.3 + 0.3 + 0.5 + 0.55 + 0.15 + 0.38) / 6)
    assert metrics["nll"] == pytest.approx(-np.mean(np.log([0.7, 0.5, 0.2, 0.85, 0.32, 0.7])))
    assert json.loads(json.dumps(metrics)) == metrics, "plain JSON types only"
    assert type(metrics["accuracy"]) is float and type(metrics["confusion_matrix"]["matrix"][0][0]) is int


def test_balanced_accuracy_known_value() -> None:
    # scikit-learn's documented example: balanced_accuracy_score([0,1,0,0,1,0], [0,1,0,0,0,1]) == 0.625
    predictions = np.array([0, 1, 0, 0, 0, 1])
    probabilities = np.eye(2)[predictions] * 0.8 + 0.1
    metrics = classification_metrics([0, 1, 0, 0, 1, 0], probabilities, ["x", "y"])
    assert metrics["balanced_accuracy"] == pytest.approx(0.625)
    assert metrics["accuracy"] == pytest.approx(4 / 6)


def test_auc_known_value_and_ties() -> None:
    # scikit-learn's documented example: roc_auc_score([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75
    assert roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    # ties count one half: positives .5 .8 vs negatives .5 .2 .5 -> (3 + 0.5 + 1 + 0.5) / 6
    assert roc_auc([1, 1, 0, 0, 0], [0.5, 0.8, 0.5, 0.2, 0.5]) == pytest.approx(5 / 6)
    assert roc_auc([1, 0, 1, 0], [0.3, 0.3, 0.3, 0.3]) == pytest.approx(0.5)
    assert roc_auc([0, 0, 1], [0.9, 0.8, 0.1]) == pytest.approx(0.0)
    assert roc_auc([1, 1], [0.2, 0.4]) is None


def test_auc_matches_pairwise_counting() -> None:
    rng = np.random.default_rng(1)
    negative = rng.normal(0, 1, 40).round(1)  # rounding makes ties
    positive = rng.normal(1, 1, 30).round(1)
    pairs = (positive[:, None] > negative[None, :]).mean() + 0.5 * (positive[:, None] == negative[None, :]).mean()
    assert roc_auc(np.r_[np.zeros(40), np.ones(30)], np.r_[negative, positive]) == pytest.approx(pairs)


def test_absent_classes_are_left_out_of_balanced_accuracy_and_auc() -> None:
    # class "c" never occurs in y_true and is never predicted
    probabilities = np.array([[0.9, 0.05, 0.05], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.1, 0.8, 0.1]])
    metrics = classification_metrics([0, 1, 1, 1], probabilities, LABELS)
    assert metrics["balanced_accuracy"] == pytest.approx((1.0 + 2 / 3) / 2)
    assert metrics["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert metrics["macro_f1"] == pytest.approx((2 / 3 + 0.8) / 2)  # a: p 1/2 r 1 -> 2/3; b: p 1 r 2/3 -> 0.8
    assert metrics["auc_macro"] == pytest.approx(1.0)  # a: .9 vs .2 .6 .1; b: .7 .3 .8 vs .05
    assert one_vs_rest_auc([0, 1, 1, 1], probabilities)[2] is None
    # a class predicted but never true counts in macro F1 with F1 = 0 (and stays out of balanced accuracy)
    predicted_c = np.array([[0.9, 0.05, 0.05], [0.1, 0.1, 0.8]])
    metrics = classification_metrics([0, 1], predicted_c, LABELS)
    assert metrics["macro_f1"] == pytest.approx((1.0 + 0.0 + 0.0) / 3)
    assert metrics["balanced_accuracy"] == pytest.approx(0.5)


def test_ece_zero_when_confidence_matches_accuracy_and_reliability_curve_agrees() -> None:
    # four images at confidence 0.75, three right: perfectly calibrated
    probabilities = np.array([[0.75, 0.25]] * 4)
    assert expected_calibration_error([0, 0, 0, 1], probabilities) == pytest.approx(0.0)
    curve = reliability_curve(Y_TRUE, PROBABILITIES)
    assert len(curve["bin_edges"]) == 16 and sum(curve["count"]) == 6
    assert curve["count"][10] == 2 and curve["accuracy"][10] == 1.0 and curve["confidence"][10] == pytest.approx(0.7)
    assert curve["accuracy"][0] is None
    gaps = sum(n * abs(a - c) for n, a, c in zip(curve["count"], curve["accuracy"], curve["confidence"]) if n)
    assert gaps / 6 == pytest.approx(expected_calibration_error(Y_TRUE, PROBABILITIES))


def test_drift_of_a_model_against_itself() -> None:
    result = drift(PROBABILITIES, PROBABILITIES.copy(), Y_TRUE, LABELS)
    assert result["top1_agreement"] == 1.0
    for key in ("delta_accuracy", "delta_balanced_accuracy", "delta_macro_f1", "mean_abs_prob_diff",
                "max_abs_prob_diff", "mean_kl"):
        assert result[key] == 0.0, key
    assert result["per_class_recall_delta"] == {"a": 0.0, "b": 0.0, "c": 0.0}


def test_drift_by_hand() -> None:
    model = np.array([[0.6, 0.4], [0.3, 0.7]])
    reference = np.array([[0.8, 0.2], [0.6, 0.4]])
    result = drift(model, reference, [0, 1], ["x", "y"])
    assert result["top1_agreement"] == 0.5
    assert result["delta_accuracy"] == pytest.approx(1.0 - 0.5)
    assert result["delta_balanced_accuracy"] == pytest.approx(1.0 - 0.5)
    assert result["mean_abs_prob_diff"] == pytest.approx(0.25) and result["max_abs_prob_diff"] == pytest.approx(0.3)
    kl = (0.8 * math.log(0.8 / 0.6) + 0.2 * math.log(0.2 / 0.4) + 0.6 * math.log(0.6 / 0.3) + 0.4 * math.log(0.4 / 0.7)) / 2
    assert result["mean_kl"] == pytest.approx(kl)
    assert result["per_class_recall_delta"] == pytest.approx({"x": 0.0, "y": 1.0})
    assert json.loads(json.dumps(result)) == result


def test_softmax_and_temperature() -> None:
    logits = np.array([[2.0, 1.0, 0.0], [1000.0, 0.0, -1000.0]])
    probabilities = softmax(logits)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    np.testing.assert_allclose(probabilities[0], np.exp([2, 1, 0]) / np.exp([2, 1, 0]).sum())
    np.testing.assert_allclose(softmax(logits, temperature=2.0)[0], softmax(logits / 2.0)[0])
    with pytest.raises(DermtoolError):
        softmax(logits, temperature=0.0)


@pytest.mark.parametrize("true_temperature", [0.5, 1.0, 2.5])
def test_fit_temperature_recovers_a_known_temperature(true_temperature: float) -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(0.0, 3.0, size=(20_000, 5))
    probabilities = softmax(logits, temperature=true_temperature)
    cumulative = probabilities.cumsum(axis=1)
    y_true = np.minimum((rng.random((20_000, 1)) > cumulative).sum(axis=1), 4)  # labels drawn from the model
    fitted = fit_temperature(logits, y_true)
    assert type(fitted) is float
    assert fitted == pytest.approx(true_temperature, rel=0.05)


def test_sensitivity_specificity_and_threshold() -> None:
    # positive classes 0 and 2 (e.g. mel and bcc): referral score = p0 + p2
    y_true = np.array([0, 2, 0, 1, 1, 1, 2, 1])
    probabilities = np.array(
        [
            [0.5, 0.3, 0.2],  # positive, score 0.7
            [0.1, 0.5, 0.4],  # positive, score 0.5
            [0.1, 0.8, 0.1],  # positive, score 0.2
            [0.1, 0.6, 0.3],  # negative, score 0.4
            [0.0, 0.9, 0.1],  # negative, score 0.1
            [0.3, 0.1, 0.6],  # negative, score 0.9
            [0.2, 0.7, 0.1],  # positive, score 0.3
            [0.05, 0.9, 0.05],  # negative, score 0.1
        ]
    )
    result = sensitivity_specificity(y_true, probabilities, [0, 2], threshold=0.35)
    # referred (>= 0.35): scores .7 .5 .4 .9 -> TP 2 (.7 .5), FN 2 (.2 .3), FP 2 (.4 .9), TN 2
    assert result == pytest.approx({
        "threshold": 0.35, "sensitivity": 0.5, "specificity": 0.5,
        "true_positives": 2, "false_negatives": 2, "true_negatives": 2, "false_positives": 2,
    })
    # positives' scores sorted: .7 .5 .3 .2 -> 75 % needs 3 of 4 -> threshold 0.3
    threshold = threshold_for_sensitivity(y_true, probabilities, [0, 2], target=0.75)
    assert threshold == pytest.approx(0.3)
    assert sensitivity_specificity(y_true, probabilities, [0, 2], threshold)["sensitivity"] == 0.75
    assert threshold_for_sensitivity(y_true, probabilities, [0, 2], target=0.9) == pytest.approx(0.2)
    assert threshold_for_sensitivity(y_true, probabilities, [0, 2], target=0.5) == pytest.approx(0.5)
    with pytest.raises(DermtoolError):
        threshold_for_sensitivity([1, 1], probabilities[:2], [0])


@pytest.mark.parametrize(
    ("y_true", "probabilities", "labels"),
    [
        ([0, 1], np.ones((3, 2)) / 2, ["x", "y"]),  # rows != labels
        ([0, 2], np.ones((2, 2)) / 2, ["x", "y"]),  # class index out of range
        ([0, 1], np.ones((2, 3)) / 3, ["x", "y"]),  # columns != label names
        ([], np.ones((0, 2)), ["x", "y"]),  # nothing to score
        ([0, 1], np.array([[np.nan, 1.0], [0.5, 0.5]]), ["x", "y"]),
    ],
)
def test_bad_inputs_are_clear_errors(y_true: list, probabilities: np.ndarray, labels: list) -> None:
    with pytest.raises(DermtoolError):
        classification_metrics(y_true, probabilities, labels)


def test_metrics_module_does_not_import_tensorflow() -> None:
    import subprocess
    import sys

    code = "import sys, dermtool.metrics; sys.exit(1 if 'tensorflow' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_wilson_lower_bound_matches_the_reference_values():
    from dermtool.metrics import wilson_lower_bound

    # scipy.stats.binomtest(k, n).proportion_ci(confidence_level=0.90, method="wilson").low: the two-sided
    # 90 % interval's lower end is the one-sided 95 % bound
    assert wilson_lower_bound(9, 10, 0.95) == pytest.approx(0.6522813326641417, abs=1e-12)
    assert wilson_lower_bound(270, 300, 0.95) == pytest.approx(0.8678383125985951, abs=1e-12)
    assert wilson_lower_bound(0, 5) == pytest.approx(0.0, abs=1e-12)
    assert wilson_lower_bound(5000, 10000) > wilson_lower_bound(50, 100)  # more data, tighter bound
    with pytest.raises(DermtoolError):
        wilson_lower_bound(3, 2)
    with pytest.raises(DermtoolError):
        wilson_lower_bound(1, 2, confidence=1.0)


def test_threshold_with_a_confidence_margin_refers_more_positives():
    """With ``confidence``, the threshold is set where the lower bound (not the point estimate) of the
    validation sensitivity reaches the target: lower, so at least as sensitive."""
    from dermtool.metrics import wilson_lower_bound

    generator = np.random.default_rng(0)
    y_true = np.repeat([0, 1], [300, 700])  # class 0 is the positive ("malignant") class
    score = np.where(y_true == 0, generator.beta(5, 2, 1000), generator.beta(2, 5, 1000))
    probabilities = np.stack([score, 1 - score], axis=1)
    plain = threshold_for_sensitivity(y_true, probabilities, [0], target=0.9)
    margin = threshold_for_sensitivity(y_true, probabilities, [0], target=0.9, confidence=0.95)
    assert margin < plain
    at_margin = sensitivity_specificity(y_true, probabilities, [0], margin)
    assert wilson_lower_bound(at_margin["true_positives"], 300, 0.95) >= 0.9
    # one positive fewer referred and the bound falls below the target: the highest such threshold
    assert wilson_lower_bound(at_margin["true_positives"] - 1, 300, 0.95) < 0.9
    assert sensitivity_specificity(y_true, probabilities, [0], plain)["sensitivity"] == pytest.approx(0.9)
    # unreachable bound (3 positives): every positive is referred
    assert threshold_for_sensitivity([0, 0, 0, 1], probabilities[:4], [0], 0.9, confidence=0.95) == pytest.approx(
        probabilities[:3, 0].min())
