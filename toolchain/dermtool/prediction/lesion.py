"""One answer for one lesion from several photos of it: ``predict_lesion(predictor, photos)``.

Every photo is scored alone by :meth:`dermtool.prediction.predictor.Predictor.predict` (image only). Photos that
cannot be read, and photos the model rejects (outcome ``not_a_lesion``: its lesion check), are left out and
listed; the others' probabilities are combined by the model's multi-photo rule
(:mod:`dermtool.prediction.multi_photo`: dermtool.json's ``multi_photo`` for a .tflite, ``RUN/multi_photo.json``
for a run folder, else :data:`~dermtool.prediction.multi_photo.DEFAULT_RULE`), and the combined probabilities
get the outcome, exactly as one photo's would (with the questionnaire's answers, the fusion is applied once,
to the combined image probabilities). The result keeps the ``predict --json`` contract keys, for the lesion::

    {image: LESION, outcome, label, probability, probabilities, top_k, ood_score,
     lesion: LESION, photos: [one contract object per photo, in order], combined: [photo, ...],
     left_out: [{image, reason, detail}], multi_photo: {rule, description, photos_combined}}

``image`` is the lesion's name (as ``lesion``); ``ood_score`` and ``lesion_check`` those of the combined photo
most doubtful of being a lesion (None without a check). When every readable photo is rejected the lesion is ``not_a_lesion`` (its probabilities those of the
rejected photos combined, to be shown by no client); when no photo can be read, ``{image, lesion, error,
photos, left_out}``.
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import numpy as np

from dermtool import DermtoolError
from dermtool.prediction.multi_photo import MultiPhotoRule, combine_rows, default_rule, read_run_rule

DEFAULT_LESION_NAME = "lesion"
#: Why a photo was left out of its lesion's answer.
LEFT_OUT_REASONS = ("not_a_lesion", "error")


def model_rule(predictor: Any) -> MultiPhotoRule:
    """The model's multi-photo rule: dermtool.json's ``multi_photo`` (a .tflite) or RUN/multi_photo.json (a run
    folder); the default rule when it has none. Its referral classes are the model's when it names none."""
    if predictor.kind == "tflite":
        item = (getattr(predictor._shared.backend, "metadata", None) or {}).get("multi_photo")
        where = f"{predictor.model_path} (dermtool.json multi_photo)"
    else:
        item = read_run_rule(predictor.model_path)
        where = f"{predictor.model_path}/multi_photo.json"
    classes = tuple(predictor.thresholds.malignant_classes)
    if not item:
        return default_rule(classes)
    rule = MultiPhotoRule.from_dict(item, where)
    if not rule.referral_classes:
        rule = MultiPhotoRule(rule.rule, rule.probability_floor, classes, rule.extra)
    return rule


def _row(result: Mapping[str, Any], labels: Sequence[str]) -> np.ndarray:
    return np.array([float(result["probabilities"][label]) for label in labels])


def predict_lesion(predictor: Any, photos: Sequence[Any], *, lesion: str = DEFAULT_LESION_NAME,
                   answers: Mapping[str, Any] | None = None, top_k: int = 3,
                   rule: MultiPhotoRule | Mapping[str, Any] | str | None = None) -> dict[str, Any]:
    """The answer for one lesion from its ``photos`` (paths, bytes or uint8 arrays, as ``Predictor.predict``
    takes them); see the module docstring. ``answers``: the questionnaire's answers for the lesion (the
    model's fusion combines them with the combined image probabilities). ``rule``: another rule than the
    model's (a :class:`MultiPhotoRule`, its JSON object or its name)."""
    if isinstance(photos, (str, os.PathLike, bytes, bytearray, memoryview, np.ndarray)):
        photos = [photos]
    photos = list(photos)
    if not photos:
        raise DermtoolError(f"lesion {lesion}: no photos given")
    if rule is None:
        rule = model_rule(predictor)
    elif not isinstance(rule, MultiPhotoRule):  # a name or a JSON object: the model's referral classes by default
        item = {"rule": rule} if isinstance(rule, str) else dict(rule)
        item["referral_classes"] = item.get("referral_classes") or list(predictor.thresholds.malignant_classes)
        rule = MultiPhotoRule.from_dict(item)
    if answers:  # checked before any photo is scored: a typo fails fast, naming the lesion
        predictor._answers_per_image(answers, 1, [lesion])
    results = predictor.predict(photos, top_k=top_k)
    left_out: list[dict[str, Any]] = []
    kept: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    for result in results:
        if "error" in result:
            left_out.append({"image": result["image"], "reason": "error", "detail": result["error"]})
        elif result["outcome"] == "not_a_lesion":
            left_out.append({"image": result["image"], "reason": "not_a_lesion",
                             "detail": "the lesion check rejected it: it does not look like a photo of a skin lesion"})
            rejected.append(result)
        else:
            kept.append(result)
    block = {"rule": rule.rule, "description": rule.describe(), "photos_combined": len(kept)}
    if not kept and not rejected:
        return {"image": lesion, "lesion": lesion, "error": "no photo of this lesion could be read",
                "photos": results, "combined": [], "left_out": left_out, "multi_photo": block}
    labels = list(predictor.labels)
    used = kept or rejected
    combined_row = combine_rows(np.stack([_row(result, labels) for result in used]), labels, rule)
    fused_answers = None
    if answers is not None and kept:
        fused_answers = predictor._answers_per_image(answers, 1, [lesion])[0]
    answer = predictor._result(lesion, combined_row, None, min(top_k, len(labels)), fused_answers)
    if not kept:
        answer["outcome"] = "not_a_lesion"
    scores = [result.get("ood_score") for result in used if result.get("ood_score") is not None]
    answer["ood_score"] = max(scores) if scores else None
    checks = [result["lesion_check"] for result in used if result.get("lesion_check")]
    if "lesion_check" in answer or checks:  # the combined photos' most doubtful check speaks for the lesion
        answer["lesion_check"] = max(checks, key=lambda check: check["not_a_lesion"]) if checks else None
    answer.update({"lesion": lesion, "photos": results, "combined": [result["image"] for result in kept],
                   "left_out": left_out, "multi_photo": block})
    return answer


def predict_lesions(predictor: Any, lesions: Mapping[str, Sequence[Any]], *,
                    answers: Mapping[str, Mapping[str, Any] | None] | None = None,
                    top_k: int = 3) -> list[dict[str, Any]]:
    """:func:`predict_lesion` for each ``{lesion: photos}``, in the mapping's order; ``answers``: ``{lesion:
    answers}`` (a lesion it does not name has none)."""
    rule = model_rule(predictor)
    return [predict_lesion(predictor, photos, lesion=str(name), top_k=top_k, rule=rule,
                           answers=(answers or {}).get(name)) for name, photos in lesions.items()]


def describe_lesion(answer: Mapping[str, Any], predictor: Any) -> list[str]:
    """The lines a report adds under a lesion's outcome: which photos were combined, by which rule, and
    which were left out and why."""
    block = answer["multi_photo"]
    lines = [f"Photos combined: {block['photos_combined']} of {len(answer['photos'])} ({block['description']})"]
    for item in answer["left_out"]:
        why = "not a lesion photo" if item["reason"] == "not_a_lesion" else f"unreadable: {item['detail']}"
        lines.append(f"Left out: {item['image']} ({why})")
    return lines


__all__ = ["DEFAULT_LESION_NAME", "LEFT_OUT_REASONS", "describe_lesion", "model_rule", "predict_lesion",
           "predict_lesions"]
