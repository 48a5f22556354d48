"""``export_model``: a trained run folder -> a calibrated, checked ``.tflite`` with metadata and a model card.

The steps, in order:

1. Read the run (:class:`dermtool.run.RunFolder`): model, labels, input spec, temperature, split.
2. Fold the calibration temperature into a clone's "logits" layer (kernel/T, bias/T): the exported softmax
   is calibrated. This clone, in float, is also the reference the gate compares against.
3. Optionally prune (``prune`` = target sparsity) and/or quantization-aware fine-tune (``qat``; with
   pruning, prune-preserving QAT) on the run's training split (:func:`dermtool.data.pipeline.make_dataset`,
   light augmentation), distilling from the float reference (``distill``, the default). For post-training
   int8 (no QAT), the kernels are rounded to their int8 grid and the mean shift this causes is taken out
   of the biases (``bias_correction``, the default; :mod:`dermtool.optimize.bias_correction`), on the
   representative images, after pruning; asked for with QAT, QAT starts from the corrected model.
4. Convert in the named mode (:mod:`dermtool.export.convert`); int8 calibrates on ``representative_images``
   training images spread evenly across the classes, prepared with ``load_image`` + ``normalize`` exactly
   as in evaluation.
5. Attach metadata (:mod:`dermtool.export.metadata`): normalisation, labels.txt, dermtool.json (labels,
   input spec, temperature, mode, referral operating point, OOD guard parameters).
6. Write to a temporary file beside ``out_path`` and run it in LiteRT on the validation split against the
   float model: the accuracy gate (:mod:`dermtool.export.gate`). A failed gate (unless ``gate=False``) or
   any error leaves nothing at ``out_path``.
7. Write the model card (:mod:`dermtool.export.model_card`) and move the model into place.

Example::

    result = export_model("runs/lite0", "lite0_int8.tflite", mode="int8")
    print(result.bytes, result.gzip_bytes, result.gate.top1_agreement)
"""

from __future__ import annotations

import gzip
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from dermtool import DermtoolError

logger = logging.getLogger(__name__)

#: Largest batch of the pruning / QAT fine-tuning (the run's train.batch_size when smaller).
FINETUNE_BATCH_SIZE_MAX = 32


@dataclass
class ExportResult:
    """What :func:`export_model` wrote and measured."""

    path: Path
    mode: str
    io: str
    bytes: int
    gzip_bytes: int
    sparsity: float  # zero fraction of the prunable kernels of the converted model
    gate: Any  # dermtool.export.gate.GateResult, or None when the run has no validation images
    model_card_json: Path
    model_card_markdown: Path
    input_quantization: dict[str, Any] = field(default_factory=dict)  # {dtype, scale, zero_point}
    output_quantization: dict[str, Any] = field(default_factory=dict)
    temperature: float = 1.0
    qat: bool = False
    prune: float = 0.0
    representative_images: int = 0
    bias_correction: dict[str, Any] | None = None  # BiasCorrectionReport.to_dict(), or None when not applied
    fine_tune_target: str | None = None  # "float model (distillation)", "labels", or None (no fine-tuning)
    fine_tune_epochs: dict[str, int] = field(default_factory=dict)  # {"prune": N, "qat": N} as run
    fine_tune_learning_rates: dict[str, float] = field(default_factory=dict)  # {"prune": r, "qat": r} as run
    float_metrics: dict[str, Any] | None = None  # validation metrics of the float (calibrated) model
    exported_metrics: dict[str, Any] | None = None  # the same for the exported model in LiteRT
    seconds: dict[str, float] = field(default_factory=dict)  # time per step

    def summary(self) -> str:
        """A few lines for the terminal: file, size, sparsity, quantisation, gate, model card."""
        lines = [
            f"wrote {self.path} ({self.mode}, input/output {self.io})",
            f"size: {self.bytes:,} bytes ({self.bytes / 1e6:.2f} MB), gzip {self.gzip_bytes:,} bytes "
            f"({self.gzip_bytes / 1e6:.2f} MB)",
            f"sparsity of the prunable kernels: {self.sparsity:.1%}"
            + (f" (target {self.prune:.0%})" if self.prune else ""),
        ]
        if self.input_quantization.get("scale"):
            lines.append(
                f"input: {self.input_quantization['dtype']} scale {self.input_quantization['scale']:.6g} "
                f"zero point {self.input_quantization['zero_point']} (raw pixels go in)"
            )
        if self.bias_correction:
            lines.append(f"bias correction: {self.bias_correction['corrected_offsets']} biases corrected for int8 "
                         f"weight rounding on {self.bias_correction['images']} images")
        lines.append(self.gate.summary() if self.gate is not None else "gate: not measured (no validation images)")
        lines.append(f"model card: {self.model_card_markdown} and {self.model_card_json}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "mode": self.mode,
            "io": self.io,
            "bytes": self.bytes,
            "gzip_bytes": self.gzip_bytes,
            "sparsity": self.sparsity,
            "gate": self.gate.to_dict() if self.gate is not None else None,
            "model_card": {"json": str(self.model_card_json), "markdown": str(self.model_card_markdown)},
            "input": self.input_quantization,
            "output": self.output_quantization,
            "temperature": self.temperature,
            "qat": self.qat,
            "prune": self.prune,
            "representative_images": self.representative_images,
            "bias_correction": self.bias_correction,
            "fine_tune_target": self.fine_tune_target,
            "fine_tune_epochs": self.fine_tune_epochs,
            "fine_tune_learning_rates": self.fine_tune_learning_rates,
            "seconds": self.seconds,
        }


