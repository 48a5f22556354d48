"""Helpers shared by the benchmark-script tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.scripts import load_script

BENCHMARKS_DIR = Path(__file__).resolve().parents[2] / "benchmarks"


def load_benchmark_script(name: str) -> Any:
    """benchmarks/NAME.py as a module (the benchmark scripts are not part of the package)."""
    return load_script(BENCHMARKS_DIR / f"{name}.py", name)
