"""A small hand-made questionnaire fusion for the app tests: answers that visibly move the malignant
probability (bleeding and growth raise it, no bleeding lowers it), for any labels (HAM10000's by default)."""

from __future__ import annotations

from typing import Any, Sequence

MALIGNANT = ("mel", "bcc", "akiec", "scc")
#: (question, level) -> logit added to every malignant class (mel alone for "grew" and "changed")
RAISES = {("bleed", "yes"): 1.6, ("grew", "yes"): 1.1, ("changed", "yes"): 0.7, ("age", "60-74"): 0.4,
          ("bleed", "no"): -0.6, ("elevation", "no"): -0.3}
ONLY_MELANOMA = {"grew", "changed"}


def toy_fusion_dict(labels: Sequence[str], threshold: float = 0.3) -> dict[str, Any]:
    """The JSON of a Fusion (``Fusion.to_dict``) over ``labels`` with the weights above and a referral point
    (``threshold`` on the malignant classes among ``labels``), as RUN/fusion.json holds it."""
    from dermtool.fusion.model import Fusion

    weights: dict[str, dict[str, list[float]]] = {}
    for (name, level), value in RAISES.items():
        raised = {"mel"} if name in ONLY_MELANOMA else set(MALIGNANT)
        weights.setdefault(name, {})[level] = [value if label in raised else 0.0 for label in labels]
    weights["site"] = {"trunk": [0.2 if label == "nv" else 0.0 for label in labels]}
    item = Fusion(list(labels), 1.0, weights).to_dict()
    item["referral"] = {"classes": [label for label in MALIGNANT if label in labels], "threshold": threshold}
    return item
