"""``export_model``: a trained run folder -> a calibrated, checked ``.tflite`` with metadata and a model card.

How to export is one :class:`ExportOptions` (mode, int8 tensor types, QAT, pruning, bias correction,
calibration, gate limits), as MediaPipe Model Maker's ``export_model(quantization_config)``;
:meth:`ExportOptions.from_config` gives a run's ``[export]`` defaults. The steps, in order (the methods of
the private ``_Export``, called one after the other by its ``run``), each write what they produce into one
:class:`dermtool.export.record.ExportRecord` (its fields in the order of these steps); the model card and the
:class:`ExportResult` are both built from that record:

1. ``read_run`` (after ``check_arguments``): the run (:class:`dermtool.run.RunFolder`): model, labels, input spec, temperature, split.
2. ``make_reference``: fold the calibration temperature into a clone's "logits" layer (kernel/T, bias/T): the exported softmax
   is calibrated. This clone, in float, is also the reference the gate compares against.
3. ``load_training_images``, ``optimise``: optionally prune (``prune`` = target sparsity) and/or quantization-aware fine-tune (``qat``; with
   pruning, prune-preserving QAT) on the run's training split (:func:`dermtool.data.pipeline.make_dataset`,
   light augmentation), distilling from the float reference (``distill``, the default). For post-training
   int8 (no QAT), the kernels are rounded to their int8 grid and the mean shift this causes is taken out
   of the biases (``bias_correction``, the default; :mod:`dermtool.optimize.bias_correction`), on the
   representative images, after pruning; asked for with QAT, QAT starts from the corrected model.
4. ``convert`` in the named mode (:mod:`dermtool.export.convert`); int8 calibrates on ``representative_images``
   training images spread evenly across the classes, prepared with ``load_image`` + ``normalize`` exactly
   as in evaluation.
5. ``attach_metadata`` (:mod:`dermtool.export.metadata`): normalisation, labels.txt, dermtool.json (labels,
   input spec, temperature, mode, referral operating point, the lesion check's threshold and figures, and the questionnaire
   fusion of ``RUN/fusion.json`` under ``fusion`` when ``dermtool fuse`` wrote one, checked by
   :func:`dermtool.fusion.fitting.read_run_fusion`).
6. ``gate_and_write``: write to a temporary file beside ``out_path`` and run it in LiteRT on the validation split against the
   float model: the accuracy gate (:mod:`dermtool.export.gate`). A failed gate (unless ``gate=False``) or
   any error leaves nothing at ``out_path``.
   The gate's :class:`dermtool.export.gate.GateMeasurement` goes into the record; then the model card
   (:func:`dermtool.export.model_card.build_model_card` of the run and the record) is written and the model
   moved into place.

Example::

    result = export_model("runs/lite0", "lite0_int8.tflite", ExportOptions(mode="int8", qat=True))
    result = export_model("runs/lite0", "lite0_fp16.tflite", mode="fp16", gate=False)  # single options
    print(result.bytes, result.gzip_bytes, result.gate.top1_agreement)
"""

from __future__ import annotations

import gzip
import logging
import os
import time
from dataclasses import dataclass, field, replace
from dataclasses import fields as dataclass_fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from dermtool import DermtoolError
from dermtool.config import AugmentConfig
from dermtool.data.pipeline import make_dataset
from dermtool.data.preprocess import normalize
from dermtool.data.sources import run_data_description, source_to_dict
from dermtool.export import calibration_data, convert, gate as gate_module, metadata, model_card
from dermtool.export.calibration_data import (load_representative_images, load_split, representative_batches,
                                              stratified_sample)
