"""Does the Grad-CAM map point at the lesion? Measured against HAM10000's segmentation masks.

For every image of a split of a run (with a mask ``MASKS/<image_id>_segmentation.png``, 255 = lesion):

- **pointing game** (Zhang et al., 2016): a hit when the hottest pixel of the heat map (at the original
  image's size) lies inside the lesion mask; ``hit_rate`` = hits / images.
- **energy inside**: the share of the heat map's total mass inside the mask (``energy_inside``); compare it
  with ``mask_area``, the share of the image the masks cover, which is what a uniform map would score.
- ``mean_heat_inside`` / ``mean_heat_outside``: the mean map value on either side of the mask border.
- ``centre_baseline_hit_rate``: the pointing game played by the image centre alone. HAM10000 lesions are
  mostly centred and large, so this baseline is high; a heat map is only informative if it beats it.

The maps explain each image's *predicted* class (as ``dermtool explain`` shows them), with the contrastive
target by default (see :mod:`dermtool.explain.gradcam`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from dermtool import DermtoolError
from dermtool.data.images import ImageError, load_rgb
from dermtool.data.preprocess import resize
from dermtool.data.sources import run_split_records
from dermtool.explain.gradcam import DEFAULT_TARGET, get_explainer
from dermtool.files import read_regular_file
from dermtool.run import RunFolder

MASK_SUFFIX = "_segmentation.png"


@dataclass
class LocalisationReport:
    """The result of :func:`evaluate_localisation` (``to_dict`` for JSON)."""

    model: str
    split: str
    target: str
    n: int
    hit_rate: float
    energy_inside: float
    mask_area: float
    mean_heat_inside: float
    mean_heat_outside: float
    centre_baseline_hit_rate: float
    hit_rate_correct_predictions: float | None
    missing_masks: int
    unreadable: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def format(self) -> str:
        lines = [
            f"Grad-CAM ({self.target}) localisation on {self.n} {self.split} images of {self.model}",
            f"  pointing game hit rate   {self.hit_rate * 100:5.1f} %   (image centre alone: "
            f"{self.centre_baseline_hit_rate * 100:.1f} %)",
            f"  heat-map energy in mask  {self.energy_inside * 100:5.1f} %   (masks cover {self.mask_area * 100:.1f} % "
            "of the image: a uniform map's score)",
            f"  mean heat inside/outside {self.mean_heat_inside:.3f} / {self.mean_heat_outside:.3f}",
        ]
        if self.hit_rate_correct_predictions is not None:
            lines.append(f"  hit rate, correctly classified images only {self.hit_rate_correct_predictions * 100:.1f} %")
        if self.missing_masks:
            lines.append(f"  {self.missing_masks} image(s) without a mask skipped")
        if self.unreadable:
            lines.append(f"  {len(self.unreadable)} unreadable image(s) skipped")
        return "\n".join(lines)


def read_mask(path: Path, height: int, width: int) -> np.ndarray:
    """A boolean lesion mask at ``height x width`` (nearest-neighbour resize if the sizes differ)."""
    import io

    with Image.open(io.BytesIO(read_regular_file(path, "mask"))) as picture:  # a regular file, size-capped
        mask = picture.convert("L")
        if mask.size != (width, height):
            mask = mask.resize((width, height), Image.Resampling.NEAREST)
        return np.asarray(mask) > 127


def localisation_scores(heatmap: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """Pointing-game hit, energy share and mean heat inside/outside for one map and its mask."""
    if heatmap.shape != mask.shape:
        raise DermtoolError(f"heat map {heatmap.shape} and mask {mask.shape} differ in size")
    hottest = np.unravel_index(int(np.argmax(heatmap)), heatmap.shape)
    total = float(heatmap.sum())
    inside = mask.astype(bool)
    height, width = mask.shape
    return {
        "hit": float(inside[hottest]),
        "energy_inside": float(heatmap[inside].sum() / total) if total > 0 else 0.0,
        "mask_area": float(inside.mean()),
        "heat_inside": float(heatmap[inside].mean()) if inside.any() else float("nan"),
        "heat_outside": float(heatmap[~inside].mean()) if (~inside).any() else float("nan"),
        "centre_hit": float(inside[height // 2, width // 2]),
    }


def evaluate_localisation(
    run_path: Any,
    data_dir: str | Path,
    masks_dir: str | Path,
    split: str = "test",
    limit: int | None = None,
    batch_size: int = 16,
    progress: bool = True,
    target: str | None = None,
) -> LocalisationReport:
    """Pointing game and energy-in-mask of Grad-CAM on ``split`` of the run (see the module docstring).

    ``run_path``: a run folder (or an already loaded :class:`~dermtool.explain.gradcam.Explainer`).
    """
    from tqdm import tqdm

    masks_dir = Path(masks_dir)
    if not masks_dir.is_dir():
        raise DermtoolError(f"mask folder not found: {masks_dir}")
    if limit is not None and limit < 1:
        raise DermtoolError(f"--limit must be at least 1, got {limit}")
    run = run_path.run if hasattr(run_path, "run") else RunFolder(run_path)
    usable, missing = _records_with_masks(run, run_path, data_dir, masks_dir, split, limit)
    explainer = get_explainer(run_path)  # the model is loaded only now, once the inputs are known to be there
    rows: list[dict[str, float]] = []
    unreadable: list[str] = []
    with tqdm(total=len(usable), unit="image", disable=None if progress else True) as bar:
        for start in range(0, len(usable), batch_size):
            part = usable[start : start + batch_size]
            rows.extend(_score_batch(explainer, part, masks_dir, target, unreadable))
            bar.update(len(part))
    if not rows:
        raise DermtoolError("no image could be evaluated (all unreadable)")

    def mean(key: str, subset: list[dict[str, float]] | None = None) -> float:
        values = np.array([row[key] for row in (rows if subset is None else subset)], np.float64)
        return float(np.nanmean(values))

    correct = [row for row in rows if row["correct"] == 1.0]
    return LocalisationReport(
        model=str(run.path),
        split=split,
        target=target or DEFAULT_TARGET,
        n=len(rows),
        hit_rate=mean("hit"),
        energy_inside=mean("energy_inside"),
        mask_area=mean("mask_area"),
        mean_heat_inside=mean("heat_inside"),
        mean_heat_outside=mean("heat_outside"),
        centre_baseline_hit_rate=mean("centre_hit"),
        hit_rate_correct_predictions=mean("hit", correct) if correct else None,
        missing_masks=missing,
        unreadable=unreadable,
    )


def _records_with_masks(run: Any, run_path: Any, data_dir: str | Path, masks_dir: Path, split: str,
                        limit: int | None) -> tuple[list[Any], int]:
    """The records of ``split`` that have a mask (the first ``limit``), and how many have none."""
    records = run_split_records(run, data_dir).get(split, [])
    if not records:
        raise DermtoolError(f"no images of split {split!r} of {run_path} found in {data_dir}")
    usable = [record for record in records if (masks_dir / f"{record.image_id}{MASK_SUFFIX}").exists()]
    missing = len(records) - len(usable)
    if limit is not None:
        usable = usable[:limit]
    if not usable:
        raise DermtoolError(f"no mask in {masks_dir} matches the {split} images (expected <image_id>{MASK_SUFFIX})")
    return usable, missing


def _score_batch(explainer: Any, part: list[Any], masks_dir: Path, target: str | None,
                 unreadable: list[str]) -> list[dict[str, float]]:
    """:func:`localisation_scores` (plus ``correct``) of each readable image of ``part``, its Grad-CAM map
    brought to the image's own size; unreadable paths are added to ``unreadable``."""
    spec = explainer.input_spec
    originals, inputs, kept = [], [], []
    for record in part:
        try:
            original = load_rgb(record.path)
        except ImageError:
            unreadable.append(str(record.path))
            continue
        originals.append(original)
        inputs.append(resize(original, spec.image_size, spec.resize_policy))
        kept.append(record)
    if not kept:
        return []
    rows = []
    maps, probabilities, chosen = explainer.maps(np.stack(inputs), target=target)
    for record, original, cam, label_index in zip(kept, originals, maps, chosen):
        height, width = original.shape[:2]
        heatmap = explainer.heatmap_for_original(cam, height, width)
        mask = read_mask(masks_dir / f"{record.image_id}{MASK_SUFFIX}", height, width)
        scores = localisation_scores(heatmap, mask)
        scores["correct"] = float(explainer.labels[label_index] == record.label)
        rows.append(scores)
    return rows


__all__ = ["LocalisationReport", "evaluate_localisation", "localisation_scores", "read_mask", "MASK_SUFFIX"]
