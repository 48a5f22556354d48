"""Out-of-distribution guard: is this a dermatoscopic lesion image at all?

A classifier trained on seven lesion classes assigns one of them to *anything*, confidently or not: a photo
of a cat, a blank frame, a scanned letter. The guard rejects such inputs (outcome ``not_a_lesion``) before
any class is reported. It combines two scores, each measured against real lesion images:

1. **Image statistics** (``image_statistics``): a distance on cheap colour and texture statistics of the
   model-input image (:data:`FEATURE_NAMES`: RGB means and spreads, HSV saturation/brightness, the
   saturation-weighted mean hue, near-white and near-black shares, gradient and Laplacian energy, grey-level
   entropy, channel correlation, centre-vs-border brightness). Photos of skin occupy a small region of
   that space; blank, overexposed, noisy, text and everyday photos fall far outside it. It needs only the
   pixels, so it works identically for a run folder (float Keras) and for a .tflite that outputs only
   probabilities.

   The default (format 2, :data:`DEFAULT_FEATURES`, :data:`DEFAULT_COVARIANCE`) leaves out the six RGB means
   and spreads and uses a *diagonal* covariance: the sum of squared standardised statistics. Both describe the
   camera more than the skin: a full covariance learns correlations between statistics that hold for the
   training devices only, and a lesion from a new dermatoscope or phone that breaks them looks "unlike the
   training set" although it is a usable photo of skin. Left out of the fit, a source's lesions are rejected
   far less often by this guard than by the format-1 one (all 20 statistics, full covariance); the figures,
   leaving each source out and on an unseen source, are in ``benchmarks/RESULTS.md`` and
   ``docs/experiments.md`` section 5c. Format 1 files (full covariance on all statistics) still load and
   score as before.
2. **Model confidence** (``max_softmax``): ``1 - max(p)``, the complement of the calibrated maximum softmax
   probability (Hendrycks & Gimpel 2017). It is available from every model kind, and it is what a
   temperature-folded TFLite model can give (an energy score needs raw logits, which the exported model no
   longer has).

Each score is standardised with a robust centre (median) and scale (IQR / 1.349) of the *validation*
lesion images; the combined ``ood_score`` is the weighted sum of the standardised scores (weights
:data:`DEFAULT_WEIGHTS`: the image statistics dominate, because model confidence on weak models separates
poorly). An image is rejected when ``ood_score >= threshold``; the threshold is the
``1 - target_false_rejection`` quantile of the validation scores: 4 % of validation lesion images by default,
a margin so that at most 5 % of unseen lesion images are rejected. The Gaussian of the image statistics is fitted on (up to 2000) *training* images and
the threshold on the validation images, so the threshold is not fitted on the same images as the Gaussian.

Where the parameters live: ``RUN/ood.json`` (:func:`fit_for_run` writes it atomically; :func:`load_for_run`
fits it lazily on first use), and for a .tflite, the ``"ood"`` key of the model's ``dermtool.json``
metadata (the export copies ``ood.json`` there).

Scores: higher means "less like a lesion". ``benchmarks/bench_ood.py`` measures AUROC and the false
rejection rate on a split against :mod:`dermtool.explain.non_lesion`'s generated images;
``benchmarks/bench_guard_sources.py`` refits the guard leaving one source out (``--unseen DATA`` also
measures a folder never used for fitting).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from PIL import Image

from dermtool import DermtoolError

logger = logging.getLogger(__name__)

OOD_FILE_NAME = "ood.json"
#: 2: ``feature_names`` may be a subset of :data:`FEATURE_NAMES` and ``covariance`` says "full" or "diagonal";
#: 1: all of FEATURE_NAMES, full covariance (still read, scored as before)
FORMAT_VERSION = 2
SUPPORTED_FORMAT_VERSIONS = (1, 2)
COVARIANCES = ("full", "diagonal")
#: share of validation lesion images rejected at the threshold: 4 %, a margin below the 5 % target so that
#: unseen lesion images (test split) also stay under 5 % (a threshold set for exactly 5 % on validation
#: can exceed it on new images)
DEFAULT_TARGET_FALSE_REJECTION = 0.04
#: weights of the standardised component scores in the combined ood_score
DEFAULT_WEIGHTS: dict[str, float] = {"image_statistics": 1.0, "max_softmax": 0.25}
#: images used to fit the Gaussian of the image statistics (a random subset of the training split)
DEFAULT_MAX_REFERENCE_IMAGES = 2000
STATISTICS_SIZE = 64  # images are reduced to 64x64 before their statistics are taken

FEATURE_NAMES: tuple[str, ...] = (
    "red_mean",
    "green_mean",
    "blue_mean",
    "red_std",
    "green_std",
    "blue_std",
    "saturation_mean",
    "saturation_std",
    "value_mean",
    "value_std",
    "hue_cos_weighted",
    "hue_sin_weighted",
    "near_white_share",
    "near_black_share",
    "gradient_mean",
    "strong_edge_share",
    "laplacian_mean",
    "grey_entropy",
    "red_blue_correlation",
    "centre_minus_border_value",
)

#: statistics used by default: all but the RGB means and spreads (device colour response, not skin)
DEFAULT_FEATURES: tuple[str, ...] = tuple(
    name for name in FEATURE_NAMES
    if name not in {"red_mean", "green_mean", "blue_mean", "red_std", "green_std", "blue_std"}
)
#: "diagonal": sum of squared standardised statistics (no correlations learnt from the training devices);
#: "full": Mahalanobis distance with the shrunk covariance (format 1)
DEFAULT_COVARIANCE = "diagonal"


def _select_features(statistics: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """The columns ``names`` of ``(N, len(FEATURE_NAMES))`` statistics, in that order."""
    if tuple(names) == FEATURE_NAMES:
        return statistics
    return statistics[:, [FEATURE_NAMES.index(name) for name in names]]


def _small(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise DermtoolError(f"OOD statistics need uint8 RGB images (H, W, 3), got {image.dtype} {image.shape}")
    if image.shape[:2] != (STATISTICS_SIZE, STATISTICS_SIZE):
        image = np.asarray(
            Image.fromarray(np.ascontiguousarray(image)).resize(
                (STATISTICS_SIZE, STATISTICS_SIZE), Image.Resampling.BILINEAR
            )
        )
    return image.astype(np.float32) / 255.0


def _statistics_of_one(image: np.ndarray) -> np.ndarray:
    pixels = _small(image)
    red, green, blue = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    maximum = pixels.max(axis=2)
    minimum = pixels.min(axis=2)
    saturation = np.where(maximum > 1e-6, (maximum - minimum) / np.maximum(maximum, 1e-6), 0.0)
    # hue angle from the opponent colour axes (same ordering as HSV hue), weighted by saturation
    hue = np.arctan2(math.sqrt(3.0) * (green - blue), 2.0 * red - green - blue)
    weight_sum = float(saturation.sum()) + 1e-6
    hue_cos = float((np.cos(hue) * saturation).sum() / weight_sum)
    hue_sin = float((np.sin(hue) * saturation).sum() / weight_sum)
    grey = 0.299 * red + 0.587 * green + 0.114 * blue
    gradient_y, gradient_x = np.gradient(grey)
    gradient = np.hypot(gradient_x, gradient_y)
    laplacian = (
        -4.0 * grey[1:-1, 1:-1] + grey[:-2, 1:-1] + grey[2:, 1:-1] + grey[1:-1, :-2] + grey[1:-1, 2:]
    )
    histogram, _ = np.histogram(grey, bins=16, range=(0.0, 1.0))
    probabilities = histogram[histogram > 0] / histogram.sum()
    entropy = float(-(probabilities * np.log(probabilities)).sum() / math.log(16))
    red_std, blue_std = float(red.std()), float(blue.std())
    if red_std < 1e-4 or blue_std < 1e-4:
        correlation = 1.0
    else:
        correlation = float(((red - red.mean()) * (blue - blue.mean())).mean() / (red_std * blue_std))
    size = STATISTICS_SIZE
    quarter = size // 4
    centre = maximum[quarter : size - quarter, quarter : size - quarter]
    border_mask = np.ones((size, size), bool)
    border_mask[quarter : size - quarter, quarter : size - quarter] = False
    return np.array(
        [
            red.mean(),
            green.mean(),
            blue.mean(),
            red_std,
            float(green.std()),
            blue_std,
            saturation.mean(),
            saturation.std(),
            maximum.mean(),
            maximum.std(),
            hue_cos,
            hue_sin,
            float((minimum > 235 / 255).mean()),
            float((maximum < 20 / 255).mean()),
            gradient.mean(),
            float((gradient > 0.1).mean()),
            float(np.abs(laplacian).mean()),
            entropy,
            correlation,
            float(centre.mean() - maximum[border_mask].mean()),
        ],
        dtype=np.float64,
    )


def image_statistics(images: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
    """``(N, len(FEATURE_NAMES))`` float64 colour/texture statistics of uint8 RGB images (any size)."""
    rows = [_statistics_of_one(image) for image in images]
    if not rows:
        return np.zeros((0, len(FEATURE_NAMES)), np.float64)
    return np.stack(rows)


def max_softmax_score(probabilities: np.ndarray) -> np.ndarray:
    """``1 - max(p)`` per row: high when the model is unsure (calibrated probabilities expected)."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 2:
        raise DermtoolError(f"expected probabilities of shape (N, classes), got {probabilities.shape}")
    return 1.0 - probabilities.max(axis=1)


