"""Run an exported ``.tflite`` the way a phone app does: MediaPipe Tasks ``ImageClassifier`` on the whole image.

A mobile developer hands the camera frame (any size) to MediaPipe's ``ImageClassifier``; MediaPipe resizes
it to the model input itself and normalises it from the model's metadata. dermtool's own pipeline (and a
plain ``dermtool bench``) resizes with Pillow's antialiased bilinear filter instead
(:mod:`dermtool.data.preprocess`). This module gives the MediaPipe side of that comparison:

- :class:`MediaPipeClassifier`: an ``ImageClassifier`` in running mode IMAGE with every class returned
  (``max_results=-1``, ``score_threshold=0``); :meth:`~MediaPipeClassifier.classify` takes the decoded RGB
  pixels at their own size (no dermtool preprocessing) and returns a probability vector in the model's label
  order (MediaPipe answers categories sorted by score, each with the output ``index`` and the
  ``category_name`` from the model's ``labels.txt``; both are checked against the model's labels).
- :func:`load_original`: the pixels an app would hand over: the file decoded by
  :func:`dermtool.data.images.load_rgb` (EXIF orientation applied, the decoding budget enforced) and, with
  ``upscale`` N > 1, enlarged N times with Pillow's LANCZOS filter in memory, as a high-resolution camera
  frame cropped to the lesion reaches the phone.
- :func:`classify_files`: every file through the classifier, with the time of each ``classify`` call.

What MediaPipe computes (measured with mediapipe 1.2.3 on CPU, see tests/bench/test_mediapipe_bench.py):
its scores are the model's outputs, dequantised (the exports fold temperature and softmax into the graph;
MediaPipe adds no softmax of its own, so the scores are the model's probabilities and sum to 1); it
stretches the whole image to the input size without keeping the aspect ratio (like dermtool's ``squash``
policy, unlike ``center_crop`` and ``pad``) with a bilinear warp that does not filter before shrinking
(an OpenCV ``warpAffine``), so a large image is aliased where Pillow's resize averages.

``mediapipe`` imports TensorFlow when present (about 4 s); it is imported only when a classifier is made.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from dermtool import DermtoolError
from dermtool.data.images import ImageError, load_rgb
from dermtool.prediction.lesion_check import HEAD_NAME
from dermtool.quiet import stderr_silenced

#: The Pillow filter that makes the up-scaled copies of ``--upscale``.
UPSCALE_FILTER = "LANCZOS"


def check_upscale(upscale: float) -> float:
    """``upscale`` as a float >= 1, or an error naming the option."""
    try:
        value = float(upscale)
    except (TypeError, ValueError):
        raise DermtoolError(f"--upscale must be a number of 1 or more, got {upscale!r}") from None
    if not np.isfinite(value) or value < 1.0:
        raise DermtoolError(f"--upscale must be a number of 1 or more (e.g. 4), got {upscale}")
    if value > 16.0:
        raise DermtoolError(f"--upscale {upscale} is too large (at most 16: a 512 px photo becomes 8192 px)")
    return value


def upscale_image(pixels: np.ndarray, factor: float) -> np.ndarray:
    """``uint8 (H, W, 3)`` enlarged ``factor`` times (rounded) with Pillow's LANCZOS filter; unchanged at 1."""
    if factor == 1.0:
        return pixels
    from PIL import Image

    height, width = pixels.shape[:2]
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    enlarged = Image.fromarray(np.ascontiguousarray(pixels)).resize(size, resample=Image.Resampling.LANCZOS)
    return np.asarray(enlarged, dtype=np.uint8).copy()


def load_original(path: str | Path, upscale: float = 1.0) -> np.ndarray:
    """The pixels an app hands to MediaPipe: the decoded file at its own size (optionally up-scaled)."""
    return upscale_image(load_rgb(path), upscale)


def mediapipe_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mediapipe")
    except PackageNotFoundError:
        return "unknown"


