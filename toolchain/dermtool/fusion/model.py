"""The fusion model: the image model's probabilities and the questionnaire's answers, combined in a few lines
that any language can run after MediaPipe (or any runtime) has run the unchanged image model::

    z[c] = image_scale * log(max(p[c], probability_floor)) + sum over answered questions q of weights[q][answer][c]
    fused = softmax(z)

``weights[q][level]`` is one number per class: a question left unknown adds nothing, so with every answer
unknown the fused argmax is the image model's (``image_scale`` > 0 only sharpens or flattens). It is a
multinomial logistic regression with the image's log-probabilities as an offset and no intercept (the class
priors are already in the image model), fitted by :func:`fit_fusion` with an L2 penalty on the weights.
The exported model carries it in ``dermtool.json`` (``fusion``); :meth:`Fusion.to_dict` / :meth:`Fusion.from_dict`
are that JSON, and ``from_dict`` checks every number (a metadata file is untrusted input: it is only data).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from dermtool import DermtoolError
from dermtool.fusion.questionnaire import QUESTIONS, Answers, question, schema

#: Probabilities are floored before the log: an int8 model's uint8 output can be exactly 0.
PROBABILITY_FLOOR = 1e-4
FORMAT = "dermtool-fusion/1"


def feature_names() -> list[tuple[str, str]]:
    """``(question, level)`` of every answer the fusion has weights for, in a fixed order."""
    return [(item.name, level) for item in QUESTIONS for level in item.levels]


def encode_answers(answers: Sequence[Answers]) -> np.ndarray:
    """One row of 0/1 per image: 1 where the image's answer to a question is that level (unknown: all 0)."""
    columns = {name: index for index, name in enumerate(feature_names())}
    matrix = np.zeros((len(answers), len(columns)), dtype=np.float64)
    for row, image_answers in enumerate(answers):
        for name, level in image_answers.items():
            key = (question(name).name, level)
            if key not in columns:
                raise DermtoolError(f"answer {name}={level!r} is not a level of that question")
            matrix[row, columns[key]] = 1.0
    return matrix


def _log_probabilities(probabilities: np.ndarray, floor: float) -> np.ndarray:
    values = np.asarray(probabilities, dtype=np.float64)
    if values.ndim != 2:
        raise DermtoolError(f"fusion: probabilities must be an (images, classes) array, got shape {values.shape}")
    return np.log(np.maximum(values, floor))


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exponentials = np.exp(shifted)
    return exponentials / exponentials.sum(axis=1, keepdims=True)


@dataclass
class Fusion:
    """A fitted fusion: ``weights[question][level]`` holds one additive logit per class (``labels`` order)."""

    labels: list[str]
    image_scale: float
    weights: dict[str, dict[str, list[float]]]
    probability_floor: float = PROBABILITY_FLOOR
    fitted_on: dict[str, Any] | None = None  # what it was fitted on (images per source, penalty), for cards

    def _matrix(self) -> np.ndarray:
        rows = [self.weights.get(name, {}).get(level, [0.0] * len(self.labels)) for name, level in feature_names()]
        return np.asarray(rows, dtype=np.float64).reshape(len(rows), len(self.labels))

    def logits(self, probabilities: np.ndarray, answers: Sequence[Answers]) -> np.ndarray:
        log_p = _log_probabilities(probabilities, self.probability_floor)
        if log_p.shape[1] != len(self.labels):
            raise DermtoolError(f"fusion: {log_p.shape[1]} probabilities per image for {len(self.labels)} labels")
        if len(answers) != len(log_p):
            raise DermtoolError(f"fusion: {len(answers)} sets of answers for {len(log_p)} images")
        return self.image_scale * log_p + encode_answers(answers) @ self._matrix()

    def apply(self, probabilities: np.ndarray, answers: Sequence[Answers]) -> np.ndarray:
        """Fused probabilities ``(N, C)`` for the image model's ``probabilities`` and each image's answers."""
        return _softmax(self.logits(probabilities, answers))

    def apply_one(self, probabilities: Sequence[float], answers: Answers) -> np.ndarray:
        return self.apply(np.asarray([probabilities], dtype=np.float64), [answers])[0]

    def to_dict(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "format": FORMAT,
            "formula": "softmax(image_scale * log(max(p, probability_floor)) + sum of weights[question][answer])",
            "labels": list(self.labels),
            "image_scale": float(self.image_scale),
            "probability_floor": float(self.probability_floor),
            "questions": schema(),
            "weights": {name: {level: [round(float(value), 6) for value in values] for level, values in levels.items()}
                        for name, levels in self.weights.items()},
        }
        if self.fitted_on:
            item["fitted_on"] = dict(self.fitted_on)
        return item

    @classmethod
    def from_dict(cls, item: Mapping[str, Any], where: str = "fusion",
                  model_labels: Sequence[str] | None = None) -> "Fusion":
        """A Fusion from its JSON, every field checked (a one-line DermtoolError naming ``where`` otherwise);
        with ``model_labels``, its labels must be those (the model it is applied after)."""
        def fail(problem: str) -> DermtoolError:
            return DermtoolError(f"{where}: {problem}")

        if not isinstance(item, Mapping) or item.get("format") != FORMAT:
            raise fail(f"not a dermtool fusion (expected format {FORMAT!r})")
        labels = item.get("labels")
        if not isinstance(labels, list) or not labels or not all(isinstance(label, str) for label in labels):
            raise fail("labels must be a non-empty list of class names")
        if model_labels is not None and labels != list(model_labels):
            raise fail(f"its labels {labels} are not the model's {list(model_labels)}")
        numbers = {key: item.get(key) for key in ("image_scale", "probability_floor")}
        for key, value in numbers.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise fail(f"{key} must be a positive number, got {value!r}")
        weights: dict[str, dict[str, list[float]]] = {}
        raw = item.get("weights")
        if not isinstance(raw, Mapping):
            raise fail("weights must map question -> answer -> one number per class")
        for name, levels in raw.items():
            try:
                known = question(str(name))
            except DermtoolError as error:
                raise fail(str(error)) from None
            if not isinstance(levels, Mapping):
                raise fail(f"weights[{name!r}] must map answers to numbers")
            for level, values in levels.items():
                if level not in known.levels:
                    raise fail(f"weights[{name!r}] has an answer {level!r} that is not one of {', '.join(known.levels)}")
                if (not isinstance(values, list) or len(values) != len(labels) or not all(
                        isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
                        for value in values)):
                    raise fail(f"weights[{name!r}][{level!r}] must be {len(labels)} finite numbers")
                weights.setdefault(known.name, {})[level] = [float(value) for value in values]
        return cls(list(labels), float(numbers["image_scale"]), weights, float(numbers["probability_floor"]),
                   dict(item["fitted_on"]) if isinstance(item.get("fitted_on"), Mapping) else None)


