"""Session fixtures for exported TFLite models (owned by the export module's tests).

``exported_models``: ``{mode: Path}`` of the ``tiny_run`` fixture exported once per test session in every
named mode ("float", "fp16", "dynamic", "int8" with uint8 input/output), gate off (the tiny run's
scores mean nothing), with metadata and model cards, by :func:`dermtool.export.tflite.export_model`.
``exported_results``: the same exports as ``{mode: ExportResult}`` (sizes, gate numbers, card paths).

Treat the files as read-only: a test that changes a model must copy it first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

EXPORT_MODES = ("float", "fp16", "dynamic", "int8")
#: int8 calibration images of the tiny exports (the tiny run has about 80 training images)
TINY_REPRESENTATIVE_IMAGES = 64


@pytest.fixture(scope="session")
def exported_results(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """``{mode: ExportResult}`` of ``tiny_run`` exported in every mode (gate off), files in one folder."""
    from dermtool.export.tflite import export_model

    folder = tmp_path_factory.mktemp("exported_models")
    return {
        mode: export_model(
            tiny_run,
            folder / f"tiny_{mode}.tflite",
            mode=mode,
            gate=False,
            representative_images=TINY_REPRESENTATIVE_IMAGES,
            progress=False,
        )
        for mode in EXPORT_MODES
    }


@pytest.fixture(scope="session")
def exported_models(exported_results: dict[str, Any]) -> dict[str, Path]:
    """``{mode: Path}`` of the tiny run's exports: float, fp16, dynamic, int8 (uint8 in/out)."""
    return {mode: result.path for mode, result in exported_results.items()}
