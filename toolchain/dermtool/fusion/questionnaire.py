"""The questionnaire: what a health worker can ask without any instrument, and how each answer is read.

Nine questions, every one skippable (``unknown``)::

    age        number of years (0-120)            read as one of five age bands
    sex        female | male
    site       head_neck | trunk | arm | hand | leg | foot | genital
    itch       yes | no     does it itch?
    grew       yes | no     has it grown?
    hurt       yes | no     does it hurt?
    changed    yes | no     has it changed (colour, shape, surface)?
    bleed      yes | no     does it bleed?
    elevation  yes | no     is it raised above the skin?

An answer is read into a *level* (``"60-74"``, ``"yes"``, ``"trunk"``) or ``None`` for unknown. Spellings that
datasets and people use are accepted: ``True``/``False``/``1``/``0``/``y``/``n``, ``UNK`` or an empty value for
unknown, PAD-UFES-20's ``gender`` and ``region`` (``FOREARM`` -> arm), MILK10k's ``site`` (``head_neck_face`` -> head_neck), HAM10000's ``sex`` and ``localization``
(``lower extremity`` -> leg), ISIC's ``age_approx`` / ``age_approximate``. Anything else is a
:class:`dermtool.DermtoolError` whose one line names the question and the answers it takes. The fusion model (:mod:`dermtool.fusion.model`) gives every level its
own weights; an unknown answer contributes nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from dermtool import DermtoolError

UNKNOWN = "unknown"
UNKNOWN_SPELLINGS = frozenset({"", "unknown", "unk", "?", "na", "n/a", "none", "null", "nan", "skip", "-"})
YES_SPELLINGS = frozenset({"yes", "y", "true", "t", "1"})
NO_SPELLINGS = frozenset({"no", "n", "false", "f", "0"})

#: Body-site spellings of PAD-UFES-20 (region), HAM10000 (localization) and ISIC (anatom_site_general).
SITE_SPELLINGS = {
    "head_neck": ("head_neck", "head_neck_face", "head/neck", "head", "face", "scalp", "ear", "neck", "nose", "lip"),
    "trunk": ("trunk", "back", "chest", "abdomen", "anterior torso", "posterior torso", "lateral torso", "torso"),
    "arm": ("arm", "forearm", "upper extremity", "upper_extremity", "upper limb"),
    "hand": ("hand", "palms/soles", "acral", "finger"),
    "leg": ("leg", "thigh", "lower extremity", "lower_extremity", "lower limb", "knee"),
    "foot": ("foot", "toe", "sole"),
    "genital": ("genital", "genitals", "oral/genital"),
}
SEX_SPELLINGS = {"female": ("female", "f", "woman"), "male": ("male", "m", "man")}


@dataclass(frozen=True)
class Question:
    """One question: ``kind`` is "number" (read into bands at ``bands`` edges), "choice" or "yes_no"."""

    name: str
    kind: str
    text: str
    choices: tuple[str, ...] = ()
    bands: tuple[float, ...] = ()
    minimum: float = 0.0
    maximum: float = 0.0
    aliases: tuple[str, ...] = ()  # other column names a metadata CSV may use

    @property
    def levels(self) -> tuple[str, ...]:
        """Every answer this question can be read into, unknown excluded."""
        if self.kind == "number":
            edges = [int(edge) for edge in self.bands]
            lows = [int(self.minimum)] + edges
            return tuple(f"{low}-{high - 1}" for low, high in zip(lows, edges)) + (f"{edges[-1]}+",)
        return self.choices

    def describe(self) -> str:
        """``age: a number of years (0-120)`` / ``bleed: yes or no`` (for errors and --help)."""
        if self.kind == "number":
            return f"{self.name}: a number of years ({self.minimum:g}-{self.maximum:g})"
        return f"{self.name}: {' or '.join(self.choices) if len(self.choices) == 2 else ', '.join(self.choices)}"

    def read(self, value: Any) -> str | None:
        """The level of ``value`` (None for unknown); a DermtoolError for an answer this question does not take."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return None
        text = str(value).strip().lower()
        if text in UNKNOWN_SPELLINGS:
            return None
        if self.kind == "number":
            return text if text in self.levels else self._band(value, text)
        if self.kind == "yes_no":
            if isinstance(value, bool):
                return "yes" if value else "no"
            if text in YES_SPELLINGS:
                return "yes"
            if text in NO_SPELLINGS:
                return "no"
        else:
            spellings = SITE_SPELLINGS if self.name == "site" else SEX_SPELLINGS
            for level, names in spellings.items():
                if text in names or text.replace("_", " ") in names:
                    return level
        raise DermtoolError(f"answer {self.name}={value!r} is not understood; {self.describe()}, or unknown")

    def _band(self, value: Any, text: str) -> str:
        try:
            number = float(value) if not isinstance(value, bool) else float("nan")
        except (TypeError, ValueError):
            number = float("nan")
        if not math.isfinite(number) or not self.minimum <= number <= self.maximum:
            raise DermtoolError(f"answer {self.name}={text!r} is not understood; {self.describe()}, or unknown")
        band = sum(1 for edge in self.bands if number >= edge)
        return self.levels[band]

    def to_dict(self) -> dict[str, Any]:
        """The question as the exported metadata records it (what an app needs to ask and to read it)."""
        item: dict[str, Any] = {"name": self.name, "kind": self.kind, "text": self.text, "levels": list(self.levels)}
        if self.kind == "number":
            item.update(bands=list(self.bands), minimum=self.minimum, maximum=self.maximum)
        else:
            item["choices"] = list(self.choices)
        return item


