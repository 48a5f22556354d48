"""``ExportRecord``: one record of what an export produced, filled by the export's steps in their order.

:func:`dermtool.export.tflite.export_model` runs its steps one after the other; each step writes its
products into the one :class:`ExportRecord` (the fields below are grouped by the step that fills them),
and the two things written at the end are built from that record alone, plus the run folder it came from:
the model card (:func:`dermtool.export.model_card.build_model_card`) and the result
(:class:`dermtool.export.tflite.ExportResult`, what ``dermtool export --json`` prints).

Pure Python; no TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dermtool.export.gate import GateMeasurement


@dataclass
class ExportRecord:
    """What one export produced, field by field in the order of the steps that fill them."""

    # check_arguments: where the model goes and how it is converted (the options as resolved)
    model_path: Path
    mode: str  # "float" | "fp16" | "dynamic" | "int8"
    io_type: str  # the model's input/output type, dermtool.export.convert.effective_io
    qat: bool = False
    prune: float = 0.0  # target sparsity of the pruning fine-tune (0: none)
    # read_run: what the run adds to the model
    fusion: dict[str, Any] | None = None  # RUN/fusion.json (dermtool fuse), carried in dermtool.json
    fusion_report: dict[str, Any] | None = None  # RUN/fusion_report.json (only read when fusion is carried)
    lesion_check: bool = False  # True when the model gets the lesion check as its second output
    # load_training_images: the int8 calibration images
    representative_images: int = 0
    # optimise: the fine-tunes and the int8 bias correction, as run
    fine_tune_target: str | None = None  # "float model (distillation)", "labels", or None (no fine-tuning)
    fine_tune_epochs: dict[str, int] = field(default_factory=dict)  # {"prune": N, "qat": N}
    fine_tune_learning_rates: dict[str, float] = field(default_factory=dict)  # {"prune": r, "qat": r}
    bias_correction: dict[str, Any] | None = None  # BiasCorrectionReport.to_dict(), or None when not applied
    # convert: the converted model's sparsity and tensor quantisation
    sparsity: float = 0.0  # zero fraction of the prunable kernels
    input_quantization: dict[str, Any] = field(default_factory=dict)  # {dtype, scale, zero_point}
    output_quantization: dict[str, Any] = field(default_factory=dict)
    # attach_metadata: what dermtool.json holds beyond the run (lesion_check, multi_photo, fusion, sources ...)
    model_metadata: dict[str, Any] | None = None
    # gate_and_write: the file's size and the gate's measurement (None without validation images)
    size_bytes: int = 0
    gzip_bytes: int = 0
    gate: GateMeasurement | None = None

    @property
    def gate_dict(self) -> dict[str, Any] | None:
        """The gate's verdict as written in the model card and the --json summary (None: not measured)."""
        return self.gate.result.to_dict() if self.gate is not None else None


__all__ = ["ExportRecord"]