from dermtool.export.convert import check_mode
from dermtool.export.gate import GateMeasurement, GateResult
from dermtool.export.record import ExportRecord
from dermtool.fusion.fitting import read_fusion_report, read_run_fusion
from dermtool.io_utils import atomic_path
from dermtool.optimize.bias_correction import correct_int8_rounding_bias
from dermtool.optimize.prune import prune_finetune, sparsity_report
from dermtool.optimize.qat import quantization_aware_finetune
from dermtool.prediction.lesion_check import (FILE_NAME as LESION_CHECK_FILE, attach_head, metadata_block,
                                              read_run_check)
from dermtool.prediction.multi_photo import rule_for_export
from dermtool.prediction.predictor import DEFAULT_MALIGNANT_CLASSES
from dermtool.run import RunFolder
from dermtool.runtime import TFLiteModel

if TYPE_CHECKING:
    from dermtool.export.convert import TensorQuantization

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
    gate: GateResult | None  # None when the run has no validation images
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
    fusion: bool = False  # True when dermtool.json carries the run's questionnaire fusion
    lesion_check: bool = False  # True when the model has the lesion check as its second output

    @classmethod
    def from_record(cls, record: ExportRecord, temperature: float, model_card_json: Path, model_card_markdown: Path,
                    seconds: dict[str, float]) -> "ExportResult":
        """The result of the export that produced ``record`` (its run's ``temperature``, the model card's
        paths, the seconds per step)."""
        gate = record.gate
        return cls(
            path=record.model_path, mode=record.mode, io=record.io_type, bytes=record.size_bytes,
            gzip_bytes=record.gzip_bytes, sparsity=record.sparsity, gate=gate.result if gate is not None else None,
            model_card_json=model_card_json, model_card_markdown=model_card_markdown,
            input_quantization=record.input_quantization, output_quantization=record.output_quantization,
            temperature=temperature, qat=record.qat, prune=record.prune,
            representative_images=record.representative_images, bias_correction=record.bias_correction,
            fine_tune_target=record.fine_tune_target, fine_tune_epochs=record.fine_tune_epochs,
            fine_tune_learning_rates=record.fine_tune_learning_rates,
            float_metrics=gate.float_metrics if gate is not None else None,
            exported_metrics=gate.exported_metrics if gate is not None else None, seconds=seconds,
            fusion=record.fusion is not None, lesion_check=record.lesion_check,
        )

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
        if self.fusion:
            lines.append("questionnaire fusion: carried in dermtool.json (`dermtool predict --answer` applies it)")
        lines.append("lesion check: second output 'lesion_check' (lesion, not_a_lesion), threshold in dermtool.json"
                     if self.lesion_check else
                     "lesion check: none (the run has no lesion_check.json; fit it with `dermtool lesion-check RUN`)")
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
            "fusion": self.fusion,
            "lesion_check": self.lesion_check,
        }


def finetune_augment() -> Any:
    """The light augmentation of the pruning / QAT fine-tuning (flips, rotation, a little zoom and colour)."""
    return AugmentConfig(
        rotation_degrees=180.0, horizontal_flip=True, vertical_flip=True, zoom=0.05,
        brightness=0.05, contrast=0.05, saturation=0.05, hue=0.0,
    )


def _check_output(out_path: Path, overwrite: bool) -> None:
    if out_path.suffix.lower() != ".tflite":
        raise DermtoolError(f"the output must be a .tflite file, got {out_path}")
    if out_path.is_dir():
        raise DermtoolError(f"{out_path} is a folder; give a file name such as {out_path / 'model.tflite'}")
    if out_path.exists() and not overwrite:
        raise DermtoolError(f"{out_path} already exists; pass --overwrite (overwrite=True) to replace it")


def _predict_float(model: Any, images: np.ndarray, spec: Any, batch_size: int = 64) -> np.ndarray:
    """Softmax output of a Keras classifier for ``load_image`` outputs, normalised as in evaluation."""
    if len(images) == 0:
        return np.zeros((0, model.output_shape[-1]), dtype=np.float64)
    rows = [
        np.asarray(model(normalize(images[start:start + batch_size], spec), training=False), dtype=np.float64)
        for start in range(0, len(images), batch_size)
    ]
    return np.concatenate(rows, axis=0)


