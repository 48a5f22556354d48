"""Helpers for tests that need a .tflite file with chosen (or broken) metadata, made from a real export."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any


def with_metadata(model_path: Path, destination: Path, files: dict[str, str]) -> Path:
    """A copy of ``model_path`` whose associated files (the zip appended to the FlatBuffer) are ``files``.

    tflite-support packs associated files as a zip archive after the FlatBuffer; a zip appended after that
    one is the one a reader finds (the end-of-archive record is read from the end of the file). ``{}``
    gives a model without metadata.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    destination.write_bytes(Path(model_path).read_bytes() + buffer.getvalue())
    return destination


def dermtool_metadata(metadata: dict[str, Any], **changes: Any) -> dict[str, str]:
    """labels.txt + dermtool.json files from a model's metadata dict, with ``changes`` applied."""
    values = dict(metadata)
    values.update(changes)
    return {"labels.txt": "\n".join(values["labels"]) + "\n", "dermtool.json": json.dumps(values)}