def _robust_centre_scale(values: np.ndarray) -> tuple[float, float]:
    values = np.asarray(values, dtype=np.float64)
    centre = float(np.median(values))
    q25, q75 = np.percentile(values, [25, 75])
    scale = float(q75 - q25) / 1.349
    if not np.isfinite(scale) or scale < 1e-6:
        scale = max(float(values.std()), 1e-6)
    return centre, scale


@dataclass
class OODDetector:
    """A fitted detector: call :meth:`score` with model-input images and the model's probabilities."""

    feature_mean: np.ndarray
    feature_scale: np.ndarray
    feature_precision: np.ndarray  # inverse (shrunk, full or diagonal) covariance of the standardised statistics
    centres: dict[str, float]
    scales: dict[str, float]
    weights: dict[str, float]
    threshold: float
    target_false_rejection: float = DEFAULT_TARGET_FALSE_REJECTION
    calibration: dict[str, Any] = field(default_factory=dict)
    feature_names: tuple[str, ...] = FEATURE_NAMES  # the statistics used, a subset of FEATURE_NAMES in order
    covariance: str = "full"

    # ---- scores -------------------------------------------------------------------------------------
    def statistics_distance(self, statistics: np.ndarray) -> np.ndarray:
        """``log(1 + d^2)`` with ``d`` the Mahalanobis distance of each row of statistics (all
        :data:`FEATURE_NAMES`; the detector's ``feature_names`` are picked from them)."""
        statistics = _select_features(np.asarray(statistics, np.float64), self.feature_names)
        standardised = (statistics - self.feature_mean) / self.feature_scale
        squared = np.einsum("ni,ij,nj->n", standardised, self.feature_precision, standardised)
        return np.log1p(np.maximum(squared, 0.0))

    def raw_scores(self, images: Sequence[np.ndarray] | np.ndarray, probabilities: np.ndarray) -> dict[str, np.ndarray]:
        """The unstandardised component scores (``image_statistics``, ``max_softmax``)."""
        return {
            "image_statistics": self.statistics_distance(image_statistics(images)),
            "max_softmax": max_softmax_score(probabilities),
        }

    def combine(self, raw: Mapping[str, np.ndarray]) -> np.ndarray:
        total = None
        for name, weight in self.weights.items():
            if weight == 0:
                continue
            standardised = (np.asarray(raw[name], np.float64) - self.centres[name]) / self.scales[name]
            total = weight * standardised if total is None else total + weight * standardised
        if total is None:
            raise DermtoolError("OOD detector has no component with a non-zero weight")
        return total

    def score(self, images: Sequence[np.ndarray] | np.ndarray, probabilities: np.ndarray) -> np.ndarray:
        """Combined ``ood_score`` per image (higher = less like a dermatoscopic lesion image)."""
        if len(images) != len(probabilities):
            raise DermtoolError(f"{len(images)} images but {len(probabilities)} rows of probabilities")
        return self.combine(self.raw_scores(images, probabilities))

    def rejects(self, scores: np.ndarray) -> np.ndarray:
        """True where ``ood_score >= threshold`` (the image is not treated as a lesion)."""
        return np.asarray(scores) >= self.threshold

    # ---- (de)serialisation ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        values = {
            "format_version": FORMAT_VERSION,
            "method": "weighted sum of robustly standardised scores: Mahalanobis distance log(1+d^2) "
            f"({self.covariance} covariance) on image colour/texture statistics, and 1 - max calibrated "
            "softmax probability",
            "feature_names": list(self.feature_names),
            "covariance": self.covariance,
            "statistics_size": STATISTICS_SIZE,
            "feature_mean": [float(v) for v in self.feature_mean],
            "feature_scale": [float(v) for v in self.feature_scale],
            "feature_precision": [[float(v) for v in row] for row in self.feature_precision],
            "centres": {k: float(v) for k, v in self.centres.items()},
            "scales": {k: float(v) for k, v in self.scales.items()},
            "weights": {k: float(v) for k, v in self.weights.items()},
            "threshold": float(self.threshold),
            "target_false_rejection": float(self.target_false_rejection),
            "calibration": self.calibration,
        }
        if self.covariance == "full" and self.feature_names == FEATURE_NAMES:
            # exactly what format 1 describes: written as format 1, readable by older versions too
            values["format_version"] = 1
            del values["covariance"]
        return values

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str = "ood parameters") -> "OODDetector":
        try:
            version = int(values.get("format_version", 0))
            if version not in SUPPORTED_FORMAT_VERSIONS:
                raise DermtoolError(
                    f"{source}: OOD format_version {values.get('format_version')!r} is not one of "
                    f"{', '.join(map(str, SUPPORTED_FORMAT_VERSIONS))}; refit it (delete ood.json and run "
                    "predict again)"
                )
            names = tuple(values["feature_names"])
            covariance = "full" if version == 1 else str(values["covariance"])
            known_subset = bool(names) and all(name in FEATURE_NAMES for name in names) and list(names) == sorted(
                names, key=FEATURE_NAMES.index) and len(set(names)) == len(names)
            if (names != FEATURE_NAMES) if version == 1 else not known_subset:
                raise DermtoolError(f"{source}: OOD statistics {names} differ from this version's; refit it")
            if covariance not in COVARIANCES:
                raise DermtoolError(f"{source}: OOD covariance {covariance!r} is not one of {', '.join(COVARIANCES)}")
            detector = cls(
                feature_mean=np.asarray(values["feature_mean"], np.float64),
                feature_scale=np.asarray(values["feature_scale"], np.float64),
                feature_precision=np.asarray(values["feature_precision"], np.float64),
                centres={k: float(v) for k, v in values["centres"].items()},
                scales={k: float(v) for k, v in values["scales"].items()},
                weights={k: float(v) for k, v in values["weights"].items()},
                threshold=float(values["threshold"]),
                target_false_rejection=float(values.get("target_false_rejection", DEFAULT_TARGET_FALSE_REJECTION)),
                calibration=dict(values.get("calibration", {})),
                feature_names=names,
                covariance=covariance,
            )
        except (KeyError, TypeError, ValueError) as error:
            if isinstance(error, DermtoolError):
                raise
            raise DermtoolError(f"{source}: malformed OOD parameters ({error!r}); refit them") from None
        numbers = [detector.threshold, detector.target_false_rejection, *detector.centres.values(),
                   *detector.scales.values(), *detector.weights.values()]
        arrays = (detector.feature_mean, detector.feature_scale, detector.feature_precision)
        if not all(np.isfinite(numbers)) or not all(np.all(np.isfinite(array)) for array in arrays):
            raise DermtoolError(f"{source}: OOD parameters hold NaN or infinity (threshold {detector.threshold!r}); "
                                "the metadata is corrupt or was edited")
        count = len(detector.feature_names)
        if (detector.feature_mean.shape != (count,) or detector.feature_scale.shape != (count,)
                or detector.feature_precision.shape != (count, count)):
            raise DermtoolError(f"{source}: OOD parameter shapes do not match {count} statistics; refit them")
        return detector


