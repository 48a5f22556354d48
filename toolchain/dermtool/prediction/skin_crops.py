"""Crops of skin with no lesion in frame, cut from real lesion photos: negatives for the lesion check.

A health worker who photographs the skin beside a lesion, or a patch of healthy skin, must get "no lesion",
not a diagnosis. Such photos are cut from the training sources' own images:

- with a lesion **mask** (HAM10000's ``masks/<image_id>_segmentation.png``): a square window, a quarter to a
  half of the shorter side, that holds no mask pixel, with a margin of :data:`MASK_MARGIN` of the shorter
  side around the lesion (``mask_crop``);
- without a mask (MILK10k, PAD-UFES-20, where the lesion sits in the centre of the photo): a square in one
  of the four corners, :data:`CORNER_SIDE` of the shorter side (``corner_crop``).

Crops are resized to the model's input like any photo (:func:`dermtool.data.preprocess.resize`). They are
fitted on (training split) and measured on (validation and test splits) separately, and never cut from
ISIC 2017. ``benchmarks/bench_lesion_check.py --save-crops`` writes a sample as PNGs to look at.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from dermtool.data.images import ImageError, load_rgb
from dermtool.data.preprocess import resize

#: margin kept free around the mask, as a share of the image's shorter side
MASK_MARGIN = 0.06
#: side of a mask-free window, as shares of the shorter side (drawn in this range)
MASK_WINDOW = (0.25, 0.5)
#: side of a corner crop, as a share of the shorter side
CORNER_SIDE = 0.3


@dataclass(frozen=True)
class SkinCrop:
    """One crop: where it came from (image, source, how) and its pixels (uint8, model input size)."""

    image_id: str
    source: str
    method: str  # "mask" | "corner"
    pixels: np.ndarray


def mask_path(data_dir: str | Path, image_id: str) -> Path:
    """Where HAM10000 keeps the lesion mask of ``image_id``."""
    return Path(data_dir) / "masks" / f"{image_id}_segmentation.png"


def read_mask(path: Path, shape: tuple[int, int]) -> np.ndarray | None:
    """The mask as a bool array of ``shape`` (resized with nearest neighbour), or None when unreadable."""
    from PIL import Image

    try:
        with Image.open(path) as picture:
            mask = picture.convert("L").resize((shape[1], shape[0]), Image.Resampling.NEAREST)
            return np.asarray(mask) > 127
    except OSError:
        return None


def mask_crop(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """A square window of ``image`` with no ``mask`` pixel within the margin, or None when none fits: its side
    drawn in :data:`MASK_WINDOW` of the shorter side, then smaller down to the range's low end until one fits."""
    height, width = mask.shape
    shorter = min(height, width)
    margin = int(round(MASK_MARGIN * shorter))
    integral = np.pad(mask.astype(np.int64), ((1, 0), (1, 0))).cumsum(0).cumsum(1)  # [i, j] = mask[:i, :j].sum()
    smallest = int(round(MASK_WINDOW[0] * shorter))
    drawn = int(round(rng.uniform(*MASK_WINDOW) * shorter))
    for side in range(drawn, smallest - 1, -max(1, shorter // 50)):
        if side < 8:
            return None
        top = np.arange(0, height - side + 1)
        left = np.arange(0, width - side + 1)
        rows0 = np.clip(top - margin, 0, height)[:, None]
        rows1 = np.clip(top + side + margin, 0, height)[:, None]
        cols0 = np.clip(left - margin, 0, width)[None, :]
        cols1 = np.clip(left + side + margin, 0, width)[None, :]
        inside = integral[rows1, cols1] - integral[rows0, cols1] - integral[rows1, cols0] + integral[rows0, cols0]
        free = np.argwhere(inside == 0)
        if len(free):
            row, column = free[int(rng.integers(len(free)))]
            return image[top[row]:top[row] + side, left[column]:left[column] + side]
    return None


def corner_crop(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A square of :data:`CORNER_SIDE` of the shorter side in a random corner of ``image``."""
    height, width = image.shape[:2]
    side = max(8, int(round(CORNER_SIDE * min(height, width))))
    corner = int(rng.integers(4))
    top = 0 if corner in (0, 1) else height - side
    left = 0 if corner in (0, 2) else width - side
    return image[top:top + side, left:left + side]


def skin_crops(
    records: Sequence[object],
    image_size: int,
    resize_policy: str = "squash",
    seed: int = 0,
    mask_folders: dict[str, Path] | None = None,
    progress: bool = False,
) -> list[SkinCrop]:
    """One lesion-free crop per record (``path``, ``image_id``, ``source``; records whose image cannot be read,
    or whose mask leaves no free window, give none), resized to ``image_size``.

    ``mask_folders``: ``{source: folder}`` of sources whose images have masks (``folder/masks/...``);
    the others get corner crops."""
    from tqdm import tqdm

    rng = np.random.default_rng(seed)
    crops: list[SkinCrop] = []
    for record in tqdm(records, desc="Cutting skin crops", unit="img", disable=None if progress else True):
        source = str(getattr(record, "source", ""))
        try:
            image = load_rgb(record.path)
        except (ImageError, OSError):
            continue
        folder = (mask_folders or {}).get(source)
        if folder is not None:
            path = mask_path(folder, record.image_id)
            mask = read_mask(path, image.shape[:2]) if path.exists() else None
            if mask is None:
                continue
            crop, method = mask_crop(image, mask, rng), "mask"
        else:
            crop, method = corner_crop(image, rng), "corner"
        if crop is None:
            continue
        crops.append(SkinCrop(record.image_id, source, method,
                              resize(np.ascontiguousarray(crop), image_size, resize_policy)))
    return crops


__all__ = ["SkinCrop", "corner_crop", "mask_crop", "mask_path", "read_mask", "skin_crops"]