def finetune_augment() -> Any:
    """The light augmentation of the pruning / QAT fine-tuning (flips, rotation, a little zoom and colour)."""
    from dermtool.config import AugmentConfig

    return AugmentConfig(
        rotation_degrees=180.0, horizontal_flip=True, vertical_flip=True, zoom=0.05,
        brightness=0.05, contrast=0.05, saturation=0.05, hue=0.0,
    )


def _check_arguments(
    mode: str, io: str, qat: bool, prune: float, representative_images: int, qat_epochs: int, prune_epochs: int,
    max_balanced_accuracy_drop: float, min_agreement: float,
    learning_rates: dict[str, float | None] | None = None, bias_correction: bool = False,
) -> None:
    from dermtool.export.convert import check_mode

    check_mode(mode, io)
    if bias_correction and mode != "int8":
        raise DermtoolError(f"bias correction (--bias-correction) corrects int8 weight rounding; a {mode} model has "
                            "no int8 grid to correct for: add --int8, or leave it out")
    if qat and mode != "int8":
        raise DermtoolError(f"quantization-aware training (--qat) is for int8 export, not {mode}; add --int8")
    if not 0.0 <= prune < 1.0:
        raise DermtoolError(f"--prune takes a target sparsity in [0, 1) such as 0.5, got {prune}")
    if mode == "int8" and representative_images < 1:
        raise DermtoolError(f"int8 export needs at least 1 representative image, got {representative_images}")
    if qat and qat_epochs < 1:
        raise DermtoolError(f"--qat-epochs must be at least 1, got {qat_epochs}")
    if prune > 0 and prune_epochs < 1:
        raise DermtoolError(f"pruning needs at least 1 epoch, got {prune_epochs}")
    if max_balanced_accuracy_drop < 0:
        raise DermtoolError(f"--max-drop is a number of points >= 0, got {max_balanced_accuracy_drop}")
    if not 0.0 <= min_agreement <= 1.0:
        raise DermtoolError(f"--min-agreement is a fraction in [0, 1] such as 0.97, got {min_agreement}")
    for option, rate in (learning_rates or {}).items():  # given ones; the config's are checked when it loads
        if rate is not None and rate <= 0:
            raise DermtoolError(f"{option} must be positive (such as 1e-4), got {rate}")


def _check_output(out_path: Path, overwrite: bool) -> None:
    if out_path.suffix.lower() != ".tflite":
        raise DermtoolError(f"the output must be a .tflite file, got {out_path}")
    if out_path.is_dir():
        raise DermtoolError(f"{out_path} is a folder; give a file name such as {out_path / 'model.tflite'}")
    if out_path.exists() and not overwrite:
        raise DermtoolError(f"{out_path} already exists; pass --overwrite (overwrite=True) to replace it")


def _predict_float(model: Any, images: np.ndarray, spec: Any, batch_size: int = 64) -> np.ndarray:
    """Softmax output of a Keras classifier for ``load_image`` outputs, normalised as in evaluation."""
    from dermtool.data.preprocess import normalize

    if len(images) == 0:
        return np.zeros((0, model.output_shape[-1]), dtype=np.float64)
    rows = [
        np.asarray(model(normalize(images[start:start + batch_size], spec), training=False), dtype=np.float64)
        for start in range(0, len(images), batch_size)
    ]
    return np.concatenate(rows, axis=0)


