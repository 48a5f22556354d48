"""What pruning and quantization-aware fine-tuning share: model checks, batch counting, the training loop."""

from __future__ import annotations

import logging
from typing import Any, Sequence

from dermtool import DermtoolError
from dermtool.optimize.distill import distillation_model

logger = logging.getLogger(__name__)


def variable_short_name(variable: Any) -> str:
    """A variable's own name without its layer scope and index: ``"quant_x/kernel_min:0"`` -> ``"kernel_min"``."""
    return variable.name.split("/")[-1].split(":")[0]


def check_keras2_model(model: Any, purpose: str) -> None:
    """TF-MOT accepts only tf_keras (Keras 2) models: a clear error for anything else."""
    import tf_keras as keras

    if not isinstance(model, keras.Model):
        raise DermtoolError(
            f"{purpose} needs a tf_keras (Keras 2) model, got {type(model).__module__}.{type(model).__name__}; "
            "load it with `import tf_keras as keras` (and TF_USE_LEGACY_KERAS=1, which `import dermtool` sets)"
        )
    if isinstance(model, keras.Sequential) or not getattr(model, "_is_graph_network", False):
        raise DermtoolError(f"{purpose} needs a functional tf_keras model (a dermtool classifier is one)")


def freeze_batch_normalization(model: Any) -> int:
    """Keep every BatchNormalization layer (also inside TF-MOT wrappers) frozen, in inference mode.

    The float model was trained with BatchNorm frozen (its moving statistics are the ones its weights were
    tuned to, see :func:`dermtool.models.registry.set_trainable`). Fine-tuning it for QAT or pruning with
    BatchNorm in training mode would normalise with batch statistics and drag the moving statistics away
    from what the weights expect, which wrecks the fine-tuned model. Returns how many were frozen.
    """
    import tf_keras as keras

    frozen = 0
    for layer in model.layers:
        inner = getattr(layer, "layer", layer)  # QuantizeWrapperV2 / PruneLowMagnitude keep the layer in .layer
        if isinstance(inner, keras.layers.BatchNormalization):
            inner.trainable = False
            frozen += 1
    return frozen


def count_batches(dataset: Any) -> int:
    """Batches in one pass over a finite ``tf.data.Dataset`` (iterates once if TF cannot tell)."""
    import tensorflow as tf

    cardinality = int(dataset.cardinality())
    if cardinality == tf.data.INFINITE_CARDINALITY:
        raise DermtoolError("fine-tuning needs a finite dataset (one pass = one epoch); it must not repeat")
    if cardinality >= 0:
        return cardinality
    return sum(1 for _ in dataset)


def progress_callback(description: str, steps: int, enabled: bool = True) -> Any:
    """A Keras callback showing one tqdm bar per epoch on stderr (auto-off when stderr is not a terminal)
    and, when ``enabled``, one summary line per epoch on stderr, terminal or not (a QAT epoch of
    EfficientNet-Lite0 takes about 8 minutes on 2 CPU cores: a redirected log must show that it moves)."""
    import sys

    import tf_keras as keras
    from tqdm import tqdm

    class TqdmProgress(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.bar = tqdm(
                total=steps,
                desc=f"{description} epoch {epoch + 1}/{self.params.get('epochs', '?')}",
                unit="batch",
                disable=None if enabled else True,
            )

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            self.bar.update(1)
            if logs and "loss" in logs:
                self.bar.set_postfix(loss=f"{float(logs['loss']):.4f}")

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            self.bar.close()
            if not logs:
                return
            line = (f"{description} epoch {epoch + 1}/{self.params.get('epochs', '?')}: "
                    + ", ".join(f"{key} {float(value):.4f}" for key, value in logs.items()))
            if enabled:
                tqdm.write(line, file=sys.stderr)
            else:
                logger.info("%s", line)

    return TqdmProgress()


def compile_and_fit(
    model: Any,
    train_dataset: Any,
    val_dataset: Any | None,
    epochs: int,
    learning_rate: float,
    callbacks: Sequence[Any] = (),
    description: str = "fine-tune",
    progress: bool = True,
    teacher: Any | None = None,
) -> dict[str, list[float]]:
    """Fine-tune a softmax classifier with Adam; returns the Keras history.

    The loss is categorical cross-entropy against the labels, or, with a ``teacher`` (the float model),
    the divergence from the teacher's softmax (:mod:`dermtool.optimize.distill`). The datasets yield
    ``(normalised float32 images, one-hot float32 labels)`` batches
    (:func:`dermtool.data.pipeline.make_dataset`); one pass is one epoch.
    """
    import tf_keras as keras

    if epochs < 1:
        raise DermtoolError(f"fine-tuning needs at least one epoch, got {epochs}")
    if not learning_rate > 0:
        raise DermtoolError(f"the learning rate must be positive, got {learning_rate}")
    freeze_batch_normalization(model)
    steps = count_batches(train_dataset)
    if steps < 1:
        raise DermtoolError("fine-tuning needs training images, but the training dataset is empty")
    if teacher is not None:
        model = distillation_model(model, teacher)  # trains the same student variables
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate))
    else:
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
            loss=keras.losses.CategoricalCrossentropy(),
            metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
        )
    history = model.fit(
        train_dataset,
        validation_data=val_dataset,
        epochs=epochs,
        verbose=0,
        callbacks=[*callbacks, progress_callback(description, steps, progress)],
    )
    return {key: [float(value) for value in values] for key, values in history.history.items()}


__all__ = ["check_keras2_model", "count_batches", "freeze_batch_normalization", "compile_and_fit", "progress_callback"]
