"""The bench's lesion-check figures: real lesions rejected, and non-lesions caught, by the model's second head.

``bench`` on a model with the lesion check (:mod:`dermtool.prediction.lesion_check`) adds ``lesion_check`` to
its results::

    lesion_check: {threshold, source, lesions: n, false_rejection,             # DATA's lesion photos rejected
                   non_lesions: {generated: {n, caught, per_kind: {kind: caught}},
                                 skin_crops: {n, caught}},                        # lesion-free crops of DATA
                   mediapipe: {...the same keys, from MediaPipe's "lesion_check" head...}}

The non-lesions are made here, never read from disk: :func:`dermtool.prediction.non_lesion.generate_non_lesion_images`
with seed 0 (the lesion check is fitted and chosen on seeds 1 and 2), and one skin crop
(:mod:`dermtool.prediction.skin_crops`) per DATA image: away from the mask when DATA has HAM10000's ``masks/``,
else a corner of the photo. With ``--client mediapipe`` (or ``both``) MediaPipe's ImageClassifier reads each
one at its own size, as an app does; LiteRT reads them resized by dermtool's pipeline. A model without the
check gets ``lesion_check: null`` and a note.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from dermtool.bench.mediapipe_client import MediaPipeClassifier
from dermtool.data.preprocess import resize
from dermtool.prediction.non_lesion import generate_non_lesion_images
from dermtool.prediction.skin_crops import skin_crops

#: generated non-lesion images per kind (two sizes each: HAM10000's 200x150 and a phone's 240x320)
GENERATED_PER_KIND = 10
#: the benchmark's seed of the generated images (fitting uses 1, choosing 2)
GENERATED_SEED = 0


@dataclass
class NonLesions:
    """Non-lesion images at their own size, with their group (``generated`` or ``skin_crops``) and kind."""

    pixels: list[np.ndarray]
    groups: list[str]
    kinds: list[str]


def make_non_lesions(paths: Sequence[str | Path], image_ids: Sequence[str], data_dir: str | Path | None,
                     crop_size: int, per_kind: int = GENERATED_PER_KIND, seed: int = GENERATED_SEED) -> NonLesions:
    """Generated images and one skin crop of each DATA image (resized to ``crop_size``, a phone-like close-up)."""
    generated = (generate_non_lesion_images(count_per_kind=(per_kind + 1) // 2, seed=seed)
                 + generate_non_lesion_images(count_per_kind=per_kind // 2, width=240, height=320, seed=seed + 100))
    records = [_Record(str(image_id), Path(path), "data") for image_id, path in zip(image_ids, paths)]
    masks = {"data": Path(data_dir)} if data_dir is not None and (Path(data_dir) / "masks").is_dir() else None
    crops = skin_crops(records, crop_size, "squash", seed=seed, mask_folders=masks)
    return NonLesions([item.pixels for item in generated] + [crop.pixels for crop in crops],
                      ["generated"] * len(generated) + ["skin_crops"] * len(crops),
                      [item.kind for item in generated] + [crop.method for crop in crops])


@dataclass(frozen=True)
class _Record:
    image_id: str
    path: Path
    source: str


def figures(lesion_scores: np.ndarray, non_lesion_scores: np.ndarray, non_lesions: NonLesions,
            threshold: float) -> dict[str, Any]:
    """False rejections of the lesions and catches of the non-lesions at ``threshold``."""
    lesion_scores = np.asarray(lesion_scores, np.float64)
    caught = np.asarray(non_lesion_scores, np.float64) >= threshold
    groups = np.array(non_lesions.groups)
    kinds = np.array(non_lesions.kinds)
    block: dict[str, Any] = {
        "lesions": int(len(lesion_scores)),
        "false_rejection": float(np.mean(lesion_scores >= threshold)) if len(lesion_scores) else None,
        "non_lesions": {},
    }
    for group in ("generated", "skin_crops"):
        chosen = groups == group
        entry: dict[str, Any] = {"n": int(chosen.sum()),
                                 "caught": float(caught[chosen].mean()) if chosen.any() else None}
        if group == "generated":
            entry["per_kind"] = {kind: float(caught[chosen & (kinds == kind)].mean())
                                 for kind in sorted(set(kinds[chosen]))}
        block["non_lesions"][group] = entry
    return block


def litert_scores(model: Any, non_lesions: NonLesions) -> np.ndarray:
    """P(not_a_lesion) of each non-lesion image through LiteRT (resized by dermtool's pipeline)."""
    spec = model.require_input_spec()
    images = np.stack([resize(pixels, spec.image_size, spec.resize_policy) for pixels in non_lesions.pixels])
    _, scores = model.predict_with_check(images)
    return np.asarray(scores, np.float64)


def mediapipe_scores(model_path: str | Path, labels: Sequence[str], non_lesions: NonLesions) -> np.ndarray:
    """P(not_a_lesion) of each non-lesion image from MediaPipe's ``lesion_check`` head, at the image's own size."""
    with MediaPipeClassifier(model_path, labels) as classifier:
        return np.array([classifier.not_a_lesion(classifier.classify_raw(classifier.image(pixels)))
                         for pixels in non_lesions.pixels], np.float64)


__all__ = ["GENERATED_PER_KIND", "GENERATED_SEED", "NonLesions", "figures", "litert_scores", "make_non_lesions",
           "mediapipe_scores"]
