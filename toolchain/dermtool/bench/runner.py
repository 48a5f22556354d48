"""``dermtool bench``: accuracy, drift against a reference, latency and size of one ``.tflite`` model.

:func:`run_bench` (``run_bench(model, data, BenchOptions(split="test", client="both", ...))``; the steps:
:class:`_Bench`) returns ONE flat dict in the ``bench --json`` schema of ``docs/contract.md``:

- the metric keys (``n, accuracy, balanced_accuracy, macro_f1, auc_macro, ece, nll, per_class,
  confusion_matrix``) of the model on the evaluated images (:func:`dermtool.metrics.classification_metrics`);
- ``reference`` (``{path, ...the metric keys...}``) and ``drift`` (:func:`dermtool.metrics.drift`) when a
  reference is given: a run folder (its float Keras model, calibrated) or another ``.tflite``;
- ``latency_ms``: one entry per thread count, ``{init, first, mean, std, p50, p90, p99, runs}`` in
  milliseconds (plus ``min``, ``max``, ``warmup``);
- ``peak_rss_mb``, ``model`` (``{path, bytes, gzip_bytes, input, output}``) and ``device`` (``{cpu, threads}``).

Extra keys (outside the contract, used by the report and plots): ``latency_samples_ms`` (every timed run,
per thread count), ``reliability`` (per-bin data of the reliability diagram), ``data`` (what was evaluated:
folder, split, manifest, unreadable images), ``ignored_unknown`` (``{label: images}`` left out, only with
``ignore_unknown``, as in ``evaluate``), ``notes`` (human-readable remarks, e.g. skipped images) and
``bench_seconds`` (wall time of each stage).

How latency is measured (the same way TFLite's ``benchmark_model`` does, plus percentiles): for each thread
count a fresh interpreter is created (``init``: reading the file, building the interpreter with XNNPACK,
allocating tensors), the first invoke is timed on its own (``first``: XNNPACK packs weights lazily), then
``warmup`` untimed and ``runs`` timed invokes follow. Each timed invoke is ``set_tensor`` + ``invoke`` +
``get_tensor`` on a real, preprocessed evaluation image; the inputs cycle through up to 32 evaluated images
(evenly spread over the set), prepared (quantised / normalised) before the timing starts. :func:`bare_interpreter_loop` times a raw
LiteRT loop without any of this, to measure the harness's own overhead.

Peak memory (``peak_rss_mb``) is the process's peak resident set size (``getrusage``) after the TFLite
model's accuracy and latency runs and before a reference model is loaded; it includes the decoded
evaluation images and the Python interpreter, so it is an upper bound of what the model itself needs.

Clients (``client``): ``"litert"`` (the default) runs the model in a LiteRT interpreter on images decoded
and resized by dermtool's own pipeline. ``"mediapipe"`` runs it the way a phone app does, through MediaPipe
Tasks' ``ImageClassifier`` on the decoded image at its own size (MediaPipe resizes and normalises it;
:mod:`dermtool.bench.mediapipe_client`): the metric keys then describe MediaPipe's answers, ``client`` is
``"mediapipe"``, ``pipeline`` holds the metric keys of dermtool's pipeline (LiteRT on the same images
preprocessed by dermtool) and ``pipeline_drift`` the drift keys of MediaPipe against it; ``reference`` and
``drift`` compare MediaPipe's answers with the reference; ``latency_ms`` has one entry ``"mediapipe"``: the
time of each ``classify`` call (resize, normalisation and inference at the image's own size), one call per
evaluated image, ``init`` the creation of the classifier; ``input_images`` gives the sizes handed over.
``"both"`` is the LiteRT bench with the MediaPipe part nested under ``mediapipe``. ``upscale`` N > 1 benches
up-scaled copies of the images (Pillow LANCZOS, in memory; every client and the reference see the same
copies), as a high-resolution camera frame cropped to the lesion reaches the phone.

Questionnaire fusion: a model whose ``dermtool.json`` carries a ``fusion`` (``dermtool fuse``, then export),
benched on a DATA folder whose metadata CSV holds answers, gets ``fusion`` beside the image-only keys
(:func:`dermtool.evaluate.fusion_comparison`: image only, fused, fused with every answer unknown), computed
from the probabilities the metric keys describe (MediaPipe's with ``--client mediapipe``; with ``both``, a
second one under ``mediapipe``).

This module imports no TensorFlow; only a run-folder reference loads it (to run the Keras model).
(``mediapipe`` imports it when present, only with a MediaPipe client.)
"""

from __future__ import annotations

import gzip
import os
import platform
import resource
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from dermtool import DermtoolError, check_finite_outputs, metrics
from dermtool.bench.lesion_check import figures, litert_scores, make_non_lesions, mediapipe_scores
from dermtool.bench.mediapipe_client import (check_upscale, classify_files, load_original, mediapipe_version,
                                             size_summary)
from dermtool.data.images import ImageError
from dermtool.data.layouts import check_labels, read_dataset
from dermtool.data.pipeline import default_workers, load_images
from dermtool.data.preprocess import InputSpec, resize
from dermtool.data.sources import map_dataset_labels, source_of_folder, sources_from_dicts
from dermtool.data.split import read_split_csv
from dermtool.evaluate import fusion_comparison
from dermtool.fusion.fitting import answers_of_csv
from dermtool.prediction.lesion_check import NO_CHECK_MESSAGE, threshold_from_metadata
from dermtool.run import RunFolder
from dermtool.runtime import TFLiteModel, check_tflite_file