def fit_detector(
    reference_images: Sequence[np.ndarray] | np.ndarray,
    calibration_images: Sequence[np.ndarray] | np.ndarray,
    calibration_probabilities: np.ndarray,
    target_false_rejection: float = DEFAULT_TARGET_FALSE_REJECTION,
    weights: Mapping[str, float] | None = None,
    shrinkage: float = 0.1,
    features: Sequence[str] = DEFAULT_FEATURES,
    covariance: str = DEFAULT_COVARIANCE,
) -> OODDetector:
    """Fit the Gaussian of the statistics on ``reference_images`` (lesions, e.g. training split) and the
    standardisation and threshold on ``calibration_images`` with their probabilities (validation split).

    ``features`` (a subset of :data:`FEATURE_NAMES`) and ``covariance`` ("diagonal" or "full"): which
    statistics and which distance; ``features=FEATURE_NAMES, covariance="full"`` is the format-1 guard.
    """
    if covariance not in COVARIANCES:
        raise DermtoolError(f"covariance must be one of {', '.join(COVARIANCES)}, got {covariance!r}")
    unknown = [name for name in features if name not in FEATURE_NAMES]
    if unknown or not features:
        raise DermtoolError(f"features must be some of {', '.join(FEATURE_NAMES)}; unknown: {unknown}")
    names = tuple(name for name in FEATURE_NAMES if name in set(features))
    if not 0 < target_false_rejection < 1:
        raise DermtoolError(f"target_false_rejection must be in (0, 1), got {target_false_rejection}")
    if len(reference_images) < 5 or len(calibration_images) < 5:
        raise DermtoolError(
            f"fitting the OOD detector needs at least 5 reference and 5 calibration lesion images "
            f"(got {len(reference_images)} and {len(calibration_images)})"
        )
    statistics = _select_features(image_statistics(reference_images), names)
    mean = statistics.mean(axis=0)
    scale = np.maximum(statistics.std(axis=0), 1e-3)
    standardised = (statistics - mean) / scale
    matrix = np.atleast_2d(np.cov(standardised, rowvar=False))
    if covariance == "diagonal":
        matrix = np.diag(np.diag(matrix))
    matrix = (1 - shrinkage) * matrix + shrinkage * np.eye(len(mean))
    precision = np.linalg.inv(matrix)
    detector = OODDetector(
        feature_mean=mean,
        feature_scale=scale,
        feature_precision=precision,
        centres={},
        scales={},
        weights=dict(weights or DEFAULT_WEIGHTS),
        threshold=float("inf"),
        target_false_rejection=target_false_rejection,
        feature_names=names,
        covariance=covariance,
    )
    raw = detector.raw_scores(calibration_images, calibration_probabilities)
    for name, values in raw.items():
        detector.centres[name], detector.scales[name] = _robust_centre_scale(values)
    combined = detector.combine(raw)
    # the smallest threshold that rejects at most target_false_rejection of the calibration lesions
    detector.threshold = float(np.quantile(combined, 1 - target_false_rejection, method="higher")) + 1e-9
    detector.calibration = {
        "reference_images": int(len(reference_images)),
        "calibration_images": int(len(calibration_images)),
        "calibration_false_rejection": float(np.mean(detector.rejects(combined))),
    }
    return detector


