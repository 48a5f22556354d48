"""Load a repository script (benchmarks/, mobile_demo/: not part of the dermtool package) as a module."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any


def load_script(path: Path, module_name: str) -> Any:
    """The Python file at ``path`` executed as a module named ``module_name``."""
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
