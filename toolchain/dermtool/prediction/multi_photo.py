"""Several photos of one lesion -> one set of class probabilities: the combination rules.

A health worker may take two or three photos of a lesion (a close-up, a wider one, one through a clip-on
dermatoscope). Each is scored alone by the image model; a rule then combines their calibrated probabilities
into the lesion's, so that one lesion gets one answer. The rule is measured on MILK10k's pairs (a clinical
close-up and a dermoscopic photo of every lesion) and on PAD-UFES-20's lesions with several photos
(``benchmarks/bench_multi_photo.py``), chosen on the validation split, and carried in the exported model's
``dermtool.json`` as ``"multi_photo"`` so that every client (``dermtool predict``, the web app, the offline
app's ``mobile_demo/src/combine.js``, an embedded app) combines photos the same way.

The rules (:data:`RULES`), on the probability rows ``p_1 .. p_n`` of the photos that were kept:

- ``mean``: the arithmetic mean ``(p_1 + ... + p_n) / n``.
- ``geometric_mean``: ``exp(mean(log(max(p_i, probability_floor))))``, renormalised to sum to 1 (the
  mean of the log-probabilities; a class one photo rules out is pulled down hard). The floor keeps an
  int8 model's exact zeros finite.
- ``max_referral``: the whole row of the photo whose summed probability of the referral classes
  (``referral_classes``, the model's own, from its metadata) is highest: the most worrying photo speaks for
  the lesion (ties: the first such photo).

The rule travels as a JSON object ``{"rule": NAME, "probability_floor": F, "referral_classes": [...], ...}``
(figures and how it was chosen may ride along); :class:`MultiPhotoRule` reads it. One photo is its own
answer under every rule. numpy only; no TensorFlow.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from dermtool import DermtoolError

RULES: tuple[str, ...] = ("mean", "geometric_mean", "max_referral")
#: The floor under each probability before its logarithm (``geometric_mean``).
DEFAULT_PROBABILITY_FLOOR = 1e-4
#: The rule a model gets when its run has no RUN/multi_photo.json (the one chosen on validation for the
#: recommended seven-centre model; ``benchmarks/bench_multi_photo.py``, benchmarks/RESULTS.md).
DEFAULT_RULE = "mean"
#: The file ``benchmarks/bench_multi_photo.py --write-run`` writes into a run folder; export copies it into
#: dermtool.json's ``multi_photo``.
RUN_FILE_NAME = "multi_photo.json"


@dataclass(frozen=True)
class MultiPhotoRule:
    """How a lesion's photos are combined: the rule's name and its parameters."""

    rule: str = DEFAULT_RULE
    probability_floor: float = DEFAULT_PROBABILITY_FLOOR
    referral_classes: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)  # figures, how it was chosen: carried, not read

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise DermtoolError(f"unknown multi-photo rule {self.rule!r}; the rules are {', '.join(RULES)}")
        floor = self.probability_floor
        if isinstance(floor, bool) or not isinstance(floor, (int, float)) or not math.isfinite(floor) \
                or not 0.0 < floor < 1.0:
            raise DermtoolError(f"multi-photo probability_floor must be a number in (0, 1), got {floor!r}")
        if self.rule == "max_referral" and not self.referral_classes:
            raise DermtoolError("the multi-photo rule max_referral needs referral_classes (the model's referral "
                                "classes, from its metadata)")

    @classmethod
    def from_dict(cls, item: Mapping[str, Any] | str, where: str = "multi_photo") -> "MultiPhotoRule":
        """A rule from its JSON object (dermtool.json's ``multi_photo``) or from its bare name."""
        if isinstance(item, str):
            item = {"rule": item}
        if not isinstance(item, Mapping) or not isinstance(item.get("rule"), str):
            raise DermtoolError(f"{where} must be an object with a \"rule\" name ({', '.join(RULES)})")
        classes = item.get("referral_classes") or ()
        if not isinstance(classes, (list, tuple)) or not all(isinstance(label, str) for label in classes):
            raise DermtoolError(f"{where}.referral_classes must be a list of class names")
        floor = item.get("probability_floor", DEFAULT_PROBABILITY_FLOOR)
        extra = {key: value for key, value in item.items() if key not in ("rule", "probability_floor",
                                                                           "referral_classes")}
        try:
            return cls(item["rule"], floor, tuple(classes), extra)
        except DermtoolError as error:
            raise DermtoolError(f"{where}: {error}") from None

    def to_dict(self) -> dict[str, Any]:
        """The JSON object (dermtool.json's ``multi_photo``)."""
        return {"rule": self.rule, "probability_floor": self.probability_floor,
                "referral_classes": list(self.referral_classes), **dict(self.extra)}

    def describe(self) -> str:
        """The rule in words, for reports and the model card."""
        if self.rule == "mean":
            return "the mean of the photos' probabilities"
        if self.rule == "geometric_mean":
            return (f"the geometric mean of the photos' probabilities (each floored at {self.probability_floor:g}), "
                    "renormalised")
        return (f"the probabilities of the photo with the highest referral probability "
                f"({' + '.join(self.referral_classes)})")


def combine_rows(rows: np.ndarray, labels: Sequence[str], rule: MultiPhotoRule) -> np.ndarray:
    """The lesion's probability row from its photos' rows ``(n_photos, n_classes)`` (columns in ``labels``
    order) under ``rule``."""
    rows = np.asarray(rows, dtype=np.float64)
    if rows.ndim != 2 or rows.shape[0] == 0 or rows.shape[1] != len(labels):
        raise DermtoolError(f"a lesion needs at least one photo's probabilities over {len(labels)} classes, got an "
                            f"array of shape {rows.shape}")
    if rule.rule == "mean":
        return rows.mean(axis=0)
    if rule.rule == "geometric_mean":
        logs = np.log(np.maximum(rows, rule.probability_floor)).mean(axis=0)
        combined = np.exp(logs - logs.max())
        return combined / combined.sum()
    wanted = [index for index, label in enumerate(labels) if label in set(rule.referral_classes)]
    referral = rows[:, wanted].sum(axis=1)
    return rows[int(np.argmax(referral))].copy()


def combine_photos(probability_maps: Sequence[Mapping[str, float]],
                   rule: MultiPhotoRule | Mapping[str, Any] | str) -> dict[str, float]:
    """``[{label: p}, ...]`` (one map per kept photo, the same labels in each) -> ``{label: p}`` for the lesion,
    labels in the first map's order. The twin of ``combinePhotos`` in ``mobile_demo/src/combine.js``."""
    if not isinstance(rule, MultiPhotoRule):
        rule = MultiPhotoRule.from_dict(rule)
    maps = list(probability_maps)
    if not maps:
        raise DermtoolError("a lesion needs at least one photo that was not rejected")
    labels = list(maps[0])
    for position, item in enumerate(maps[1:], start=2):
        if set(item) != set(labels):
            raise DermtoolError(f"photo {position} has the classes {', '.join(sorted(item))}, photo 1 "
                                f"{', '.join(sorted(labels))}: the photos of a lesion must come from one model")
    rows = np.array([[float(item[label]) for label in labels] for item in maps])
    return {label: float(value) for label, value in zip(labels, combine_rows(rows, labels, rule))}


def default_rule(referral_classes: Sequence[str]) -> MultiPhotoRule:
    """The rule of a model whose run measured none (:data:`DEFAULT_RULE`), with the model's referral classes."""
    return MultiPhotoRule(DEFAULT_RULE, DEFAULT_PROBABILITY_FLOOR, tuple(referral_classes),
                          {"chosen_on": "default: the rule chosen for the recommended seven-centre model "
                                        "(benchmarks/bench_multi_photo.py); not measured on this model"})


def read_run_rule(run_path: str | Path) -> dict[str, Any] | None:
    """RUN/multi_photo.json (written by ``benchmarks/bench_multi_photo.py --write-run``), checked; None when
    the run has none."""
    path = Path(run_path) / RUN_FILE_NAME
    if not path.is_file():
        return None
    try:
        item = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DermtoolError(f"{path}: not a readable JSON file ({error}); run benchmarks/bench_multi_photo.py "
                            "--write-run again") from None
    return MultiPhotoRule.from_dict(item, str(path)).to_dict()


def rule_for_export(run_path: str | Path, referral_classes: Sequence[str]) -> dict[str, Any]:
    """dermtool.json's ``multi_photo`` for a model exported from ``run_path``: RUN/multi_photo.json, else the
    default rule; its referral classes are the model's when the file names none."""
    item = read_run_rule(run_path)
    rule = MultiPhotoRule.from_dict(item) if item else default_rule(referral_classes)
    if not rule.referral_classes:
        rule = MultiPhotoRule(rule.rule, rule.probability_floor, tuple(referral_classes), rule.extra)
    return rule.to_dict()


__all__ = ["DEFAULT_PROBABILITY_FLOOR", "DEFAULT_RULE", "MultiPhotoRule", "RULES", "RUN_FILE_NAME", "combine_photos",
           "combine_rows", "default_rule", "read_run_rule", "rule_for_export"]