# ---- run folders -------------------------------------------------------------------------------------


def ood_path(run_path: str | Path) -> Path:
    return Path(run_path) / OOD_FILE_NAME


def split_records(run: Any, data_dir: str | Path | None, split: str) -> list[Any]:
    """The record of each image of ``split`` in the run's split.csv, found in its data (its sources, or
    ``data_dir`` instead of its one folder), in split-file order."""
    from dermtool.data.sources import run_split_records

    return run_split_records(run, data_dir).get(split, [])


def fit_for_run(
    run_path: str | Path,
    data_dir: str | Path | None = None,
    target_false_rejection: float = DEFAULT_TARGET_FALSE_REJECTION,
    max_reference_images: int = DEFAULT_MAX_REFERENCE_IMAGES,
    progress: bool = True,
    write: bool = True,
    seed: int = 0,
    predict_probabilities: Callable[[np.ndarray], np.ndarray] | None = None,
) -> OODDetector:
    """Fit the detector for a run folder and (by default) write ``RUN/ood.json`` atomically.

    Statistics Gaussian: up to ``max_reference_images`` training-split images; standardisation and threshold:
    every validation-split image with the run's calibrated probabilities. The trainer can call this once
    after training; :func:`load_for_run` calls it lazily otherwise. ``predict_probabilities`` (uint8 model
    inputs -> calibrated probabilities) reuses an already loaded model; default: ``RunFolder.predict_probabilities``.
    """
    from dermtool.data.pipeline import load_images
    from dermtool.io_utils import atomic_write_json
    from dermtool.run import RunFolder

    run = run_path if hasattr(run_path, "split_rows") else RunFolder(run_path)
    from dermtool.data.sources import run_data_description, run_split_records

    spec = run.input_spec
    records = run_split_records(run, data_dir)
    train_paths = [record.path for record in records.get("train", [])]
    val_paths = [record.path for record in records.get("val", [])]
    if not train_paths or not val_paths:
        raise DermtoolError(f"cannot fit the OOD detector: no training or validation images of {run.path} found in "
                            f"{run_data_description(run, data_dir)}; pass the data folder (--data DATA)")
    if len(train_paths) > max_reference_images:
        order = np.random.default_rng(seed).permutation(len(train_paths))[:max_reference_images]
        train_paths = [train_paths[i] for i in sorted(order)]
    logger.info("fitting the OOD detector on %d training and %d validation images", len(train_paths), len(val_paths))
    reference, _ = load_images(train_paths, spec, progress=progress)
    calibration, _ = load_images(val_paths, spec, progress=progress)
    if len(calibration) < 5:  # very small runs: calibrate on the training images too
        calibration = np.concatenate([calibration, reference]) if len(calibration) else reference
    probabilities = (predict_probabilities or run.predict_probabilities)(calibration)
    detector = fit_detector(reference, calibration, probabilities, target_false_rejection)
    detector.calibration.update({"split": "val", "data_dir": run_data_description(run, data_dir),
                                 "input_spec": spec.to_dict()})
    if write:
        atomic_write_json(ood_path(run.path), detector.to_dict())
    return detector


