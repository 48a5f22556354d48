"""Files dermtool reads that are not images, and the paths it writes: one guard each.

A model, an answers file, a config, a split or a mask is untrusted input as much as an image. Every such
file is read through :func:`read_regular_file`: it is opened without blocking (a FIFO never hangs a
command), must be a regular file once symbolic links are resolved (a FIFO, ``/dev/zero``, a socket or a
link to one is refused), and may not exceed a size cap that the message names with the environment
variable that raises it:

- ``DERMTOOL_MAX_MODEL_MB`` (default 512): ``.tflite`` models and the run folder's ``model.keras``;
- ``DERMTOOL_MAX_FILE_MB`` (default 64): every other file (answers, config, split, masks, JSON).

Output paths are checked by :func:`check_output_path` before any work starts: ``-`` (stdout where the
option allows it), a regular file (replaced atomically), or a path that does not exist yet; anything else
that exists (a folder, a device such as ``/dev/null``, a FIFO, a socket, or a path below a file) is refused,
so dermtool never replaces a device node with a regular file. :func:`check_output_folder` does the same for
output folders (``train --out``).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from dermtool import DermtoolError

ENV_MAX_MODEL = "DERMTOOL_MAX_MODEL_MB"
ENV_MAX_FILE = "DERMTOOL_MAX_FILE_MB"
MAX_MODEL_BYTES = 512_000_000
MAX_FILE_BYTES = 64_000_000


def env_millions(name: str, default: int) -> int:
    """A limit from the environment variable ``name``, a positive number of millions (megabytes,
    megapixels), as a plain count; ``default`` when it is unset; anything else is a one-line error naming
    the variable."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise DermtoolError(f"the environment variable {name}={text!r} is not a number") from None
    if not value > 0:
        raise DermtoolError(f"the environment variable {name}={text!r} must be positive")
    return int(value * 1e6)


def size_limit(model: bool = False) -> tuple[int, str]:
    """``(bytes, environment variable)``: the cap on a model file, or on any other non-image file."""
    return (env_millions(ENV_MAX_MODEL, MAX_MODEL_BYTES), ENV_MAX_MODEL) if model else (
        env_millions(ENV_MAX_FILE, MAX_FILE_BYTES), ENV_MAX_FILE)


def _mb(value: int) -> str:
    return f"{value / 1e6:,.0f} MB" if value >= 1e6 else f"{value / 1e6:.2f} MB"


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "not a regular file"


def read_regular_file(path: str | os.PathLike, what: str, *, model: bool = False) -> bytes:
    """The bytes of ``path``, a regular file (after symbolic links) within the size cap; a one-line
    :class:`DermtoolError` starting with ``what`` (e.g. ``"--answers"``, ``"model file"``) otherwise."""
    limit, variable = size_limit(model)
    name = f"{what} {path}"
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        descriptor = os.open(path, flags)
    except FileNotFoundError:
        raise DermtoolError(f"{name}: not found (no such file)") from None
    except IsADirectoryError:
        raise DermtoolError(f"{name}: is a folder, not a file") from None
    except OSError as error:
        raise DermtoolError(f"{name}: cannot read it ({error.strerror or error})") from None
    try:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            kind = _kind(status.st_mode)
            raise DermtoolError(f"{name}: is {kind}, not a regular file; only regular files are read"
                                if kind != "not a regular file" else f"{name}: not a regular file")
        if status.st_size > limit:
            raise DermtoolError(f"{name}: refused, the file has {status.st_size:,} bytes (the limit is {_mb(limit)}; "
                                f"raise it with the environment variable {variable})")
        with os.fdopen(descriptor, "rb") as handle:
            descriptor = -1
            data = handle.read(limit + 1)
    except OSError as error:
        raise DermtoolError(f"{name}: cannot read it ({error.strerror or error})") from None
    finally:
        if descriptor >= 0:
            os.close(descriptor)
    if len(data) > limit:  # it grew while being read
        raise DermtoolError(f"{name}: refused, the file has more than {limit:,} bytes (the limit is {_mb(limit)}; "
                            f"raise it with the environment variable {variable})")
    return data


