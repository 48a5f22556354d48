"""Decoding one image safely: any file a user may hand over becomes 8-bit RGB pixels, or a clear error.

Two entry points:

- :func:`load_rgb` decodes a path or raw bytes into a ``uint8`` array ``(height, width, 3)`` with the EXIF
  orientation applied and every other piece of metadata dropped (only pixels leave this function).
- :func:`inspect_image` decodes a file fully (so a truncated file is caught) and describes it: size, mode,
  format, bit depth, EXIF orientation and the unusual properties worth a warning (greyscale, alpha, CMYK ...).

Both raise :class:`ImageError`, whose ``reason`` is one short code:

========== ===============================================================
empty      the file has zero bytes
not_an_image the bytes are not an image format Pillow knows (text, HTML, ...)
truncated  the file starts as an image but its data stops early or is cut
too_large  over the decoding budget (:class:`DecodeLimits`): the file has more bytes than
           ``max_bytes``, or its header claims more than ``max_pixels`` pixels, or decoding it would
           need more than ``max_decode_bytes`` of memory (refused from the header alone, before any
           decoding; the message names the limit and the environment variable that raises it)
unreadable the file cannot be read, is not a regular file (a FIFO, a device such as /dev/zero, a
           socket), or its image data is corrupt
========== ===============================================================

The decoding budget is one for every entry point (the command line, the Python API, the web app and the
training pipeline all decode through :func:`load_rgb`): only regular files are opened (without blocking,
so a FIFO never hangs a command), at most ``max_bytes`` bytes are read, and the memory a decode needs is
estimated from the header (:func:`decode_cost`), before a pixel is decoded. Decoding costs what the estimate
says (``benchmarks/bench_decode_memory.py`` measures it within a few per cent): the conversion to 8-bit RGB
works on strips of rows into one preallocated array, and the EXIF orientation is applied to that array, so no
full-size copy is made on the way. The limits are read from the environment on every call: ``DERMTOOL_MAX_IMAGE_MB`` (file size,
default 64), ``DERMTOOL_MAX_IMAGE_MEGAPIXELS`` (default 40) and ``DERMTOOL_MAX_DECODE_MB`` (decoded
memory, default 256).

Pillow is strict here: ``ImageFile.LOAD_TRUNCATED_IMAGES`` is never set, and every decode calls
``.load()`` so that errors surface now rather than later, in the middle of training.
"""

from __future__ import annotations

import io
import os
import re
import stat
import struct
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar, Union

import numpy as np
from PIL import Image, UnidentifiedImageError

from dermtool import DermtoolError
from dermtool.files import env_millions

T = TypeVar("T")

#: Decompression-bomb guard: an image whose header claims more pixels than this is refused unread.
MAX_IMAGE_PIXELS = 40_000_000
#: Files (and uploads handed over as bytes) larger than this are refused unread.
MAX_IMAGE_BYTES = 64_000_000
#: Memory a decode may need (the decoded pixels and the 8-bit RGB result, or the result and the copy the
#: resize reads), estimated from the header by :func:`decode_cost` before any pixel is decoded.
MAX_DECODE_BYTES = 256_000_000

ENV_MAX_BYTES = "DERMTOOL_MAX_IMAGE_MB"
ENV_MAX_PIXELS = "DERMTOOL_MAX_IMAGE_MEGAPIXELS"
ENV_MAX_DECODE = "DERMTOOL_MAX_DECODE_MB"

# Pillow's own guard raises DecompressionBombError above twice its limit (and only warns between one and
# two times). Tighten it to ours, never loosen a stricter value set by someone else; the explicit check in
# _open() refuses everything above MAX_IMAGE_PIXELS itself.
if Image.MAX_IMAGE_PIXELS is None or Image.MAX_IMAGE_PIXELS > MAX_IMAGE_PIXELS:
    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS

#: File name suffixes treated as images when folders are scanned (lower case).
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".jfif"})

#: A side shorter than this many pixels earns the "tiny" warning.
TINY_SIDE = 32