@dataclass
class ExportOptions:
    """How :func:`export_model` converts, quantises, fine-tunes and gates (the run's ``[export]`` section,
    :meth:`from_config`, gives the command line's defaults).

    ``mode``: "float" | "fp16" | "dynamic" | "int8". ``io`` (int8 only): "uint8" (default; raw pixels in,
    quantised probabilities out), "int8" or "float32". ``qat``: quantization-aware fine-tuning for
    ``qat_epochs`` epochs (int8 only). ``prune``: target sparsity in [0, 1) reached by ``prune_epochs`` epochs
    of pruning fine-tuning (0 = no pruning). ``distill``: those fine-tunes learn the float model's softmax
    (self-distillation, :mod:`dermtool.optimize.distill`) instead of the labels, so the exported model keeps
    the float model's answers. ``representative_images``: int8 calibration images from the training split.
    ``bias_correction`` (int8 only; None = on for post-training int8, off with QAT and for the other modes):
    round the kernels to their int8 grid and correct the mean shift on the representative images
    (:mod:`dermtool.optimize.bias_correction`), so that the int8 model disagrees with the float model on fewer
    images. With ``qat=True``, QAT starts from the corrected model; that is not the default because
    fine-tuning moves the weights off the corrected grid (docs/experiments.md). Gate: refuse the export when
    balanced accuracy on the validation split drops by more than ``max_balanced_accuracy_drop`` points or
    top-1 agreement with the float model is below ``min_agreement`` (``gate=False``: measure and report only).
    ``qat_learning_rate`` / ``prune_learning_rate``: of the fine-tunes (None: the run config's
    ``export.qat_learning_rate`` / ``export.prune_learning_rate``). ``seed``: of the calibration sample and
    the fine-tuning's shuffling.
    """

    mode: str = "int8"
    io: str = "uint8"
    qat: bool = False
    prune: float = 0.0
    representative_images: int = 300
    qat_epochs: int = 2
    prune_epochs: int = 2
    distill: bool = True
    gate: bool = True
    max_balanced_accuracy_drop: float = 1.5
    min_agreement: float = 0.97
    bias_correction: bool | None = None
    qat_learning_rate: float | None = None
    prune_learning_rate: float | None = None
    seed: int = 0

    @classmethod
    def from_config(cls, export: Any, **given: Any) -> "ExportOptions":
        """The options of a run's ``[export]`` section (:class:`dermtool.config.ExportConfig`), each replaced by
        ``given[name]`` unless that is None (an option left out on the command line)."""
        options = cls(
            mode=export.mode, io=export.io, prune=export.prune_sparsity,
            representative_images=export.representative_images, qat_epochs=export.qat_epochs,
            prune_epochs=export.prune_epochs, distill=export.distill,
            max_balanced_accuracy_drop=export.gate_max_balanced_accuracy_drop,
            min_agreement=export.gate_min_agreement,
            # None: on for post-training int8 (the export decides); the config can only switch it off
            bias_correction=None if export.bias_correction else False,
            qat_learning_rate=export.qat_learning_rate, prune_learning_rate=export.prune_learning_rate,
        )
        return replace(options, **{name: value for name, value in given.items() if value is not None})

    def check(self) -> None:
        """Raise :class:`DermtoolError` naming the command-line option of the first invalid setting."""
        check_mode(self.mode, self.io)
        if self.bias_correction and self.mode != "int8":
            raise DermtoolError(f"bias correction (--bias-correction) corrects int8 weight rounding; a {self.mode} "
                                "model has no int8 grid to correct for: add --int8, or leave it out")
        if self.qat and self.mode != "int8":
            raise DermtoolError(f"quantization-aware training (--qat) is for int8 export, not {self.mode}; add --int8")
        if not 0.0 <= self.prune < 1.0:
            raise DermtoolError(f"--prune takes a target sparsity in [0, 1) such as 0.5, got {self.prune}")
        if self.mode == "int8" and self.representative_images < 1:
            raise DermtoolError(f"int8 export needs at least 1 representative image, got {self.representative_images}")
        if self.qat and self.qat_epochs < 1:
            raise DermtoolError(f"--qat-epochs must be at least 1, got {self.qat_epochs}")
        if self.prune > 0 and self.prune_epochs < 1:
            raise DermtoolError(f"pruning needs at least 1 epoch, got {self.prune_epochs}")
        if self.max_balanced_accuracy_drop < 0:
            raise DermtoolError(f"--max-drop is a number of points >= 0, got {self.max_balanced_accuracy_drop}")
        if not 0.0 <= self.min_agreement <= 1.0:
            raise DermtoolError(f"--min-agreement is a fraction in [0, 1] such as 0.97, got {self.min_agreement}")
        for option, rate in (("--qat-learning-rate", self.qat_learning_rate),
                             ("--prune-learning-rate", self.prune_learning_rate)):
            if rate is not None and rate <= 0:
                raise DermtoolError(f"{option} must be positive (such as 1e-4), got {rate}")

    @property
    def fine_tunes(self) -> bool:
        """True when the export trains (pruning or QAT): it then needs every training image."""
        return self.qat or self.prune > 0