#: Melanoma, the class whose recall matters most; listed first in every report.
MELANOMA = "mel"

#: The ``--client`` values: who runs the model on the images (see the module docstring).
CLIENTS: tuple[str, ...] = ("litert", "mediapipe", "both")


# --------------------------------------------------------------------------------------------- the images
@dataclass
class EvaluationSet:
    """The labelled images a bench evaluates, decoded once (``uint8 (N, S, S, 3)``) and reused for all."""

    image_ids: list[str]
    paths: list[Path]
    labels: list[str]
    images: np.ndarray
    data: dict[str, Any] = field(default_factory=dict)  # the "data" entry of the results
    notes: list[str] = field(default_factory=list)
    upscale: float = 1.0  # the images are copies enlarged this many times (Pillow LANCZOS) before resizing


def select_records(
    data_dir: str | Path,
    labels_csv: str | Path | None = None,
    split: str | None = None,
    manifest: str | Path | None = None,
    reference: str | Path | None = None,
    sources: Sequence[Any] = (),
    source_name: str | None = None,
) -> tuple[list, dict[str, Any]]:
    """The labelled records to evaluate: every labelled image of DATA, or the rows of one split.

    With ``split``, the split file is ``manifest`` or else the ``split.csv`` of a run-folder ``reference``.
    Every image the split names must be in DATA (otherwise DATA is probably not the folder the run used);
    in a multi-source split (``sources``: the model's :class:`~dermtool.config.SourceConfig` list), every
    image of DATA's source (``source_name``, or found from the folder), whose selection and label map then
    apply.
    """
    dataset = read_dataset(data_dir, labels_csv)
    description: dict[str, Any] = {
        "path": str(data_dir),
        "layout": dataset.layout,
        "split": split,
        "manifest": None,
        "labels_csv": str(dataset.csv_path) if dataset.csv_path is not None else None,
    }
    if split is None and manifest is not None:
        raise DermtoolError("--manifest names a split file, so it needs --split NAME (e.g. --split test)")
    if split is not None and manifest is None:
        if reference is not None and Path(reference).is_dir():
            manifest = Path(reference) / "split.csv"
            if not manifest.is_file():
                raise DermtoolError(f"--split {split}: the reference run {reference} has no split.csv; pass --manifest SPLIT.csv")
        else:
            raise DermtoolError(
                f"--split {split} needs a split file: pass --manifest SPLIT.csv or --reference RUN (its split.csv)"
            )
    rows = read_split_csv(manifest) if manifest is not None else []
    source = source_of_folder(list(sources), dataset, rows, source_name)
    if source is not None:
        description["source"] = {"name": source.name, "kind": source.kind}
    all_records = map_dataset_labels(dataset, source)
    if split is None:
        records = list(all_records)
        if not records:
            raise DermtoolError(f"{data_dir}: no labelled images to evaluate")
        return records, description

    description["manifest"] = str(manifest)
    wanted = [row for row in rows if row.split == split and (source is None or row.source == source.name)]
    if not wanted:
        present = sorted({row.split for row in rows})
        raise DermtoolError(f"{manifest}: no rows in split {split!r} (splits present: {', '.join(present)})")
    by_id = {record.image_id: record for record in all_records}
    absent = [row.image_id for row in wanted if row.image_id not in by_id]
    if absent:
        shown = ", ".join(absent[:5]) + (", ..." if len(absent) > 5 else "")
        raise DermtoolError(
            f"{len(absent)} of the {len(wanted)} {split!r} images of {manifest} are not labelled images of "
            f"{data_dir} ({shown}); is DATA the folder this split was made from?"
        )
    return [by_id[row.image_id] for row in wanted], description


def _model_sources(model: Any, reference: str | Path | None) -> list[Any]:
    """The data sources a multi-source model was trained on (their label maps): from its metadata, else
    from a reference run folder's config."""
    sources = sources_from_dicts(model.metadata.get("sources"))
    if not sources and reference is not None and Path(reference).is_dir():
        try:
            sources = list(RunFolder(reference).config.data.sources)
        except DermtoolError:
            sources = []
    return sources


def load_upscaled_images(
    paths: Sequence[str | Path], spec: InputSpec, upscale: float, progress: bool = True
) -> tuple[np.ndarray, list[tuple[str | Path, str]]]:
    """Like :func:`dermtool.data.pipeline.load_images`, on copies enlarged ``upscale`` times (Pillow LANCZOS,
    in memory) and then resized by dermtool's pipeline (:func:`dermtool.data.preprocess.resize`)."""
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm

    paths = list(paths)
    images = np.empty((len(paths), spec.image_size, spec.image_size, 3), dtype=np.uint8)
    failed: list[tuple[str | Path, str]] = []

    def decode(path: str | Path) -> tuple[np.ndarray | None, str | None]:
        try:
            return resize(load_original(path, upscale), spec.image_size, spec.resize_policy), None
        except ImageError as error:
            return None, error.reason
        except OSError:
            return None, "unreadable"

    loaded = 0
    with ThreadPoolExecutor(max_workers=default_workers(), thread_name_prefix="upscale") as pool:
        for path, (image, reason) in zip(paths, tqdm(pool.map(decode, paths), total=len(paths), unit="img",
                                                    desc=f"Decoding x{upscale:g}", disable=None if progress else True)):
            if image is None:
                failed.append((path, reason or "unreadable"))
            else:
                images[loaded] = image
                loaded += 1
    return images[:loaded], failed


