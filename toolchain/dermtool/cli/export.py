"""``dermtool export``: a trained run folder -> a calibrated, checked .tflite with metadata and a model card.

Thin: the options become a :class:`dermtool.export.tflite.ExportOptions` (what is left out comes from the
run's ``[export]`` configuration) and :func:`dermtool.export.tflite.export_model` does the work (imported
inside the command, so ``dermtool --help`` stays fast).
"""

from __future__ import annotations

from pathlib import Path

import click

from dermtool.cli.output import JsonOutput, json_option


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("run_dir", metavar="RUN", type=click.Path(file_okay=False, path_type=Path))
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              metavar="MODEL.tflite", help="Where to write the model (the model card goes beside it).")
@click.option("--float", "mode", flag_value="float", help="float32 weights and activations (largest, exact).")
@click.option("--fp16", "mode", flag_value="fp16", help="float16 weights (about half the size).")
@click.option("--dynamic", "mode", flag_value="dynamic",
              help="Dynamic-range quantisation: int8 weights, float activations (about a quarter).")
@click.option("--int8", "mode", flag_value="int8",
              help="Full integer quantisation, calibrated on training images [default, or the run's export.mode].")
@click.option("--io", "io_type", type=click.Choice(["uint8", "int8", "float32"]),
              help="int8 only: type of the input and output tensors [default: uint8, raw pixels in]. "
                   "MediaPipe's ImageClassifier accepts uint8 and float32 inputs, not int8.")
@click.option("--qat", is_flag=True, help="Quantization-aware fine-tuning before int8 conversion.")
@click.option("--prune", type=float, metavar="SPARSITY",
              help="Magnitude pruning to this fraction of zero weights (e.g. 0.5) before conversion.")
@click.option("--bias-correction/--no-bias-correction", "bias_correction", default=None,
              help="int8: round the weights to their int8 grid first and take the mean shift this causes out of "
                   "the biases, measured on the representative images (no training; same file size) "
                   "[default: on for post-training int8, off with --qat; the run's export.bias_correction].")
@click.option("--representative", "representative_images", type=int, metavar="N",
              help="Training images for int8 calibration, spread across classes [default: 300].")
@click.option("--qat-epochs", type=int, metavar="N", help="Epochs of quantization-aware fine-tuning [default: 2].")
@click.option("--prune-epochs", type=int, metavar="N", help="Epochs of pruning fine-tuning [default: 2].")
@click.option("--qat-learning-rate", type=float, metavar="R",
              help="Learning rate of the QAT fine-tuning: a gentle nudge [default: 1e-5].")
@click.option("--prune-learning-rate", type=float, metavar="R",
              help="Learning rate of the pruning fine-tuning: the kept weights must re-learn [default: 1e-4].")
@click.option("--distill/--labels", "distill", default=None,
              help="Fine-tune (QAT, pruning) towards the float model's answers (distillation, the default) "
                   "or towards the labels.")
@click.option("--no-gate", is_flag=True, help="Write the model even if it fails the accuracy gate (numbers still shown).")
@click.option("--max-drop", type=float, metavar="POINTS",
              help="Largest allowed drop of validation balanced accuracy, in points [default: 1.5].")
@click.option("--min-agreement", type=float, metavar="F",
              help="Smallest allowed top-1 agreement with the float model [default: 0.97].")
@click.option("--overwrite", is_flag=True, help="Replace MODEL.tflite if it exists.")
@click.option("--data", "data_dir", type=click.Path(file_okay=False, path_type=Path),
              help="The run's image folder, if it is not where the run's config.toml says.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@json_option("a summary (written, path, mode, bytes, gate, model_card ...; on a refusal written false, error, gate)")
def export(run_dir: Path, out_path: Path, mode: str | None, io_type: str | None, qat: bool, prune: float | None,
           representative_images: int | None, qat_epochs: int | None, prune_epochs: int | None,
           qat_learning_rate: float | None, prune_learning_rate: float | None, distill: bool | None, no_gate: bool,
           max_drop: float | None, min_agreement: float | None, overwrite: bool, data_dir: Path | None,
           quiet: bool, bias_correction: bool | None, json_out: str | None) -> None:
    """Write a TFLite model of a trained run, checked against the float model.

    The calibration temperature is folded into the model, so its softmax output is calibrated. The
    file carries TFLite metadata (labels, normalisation, dermtool.json) that MediaPipe's ImageClassifier
    and `dermtool bench` / `predict` read. An int8 model with uint8 input takes raw 0-255 pixels.
    A run with RUN/lesion_check.json (`dermtool lesion-check RUN`) gets the lesion check as the model's
    second output `lesion_check` (lesion, not_a_lesion; MediaPipe's second classification head), its
    threshold and figures in dermtool.json; without it the model has no lesion check (a warning says so).

    The accuracy gate runs the exported model (LiteRT) and the float model on the run's validation
    images and refuses the export, writing nothing, if balanced accuracy drops by more than --max-drop
    points or the two agree on fewer than --min-agreement of the images (exit status 3; 2 for a usage
    error). Options left out take the run's [export] configuration.

    \b
    Examples:
      dermtool export runs/lite0 --out lite0_int8.tflite
      dermtool export runs/lite0 --out lite0_fp16.tflite --fp16
      dermtool export runs/lite0 --out lite0_qat.tflite --int8 --qat --qat-epochs 2
      dermtool export runs/lite0 --out lite0_sparse.tflite --int8 --prune 0.5
      dermtool export runs/lite0 --out lite0_int8io.tflite --int8 --io int8 --representative 500
      dermtool export runs/lite0 --out lite0_int8.tflite --json - | jq .gate.passed
    """
    from dermtool.export.tflite import ExportOptions, export_model
    from dermtool.run import RunFolder

    from dermtool import CheckFailed, DermtoolError

    from dermtool.files import check_output_path

    output = JsonOutput(json_out)
    check_output_path(out_path, "--out", "model.tflite", stdout_ok=False)
    # options left out (None) take the run's [export] configuration
    options = ExportOptions.from_config(
        RunFolder(run_dir).config.export, mode=mode, io=io_type, qat=qat, prune=prune,
        representative_images=representative_images, qat_epochs=qat_epochs, prune_epochs=prune_epochs,
        distill=distill, gate=not no_gate, max_balanced_accuracy_drop=max_drop, min_agreement=min_agreement,
        bias_correction=bias_correction, qat_learning_rate=qat_learning_rate, prune_learning_rate=prune_learning_rate,
    )
    mode = options.mode
    if io_type is not None and mode != "int8":
        raise DermtoolError(f"--io sets the tensor type of an int8 model; a {mode} model has float32 input and output")
    try:
        with output.capture():
            result = export_model(run_dir, out_path, options, overwrite=overwrite, data_dir=data_dir,
                                  progress=not quiet)
    except CheckFailed as refusal:  # the gate refused: the JSON says why, then exit 3
        output.write({"written": False, "path": None, "mode": mode, "error": str(refusal),
                      **(refusal.details or {})})
        raise
    output.report(result.summary())
    output.write({"written": True, **result.to_dict()})