def balanced_weights(y_true: np.ndarray, groups: Sequence[str]) -> np.ndarray:
    """Sample weights that give every group (source) the same total and, within it, every class the same
    share: the fit then aims at balanced accuracy on each source, not at the largest one."""
    y_true = np.asarray(y_true)
    groups = np.asarray(groups)
    weights = np.zeros(len(y_true), dtype=np.float64)
    for group in np.unique(groups):
        in_group = groups == group
        classes = np.unique(y_true[in_group])
        for label in classes:
            members = in_group & (y_true == label)
            weights[members] = 1.0 / (len(classes) * members.sum())
    return weights / weights.sum() * len(weights)


def fit_fusion(probabilities: np.ndarray, answers: Sequence[Answers], y_true: np.ndarray, labels: Sequence[str],
               *, sample_weight: np.ndarray | None = None, l2: float = 0.01,
               fit_image_scale: bool = True) -> Fusion:
    """Fit the weights (and ``image_scale``) by weighted maximum likelihood with an L2 penalty ``l2`` on the
    weights (L-BFGS). ``y_true``: class indices into ``labels``."""
    from scipy.optimize import minimize

    log_p = _log_probabilities(probabilities, PROBABILITY_FLOOR)
    features = encode_answers(answers)
    y_true = np.asarray(y_true, dtype=np.int64)
    count, classes = log_p.shape
    if count == 0 or len(features) != count or len(y_true) != count:
        raise DermtoolError(f"fit_fusion: {count} images, {len(features)} sets of answers, {len(y_true)} labels")
    if classes != len(labels):
        raise DermtoolError(f"fit_fusion: {classes} probabilities per image for {len(labels)} labels")
    sample = np.ones(count) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    sample = sample / sample.sum()
    target = np.eye(classes)[y_true]
    used = features.sum(axis=0) > 0  # answers never seen in fitting keep weight 0
    shape = (features.shape[1], classes)

    def objective(parameters: np.ndarray) -> tuple[float, np.ndarray]:
        scale = parameters[0] if fit_image_scale else 1.0
        matrix = parameters[1:].reshape(shape)
        logits = scale * log_p + features @ matrix
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_norm = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        log_q = shifted - log_norm
        loss = -(sample * (target * log_q).sum(axis=1)).sum() + l2 * float((matrix ** 2).sum())
        residual = (np.exp(log_q) - target) * sample[:, None]
        gradient_matrix = features.T @ residual + 2.0 * l2 * matrix
        gradient_scale = float((residual * log_p).sum()) if fit_image_scale else 0.0
        return loss, np.concatenate([[gradient_scale], gradient_matrix.ravel()])

    start = np.concatenate([[1.0], np.zeros(shape[0] * shape[1])])
    bounds = [(0.05, 20.0)] + [(None, None)] * (shape[0] * shape[1])
    result = minimize(objective, start, jac=True, method="L-BFGS-B", bounds=bounds,
                      options={"maxiter": 2000})
    scale = float(result.x[0]) if fit_image_scale else 1.0
    matrix = result.x[1:].reshape(shape)
    weights: dict[str, dict[str, list[float]]] = {}
    for index, (name, level) in enumerate(feature_names()):
        if used[index]:
            weights.setdefault(name, {})[level] = [float(value) for value in matrix[index]]
    return Fusion(list(labels), scale, weights, fitted_on={"images": int(count), "l2": float(l2)})