def load_evaluation_set(records: Sequence, spec: InputSpec, progress: bool = True, upscale: float = 1.0) -> EvaluationSet:
    """Decode and resize the records' images once with the model's input spec (unreadable ones skipped).

    ``upscale`` > 1: from copies enlarged that many times (Pillow LANCZOS, in memory) instead of the files."""
    paths = [record.path for record in records]
    if upscale == 1.0:
        images, failed = load_images(paths, spec, progress=progress)
    else:
        images, failed = load_upscaled_images(paths, spec, upscale, progress=progress)
    failed_paths = {str(path) for path, _ in failed}
    kept = [record for record in records if str(record.path) not in failed_paths]
    notes = []
    if failed:
        shown = ", ".join(f"{Path(path).name} ({reason})" for path, reason in failed[:5])
        notes.append(f"skipped {len(failed)} unreadable image(s): {shown}{', ...' if len(failed) > 5 else ''}")
    if not kept:
        raise DermtoolError(f"none of the {len(records)} images could be read ({failed[0][1]} for {failed[0][0]})")
    return EvaluationSet(
        image_ids=[record.image_id for record in kept],
        paths=[record.path for record in kept],
        labels=[record.label for record in kept],
        images=images,
        data={"unreadable": [{"path": str(path), "reason": reason} for path, reason in failed]},
        notes=notes,
        upscale=float(upscale),
    )


# -------------------------------------------------------------------------------------------- predictions
def predict_all(model: TFLiteModel, images: np.ndarray, progress: bool = True, description: str = "Predicting") -> np.ndarray:
    """Probabilities ``float32 (N, C)`` for every image, with a tqdm bar over images."""
    return predict_all_with_check(model, images, progress, description)[0]


def predict_all_with_check(model: TFLiteModel, images: np.ndarray, progress: bool = True,
                           description: str = "Predicting") -> tuple[np.ndarray, np.ndarray | None]:
    """(probabilities ``float32 (N, C)``, P(not_a_lesion) ``(N,)`` from the lesion-check output or None for a
    model without one) for every image, with a tqdm bar over images."""
    from tqdm import tqdm

    probabilities = np.empty((len(images), model.num_classes), dtype=np.float32)
    not_a_lesion = np.empty(len(images), dtype=np.float32)
    for position in tqdm(range(len(images)), desc=description, unit="img", disable=None if progress else True):
        probabilities[position], score = model.predict_prepared_with_check(model.prepare(images[position]))
        not_a_lesion[position] = np.nan if score is None else score
    return probabilities, (not_a_lesion if model.lesion_check_output is not None else None)


def _align_reference_columns(
    reference_labels: Sequence[str], model_labels: Sequence[str], reference: str | Path
) -> list[int]:
    """Column indices that put the reference's outputs in the model's label order."""
    if sorted(reference_labels) != sorted(model_labels) or len(set(reference_labels)) != len(reference_labels):
        raise DermtoolError(
            f"the reference {reference} has labels {', '.join(reference_labels)} but the model has "
            f"{', '.join(model_labels)}: they must be the same classes"
        )
    return [list(reference_labels).index(label) for label in model_labels]


def check_reference(reference: str | Path, model_labels: Sequence[str]) -> None:
    """Fail early (before any image is decoded) if the reference cannot be used: missing, or other classes."""
    reference = Path(reference)
    if not reference.exists():
        raise DermtoolError(f"reference not found: {reference} (a run folder or a .tflite model)")
    if reference.is_dir():
        labels = RunFolder(reference).labels
    else:
        reference_model = TFLiteModel(reference)
        labels = reference_model.require_labels()
        reference_model.require_input_spec()
    _align_reference_columns(labels, model_labels, reference)


def reference_probabilities(
    reference: str | Path,
    evaluation: EvaluationSet,
    model_spec: InputSpec,
    model_labels: Sequence[str],
    threads: int = 1,
    progress: bool = True,
) -> np.ndarray:
    """Probabilities of the reference (a run folder's calibrated float model, or a .tflite) in model label order."""
    reference = Path(reference)
    if reference.is_dir():
        run = RunFolder(reference)
        images = evaluation.images
        if run.input_spec != model_spec:
            images = _reload(evaluation, run.input_spec, progress)
        probabilities = np.asarray(run.predict_probabilities(images), dtype=np.float64)
        labels = run.labels
    else:
        model = TFLiteModel(reference, threads=threads)
        labels = model.require_labels()
        spec = model.require_input_spec()
        images = evaluation.images if spec == model_spec else _reload(evaluation, spec, progress)
        probabilities = predict_all(model, images, progress, description="Reference").astype(np.float64)
    columns = _align_reference_columns(labels, model_labels, reference)
    return probabilities[:, columns]


def _reload(evaluation: EvaluationSet, spec: InputSpec, progress: bool) -> np.ndarray:
    if evaluation.upscale != 1.0:
        images, failed = load_upscaled_images(evaluation.paths, spec, evaluation.upscale, progress=progress)
    else:
        images, failed = load_images(evaluation.paths, spec, progress=progress)
    if failed:
        raise DermtoolError(f"{len(failed)} image(s) could not be read again for the reference ({failed[0][0]})")
    return images


