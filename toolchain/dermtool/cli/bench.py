"""``dermtool bench``: accuracy, drift against the float model, latency and size of a .tflite model.

Heavy imports (numpy work, LiteRT, matplotlib, TensorFlow for a run-folder reference) happen inside the
command function, so ``dermtool bench --help`` stays fast.
"""

from __future__ import annotations

import sys

import click

from dermtool.cli.output import JsonOutput, json_option

EPILOG = """\b
Examples:
  # every labelled image of a folder, 1 thread
  dermtool bench lite0_int8.tflite --data ~/data/ham10000
\b
  # the run's test split, drift against its float model, 1 and 2 threads, all outputs
  dermtool bench lite0_int8.tflite --data ~/data/ham10000 --split test \\
      --reference runs/lite0 --threads 1 --threads 2 --json int8.json --md int8.md --plots plots/
\b
  # int8 against the float .tflite on the rows of a split file
  dermtool bench lite0_int8.tflite --data DATA --split test --manifest split.csv \\
      --reference lite0_float.tflite
\b
  # what a phone app computes: MediaPipe Tasks' ImageClassifier on the original files,
  # compared with dermtool's pipeline (pipeline_drift) and with the float run (drift)
  dermtool bench lite0_int8.tflite --data ~/data/ham10000 --split test \\
      --reference runs/lite0 --client mediapipe --json int8.mediapipe.json
\b
  # the same on 4x up-scaled copies (a high-resolution frame cropped to the lesion)
  dermtool bench lite0_int8.tflite --data ~/data/pad_ufes_20 --split test \\
      --reference runs/multisource --client both --upscale 4
\b
  # one kind of photo of a folder that two sources read (MILK10k's clinical close-ups)
  dermtool bench model.tflite --data ~/data/milk10k --source milk10k_clinical --split test \\
      --reference runs/multisource_cpu --client mediapipe
\b
Latency: for each --threads value, a fresh LiteRT interpreter (XNNPACK on) is created (init), invoked
once (first), then --warmup untimed and --runs timed invokes on real preprocessed images; percentiles
p50/p90/p99 are over the timed runs. The images are decoded once with the model's own input contract
(read from its metadata) and reused for everything.
\b
--client mediapipe hands each decoded image at its own size to MediaPipe's ImageClassifier (it resizes
and normalises by itself, from the model's metadata) and reports MediaPipe's answers under the same keys,
plus pipeline_drift (against LiteRT on dermtool-preprocessed images) and latency_ms.mediapipe: the time
of each classify call, one per image (--threads, --runs and --warmup do not apply to it).
--client both: the LiteRT bench, with MediaPipe's part under "mediapipe".
"""


@click.command("bench", epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("model", metavar="MODEL.tflite", type=click.Path(dir_okay=True, path_type=str))
@click.option("--data", "data_dir", required=True, metavar="DATA",
              help="Folder of labelled images (any of the three layouts; see `dermtool data check`).")
@click.option("--labels", "labels_csv", metavar="CSV", default=None, help="The label CSV of DATA, if not found automatically.")
@click.option("--split", default=None, metavar="NAME",
              help="Evaluate only this split (train|val|test) of --manifest or of the --reference run's split.csv.")
@click.option("--manifest", default=None, metavar="SPLIT.csv", help="Split file (image_id,label,group,split) for --split.")
@click.option("--reference", default=None, metavar="RUN_or_MODEL",
              help="Compare against a run folder (its float Keras model) or another .tflite: adds 'reference' and 'drift'.")
@click.option("--threads", "threads", type=int, multiple=True, metavar="N",
              help="Interpreter threads; repeat for several latency entries (--threads 1 --threads 2). Default 1.")
@click.option("--runs", type=int, default=200, show_default=True, help="Timed invokes per thread count.")
@click.option("--warmup", type=int, default=20, show_default=True, help="Untimed invokes before timing.")
@json_option("the results (bench --json schema)")
@click.option("--md", "markdown_path", default=None, metavar="OUT", help="Write a Markdown report here.")
@click.option("--plots", "plots_dir", default=None, metavar="DIR",
              help="Write confusion_matrix.png, reliability.png and latency_histogram.png into DIR.")
@click.option("--client", type=click.Choice(["litert", "mediapipe", "both"]), default="litert", show_default=True,
              help="Who runs the model: LiteRT on dermtool-preprocessed images, MediaPipe's ImageClassifier on the "
                   "original images (as a phone app), or both.")
@click.option("--upscale", type=float, default=1.0, show_default=True, metavar="N",
              help="Bench copies of the images enlarged N times (Pillow LANCZOS, in memory), e.g. 4: a "
                   "high-resolution camera frame cropped to the lesion.")
@click.option("--ignore-unknown", is_flag=True, help="Skip images whose label the model does not know (default: error).")
@click.option("--source", "source_name", metavar="NAME",
              help="Which source of a multi-source model DATA is (its selection and label map apply); needed "
                   "where several sources read one folder, e.g. --source milk10k_clinical.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars and no table (errors still go to stderr).")
def bench(
    model: str,
    data_dir: str,
    labels_csv: str | None,
    split: str | None,
    manifest: str | None,
    reference: str | None,
    threads: tuple[int, ...],
    runs: int,
    warmup: int,
    json_out: str | None,
    markdown_path: str | None,
    plots_dir: str | None,
    client: str,
    upscale: float,
    ignore_unknown: bool,
    source_name: str | None,
    quiet: bool,
) -> None:
    """Bench MODEL.tflite: accuracy, calibration, drift against a reference, latency, size and memory.

    Prints a table (melanoma first in every per-class listing); --json, --md and --plots write the
    same results to files.
    """
    from dermtool.bench.report import format_table, to_markdown
    from dermtool.bench.runner import BenchOptions, run_bench
    from dermtool.io_utils import atomic_write_text

    from dermtool.files import check_output_folder, check_output_path

    output = JsonOutput(json_out)
    if markdown_path:
        check_output_path(markdown_path, "--md", "bench.md", stdout_ok=False)
    if plots_dir:
        check_output_folder(plots_dir, "--plots")
    with output.capture():
        options = BenchOptions(split=split, manifest=manifest, reference=reference, threads=threads or (1,), runs=runs,
                               warmup=warmup, labels_csv=labels_csv, ignore_unknown=ignore_unknown,
                               progress=not quiet, client=client, upscale=upscale, source=source_name)
        results = run_bench(model, data_dir, options)
    for note in results.get("notes", []):
        output.note(f"Note: {note}")
    if not quiet:
        output.report(format_table(results))  # left out with --json -
    output.write(results)
    if markdown_path:
        atomic_write_text(markdown_path, to_markdown(results))
        click.echo(f"Wrote {markdown_path}", err=True)
    if plots_dir:
        from dermtool.bench.report import write_plots

        for path in write_plots(results, plots_dir):
            click.echo(f"Wrote {path}", err=True)
    sys.stdout.flush()
