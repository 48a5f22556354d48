"""tflite-support's ``MetadataDisplayer`` as an independent reader of exported models (tests only).

dermtool writes the TFLite metadata with its own populator on MediaPipe's generated schema
(:mod:`dermtool.export.metadata`); these helpers read it back with the reference implementation of the
metadata format, tflite-support 0.4.4 (the `test` set installs it on Python 3.11 only: it has no wheels for
3.12 and 3.13, where the tests that need it are skipped). Its compiled modules link against libusb-1.0, loaded
from the ``libusb-package`` wheel first.

``golden/displayer_<name>.json`` holds what the displayer read from one exported model: the metadata JSON
(without the ``version`` field, which carries the dermtool version) and the packed associated files' names.
``DERMTOOL_UPDATE_GOLDEN=1`` rewrites a golden file after an intended change.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

GOLDEN = Path(__file__).parent / "golden"
#: Fields of the metadata JSON that change with the dermtool version (left out of golden comparisons).
VOLATILE_FIELDS = ("version",)


def available() -> bool:
    """Whether tflite-support is installed (Python 3.11 with the `make install` set)."""
    import importlib.util

    return importlib.util.find_spec("tensorflow_lite_support") is not None


def metadata_module() -> Any:
    """``tensorflow_lite_support.metadata.python.metadata`` (skips the test where tflite-support is absent)."""
    import ctypes

    pytest.importorskip("tensorflow_lite_support", reason="tflite-support (Python 3.11 only) is not installed")
    try:
        import libusb_package

        library = libusb_package.get_library_path()
    except ImportError:
        library = None
    if library is not None:
        ctypes.CDLL(str(library), mode=ctypes.RTLD_GLOBAL)
    from tensorflow_lite_support.metadata.python import metadata

    return metadata


def displayed(model: Path | bytes) -> dict[str, Any]:
    """``{"metadata": <MetadataDisplayer JSON without VOLATILE_FIELDS>, "packed_files": [...]}``."""
    content = model if isinstance(model, (bytes, bytearray)) else Path(model).read_bytes()
    displayer = metadata_module().MetadataDisplayer.with_model_buffer(bytes(content))
    values = json.loads(displayer.get_metadata_json())
    for key in VOLATILE_FIELDS:
        values.pop(key, None)
    return {"metadata": values, "packed_files": sorted(displayer.get_packed_associated_file_list())}


def assert_matches_golden(model: Path | bytes, name: str) -> dict[str, Any]:
    """The displayer's reading of ``model`` equals ``golden/displayer_<name>.json``; returns the reading."""
    actual = displayed(model)
    golden = GOLDEN / f"displayer_{name}.json"
    if os.environ.get("DERMTOOL_UPDATE_GOLDEN") == "1":
        golden.write_text(json.dumps(actual, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    assert actual == json.loads(golden.read_text(encoding="utf-8")), f"{golden.name} differs"
    return actual