# ------------------------------------------------------------------------------------------------ latency
def latency_statistics(samples_ms: Sequence[float]) -> dict[str, float]:
    """``{mean, std, p50, p90, p99, min, max, runs}`` of per-run latencies in milliseconds."""
    values = np.asarray(samples_ms, dtype=np.float64)
    if values.size == 0:
        raise DermtoolError("no timed runs (--runs must be at least 1)")
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return {
        "mean": float(values.mean()),
        "std": float(values.std(ddof=1)) if values.size > 1 else 0.0,
        "p50": float(p50),
        "p90": float(p90),
        "p99": float(p99),
        "min": float(values.min()),
        "max": float(values.max()),
        "runs": int(values.size),
    }


#: At most this many distinct evaluation images are prepared for the latency runs (evenly spread over the set).
LATENCY_POOL_SIZE = 32


def latency_inputs(model: TFLiteModel, images: np.ndarray, pool_size: int = LATENCY_POOL_SIZE) -> list[np.ndarray]:
    """Prepared (quantised / normalised) inputs of up to ``pool_size`` images evenly spread over ``images``."""
    count = len(images)
    if count == 0:
        raise DermtoolError("no images to time the model on")
    chosen = np.unique(np.linspace(0, count - 1, num=min(pool_size, count)).round().astype(int))
    return [model.prepare(images[index]) for index in chosen]


def measure_latency(
    model_path: str | Path, images: np.ndarray, threads: int, runs: int, warmup: int
) -> tuple[dict[str, float], list[float]]:
    """Latency of one thread count on real images: ``(entry, per-run samples in ms)`` (see module docstring).

    The inputs are prepared before timing (a pool of up to :data:`LATENCY_POOL_SIZE` evaluation images) and
    cycled through, so each timed call is exactly what a device app does per image: set the input, invoke,
    read the output.
    """
    clock = time.perf_counter
    start = clock()
    model = TFLiteModel(model_path, threads=threads)
    init_ms = (clock() - start) * 1e3
    inputs = latency_inputs(model, images)
    count = len(inputs)
    start = clock()
    model.invoke_once(inputs[0])
    first_ms = (clock() - start) * 1e3
    invoke = model.invoke_once
    for position in range(warmup):
        invoke(inputs[(position + 1) % count])
    samples = [0.0] * runs
    cpu_start = time.process_time()
    for position in range(runs):
        prepared = inputs[(warmup + 1 + position) % count]
        start = clock()
        invoke(prepared)
        samples[position] = (clock() - start) * 1e3
    cpu_ms = (time.process_time() - cpu_start) / runs * 1e3
    entry = {"init": init_ms, "first": first_ms, **latency_statistics(samples), "warmup": int(warmup),
             "cpu_mean": cpu_ms}
    return entry, samples


def bare_interpreter_loop(model_path: str | Path, image: np.ndarray, runs: int, threads: int = 1, warmup: int = 10) -> dict[str, float]:
    """Time a raw LiteRT loop (no harness): one prepared input, ``runs`` x (set_tensor, invoke, get_tensor).

    ``image`` is a ``uint8 (S, S, 3)`` image (prepared once, outside the timing, with the model's input
    contract) or an array already in the model's input type and shape ``(1, S, S, 3)``.
    Returns ``{"mean": ms per invoke over the whole loop, "p50": median ms of the single invokes,
    "cpu_mean": process CPU ms per invoke, "total_s", "runs", "threads"}``.
    """
    from ai_edge_litert.interpreter import Interpreter

    image = np.asarray(image)
    if image.ndim == 3:
        image = TFLiteModel(model_path, threads=threads).prepare(image)
    interpreter = Interpreter(model_content=check_tflite_file(model_path), num_threads=threads)
    interpreter.allocate_tensors()
    input_index = interpreter.get_input_details()[0]["index"]
    output_index = interpreter.get_output_details()[0]["index"]
    set_tensor, invoke, get_tensor = interpreter.set_tensor, interpreter.invoke, interpreter.get_tensor
    for _ in range(warmup):
        set_tensor(input_index, image)
        invoke()
        get_tensor(output_index)
    clock = time.perf_counter
    stamps = [0.0] * (runs + 1)
    cpu_start = time.process_time()
    stamps[0] = clock()
    for position in range(1, runs + 1):
        set_tensor(input_index, image)
        invoke()
        get_tensor(output_index)
        stamps[position] = clock()
    cpu_ms = (time.process_time() - cpu_start) / runs * 1e3
    total = stamps[-1] - stamps[0]
    return {"mean": total / runs * 1e3, "p50": float(np.median(np.diff(stamps))) * 1e3, "cpu_mean": cpu_ms,
            "total_s": total, "runs": int(runs), "threads": int(threads)}


