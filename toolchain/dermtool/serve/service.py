"""The model behind the web app: one :class:`dermtool.prediction.predictor.Predictor`, plus Grad-CAM for a run.

The web layer (:mod:`dermtool.serve.app`) knows nothing of TensorFlow or LiteRT; it hands decoded pixels to a
:class:`ModelService` from worker threads. The Predictor serialises model calls with its own lock, and
Grad-CAM's :class:`~dermtool.explain.gradcam.Explainer` (float run only) has a lock of its own, so any number
of request threads may call :meth:`ModelService.predict` and :meth:`ModelService.explain` at once.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from dermtool import DISCLAIMER, DermtoolError, __version__
from dermtool.explain.gradcam import explain, get_explainer
from dermtool.explain.heat_layer import heat_layer_png, plain_png
from dermtool.fusion.questionnaire import question, read_answers
from dermtool.prediction.lesion import predict_lesion
from dermtool.prediction.predictor import CLASS_NAMES, Predictor, class_name

#: What each outcome means, in plain words, and what to do. Shown by the page; served by GET /api/model.
#: The referral message names the model's own referral classes: see :func:`outcome_guidance`.
OUTCOME_GUIDANCE: dict[str, dict[str, str]] = {
    "refer": {
        "title": "Refer to a dermatologist",
        "message": (
            "The model sees features of a lesion that needs a specialist's assessment ({classes}). Refer the "
            "patient to a dermatologist."
        ),
        "colour": "red",
    },
    "uncertain": {
        "title": "Uncertain: get a specialist opinion",
        "message": (
            "The model is not confident about this image. Do not rely on it: if you have any doubt about the "
            "lesion, refer the patient to a dermatologist. A sharper, closer, well-lit photo may help."
        ),
        "colour": "amber",
    },
    "not_a_lesion": {
        "title": "This does not look like a skin-lesion photo",
        "message": (
            "The model found no skin lesion in this photo, so it gives no assessment of it. Take a close-up, "
            "in-focus, evenly lit photo of the lesion and try again."
        ),
        "colour": "grey",
    },
    "benign": {
        "title": "No referral signal",
        "message": (
            "The most likely classes are benign. This does not rule out skin cancer: use your clinical "
            "judgement, and refer if the lesion changes (size, shape, colour, bleeding) or worries the patient."
        ),
        "colour": "green",
    },
}


def name_list(names: Sequence[str], conjunction: str = "or") -> str:
    """``["a", "b", "c"]`` -> ``"a, b or c"``."""
    names = list(names)
    if len(names) <= 1:
        return "".join(names)
    return f"{', '.join(names[:-1])} {conjunction} {names[-1]}"


def outcome_guidance(referral_labels: Sequence[str]) -> dict[str, dict[str, str]]:
    """:data:`OUTCOME_GUIDANCE` with the referral message naming ``referral_labels`` (the model's referral
    classes, from its metrics or metadata: never a fixed list), by their readable names."""
    classes = name_list([class_name(label) for label in referral_labels]) or "a referral class"
    guidance = {outcome: dict(item) for outcome, item in OUTCOME_GUIDANCE.items()}
    guidance["refer"]["message"] = guidance["refer"]["message"].format(classes=classes)
    return guidance


#: How each kind of training photo is named to a user (a phone photo is never called dermatoscopic).
PHOTO_KIND_WORDS = {"dermoscopic": "dermatoscope images", "clinical": "close-up camera photos",
                    "smartphone": "phone photos"}
#: Readable names of the training sources dermtool knows.
SOURCE_NAMES = {"ham10000": "HAM10000", "milk10k": "MILK10k", "pad_ufes_20": "PAD-UFES-20", "isic2017": "ISIC 2017"}


def describe_training_photos(sources: Sequence[Mapping[str, Any]]) -> str | None:
    """What a model was trained on, in words: ``"dermatoscope images and close-up camera and phone photos
    (HAM10000, MILK10k, PAD-UFES-20)"``, from its sources (``{name, kind}``: the metadata's ``sources`` or the
    run's ``[[data.sources]]``); None when the model does not say."""
    kinds: list[str] = []
    names: list[str] = []
    for source in sources:
        kind = PHOTO_KIND_WORDS.get(str(source.get("kind") or ""), None)
        if kind and kind not in kinds:
            kinds.append(kind)
        raw = str(source.get("name") or "")
        base = raw.lower().replace("-", "_")
        for known, shown in SOURCE_NAMES.items():
            if base.startswith(known):
                raw = shown
                break
        if raw and raw not in names:
            names.append(raw)
    if not kinds and not names:
        return None
    what = name_list(kinds, "and") or "skin-lesion photos"
    return f"{what} ({', '.join(names)})" if names else what


