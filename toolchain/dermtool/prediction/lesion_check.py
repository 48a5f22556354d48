"""The lesion check: a second head of the classifier that answers "is there a skin lesion in this photo?".

It is one logistic unit on the classifier's pooled backbone features (the ``pooled`` layer, the input of the
class head), so it costs nothing at run time and it **travels inside the exported .tflite**: the export adds
it as a second output ``lesion_check`` computed from the same input tensor, with two categories in this
order, ``lesion`` and ``not_a_lesion`` (softmax probabilities; uint8 in the int8 export like the class
probabilities). MediaPipe's ``ImageClassifier`` returns it as its own classification head
(``head_name == "lesion_check"``, head index 1); a photo is rejected (outcome ``not_a_lesion``) when
``P(not_a_lesion) >= threshold``, the threshold in the model's ``dermtool.json`` (key ``lesion_check``).

Where the numbers live: ``RUN/lesion_check.json`` (plain numbers, :data:`FILE_NAME`), written by
``dermtool lesion-check RUN`` (:mod:`dermtool.prediction.lesion_check_fit`, which fits it leaving each source
out); the export copies it into ``dermtool.json`` and into the graph. The Keras run folder computes the very
same head from the same features (:func:`features_and_logits_model`), so a run folder and its export agree.

The logistic unit ``P(not_a_lesion) = sigmoid(w . f + b)`` is written as a ``Dense(2)`` + softmax with the
kernel columns ``(-w/2, w/2)`` and biases ``(-b/2, b/2)``: ``softmax`` of those two logits is exactly
``(1 - p, p)``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from dermtool import DermtoolError
from dermtool.files import read_text_file

FILE_NAME = "lesion_check.json"
FORMAT_VERSION = 1
HEAD_NAME = "lesion_check"
#: output order of the head: column 0 is P(lesion), column 1 P(not_a_lesion)
CATEGORIES: tuple[str, str] = ("lesion", "not_a_lesion")
#: the Dense layer that computes the head's two logits in a model with the head attached
LOGITS_LAYER_NAME = "lesion_check_logits"
#: the label file of the head's output tensor in the .tflite metadata
LABELS_FILE_NAME = "lesion_check_labels.txt"
#: said by every client when a model has no lesion check (older exports)
NO_CHECK_MESSAGE = ("this model has no lesion check (exported before there was one, or from a run without "
                    "lesion_check.json): photos that show no skin lesion are not rejected; fit one with "
                    "`dermtool lesion-check RUN` and export again")


@dataclass
class LesionCheck:
    """A fitted lesion check: ``P(not_a_lesion) = sigmoid(weights . pooled_features + bias)``."""

    weights: np.ndarray  # (F,) on the raw pooled features (the standardisation is folded in)
    bias: float
    threshold: float  # reject when P(not_a_lesion) >= threshold
    feature_layer: str = "pooled"
    fitting: dict[str, Any] = field(default_factory=dict)  # how it was fitted (regularisation, counts, sources)
    figures: dict[str, Any] = field(default_factory=dict)  # measured false rejections and catches

    @property
    def feature_count(self) -> int:
        return int(self.weights.shape[0])

    def not_a_lesion_probability(self, features: np.ndarray) -> np.ndarray:
        """``P(not_a_lesion)`` (float64, N) for pooled features ``(N, F)``."""
        features = np.asarray(features, np.float64)
        if features.ndim != 2 or features.shape[1] != self.feature_count:
            raise DermtoolError(f"the lesion check takes {self.feature_count} pooled features per image, got an "
                                f"array of shape {features.shape}; it belongs to another model")
        return sigmoid(features @ self.weights + self.bias)

    def rejects(self, not_a_lesion: np.ndarray | float) -> np.ndarray:
        """True where ``P(not_a_lesion) >= threshold``."""
        return np.asarray(not_a_lesion) >= self.threshold

    def dense_weights(self) -> tuple[np.ndarray, np.ndarray]:
        """(kernel ``(F, 2)``, bias ``(2,)``) of the ``Dense(2)`` whose softmax is ``(1 - p, p)``."""
        half = self.weights.astype(np.float32) / 2
        kernel = np.stack([-half, half], axis=1)
        bias = np.array([-self.bias / 2, self.bias / 2], np.float32)
        return kernel, bias

    # ---- (de)serialisation ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "method": "logistic regression on the pooled backbone features; P(not_a_lesion) = "
                      "sigmoid(weights . features + bias); reject when P(not_a_lesion) >= threshold",
            "head_name": HEAD_NAME,
            "categories": list(CATEGORIES),
            "feature_layer": self.feature_layer,
            "threshold": float(self.threshold),
            "bias": float(self.bias),
            "weights": [float(value) for value in self.weights],
            "fitting": self.fitting,
            "figures": self.figures,
        }

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str = "lesion check") -> "LesionCheck":
        if not isinstance(values, Mapping):
            raise DermtoolError(f"{source}: the lesion check is not a JSON object")
        if values.get("format_version") != FORMAT_VERSION:
            raise DermtoolError(f"{source}: lesion check format_version {values.get('format_version')!r} is not "
                                f"{FORMAT_VERSION}; fit it again with `dermtool lesion-check RUN`")
        if list(values.get("categories") or []) != list(CATEGORIES):
            raise DermtoolError(f"{source}: lesion check categories {values.get('categories')!r} are not "
                                f"{list(CATEGORIES)}")
        try:
            weights = np.asarray(values["weights"], np.float64)
            check = cls(weights=weights, bias=float(values["bias"]), threshold=float(values["threshold"]),
                        feature_layer=str(values.get("feature_layer", "pooled")),
                        fitting=dict(values.get("fitting") or {}), figures=dict(values.get("figures") or {}))
        except (KeyError, TypeError, ValueError) as error:
            raise DermtoolError(f"{source}: malformed lesion check ({error!r}); fit it again with "
                                "`dermtool lesion-check RUN`") from None
        if weights.ndim != 1 or weights.size < 1 or not np.all(np.isfinite(weights)) or not math.isfinite(check.bias):
            raise DermtoolError(f"{source}: lesion check weights must be finite numbers (one per pooled feature)")
        if not 0.0 < check.threshold <= 1.0:
            raise DermtoolError(f"{source}: lesion check threshold must be in (0, 1], got {check.threshold!r}")
        return check


def sigmoid(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, np.float64)
    return np.where(values >= 0, 1 / (1 + np.exp(-np.abs(values))), np.exp(-np.abs(values)) / (1 + np.exp(-np.abs(values))))


def metadata_block(check: LesionCheck) -> dict[str, Any]:
    """What ``dermtool.json`` says about the head (``"lesion_check"`` key): no weights (they are in the graph)."""
    return {
        "head_name": HEAD_NAME,
        "categories": list(CATEGORIES),
        "output_index": 1,
        "threshold": float(check.threshold),
        "rule": "reject the photo (outcome not_a_lesion) when P(not_a_lesion) >= threshold",
        "fitting": check.fitting,
        "figures": check.figures,
    }


def threshold_from_metadata(metadata: Mapping[str, Any], source: str = "dermtool.json") -> float | None:
    """The head's threshold from a model's ``dermtool.json``; None for a model without the head."""
    block = metadata.get(HEAD_NAME)
    if not block:
        return None
    if not isinstance(block, Mapping):
        raise DermtoolError(f"{source}: 'lesion_check' is not an object; the file is corrupt or was edited")
    threshold = block.get("threshold")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold <= 1:
        raise DermtoolError(f"{source}: lesion_check.threshold must be a number in (0, 1], got {threshold!r}")
    if list(block.get("categories") or []) != list(CATEGORIES):
        raise DermtoolError(f"{source}: lesion_check.categories must be {list(CATEGORIES)}")
    return float(threshold)


# ---- run folders -------------------------------------------------------------------------------------------


def run_file(run_path: str | Path) -> Path:
    return Path(getattr(run_path, "path", run_path)) / FILE_NAME


def read_file(path: str | Path) -> LesionCheck:
    path = Path(path)
    try:
        values = json.loads(read_text_file(path, "lesion check"))
    except (json.JSONDecodeError, RecursionError) as error:
        raise DermtoolError(f"{path}: not valid JSON ({error}); fit it again with `dermtool lesion-check RUN`") from None
    return LesionCheck.from_dict(values, str(path))


def read_run_check(run_path: str | Path) -> LesionCheck | None:
    """``RUN/lesion_check.json``, or None when the run has none."""
    path = run_file(run_path)
    return read_file(path) if path.exists() else None


# ---- Keras: the features, and the head attached to a classifier ----------------------------------------------


def _feature_layer(model: Any, name: str) -> Any:
    """The pooled layer of ``model`` (also when QAT wrapped it as ``quant_pooled``)."""
    for layer in model.layers:
        if layer.name == name:
            return layer
    for layer in model.layers:
        if layer.name.endswith(name) and "pool" in type(layer).__name__.lower() + layer.name:
            return layer
    raise DermtoolError(f"the model has no layer named {name!r}: the lesion check reads the pooled features of a "
                        "dermtool classifier")


def features_and_logits_model(model: Any, feature_layer: str = "pooled") -> Any:
    """A Keras model from the classifier's input to ``[logits, pooled features]`` (weights shared)."""
    import tf_keras as keras

    try:
        logits = model.get_layer("logits").output
    except ValueError:
        raise DermtoolError("the model has no layer named 'logits'") from None
    return keras.Model(model.inputs, [logits, _feature_layer(model, feature_layer).output],
                       name="logits_and_features")


