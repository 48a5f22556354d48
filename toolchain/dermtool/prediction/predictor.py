"""Calibrated probabilities and a referral outcome per image, from a run folder or a .tflite model.

``Predictor(model)`` loads either a **run folder** (float Keras model, calibrated with the run's temperature,
through :class:`dermtool.run.RunFolder`) or a **.tflite** (LiteRT through :class:`dermtool.runtime.TFLiteModel`;
its softmax is already calibrated, the temperature is folded into its logits). ``predict(images)`` returns
one dict per image, exactly the ``predict --json`` object of the contract::

    {image, outcome, label, probability, probabilities: {LABEL: p}, top_k: [{label, name, probability}], ood_score,
     lesion_check: {not_a_lesion: p, threshold: t} or null}

Outcomes, checked in this order (the first that applies wins):

1. ``not_a_lesion``: the model's lesion check (:mod:`dermtool.prediction.lesion_check`, its second head: the
   ``lesion_check`` output of a .tflite, or the same head on the run folder's pooled features) says there is
   no skin lesion in the photo: ``P(not_a_lesion) >= `` its threshold. Checked first: the class
   probabilities of a non-lesion photo are meaningless, so neither a referral nor a benign answer may be
   given for it. ``ood_score`` (a contract key) holds the same ``P(not_a_lesion)``; both are null for a
   model without the check (older exports: a note says "this model has no lesion check").
2. ``refer``: the summed probability of the malignant classes (``mel``, ``bcc``, ``akiec`` by default) is at
   or above the referral threshold. The threshold comes from the run's ``metrics.json`` (``referral.threshold``,
   chosen on the validation split so that sensitivity is at least 0.90 with 95 % confidence) or, for a
   .tflite, from its ``dermtool.json`` metadata; without either, :data:`DEFAULT_REFERRAL_THRESHOLD` (0.3) with a warning.
   Checked before ``uncertain``: an unsure model with a high malignant probability must still refer.
3. ``uncertain``: the top probability is below the uncertainty threshold (0.5 by default).
4. ``benign``: none of the above.

A model whose outputs are not finite (NaN or infinity: e.g. weights overwritten with NaN) never gives an
outcome: it is probed with a grey image when it loads and every prediction is checked; either raises
:class:`dermtool.ModelOutputError` (fail closed).

``label``/``probability``/``probabilities``/``top_k`` are always filled (also for ``not_a_lesion``), for
callers that measure; an app shows none of them for a rejected photo. Images are decoded and resized with
:func:`dermtool.data.preprocess.load_image` (EXIF orientation applied, metadata dropped) and never stored.
An image that cannot be read gives ``{image, error}`` in its place; the others are still predicted.
"""

from __future__ import annotations

import os
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence, Union

import numpy as np

from dermtool import DermtoolError, check_finite_outputs, metrics
from dermtool.data.preprocess import load_image, normalize, resize
from dermtool.fusion.explain import answer_effects
from dermtool.fusion.fitting import read_run_fusion
from dermtool.fusion.model import Fusion
from dermtool.fusion.questionnaire import read_answers
from dermtool.prediction.lesion_check import (NO_CHECK_MESSAGE, features_and_logits_model, metadata_block,
                                              read_run_check, threshold_from_metadata)
from dermtool.run import RunFolder
from dermtool.runtime import TFLiteModel

CLASS_NAMES: dict[str, str] = {
    "mel": "melanoma",
    "nv": "melanocytic nevus",
    "bcc": "basal cell carcinoma",
    "akiec": "actinic keratosis / intraepithelial carcinoma",
    "bkl": "benign keratosis-like lesion",
    "df": "dermatofibroma",
    "vasc": "vascular lesion",
    "scc": "squamous cell carcinoma",
}