def _ood_parameters(run: Any, data_dir: Path | None, predict: Callable[[np.ndarray], np.ndarray], progress: bool) -> dict | None:
    """The run's out-of-distribution guard parameters for dermtool.json, or None.

    ``RUN/ood.json`` when the run has one; otherwise fitted now on the run's images without writing
    anything into the run folder (export only reads the run).
    """
    try:
        from dermtool.explain import ood
    except ImportError:
        return None
    try:
        detector = ood.load_for_run(run, data_dir=data_dir, fit_if_missing=False)
        if detector is None:
            detector = ood.fit_for_run(run, data_dir=data_dir, progress=progress, write=False,
                                       predict_probabilities=predict)
    except DermtoolError as error:
        logger.warning("the exported model carries no out-of-distribution guard: %s", error)
        return None
    return detector.to_dict() if detector is not None else None


def export_model(
    run_dir: str | os.PathLike,
    out_path: str | os.PathLike,
    mode: str = "int8",
    io: str = "uint8",
    qat: bool = False,
    prune: float = 0.0,
    representative_images: int = 300,
    qat_epochs: int = 2,
    prune_epochs: int = 2,
    distill: bool = True,
    gate: bool = True,
    max_balanced_accuracy_drop: float = 1.5,
    min_agreement: float = 0.97,
    overwrite: bool = False,
    data_dir: str | os.PathLike | None = None,
    progress: bool = True,
    *,
    bias_correction: bool | None = None,
    learning_rate: float | None = None,
    prune_learning_rate: float | None = None,
    seed: int = 0,
    representative_transform: Callable[[np.ndarray], np.ndarray] | None = None,
) -> ExportResult:
    """Export the run in ``run_dir`` to ``out_path`` (see the module docstring for the steps).

    ``mode``: "float" | "fp16" | "dynamic" | "int8". ``io`` (int8 only): "uint8" (default; raw pixels in,
    quantised probabilities out), "int8" or "float32". ``qat``: quantization-aware fine-tuning for
    ``qat_epochs`` epochs (int8 only). ``prune``: target sparsity in [0, 1) reached by ``prune_epochs``
    epochs of pruning fine-tuning (0 = no pruning). ``distill``: those fine-tunes learn the float model's
    softmax (self-distillation, :mod:`dermtool.optimize.distill`) instead of the labels, so the exported
    model keeps the float model's answers. ``representative_images``: int8 calibration images
    from the training split. ``bias_correction`` (int8 only; None = on for post-training int8, off with QAT
    and for the other modes): round the kernels to their int8 grid and correct the mean shift on the
    representative images (:mod:`dermtool.optimize.bias_correction`), so that the int8 model disagrees with
    the float model on fewer images. With ``qat=True``, QAT starts from the corrected model; that is not the
    default because fine-tuning moves the weights off the corrected grid (docs/experiments.md). Gate: refuse the export when balanced accuracy on the validation
    split drops by more than ``max_balanced_accuracy_drop`` points or top-1 agreement with the float model
    is below ``min_agreement`` (``gate=False``: measure and report only). ``data_dir``: the image folder,
    when it is not where the run's config says. ``learning_rate``: of the QAT fine-tuning (default: the run config's
    ``export.qat_learning_rate``); ``prune_learning_rate``: of the pruning fine-tuning (default:
    ``export.prune_learning_rate``). ``representative_transform``: replaces ``normalize`` for the calibration
    images only; a test hook that proves the gate catches a wrongly calibrated model, never for real use.
    """
    from dermtool.export import calibration_data, convert, gate as gate_module, metadata, model_card
    from dermtool.export.calibration_data import (
        load_representative_images,
        load_split,
        representative_batches,
        stratified_sample,
    )
    from dermtool.io_utils import atomic_path
    from dermtool.run import RunFolder

    started = time.perf_counter()
    seconds: dict[str, float] = {}

    def lap(name: str, since: float) -> float:
        now = time.perf_counter()
        seconds[name] = round(now - since, 3)
        return now

    _check_arguments(mode, io, qat, prune, representative_images, qat_epochs, prune_epochs,
                     max_balanced_accuracy_drop, min_agreement,
                     {"--qat-learning-rate": learning_rate, "--prune-learning-rate": prune_learning_rate},
                     bias_correction=bool(bias_correction))
    if bias_correction is None:
        bias_correction = mode == "int8" and not qat
    out_path = Path(out_path)
    _check_output(out_path, overwrite)
    io_type = convert.effective_io(mode, io)

    run = RunFolder(run_dir)
    labels, spec, temperature, config = run.labels, run.input_spec, run.temperature, run.config
    folder = calibration_data.resolve_data_dir(run, data_dir)
    records = calibration_data.split_records(run, folder)
    train_records, val_records = records.get("train", []), records.get("val", [])
    from dermtool.data.sources import run_data_description

    where = run_data_description(run, folder)
    if gate and not val_records:
        raise DermtoolError(
            f"{run.path}: no validation images found in {where}, so the accuracy gate cannot run; "
            "pass the right --data folder, or --no-gate to export unchecked"
        )
    needs_training = qat or prune > 0
    if (needs_training or mode == "int8") and not train_records:
        raise DermtoolError(f"{run.path}: no training images found in {where} (needed for calibration / fine-tuning)")

    # ---- the float reference: the run's model with the temperature folded in
    step = time.perf_counter()
    reference = convert.fold_temperature(run.load_model(), temperature, copy=False)  # a fresh model: ours
    val = load_split(val_records, "val", spec, progress=progress)
    float_probabilities = _predict_float(reference, val.images, spec)
    step = lap("load_and_reference", step)

    # ---- training images: all of them for fine-tuning, else only the representative subset
    train = None
    if needs_training:
        train = load_split(train_records, "train", spec, progress=progress)
        if len(train.images) == 0:
            raise DermtoolError(f"none of the {len(train_records)} training images could be read")
    # ---- int8 calibration images: the representative dataset, also what bias correction measures on
    used_representative = 0
    if mode == "int8":
        if train is not None:
            chosen = stratified_sample(train.labels, representative_images, seed)
            calibration_images = train.images[chosen]
        else:
            calibration_images = load_representative_images(train_records, representative_images, spec, seed, progress)
        if len(calibration_images) == 0:
            raise DermtoolError("none of the representative training images could be read")
        used_representative = len(calibration_images)

    def correct_bias(model: Any) -> Any:
        """A copy of ``model`` with int8-rounded kernels and corrected biases."""
        from dermtool.data.preprocess import normalize
        from dermtool.optimize.bias_correction import correct_int8_rounding_bias

        nonlocal bias_correction_report, step
        prepare = representative_transform or (lambda batch: normalize(batch, spec))
        model, bias_correction_report = correct_int8_rounding_bias(model, prepare(calibration_images),
                                                                   progress=progress)
        step = lap("bias_correction", step)
        return model

    bias_correction_report = None
    candidate = reference
    if needs_training:
        from dermtool.data.pipeline import make_dataset

        batch_size = max(1, min(config.train.batch_size, FINETUNE_BATCH_SIZE_MAX))
        # The float model was trained for balanced accuracy (class weights or class-balanced sampling);
        # fine-tuning on the raw class mix (HAM10000: 58:1) drifts it towards the majority class and costs
        # balanced accuracy and melanoma recall. Balanced sampling keeps the objective the model was trained for, in expectation, for either setting.
        train_dataset = make_dataset(train.images, train.labels, len(labels), batch_size, True, finetune_augment(),
                                     spec, seed=seed,
                                     class_balanced_sampling=config.train.class_balance != "none")
        val_dataset = None  # the gate measures the result on the validation split; no per-epoch evaluation
        rate = float(learning_rate if learning_rate is not None else config.export.qat_learning_rate)
        prune_rate = float(prune_learning_rate if prune_learning_rate is not None
                           else config.export.prune_learning_rate)
        teacher = reference if distill else None
        if prune > 0:
            from dermtool.optimize.prune import prune_finetune

            candidate = prune_finetune(candidate, train_dataset, val_dataset, prune, prune_epochs, prune_rate, progress,
                                       teacher=teacher)
            step = lap("prune", step)
        if qat and bias_correction:
            candidate = correct_bias(candidate)  # QAT starts from the corrected int8 grid
        if qat:
            from dermtool.optimize.qat import quantization_aware_finetune

            candidate = quantization_aware_finetune(candidate, train_dataset, val_dataset, qat_epochs, rate,
                                                    input_spec=spec, prune_preserve=prune > 0, progress=progress,
                                                    teacher=teacher)
            step = lap("qat", step)

    if bias_correction and not qat:
        candidate = correct_bias(candidate)

    from dermtool.optimize.prune import sparsity_report

    sparsity = sparsity_report(candidate).overall

    # ---- conversion
    batches = None
    if mode == "int8":
        batches = representative_batches(calibration_images, spec, transform=representative_transform)
    content = convert.convert(candidate, mode, io_type, batches)
    input_quantization, output_quantization = convert.tensor_quantization(content)
    step = lap("convert", step)

    fine_tune_target = ("float model (distillation)" if distill else "labels") if needs_training else None
    extra: dict[str, Any] = {
        "model": config.model.name,
        "input_quantization": input_quantization.to_dict(),
        "qat": qat,
        "prune": prune,
        "bias_correction": bool(bias_correction),
        "fine_tune_target": fine_tune_target,
        "referral": run.metrics.get("referral"),
        "melanoma": run.metrics.get("melanoma"),
    }
    if config.data.sources:  # a multi-source model carries its label maps, so bench can read each source's folder
        extra["sources"] = [{"name": source.name, "kind": source.kind, "label_map": dict(source.label_map)}
                            for source in config.data.sources]
    ood = _ood_parameters(run, folder, lambda images: _predict_float(reference, images, spec), progress)
    if ood is not None:
        extra["ood"] = ood
    content = metadata.write_metadata(
        content, labels=labels, input_spec=spec, temperature=temperature, mode=mode, io_type=io_type,
        model_name=config.model.name, extra=extra,
    )
    step = lap("metadata", step)

    # ---- gate, model card, and the model moved into place (nothing at out_path on any failure)
    with atomic_path(out_path) as temporary:
        temporary.write_bytes(content)
        gate_result = float_metrics = exported_metrics = exported_referral = None
        if len(val.images):
            from dermtool.runtime import TFLiteModel

            exported_probabilities = TFLiteModel(temporary).predict(val.images).astype(np.float64)
            gate_result, float_metrics, exported_metrics = gate_module.measure_gate(
                val.labels, float_probabilities, exported_probabilities, labels,
                max_balanced_accuracy_drop, min_agreement, enforced=gate,
            )
            exported_referral = _referral_point(run.metrics.get("referral"), labels, val.labels, exported_probabilities)
            step = lap("gate", step)
            gate_module.enforce(gate_result, mode, qat)
            logger.info(gate_result.summary())
        if mode == "int8" and io_type in ("uint8", "int8"):
            convert.check_raw_pixel_input(input_quantization, spec, io_type)
        gzip_bytes = len(gzip.compress(content, compresslevel=9))
        card = model_card.build_model_card(
            model_path=out_path, run_path=run.path, model_name=config.model.name, labels=labels,
            input_spec=spec.to_dict(), split_rows=run.split_rows, run_metrics=run.metrics, temperature=temperature,
            float_metrics=float_metrics, exported_metrics=exported_metrics, exported_referral=exported_referral,
            mode=mode, io_type=io_type, input_quantization=input_quantization.to_dict(),
            output_quantization=output_quantization.to_dict(), qat=qat, prune=prune, sparsity=sparsity,
            representative_images=used_representative, size_bytes=len(content), gzip_bytes=gzip_bytes,
            gate=gate_result.to_dict() if gate_result is not None else None,
            fine_tune_target=fine_tune_target,
            bias_correction=bias_correction_report.to_dict() if bias_correction_report is not None else None,
        )
        card_json, card_markdown = model_card.write_model_card(card, out_path)
    seconds["total"] = round(time.perf_counter() - started, 3)
    return ExportResult(
        path=out_path, mode=mode, io=io_type, bytes=len(content), gzip_bytes=gzip_bytes, sparsity=sparsity,
        gate=gate_result, model_card_json=card_json, model_card_markdown=card_markdown,
        input_quantization=input_quantization.to_dict(), output_quantization=output_quantization.to_dict(),
        temperature=temperature, qat=qat, prune=prune, representative_images=used_representative,
        bias_correction=bias_correction_report.to_dict() if bias_correction_report is not None else None,
        fine_tune_target=fine_tune_target,
        fine_tune_epochs={**({"prune": prune_epochs} if prune > 0 else {}), **({"qat": qat_epochs} if qat else {})},
        fine_tune_learning_rates={**({"prune": prune_rate} if prune > 0 else {}), **({"qat": rate} if qat else {})},
        float_metrics=float_metrics, exported_metrics=exported_metrics, seconds=seconds,
    )


def _referral_point(referral: dict | None, labels: list[str], y_true: np.ndarray, probabilities: np.ndarray) -> dict | None:
    """Sensitivity / specificity of the exported model at the run's referral threshold (validation split)."""
    from dermtool import metrics

    if not referral or referral.get("threshold") is None:
        return None
    columns = [labels.index(name) for name in referral.get("classes", []) if name in labels]
    if not columns:
        return None
    return metrics.sensitivity_specificity(y_true, probabilities, columns, float(referral["threshold"]))


__all__ = ["ExportResult", "export_model", "finetune_augment"]