def harness_overhead(
    model_path: str | Path, images: np.ndarray, runs: int = 100, threads: int = 1, repeats: int = 10
) -> dict[str, Any]:
    """How much the bench harness adds to a bare LiteRT loop: both alternate ``repeats`` times, ``runs`` invokes each.

    Each repeat runs :func:`bare_interpreter_loop` and then :func:`measure_latency` (the harness, cycling
    through prepared ``images``). The headline comparison is in process CPU time per invoke
    (``overhead = harness_cpu_ms / bare_cpu_ms - 1``; target below 0.05): what the harness adds is Python
    work, which is CPU time, and CPU time is not inflated by waiting for a core on a shared, busy machine
    the way wall-clock time is. The wall-clock medians (``harness_ms``, ``bare_ms``, ``overhead_wall``) are
    reported beside it. Each figure is the lowest over the repeats (the least disturbed loop). With more
    than one thread, CPU time also counts the worker threads' spinning, so use ``threads=1``.
    """
    results: dict[str, list[float]] = {"harness_cpu": [], "bare_cpu": [], "harness_p50": [], "bare_p50": []}
    for _ in range(repeats):
        bare = bare_interpreter_loop(model_path, images[0], runs, threads)
        entry, _samples = measure_latency(model_path, images, threads, runs, warmup=10)
        results["bare_cpu"].append(bare["cpu_mean"])
        results["bare_p50"].append(bare["p50"])
        results["harness_cpu"].append(entry["cpu_mean"])
        results["harness_p50"].append(entry["p50"])
    best = {name: min(values) for name, values in results.items()}
    return {
        "overhead": best["harness_cpu"] / best["bare_cpu"] - 1.0,
        "harness_cpu_ms": best["harness_cpu"],
        "bare_cpu_ms": best["bare_cpu"],
        "overhead_wall": best["harness_p50"] / best["bare_p50"] - 1.0,
        "harness_ms": best["harness_p50"],
        "bare_ms": best["bare_p50"],
        "runs": int(runs),
        "threads": int(threads),
        "repeats": int(repeats),
    }


# ------------------------------------------------------------------------------------ model and device
def cpu_name() -> str:
    """The CPU model name from /proc/cpuinfo (falls back to platform.processor())."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def available_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def device_info() -> dict[str, Any]:
    """``{cpu, threads}`` (hardware threads available to this process) plus machine and runtime versions."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        runtime = f"ai-edge-litert {version('ai-edge-litert')} (XNNPACK)"
    except PackageNotFoundError:  # pragma: no cover
        runtime = "ai-edge-litert (XNNPACK)"
    return {"cpu": cpu_name(), "threads": available_threads(), "machine": platform.machine(), "runtime": runtime}