#: Test hook, never for real use: replaces ``normalize`` for the int8 calibration images (bias correction and
#: the converter's representative dataset), so that a test can prove the gate catches a wrongly calibrated
#: model. Tests set it with ``monkeypatch.setattr``.
_CALIBRATION_TRANSFORM: Callable[[np.ndarray], np.ndarray] | None = None


def export_model(
    run_dir: str | os.PathLike,
    out_path: str | os.PathLike,
    options: ExportOptions | None = None,
    *,
    overwrite: bool = False,
    data_dir: str | os.PathLike | None = None,
    progress: bool = True,
    **fields: Any,
) -> ExportResult:
    """Export the run in ``run_dir`` to ``out_path`` (the steps: the module docstring).

    ``options``: :class:`ExportOptions` (default: its defaults); ``fields`` (``mode="fp16"``, ``gate=False``
    ...) replace single options, so ``export_model(run, out, mode="int8", qat=True)`` needs no options object.
    ``overwrite``: replace ``out_path`` if it exists. ``data_dir``: the image folder, when it is not where the
    run's config says.
    """
    unknown = sorted(set(fields) - {item.name for item in dataclass_fields(ExportOptions)})
    if unknown:
        raise TypeError(f"export_model() got unexpected keyword argument(s) {', '.join(unknown)}: "
                        "not an ExportOptions field")
    options = replace(options or ExportOptions(), **fields)
    return _Export(run_dir, out_path, options, overwrite=overwrite, data_dir=data_dir, progress=progress).run()


