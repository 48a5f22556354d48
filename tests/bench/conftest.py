"""Helpers shared by the benchmark-script tests."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

BENCHMARKS_DIR = Path(__file__).resolve().parents[2] / "benchmarks"


def load_benchmark_script(name: str) -> Any:
    """benchmarks/NAME.py as a module (the benchmark scripts are not part of the package)."""
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
