"""Silence TensorFlow's start-up logging (the command line, and clients such as MediaPipe's that load it).

TensorFlow 2.21 (and LiteRT, which carries its own copy of the runtime) log from C++ through absl *before*
any Python setting can reach them: ``TF_CPP_MIN_LOG_LEVEL`` does not stop "All log messages before
absl::InitializeLog() ...", the oneDNN note, the CUDA stub lines or "failed call to cuInit". They would come
before every ``Error:`` line of a command. :func:`install` puts a finder on ``sys.meta_path`` that runs the
first import of those packages (and TensorFlow's first device query, where the CUDA lines come from) with
the process's stderr file descriptor pointed at ``/dev/null``; a Python exception raised by the import
still reaches the user, after stderr is restored. Only the command line installs it; ``import dermtool``
changes nothing.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import logging
import os
import sys
from typing import Any, Iterator

#: Top-level packages whose first import is silenced.
NOISY_PACKAGES = frozenset({"tensorflow", "tf_keras", "ai_edge_litert"})


@contextlib.contextmanager
def stderr_silenced() -> Iterator[None]:
    """Point file descriptor 2 at /dev/null for the duration (C++ logging included)."""
    try:
        sys.stderr.flush()
    except (AttributeError, ValueError):
        pass
    try:
        saved = os.dup(2)
    except OSError:  # no stderr descriptor at all: nothing to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _quiet_python_loggers(name: str, module: Any) -> None:
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    if name == "tensorflow":
        with contextlib.suppress(Exception):
            module.get_logger().setLevel(logging.ERROR)
        with contextlib.suppress(Exception):
            module.config.list_physical_devices()  # the CUDA probe ("failed call to cuInit") logs here, once


class _QuietFinder(importlib.abc.MetaPathFinder):
    def __init__(self) -> None:
        self._busy: set[str] = set()

    def find_spec(self, name: str, path: Any = None, target: Any = None):  # noqa: D401 - importlib protocol
        if name not in NOISY_PACKAGES or name in self._busy:
            return None
        self._busy.add(name)
        try:
            spec = importlib.util.find_spec(name)
        finally:
            self._busy.discard(name)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        loader = spec.loader
        original = loader.exec_module

        def exec_module(module: Any) -> None:
            with stderr_silenced():
                original(module)
                _quiet_python_loggers(name, module)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


_FINDER = _QuietFinder()


def install() -> None:
    """Silence the first import of TensorFlow, tf_keras and LiteRT from now on (idempotent)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)


__all__ = ["install", "stderr_silenced"]