class _Export:
    """One export, as named steps in :meth:`run`. What the export produced goes into ``self.record``
    (:class:`ExportRecord`, its fields in the order of the steps that fill them); the working state the
    steps hand on to each other is declared here, with the step that sets it."""

    def __init__(self, run_dir: str | os.PathLike, out_path: str | os.PathLike, options: ExportOptions, *,
                 overwrite: bool, data_dir: str | os.PathLike | None, progress: bool) -> None:
        self.run_dir, self.out_path, self.options = run_dir, Path(out_path), options
        self.overwrite, self.data_dir, self.progress = overwrite, data_dir, progress
        self.started = time.perf_counter()
        self.seconds: dict[str, float] = {}
        self._last = self.started
        self.record = ExportRecord(model_path=self.out_path, mode=options.mode, io_type=options.io, qat=options.qat,
                                   prune=options.prune)  # io_type: the effective one once check_arguments ran
        # read_run
        self.run_folder: Any = None  # dermtool.run.RunFolder
        self.labels: list[str] = []
        self.spec: Any = None  # dermtool.data.preprocess.InputSpec
        self.temperature = 1.0
        self.config: Any = None  # dermtool.config.Config of the run
        self.folder: Path | None = None  # the image folder
        self.train_records: list[Any] = []
        self.val_records: list[Any] = []
        self.lesion_check: Any = None  # dermtool.prediction.lesion_check.LesionCheck, or None
        # make_reference
        self.reference: Any = None  # the run's Keras model, temperature folded in
        self.val: Any = None  # the validation split's images and labels
        self.float_probabilities: np.ndarray | None = None  # the reference's softmax on them
        # load_training_images
        self.train: Any = None  # the training split's images and labels (only to fine-tune)
        self.calibration_images: np.ndarray | None = None  # int8 representative images
        # convert
        self.input_quantization: TensorQuantization | None = None  # of the model's input (the record has its dict)

    def run(self) -> ExportResult:
        self.check_arguments()
        self.read_run()
        self.make_reference()
        self.load_training_images()
        candidate = self.optimise(self.reference)
        content = self.convert(candidate)
        content = self.attach_metadata(content)
        return self.gate_and_write(content)

    def lap(self, name: str) -> None:
        """Record the seconds since the previous lap under ``name``."""
        now = time.perf_counter()
        self.seconds[name] = round(now - self._last, 3)
        self._last = now

    # ---- step 0: arguments and output path, before anything is read
    def check_arguments(self) -> None:
        self.options.check()
        if self.options.bias_correction is None:
            self.options = replace(self.options, bias_correction=self.options.mode == "int8" and not self.options.qat)
        _check_output(self.out_path, self.overwrite)
        self.record.io_type = convert.effective_io(self.options.mode, self.options.io)

    # ---- step 1: the run, and the images it needs (an error now, before any work, if they are missing)
    def read_run(self) -> None:
        self.run_folder = run = RunFolder(self.run_dir)
        self.labels, self.spec, self.temperature, self.config = run.labels, run.input_spec, run.temperature, run.config
        self.folder = calibration_data.resolve_data_dir(run, self.data_dir)
        records = calibration_data.split_records(run, self.folder)
        self.train_records, self.val_records = records.get("train", []), records.get("val", [])
        self.record.fusion = read_run_fusion(run)  # checked now: a broken fusion.json stops the export before any work
        self.record.fusion_report = read_fusion_report(run.path) if self.record.fusion is not None else None
        self.lesion_check = read_run_check(run)  # RUN/lesion_check.json, checked now too
        self.record.lesion_check = self.lesion_check is not None
        if self.lesion_check is None:
            logger.warning("%s has no %s: the exported model will have no lesion check (fit it with "
                           "`dermtool lesion-check %s` and export again)", run.path, LESION_CHECK_FILE, run.path)
        where = run_data_description(run, self.folder)
        if self.options.gate and not self.val_records:
            raise DermtoolError(
                f"{run.path}: no validation images found in {where}, so the accuracy gate cannot run; "
                "pass the right --data folder, or --no-gate to export unchecked"
            )
        if (self.options.fine_tunes or self.options.mode == "int8") and not self.train_records:
            raise DermtoolError(f"{run.path}: no training images found in {where} (needed for calibration / fine-tuning)")

    # ---- step 2: the float reference, the run's model with the temperature folded in (also the gate's yardstick)
    def make_reference(self) -> None:
        self._last = time.perf_counter()
        self.reference = convert.fold_temperature(self.run_folder.load_model(), self.temperature, copy=False)
        self.val = load_split(self.val_records, "val", self.spec, progress=self.progress)
        self.float_probabilities = _predict_float(self.reference, self.val.images, self.spec)
        self.lap("load_and_reference")

    # ---- step 3: training images (all of them to fine-tune) and the int8 calibration (representative) images
    def load_training_images(self) -> None:
        options = self.options
        if options.fine_tunes:
            self.train = load_split(self.train_records, "train", self.spec, progress=self.progress)
            if len(self.train.images) == 0:
                raise DermtoolError(f"none of the {len(self.train_records)} training images could be read")
        if options.mode != "int8":
            return
        if self.train is not None:
            chosen = stratified_sample(self.train.labels, options.representative_images, options.seed)
            self.calibration_images = self.train.images[chosen]
        else:
            self.calibration_images = load_representative_images(
                self.train_records, options.representative_images, self.spec, options.seed, self.progress)
        if len(self.calibration_images) == 0:
            raise DermtoolError("none of the representative training images could be read")
        self.record.representative_images = len(self.calibration_images)

    # ---- step 4: pruning, bias correction, QAT (each optional, in this order; QAT after bias correction)
    def optimise(self, candidate: Any) -> Any:
        options, record = self.options, self.record
        if options.fine_tunes:
            record.fine_tune_target = "float model (distillation)" if options.distill else "labels"
            if options.prune > 0:
                record.fine_tune_epochs["prune"] = options.prune_epochs
                record.fine_tune_learning_rates["prune"] = self.prune_rate
            if options.qat:
                record.fine_tune_epochs["qat"] = options.qat_epochs
                record.fine_tune_learning_rates["qat"] = self.qat_rate
            train_dataset = self._finetune_dataset()
            teacher = self.reference if options.distill else None
            if options.prune > 0:
                candidate = prune_finetune(candidate, train_dataset, None, options.prune, options.prune_epochs,
                                           self.prune_rate, self.progress, teacher=teacher)
                self.lap("prune")
            if options.qat and options.bias_correction:
                candidate = self.correct_bias(candidate)  # QAT starts from the corrected int8 grid
            if options.qat:
                candidate = quantization_aware_finetune(candidate, train_dataset, None, options.qat_epochs,
                                                        self.qat_rate, input_spec=self.spec,
                                                        prune_preserve=options.prune > 0, progress=self.progress,
                                                        teacher=teacher)
                self.lap("qat")
        if options.bias_correction and not options.qat:
            candidate = self.correct_bias(candidate)
        return candidate

    @property
    def qat_rate(self) -> float:
        rate = self.options.qat_learning_rate
        return float(rate if rate is not None else self.config.export.qat_learning_rate)

    @property
    def prune_rate(self) -> float:
        rate = self.options.prune_learning_rate
        return float(rate if rate is not None else self.config.export.prune_learning_rate)

    def _finetune_dataset(self) -> Any:
        """The training split, lightly augmented, class-balanced when the run was: what pruning and QAT see.

        The float model was trained for balanced accuracy (class weights or class-balanced sampling);
        fine-tuning on the raw class mix (HAM10000: 58:1) drifts it towards the majority class and costs
        balanced accuracy and melanoma recall. Balanced sampling keeps the objective the model was trained
        for, in expectation, for either setting. No validation set: the gate measures the result.
        """
        batch_size = max(1, min(self.config.train.batch_size, FINETUNE_BATCH_SIZE_MAX))
        return make_dataset(self.train.images, self.train.labels, len(self.labels), batch_size, True,
                            finetune_augment(), self.spec, seed=self.options.seed,
                            class_balanced_sampling=self.config.train.class_balance != "none")

    def correct_bias(self, model: Any) -> Any:
        """A copy of ``model`` with int8-rounded kernels and corrected biases."""
        prepare = _CALIBRATION_TRANSFORM or (lambda batch: normalize(batch, self.spec))
        model, report = correct_int8_rounding_bias(model, prepare(self.calibration_images), progress=self.progress)
        self.record.bias_correction = report.to_dict()
        self.lap("bias_correction")
        return model

    # ---- step 5: conversion in the named mode (int8: calibrated on the representative images)
    def convert(self, candidate: Any) -> bytes:
        self.record.sparsity = sparsity_report(candidate).overall
        batches = None
        if self.options.mode == "int8":
            batches = representative_batches(self.calibration_images, self.spec, transform=_CALIBRATION_TRANSFORM)
        if self.lesion_check is not None:  # the second output, on the model as converted (after every optimisation)

            candidate = attach_head(candidate, self.lesion_check)
        content = convert.convert(candidate, self.options.mode, self.record.io_type, batches)
        self.input_quantization, output_quantization = convert.tensor_quantization(content)
        self.record.input_quantization = self.input_quantization.to_dict()
        self.record.output_quantization = output_quantization.to_dict()
        self.lap("convert")
        return content

    # ---- step 6: TFLite metadata (normalisation, labels.txt, the lesion check's head, dermtool.json)
    def attach_metadata(self, content: bytes) -> bytes:
        options, config, run = self.options, self.config, self.run_folder
        extra: dict[str, Any] = {
            "model": config.model.name,
            "input_quantization": self.record.input_quantization,
            "qat": options.qat,
            "prune": options.prune,
            "bias_correction": bool(options.bias_correction),
            "fine_tune_target": self.record.fine_tune_target,
            "referral": run.metrics.get("referral"),
            "melanoma": run.metrics.get("melanoma"),
        }
        if config.data.sources:  # a multi-source model carries its label maps, so bench can read each source's folder
            extra["sources"] = [source_to_dict(source) for source in config.data.sources]
        if self.lesion_check is not None:
            extra["lesion_check"] = metadata_block(self.lesion_check)
        if self.record.fusion is not None:
            extra["fusion"] = self.record.fusion
        extra["multi_photo"] = rule_for_export(run.path, (run.metrics.get("referral") or {}).get("classes")
                                               or DEFAULT_MALIGNANT_CLASSES)  # how clients combine a lesion's photos
        self.record.model_metadata = extra
        content = metadata.write_metadata(
            content, labels=self.labels, input_spec=self.spec, temperature=self.temperature, mode=options.mode,
            io_type=self.record.io_type, model_name=config.model.name, extra=extra,
        )
        self.lap("metadata")
        return content

    # ---- step 7: gate, model card, and the model moved into place (nothing at out_path on any failure)
    def gate_and_write(self, content: bytes) -> ExportResult:
        record = self.record
        with atomic_path(self.out_path) as temporary:
            temporary.write_bytes(content)
            record.gate = self.measure_gate(temporary)
            if self.options.mode == "int8" and record.io_type in ("uint8", "int8"):
                convert.check_raw_pixel_input(self.input_quantization, self.spec, record.io_type)
            record.size_bytes, record.gzip_bytes = len(content), len(gzip.compress(content, compresslevel=9))
            card_json, card_markdown = model_card.write_model_card(model_card.build_model_card(self.run_folder, record),
                                                                   self.out_path)
        self.seconds["total"] = round(time.perf_counter() - self.started, 3)
        return ExportResult.from_record(record, self.temperature, card_json, card_markdown, self.seconds)

    def measure_gate(self, model_file: Path) -> GateMeasurement | None:
        """The gate's measurement on the validation split (None without validation images). Raises
        :class:`dermtool.CheckFailed` when an enforced gate fails."""
        if not len(self.val.images):
            return None

        options = self.options
        exported_probabilities = TFLiteModel(model_file).predict(self.val.images).astype(np.float64)
        measurement = gate_module.measure_gate(
            self.val.labels, self.float_probabilities, exported_probabilities, self.labels,
            options.max_balanced_accuracy_drop, options.min_agreement, enforced=options.gate,
            referral=self.run_folder.metrics.get("referral"),
        )
        self.lap("gate")
        gate_module.enforce(measurement.result, options.mode, options.qat)
        logger.info(measurement.result.summary())
        return measurement


__all__ = ["ExportOptions", "ExportResult", "export_model", "finetune_augment"]
