"""``dermtool bench``: accuracy, drift against a reference, latency and size of one ``.tflite`` model.

:func:`run_bench` returns ONE flat dict in the ``bench --json`` schema of ``docs/contract.md``:

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from dermtool import DermtoolError
from dermtool.data.layouts import check_labels
from dermtool.data.preprocess import InputSpec
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
    from dermtool.data.layouts import read_dataset
    from dermtool.data.sources import map_dataset_labels, source_of_folder
    from dermtool.data.split import read_split_csv

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
    from dermtool.data.sources import sources_from_dicts

    sources = sources_from_dicts(model.metadata.get("sources"))
    if not sources and reference is not None and Path(reference).is_dir():
        from dermtool.run import RunFolder

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

    from dermtool.bench.mediapipe_client import load_original
    from dermtool.data.images import ImageError
    from dermtool.data.pipeline import default_workers
    from dermtool.data.preprocess import resize

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
    from dermtool.data.pipeline import load_images

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
        from dermtool.run import RunFolder

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
        from dermtool.run import RunFolder

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
    from dermtool.data.pipeline import load_images

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
        from dermtool.bench.mediapipe_client import check_upscale

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

    ``options``: :class:`BenchOptions` (default: its defaults). Raises :class:`DermtoolError` for every user
    mistake.
    """
    from dermtool import metrics

    stage_seconds: dict[str, float] = {}
    started = time.perf_counter()
    options = options or BenchOptions()
    options.check()
    split, manifest, reference, labels_csv = options.split, options.manifest, options.reference, options.labels_csv
    runs, warmup, ignore_unknown, progress = options.runs, options.warmup, options.ignore_unknown, options.progress
    client, upscale, source = options.client, float(options.upscale), options.source
    thread_counts = options.thread_counts()

    model = TFLiteModel(model_path, threads=thread_counts[0])
    labels = model.require_labels()
    spec = model.require_input_spec()
    if reference is not None:
        check_reference(reference, labels)

    records, data_description = select_records(data_dir, labels_csv, split, manifest, reference,
                                               sources=_model_sources(model, reference), source_name=source)
    records, ignored, notes = check_labels(records, labels, ignore_unknown)
    clock = time.perf_counter()
    evaluation = load_evaluation_set(records, spec, progress, upscale=upscale)
    stage_seconds["decode"] = time.perf_counter() - clock
    notes += evaluation.notes
    label_index = {label: position for position, label in enumerate(labels)}
    y_true = np.array([label_index[label] for label in evaluation.labels], dtype=np.int64)

    clock = time.perf_counter()
    probabilities, check_scores = predict_all_with_check(model, evaluation.images, progress)
    stage_seconds["predict"] = time.perf_counter() - clock
    lesion_check, non_lesions = _lesion_check_litert(model, check_scores, evaluation, data_dir, source, notes)
    description = model_info(model)
    fusion_inputs = (model.metadata.get("fusion"), model.metadata.get("referral"), data_description["labels_csv"],
                     evaluation.image_ids, y_true, labels)
    del model

    litert_metrics = dict(metrics.classification_metrics(y_true, probabilities, labels))

    latency: dict[str, dict[str, float]] = {}
    samples: dict[str, list[float]] = {}
    if client != "mediapipe":
        clock = time.perf_counter()
        for count in thread_counts:
            latency[str(count)], samples[str(count)] = measure_latency(model_path, evaluation.images, count, runs, warmup)
        stage_seconds["latency"] = time.perf_counter() - clock

    mediapipe_part: dict[str, Any] | None = None
    mediapipe_probs: np.ndarray | None = None
    if client != "litert":
        clock = time.perf_counter()
        mediapipe_part, mediapipe_probs, mediapipe_samples = _mediapipe_bench(
            model_path, evaluation, labels, y_true, probabilities, spec, progress)
        mediapipe_check = mediapipe_part.pop("not_a_lesion")
        if lesion_check is not None and non_lesions is not None and mediapipe_check is not None:
            from dermtool.bench.lesion_check import figures, mediapipe_scores

            lesion_check["mediapipe"] = figures(mediapipe_check, mediapipe_scores(model_path, labels, non_lesions),
                                                non_lesions, lesion_check["threshold"])
        stage_seconds["mediapipe"] = time.perf_counter() - clock
        if spec.resize_policy != "squash":
            notes.append(f"MediaPipe stretches the whole image to the input square, but this model was trained on "
                         f"images fitted with {spec.resize_policy!r}: an app must crop or pad before classify")

    if client == "mediapipe":
        assert mediapipe_part is not None and mediapipe_probs is not None
        results: dict[str, Any] = dict(metrics.classification_metrics(y_true, mediapipe_probs, labels))
        results["client"] = "mediapipe"
        results["pipeline"] = {"client": "litert", "preprocessing": mediapipe_part["pipeline_preprocessing"],
                               **litert_metrics}
        results["pipeline_drift"] = mediapipe_part["pipeline_drift"]
        results["input_images"] = mediapipe_part["input_images"]
        latency = mediapipe_part["latency_ms"]
        samples = {"mediapipe": mediapipe_samples}
        scored = mediapipe_probs
    else:
        results = dict(litert_metrics)
        results["client"] = "litert"
        scored = probabilities
    results["upscale"] = upscale

    results["model"] = description
    results["latency_ms"] = latency
    results["peak_rss_mb"] = peak_rss_mb()
    results["device"] = device_info()
    if client != "litert":
        from dermtool.bench.mediapipe_client import mediapipe_version

        results["device"]["client_runtime"] = f"mediapipe {mediapipe_version()} (ImageClassifier, CPU)"

    if reference is not None:
        clock = time.perf_counter()
        reference_probs = reference_probabilities(
            reference, evaluation, spec, labels, threads=max(thread_counts), progress=progress
        )
        stage_seconds["reference"] = time.perf_counter() - clock
        results["reference"] = {"path": str(reference), **metrics.classification_metrics(y_true, reference_probs, labels)}
        results["drift"] = dict(metrics.drift(scored, reference_probs, y_true, labels))
        if client == "both":
            assert mediapipe_part is not None
            mediapipe_part["drift"] = dict(metrics.drift(mediapipe_probs, reference_probs, y_true, labels))
    if client == "both":
        assert mediapipe_part is not None
        mediapipe_part.pop("pipeline_preprocessing")
        results["mediapipe"] = mediapipe_part
    _add_fusion(results, fusion_inputs, scored, mediapipe_probs if client == "both" else None, notes)
    results["lesion_check"] = lesion_check

    results["latency_samples_ms"] = samples
    results["reliability"] = _json_ready(metrics.reliability_curve(y_true, scored))
    data_description.update({"images": int(len(y_true)), "unreadable": evaluation.data["unreadable"]})
    results["data"] = data_description
    if ignore_unknown:
        results["ignored_unknown"] = ignored
    results["notes"] = notes
    stage_seconds["total"] = time.perf_counter() - started
    results["bench_seconds"] = stage_seconds
    return _json_ready(results)


