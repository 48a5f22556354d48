"""Session fixtures for exported TFLite models (owned by the export module's tests).

``exported_models``: ``{mode: Path}`` of the ``tiny_run`` fixture exported once per test session in every
named mode ("float", "fp16", "dynamic", "int8" with uint8 input/output), gate off (the tiny run's
scores mean nothing), with metadata and model cards, by :func:`dermtool.export.tflite.export_model`.
``exported_results``: the same exports as ``{mode: ExportResult}`` (sizes, gate numbers, card paths); they
have no lesion check (the "older exports" of the tests).
``lesion_check_run``: a copy of ``tiny_run`` with ``RUN/lesion_check.json`` fitted (tiny settings);
``exported_with_lesion_check``: it exported as ``{"float": Path, "int8": Path}``, each with the second output
``lesion_check`` (categories lesion, not_a_lesion; its threshold in dermtool.json).

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


#: The tiny lesion-check fit: few images, one L2 strength (the tiny run's 84 images; seconds, not minutes).
TINY_LESION_CHECK_SETTINGS = dict(lesions_per_source=40, validation_per_source=20, crops_per_source=30,
                                  validation_crops_per_source=15, generated_per_kind=4, l2_strengths=(1e-2,))


@pytest.fixture(scope="session")
def lesion_check_run(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of ``tiny_run`` with its lesion check fitted (``RUN/lesion_check.json``; read-only)."""
    import shutil

    from dermtool.prediction.lesion_check_fit import FitSettings, fit_for_run

    run = tmp_path_factory.mktemp("lesion_check_run") / "run"
    shutil.copytree(tiny_run, run)
    fit_for_run(run, settings=FitSettings(**TINY_LESION_CHECK_SETTINGS), progress=False)
    return run


@pytest.fixture(scope="session")
def exported_with_lesion_check(lesion_check_run: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``{"float": Path, "int8": Path}``: ``lesion_check_run`` exported with the lesion check as its second
    output ``lesion_check`` (gate off; int8 with uint8 input/output). Read-only."""
    from dermtool.export.tflite import export_model

    folder = tmp_path_factory.mktemp("exported_with_lesion_check")
    return {
        mode: export_model(lesion_check_run, folder / f"tiny_check_{mode}.tflite", mode=mode, gate=False,
                           representative_images=TINY_REPRESENTATIVE_IMAGES, progress=False).path
        for mode in ("float", "int8")
    }
