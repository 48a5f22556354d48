"""How much the answers moved a prediction, in words a health worker reads:
"bleeding and growth raised the malignant probability from 0.20 (image alone) to 0.41".

The image-alone figure is the image model's own probability (what ``predict`` shows without answers); each
answer's effect is the fused malignant probability with every answer minus that without this one answer.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from dermtool.fusion.model import Fusion
from dermtool.fusion.questionnaire import Answers

_YES_WORDS = {"itch": "itching", "grew": "growth", "hurt": "pain", "changed": "change", "bleed": "bleeding",
              "elevation": "a raised lesion"}
_NO_WORDS = {"itch": "no itching", "grew": "no growth", "hurt": "no pain", "changed": "no change",
             "bleed": "no bleeding", "elevation": "a flat lesion"}


def answer_words(name: str, level: str) -> str:
    """``bleed=yes`` -> "bleeding", ``age=60-74`` -> "age 60-74", ``site=trunk`` -> "the site (trunk)"."""
    if level == "yes" and name in _YES_WORDS:
        return _YES_WORDS[name]
    if level == "no" and name in _NO_WORDS:
        return _NO_WORDS[name]
    if name == "age":
        return f"age {level}"
    if name == "site":
        return f"the site ({level.replace('_', '/')})"
    return f"{name} {level}"


def _malignant(probabilities: np.ndarray, labels: Sequence[str], malignant: Sequence[str]) -> float:
    return float(sum(probabilities[labels.index(name)] for name in malignant if name in labels))


def answer_effects(fusion: Fusion, probabilities: Sequence[float], answers: Answers,
                   malignant: Sequence[str]) -> dict[str, Any]:
    """``{image_only, fused, effects: [{question, answer, words, change}], summary}`` for one image: the
    malignant probability (summed over ``malignant``) from the image alone and fused, each answer's effect
    (largest first) and one sentence. With no answers, fused equals image-only and the summary says so."""
    labels = list(fusion.labels)
    image = np.asarray(probabilities, dtype=np.float64)
    image_only = _malignant(image, labels, malignant)
    if not answers:
        return {"image_only": round(image_only, 6), "fused": round(image_only, 6), "effects": [],
                "summary": "no answers given: the image alone decides"}
    fused = _malignant(fusion.apply_one(image, answers), labels, malignant)
    effects = []
    for name, level in answers.items():
        without = {key: value for key, value in answers.items() if key != name}
        change = fused - _malignant(fusion.apply_one(image, without), labels, malignant)
        effects.append({"question": name, "answer": level, "words": answer_words(name, level),
                        "change": round(change, 6)})
    effects.sort(key=lambda item: -abs(item["change"]))
    return {"image_only": round(image_only, 6), "fused": round(fused, 6), "effects": effects,
            "summary": summary_sentence(image_only, fused, effects)}


def summary_sentence(image_only: float, fused: float, effects: list[dict[str, Any]]) -> str:
    """One sentence naming at most two answers that moved the probability the way it went."""
    if abs(fused - image_only) < 0.005:
        return f"the answers left the malignant probability at {fused:.2f} (image alone {image_only:.2f})"
    direction = 1 if fused > image_only else -1
    movers = [item["words"] for item in effects if item["change"] * direction > 0.005][:2]
    verb = "raised" if direction > 0 else "lowered"
    who = " and ".join(movers) if movers else "the answers together"
    return f"{who} {verb} the malignant probability from {image_only:.2f} (image alone) to {fused:.2f}"