DEFAULT_MALIGNANT_CLASSES: tuple[str, ...] = ("mel", "bcc", "akiec", "scc")
#: referral threshold used when neither metrics.json nor the .tflite metadata provides one
DEFAULT_REFERRAL_THRESHOLD = 0.3
DEFAULT_UNCERTAINTY_THRESHOLD = 0.5
OUTCOMES: tuple[str, ...] = ("benign", "refer", "uncertain", "not_a_lesion")
UPLOAD_NAME = "<upload>"
BATCH_SIZE = 32

ImageInput = Union[str, os.PathLike, bytes, bytearray, memoryview, np.ndarray]

OUTCOME_HEADLINES: dict[str, str] = {
    "refer": "REFER: have a dermatologist examine this lesion",
    "uncertain": "UNCERTAIN: the model is not confident; do not rely on this result",
    "not_a_lesion": "NOT A LESION IMAGE: the lesion check found no skin lesion in this photo",
    "benign": "No referral signal from the model (this is not a diagnosis)",
}


def class_name(label: str) -> str:
    """Human-readable name of a class code (the code itself for classes outside HAM10000)."""
    return CLASS_NAMES.get(label, label)


@dataclass(frozen=True)
class Thresholds:
    """The decision rule's numbers (all on calibrated probabilities)."""

    referral: float
    uncertainty: float
    malignant_classes: tuple[str, ...]
    referral_source: str  # "metrics.json" | "metadata" | "argument" | "default"


def decide_outcome(
    probabilities: np.ndarray, labels: Sequence[str], thresholds: Thresholds, not_a_lesion: bool
) -> str:
    """The outcome for one row of calibrated probabilities (see the module docstring for the order)."""
    if not_a_lesion:
        return "not_a_lesion"
    if malignant_probability(probabilities, labels, thresholds.malignant_classes) >= thresholds.referral:
        return "refer"
    if float(np.max(probabilities)) < thresholds.uncertainty:
        return "uncertain"
    return "benign"


def malignant_probability(probabilities: np.ndarray, labels: Sequence[str], malignant: Iterable[str]) -> float:
    """Summed probability of the malignant classes present in ``labels``."""
    wanted = set(malignant)
    return float(sum(float(p) for label, p in zip(labels, probabilities) if label in wanted))


def describe_outcome(result: Mapping[str, Any], thresholds: Thresholds, labels: Sequence[str]) -> str:
    """One or two sentences in plain words explaining ``result["outcome"]`` (for the CLI and the web app)."""
    outcome = result["outcome"]
    probabilities = result["probabilities"]
    malignant = malignant_probability(
        np.array([probabilities[label] for label in labels]), labels, thresholds.malignant_classes
    )
    names = ", ".join(class_name(label) for label in thresholds.malignant_classes if label in labels)
    top = f"{class_name(result['label'])} ({result['probability'] * 100:.1f} %)"
    if outcome == "not_a_lesion":
        return (
            f"{OUTCOME_HEADLINES[outcome]}. No result is given; check that the photo shows a skin lesion, "
            "close up, in focus and properly exposed."
        )
    if outcome == "refer":
        return (
            f"{OUTCOME_HEADLINES[outcome]}. The probability of a malignant lesion ({names}) is "
            f"{malignant * 100:.1f} %, at or above the referral threshold of {thresholds.referral * 100:.1f} %."
        )
    if outcome == "uncertain":
        return (
            f"{OUTCOME_HEADLINES[outcome]}. Its most likely class, {top}, is below the confidence threshold of "
            f"{thresholds.uncertainty * 100:.0f} %; a clinician must assess the lesion."
        )
    return (
        f"{OUTCOME_HEADLINES[outcome]}. Most likely: {top}; malignant probability {malignant * 100:.1f} % is "
        f"below the referral threshold of {thresholds.referral * 100:.1f} %. Any change or concern still "
        "warrants a clinician's examination."
    )