def read_text_file(path: str | os.PathLike, what: str, encoding: str = "utf-8") -> str:
    """:func:`read_regular_file` decoded (``encoding``); undecodable bytes are a one-line error."""
    data = read_regular_file(path, what)
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as error:
        raise DermtoolError(f"{what} {path}: not a UTF-8 text file (byte {error.start})") from None


def check_regular_file(path: str | os.PathLike, what: str, *, model: bool = False) -> Path:
    """The checks of :func:`read_regular_file` without reading (for files a library opens itself)."""
    limit, variable = size_limit(model)
    try:
        status = os.stat(path)
    except FileNotFoundError:
        raise DermtoolError(f"{what} {path}: not found (no such file)") from None
    except OSError as error:
        raise DermtoolError(f"{what} {path}: cannot read it ({error.strerror or error})") from None
    if not stat.S_ISREG(status.st_mode):
        raise DermtoolError(f"{what} {path}: is {_kind(status.st_mode)}, not a regular file; only regular files are read")
    if status.st_size > limit:
        raise DermtoolError(f"{what} {path}: refused, the file has {status.st_size:,} bytes (the limit is {_mb(limit)}; "
                            f"raise it with the environment variable {variable})")
    return Path(path)


def check_output_path(path: str | os.PathLike, option: str, example: str = "results.json",
                      stdout_ok: bool = True) -> None:
    """Refuse, before any work, an output file path that is not ``-``, a regular file or a new name.

    Folders on the way that do not exist yet are made when writing; one that exists and is not a folder
    (``/etc/hostname/x``) is refused here."""
    text = os.fspath(path)
    if stdout_ok and text == "-":
        return
    target = Path(text)
    try:
        status = os.stat(target)
    except FileNotFoundError:
        status = None
    except NotADirectoryError:
        status = None  # a parent is a file: reported below
    except OSError as error:
        raise DermtoolError(f"{option} {path}: cannot use it ({error.strerror or error})") from None
    if status is not None:
        if stat.S_ISDIR(status.st_mode):
            raise DermtoolError(f"{option} {path} is a folder; give a file name such as {target / example}")
        if not stat.S_ISREG(status.st_mode):
            raise DermtoolError(f"{option} {path}: is {_kind(status.st_mode)}, not a regular file; it is never "
                                "replaced (give the name of a new or regular file)")
        return
    _check_parents(target, option, path)


def check_output_folder(path: str | os.PathLike, option: str) -> None:
    """Refuse an output folder that exists and is not a folder, or lies below something that is not one."""
    target = Path(os.fspath(path))
    try:
        status = os.stat(target)
    except (FileNotFoundError, NotADirectoryError):
        status = None
    except OSError as error:
        raise DermtoolError(f"{option} {path}: cannot use it ({error.strerror or error})") from None
    if status is not None:
        if not stat.S_ISDIR(status.st_mode):
            raise DermtoolError(f"{option} {path}: is {_kind(status.st_mode) if not stat.S_ISREG(status.st_mode) else 'a file'}, "
                                "not a folder")
        return
    _check_parents(target, option, path)


def _check_parents(target: Path, option: str, shown: object) -> None:
    for parent in target.absolute().parents:  # the nearest existing ancestor must be a writable folder
        try:
            status = os.stat(parent)
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as error:
            raise DermtoolError(f"{option} {shown}: cannot use {parent} ({error.strerror or error})") from None
        if not stat.S_ISDIR(status.st_mode):
            raise DermtoolError(f"{option} {shown}: {parent} is not a folder")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise DermtoolError(f"{option} {shown}: cannot write in {parent} (permission denied)")
        return


__all__ = ["ENV_MAX_FILE", "ENV_MAX_MODEL", "MAX_FILE_BYTES", "MAX_MODEL_BYTES", "check_output_folder",
           "check_output_path", "check_regular_file", "read_regular_file", "read_text_file", "size_limit"]
