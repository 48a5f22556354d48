#!/usr/bin/env python
"""The published pipeline on HAM10000: train -> export each variant -> bench each against the float run.

    python benchmarks/run_ham10000.py                                   # the full CPU configuration
    python benchmarks/run_ham10000.py --skip-train                      # reuse (or resume) runs/ham10000/run
    python benchmarks/run_ham10000.py --config configs/demo_cpu.toml --out runs/demo    # `make demo`
    python benchmarks/run_ham10000.py --quick                           # float + int8_ptq only

Stages (each timed; the wall times go into the summary and RESULTS.md):

1. **train** ``dermtool.train.trainer.train`` into ``OUT/run`` (a finished run is reused with
   ``--skip-train``; an interrupted one is resumed from its last checkpoint); then **fuse**
   (``dermtool fuse``: the questionnaire fusion, fitted when the run's data holds answers, so that the
   exports carry it; reused when ``RUN/fusion.json`` exists); then **lesion-check** (``dermtool lesion-check``:
   the "no skin lesion in this photo" head every export carries as its second output; reused when
   ``RUN/lesion_check.json`` exists).
2. **export** each variant with ``dermtool.export.tflite.export_model`` into ``OUT/models/VARIANT.tflite``
   (an existing file is reused unless ``--force-export``):

   ========================  ===========================================================
   float                     float32 TFLite (the on-device reference)
   fp16, dynamic             float16 weights / dynamic-range int8 weights
   int8_ptq                  full int8, post-training quantisation (uint8 in/out)
   int8_qat                  full int8 after quantisation-aware fine-tuning
   pruned50_qat_int8         50 % magnitude pruning, then QAT, then full int8
   ========================  ===========================================================

3. **bench** each variant with ``dermtool bench`` on the run's test split, against the run's float Keras
   model, with every ``--threads`` value; results to ``RESULTS_DIR/VARIANT.json``. The int8 variant is also
   benched as a phone app runs it, through MediaPipe Tasks' ImageClassifier on the original image files
   (``dermtool bench --client mediapipe``; ``RESULTS_DIR/int8_ptq.mediapipe.json``), unless ``--no-mediapipe``.
   A multi-source config (``[[data.sources]]``) benches every variant on each source's test split
   separately (``--data`` that source's folder): ``RESULTS_DIR/VARIANT.SOURCE.json`` and
   ``VARIANT.SOURCE.mediapipe.json``, one table row per variant and source.
4. **overhead**: the bench harness against a bare LiteRT loop on the int8 model (target: below 5 %).
5. **report**: one row per variant into the Markdown file between ``<!-- results:begin -->`` and
   ``<!-- results:end -->``, with the CPU, thread counts, date, stage times and the exact command.

Where results go: with the default ``--out runs/ham10000`` they are the published ones,
``benchmarks/results/`` and ``benchmarks/RESULTS.md``. With any other ``--out`` (the demo) they go to
``OUT/results/`` and ``OUT/RESULTS.md``, so a demo never overwrites the published numbers; ``--results-dir``
and ``--results-md`` choose explicitly.
"""

from __future__ import annotations

import argparse
import datetime as _datetime
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from dermtool import DermtoolError

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = Path("runs/ham10000")
PUBLISHED_RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
PUBLISHED_RESULTS_MD = REPO_ROOT / "benchmarks" / "RESULTS.md"
BEGIN_MARKER = "<!-- results:begin -->"
END_MARKER = "<!-- results:end -->"