def attach_head(model: Any, check: LesionCheck) -> Any:
    """A Keras model with the classifier's output first and the lesion check second (``[probabilities,
    lesion_check]``), sharing every weight with ``model``. Call it on the model that is converted: after
    temperature folding, pruning, QAT and bias correction."""
    import tf_keras as keras

    pooled = _feature_layer(model, check.feature_layer).output
    width = int(pooled.shape[-1])
    if width != check.feature_count:
        raise DermtoolError(f"the lesion check was fitted on {check.feature_count} pooled features; this model has "
                            f"{width}: fit it again for this run (`dermtool lesion-check RUN`)")
    dense = keras.layers.Dense(2, name=LOGITS_LAYER_NAME)
    logits = dense(pooled)
    probabilities = keras.layers.Activation("softmax", dtype="float32", name=HEAD_NAME)(logits)
    dense.set_weights(list(check.dense_weights()))
    return keras.Model(model.inputs, [model.outputs[0], probabilities], name=f"{model.name}_with_lesion_check")


__all__ = [
    "CATEGORIES",
    "FILE_NAME",
    "HEAD_NAME",
    "LABELS_FILE_NAME",
    "LesionCheck",
    "NO_CHECK_MESSAGE",
    "attach_head",
    "features_and_logits_model",
    "metadata_block",
    "read_file",
    "read_run_check",
    "run_file",
    "threshold_from_metadata",
]