QUESTIONS: tuple[Question, ...] = (
    Question("age", "number", "How old is the patient (years)?", bands=(30, 45, 60, 75), minimum=0, maximum=120,
             aliases=("age_approx", "age_approximate")),
    Question("sex", "choice", "Sex of the patient", choices=("female", "male"), aliases=("gender",)),
    Question("site", "choice", "Where on the body is the lesion?", choices=tuple(SITE_SPELLINGS),
             aliases=("region", "localization", "anatom_site_general", "anatom_site_general_challenge")),
    Question("itch", "yes_no", "Does it itch?", choices=("yes", "no")),
    Question("grew", "yes_no", "Has it grown?", choices=("yes", "no")),
    Question("hurt", "yes_no", "Does it hurt?", choices=("yes", "no")),
    Question("changed", "yes_no", "Has it changed (colour, shape, surface)?", choices=("yes", "no")),
    Question("bleed", "yes_no", "Does it bleed?", choices=("yes", "no")),
    Question("elevation", "yes_no", "Is it raised above the skin?", choices=("yes", "no")),
)
QUESTION_NAMES: tuple[str, ...] = tuple(question.name for question in QUESTIONS)
_BY_NAME = {name: item for item in QUESTIONS for name in (item.name, *item.aliases)}

Answers = dict[str, str]  # question name -> level; unknown answers are absent


def question(name: str) -> Question:
    """The question called ``name`` or one of its aliases (a DermtoolError naming the known ones otherwise)."""
    try:
        return _BY_NAME[name.strip().lower()]
    except KeyError:
        raise DermtoolError(f"unknown question {name!r}; the questions are {', '.join(QUESTION_NAMES)}") from None


def read_answers(raw: Mapping[str, Any]) -> Answers:
    """``{question: level}`` from ``{question: answer}`` (unknown answers left out; unknown questions refused).

    Two names of one question (``sex`` and ``gender``) with different answers are a one-line error naming the
    question: conflicting answers are never settled silently."""
    answers: Answers = {}
    given: dict[str, tuple[str, str | None]] = {}  # question -> (the name it was given under, its level)
    for name, value in raw.items():
        item = question(str(name))
        level = item.read(value)
        if item.name in given and given[item.name][1] != level:
            first, first_level = given[item.name]
            raise DermtoolError(f"conflicting answers to {item.name}: {first}={first_level or 'unknown'} and "
                                f"{name}={level or 'unknown'}")
        given.setdefault(item.name, (str(name), level))
        if level is not None:
            answers[item.name] = level
    return answers


def parse_answer_arguments(arguments: Iterable[str]) -> Answers:
    """``["bleed=yes", "age=64"]`` (the command line's ``--answer``) read as :func:`read_answers` does."""
    raw: dict[str, str] = {}
    for argument in arguments:
        name, separator, value = str(argument).partition("=")
        if not separator or not name.strip():
            raise DermtoolError(f"--answer {argument!r}: write QUESTION=ANSWER, e.g. bleed=yes or age=64")
        if question(name).name in raw:
            raise DermtoolError(f"--answer {name.strip()} is given twice")
        raw[question(name).name] = value
    return read_answers(raw)


def answers_from_row(row: Mapping[str, Any]) -> Answers:
    """The answers in one metadata CSV row: columns named as a question or one of its aliases (PAD-UFES-20's
    gender/region, HAM10000's sex/localization); other columns are ignored. A value no question understands
    is an error naming it."""
    columns = {str(key).strip().lower(): value for key, value in row.items() if key is not None}
    raw: dict[str, Any] = {}
    for item in QUESTIONS:
        for column in (item.name, *item.aliases):
            if column in columns:
                raw[item.name] = columns[column]
                break
    return read_answers(raw)


def schema() -> list[dict[str, Any]]:
    """Every question as :meth:`Question.to_dict` gives it, in order (for metadata, model cards and apps)."""
    return [item.to_dict() for item in QUESTIONS]
