"""Magnitude pruning: fine-tune while the smallest weights are zeroed, up to a target sparsity.

:func:`prune_finetune` wraps every prunable layer (convolutions, depthwise convolutions, dense) with
``tfmot.sparsity.keras.prune_low_magnitude`` on a ``PolynomialDecay`` schedule from 0 to the target
sparsity, fine-tunes with the ``UpdatePruningStep`` callback, and returns the model with the pruning
wrappers stripped (``strip_pruning``): a plain classifier whose kernels are ``target_sparsity`` zeros.

The sparsity reaches its target at about three quarters of the fine-tuning steps, so the last quarter
lets the remaining weights recover. Pruning alone does not shrink a ``.tflite`` file (zeros are stored);
it shrinks after gzip, and ``int8`` + pruning is best kept with prune-preserving QAT
(:func:`dermtool.optimize.qat.quantization_aware_finetune` with ``prune_preserve=True``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dermtool import DermtoolError
from dermtool.models.registry import clone_with_weights
from dermtool.optimize.common import check_keras2_model, compile_and_fit, count_batches, variable_short_name

#: Share of the fine-tuning steps after which the target sparsity is reached.
RAMP_FRACTION = 0.75


@dataclass(frozen=True)
class SparsityReport:
    """Zero fraction of each prunable kernel and of all of them together."""

    overall: float
    zeros: int
    weights: int
    per_kernel: dict[str, float] = field(default_factory=dict)  # "layer/kernel" -> zero fraction

    def to_dict(self) -> dict[str, Any]:
        return {"overall": self.overall, "zeros": self.zeros, "weights": self.weights, "per_kernel": dict(self.per_kernel)}


def _prunable_kernels(model: Any) -> list[tuple[str, np.ndarray]]:
    """``(name, values)`` of the kernels that TF-MOT's magnitude pruning acts on: convolution and dense
    kernels, separable convolutions' pointwise kernels. Depthwise kernels are not pruned (TF-MOT's
    registry leaves them dense: they are tiny and every weight counts)."""
    import tf_keras as keras

    kernels = []
    for layer in model.layers:
        base = getattr(layer, "layer", layer)  # inside a pruning or quantization wrapper
        if isinstance(base, keras.layers.DepthwiseConv2D):
            continue
        if isinstance(base, keras.layers.SeparableConv2D):
            kernel_name = "pointwise_kernel"
        elif isinstance(base, (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D, keras.layers.Dense)):
            kernel_name = "kernel"
        else:
            continue
        # the variable itself (a wrapper may have replaced the layer attribute by a quantized tensor)
        variables = [weight for weight in layer.weights if variable_short_name(weight) == kernel_name]
        if variables:
            kernels.append((f"{base.name}/{kernel_name}", variables[0].numpy()))
    return kernels


def sparsity_report(model: Any) -> SparsityReport:
    """The share of exactly-zero weights in every prunable kernel (conv, dense) and overall."""
    kernels = _prunable_kernels(model)
    if not kernels:
        raise DermtoolError("the model has no prunable kernels (convolutions or dense layers)")
    per_kernel = {name: float(np.mean(values == 0)) for name, values in kernels}
    zeros = int(sum(int(np.sum(values == 0)) for _, values in kernels))
    weights = int(sum(values.size for _, values in kernels))
    return SparsityReport(overall=zeros / weights, zeros=zeros, weights=weights, per_kernel=per_kernel)


def pruning_schedule_steps(total_steps: int) -> tuple[int, int]:
    """``(end_step, frequency)`` of the PolynomialDecay schedule for ``total_steps`` training steps.

    The wrappers count steps from 1; masks are updated at steps that are multiples of ``frequency`` up to
    ``end_step`` (itself a multiple, so the last update applies exactly the target sparsity), at about
    :data:`RAMP_FRACTION` of training.
    """
    if total_steps < 1:
        raise DermtoolError("pruning needs at least one training step")
    ramp = max(1, int(round(total_steps * RAMP_FRACTION)))
    frequency = max(1, min(100, ramp // 10))
    end_step = max(frequency, (ramp // frequency) * frequency)
    return end_step, frequency


def prune_finetune(
    model: Any,
    train_dataset: Any,
    val_dataset: Any | None = None,
    target_sparsity: float = 0.5,
    epochs: int = 2,
    learning_rate: float = 1e-4,
    progress: bool = True,
    teacher: Any | None = None,
) -> Any:
    """Fine-tune ``model`` with magnitude pruning to ``target_sparsity``; returns the stripped model.

    ``model`` is not modified (pruning works on a clone). ``learning_rate``: pruning needs room to re-learn
    around the zeroed weights, a larger step than QAT's (``export.prune_learning_rate``, 1e-4).
    Datasets: ``(normalised images, one-hot)`` batches from :func:`dermtool.data.pipeline.make_dataset`,
    one pass per epoch. ``teacher``: distil from this model's softmax instead of the labels
    (:mod:`dermtool.optimize.distill`).
    """
    import tensorflow_model_optimization as tfmot

    check_keras2_model(model, "pruning")
    if not 0 < target_sparsity < 1:
        raise DermtoolError(f"target sparsity must be between 0 and 1 (e.g. 0.5), got {target_sparsity}")
    total_steps = count_batches(train_dataset) * epochs
    end_step, frequency = pruning_schedule_steps(total_steps)
    schedule = tfmot.sparsity.keras.PolynomialDecay(
        initial_sparsity=0.0, final_sparsity=float(target_sparsity), begin_step=0, end_step=end_step, frequency=frequency
    )
    try:
        pruned = tfmot.sparsity.keras.prune_low_magnitude(clone_with_weights(model), pruning_schedule=schedule)
    except ValueError as error:
        raise DermtoolError(f"cannot prune this model: {error}") from None
    compile_and_fit(
        pruned,
        train_dataset,
        val_dataset,
        epochs,
        learning_rate,
        callbacks=[tfmot.sparsity.keras.UpdatePruningStep()],
        description=f"pruning to {target_sparsity:.0%}",
        progress=progress,
        teacher=teacher,
    )
    return tfmot.sparsity.keras.strip_pruning(pruned)


__all__ = ["SparsityReport", "sparsity_report", "prune_finetune", "pruning_schedule_steps", "RAMP_FRACTION"]