def _import_mediapipe() -> tuple[Any, Any, Any]:
    """``(vision, BaseOptions, Image)`` of MediaPipe Tasks, its import's native logging silenced."""
    try:
        with stderr_silenced():
            from mediapipe.tasks.python import vision
            from mediapipe.tasks.python.core.base_options import BaseOptions
            from mediapipe.tasks.python.vision.core.image import Image
    except ImportError as error:
        raise DermtoolError(
            "--client mediapipe needs the mediapipe package: pip install --no-deps mediapipe==1.2.3 "
            f"opencv-python-headless==5.0.0.93 (README, 'Install as a package') ({error})"
        ) from None
    return vision, BaseOptions, Image


class MediaPipeClassifier:
    """A MediaPipe Tasks ``ImageClassifier`` on ``model_path`` (CPU, running mode IMAGE, every class).

    ``labels``: the model's labels in output order (its metadata); MediaPipe's categories are mapped onto
    them by output index, and their names must match. ``init_ms``: the time to create the classifier.
    """

    def __init__(self, model_path: str | Path, labels: Sequence[str]) -> None:
        vision, base_options, self._image_class = _import_mediapipe()
        from mediapipe.tasks.python.vision.core.image import ImageFormat

        self._srgb = ImageFormat.SRGB
        self.path = Path(model_path)
        self.labels = [str(label) for label in labels]
        options = vision.ImageClassifierOptions(
            base_options=base_options(model_asset_path=str(self.path)),
            running_mode=vision.RunningMode.IMAGE,
            max_results=-1,
            score_threshold=0.0,
        )
        start = time.perf_counter()
        try:
            with stderr_silenced():  # "Created TensorFlow Lite XNNPACK delegate", feedback-manager warnings
                self._classifier = vision.ImageClassifier.create_from_options(options)
        except (ValueError, RuntimeError, OSError) as error:
            detail = " ".join(str(error).split())
            raise DermtoolError(f"MediaPipe cannot load {self.path} as an image classifier: {detail}") from None
        self.init_ms = (time.perf_counter() - start) * 1e3

    def image(self, pixels: np.ndarray) -> Any:
        """``uint8 (H, W, 3)`` RGB pixels as a ``mediapipe.Image`` (SRGB), as an app makes it from a frame."""
        return self._image_class(image_format=self._srgb, data=np.ascontiguousarray(pixels, dtype=np.uint8))

    def classify_raw(self, image: Any) -> Any:
        """MediaPipe's own result for a ``mediapipe.Image`` (the call :func:`classify_files` times)."""
        return self._classifier.classify(image)

    def classify(self, pixels: np.ndarray) -> np.ndarray:
        """Probabilities ``float32 (C,)`` in label order for ``uint8 (H, W, 3)`` RGB pixels of any size."""
        return self.to_probabilities(self.classify_raw(self.image(pixels)))

    def to_probabilities(self, result: Any) -> np.ndarray:
        """MediaPipe's categories (sorted by score) -> a vector in the model's label order."""
        if not result.classifications:
            raise DermtoolError(f"MediaPipe returned no classification for {self.path}")
        categories = result.classifications[0].categories
        probabilities = np.full(len(self.labels), np.nan, dtype=np.float32)
        for category in categories:
            index = int(category.index)
            if not 0 <= index < len(self.labels):
                raise DermtoolError(f"MediaPipe returned class index {index}; {self.path} has {len(self.labels)} labels")
            name = (category.category_name or "").strip().lower()
            if name and name != self.labels[index]:
                raise DermtoolError(
                    f"MediaPipe names output {index} of {self.path} {category.category_name!r} but the model's "
                    f"metadata says {self.labels[index]!r}: labels.txt and dermtool.json disagree"
                )
            probabilities[index] = category.score
        if np.isnan(probabilities).any():
            missing = [self.labels[index] for index in np.flatnonzero(np.isnan(probabilities))]
            raise DermtoolError(f"MediaPipe gave no score for {', '.join(missing)} ({self.path})")
        return probabilities

    def not_a_lesion(self, result: Any) -> float | None:
        """P(not_a_lesion) from the result's ``lesion_check`` head (the model's second output), or None for a
        model without the lesion check."""
        for head in result.classifications[1:]:
            if head.head_name == HEAD_NAME:
                scores = {category.category_name: category.score for category in head.categories}
                if "not_a_lesion" not in scores:
                    raise DermtoolError(f"MediaPipe's {HEAD_NAME} head of {self.path} has no not_a_lesion category")
                return float(scores["not_a_lesion"])
        return None

    def close(self) -> None:
        classifier = getattr(self, "_classifier", None)
        if classifier is not None:
            self._classifier = None
            classifier.close()

    def __enter__(self) -> "MediaPipeClassifier":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