#: The longest question name or answer a request may send (an answer is a word or a number of years).
MAX_ANSWER_CHARS = 64


def read_form_answers(fields: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The questionnaire's answers of a request's form fields (or query parameters) ``(name, answer)``, read
    by :func:`dermtool.fusion.questionnaire.read_answers` (unknown answers, e.g. empty fields, left out).
    An unknown question, an answer a question does not take, a question given twice or an overlong field is
    a one-line :class:`DermtoolError` (the app answers 400 with it)."""
    raw: dict[str, str] = {}
    for name, value in fields:
        if len(name) > MAX_ANSWER_CHARS or len(value) > MAX_ANSWER_CHARS:
            raise DermtoolError(f"answer {name[:MAX_ANSWER_CHARS]!r} is too long: a question name and its answer "
                                f"have at most {MAX_ANSWER_CHARS} characters")
        key = question(name).name
        if key in raw:
            raise DermtoolError(f"answer {key} is given twice")
        raw[key] = value
    return read_answers(raw)


@dataclass(frozen=True)
class ModelDescription:
    """What GET /api/model answers: enough for a client to label its output. ``name`` is the model's file
    or run-folder name, never its path (the page must not reveal the server's folders)."""

    name: str
    kind: str
    labels: list[str]
    names: dict[str, str]
    image_size: int | None
    input_spec: dict[str, Any] | None
    explain_available: bool
    referral_labels: list[str]
    referral_threshold: float | None
    uncertainty_threshold: float | None
    fusion: dict[str, Any] | None = None  # the questionnaire, when the model has a fusion (see describe)
    lesion_check: dict[str, Any] | None = None  # the model's lesion check (threshold ...); None: it has none
    trained_on: str | None = None  # what the model was trained on, in words (describe_training_photos)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "labels": self.labels,
            "names": self.names,
            "input_size": self.image_size,
            "input_spec": self.input_spec,
            "explain_available": self.explain_available,
            "referral_labels": self.referral_labels,
            "referral_threshold": self.referral_threshold,
            "uncertainty_threshold": self.uncertainty_threshold,
            "fusion": self.fusion,
            "lesion_check": self.lesion_check,
            "trained_on": self.trained_on,
            "outcomes": outcome_guidance(self.referral_labels),
            "disclaimer": DISCLAIMER,
            "dermtool_version": __version__,
        }


def _input_spec_of(predictor: Any) -> Any:
    """The predictor's InputSpec, wherever this version of the Predictor keeps it (None if unknown)."""
    for owner in (predictor, getattr(predictor, "model", None), getattr(predictor, "run", None)):
        spec = getattr(owner, "input_spec", None) if owner is not None else None
        if spec is not None and hasattr(spec, "image_size"):
            return spec
    return None


class ModelService:
    """A loaded model, shared by every request of the app.

    ``model`` is a run folder (float Keras, calibrated; Grad-CAM available) or a ``.tflite`` file (LiteRT).
    A :class:`Predictor` may be passed instead, e.g. one already loaded by a test.
    """

    def __init__(self, model: str | Path | Any, threads: int = 1) -> None:
        if isinstance(model, (str, Path)):
            path = Path(model)
            if not path.exists():
                raise DermtoolError(f"model not found: {path} (give a run folder or a .tflite file)")
            self.predictor = Predictor(path, threads=threads)
            self.path = str(path)
        else:
            self.predictor = model
            self.path = str(getattr(model, "path", getattr(model, "model_path", "<predictor>")))
        self.labels: list[str] = list(self.predictor.labels)
        self.kind: str = self.predictor.kind
        self.names = {label: CLASS_NAMES.get(label, label) for label in self.labels}

    @property
    def fusion(self) -> Any:
        """The model's questionnaire fusion (:class:`dermtool.fusion.model.Fusion`), or None."""
        return getattr(self.predictor, "fusion", None)

    def fusion_description(self) -> dict[str, Any] | None:
        """``{questions, referral_labels, referral_threshold}``: what the page asks and the rule for fused
        probabilities; None without a fusion."""
        fusion = self.fusion
        if fusion is None:
            return None
        thresholds = getattr(self.predictor, "fusion_thresholds", None) or getattr(self.predictor, "thresholds", None)
        referral_labels = [label for label in getattr(thresholds, "malignant_classes", ()) if label in self.labels]
        return {
            "questions": fusion.to_dict()["questions"],
            "referral_labels": referral_labels,
            "referral_threshold": getattr(thresholds, "referral", None),
            "outcomes": outcome_guidance(referral_labels),
        }

    def _backend(self) -> Any:
        shared = getattr(self.predictor, "_shared", None)
        return getattr(shared, "backend", None)

    def training_sources(self) -> list[dict[str, Any]]:
        """``[{name, kind}]`` of the sources the model was trained on: a .tflite's ``sources`` metadata, a
        run's ``[[data.sources]]``; empty when the model does not say."""
        backend = self._backend()
        metadata = getattr(backend, "metadata", None)
        if isinstance(metadata, Mapping) and isinstance(metadata.get("sources"), list):
            return [dict(item) for item in metadata["sources"] if isinstance(item, Mapping)]
        run = getattr(backend, "run", None)
        try:
            sources = run.config.data.sources if run is not None else []
        except Exception:  # a run without a readable config: the model simply does not say
            return []
        return [{"name": source.name, "kind": source.kind} for source in sources]

    def lesion_check_description(self) -> dict[str, Any] | None:
        """The model's lesion check (``{threshold, categories, head_name, ...}``: the ``lesion_check`` of its
        metadata, or the Predictor's), or None for a model without one."""
        if hasattr(self.predictor, "lesion_check"):
            item = self.predictor.lesion_check  # None when the model has none or it is switched off
        else:
            metadata = getattr(self._backend(), "metadata", None)
            item = metadata.get("lesion_check") if isinstance(metadata, Mapping) else None
        if item is None:
            return None
        if not isinstance(item, Mapping):
            item = {key: getattr(item, key) for key in ("threshold", "categories", "head_name") if hasattr(item, key)}
        return {key: value for key, value in item.items() if key in ("threshold", "categories", "head_name")}

    def check_answers(self, answers: dict[str, str]) -> None:
        """Refuse answers to a model without a fusion (one line, naming no path)."""
        if answers and self.fusion is None:
            raise DermtoolError(
                "the served model has no questionnaire fusion, so answers cannot be used: send the photo alone, "
                "or serve a model whose run was fitted with `dermtool fuse RUN`")

    @property
    def explain_available(self) -> bool:
        """Grad-CAM needs the float Keras model's gradients: only a run folder has them."""
        return self.kind == "run"

    def describe(self) -> ModelDescription:
        spec = _input_spec_of(self.predictor)
        thresholds = getattr(self.predictor, "thresholds", None)
        return ModelDescription(
            name=Path(self.path).name or self.path,
            kind=self.kind,
            labels=self.labels,
            names=self.names,
            image_size=None if spec is None else int(spec.image_size),
            input_spec=None if spec is None else spec.to_dict(),
            explain_available=self.explain_available,
            referral_labels=[label for label in getattr(thresholds, "malignant_classes", ()) if label in self.labels],
            referral_threshold=getattr(thresholds, "referral", None),
            uncertainty_threshold=getattr(thresholds, "uncertainty", None),
            fusion=self.fusion_description(),
            lesion_check=self.lesion_check_description(),
            trained_on=describe_training_photos(self.training_sources()),
        )

    def predict(self, pixels: np.ndarray, answers: dict[str, str] | None = None) -> dict[str, Any]:
        """The predict --json object of one decoded image (uint8 HxWx3), with every class in ``top_k``; with
        ``answers`` (levels, :func:`read_form_answers`), fused with them and with its ``fusion`` block."""
        result = self.predictor.predict([pixels], top_k=len(self.labels), answers=answers or None)[0]
        result = dict(result)
        result["image"] = "<upload>"
        return result

    def predict_lesion(self, photos: list[np.ndarray], answers: dict[str, str] | None = None) -> dict[str, Any]:
        """One answer for several photos of one lesion (decoded uint8 HxWx3 each):
        :func:`dermtool.prediction.lesion.predict_lesion` (photos the lesion check rejects left out and listed,
        the rest combined by the model's multi-photo rule, then fused with ``answers``), every class in
        ``top_k``; the photos are named "photo 1", "photo 2" ... in the order sent."""
        result = dict(predict_lesion(self.predictor, photos, lesion="<upload>", answers=answers or None,
                                     top_k=len(self.labels)))
        names = [f"photo {position}" for position in range(1, len(photos) + 1)]
        result["photos"] = [{**photo, "image": name} for photo, name in zip(result.get("photos", []), names)]
        left = iter(result.get("left_out", []))
        result["left_out"] = [{**next(left), "image": photo["image"]} for photo in result["photos"]
                              if "error" in photo or photo.get("outcome") == "not_a_lesion"]
        result["combined"] = [photo["image"] for photo in result["photos"]
                              if "error" not in photo and photo.get("outcome") != "not_a_lesion"]
        return result

    def explain(self, pixels: np.ndarray, label: str | None = None) -> dict[str, Any]:
        """Grad-CAM of ``label`` (the class the page shows: the fused top class when answers were given),
        or of the top class, for a float run only. ``heatmap_png_base64``: the heat map alone as a
        transparent PNG with the photo's aspect ratio (cold regions see-through), for the page to lay over the
        photo or show beside it with its legend as page text; ``overlay_png_base64``: the photo with the heat
        map blended in, no caption (the page's text says what it shows)."""
        if not self.explain_available:
            raise DermtoolError(
                "Grad-CAM needs the float model of a training run; this server runs a .tflite model. "
                "Serve the run folder (dermtool serve --model RUN) to see heat maps."
            )
        if label is not None and label not in self.labels:
            raise DermtoolError(f"unknown class {label!r}; the model's classes are {', '.join(self.labels)}")

        result = explain(pixels, self.predictor, class_name=label)  # the Explainer is cached
        explained = result.explained_label or result.label
        return {
            "label": explained,
            "name": self.names.get(explained, explained),
            "heatmap_png_base64": base64.b64encode(heat_layer_png(result)).decode("ascii"),
            "overlay_png_base64": base64.b64encode(plain_png(result.overlay)).decode("ascii"),
            "media_type": "image/png",
        }

    def warm_up(self) -> None:
        """Load everything the first request would otherwise wait for: one prediction of a grey image through
        the whole predict path (the model with its lesion check head, the decision) and, where Grad-CAM is
        available, its explainer."""
        spec = _input_spec_of(self.predictor)
        size = 64 if spec is None else int(spec.image_size)
        self.predictor.predict([np.full((size, size, 3), 128, dtype=np.uint8)], top_k=1)
        if self.explain_available:
            get_explainer(self.predictor)