#: variant name -> keyword arguments of export_model (mode, qat, prune sparsity)
VARIANTS: dict[str, dict[str, Any]] = {
    "float": {"mode": "float", "qat": False, "prune": 0.0},
    "fp16": {"mode": "fp16", "qat": False, "prune": 0.0},
    "dynamic": {"mode": "dynamic", "qat": False, "prune": 0.0},
    "int8_ptq": {"mode": "int8", "qat": False, "prune": 0.0},
    "int8_qat": {"mode": "int8", "qat": True, "prune": 0.0},
    "pruned50_qat_int8": {"mode": "int8", "qat": True, "prune": 0.5},
    # not in the default list: pruning then post-training int8 (no QAT), and the sparsity gzip needs
    # to reach 0.6x (benchmarks/bench_compression.py)
    "pruned50_int8": {"mode": "int8", "qat": False, "prune": 0.5},
    "pruned75_int8": {"mode": "int8", "qat": False, "prune": 0.75},
    # post-training int8 without the bias correction of the weight rounding (how it was exported until
    # 2026-11-26), and QAT started from the bias-corrected model (not the default: measured no better)
    "int8_ptq_uncorrected": {"mode": "int8", "qat": False, "prune": 0.0, "bias_correction": False},
    "int8_qat_bias_corrected": {"mode": "int8", "qat": True, "prune": 0.0, "bias_correction": True},
}
DEFAULT_VARIANTS = "float,int8_ptq,int8_qat,pruned50_qat_int8"
QUICK_VARIANTS = "float,int8_ptq"
#: The int8 variants, in order of preference: the first one run is also benched through MediaPipe.
INT8_VARIANTS = ("int8_ptq", "int8_qat", "pruned50_qat_int8")


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Train, export every variant and bench each one on HAM10000's test split.",
        epilog="Example: python benchmarks/run_ham10000.py --config configs/ham10000_cpu.toml --threads 1 2",
    )
    parser.add_argument("--config", default="configs/ham10000_cpu.toml", help="training configuration (TOML)")
    parser.add_argument("--data", default="../shared/data/ham10000", help="the HAM10000 folder (labelled images)")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="work folder: OUT/run, OUT/models (default %(default)s)")
    parser.add_argument("--skip-train", action="store_true",
                        help="reuse OUT/run if it is a finished run (an unfinished one is resumed)")
    parser.add_argument("--variants", default=None,
                        help=f"comma-separated, from {', '.join(VARIANTS)} (default {DEFAULT_VARIANTS})")
    parser.add_argument("--quick", action="store_true", help=f"only {QUICK_VARIANTS} (for a quick demo)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts to time (default 1 2)")
    parser.add_argument("--runs", type=int, default=200, help="timed invokes per thread count (default 200)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed invokes first (default 20)")
    parser.add_argument("--qat-epochs", type=int, default=None,
                        help="epochs of QAT fine-tuning (default: the run's [export] qat_epochs)")
    parser.add_argument("--prune-epochs", type=int, default=None,
                        help="epochs of pruning fine-tuning (default: the run's [export] prune_epochs)")
    parser.add_argument("--force-export", action="store_true", help="export again even if OUT/models/VARIANT.tflite exists")
    parser.add_argument("--results-dir", default=None, help="where VARIANT.json go (see the module docstring)")
    parser.add_argument("--results-md", default=None, help="the Markdown file with the results markers")
    parser.add_argument("--overhead-runs", type=int, default=100, help="invokes per loop of the harness-overhead check (20 alternating loops each)")
    parser.add_argument("--no-mediapipe", action="store_true",
                        help="do not bench the int8 variant through MediaPipe's ImageClassifier")
    arguments = parser.parse_args(argv)
    names = arguments.variants or (QUICK_VARIANTS if arguments.quick else DEFAULT_VARIANTS)
    arguments.variant_list = [name.strip() for name in names.split(",") if name.strip()]
    unknown = [name for name in arguments.variant_list if name not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    published = Path(arguments.out).resolve() == (REPO_ROOT / DEFAULT_OUT).resolve() or \
        Path(arguments.out).resolve() == DEFAULT_OUT.resolve()
    out = Path(arguments.out)
    arguments.results_dir = Path(arguments.results_dir or (PUBLISHED_RESULTS_DIR if published else out / "results"))
    arguments.results_md = Path(arguments.results_md or (PUBLISHED_RESULTS_MD if published else out / "RESULTS.md"))
    return arguments


class StageTimer:
    """Wall time of each named stage, printed as it ends."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def run(self, name: str, function: Callable[[], Any]) -> Any:
        print(f"== {name}", flush=True)
        start = time.perf_counter()
        try:
            return function()
        finally:
            self.seconds[name] = round(time.perf_counter() - start, 2)
            print(f"== {name}: {self.seconds[name]:.1f} s", flush=True)


# ------------------------------------------------------------------------------------------------ stages
def train_stage(config_path: str, data_dir: str, run_dir: Path, skip_train: bool) -> Path:
    """Train into ``run_dir`` (or reuse / resume it); returns the run folder path."""
    from dermtool.config import load_config
    from dermtool.run import RunFolder

    if skip_train and run_dir.exists():
        try:
            RunFolder(run_dir)
            print(f"reusing the finished run {run_dir}", flush=True)
            return run_dir
        except DermtoolError:
            print(f"{run_dir} is not finished: resuming it", flush=True)
    from dermtool.train.trainer import train

    config = load_config(config_path)
    if not config.data.sources:  # a multi-source config names its own folders
        config = load_config(config_path, overrides=[f"data.data_dir={data_dir}"])
    resume = run_dir.exists() and any(run_dir.iterdir())
    train(config, run_dir, resume=resume, progress=True)
    return run_dir


def fuse_stage(run_dir: Path) -> dict | None:
    """``dermtool fuse`` on the run (reused when ``RUN/fusion.json`` exists), so that every export carries the
    questionnaire fusion; skipped with a note when the run's data holds no answers."""
    from dermtool.fusion.fitting import FUSION_FILE, REPORT_FILE, fit_run_fusion, format_report

    if (run_dir / FUSION_FILE).exists():
        print(f"reusing {run_dir / FUSION_FILE}", flush=True)
        report_path = run_dir / REPORT_FILE
        return json.loads(report_path.read_text(encoding="utf-8")) if report_path.exists() else None
    try:
        _, report = fit_run_fusion(run_dir, progress=True)
    except DermtoolError as error:
        print(f"no questionnaire fusion: {error}", flush=True)
        return None
    print(format_report(report), flush=True)
    return report


def lesion_check_stage(run_dir: Path) -> None:
    """``dermtool lesion-check`` on the run (reused when ``RUN/lesion_check.json`` exists), so that every export
    carries the lesion check as its second output."""
    from dermtool.prediction.lesion_check import run_file
    from dermtool.prediction.lesion_check_fit import fit_for_run

    if run_file(run_dir).exists():
        print(f"reusing {run_file(run_dir)}", flush=True)
        return
    check = fit_for_run(run_dir, progress=True)
    print(f"lesion check: reject at P(not_a_lesion) >= {check.threshold:.3f} (written to {run_file(run_dir)})",
          flush=True)


def fusion_lines(report: dict | None) -> list[str]:
    """The fusion's test figures per source (image only -> fused), from ``RUN/fusion_report.json``."""
    if not report:
        return []
    lines = []
    for source, entry in report.get("splits", {}).get("test", {}).items():
        image, fused = entry["image_only"], entry["fused"]
        lines.append(f"- Questionnaire fusion (float model), test `{source}` ({image['images']} images, "
                     f"{entry['images_with_answers']} with answers): balanced accuracy "
                     f"{_value(image['balanced_accuracy'])} image only -> {_value(fused['balanced_accuracy'])} fused; "
                     f"with every answer unknown {_value(entry['fused_all_unknown']['balanced_accuracy'])}.")
    return lines


def export_stage(run_dir: Path, data_dir: str, variant: str, model_path: Path, force: bool,
                 qat_epochs: int | None = None, prune_epochs: int | None = None) -> dict | None:
    """Export one variant (settings of the run's [export] config section unless given; gate measured, not
    enforced).

    Returns the export's summary dict (``ExportResult.to_dict()``), or ``None`` when an existing file is reused.
    The accuracy gate is measured and recorded but not enforced: a variant that would fail it is exactly
    what this benchmark must show, not hide.
    """
    if model_path.exists() and not force:
        print(f"reusing {model_path}", flush=True)
        return None
    from dermtool.export.tflite import export_model
    from dermtool.run import RunFolder

    settings = VARIANTS[variant]
    export_config = RunFolder(run_dir).config.export
    result = export_model(
        run_dir,
        model_path,
        mode=settings["mode"],
        qat=settings["qat"],
        prune=settings["prune"],
        bias_correction=settings.get("bias_correction", None if export_config.bias_correction else False),
        representative_images=export_config.representative_images,
        qat_epochs=qat_epochs if qat_epochs is not None else export_config.qat_epochs,
        prune_epochs=prune_epochs if prune_epochs is not None else export_config.prune_epochs,
        distill=export_config.distill,
        gate=False,
        max_balanced_accuracy_drop=export_config.gate_max_balanced_accuracy_drop,
        min_agreement=export_config.gate_min_agreement,
        overwrite=True,
        data_dir=data_dir,
        progress=True,
    )
    print(result.summary(), flush=True)
    return result.to_dict()


def bench_stage(model_path: Path, data_dir: str, run_dir: Path, threads: list[int], runs: int, warmup: int,
                json_path: Path, client: str = "litert", source: str = "") -> dict:
    """``dermtool bench`` in a fresh process (so that training's memory and threads do not touch the numbers).

    ``client="mediapipe"``: through MediaPipe's ImageClassifier on the original files (no thread counts).
    ``source``: the multi-source run's source that ``data_dir`` is (``--source``; one kind of a shared folder)."""
    command = [sys.executable, "-m", "dermtool.cli.main", "bench", str(model_path), "--data", str(data_dir),
               "--split", "test", "--reference", str(run_dir), "--runs", str(runs), "--warmup", str(warmup),
               "--json", str(json_path)]
    if source:
        command += ["--source", source]
    if client != "litert":
        command += ["--client", client]
    else:
        for count in threads:
            command += ["--threads", str(count)]
    completed = subprocess.run(command)
    if completed.returncode != 0:
        raise DermtoolError(f"bench of {model_path} failed (exit {completed.returncode}): {shlex.join(command)}")
    return json.loads(json_path.read_text(encoding="utf-8"))


OVERHEAD_CODE = """
import json, sys
from dermtool.bench.runner import _model_sources, harness_overhead, load_evaluation_set, select_records
from dermtool.runtime import TFLiteModel
model_path, data_dir, run_dir, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
sources = _model_sources(TFLiteModel(model_path), run_dir)  # a multi-source run: that folder's test rows
records, _ = select_records(data_dir, split="test", reference=run_dir, sources=sources)
images = load_evaluation_set(records[:32], TFLiteModel(model_path).require_input_spec(), progress=False).images
result = harness_overhead(model_path, images, runs=runs, threads=1, repeats=20)
result["model"] = model_path
print(json.dumps(result))
"""


def overhead_stage(model_path: Path, data_dir: str, run_dir: Path, runs: int) -> dict:
    """Harness vs bare LiteRT loop on the int8 model, 1 thread, on real test images, in a fresh process."""
    completed = subprocess.run(
        [sys.executable, "-c", OVERHEAD_CODE, str(model_path), str(data_dir), str(run_dir), str(runs)],
        capture_output=True, text=True,
    )
    if completed.returncode != 0:
        raise DermtoolError(f"the overhead check failed: {completed.stderr.strip().splitlines()[-1:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------------------------- report
def _milliseconds(results: dict, threads: int, key: str) -> str:
    entry = results.get("latency_ms", {}).get(str(threads))
    return f"{entry[key]:.2f}" if entry else "-"


def _value(value: Any, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def bench_sources(config_path: str, data_dir: str) -> dict[str, str]:
    """``{source name: data folder}`` to bench on: each ``[[data.sources]]`` of a multi-source config, or
    ``{"": data_dir}`` for a single-source one (results keyed ``VARIANT`` as before)."""
    from dermtool.config import load_config

    sources = load_config(config_path).data.sources
    if not sources:
        return {"": data_dir}
    return {source.name: source.data_dir for source in sources}


def result_key(variant: str, source: str = "", client: str = "litert") -> str:
    """``VARIANT[.SOURCE][.mediapipe]``: the name of a result (its JSON file without ``.json``)."""
    return ".".join([variant] + ([source] if source else []) + (["mediapipe"] if client == "mediapipe" else []))


def results_table(all_results: dict[str, dict], threads: list[int]) -> list[str]:
    """One row per result: per variant, or per variant and source (a ``source`` column) with several sources;
    a MediaPipe result is the row ``VARIANT (MediaPipe)`` (its latency is per image, in the notes)."""
    with_source = any(results.get("source") for results in all_results.values())
    header = ["variant"] + (["source"] if with_source else []) + [
        "size (MB)", "gzip (MB)", "bal. acc.", "macro F1", "mel recall", "ECE", "top-1 agr."]
    for count in threads:
        header.append(f"p50 / p99 ms ({count} thr)")
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    for key, results in all_results.items():
        model = results["model"]
        melanoma = results.get("per_class", {}).get("mel", {}).get("recall")
        variant = results.get("variant", key)
        if results.get("client") == "mediapipe":
            variant += " (MediaPipe)"
        row = [
            variant,
            *([results.get("source") or "-"] if with_source else []),
            f"{model['bytes'] / 1e6:.2f}",
            f"{model['gzip_bytes'] / 1e6:.2f}",
            _value(results.get("balanced_accuracy")),
            _value(results.get("macro_f1")),
            _value(melanoma),
            _value(results.get("ece")),
            _value(results.get("drift", {}).get("top1_agreement")),
        ]
        for count in threads:
            row.append(f"{_milliseconds(results, count, 'p50')} / {_milliseconds(results, count, 'p99')}")
        lines.append("| " + " | ".join(row) + " |")
    return lines


def _reference_line(results: dict, summary: dict) -> str:
    reference = results.get("reference", {})
    return (f"Test split of {results['data'].get('path')} ({results['n']} images, lesion-grouped split of the run); "
            f"reference: the float Keras model of `{summary['run']}` (balanced accuracy "
            f"{_value(reference.get('balanced_accuracy'))}, macro F1 {_value(reference.get('macro_f1'))}, "
            f"melanoma recall {_value(reference.get('per_class', {}).get('mel', {}).get('recall'))}).")


def mediapipe_lines(all_results: dict[str, dict]) -> list[str]:
    """One note per MediaPipe result: agreement with dermtool's pipeline and the time per image."""
    lines = []
    for key, results in all_results.items():
        if results.get("client") != "mediapipe":
            continue
        drift = results.get("pipeline_drift", {})
        entry = results.get("latency_ms", {}).get("mediapipe", {})
        sizes = results.get("input_images", {})
        lines.append(
            f"- `{key}`: MediaPipe Tasks ImageClassifier on the original files ({sizes.get('median_width', '?')}x"
            f"{sizes.get('median_height', '?')} px median): top-1 agreement with dermtool's pipeline (LiteRT on "
            f"Pillow-resized images) {_value(drift.get('top1_agreement'), 4)}, balanced accuracy "
            f"{_value(results.get('balanced_accuracy'))} ({drift.get('delta_balanced_accuracy', 0) * 100:+.1f} points "
            f"against the pipeline); classify per image p50 {_value(entry.get('p50'), 2)} ms, "
            f"p90 {_value(entry.get('p90'), 2)} ms.")
    return lines


def results_section(all_results: dict[str, dict], summary: dict) -> str:
    firsts: dict[str, dict] = {}
    for results in all_results.values():
        firsts.setdefault(results.get("source") or "", results)
    references = [_reference_line(results, summary) for results in firsts.values()]
    lines = [
        BEGIN_MARKER,
        *([references[0]] if len(references) == 1 else [f"- {line}" for line in references]),
        "",
        *results_table(all_results, summary["threads"]),
        "",
        *mediapipe_lines(all_results),
        *fusion_lines(summary.get("fusion")),
        f"- CPU: {summary['device']['cpu']} ({summary['device']['threads']} hardware threads); "
        f"thread counts timed: {', '.join(map(str, summary['threads']))}; {summary['runs']} timed runs each "
        f"after {summary['warmup']} warm-up runs; LiteRT with XNNPACK.",
        f"- Date: {summary['date']}",
        f"- Command: `{summary['command']}`",
    ]
    overhead = summary.get("overhead")
    if overhead:
        lines.append(
            f"- Harness overhead ({Path(overhead['model']).name}, 1 thread, best of {overhead['repeats']} alternating "
            f"loops of {overhead['runs']} invokes): CPU time per invoke {overhead['harness_cpu_ms']:.3f} ms in the "
            f"bench harness vs {overhead['bare_cpu_ms']:.3f} ms in a bare LiteRT loop = "
            f"{overhead['overhead'] * 100:+.1f} % (target < 5 %); wall-clock medians {overhead['harness_ms']:.3f} "
            f"vs {overhead['bare_ms']:.3f} ms ({overhead['overhead_wall'] * 100:+.1f} %)."
        )
    stages = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in summary["stage_seconds"].items())
    lines += [f"- Wall time per stage: {stages}.", END_MARKER]
    return "\n".join(lines)


def write_results_markdown(path: Path, section: str) -> None:
    """Replace the text between the markers of ``path`` (created, or the markers appended, if missing)."""
    from dermtool.io_utils import atomic_write_text

    if path.exists():
        text = path.read_text(encoding="utf-8")
    else:
        text = "# dermtool benchmark results\n\nWritten by `benchmarks/run_ham10000.py`.\n\n"
    if BEGIN_MARKER in text and END_MARKER in text:
        before = text[: text.index(BEGIN_MARKER)]
        after = text[text.index(END_MARKER) + len(END_MARKER):]
        text = before + section + after
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    atomic_write_text(path, text)


# ------------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    out = Path(arguments.out)
    run_dir = out / "run"
    models_dir = out / "models"
    timer = StageTimer()
    command = "python " + " ".join(shlex.quote(part) for part in [sys.argv[0], *(argv if argv is not None else sys.argv[1:])])
    try:
        timer.run("train", lambda: train_stage(arguments.config, arguments.data, run_dir, arguments.skip_train))
        fusion_report = timer.run("fuse", lambda: fuse_stage(run_dir))
        timer.run("lesion-check", lambda: lesion_check_stage(run_dir))
        models: dict[str, Path] = {}
        exports: dict[str, dict | None] = {}
        for variant in arguments.variant_list:
            models[variant] = models_dir / f"{variant}.tflite"
            exports[variant] = timer.run(
                f"export {variant}",
                lambda variant=variant: export_stage(run_dir, arguments.data, variant, models[variant],
                                                     arguments.force_export, arguments.qat_epochs,
                                                     arguments.prune_epochs),
            )
        from dermtool.bench.runner import device_info
        from dermtool.io_utils import atomic_write_json

        all_results: dict[str, dict] = {}
        sources = bench_sources(arguments.config, arguments.data)
        int8_variant = next((name for name in INT8_VARIANTS if name in models), None)
        for variant, model_path in models.items():
            clients = ["litert"] + (["mediapipe"] if variant == int8_variant and not arguments.no_mediapipe else [])
            for source, data_dir in sources.items():
                for client in clients:
                    key = result_key(variant, source, client)
                    json_path = arguments.results_dir / f"{key}.json"
                    results = timer.run(
                        f"bench {key}",
                        lambda model_path=model_path, json_path=json_path, data_dir=data_dir, client=client: bench_stage(
                            model_path, data_dir, run_dir, arguments.threads, arguments.runs, arguments.warmup,
                            json_path, client, source),
                    )
                    results["variant"] = variant
                    results["source"] = source or None
                    results["export"] = exports[variant]
                    atomic_write_json(json_path, results)
                    all_results[key] = results
        overhead = None
        if int8_variant:
            overhead = timer.run("overhead check",
                                 lambda: overhead_stage(models[int8_variant], next(iter(sources.values())), run_dir,
                                                        arguments.overhead_runs))
            print(f"harness overhead: {overhead['overhead'] * 100:+.1f} % CPU time per invoke "
                  f"({overhead['harness_cpu_ms']:.3f} ms vs {overhead['bare_cpu_ms']:.3f} ms bare), "
                  f"{overhead['overhead_wall'] * 100:+.1f} % wall-clock median", flush=True)
    except DermtoolError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 2
    summary = {
        "command": command,
        "date": _datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "config": arguments.config,
        "run": str(run_dir),
        "variants": list(models),
        "results": list(all_results),
        "sources": [name for name in sources if name],
        "threads": arguments.threads,
        "runs": arguments.runs,
        "warmup": arguments.warmup,
        "device": device_info(),
        "overhead": overhead,
        "stage_seconds": timer.seconds,
        "fusion": fusion_report,
    }
    atomic_write_json(arguments.results_dir / "summary.json", summary)
    write_results_markdown(arguments.results_md, results_section(all_results, summary))
    print(f"wrote {arguments.results_dir}/ and {arguments.results_md}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