def _model_threshold(value: Any, model: Path, source: str, field: str) -> float:
    """A threshold read from a model's files: a number in [0, 1], else a one-line error naming the field (a
    NaN or 2.0 would silently turn every referral into "benign")."""
    import math

    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not 0 <= value <= 1:
        raise DermtoolError(f"{model}: {source} {field} must be a number in [0, 1], got {value!r}; the file is "
                            "corrupt or was edited")
    return float(value)


# ---- model backends ----------------------------------------------------------------------------------


class _RunBackend:
    kind = "run"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.run = RunFolder(path)
        self.labels = list(self.run.labels)
        self.input_spec = self.run.input_spec
        self.temperature = self.run.temperature
        self.model = self.run.load_model()  # loaded once, now: a broken model fails here with the run's message
        self.run.use_model(self.model)

        self.check = read_run_check(self.run)  # RUN/lesion_check.json, or None
        self.lesion_check = metadata_block(self.check) if self.check is not None else None
        self._function = None

    @property
    def referral(self) -> dict[str, Any]:
        return dict(self.run.metrics.get("referral") or {})

    @property
    def melanoma(self) -> dict[str, Any]:
        return dict(self.run.metrics.get("melanoma") or {})

    def fusion_dict(self) -> dict[str, Any] | None:
        """RUN/fusion.json (written by ``dermtool fuse``), checked; None when the run has none."""
        return read_run_fusion(self.run)

    def predict(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(calibrated probabilities, P(not_a_lesion) or None): ``RunFolder.predict_probabilities``, or with a
        lesion check one pass through the model to its logits and pooled features."""
        if len(images) == 0:
            return np.zeros((0, len(self.labels))), (None if self.check is None else np.zeros(0))
        if self.check is None:
            return self.run.predict_probabilities(np.asarray(images)), None
        import tensorflow as tf

        if self._function is None:
            both = features_and_logits_model(self.model, self.check.feature_layer)
            self._function = tf.function(lambda batch: both(batch, training=False), reduce_retracing=True)
        logits, features = [], []
        for start in range(0, len(images), 64):
            batch = normalize(np.asarray(images[start:start + 64]), self.input_spec).astype(np.float32)
            first, second = self._function(tf.constant(batch))
            logits.append(np.asarray(first, np.float64))
            features.append(np.asarray(second, np.float64))
        probabilities = metrics.softmax(np.concatenate(logits), self.temperature)
        return probabilities, self.check.not_a_lesion_probability(np.concatenate(features))


class _TFLiteBackend:
    kind = "tflite"

    def __init__(self, path: Path, threads: int) -> None:
        self.path = path
        try:
            self.model = TFLiteModel(path, threads=threads)
        except DermtoolError:
            raise
        except Exception as error:  # anything else from the interpreter: still one clear line
            raise DermtoolError(f"{path}: not a usable TFLite model ({type(error).__name__}: {error})") from None
        self.metadata: dict[str, Any] = dict(self.model.metadata or {})
        self.labels = list(self.model.require_labels())
        self.input_spec = self.model.require_input_spec()

        threshold_from_metadata(self.metadata, f"{path} (dermtool.json)")  # checked at load
        has_output = self.model.lesion_check_output is not None
        if has_output != bool(self.metadata.get("lesion_check")):
            raise DermtoolError(f"{path}: its lesion-check output and its dermtool.json lesion_check disagree (one is "
                                "missing); the file is corrupt or was edited")
        self.lesion_check: dict[str, Any] | None = dict(self.metadata["lesion_check"]) if has_output else None

    @property
    def referral(self) -> dict[str, Any]:
        return dict(self.metadata.get("referral") or {})

    @property
    def melanoma(self) -> dict[str, Any]:
        return dict(self.metadata.get("melanoma") or {})

    def fusion_dict(self) -> dict[str, Any] | None:
        """The ``fusion`` of the model's dermtool.json metadata, or None."""
        return self.metadata.get("fusion")

    def predict(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(probabilities, P(not_a_lesion) from the model's second output, or None without one)."""
        probabilities, not_a_lesion = self.model.predict_with_check(images)
        return (np.asarray(probabilities, dtype=np.float64),
                None if not_a_lesion is None else np.asarray(not_a_lesion, dtype=np.float64))


def _open_backend(model: str | os.PathLike, threads: int):
    path = Path(model)
    if not path.exists():
        raise DermtoolError(f"model not found: {path} (give a run folder written by `dermtool train` or a .tflite)")
    if path.is_dir():
        return _RunBackend(path)  # RunFolder names whatever a finished run folder is missing
    if path.suffix.lower() == ".tflite":
        return _TFLiteBackend(path, threads)
    raise DermtoolError(
        f"{path}: unsupported model file; give a run folder (from `dermtool train`) or a .tflite (from `dermtool export`)"
    )


# ---- the predictor -----------------------------------------------------------------------------------


class _LoadedModel:
    """One loaded model with its lock, shared by Predictors of other options."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.lock = threading.Lock()


class Predictor:
    """Predict outcomes for images with one model (run folder or .tflite). Thread-safe.

    Arguments beyond the model override the decision rule:

    - ``uncertainty_threshold``: top probability below which the outcome is ``uncertain`` (default 0.5).
    - ``referral_threshold``: malignant probability at or above which the outcome is ``refer`` (default: the
      model's own, see the module docstring).
    - ``malignant_classes``: the classes summed for referral (default: those the threshold was chosen for,
      else mel, bcc, akiec).
    - ``lesion_check``: False switches the lesion check off (``lesion_check`` and ``ood_score`` are then None);
      ``lesion_check_threshold`` replaces its threshold (a P(not_a_lesion) in (0, 1]). ``ood`` is an alias of
      ``lesion_check`` (the switch of the image-statistics guard that the lesion check replaced).
    """

    def __init__(
        self,
        model_path_or_run: str | os.PathLike,
        threads: int = 1,
        *,
        uncertainty_threshold: float = DEFAULT_UNCERTAINTY_THRESHOLD,
        referral_threshold: float | None = None,
        malignant_classes: Sequence[str] | None = None,
        lesion_check: bool = True,
        lesion_check_threshold: float | None = None,
        ood: bool | None = None,
    ) -> None:
        if ood is not None:  # the retired image-statistics guard's switch, kept as an alias of lesion_check
            lesion_check = bool(ood)
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise DermtoolError(f"threads must be a positive integer, got {threads!r}")
        self.model_path = Path(model_path_or_run)
        self._shared = _LoadedModel(_open_backend(self.model_path, threads))
        self._configure(uncertainty_threshold, referral_threshold, malignant_classes, lesion_check,
                        lesion_check_threshold)
        self._probe()

    def _probe(self) -> None:
        """Fail closed at load: a mid-grey image must give finite probabilities (ModelOutputError if not)."""
        size = int(self.input_spec.image_size)
        self.predict_arrays(np.full((1, size, size, 3), 128, dtype=np.uint8))

    def _configure(
        self,
        uncertainty_threshold: float,
        referral_threshold: float | None,
        malignant_classes: Sequence[str] | None,
        lesion_check: bool,
        lesion_check_threshold: float | None,
    ) -> None:
        for name, value in (("uncertainty_threshold", uncertainty_threshold), ("referral_threshold", referral_threshold)):
            if value is not None and not 0.0 <= float(value) <= 1.0:  # (NaN fails this too)
                raise DermtoolError(f"{name} must be a probability in [0, 1], got {value}")
        if lesion_check_threshold is not None and not 0.0 < float(lesion_check_threshold) <= 1.0:
            raise DermtoolError(f"lesion_check_threshold must be a probability in (0, 1], got {lesion_check_threshold}")
        backend = self._shared.backend
        self.notes: list[str] = []
        self.labels: list[str] = list(backend.labels)
        self.kind: str = backend.kind
        self.input_spec = backend.input_spec
        #: the run's referral operating point (metrics.json "referral" / metadata): classes, threshold,
        #: target_sensitivity, and sensitivity/specificity per split
        self.referral: dict[str, Any] = backend.referral
        #: the same for the melanoma probability alone (its own threshold), if recorded
        self.melanoma: dict[str, Any] = backend.melanoma
        self.thresholds = self._thresholds(uncertainty_threshold, referral_threshold, malignant_classes)
        self.fusion, self.fusion_thresholds = self._load_fusion(backend, uncertainty_threshold, referral_threshold,
                                                                malignant_classes)
        self._check_enabled = bool(lesion_check)
        self._check_threshold_override = None if lesion_check_threshold is None else float(lesion_check_threshold)
        if self._check_enabled and backend.lesion_check is None and backend.kind == "tflite":
            self._note(f"{self.model_path}: {NO_CHECK_MESSAGE}")
        elif self._check_enabled and backend.lesion_check is None:
            self._note(f"{self.model_path}: this run has no lesion check (no lesion_check.json): photos that show no "
                       "skin lesion are not rejected; fit it with `dermtool lesion-check RUN`")
        self._options = {
            "uncertainty_threshold": uncertainty_threshold,
            "referral_threshold": referral_threshold,
            "malignant_classes": malignant_classes,
            "lesion_check": lesion_check,
            "lesion_check_threshold": lesion_check_threshold,
        }

    def with_options(self, **options: Any) -> "Predictor":
        """A Predictor with other decision options (the keyword arguments of the constructor except the model
        and ``threads``) that shares this one's loaded model and lock: no second model load."""
        if "ood" in options:  # alias of lesion_check (the retired guard's switch)
            options["lesion_check"] = bool(options.pop("ood"))
        unknown = set(options) - set(self._options)
        if unknown:
            raise DermtoolError(f"unknown Predictor option(s): {', '.join(sorted(unknown))}")
        merged = {**self._options, **options}
        other = object.__new__(Predictor)
        other.model_path = self.model_path
        other._shared = self._shared
        other._configure(**merged)
        return other

    def _note(self, message: str) -> None:
        self.notes.append(message)
        warnings.warn(message, UserWarning, stacklevel=3)

    def _thresholds(
        self, uncertainty: float, referral: float | None, malignant: Sequence[str] | None
    ) -> Thresholds:
        if referral is not None:
            referral_value, source = float(referral), "argument"
        elif self.referral.get("threshold") is not None:
            source = "metrics.json" if self.kind == "run" else "metadata"
            referral_value = _model_threshold(self.referral["threshold"], self.model_path, source, "referral.threshold")
        else:
            referral_value, source = DEFAULT_REFERRAL_THRESHOLD, "default"
            where = "metrics.json" if self.kind == "run" else "its dermtool.json metadata"
            self._note(
                f"{self.model_path}: no referral threshold in {where}; using the default "
                f"{DEFAULT_REFERRAL_THRESHOLD} (not chosen on validation data for this model)"
            )
        if malignant is not None:
            classes = tuple(str(label).lower() for label in malignant)
        elif self.referral.get("classes"):
            classes = tuple(self.referral["classes"])
        else:
            classes = DEFAULT_MALIGNANT_CLASSES
        unknown = [label for label in classes if label not in self.labels]
        if malignant is not None and unknown:
            raise DermtoolError(
                f"malignant class(es) {', '.join(unknown)} not among the model's labels {', '.join(self.labels)}"
            )
        if not any(label in self.labels for label in classes):
            self._note(f"{self.model_path}: none of the malignant classes {classes} is a model label; no image will be referred")
        return Thresholds(referral_value, float(uncertainty), classes, source)

    def _load_fusion(self, backend: Any, uncertainty: float, referral: float | None,
                     malignant: Sequence[str] | None) -> tuple[Any, Thresholds | None]:
        """The model's questionnaire fusion (RUN/fusion.json or the metadata's ``fusion``) and the decision
        rule for fused probabilities (the fusion's own referral threshold unless one is given)."""
        item = backend.fusion_dict()
        if not item:
            return None, None
        where = f"{self.model_path} ({'fusion.json' if backend.kind == 'run' else 'dermtool.json fusion'})"
        fusion = Fusion.from_dict(item, where, model_labels=self.labels)
        point = item.get("referral") or {}
        threshold = referral if referral is not None else point.get("threshold")
        if threshold is None:
            return fusion, self.thresholds
        classes = (tuple(str(label).lower() for label in malignant) if malignant is not None
                   else tuple(point.get("classes") or self.thresholds.malignant_classes))
        source = "argument" if referral is not None else ("fusion.json" if backend.kind == "run" else "metadata")
        if referral is None:
            threshold = _model_threshold(threshold, self.model_path, source, "fusion referral.threshold")
        return fusion, Thresholds(float(threshold), float(uncertainty), classes, source)

    def _answers_per_image(self, answers: Any, count: int,
                           images: Sequence[Any] | None = None) -> list[dict[str, str]] | None:
        """``answers`` (None, one mapping for every image, or one per image) read by the questionnaire."""
        if answers is None:
            return None
        if isinstance(answers, Mapping):
            per_image = [answers] * count
        else:
            per_image = list(answers)
            if len(per_image) != count:
                raise DermtoolError(f"{len(per_image)} sets of answers for {count} images")
        read = []
        for position, item in enumerate(per_image):
            try:
                read.append(read_answers(item or {}))
            except DermtoolError as error:  # name the image: "image 2 (x.jpg): conflicting answers to sex ..."
                name = images[position] if images is not None and position < len(images) else None
                shown = f"image {position + 1}" + (f" ({name})" if isinstance(name, (str, os.PathLike)) else "")
                raise DermtoolError(f"answers for {shown}: {error}") from None
        if any(read):
            self.require_fusion()
        return read

    def require_fusion(self) -> None:
        """A one-line DermtoolError unless the model has a questionnaire fusion (answers need one)."""
        if self.fusion is None:
            raise DermtoolError(
                f"{self.model_path} has no questionnaire fusion, so answers cannot be used: run "
                "`dermtool fuse RUN` on its run folder (and export it again for a .tflite)")

    # ---- the lesion check ----------------------------------------------------------------------------
    @property
    def lesion_check(self) -> dict[str, Any] | None:
        """The model's lesion check as its metadata describes it (``{head_name, categories, threshold, figures,
        ...}``, the threshold replaced by ``lesion_check_threshold`` when given), or None when the model has
        none or it is switched off."""
        item = self._shared.backend.lesion_check
        if item is None or not self._check_enabled:
            return None
        return {**item, "threshold": self.lesion_check_threshold}

    @property
    def lesion_check_threshold(self) -> float | None:
        """``P(not_a_lesion)`` at or above which a photo is ``not_a_lesion`` (None without a check)."""
        item = self._shared.backend.lesion_check
        if item is None or not self._check_enabled:
            return None
        return self._check_threshold_override if self._check_threshold_override is not None else float(item["threshold"])

    # ---- prediction -----------------------------------------------------------------------------------
    def _load(self, image: ImageInput) -> tuple[str, np.ndarray]:
        if isinstance(image, np.ndarray):
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
                raise DermtoolError(f"an image array must be uint8 (height, width, 3), got {image.dtype} {image.shape}")
            return UPLOAD_NAME, resize(image, self.input_spec.image_size, self.input_spec.resize_policy)
        if isinstance(image, (bytes, bytearray, memoryview)):
            return UPLOAD_NAME, load_image(bytes(image), self.input_spec)
        if isinstance(image, (str, os.PathLike)):
            return str(image), load_image(image, self.input_spec)
        raise DermtoolError(f"cannot read an image from a {type(image).__name__}; give a path, bytes or a uint8 array")

    def predict_arrays(self, images: np.ndarray) -> np.ndarray:
        """Calibrated probabilities ``(N, C)`` for model-input uint8 images ``(N, S, S, 3)`` (thread-safe)."""
        return self.predict_arrays_with_check(images)[0]

    def predict_arrays_with_check(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(calibrated probabilities ``(N, C)``, ``P(not_a_lesion)`` ``(N,)`` or None without a lesion check) for
        model-input uint8 images ``(N, S, S, 3)``, from one pass through the model (thread-safe)."""
        with self._shared.lock:
            probabilities, not_a_lesion = self._shared.backend.predict(np.ascontiguousarray(images, dtype=np.uint8))
        check_finite_outputs(probabilities, self.model_path)  # a NaN is never an outcome
        if not_a_lesion is not None:
            check_finite_outputs(not_a_lesion, self.model_path)
        return probabilities, not_a_lesion

    def predict(self, images: Sequence[ImageInput] | ImageInput, top_k: int = 3,
                answers: Mapping[str, Any] | Sequence[Mapping[str, Any] | None] | None = None) -> list[dict[str, Any]]:
        """One contract dict per image, in input order (``{image, error}`` for an unreadable one).

        ``answers``: the questionnaire's answers (:mod:`dermtool.fusion.questionnaire`), one mapping for every
        image or one per image (None or empty: unknown). With answers, the model's fusion combines them with
        the image: the result's probabilities and outcome are the fused ones (with the fusion's referral
        threshold), and its ``fusion`` key holds the answers, the image-only answer and how much the answers
        moved the malignant probability. A model without a fusion refuses answers."""
        if isinstance(images, (str, os.PathLike, bytes, bytearray, memoryview, np.ndarray)):
            images = [images]
        per_image = self._answers_per_image(answers, len(images), images)
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise DermtoolError(f"top_k must be a positive integer, got {top_k!r}")
        top_k = min(top_k, len(self.labels))
        results: list[dict[str, Any] | None] = [None] * len(images)
        loaded: list[tuple[int, str, np.ndarray]] = []
        for index, image in enumerate(images):
            try:
                name, pixels = self._load(image)
            except DermtoolError as error:
                name = str(image) if isinstance(image, (str, os.PathLike)) else UPLOAD_NAME
                results[index] = {"image": name, "error": str(error)}
                continue
            loaded.append((index, name, pixels))
        for start in range(0, len(loaded), BATCH_SIZE):
            chunk = loaded[start : start + BATCH_SIZE]
            batch = np.stack([pixels for _, _, pixels in chunk])
            probabilities, not_a_lesion = self.predict_arrays_with_check(batch)
            scores = (not_a_lesion if not_a_lesion is not None and self._check_enabled else [None] * len(chunk))
            for (index, name, _), row, score in zip(chunk, probabilities, scores):
                image_answers = None if per_image is None else per_image[index]
                results[index] = self._result(name, row, None if score is None else float(score), top_k,
                                              image_answers)
        return [result for result in results if result is not None]

    def _result(self, name: str, row: np.ndarray, not_a_lesion: float | None, top_k: int,
                answers: dict[str, str] | None = None) -> dict[str, Any]:
        threshold = self.lesion_check_threshold
        rejected = not_a_lesion is not None and threshold is not None and not_a_lesion >= threshold
        fusion_block = None
        thresholds = self.thresholds
        if answers is not None and self.fusion is not None:
            image_row, image_best = row, int(np.argmax(row))
            fusion_block = {"answers": dict(answers), "applied": bool(answers)}
            if answers:
                thresholds = self.fusion_thresholds
                row = self.fusion.apply_one(row, answers)
                fusion_block["referral_threshold"] = round(thresholds.referral, 6)
            fusion_block["image_only"] = {
                "label": self.labels[image_best], "probability": round(float(image_row[image_best]), 6),
                "probabilities": {label: round(float(p), 6) for label, p in zip(self.labels, image_row)}}
            fusion_block["malignant_probability"] = answer_effects(self.fusion, image_row, answers,
                                                                   thresholds.malignant_classes)
        order = np.argsort(-row, kind="stable")
        best = int(order[0])
        result = {
            "image": name,
            "outcome": decide_outcome(row, self.labels, thresholds, rejected),
            "label": self.labels[best],
            "probability": round(float(row[best]), 6),
            "probabilities": {label: round(float(p), 6) for label, p in zip(self.labels, row)},
            "top_k": [
                {"label": self.labels[i], "name": class_name(self.labels[i]), "probability": round(float(row[i]), 6)}
                for i in order[:top_k]
            ],
            "ood_score": None if not_a_lesion is None else round(not_a_lesion, 4),
            "lesion_check": (None if not_a_lesion is None or threshold is None
                             else {"not_a_lesion": round(not_a_lesion, 4), "threshold": round(threshold, 4)}),
        }
        if fusion_block is not None:
            result["fusion"] = fusion_block
        return result

    def describe(self, result: Mapping[str, Any]) -> str:
        """Plain-word explanation of a result's outcome (see :func:`describe_outcome`); for a result fused
        with answers, the fused rule and a sentence on how much the answers moved it."""
        fusion = result.get("fusion") or {}
        if fusion.get("applied") and self.fusion_thresholds is not None and result["outcome"] != "not_a_lesion":
            text = describe_outcome(result, self.fusion_thresholds, self.labels)
            summary = (fusion.get("malignant_probability") or {}).get("summary")
            return f"{text} Answers: {summary[0].upper() + summary[1:]}." if summary else text
        return describe_outcome(result, self.thresholds, self.labels)

    def __repr__(self) -> str:
        return f"Predictor({str(self.model_path)!r}, kind={self.kind!r}, labels={self.labels})"


# ---- module-level convenience (dermtool.predict) -------------------------------------------------------

_PREDICTORS: dict[tuple[str, float, int], Predictor] = {}
_PREDICTORS_LOCK = threading.Lock()


def _cache_key(model: str | os.PathLike) -> tuple[str, float]:
    """Resolved path and modification time of the model file (a retrained run is loaded again)."""
    path = Path(model).resolve()
    weights = path / "model.keras" if path.is_dir() else path
    try:
        return str(path), weights.stat().st_mtime
    except OSError:
        return str(path), 0.0


def get_predictor(model: str | os.PathLike | Predictor, threads: int = 1) -> Predictor:
    """A cached :class:`Predictor` with default options per (model path, its mtime, threads): a model is loaded
    once per process. Use :meth:`Predictor.with_options` for other thresholds without loading it again."""
    if isinstance(model, Predictor):
        return model
    key = (*_cache_key(model), threads)
    with _PREDICTORS_LOCK:
        if key not in _PREDICTORS:
            _PREDICTORS[key] = Predictor(model, threads=threads)
        return _PREDICTORS[key]


def predict(
    images: Sequence[ImageInput] | ImageInput, model: str | os.PathLike | Predictor, top_k: int = 3
) -> list[dict[str, Any]]:
    """``dermtool.predict``: contract dicts for ``images`` with ``model`` (a run folder, a .tflite or a Predictor)."""
    return get_predictor(model).predict(images, top_k=top_k)


__all__ = [
    "CLASS_NAMES",
    "DEFAULT_MALIGNANT_CLASSES",
    "DEFAULT_REFERRAL_THRESHOLD",
    "DEFAULT_UNCERTAINTY_THRESHOLD",
    "OUTCOMES",
    "Predictor",
    "Thresholds",
    "class_name",
    "decide_outcome",
    "describe_outcome",
    "get_predictor",
    "malignant_probability",
    "predict",
]
