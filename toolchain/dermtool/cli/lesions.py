"""``dermtool predict --lesion`` / ``--lesions FILE``: which of the given photos show one lesion.

``--lesion``: every IMAGE is a photo of one lesion. ``--lesions FILE``: a CSV with an image (or image_id)
column and a lesion (or lesion_id) column, or a JSON object ``{lesion: [image, ...]}``; an image is matched
by its path, then its file name, then its stem (as ``--answers``), and an image the file does not name is a
lesion of its own. Lesions keep the order of their first photo among the images.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any, Sequence

from dermtool import DermtoolError
from dermtool.cli.image_keys import ImageKeyed

IMAGE_COLUMNS = ("image", "image_id", "path", "file")
LESION_COLUMNS = ("lesion", "lesion_id", "group")
#: The name of the one lesion of ``--lesion``.
SINGLE_LESION_NAME = "lesion"


def read_lesion_file(path: str | Path) -> dict[str, str]:
    """``{image: lesion}`` from a lesions file (CSV or JSON, see the module docstring)."""
    from dermtool.files import read_regular_file

    path = Path(path)
    if not path.is_file():
        raise DermtoolError(f"--lesions {path}: no such file")
    raw = read_regular_file(path, "--lesions")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DermtoolError(f"--lesions {path}: not a UTF-8 text file") from None
    if path.suffix.lower() == ".json" or text.lstrip().startswith("{"):
        return _read_json(text, path)
    return _read_csv(text, path)


def _read_json(text: str, path: Path) -> dict[str, str]:
    try:
        item = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as error:
        raise DermtoolError(f"--lesions {path}: not valid JSON ({error})") from None
    if not isinstance(item, dict) or not all(isinstance(images, list) and all(isinstance(image, str) for image in images)
                                             for images in item.values()):
        raise DermtoolError(f"--lesions {path}: give a JSON object {{lesion: [image, ...]}}")
    entries: dict[str, str] = {}
    for lesion, images in item.items():
        for image in images:
            _add(entries, image, str(lesion), path)
    return entries


def _read_csv(text: str, path: Path) -> dict[str, str]:
    reader = csv.DictReader(io.StringIO(text))
    columns = [name.strip().lower() for name in reader.fieldnames or []]
    image = next((name for name in IMAGE_COLUMNS if name in columns), None)
    lesion = next((name for name in LESION_COLUMNS if name in columns), None)
    if image is None or lesion is None:
        raise DermtoolError(f"--lesions {path}: a CSV needs an image column ({' or '.join(IMAGE_COLUMNS)}) and a "
                            f"lesion column ({' or '.join(LESION_COLUMNS)}); it has {', '.join(columns) or 'none'}")
    original = {name.strip().lower(): name for name in reader.fieldnames or []}
    entries: dict[str, str] = {}
    for number, row in enumerate(reader, start=2):
        name, group = (row.get(original[image]) or "").strip(), (row.get(original[lesion]) or "").strip()
        if not name or not group:
            raise DermtoolError(f"--lesions {path}: line {number} has no image or no lesion")
        _add(entries, name, group, path)
    return entries


def _add(entries: dict[str, str], image: str, lesion: str, path: Path) -> None:
    key = os.path.normpath(image)
    if entries.get(key, lesion) != lesion:
        raise DermtoolError(f"--lesions {path}: image {image} is in two lesions ({entries[key]} and {lesion}); a "
                            "photo shows one lesion")
    entries[key] = lesion


def group_images(paths: Sequence[str], single: bool, lesions_file: str | None) -> dict[str, list[str]]:
    """``{lesion: [image, ...]}`` in the order of each lesion's first photo (see the module docstring)."""
    if single and lesions_file:
        raise DermtoolError("give --lesion (every image is one lesion) or --lesions FILE (a file groups them), "
                            "not both")
    if single:
        return {SINGLE_LESION_NAME: list(paths)}
    matcher = ImageKeyed(read_lesion_file(lesions_file), "--lesions", lesions_file, "lesions")
    groups: dict[str, list[str]] = {}
    for path in paths:
        lesion = matcher.find(path)
        groups.setdefault(lesion if lesion is not None else path, []).append(path)
    return groups


