"""``--json PATH`` and exit statuses, the same on every command that produces results.

``--json PATH`` writes the command's results as JSON to PATH (atomically: a reader never sees half a
file); ``--json -`` prints them to stdout, and then *nothing else* goes to stdout: the text report is left
out, and notes, warnings, progress and anything a library prints go to stderr. A PATH that is a folder, a
device (``/dev/null``), a FIFO or a socket, or lies below a file, is refused before any work (exit 2): only a
regular file or a new name is written; missing folders on the way are made. The JSON never holds NaN or
infinity (such a number is written as null).

Exit statuses (docs/contract.md): 0 ok; 1 partial failure (some images unreadable in ``predict``,
``data check --strict`` problems); 2 usage (click's usage errors, and :class:`dermtool.DermtoolError`);
3 refused by a gate or check (:class:`dermtool.CheckFailed`: export's accuracy gate, a model with
non-finite outputs).

Use::

    @json_option("the metrics")
    def evaluate(..., json_out: str | None):
        output = JsonOutput(json_out, "--json")
        with output.capture():
            result = ...
            output.report(format_metrics_table(result))   # left out with --json -
            output.note("Skipped 2 images")                 # always stderr
            output.write(result)
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import click

from dermtool import DermtoolError

#: ``--json -``: the JSON goes to stdout.
STDOUT = "-"

#: Exit statuses of every command.
EXIT_OK = 0
EXIT_PARTIAL = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3


def json_option(what: str, **extra: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The ``--json PATH`` option (parameter ``json_out``), ``what`` naming what is written."""
    return click.option(
        "--json", "json_out", default=None, metavar="PATH",
        help=f"Write {what} as JSON to PATH; '-' prints it to stdout, and nothing else (notes go to stderr). "
        "PATH is a regular file or a new name: a folder, device or FIFO is refused.",
        **extra,
    )


def check_output_file(path: str | Path, option: str = "--json", example: str = "results.json") -> None:
    """Refuse, before any work, an output path that is not ``-``, a regular file or a new name: a folder, a
    device (``/dev/null``), a FIFO or a socket, or a path below a file (:func:`dermtool.files.check_output_path`)."""
    from dermtool.files import check_output_path

    check_output_path(path, option, example)


def finite_json(obj: Any) -> Any:
    """``obj`` with every non-finite float (NaN, infinity) replaced by None: ``--json`` is always valid JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {key: finite_json(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_json(value) for value in obj]
    return obj


class JsonOutput:
    """Where a command's JSON and text go (see the module docstring)."""

    def __init__(self, json_out: str | Path | None, option: str = "--json") -> None:
        self.path = None if json_out is None else str(json_out)
        self.option = option
        self._stdout: Any = None
        if self.path is not None:
            check_output_file(self.path, option)

    @property
    def to_stdout(self) -> bool:
        return self.path == STDOUT

    @contextlib.contextmanager
    def capture(self) -> Iterator["JsonOutput"]:
        """With ``--json -``: everything printed inside goes to stderr; :meth:`write` still reaches stdout."""
        if not self.to_stdout:
            yield self
            return
        self._stdout = sys.stdout
        try:
            with contextlib.redirect_stdout(sys.stderr):
                yield self
        finally:
            self._stdout = None

    def report(self, text: str = "") -> None:
        """A line (or block) of the text report: stdout, left out when the JSON goes to stdout."""
        if not self.to_stdout:
            click.echo(text)

    @staticmethod
    def note(text: str) -> None:
        """A note, warning or 'Wrote ...' line: always stderr."""
        click.echo(text, err=True)

    def write(self, obj: Any) -> None:
        """The JSON: to the file (atomically), to stdout, or nowhere without ``--json``."""
        if self.path is None:
            return
        obj = finite_json(obj)
        if self.to_stdout:
            click.echo(json.dumps(obj, indent=2, allow_nan=False), file=self._stdout or sys.stdout)
            (self._stdout or sys.stdout).flush()
            return
        from dermtool.io_utils import atomic_write_json

        try:
            atomic_write_json(self.path, obj)
        except OSError as error:
            raise DermtoolError(f"cannot write {self.option} {self.path}: {error.strerror or error}") from None
        self.note(f"Wrote {self.path}")


__all__ = ["STDOUT", "EXIT_OK", "EXIT_PARTIAL", "EXIT_USAGE", "EXIT_REFUSED", "json_option", "check_output_file",
           "finite_json", "JsonOutput"]
