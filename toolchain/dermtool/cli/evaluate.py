"""``dermtool evaluate``: the contract metrics of a trained run on a labelled folder.

Thin: :func:`dermtool.evaluate.evaluate` does the work (imported inside the command).
"""

from __future__ import annotations

from pathlib import Path

import click

from dermtool.cli.output import JsonOutput, json_option


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("run_dir", metavar="RUN", type=click.Path(file_okay=False, path_type=Path))
@click.option("--data", "data_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Labelled image folder (any of the three layouts).")
@click.option("--split", type=click.Choice(["train", "val", "test"]),
              help="Only the images of this split in RUN/split.csv [default: every labelled image in DATA].")
@click.option("--labels", "labels_csv", type=click.Path(dir_okay=False, path_type=Path),
              help="The label CSV, when DATA holds several or it lies elsewhere.")
@json_option("the metrics (docs/contract.md's metric keys, plus temperature and skipped images)")
@click.option("--ignore-unknown", is_flag=True, help="Leave out images whose label the model does not know.")
@click.option("--source", "source_name", metavar="NAME",
              help="Which source of a multi-source run DATA is (its selection and label map apply); needed "
                   "where several sources read one folder, e.g. --source milk10k_clinical.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def evaluate(run_dir: Path, data_dir: Path, split: str | None, labels_csv: Path | None, json_out: str | None,
             ignore_unknown: bool, source_name: str | None, quiet: bool) -> None:
    """Metrics of a trained float model on a labelled folder.

    Images are prepared with the run's input spec, probabilities calibrated with the run's temperature.
    Prints accuracy, balanced accuracy (the ISIC 2018 metric), macro F1, macro one-vs-rest AUC, ECE
    (15 bins), NLL, and precision / recall / F1 / support per class.

    A run with a questionnaire fusion (`dermtool fuse`) on a DATA folder whose metadata CSV holds answers
    (age, sex, site, itch, grew, hurt, changed, bleed, elevation, or PAD-UFES-20's and HAM10000's columns)
    is also measured with the answers: image only, fused, and fused with every answer unknown, side by
    side (--json: the "fusion" key).

    \b
    Examples:
      dermtool evaluate runs/lite0 --data ~/data/ham10000 --split test
      dermtool evaluate runs/lite0 --data isic_test/ --labels isic_test/GroundTruth.csv --json test.json
      dermtool evaluate runs/lite0 --data other_clinic/ --ignore-unknown
      dermtool evaluate runs/ms --data ~/data/milk10k --source milk10k_clinical --split test
      dermtool evaluate runs/lite0 --data DATA --split test --json - | jq .balanced_accuracy
    """
    from dermtool.evaluate import evaluate as run_evaluation
    from dermtool.evaluate import format_fusion_table, format_metrics_table
    from dermtool.fusion.fitting import FUSION_FILE

    output = JsonOutput(json_out)
    with output.capture():
        result = run_evaluation(run_dir, data_dir, split=split, labels_csv=labels_csv, ignore_unknown=ignore_unknown,
                                progress=not quiet, source=source_name)
    where = f"split {split!r} of {run_dir / 'split.csv'}" if split else "every labelled image"
    output.report(f"Run: {run_dir}  Data: {data_dir} ({where}); temperature {result['temperature']:.3f}")
    if result["skipped_images"]:
        output.note(f"Skipped {len(result['skipped_images'])} unreadable image(s), e.g. "
                    f"{result['skipped_images'][0]['path']} ({result['skipped_images'][0]['reason']})")
    if result.get("ignored_unknown"):
        ignored = ", ".join(f"{label} {count}" for label, count in result["ignored_unknown"].items())
        output.note(f"Left out images with labels the model does not know: {ignored}")
    output.report(format_metrics_table(result))
    if result.get("fusion"):
        output.report("")
        output.report(format_fusion_table(result["fusion"]))
    elif (run_dir / FUSION_FILE).is_file():
        output.note(f"No fused figures: the metadata CSV of {data_dir} holds no questionnaire answers for these images")
    output.write(result)
