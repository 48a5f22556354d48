"""Questionnaire answers for ``dermtool predict``: ``--answer QUESTION=ANSWER`` and ``--answers FILE``.

``--answers FILE`` gives each image its own answers, in one of two formats:

- JSON: an object ``{image: {question: answer}}``, the image named by its path or its file name;
- CSV: a column ``image`` or ``image_id`` and one column per question (its name or an alias such as
  PAD-UFES-20's ``gender`` and ``region`` or HAM10000's ``localization``; other columns are ignored).

Conflicts are errors naming the image and the question, never settled silently ("the last wins"): an image
with two CSV rows, two columns that answer one question (``bleed`` twice, or ``sex`` and ``gender``), a JSON key
given twice in one object.

An image is matched to an entry by its exact path, then by its file name, then by its stem (the name
without an image suffix, as in ``image_id`` columns); an image the file does not name gets no answers. A
name or stem that two entries share is refused when an image needs it (key the entries by path then).
Answers are read by :mod:`dermtool.fusion.questionnaire`: an answer no question understands is a
one-line error naming the file, the entry and the answers the question takes.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from dermtool import DermtoolError
from dermtool.cli.image_keys import ImageKeyed
from dermtool.fusion.questionnaire import QUESTIONS, QUESTION_NAMES, Answers, answers_from_row, read_answers

IMAGE_COLUMNS = ("image", "image_id")


def questions_help() -> str:
    """The questions and the answers each takes, for ``--help``."""
    return "; ".join(item.describe() for item in QUESTIONS)


def read_answer_file(path: str | Path) -> dict[str, Answers]:
    """``{image key: answers}`` of a JSON or CSV answers file (the format told by its suffix, else by content)."""
    from dermtool.files import read_text_file

    path = Path(path)
    text = read_text_file(path, "--answers", encoding="utf-8-sig")  # a regular file within DERMTOOL_MAX_FILE_MB
    looks_like_json = path.suffix.lower() == ".json" or text.lstrip().startswith("{")
    return _answers_of_json(text, path) if looks_like_json else _answers_of_csv(text, path)


class _JsonObject(dict):
    """A JSON object that remembers the keys given more than once (``twice``) instead of keeping the last."""

    twice: list[str]


def _object_of(pairs: list[tuple[str, Any]]) -> _JsonObject:
    content = _JsonObject()
    content.twice = []
    for key, value in pairs:
        if key in content and key not in content.twice:
            content.twice.append(key)
        content.setdefault(key, value)
    return content


def _answers_of_json(text: str, path: Path) -> dict[str, Answers]:
    try:
        content = json.loads(text, object_pairs_hook=_object_of)
    except RecursionError:
        raise DermtoolError(f"--answers {path}: not usable JSON (nested too deeply)") from None
    except ValueError as error:
        raise DermtoolError(f"--answers {path}: not valid JSON ({error})") from None
    if isinstance(content, _JsonObject) and content.twice:
        raise DermtoolError(f"--answers {path}: image {content.twice[0]} is given twice; give each image once")
    if isinstance(content, Mapping):
        for image, raw in content.items():
            if isinstance(raw, _JsonObject) and raw.twice:
                raise DermtoolError(f"--answers {path}, image {image}: the question {raw.twice[0]} is answered "
                                    "twice (conflicting answers); answer it once")
    if not isinstance(content, Mapping):
        raise DermtoolError(f"--answers {path}: write a JSON object {{image: {{question: answer}}}}")
    entries: dict[str, Answers] = {}
    for image, raw in content.items():
        if not isinstance(raw, Mapping):
            raise DermtoolError(f"--answers {path}, image {image}: write its answers as {{question: answer}}")
        entries[str(image)] = _read(lambda: read_answers(raw), path, image)
    return entries


def _answers_of_csv(text: str, path: Path) -> dict[str, Answers]:
    reader = csv.DictReader(text.splitlines())
    columns = [str(name).strip().lower() for name in reader.fieldnames or []]
    image_column = next((name for name in (reader.fieldnames or []) if name.strip().lower() in IMAGE_COLUMNS), None)
    if image_column is None:
        raise DermtoolError(f"--answers {path}: a CSV of answers needs an image or image_id column")
    if not any(_is_question_column(name) for name in columns):
        raise DermtoolError(f"--answers {path}: no question columns; name them {', '.join(QUESTION_NAMES)}")
    by_question: dict[str, list[str]] = {}
    for name in reader.fieldnames or []:
        key = str(name).strip().lower()
        for item in QUESTIONS:
            if key in (item.name, *item.aliases):
                by_question.setdefault(item.name, []).append(str(name).strip())
    images = [name for name in columns if name in IMAGE_COLUMNS]
    if len(images) > 1:
        raise DermtoolError(f"--answers {path}: {len(images)} image columns ({', '.join(images)}); keep one")
    for name, named in by_question.items():
        if len(named) > 1:
            raise DermtoolError(f"--answers {path}: the columns {', '.join(named)} all answer the question {name}; "
                                "keep one of them")
    entries: dict[str, Answers] = {}
    lines: dict[str, int] = {}
    for row in reader:
        image = (row.get(image_column) or "").strip()
        if image:
            answers = _read(lambda: answers_from_row(row), path, image)
            if image in entries:
                differing = sorted(name for name in set(entries[image]) | set(answers)
                                   if entries[image].get(name) != answers.get(name))
                what = (f"conflicting answers to {', '.join(differing)}" if differing else "the same answers twice")
                raise DermtoolError(f"--answers {path}: image {image} has two rows (lines {lines[image]} and "
                                    f"{reader.line_num}): {what}; give one row per image")
            entries[image] = answers
            lines[image] = reader.line_num
    return entries


def _is_question_column(name: str) -> bool:
    return any(name in (item.name, *item.aliases) for item in QUESTIONS)


def _read(reader: Callable[[], Answers], path: Path, image: Any) -> Answers:
    """``reader()``, its error prefixed with the file and the entry it came from."""
    try:
        return reader()
    except DermtoolError as error:
        raise DermtoolError(f"--answers {path}, image {image}: {error}") from None


class AnswerMatcher:
    """Finds an image's entry of an answers file: by exact path, then file name, then stem
    (:class:`dermtool.cli.image_keys.ImageKeyed`)."""

    def __init__(self, entries: Mapping[str, Answers], source: str | Path) -> None:
        normalised: dict[str, Answers] = {}
        for key, answers in entries.items():  # ./x.jpg and x.jpg are one image: two entries must not disagree
            path = os.path.normpath(key)
            if path in normalised and normalised[path] != answers:
                raise DermtoolError(f"--answers {source}: image {path} is named by two entries with different "
                                    "answers; give each image once")
            normalised[path] = answers
        self.source = str(source)
        self.table = ImageKeyed(normalised, "--answers", source, "answers")

    def answers_for(self, image: str) -> Answers | None:
        """The image's answers, or None when the file does not name it."""
        return self.table.find(image)

    def answers_for_all(self, images: Sequence[str]) -> list[Answers]:
        """One set of answers per image (empty for an image the file does not name)."""
        return [self.answers_for(image) or {} for image in images]


__all__ = ["AnswerMatcher", "questions_help", "read_answer_file"]