def model_info(model: TFLiteModel) -> dict[str, Any]:
    """``{path, bytes, gzip_bytes, input, output}`` plus the export mode and labels from the metadata."""
    content = model.path.read_bytes()
    return {
        "path": str(model.path),
        "bytes": len(content),
        "gzip_bytes": len(gzip.compress(content, compresslevel=9, mtime=0)),
        "input": model.input.to_dict(),
        "output": model.output.to_dict(),
        "mode": model.metadata.get("mode"),
        "labels": model.labels,
        "input_spec": model.input_spec.to_dict() if model.input_spec is not None else None,
    }


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (``ru_maxrss`` is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# ------------------------------------------------------------------------------------------------- bench
@dataclass(frozen=True)
class BenchOptions:
    """How :func:`run_bench` benches a model (the ``dermtool bench`` options).

    ``split``: evaluate only that split of ``manifest`` (a split.csv) or of the run folder ``reference``.
    ``reference``: a run folder (float Keras model) or a .tflite to compare against (``reference`` + ``drift``).
    ``threads``: one latency entry per value (LiteRT; repeated values count once, none means 1). ``runs`` /
    ``warmup``: timed and untimed invokes per thread count. ``labels_csv``: DATA's labels when they are not
    where its layout says. ``ignore_unknown``: leave out images of classes the model does not know (listed
    under ``ignored_unknown``) instead of refusing them. ``progress``: progress bars. ``client``:
    ``"litert"``, ``"mediapipe"`` or ``"both"`` (:data:`CLIENTS`); ``upscale``: bench copies enlarged this
    many times (see the module docstring). ``source``: which of a multi-source model's sources DATA is
    (needed where several read one folder).
    """

    split: str | None = None
    manifest: str | Path | None = None
    reference: str | Path | None = None
    threads: Sequence[int] = (1,)
    runs: int = 200
    warmup: int = 20
    labels_csv: str | Path | None = None
    ignore_unknown: bool = False
    progress: bool = True
    client: str = "litert"
    upscale: float = 1.0
    source: str | None = None

    def check(self) -> None:
        """Raise :class:`DermtoolError` naming the command-line option of the first invalid setting."""
        if self.client not in CLIENTS:
            raise DermtoolError(f"--client must be one of {', '.join(CLIENTS)}, got {self.client!r}")
        check_upscale(self.upscale)
        given = [int(value) for value in self.threads]
        if any(value < 1 for value in given):
            raise DermtoolError(f"--threads must be positive integers, got {', '.join(map(str, given))}")
        if self.runs < 1:
            raise DermtoolError(f"--runs must be at least 1, got {self.runs}")
        if self.warmup < 0:
            raise DermtoolError(f"--warmup must be 0 or more, got {self.warmup}")

    def thread_counts(self) -> list[int]:
        """``threads`` as integers, each once, in the given order (``[1]`` when none is given)."""
        return list(dict.fromkeys(int(value) for value in self.threads)) if self.threads else [1]


def run_bench(model_path: str | Path, data_dir: str | Path, options: BenchOptions | None = None) -> dict[str, Any]:
    """Bench ``model_path`` on the labelled images of ``data_dir``: one flat results dict (bench --json).

    ``options``: :class:`BenchOptions` (default: its defaults). The steps: :class:`_Bench`. Raises
    :class:`DermtoolError` for every user mistake.
    """
    return _Bench(model_path, data_dir, options or BenchOptions()).run()


class _Bench:
    """One bench, as named steps in :meth:`run`; each step leaves its products on ``self`` and
    :meth:`assemble` turns them into the flat results dict (its keys in the order of ``docs/contract.md``)."""

    def __init__(self, model_path: str | Path, data_dir: str | Path, options: BenchOptions) -> None:
        self.model_path, self.data_dir, self.options = model_path, data_dir, options
        self.started = time.perf_counter()
        self.seconds: dict[str, float] = {}  # bench_seconds: the wall time of each stage
        self.notes: list[str] = []
        self.thread_counts: list[int] = []
        self.model: TFLiteModel | None = None  # open from open_model to predict_with_litert
        self.labels: list[str] = []
        self.spec: InputSpec | None = None
        self.records: list = []
        self.data_description: dict[str, Any] = {}
        self.ignored: dict[str, int] = {}
        self.evaluation: EvaluationSet | None = None
        self.y_true = np.zeros(0, dtype=np.int64)
        self.probabilities = np.zeros(0)  # LiteRT's, on dermtool's preprocessing
        self.litert_metrics: dict[str, Any] = {}
        self.lesion_check: dict[str, Any] | None = None
        self.non_lesions: Any = None
        self.model_description: dict[str, Any] = {}
        self.fusion_inputs: tuple = ()
        self.latency: dict[str, dict[str, float]] = {}
        self.samples: dict[str, list[float]] = {}
        self.mediapipe_part: dict[str, Any] | None = None
        self.mediapipe_probabilities: np.ndarray | None = None
        self.mediapipe_samples: list[float] = []
        self.peak_rss_mb = 0.0
        self.reference_probabilities: np.ndarray | None = None

    def run(self) -> dict[str, Any]:
        self.check_options()
        self.open_model()
        self.select_images()
        self.load_images()
        self.predict_with_litert()
        self.measure_litert_latency()
        self.run_mediapipe()
        self.peak_rss_mb = peak_rss_mb()  # before a reference model is loaded (see the module docstring)
        self.predict_with_reference()
        return self.assemble()

    @property
    def scored(self) -> np.ndarray:
        """The probabilities the metric keys describe: MediaPipe's with ``client="mediapipe"``, else LiteRT's."""
        if self.options.client == "mediapipe":
            assert self.mediapipe_probabilities is not None  # set by run_mediapipe
            return self.mediapipe_probabilities
        return self.probabilities

    # ---- step 0: the options, before anything is read
    def check_options(self) -> None:
        self.options.check()
        self.thread_counts = self.options.thread_counts()
        self.options = replace(self.options, upscale=float(self.options.upscale), threads=tuple(self.thread_counts))

    # ---- step 1: the model, its labels and input spec; the reference's labels against them
    def open_model(self) -> None:
        self.model = TFLiteModel(self.model_path, threads=self.thread_counts[0])
        self.labels = self.model.require_labels()
        self.spec = self.model.require_input_spec()
        if self.options.reference is not None:
            check_reference(self.options.reference, self.labels)

    # ---- step 2: which images (every labelled image of DATA, or one split), and their labels checked
    def select_images(self) -> None:
        options = self.options
        records, self.data_description = select_records(
            self.data_dir, options.labels_csv, options.split, options.manifest, options.reference,
            sources=_model_sources(self.model, options.reference), source_name=options.source)
        self.records, self.ignored, notes = check_labels(records, self.labels, options.ignore_unknown)
        self.notes += notes

    # ---- step 3: decode and resize them once
    def load_images(self) -> None:
        assert self.spec is not None  # set by open_model
        clock = time.perf_counter()
        self.evaluation = load_evaluation_set(self.records, self.spec, self.options.progress,
                                              upscale=self.options.upscale)
        self.seconds["decode"] = time.perf_counter() - clock
        self.notes += self.evaluation.notes
        label_index = {label: position for position, label in enumerate(self.labels)}
        self.y_true = np.array([label_index[label] for label in self.evaluation.labels], dtype=np.int64)

    # ---- step 4: LiteRT's answers and lesion check, then the model is closed
    def predict_with_litert(self) -> None:
        assert self.model is not None and self.evaluation is not None  # set by open_model, load_images
        model, evaluation = self.model, self.evaluation
        clock = time.perf_counter()
        self.probabilities, check_scores = predict_all_with_check(model, evaluation.images, self.options.progress)
        self.seconds["predict"] = time.perf_counter() - clock
        self.lesion_check, self.non_lesions = _lesion_check_litert(model, check_scores, evaluation, self.data_dir,
                                                                   self.options.source, self.notes)
        self.model_description = model_info(model)
        self.fusion_inputs = (model.metadata.get("fusion"), model.metadata.get("referral"),
                              self.data_description["labels_csv"], evaluation.image_ids, self.y_true, self.labels)
        self.model = None  # the latency runs open their own interpreters
        del model
        self.litert_metrics = dict(metrics.classification_metrics(self.y_true, self.probabilities, self.labels))

    # ---- step 5: LiteRT's latency, one fresh interpreter per thread count
    def measure_litert_latency(self) -> None:
        if self.options.client == "mediapipe":
            return
        assert self.evaluation is not None  # set by load_images
        clock = time.perf_counter()
        for count in self.thread_counts:
            self.latency[str(count)], self.samples[str(count)] = measure_latency(
                self.model_path, self.evaluation.images, count, self.options.runs, self.options.warmup)
        self.seconds["latency"] = time.perf_counter() - clock

    # ---- step 6: MediaPipe's answers, latency and lesion check on the same files
    def run_mediapipe(self) -> None:
        if self.options.client == "litert":
            return
        assert self.evaluation is not None and self.spec is not None  # set by load_images, open_model
        clock = time.perf_counter()
        self.mediapipe_part, self.mediapipe_probabilities, self.mediapipe_samples = _mediapipe_bench(
            self.model_path, self.evaluation, self.labels, self.y_true, self.probabilities, self.spec,
            self.options.progress)
        mediapipe_check = self.mediapipe_part.pop("not_a_lesion")
        if self.lesion_check is not None and self.non_lesions is not None and mediapipe_check is not None:
            self.lesion_check["mediapipe"] = figures(
                mediapipe_check, mediapipe_scores(self.model_path, self.labels, self.non_lesions),
                self.non_lesions, self.lesion_check["threshold"])
        self.seconds["mediapipe"] = time.perf_counter() - clock
        if self.spec.resize_policy != "squash":
            self.notes.append(f"MediaPipe stretches the whole image to the input square, but this model was trained "
                              f"on images fitted with {self.spec.resize_policy!r}: an app must crop or pad before "
                              f"classify")

    # ---- step 7: the reference's answers on the same images
    def predict_with_reference(self) -> None:
        if self.options.reference is None:
            return
        assert self.evaluation is not None and self.spec is not None  # set by load_images, open_model
        clock = time.perf_counter()
        self.reference_probabilities = reference_probabilities(
            self.options.reference, self.evaluation, self.spec, self.labels, threads=max(self.thread_counts),
            progress=self.options.progress)
        self.seconds["reference"] = time.perf_counter() - clock

    # ---- step 8: the flat results dict
    def assemble(self) -> dict[str, Any]:
        results = self.client_results()
        results["upscale"] = self.options.upscale
        results["model"] = self.model_description
        results["latency_ms"] = self.latency
        results["peak_rss_mb"] = self.peak_rss_mb
        results["device"] = self.device()
        self.add_reference_and_drift(results)
        if self.options.client == "both":
            assert self.mediapipe_part is not None  # set by run_mediapipe
            self.mediapipe_part.pop("pipeline_preprocessing")
            results["mediapipe"] = self.mediapipe_part
        _add_fusion(results, self.fusion_inputs, self.scored,
                    self.mediapipe_probabilities if self.options.client == "both" else None, self.notes)
        results["lesion_check"] = self.lesion_check
        results["latency_samples_ms"] = self.samples
        results["reliability"] = _json_ready(metrics.reliability_curve(self.y_true, self.scored))
        assert self.evaluation is not None  # set by load_images
        self.data_description.update({"images": int(len(self.y_true)), "unreadable": self.evaluation.data["unreadable"]})
        results["data"] = self.data_description
        if self.options.ignore_unknown:
            results["ignored_unknown"] = self.ignored
        results["notes"] = self.notes
        self.seconds["total"] = time.perf_counter() - self.started
        results["bench_seconds"] = self.seconds
        return _json_ready(results)

    def client_results(self) -> dict[str, Any]:
        """The metric keys and ``client`` (with MediaPipe alone: ``pipeline``, ``pipeline_drift``,
        ``input_images``, and MediaPipe's latency in place of LiteRT's)."""
        if self.options.client != "mediapipe":
            return {**self.litert_metrics, "client": "litert"}
        part = self.mediapipe_part
        assert part is not None and self.mediapipe_probabilities is not None  # set by run_mediapipe
        results: dict[str, Any] = dict(metrics.classification_metrics(
            self.y_true, self.mediapipe_probabilities, self.labels))
        results["client"] = "mediapipe"
        results["pipeline"] = {"client": "litert", "preprocessing": part["pipeline_preprocessing"],
                               **self.litert_metrics}
        results["pipeline_drift"] = part["pipeline_drift"]
        results["input_images"] = part["input_images"]
        self.latency = part["latency_ms"]
        self.samples = {"mediapipe": self.mediapipe_samples}
        return results

    def device(self) -> dict[str, Any]:
        """:func:`device_info`, plus MediaPipe's version when a MediaPipe client ran."""
        description = device_info()
        if self.options.client != "litert":
            description["client_runtime"] = f"mediapipe {mediapipe_version()} (ImageClassifier, CPU)"
        return description

    def add_reference_and_drift(self, results: dict[str, Any]) -> None:
        """``reference`` (its metric keys) and ``drift`` of the scored answers against it (and MediaPipe's
        ``drift`` with ``client="both"``)."""
        if self.reference_probabilities is None:
            return
        reference = self.reference_probabilities
        results["reference"] = {"path": str(self.options.reference),
                                **metrics.classification_metrics(self.y_true, reference, self.labels)}
        results["drift"] = dict(metrics.drift(self.scored, reference, self.y_true, self.labels))
        if self.options.client == "both":
            assert self.mediapipe_part is not None  # set by run_mediapipe
            self.mediapipe_part["drift"] = dict(metrics.drift(self.mediapipe_probabilities, reference, self.y_true,
                                                              self.labels))


def _add_fusion(results: dict[str, Any], inputs: tuple, scored: np.ndarray, mediapipe_probabilities: np.ndarray | None,
                notes: list[str]) -> None:
    """``results["fusion"]`` (and ``results["mediapipe"]["fusion"]`` with ``--client both``): the model's
    questionnaire fusion applied to the probabilities the bench scored, with the answers of DATA's metadata
    CSV (:func:`dermtool.evaluate.fusion_comparison`); a note when the model has a fusion but DATA no answers."""
    fusion_item, image_referral, csv_path, image_ids, y_true, labels = inputs
    if not fusion_item or csv_path is None:
        return
    where = "the model's dermtool.json fusion"
    table = answers_of_csv(Path(csv_path))  # read once, for LiteRT's and MediaPipe's answers
    block = fusion_comparison(fusion_item, image_referral, csv_path, image_ids, y_true, scored, labels, where, table)
    if block is None:
        notes.append("the model carries a questionnaire fusion, but DATA's metadata CSV holds no answers for these "
                     "images: no fused figures")
        return
    results["fusion"] = block
    if mediapipe_probabilities is not None:
        results["mediapipe"]["fusion"] = fusion_comparison(fusion_item, image_referral, csv_path, image_ids, y_true,
                                                           mediapipe_probabilities, labels, where, table)


def _lesion_check_litert(model: TFLiteModel, scores: np.ndarray | None, evaluation: EvaluationSet,
                         data_dir: str | Path, source: str | None, notes: list[str]) -> tuple[dict | None, Any]:
    """(the ``lesion_check`` block with LiteRT's figures, the non-lesion images), or (None, None) and a note
    for a model without the lesion check (:mod:`dermtool.bench.lesion_check`)."""
    threshold = threshold_from_metadata(model.metadata, f"{model.path} (dermtool.json)")
    if scores is None or threshold is None:
        notes.append(NO_CHECK_MESSAGE)
        return None, None
    non_lesions = make_non_lesions(evaluation.paths, evaluation.image_ids, data_dir,
                                   crop_size=model.require_input_spec().image_size)
    block = {"threshold": threshold, "source": source,
             **figures(scores, litert_scores(model, non_lesions), non_lesions, threshold)}
    return block, non_lesions


def _mediapipe_bench(
    model_path: str | Path,
    evaluation: EvaluationSet,
    labels: Sequence[str],
    y_true: np.ndarray,
    pipeline_probabilities: np.ndarray,
    spec: InputSpec,
    progress: bool,
) -> tuple[dict[str, Any], np.ndarray, list[float]]:
    """MediaPipe's part of a bench: ``(part, probabilities, classify times in ms)``.

    ``part``: the metric keys of MediaPipe's answers, ``client``, ``pipeline_drift`` (MediaPipe against
    dermtool's pipeline, ``pipeline_probabilities``), ``latency_ms: {"mediapipe": {...}}``, ``input_images``.
    """
    output = classify_files(model_path, evaluation.paths, labels, upscale=evaluation.upscale, progress=progress)
    if output["failed"]:
        path, reason = output["failed"][0]
        raise DermtoolError(f"{len(output['failed'])} image(s) could not be read again for MediaPipe ({path}: {reason})")
    probabilities = np.asarray(output["probabilities"], dtype=np.float64)

    check_finite_outputs(probabilities, model_path)
    samples = list(output["samples_ms"])
    entry = {"init": output["init_ms"], "first": output["first_ms"], **latency_statistics(samples), "warmup": 0}
    part: dict[str, Any] = {
        "client": "mediapipe",
        **metrics.classification_metrics(y_true, probabilities, labels),
        "pipeline_drift": dict(metrics.drift(probabilities, pipeline_probabilities, y_true, labels)),
        "pipeline_preprocessing": f"dermtool: Pillow bilinear, {spec.resize_policy} to {spec.image_size} px",
        "latency_ms": {"mediapipe": entry},
        "input_images": {**size_summary(output["sizes"]), "upscale": evaluation.upscale},
        "not_a_lesion": output["not_a_lesion"],  # taken out by run_bench for its lesion_check block
    }
    return part, probabilities, samples


def _json_ready(value: Any) -> Any:
    """Numpy scalars/arrays and tuples -> plain JSON types (recursively)."""
    if isinstance(value, dict):
        return {str(key): _json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(item) for item in value]
    if isinstance(value, np.ndarray):
        return _json_ready(value.tolist())
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if hasattr(value, "__dataclass_fields__"):
        from dataclasses import asdict

        return _json_ready(asdict(value))
    return value


__all__ = [
    "MELANOMA",
    "CLIENTS",
    "BenchOptions",
    "EvaluationSet",
    "load_upscaled_images",
    "run_bench",
    "select_records",
    "check_labels",
    "load_evaluation_set",
    "predict_all",
    "predict_all_with_check",
    "check_reference",
    "reference_probabilities",
    "measure_latency",
    "latency_inputs",
    "latency_statistics",
    "bare_interpreter_loop",
    "harness_overhead",
    "cpu_name",
    "device_info",
    "model_info",
    "peak_rss_mb",
]