def _add_fusion(results: dict[str, Any], inputs: tuple, scored: np.ndarray, mediapipe_probabilities: np.ndarray | None,
                notes: list[str]) -> None:
    """``results["fusion"]`` (and ``results["mediapipe"]["fusion"]`` with ``--client both``): the model's
    questionnaire fusion applied to the probabilities the bench scored, with the answers of DATA's metadata
    CSV (:func:`dermtool.evaluate.fusion_comparison`); a note when the model has a fusion but DATA no answers."""
    from dermtool.evaluate import fusion_comparison
    from dermtool.fusion.fitting import answers_of_csv

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
    from dermtool.bench.lesion_check import figures, litert_scores, make_non_lesions
    from dermtool.explain.lesion_check import NO_CHECK_MESSAGE, threshold_from_metadata

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
    from dermtool import metrics
    from dermtool.bench.mediapipe_client import classify_files, size_summary

    output = classify_files(model_path, evaluation.paths, labels, upscale=evaluation.upscale, progress=progress)
    if output["failed"]:
        path, reason = output["failed"][0]
        raise DermtoolError(f"{len(output['failed'])} image(s) could not be read again for MediaPipe ({path}: {reason})")
    probabilities = np.asarray(output["probabilities"], dtype=np.float64)
    from dermtool import check_finite_outputs

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
