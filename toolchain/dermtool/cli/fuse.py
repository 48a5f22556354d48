"""``dermtool fuse``: fit a run's fusion of the image with the questionnaire's answers.

Thin: :func:`dermtool.fusion.fitting.fit_run_fusion` does the work (imported inside the command).
"""

from __future__ import annotations

from pathlib import Path

import click

from dermtool.cli.output import JsonOutput, json_option


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("run_dir", metavar="RUN", type=click.Path(file_okay=False, path_type=Path))
@click.option("--l2", type=float, default=0.001, show_default=True,
              help="L2 penalty on the answers' weights (larger: answers move the probabilities less).")
@click.option("--data", "data_dir", type=click.Path(file_okay=False, path_type=Path),
              help="The run's image folder, when it is not where the run's config says (single-source runs).")
@json_option("the report (image-only and fused figures per split and source)")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def fuse(run_dir: Path, l2: float, data_dir: Path | None, json_out: str | None, quiet: bool) -> None:
    """Fit how the health worker's answers change the image model's probabilities.

    The questions (every one may be left unknown): age, sex, site (head_neck, trunk, arm, hand, leg, foot,
    genital), and yes/no: itch, grew, hurt, changed, bleed, elevation. Their answers are read from the
    metadata CSV of each of the run's sources (PAD-UFES-20's columns as they are; HAM10000's age, sex and
    localization).

    The fusion is a small logistic layer applied after the unchanged image model: fitted on the training
    split (each source weighing the same), calibrated on validation, with its own referral threshold chosen
    on validation for sensitivity >= 0.90 on each source. Writes RUN/fusion.json and RUN/fusion_report.json;
    `dermtool export` then carries the fusion in the model's metadata, and `dermtool predict --answer`
    applies it. Prints image-only and fused figures side by side per split and source.

    \b
    Examples:
      dermtool fuse runs/multisource_cpu
      dermtool fuse runs/multisource_cpu --json - | jq '.splits.test.pad_ufes_20.fused.balanced_accuracy'

    dermtool is a decision-support research tool, not a medical device.
    """
    from dermtool.fusion.fitting import fit_run_fusion, format_report

    output = JsonOutput(json_out)
    with output.capture():
        fusion, report = fit_run_fusion(run_dir, l2=l2, data_dir=data_dir, progress=not quiet)
    answered = fusion.fitted_on or {}
    output.report(f"Run: {run_dir}  fusion fitted on {answered.get('train_images_with_answers')} answered training "
                  f"images of {answered.get('train_images')}; written to {run_dir / 'fusion.json'}")
    output.report(format_report(report))
    output.write(report)
