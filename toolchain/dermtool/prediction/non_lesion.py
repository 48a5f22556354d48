"""Images that are not skin-lesion photos, made offline, to fit and measure the lesion check.

:func:`generate_non_lesion_images` draws a reproducible set of kinds that a real user may hand the tool by
mistake (or that a broken camera produces): blank and overexposed frames, sensor noise, rendered text,
gradients and patterns, and the photographs that matplotlib ships in ``mpl-data/sample_data``
(Grace Hopper's portrait, a product photo). ``overexposed_lesions`` are real lesion images pushed far past
saturation: a frame a clinician cannot read either, so rejecting it is the right answer.

The lesion check (:mod:`dermtool.prediction.lesion_check_fit`) is fitted on these images with seed 1, chosen on
seed 2, and measured on seed 0 (the benchmarks).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont


@dataclass(frozen=True)
class NonLesionImage:
    """One generated image: ``kind`` groups images for per-kind results."""

    name: str
    kind: str
    pixels: np.ndarray  # uint8 (H, W, 3)


_TEXTS = (
    "Patient consent form\nPlease sign below",
    "Lorem ipsum dolor sit amet,\nconsectetur adipiscing elit.",
    "INVOICE 2024-117\nTotal due: 312.40 EUR",
    "Meeting notes:\n- budget\n- timeline\n- risks",
    "Hello world",
    "The quick brown fox jumps\nover the lazy dog 0123456789",
)


def _font(size: int) -> ImageFont.ImageFont:
    try:
        import matplotlib

        path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
        return ImageFont.truetype(str(path), size)
    except Exception:  # matplotlib or its font missing: PIL's built-in bitmap font still draws text
        return ImageFont.load_default()


def _text_image(text: str, width: int, height: int, foreground, background, size: int) -> np.ndarray:
    picture = Image.new("RGB", (width, height), background)
    ImageDraw.Draw(picture).multiline_text((8, 8), text, fill=foreground, font=_font(size), spacing=6)
    return np.asarray(picture, dtype=np.uint8).copy()


def matplotlib_sample_photos() -> list[tuple[str, np.ndarray]]:
    """The raster photographs matplotlib ships (offline), as ``(name, uint8 RGB)``; empty if absent."""
    photos: list[tuple[str, np.ndarray]] = []
    try:
        import matplotlib
    except ImportError:
        return photos
    folder = Path(matplotlib.get_data_path()) / "sample_data"
    for name in ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png", "logo2.png"):
        path = folder / name
        if path.exists():
            with Image.open(path) as picture:
                photos.append((name, np.asarray(picture.convert("RGB"), dtype=np.uint8).copy()))
    return photos


def generate_non_lesion_images(
    count_per_kind: int = 6,
    width: int = 200,
    height: int = 150,
    seed: int = 0,
    lesion_images: Sequence[np.ndarray] = (),
) -> list[NonLesionImage]:
    """A reproducible set of non-lesion images of ``width x height`` (HAM10000's 200x150 by default).

    Kinds: ``blank`` (uniform colours, white and black included), ``overexposed`` (near-white frames with faint
    structure), ``noise`` (uniform and Gaussian), ``text`` (rendered with PIL, dark on light and light on
    dark), ``gradient`` (linear and radial colour ramps), ``pattern`` (checkerboards and stripes),
    ``photo`` (matplotlib's sample photographs, cropped in several places) and, when ``lesion_images`` are
    given, ``overexposed_lesion`` (those lesions multiplied by 3-5 in brightness and clipped).
    """
    rng = np.random.default_rng(seed)
    images: list[NonLesionImage] = []
    shape = (height, width, 3)

    def add(kind: str, index: int, pixels: np.ndarray) -> None:
        images.append(NonLesionImage(f"{kind}_{index}", kind, np.ascontiguousarray(pixels, dtype=np.uint8)))

    blank_colours = [(255, 255, 255), (0, 0, 0), (128, 128, 128)]
    for index in range(count_per_kind):
        colour = blank_colours[index] if index < len(blank_colours) else tuple(int(c) for c in rng.integers(0, 256, 3))
        add("blank", index, np.broadcast_to(np.array(colour, np.uint8), shape))

    for index in range(count_per_kind):
        base = rng.uniform(235, 255)
        frame = base + rng.normal(0, 3, shape) + rng.uniform(-8, 0) * np.linspace(0, 1, width)[None, :, None]
        add("overexposed", index, np.clip(frame, 0, 255))

    for index in range(count_per_kind):
        if index % 2 == 0:
            add("noise", index, rng.integers(0, 256, shape))
        else:
            add("noise", index, np.clip(rng.normal(rng.uniform(60, 190), rng.uniform(20, 60), shape), 0, 255))

    for index in range(count_per_kind):
        text = _TEXTS[index % len(_TEXTS)]
        if index % 2 == 0:
            pixels = _text_image(text, width, height, (20, 20, 20), (250, 250, 245), int(rng.integers(11, 18)))
        else:
            background = tuple(int(c) for c in rng.integers(0, 90, 3))
            pixels = _text_image(text, width, height, (240, 240, 240), background, int(rng.integers(11, 18)))
        add("text", index, pixels)

    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    for index in range(count_per_kind):
        start, end = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        if index % 2 == 0:
            t = (xx * np.cos(index) + yy * np.sin(index)) / (width + height)
            t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
        else:
            t = np.hypot(xx - width / 2, yy - height / 2)
            t = t / float(t.max())
        add("gradient", index, start * (1 - t[..., None]) + end * t[..., None])

    for index in range(count_per_kind):
        period = int(rng.integers(6, 30))
        first, second = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        if index % 2 == 0:
            mask = ((xx // period + yy // period) % 2).astype(bool)
        else:
            mask = ((xx + yy) // period % 2).astype(bool)
        add("pattern", index, np.where(mask[..., None], first, second))

    photos = matplotlib_sample_photos()
    for index in range(count_per_kind if photos else 0):
        name, photo = photos[index % len(photos)]
        photo_height, photo_width = photo.shape[:2]
        crop_width = int(min(photo_width, photo_height * width / height) * rng.uniform(0.5, 1.0))
        crop_height = int(crop_width * height / width)
        left = int(rng.integers(0, photo_width - crop_width + 1))
        top = int(rng.integers(0, photo_height - crop_height + 1))
        crop = Image.fromarray(photo[top : top + crop_height, left : left + crop_width])
        add("photo", index, np.asarray(crop.resize((width, height), Image.Resampling.BILINEAR)))

    for index, lesion in enumerate(lesion_images[:count_per_kind]):
        gain = rng.uniform(3.0, 5.0)
        add("overexposed_lesion", index, np.clip(np.asarray(lesion, np.float32) * gain, 0, 255))

    return images


__all__ = ["NonLesionImage", "generate_non_lesion_images", "matplotlib_sample_photos"]
