"""Helpers for the data tests: broken and unusual images generated on the fly, small layout folders.

Real HAM10000 images are linked (symlinks into the shared data), never copied into the repository.
"""

from __future__ import annotations

import csv
import io
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import HAM10000_DIR, pick_per_class, read_ham10000_metadata

EXIF_ORIENTATION_TAG = 0x0112


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)


def png_claiming_size(width: int, height: int) -> bytes:
    """A tiny real PNG whose IHDR is patched to claim ``width`` x ``height`` (CRC fixed): only the header lies."""
    buffer = io.BytesIO()
    Image.new("RGB", (2, 2), (10, 20, 30)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    return bytes(data)


def png_16bit_rgb(width: int = 6, height: int = 4, value: int = 0x8000) -> bytes:
    """A 16-bit-per-channel RGB PNG (Pillow itself cannot write one)."""
    row = b"\x00" + np.full((width, 3), value, dtype=">u2").tobytes()
    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(row * height))
            + png_chunk(b"IEND", b""))


def encode(image: Image.Image, image_format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **options)
    return buffer.getvalue()


def orientation_test_image() -> Image.Image:
    """64 wide x 48 high: left half red, right half blue, a green 16x16 block in the top-left corner."""
    pixels = np.zeros((48, 64, 3), dtype=np.uint8)
    pixels[:, :32] = (255, 0, 0)
    pixels[:, 32:] = (0, 0, 255)
    pixels[:16, :16] = (0, 255, 0)
    return Image.fromarray(pixels)


def jpeg_with_orientation(orientation: int = 6) -> bytes:
    image = orientation_test_image()
    exif = Image.Exif()
    exif[EXIF_ORIENTATION_TAG] = orientation
    return encode(image, "JPEG", quality=98, subsampling=0, exif=exif.tobytes())


def real_jpeg_bytes() -> bytes:
    return (HAM10000_DIR / "images" / "ISIC_0024306.jpg").read_bytes()


@dataclass(frozen=True)
class Sample:
    """A generated file and what the data layer must say about it."""

    name: str  # file name
    data: bytes
    reason: str | None = None  # expected ImageError.reason, None when the image is usable
    problems: tuple[str, ...] = ()  # warnings expected from inspect_image (a subset check)


def broken_and_unusual_samples() -> list[Sample]:
    """Every bad or odd image the tests need, as bytes (deterministic)."""
    gradient = np.tile(np.arange(64, dtype=np.uint8) * 4, (48, 1))
    colour = np.dstack([gradient, gradient[::-1], np.full_like(gradient, 90)])
    sixteen = (np.tile(np.arange(64, dtype=np.uint32), (48, 1)) * 1040).astype(np.uint16)
    rgba = np.dstack([colour, np.full((48, 64), 128, np.uint8)])
    palette = Image.fromarray(colour).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    full = real_jpeg_bytes()
    return [
        Sample("truncated.jpg", full[: len(full) // 2], reason="truncated"),
        Sample("text.jpg", b"this is a text file, not a picture\n" * 3, reason="not_an_image"),
        Sample("zero.jpg", b"", reason="empty"),
        Sample("huge_header.png", png_claiming_size(50_000, 50_000), reason="too_large"),
        Sample("cmyk.jpg", encode(Image.new("CMYK", (64, 48), (0, 255, 255, 0)), "JPEG"), problems=("cmyk",)),
        Sample("grey16.png", encode(Image.fromarray(sixteen), "PNG"), problems=("16-bit", "greyscale")),
        Sample("rgb16.png", png_16bit_rgb(), problems=("16-bit", "tiny")),
        Sample("rgba.png", encode(Image.fromarray(rgba, "RGBA"), "PNG"), problems=("rgba",)),
        Sample("palette.png", encode(palette, "PNG"), problems=("palette",)),
        Sample("grey.jpg", encode(Image.fromarray(gradient, "L"), "JPEG"), problems=("greyscale",)),
        Sample("one_pixel.png", encode(Image.new("RGB", (1, 1), (200, 100, 50)), "PNG"), problems=("tiny",)),
        Sample("rotated.jpg", jpeg_with_orientation(6), problems=("exif_rotated",)),
    ]


def write_samples(folder: Path, samples: list[Sample]) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for sample in samples:
        path = folder / sample.name
        path.write_bytes(sample.data)
        paths[sample.name] = path
    return paths


@pytest.fixture(scope="session")
def samples() -> list[Sample]:
    return broken_and_unusual_samples()


@pytest.fixture
def sample_files(tmp_path: Path, samples: list[Sample]) -> dict[str, Path]:
    return write_samples(tmp_path / "samples", samples)


def link(destination: Path, source: Path) -> Path:
    destination.parent.mkdir(parents=True, exist_ok=True)
    destination.symlink_to(source)
    return destination


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture(scope="session")
def ham_rows() -> list[dict[str, str]]:
    """The HAM10000 metadata rows (10,015), read once."""
    return read_ham10000_metadata(HAM10000_DIR)


@pytest.fixture(scope="session")
def few_per_class(ham_rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """4 real images per class (28), deterministic."""
    return pick_per_class(ham_rows, 4)


def ham_image(image_id: str) -> Path:
    return HAM10000_DIR / "images" / f"{image_id}.jpg"


@pytest.fixture
def messy_folder(tmp_path: Path, small_ham: Path, samples: list[Sample], ham_rows: list[dict[str, str]]) -> Path:
    """Layout 1: the 84 images of ``small_ham`` plus every generated sample (listed as class ``nv``), one
    id listed without a file, one unlisted image, and a byte-identical copy of a real image under a new
    id in another lesion."""
    root = tmp_path / "messy"
    images = root / "images"
    images.mkdir(parents=True)
    with open(small_ham / "labels.csv", newline="") as handle:
        rows = [[row["image_id"], row["dx"], row["lesion_id"]] for row in csv.DictReader(handle)]
    for image_id, _, _ in rows:
        link(images / f"{image_id}.jpg", ham_image(image_id))
    write_samples(images / "bad", samples)
    for sample in samples:
        rows.append([Path(sample.name).stem, "nv", f"LESION_{Path(sample.name).stem}"])
    rows.append(["ISIC_9999999", "mel", "HAM_9999999"])  # listed, no file
    (images / "copy_of_first.jpg").write_bytes(ham_image(rows[0][0]).read_bytes())
    rows.append(["copy_of_first", rows[0][1], "HAM_copy"])
    listed = {row[0] for row in rows}
    unlisted_id = max(row["image_id"] for row in ham_rows if row["image_id"] not in listed)
    link(images / "extra" / f"{unlisted_id}.jpg", ham_image(unlisted_id))  # on disk, not in the CSV
    write_csv(root / "labels.csv", ["image_id", "dx", "lesion_id"], rows)
    return root
