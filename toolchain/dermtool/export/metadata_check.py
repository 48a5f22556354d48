"""The rules every field of a model's ``dermtool.json`` obeys: checked when ``export`` writes it and whenever a
model is loaded (command line, Python API, web app, the PWA's build), because a model file is untrusted input.

A model whose metadata breaks a rule is refused with one line naming the field
(``model.tflite: dermtool.json referral.threshold must be a number in [0, 1], got nan``): a tampered
referral threshold of NaN or 2.0 must never turn every melanoma into "benign" silently.

The associated files themselves (the zip appended to the FlatBuffer) are bounded too: at most
:data:`MAX_ASSOCIATED_FILES` entries of at most :data:`MAX_ASSOCIATED_FILE_BYTES` each, checked against
both the size an entry declares and the bytes it actually inflates to (a zip bomb is refused after reading
at most the cap).
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from dermtool import DermtoolError
from dermtool.data.preprocess import InputSpec
from dermtool.fusion.model import Fusion
from dermtool.prediction.lesion_check import threshold_from_metadata
from dermtool.prediction.multi_photo import MultiPhotoRule

#: At most this many associated files in a model (an export writes two or three: labels.txt, dermtool.json and lesion_check_labels.txt).
MAX_ASSOCIATED_FILES = 16
#: Declared and actual size cap of one associated file (dermtool.json with a fusion is about 30 kB).
MAX_ASSOCIATED_FILE_BYTES = 4_000_000
#: At most this many classes, each label at most this many characters.
MAX_LABELS = 1000
MAX_LABEL_LENGTH = 100
#: Largest input image side a model may declare.
MAX_IMAGE_SIZE = 4096
MODES = ("float", "fp16", "dynamic", "int8")
IO_TYPES = ("uint8", "int8", "float32")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _probability(value: Any, field: str, fail) -> None:
    if not _is_number(value) or not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise fail(f"{field} must be a number in [0, 1], got {value!r}")


def _labels(values: Any, fail) -> list[str]:
    if not isinstance(values, list) or not values or len(values) > MAX_LABELS:
        raise fail(f"labels must be a list of 1 to {MAX_LABELS} class names")
    for label in values:
        if (not isinstance(label, str) or not label.strip() or len(label) > MAX_LABEL_LENGTH
                or any(character in label for character in "\r\n\x00")):
            raise fail(f"labels must be non-empty one-line names of at most {MAX_LABEL_LENGTH} characters, "
                       f"got {str(label)[:40]!r}")
    lowered = [label.strip().lower() for label in values]
    if len(set(lowered)) != len(lowered):
        raise fail(f"labels name a class twice ({', '.join(values)})")
    return lowered


def _classes(values: Any, field: str, labels: list[str], fail) -> None:
    if values is None:
        return
    if not isinstance(values, list) or not all(isinstance(item, str) for item in values):
        raise fail(f"{field} must be a list of class names")
    unknown = [item for item in values if item.strip().lower() not in labels]
    if unknown:
        raise fail(f"{field} names {', '.join(map(repr, unknown[:3]))}, not among the labels {', '.join(labels)}")


def _operating_point(values: Any, field: str, labels: list[str], fail) -> None:
    """``referral`` / ``melanoma`` / ``fusion.referral``: threshold in [0, 1], classes among the labels."""
    if values is None:
        return
    if not isinstance(values, Mapping):
        raise fail(f"{field} must be an object")
    if values.get("threshold") is not None:
        _probability(values["threshold"], f"{field}.threshold", fail)
    if values.get("target_sensitivity") is not None:
        _probability(values["target_sensitivity"], f"{field}.target_sensitivity", fail)
    _classes(values.get("classes"), f"{field}.classes", labels, fail)


def check_metadata(metadata: Mapping[str, Any], source: str = "dermtool.json") -> None:
    """Raise a one-line :class:`DermtoolError` naming the field unless every field of ``metadata`` (the
    ``dermtool.json`` dict) obeys its rule. Fields that are absent are not required (models exported by
    other tools carry only labels)."""

    def fail(problem: str) -> DermtoolError:
        return DermtoolError(f"{source}: dermtool.json {problem}; the metadata is corrupt or was edited")

    if not isinstance(metadata, Mapping):
        raise fail("is not a JSON object")
    labels = _labels(metadata["labels"], fail) if "labels" in metadata else []
    spec = metadata.get("input_spec")
    if spec is not None:
        if not isinstance(spec, Mapping):
            raise fail("input_spec must be an object")
        try:
            parsed = InputSpec.from_dict(spec)
        except (DermtoolError, TypeError, ValueError) as error:
            raise fail(f"input_spec: {error}") from None
        if parsed.image_size > MAX_IMAGE_SIZE:
            raise fail(f"input_spec.image_size must be at most {MAX_IMAGE_SIZE}, got {parsed.image_size}")
    if "temperature" in metadata:
        value = metadata["temperature"]
        if not _is_number(value) or not math.isfinite(value) or value <= 0:
            raise fail(f"temperature must be a positive number, got {value!r}")
    if metadata.get("mode") is not None and metadata["mode"] not in MODES:
        raise fail(f"mode must be one of {', '.join(MODES)}, got {metadata['mode']!r}")
    if metadata.get("io") is not None and metadata["io"] not in IO_TYPES:
        raise fail(f"io must be one of {', '.join(IO_TYPES)}, got {metadata['io']!r}")
    if metadata.get("prune") is not None:
        value = metadata["prune"]
        if not _is_number(value) or not math.isfinite(value) or not 0.0 <= value < 1.0:
            raise fail(f"prune must be a number in [0, 1), got {value!r}")
    for field in ("referral", "melanoma"):
        _operating_point(metadata.get(field), field, labels, fail)
    if metadata.get("lesion_check") is not None:
        try:
            threshold_from_metadata(metadata, "lesion_check")
        except DermtoolError as error:
            raise fail(str(error).removeprefix("lesion_check: ")) from None
    if metadata.get("fusion") is not None:
        fusion = metadata["fusion"]
        try:
            Fusion.from_dict(fusion, "fusion", model_labels=list(metadata["labels"]) if labels else None)
        except DermtoolError as error:
            raise fail(str(error)) from None
        _operating_point(fusion.get("referral"), "fusion.referral", labels, fail)
    sources = metadata.get("sources")
    if sources is not None:
        if not isinstance(sources, list):
            raise fail("sources must be a list")
        for position, item in enumerate(sources):
            label_map = item.get("label_map", {}) if isinstance(item, Mapping) else None
            if (not isinstance(item, Mapping) or not isinstance(item.get("name"), str)
                    or not isinstance(label_map, Mapping)
                    or not all(isinstance(key, str) and isinstance(value, str) for key, value in label_map.items())):
                raise fail(f"sources[{position}] must be {{name, kind, label_map: {{label: class}}}}")
    if metadata.get("multi_photo") is not None:
        try:
            rule = MultiPhotoRule.from_dict(metadata["multi_photo"], "multi_photo")
        except DermtoolError as error:
            raise fail(str(error)) from None
        _classes(list(rule.referral_classes), "multi_photo.referral_classes", labels, fail)


__all__ = ["MAX_ASSOCIATED_FILES", "MAX_ASSOCIATED_FILE_BYTES", "check_metadata"]