def read_ood_file(path: str | Path) -> OODDetector:
    from dermtool.files import read_text_file

    path = Path(path)
    try:
        values = json.loads(read_text_file(path, "OOD parameters"))  # a regular file, size-capped
    except (json.JSONDecodeError, RecursionError) as error:
        raise DermtoolError(f"{path}: not valid JSON ({error}); delete it to refit the OOD detector") from None
    return OODDetector.from_dict(values, str(path))


def load_for_run(
    run_path: str | Path,
    data_dir: str | Path | None = None,
    fit_if_missing: bool = True,
    progress: bool = True,
    predict_probabilities: Callable[[np.ndarray], np.ndarray] | None = None,
) -> OODDetector | None:
    """``RUN/ood.json`` if present; otherwise fit it now (once, then written) when ``fit_if_missing``, else None."""
    path = ood_path(getattr(run_path, "path", run_path))
    if path.exists():
        return read_ood_file(path)
    if not fit_if_missing:
        return None
    logger.warning("%s not found: fitting the out-of-distribution guard now (once)", path)
    return fit_for_run(run_path, data_dir=data_dir, progress=progress, predict_probabilities=predict_probabilities)


def from_metadata(metadata: Mapping[str, Any], source: str = "dermtool.json") -> OODDetector | None:
    """The detector embedded in a .tflite's ``dermtool.json`` (key ``"ood"``), or None if it has none."""
    values = metadata.get("ood")
    if not values:
        return None
    return OODDetector.from_dict(values, source)


__all__ = [
    "OOD_FILE_NAME",
    "DEFAULT_TARGET_FALSE_REJECTION",
    "DEFAULT_WEIGHTS",
    "DEFAULT_FEATURES",
    "DEFAULT_COVARIANCE",
    "FEATURE_NAMES",
    "OODDetector",
    "image_statistics",
    "max_softmax_score",
    "fit_detector",
    "fit_for_run",
    "load_for_run",
    "read_ood_file",
    "from_metadata",
    "ood_path",
    "split_records",
]
