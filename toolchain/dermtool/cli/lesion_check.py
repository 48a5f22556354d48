"""``dermtool lesion-check``: fit a run's lesion check, the second head that says "no skin lesion in this photo".

Thin: :func:`dermtool.prediction.lesion_check_fit.fit_for_run` does the work (imported inside the command).
"""

from __future__ import annotations

from pathlib import Path

import click

from dermtool.cli.output import JsonOutput, json_option


def format_check(check: object) -> list[str]:
    """A few lines: the threshold, and the figures per left-out source."""
    lines = [f"threshold: reject when P(not_a_lesion) >= {check.threshold:.3f} (L2 {check.fitting.get('l2')})"]
    left_out = check.figures.get("leave_one_source_out_validation") or {}
    if left_out:
        lines.append("left-out source (validation split)    lesions rejected   skin crops caught   generated caught")
        for source, figures in left_out.items():
            lines.append(f"  {source:<34} {figures['false_rejection']:>8.1%} {figures['skin_crops_caught']:>19.1%} "
                         f"{figures['generated_caught']:>18.1%}")
    return lines


@click.command("lesion-check", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("run_dir", metavar="RUN", type=click.Path(file_okay=False, path_type=Path))
@click.option("--data", "data_dir", type=click.Path(file_okay=False, path_type=Path),
              help="The run's image folder, when it is not where the run's config says (single-source runs).")
@json_option("the fitted check (RUN/lesion_check.json's content)")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
def lesion_check(run_dir: Path, data_dir: Path | None, json_out: str | None, quiet: bool) -> None:
    """Fit the lesion check of a trained run: a second head on the model's pooled features that says
    whether the photo shows a skin lesion at all.

    Lesion photos of every training source (training split) against what a health worker may send by
    mistake: generated non-lesion images (blank, overexposed, noise, text, patterns, everyday photos) and
    photos of skin with no lesion in frame (crops away from the lesion mask in HAM10000, the corners of
    MILK10k's and PAD-UFES-20's photos). Its L2 strength and threshold are chosen leaving each source out:
    fitted on the others, the left-out source's validation lesions must be rejected at most 3 % of the time,
    catching as many negatives as possible; then it is fitted on every source. About ten minutes on two CPU
    cores for a four-source run.

    Writes RUN/lesion_check.json (plain numbers). `dermtool export` then builds the check into the .tflite
    as its second output `lesion_check` (categories lesion, not_a_lesion; MediaPipe returns it as a second
    classification head) with its threshold in dermtool.json, and `dermtool predict` rejects a photo with
    outcome not_a_lesion when P(not_a_lesion) >= the threshold.

    \b
    Examples:
      dermtool lesion-check runs/multisource_cpu/run
      dermtool lesion-check runs/multisource_cpu/run --json - | jq .threshold

    dermtool is a decision-support research tool, not a medical device.
    """
    from dermtool.prediction.lesion_check_fit import fit_for_run

    output = JsonOutput(json_out)
    with output.capture():
        check = fit_for_run(run_dir, data_dir=data_dir, progress=not quiet)
    output.report(f"Run: {run_dir}  lesion check written to {run_dir / 'lesion_check.json'}")
    output.report("\n".join(format_check(check)))
    output.write(check.to_dict())