def classify_files(
    model_path: str | Path,
    paths: Sequence[str | Path],
    labels: Sequence[str],
    upscale: float = 1.0,
    progress: bool = True,
) -> dict[str, Any]:
    """Every file through MediaPipe as an app would: decoded at its own size (optionally up-scaled), no resize.

    Returns ``{probabilities: float32 (N_ok, C), not_a_lesion: float32 (N_ok,) from the lesion-check head or
    None for a model without one, kept: [index into paths], failed: [(path, reason)],
    samples_ms: [ms of each classify call], init_ms, first_ms, sizes: [(width, height)]}``. The first call
    (``first_ms``) is also one of the samples; decoding and up-scaling are not timed.
    """
    from tqdm import tqdm

    probabilities: list[np.ndarray] = []
    not_a_lesion: list[float | None] = []
    kept: list[int] = []
    failed: list[tuple[str, str]] = []
    samples: list[float] = []
    sizes: list[tuple[int, int]] = []
    clock = time.perf_counter
    with MediaPipeClassifier(model_path, labels) as classifier:
        for position, path in enumerate(tqdm(paths, desc="MediaPipe", unit="img", disable=None if progress else True)):
            try:
                pixels = load_original(path, upscale)
            except ImageError as error:
                failed.append((str(path), error.reason))
                continue
            except OSError:
                failed.append((str(path), "unreadable"))
                continue
            image = classifier.image(pixels)
            start = clock()
            result = classifier.classify_raw(image)
            samples.append((clock() - start) * 1e3)
            probabilities.append(classifier.to_probabilities(result))
            not_a_lesion.append(classifier.not_a_lesion(result))
            kept.append(position)
            sizes.append((int(pixels.shape[1]), int(pixels.shape[0])))
        init_ms = classifier.init_ms
    count = len(labels)
    return {
        "probabilities": np.stack(probabilities) if probabilities else np.empty((0, count), dtype=np.float32),
        "not_a_lesion": (None if not not_a_lesion or not_a_lesion[0] is None
                         else np.array(not_a_lesion, dtype=np.float32)),
        "kept": kept,
        "failed": failed,
        "samples_ms": samples,
        "init_ms": init_ms,
        "first_ms": samples[0] if samples else None,
        "sizes": sizes,
    }


def size_summary(sizes: Sequence[tuple[int, int]]) -> dict[str, Any]:
    """``{median_width, median_height, min_pixels, max_pixels, images}`` of the images handed to a client."""
    if not sizes:
        return {"images": 0}
    values = np.asarray(sizes, dtype=np.int64)
    pixels = values[:, 0] * values[:, 1]
    return {
        "median_width": int(np.median(values[:, 0])),
        "median_height": int(np.median(values[:, 1])),
        "min_pixels": int(pixels.min()),
        "max_pixels": int(pixels.max()),
        "images": int(len(values)),
    }


__all__ = [
    "UPSCALE_FILTER",
    "MediaPipeClassifier",
    "check_upscale",
    "classify_files",
    "load_original",
    "mediapipe_version",
    "size_summary",
    "upscale_image",
]
