"""Questionnaire answers for ``dermtool predict``: ``--answer QUESTION=ANSWER`` and ``--answers FILE``.

``--answers FILE`` gives each image its own answers, in one of two formats:

- JSON: an object ``{image: {question: answer}}``, the image named by its path or its file name;
- CSV: a column ``image`` or ``image_id`` and one column per question (its name or an alias such as
  PAD-UFES-20's ``gender`` and ``region`` or HAM10000's ``localization``; other columns are ignored).

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


def _answers_of_json(text: str, path: Path) -> dict[str, Answers]:
    try:
        content = json.loads(text)
    except RecursionError:
        raise DermtoolError(f"--answers {path}: not usable JSON (nested too deeply)") from None
    except ValueError as error:
        raise DermtoolError(f"--answers {path}: not valid JSON ({error})") from None
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
    entries: dict[str, Answers] = {}
    for row in reader:
        image = (row.get(image_column) or "").strip()
        if image:
            entries[image] = _read(lambda: answers_from_row(row), path, image)
    return entries


def _is_question_column(name: str) -> bool:
    return any(name in (item.name, *item.aliases) for item in QUESTIONS)


def _read(reader: Callable[[], Answers], path: Path, image: Any) -> Answers:
    """``reader()``, its error prefixed with the file and the entry it came from."""
    try:
        return reader()
    except DermtoolError as error:
        raise DermtoolError(f"--answers {path}, image {image}: {error}") from None


def _stem(name: str) -> str:
    """A file name without its image suffix (``ISIC_0024306.jpg`` -> ``ISIC_0024306``; other dots stay)."""
    from dermtool.data.images import IMAGE_SUFFIXES

    stem, suffix = os.path.splitext(name)
    return stem if suffix.lower() in IMAGE_SUFFIXES else name


class AnswerMatcher:
    """Finds an image's entry of an answers file: by exact path, then file name, then stem."""

    def __init__(self, entries: Mapping[str, Answers], source: str | Path) -> None:
        self.entries = {os.path.normpath(key): answers for key, answers in entries.items()}
        self.source = str(source)
        self._by_name = self._index(lambda key: os.path.basename(key))
        self._by_stem = self._index(lambda key: _stem(os.path.basename(key)))

    def _index(self, key_of: Callable[[str], str]) -> dict[str, list[str]]:
        index: dict[str, list[str]] = {}
        for key in self.entries:
            index.setdefault(key_of(key), []).append(key)
        return index

    def answers_for(self, image: str) -> Answers | None:
        """The image's answers, or None when the file does not name it."""
        path = os.path.normpath(str(image))
        if path in self.entries:
            return self.entries[path]
        name = os.path.basename(path)
        for index, key in ((self._by_name, name), (self._by_stem, _stem(name))):
            keys = index.get(key)
            if keys and len(keys) > 1:
                raise DermtoolError(f"--answers {self.source}: {image} matches {len(keys)} entries "
                                    f"({', '.join(sorted(keys)[:3])}); key the entries by the image's path")
            if keys:
                return self.entries[keys[0]]
        return None

    def answers_for_all(self, images: Sequence[str]) -> list[Answers]:
        """One set of answers per image (empty for an image the file does not name)."""
        return [self.answers_for(image) or {} for image in images]


__all__ = ["AnswerMatcher", "questions_help", "read_answer_file"]
