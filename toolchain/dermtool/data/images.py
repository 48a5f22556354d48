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
too_large  the header claims more than :data:`MAX_IMAGE_PIXELS` pixels
           (refused from the header alone, before any decoding)
unreadable the file cannot be read, or its image data is corrupt
========== ===============================================================

Pillow is strict here: ``ImageFile.LOAD_TRUNCATED_IMAGES`` is never set, and every decode calls
``.load()`` so that errors surface now rather than later, in the middle of training.
"""

from __future__ import annotations

import io
import os
import re
import struct
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from dermtool import DermtoolError

#: Decompression-bomb guard: an image whose header claims more pixels than this is refused unread.
MAX_IMAGE_PIXELS = 40_000_000

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


def _read_bytes(source: PathOrBytes) -> tuple[bytes, str]:
    """The raw bytes of ``source`` and a name for messages."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), _describe(source)
    name = str(source)
    try:
        with open(source, "rb") as handle:
            return handle.read(), name
    except FileNotFoundError:
        raise ImageError("unreadable", f"{name}: no such file", source) from None
    except IsADirectoryError:
        raise ImageError("unreadable", f"{name}: is a folder, not an image file", source) from None
    except OSError as error:
        raise ImageError("unreadable", f"{name}: cannot read the file ({error.strerror or error})", source) from None


def _open(data: bytes, name: str) -> Image.Image:
    """Open (header only) and check the size claim; no pixel is decoded yet."""
    if not data:
        raise ImageError("empty", f"{name}: empty file (0 bytes)", name)
    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as error:
        raise _too_large(name, error) from None
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
    if width * height > MAX_IMAGE_PIXELS:
        raise ImageError(
            "too_large",
            f"{name}: refused, the header claims {width}x{height} = {width * height:,} pixels "
            f"(the limit is {MAX_IMAGE_PIXELS:,})",
            name,
        )
    if width <= 0 or height <= 0:
        raise ImageError("unreadable", f"{name}: the header claims an empty image ({width}x{height})", name)
    return image


def _too_large(name: str, error: Exception) -> ImageError:
    """Pillow's own guard fired (more than twice its limit): say it in our terms."""
    claimed = re.search(r"\((\d+) pixels\)", str(error))
    pixels = f"{int(claimed.group(1)):,} pixels" if claimed else "too many pixels"
    return ImageError(
        "too_large", f"{name}: refused, the header claims {pixels} (the limit is {MAX_IMAGE_PIXELS:,})", name
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


def _to_rgb_array(image: Image.Image, name: str) -> np.ndarray:
    """Any Pillow mode as 8-bit RGB: 16-bit and 32-bit data are scaled, not clipped; alpha is dropped."""
    mode = image.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        values = np.asarray(image).astype(np.float64)
        finite = values[np.isfinite(values)]
        peak = float(finite.max()) if finite.size else 0.0
        if mode == "F" and peak <= 1.0:
            scaled = values * 255.0  # floats in [0, 1]
        elif mode.startswith("I;16") or peak > 255.0:
            scaled = values / 257.0  # 16-bit range 0..65535 onto 0..255
        else:
            scaled = values
        grey = np.clip(np.nan_to_num(scaled), 0, 255).round().astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))
    try:
        if mode in ("P", "PA") or (mode == "L" and "transparency" in image.info):
            image = image.convert("RGBA")
        if mode == "LAB":  # convert("RGB") would reinterpret the channels; do the colour conversion
            from PIL import ImageCms

            transform = ImageCms.buildTransform(
                ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB"), "LAB", "RGB"
            )
            image = ImageCms.applyTransform(image, transform)
        converted = image if image.mode == "RGB" else image.convert("RGB")
    except (ValueError, OSError, ImportError) as error:
        raise ImageError("unreadable", f"{name}: unsupported colour mode {mode} ({error})", name) from None
    array = np.asarray(converted, dtype=np.uint8)
    if array.ndim != 3 or array.shape[2] != 3:  # defensive: Pillow always gives (H, W, 3) for RGB
        raise ImageError("unreadable", f"{name}: unexpected pixel layout {array.shape} for mode {mode}", name)
    return np.ascontiguousarray(array)


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
    data, name = _read_bytes(path_or_bytes)
    image = _open(data, name)
    _decode(image, name)
    try:
        oriented = ImageOps.exif_transpose(image)
    except Exception:  # noqa: BLE001 - unreadable EXIF must not make the pixels unusable
        oriented = image
    if oriented is None:  # only returned for in_place=True; kept for safety across Pillow versions
        oriented = image
    return _to_rgb_array(oriented, name)


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
    image = _open(data, name)
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
    data, name = _read_bytes(Path(path))
    return inspect_bytes(data, name)


__all__ = [
    "IMAGE_SUFFIXES",
    "MAX_IMAGE_PIXELS",
    "ImageError",
    "ImageInfo",
    "inspect_bytes",
    "inspect_image",
    "load_rgb",
]
