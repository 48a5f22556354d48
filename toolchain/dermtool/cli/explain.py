"""``dermtool explain``: a Grad-CAM overlay of one image, or (``--evaluate``) how well the maps point at lesions.

Heavy imports (TensorFlow, matplotlib) happen inside the command function, so ``--help`` stays fast.
"""

from __future__ import annotations

import sys

import click

from dermtool.cli.output import JsonOutput, check_output_file, json_option

EPILOG = """\b
Examples:
  # the regions behind the predicted class, as a PNG with colour bar and caption
  dermtool explain lesion.jpg --model runs/lite0 --out lesion_gradcam.png
\b
  # the regions behind the melanoma score, whatever the prediction
  dermtool explain lesion.jpg --model runs/lite0 --out mel.png --class mel
\b
  # do the maps point at the lesion? (pointing game and energy inside HAM10000's masks)
  dermtool explain --evaluate --model runs/lite0 --data ~/data/ham10000 \\
      --masks ~/data/ham10000/masks --split test --limit 300 --json gradcam_eval.json
\b
Grad-CAM needs the gradients of the float model: --model is a run folder, not a .tflite. The overlay is
written only where --out says; the input image itself is never stored.
"""


def _on_terminal() -> bool:
    return sys.stderr.isatty()


def _progress(text: str) -> None:
    """A progress line on stderr, on a terminal only (as the progress bars): a script's stderr holds only errors."""
    if _on_terminal():
        click.echo(text, err=True)


@click.command("explain", epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("image", required=False, metavar="IMAGE")
@click.option("--model", "model_path", required=True, metavar="RUN", help="A run folder written by `dermtool train`.")
@click.option("--out", "out_path", default=None, metavar="OVERLAY.png", help="Where to write the overlay PNG.")
@click.option("--class", "class_label", default=None, metavar="LABEL",
              help="Explain this class (code such as mel, or its name) instead of the predicted one.")
@click.option("--target", type=click.Choice(["contrastive", "logit"]), default="contrastive", show_default=True,
              help="Score explained: the class logit minus the mean logit (what the probabilities depend on), "
              "or the raw logit (original Grad-CAM).")
@click.option("--evaluate", is_flag=True, help="Measure localisation on a split instead of explaining one image.")
@click.option("--data", "data_dir", default=None, metavar="DATA", help="--evaluate: the run's image folder.")
@click.option("--masks", "masks_dir", default=None, metavar="DIR",
              help="--evaluate: lesion masks <image_id>_segmentation.png (255 = lesion).")
@click.option("--split", default="test", show_default=True, metavar="NAME", help="--evaluate: split of the run to use.")
@click.option("--limit", type=click.IntRange(min=1), default=None, metavar="N", help="--evaluate: at most N images.")
@json_option("--evaluate's results")
def explain(
    image: str | None,
    model_path: str,
    out_path: str | None,
    class_label: str | None,
    target: str,
    evaluate: bool,
    data_dir: str | None,
    masks_dir: str | None,
    split: str,
    limit: int | None,
    json_out: str | None,
) -> None:
    """Show which regions of IMAGE drove the model's prediction (Grad-CAM), or with --evaluate, measure
    whether the heat maps point at the lesion on a split with segmentation masks.
    """
    from dermtool import DISCLAIMER, DermtoolError

    if evaluate:
        if image is not None:
            raise DermtoolError("--evaluate measures a whole split: give no IMAGE")
        if not data_dir or not masks_dir:
            raise DermtoolError("--evaluate needs --data DATA and --masks DIR")
        from dermtool.explain.evaluate import evaluate_localisation

        output = JsonOutput(json_out)
        _progress(f"Loading {model_path}, then one Grad-CAM heat map per image of its {split} split ...")
        with output.capture():
            report = evaluate_localisation(model_path, data_dir, masks_dir, split=split, limit=limit, target=target)
        output.report(report.format())
        output.write(report.to_dict())
        return
    if json_out is not None:
        raise DermtoolError("--json writes the results of --evaluate; one image's explanation is the overlay --out")

    if image is None or out_path is None:
        raise DermtoolError("give IMAGE and --out OVERLAY.png (or --evaluate with --data and --masks)")
    check_output_file(out_path, "--out", example="overlay.png")
    from dermtool.explain.gradcam import get_explainer, overlay_png
    from dermtool.prediction.predictor import class_name
    from dermtool.io_utils import atomic_write_bytes

    _progress(f"Loading {model_path} (its float model; Grad-CAM needs its gradients) ...")
    explainer = get_explainer(model_path)
    _progress(f"Computing the Grad-CAM heat map of {image} ...")
    result = explainer.explain(image, class_name=class_label, target=target)
    try:
        atomic_write_bytes(out_path, overlay_png(result))
    except OSError as error:
        raise DermtoolError(f"cannot write {out_path}: {error.strerror or error}") from None
    probability = result.probabilities[result.label]
    click.echo(f"{image}: predicted {class_name(result.label)} ({result.label}) {probability * 100:.1f} %")
    if result.explained_label != result.label:
        explained = result.explained_label
        click.echo(
            f"Heat map for {class_name(explained)} ({explained}), "
            f"probability {result.probabilities[explained] * 100:.1f} %"
        )
    click.echo(f"Wrote {out_path}")
    click.echo(DISCLAIMER)