# Leading bytes of image formats: a file that starts like an image but cannot be opened is truncated,
# not "not an image".
_IMAGE_SIGNATURES = (
    b"\xff\xd8\xff",  # JPEG
    b"\x89PNG\r\n\x1a\n",  # PNG
    b"GIF87a",
    b"GIF89a",
    b"BM",  # BMP
    b"II*\x00",  # TIFF, little endian
    b"MM\x00*",  # TIFF, big endian
    b"RIFF",  # WebP (RIFF....WEBP)
)

PathOrBytes = Union[str, os.PathLike, bytes, bytearray, memoryview]


@dataclass(frozen=True)
class DecodeLimits:
    """The decoding budget. :func:`decode_limits` reads it from the environment (defaults above)."""

    max_bytes: int = MAX_IMAGE_BYTES
    max_pixels: int = MAX_IMAGE_PIXELS
    max_decode_bytes: int = MAX_DECODE_BYTES


def decode_limits() -> DecodeLimits:
    """The decoding budget now: the defaults, or what ``DERMTOOL_MAX_IMAGE_MB``,
    ``DERMTOOL_MAX_IMAGE_MEGAPIXELS`` and ``DERMTOOL_MAX_DECODE_MB`` say (read on every call)."""
    return DecodeLimits(
        max_bytes=env_millions(ENV_MAX_BYTES, MAX_IMAGE_BYTES),
        max_pixels=env_millions(ENV_MAX_PIXELS, MAX_IMAGE_PIXELS),
        max_decode_bytes=env_millions(ENV_MAX_DECODE, MAX_DECODE_BYTES),
    )


#: Bytes per pixel of each Pillow mode as Pillow holds it in memory (RGB is stored as 4 bytes).
_STORED_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}
#: Modes decoded through a scaling pass (see _to_rgb_array).
_HIGH_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
#: Pixels converted at a time: the conversion to 8-bit RGB works on strips of rows of about this many pixels,
#: so its working memory does not grow with the image.
STRIP_PIXELS = 1 << 17
#: Working bytes per pixel of one strip (a cropped copy, a float32 scaling buffer, its 8-bit RGB result).
_STRIP_BYTES = 16
#: Bytes per pixel while the decoded image is resized to a model's input (dermtool.data.preprocess.resize):
#: the uint8 RGB array (3) and the Pillow copy the resampler reads (4).
_RESIZE_BYTES = 7


def decode_cost(width: int, height: int, mode: str) -> int:
    """Bytes of memory decoding a ``width x height`` image of Pillow ``mode`` needs, up to the model's input.

    What :func:`load_rgb` and :func:`dermtool.data.preprocess.load_image` hold at their peak (measured by
    ``benchmarks/bench_decode_memory.py``): the decoded pixels as Pillow stores them (1 byte per pixel for
    1-bit, greyscale and palette images, 2 for 16-bit greyscale, 4 for every colour, alpha, 32-bit and float
    mode) together with the ``uint8 (H, W, 3)`` result (3 bytes per pixel), the conversion working on strips
    of :data:`STRIP_PIXELS` pixels; then, once the decoded image is freed, the result and the copy the
    resize reads (7 bytes per pixel). The larger of the two, plus one strip's working memory.
    """
    pixels = int(width) * int(height)
    stored = _STORED_BYTES.get(mode, 4)
    return pixels * max(stored + 3, _RESIZE_BYTES) + min(pixels, STRIP_PIXELS) * _STRIP_BYTES


def _mb(value: float) -> str:
    return f"{value / 1e6:,.0f} MB" if value >= 1e6 else f"{value / 1e6:.2f} MB"


class ImageError(DermtoolError):
    """An image that cannot be used. ``reason`` is a short code (see the module docstring)."""

    def __init__(self, reason: str, message: str, path: str | os.PathLike | None = None) -> None:
        self.reason = reason
        self.path = None if path is None else str(path)
        super().__init__(message)