__all__ = ["SINGLE_LESION_NAME", "group_images", "read_lesion_file"]


def lesion_answers(answer_source: Any, groups: dict[str, list[str]]) -> dict[str, dict[str, Any] | None]:
    """``{lesion: answers}``: ``--answer`` for every lesion, or from ``--answers FILE`` the one set its photos
    carry (photos of one lesion with different answers are an error naming the lesion)."""
    if answer_source.answers is not None:
        return {lesion: answer_source.answers for lesion in groups}
    if answer_source.matcher is None:
        return {lesion: None for lesion in groups}
    result: dict[str, dict[str, Any] | None] = {}
    for lesion, photos in groups.items():
        sets = [answers for answers in answer_source.matcher.answers_for_all(photos) if answers]
        distinct = [answers for position, answers in enumerate(sets) if answers not in sets[:position]]
        if len(distinct) > 1:
            raise DermtoolError(f"--answers {answer_source.matcher.source}: the photos of lesion {lesion} have "
                                "different answers; give one patient's answers once per lesion")
        result[lesion] = distinct[0] if distinct else None
    return result


def finish_lesions(output: Any, predictor: Any, groups: dict[str, list[str]], answer_source: Any, top_k: int,
                   model_path: str) -> None:
    """Predict every lesion, report it (text and --json) and exit 1 when a photo could not be read."""
    import sys

    from tqdm import tqdm

    from dermtool import DISCLAIMER
    from dermtool.prediction.lesion import model_rule, predict_lesion

    answers = lesion_answers(answer_source, groups)
    rule = model_rule(predictor)
    results = []
    photos = sum(len(images) for images in groups.values())
    with tqdm(total=photos, unit="image", file=sys.stderr, disable=True if photos < 10 else None) as bar:
        for lesion, images in groups.items():
            results.append(predict_lesion(predictor, images, lesion=lesion, answers=answers[lesion], top_k=top_k,
                                          rule=rule))
            bar.update(len(images))
    report_lesions(output, results, predictor, model_path, DISCLAIMER)
    output.write(results)
    unread = sum(item["reason"] == "error" for result in results for item in result["left_out"])
    failures = sum("error" in result for result in results)
    if unread:
        output.note(f"{unread} photo(s) could not be read; {failures} of {len(results)} lesion(s) got no answer.")
        sys.exit(1)


def report_lesions(output: Any, results: list[dict[str, Any]], predictor: Any, model_path: str,
                   disclaimer: str) -> None:
    """The text report of ``--lesion``/``--lesions``: the model and its rules, then per lesion its answer, the
    photos combined and those left out, and each photo's own outcome."""
    from dermtool.cli.predict import format_result, referral_summary
    from dermtool.prediction.lesion import describe_lesion

    kind = "run folder, float Keras" if predictor.kind == "run" else "TFLite"
    output.report(f"Model: {model_path} ({kind}; classes {', '.join(predictor.labels)})")
    for line in referral_summary(predictor):
        output.report(line)
    for result in results:
        output.report("")
        output.report(f"Lesion {result['lesion']} ({len(result['photos'])} photo(s))")
        if "error" in result:
            output.report(f"  Error: {result['error']}")
        else:
            for line in format_result(result, predictor)[1:]:
                output.report(line)
        for line in describe_lesion(result, predictor):
            output.report(f"  {line}")
        for photo in result["photos"]:
            shown = photo.get("outcome") or "unreadable"
            detail = "" if "error" in photo or photo.get("outcome") == "not_a_lesion" else (
                f": {photo['label']} {photo['probability'] * 100:.1f} %")
            output.report(f"    {photo['image']}: {shown}{detail}")
    output.report("")
    output.report(disclaimer)


__all__ += ["finish_lesions", "lesion_answers", "report_lesions"]