@dataclass
class ImageInfo:
    """What :func:`inspect_image` found out about a file that decodes correctly.

    ``width`` and ``height`` are as stored (before the EXIF orientation is applied). ``bits`` is the bit
    depth per channel (1, 8, 16 or 32). ``problems`` lists warnings, none of which stops the image from
    being used: "greyscale", "rgba" (any alpha channel), "cmyk", "16-bit", "palette", "float",
    "exif_rotated" (an EXIF orientation other than 1), "exif_unreadable", "tiny" (a side < 32 pixels),
    "animated" (several frames: only the first is used).
    """

    width: int
    height: int
    mode: str
    format: str | None
    bits: int
    exif_orientation: int | None
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _describe(source: PathOrBytes) -> str:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<{len(source)} bytes>"
    return str(source)


def _too_many_bytes(name: str, size: int, limits: DecodeLimits) -> ImageError:
    return ImageError(
        "too_large",
        f"{name}: refused, the file has {size:,} bytes (the limit is {_mb(limits.max_bytes)}; raise it with the "
        f"environment variable {ENV_MAX_BYTES})",
        name,
    )


def read_image_file(path: str | os.PathLike, limits: DecodeLimits | None = None) -> bytes:
    """The bytes of an image file, within the budget: only a regular file is read (a FIFO, a device such as
    /dev/zero or a socket is refused, even through a symbolic link, without blocking), and at most
    ``limits.max_bytes`` bytes. Raises :class:`ImageError`."""
    limits = limits or decode_limits()
    name = str(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        descriptor = os.open(path, flags)
    except FileNotFoundError:
        raise ImageError("unreadable", f"{name}: no such file", path) from None
    except IsADirectoryError:
        raise ImageError("unreadable", f"{name}: is a folder, not an image file", path) from None
    except OSError as error:
        raise ImageError("unreadable", f"{name}: cannot read the file ({error.strerror or error})", path) from None
    try:
        status = os.fstat(descriptor)
        if stat.S_ISDIR(status.st_mode):
            raise ImageError("unreadable", f"{name}: is a folder, not an image file", path)
        if not stat.S_ISREG(status.st_mode):
            raise ImageError(
                "unreadable", f"{name}: not a regular file (a FIFO, device or socket); only image files are read",
                path,
            )
        if status.st_size > limits.max_bytes:
            raise _too_many_bytes(name, status.st_size, limits)
        with os.fdopen(descriptor, "rb") as handle:
            descriptor = -1  # closed by the file object
            data = handle.read(limits.max_bytes + 1)
    except OSError as error:
        raise ImageError("unreadable", f"{name}: cannot read the file ({error.strerror or error})", path) from None
    finally:
        if descriptor >= 0:
            os.close(descriptor)
    if len(data) > limits.max_bytes:  # the file grew while being read
        raise _too_many_bytes(name, len(data), limits)
    return data


def _read_bytes(source: PathOrBytes, limits: DecodeLimits) -> tuple[bytes, str]:
    """The raw bytes of ``source`` (within the byte limit) and a name for messages."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        name = _describe(source)
        if len(source) > limits.max_bytes:
            raise _too_many_bytes(name, len(source), limits)
        return bytes(source), name
    return read_image_file(source, limits), str(source)


def _open(data: bytes, name: str, limits: DecodeLimits | None = None) -> Image.Image:
    """Open (header only) and check the size claim and the decoding budget; no pixel is decoded yet."""
    limits = limits or decode_limits()
    if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < limits.max_pixels:
        Image.MAX_IMAGE_PIXELS = limits.max_pixels  # raised on purpose (DERMTOOL_MAX_IMAGE_MEGAPIXELS)
    if not data:
        raise ImageError("empty", f"{name}: empty file (0 bytes)", name)
    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as error:
        raise _too_large(name, error, limits) from None
    except UnidentifiedImageError:
        if data.startswith(_IMAGE_SIGNATURES):
            raise ImageError(
                "truncated", f"{name}: starts like an image but cannot be decoded (truncated or corrupt header)", name
            ) from None
        raise ImageError("not_an_image", f"{name}: not an image file (format not recognised)", name) from None
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        reason = "truncated" if _looks_truncated(error) else "unreadable"
        raise ImageError(reason, f"{name}: cannot open the image ({error})", name) from None
    width, height = image.size
    if width * height > limits.max_pixels:
        raise ImageError(
            "too_large",
            f"{name}: refused, the header claims {width}x{height} = {width * height:,} pixels "
            f"(the limit is {limits.max_pixels:,}; raise it with the environment variable {ENV_MAX_PIXELS})",
            name,
        )
    if width <= 0 or height <= 0:
        raise ImageError("unreadable", f"{name}: the header claims an empty image ({width}x{height})", name)
    cost = decode_cost(width, height, image.mode)
    if cost > limits.max_decode_bytes:
        raise ImageError(
            "too_large",
            f"{name}: refused, decoding this {width}x{height} {image.mode} image needs about {_mb(cost)} of "
            f"memory (the limit is {_mb(limits.max_decode_bytes)}; raise it with the environment variable "
            f"{ENV_MAX_DECODE})",
            name,
        )
    return image


def _too_large(name: str, error: Exception, limits: DecodeLimits | None = None) -> ImageError:
    """Pillow's own guard fired (more than twice its limit): say it in our terms."""
    limits = limits or decode_limits()
    claimed = re.search(r"\((\d+) pixels\)", str(error))
    pixels = f"{int(claimed.group(1)):,} pixels" if claimed else "too many pixels"
    return ImageError(
        "too_large",
        f"{name}: refused, the header claims {pixels} (the limit is {limits.max_pixels:,}; raise it with the "
        f"environment variable {ENV_MAX_PIXELS})",
        name,
    )


def _looks_truncated(error: BaseException) -> bool:
    text = str(error).lower()
    return isinstance(error, EOFError) or any(
        word in text for word in ("truncated", "premature", "broken data stream", "end of file", "eof")
    )


def _decode(image: Image.Image, name: str) -> None:
    """Force the full decode so truncated or corrupt data raises now."""
    try:
        image.load()
    except Image.DecompressionBombError as error:
        raise _too_large(name, error) from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as error:
        reason = "truncated" if _looks_truncated(error) else "unreadable"
        detail = "the image data stops early" if reason == "truncated" else "corrupt image data"
        raise ImageError(reason, f"{name}: {detail} ({error})", name) from None


def _exif_orientation(image: Image.Image) -> int | None:
    """The EXIF orientation tag (1..8), None when absent. Raises on unreadable EXIF data."""
    exif = image.getexif()
    value = exif.get(0x0112)
    return int(value) if value is not None else None


def _strip_rows(width: int) -> int:
    return max(1, STRIP_PIXELS // max(1, int(width)))


def _strips(image: Image.Image):
    """``(top, bottom, part)``: the image in strips of rows (the image itself when it fits in one strip)."""
    width, height = image.size
    rows = _strip_rows(width)
    if height <= rows:
        yield 0, height, image
        return
    for top in range(0, height, rows):
        bottom = min(height, top + rows)
        yield top, bottom, image.crop((0, top, width, bottom))


def _high_bit_scale(image: Image.Image) -> tuple[str, float]:
    """For I and F images: ``("divide"|"multiply"|"none", factor)`` from the finite maximum of all pixels
    (floats in [0, 1] are multiplied by 255, values above 255 taken as 16-bit and divided by 257)."""
    peak = 0.0
    for _, _, part in _strips(image):
        values = np.asarray(part, dtype=np.float32)
        peak = max(peak, float(values.max(where=np.isfinite(values), initial=0.0)))
        del values
    if image.mode == "F" and peak <= 1.0:
        return "multiply", 255.0
    if peak > 255.0:
        return "divide", 257.0
    return "none", 1.0


def _convert_part(part: Image.Image, mode: str, name: str, scale: tuple[str, float] | None) -> np.ndarray:
    """One strip (or the whole image) as 8-bit RGB pixels; see :func:`_to_rgb_array`."""
    if mode.startswith("I;16"):
        # 0..65535 onto 0..255, rounded, in integers (no float copy)
        values = np.asarray(part).astype(np.uint32)
        values += 128
        values //= 257
        grey = values.astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if mode in ("I", "F"):
        values = np.asarray(part, dtype=np.float32).copy()  # one float32 working buffer, scaled in place
        np.copyto(values, 0.0, where=~np.isfinite(values))
        how, factor = scale or ("none", 1.0)
        if how == "multiply":
            values *= factor
        elif how == "divide":
            values /= factor
        np.clip(values, 0, 255, out=values)
        np.rint(values, out=values)
        return np.repeat(values.astype(np.uint8)[:, :, None], 3, axis=2)
    try:
        if mode in ("P", "PA") or (mode == "L" and "transparency" in part.info):
            part = part.convert("RGBA")
        if mode == "LAB":  # convert("RGB") would reinterpret the channels; do the colour conversion
            from PIL import ImageCms

            transform = ImageCms.buildTransform(
                ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB"), "LAB", "RGB"
            )
            part = ImageCms.applyTransform(part, transform)
        converted = part if part.mode == "RGB" else part.convert("RGB")
    except (ValueError, OSError, ImportError) as error:
        raise ImageError("unreadable", f"{name}: unsupported colour mode {mode} ({error})", name) from None
    array = np.asarray(converted, dtype=np.uint8)
    if array.ndim != 3 or array.shape[2] != 3:  # defensive: Pillow always gives (H, W, 3) for RGB
        raise ImageError("unreadable", f"{name}: unexpected pixel layout {array.shape} for mode {mode}", name)
    return array


def _to_rgb_array(image: Image.Image, name: str) -> np.ndarray:
    """Any Pillow mode as 8-bit RGB: 16-bit and 32-bit data are scaled, not clipped; alpha is dropped.

    Converted in strips of rows (:data:`STRIP_PIXELS` pixels) into one preallocated ``uint8 (H, W, 3)``
    array, so the memory needed is the decoded image plus the result (:func:`decode_cost`), not several
    full-size copies."""
    mode = image.mode
    width, height = image.size
    scale = _high_bit_scale(image) if mode in ("I", "F") else None
    if height <= _strip_rows(width):
        return np.ascontiguousarray(_convert_part(image, mode, name, scale))
    result = np.empty((height, width, 3), dtype=np.uint8)
    for top, bottom, part in _strips(image):
        result[top:bottom] = _convert_part(part, mode, name, scale)
        del part
    return result


#: EXIF orientation -> how the uint8 (H, W, 3) array is turned upright (as ImageOps.exif_transpose turns the
#: image: FLIP_LEFT_RIGHT, ROTATE_180, FLIP_TOP_BOTTOM, TRANSPOSE, ROTATE_270, TRANSVERSE, ROTATE_90).
_ORIENT = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
    8: lambda a: np.rot90(a, 1),
}


def _orientation_of(image: Image.Image) -> int:
    """The EXIF orientation (1..8; 1 when absent or unreadable: unreadable EXIF never makes pixels unusable)."""
    try:
        value = image.getexif().get(0x0112, 1)
        return int(value) if int(value) in range(1, 9) else 1
    except Exception:  # noqa: BLE001
        return 1


def load_rgb(path_or_bytes: PathOrBytes) -> np.ndarray:
    """Decode an image file (a path, or its raw bytes) into ``uint8`` RGB pixels of shape ``(H, W, 3)``.

    The EXIF orientation is applied (a portrait phone photo comes out upright), any colour mode is
    converted to 8-bit RGB (greyscale is repeated, alpha dropped, 16-bit scaled down, CMYK converted),
    and all metadata is discarded. Raises :class:`ImageError` for an empty, truncated, oversized or
    non-image file.

    >>> pixels = load_rgb("images/ISIC_0024306.jpg")   # doctest: +SKIP
    >>> pixels.shape, pixels.dtype
    ((150, 200, 3), dtype('uint8'))
    """
    limits = decode_limits()
    data, name = _read_bytes(path_or_bytes, limits)
    image = _open(data, name, limits)
    _decode(image, name)
    orientation = _orientation_of(image)
    pixels = _to_rgb_array(image, name)  # the decoded image and the result: decode_cost's first term
    image.close()
    del image
    if orientation in _ORIENT:  # turned upright on the array (a view, then one copy), not on a Pillow copy
        pixels = np.ascontiguousarray(_ORIENT[orientation](pixels))
    return pixels


def _bits_per_channel(image: Image.Image, data: bytes) -> int:
    if image.format == "PNG" and data[12:16] == b"IHDR" and len(data) >= 25:
        return int(data[24])  # PNG IHDR bit depth: Pillow reduces 16-bit RGB(A) to 8 bits silently
    mode = image.mode
    if mode == "1":
        return 1
    if mode.startswith("I;16"):
        return 16
    if mode in ("I", "F"):
        return 32
    return 8


def _problems(image: Image.Image, bits: int, orientation: int | None) -> list[str]:
    mode = image.mode
    problems: list[str] = []
    if mode in ("1", "L", "LA", "La", "I", "F") or mode.startswith("I;16"):
        problems.append("greyscale")
    if mode == "P":
        problems.append("palette")
        palette = image.getpalette() or []
        used = {index for _, index in (image.getcolors(256) or [])}
        if used and all(
            palette[3 * index] == palette[3 * index + 1] == palette[3 * index + 2]
            for index in used
            if 3 * index + 2 < len(palette)
        ):
            problems.append("greyscale")
    if "A" in mode or "a" in mode or "transparency" in image.info:
        problems.append("rgba")
    if mode == "CMYK":
        problems.append("cmyk")
    if bits == 16:
        problems.append("16-bit")
    if mode == "F":
        problems.append("float")
    if orientation is not None and orientation != 1:
        problems.append("exif_rotated")
    if min(image.size) < TINY_SIDE:
        problems.append("tiny")
    if getattr(image, "n_frames", 1) > 1:
        problems.append("animated")
    return problems


def inspect_bytes(data: bytes, name: str = "<bytes>") -> ImageInfo:
    """:func:`inspect_image` on bytes already in memory (``name`` is used in messages)."""
    limits = decode_limits()
    if len(data) > limits.max_bytes:
        raise _too_many_bytes(name, len(data), limits)
    image = _open(data, name, limits)
    _decode(image, name)
    extra: list[str] = []
    try:
        orientation = _exif_orientation(image)
    except Exception:  # noqa: BLE001 - a broken EXIF block is a warning, the pixels are fine
        orientation = None
        extra.append("exif_unreadable")
    bits = _bits_per_channel(image, data)
    width, height = image.size
    return ImageInfo(
        width=width,
        height=height,
        mode=image.mode,
        format=image.format,
        bits=bits,
        exif_orientation=orientation,
        problems=_problems(image, bits, orientation) + extra,
    )


def inspect_image(path: str | os.PathLike) -> ImageInfo:
    """Decode ``path`` fully and describe it; raises :class:`ImageError` when it cannot be used.

    >>> info = inspect_image("images/ISIC_0024306.jpg")   # doctest: +SKIP
    >>> info.width, info.height, info.mode, info.problems
    (200, 150, 'RGB', [])
    """
    data, name = _read_bytes(Path(path), decode_limits())
    return inspect_bytes(data, name)


def identical_files(items: Iterable[T], path_of: Callable[[T], str | os.PathLike]) -> list[list[T]]:
    """Groups (two or more) of ``items`` whose image files are byte-identical, in input order within a group.
    Files are compared by size first; only equal sizes are read and hashed (sha256), through
    :func:`read_image_file` (regular files within the budget: a FIFO or an oversized file is left out)."""
    import hashlib

    by_size: dict[int, list[T]] = {}
    for item in items:
        try:
            by_size.setdefault(os.stat(path_of(item)).st_size, []).append(item)
        except OSError:
            continue
    groups: list[list[T]] = []
    for same_size in by_size.values():
        if len(same_size) < 2:
            continue
        by_digest: dict[str, list[T]] = {}
        for item in same_size:
            try:
                digest = hashlib.sha256(read_image_file(path_of(item))).hexdigest()
            except DermtoolError:
                continue
            by_digest.setdefault(digest, []).append(item)
        groups += [copies for copies in by_digest.values() if len(copies) > 1]
    return groups


__all__ = [
    "IMAGE_SUFFIXES",
    "MAX_DECODE_BYTES",
    "MAX_IMAGE_BYTES",
    "MAX_IMAGE_PIXELS",
    "DecodeLimits",
    "decode_cost",
    "decode_limits",
    "identical_files",
    "read_image_file",
    "ImageError",
    "ImageInfo",
    "inspect_bytes",
    "inspect_image",
    "load_rgb",
]
