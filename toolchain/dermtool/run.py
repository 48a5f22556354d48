"""A run folder: everything ``dermtool train`` leaves behind, and the one way to read it back.

Layout (see ``docs/contract.md``, "A run folder")::

    RUN/
      model.keras          the classifier (tf_keras), best epoch's weights, float32
      labels.txt           one class per line, in output order
      input_spec.json      InputSpec.to_dict(): image size, resize policy, mean, std
      metrics.json         {"val": {...}, "test": {...}, "temperature": T, ...}
      config.toml          the resolved configuration
      split.csv            image_id,label,group,split
      history.csv          one row per epoch
      confusion_matrix.png, training_curves.png
      checkpoints/         per-epoch checkpoints (resume)
      logs/                TensorBoard scalars

Example::

    run = RunFolder("runs/ham10000_cpu")
    probabilities = run.predict_probabilities(uint8_images)   # calibrated, N x len(run.labels)

This module imports TensorFlow only inside the methods that need a model.
"""

from __future__ import annotations

import csv
import json
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from dermtool import DermtoolError, metrics
from dermtool.config import load_config
from dermtool.data.preprocess import InputSpec, normalize
from dermtool.data.split import read_split_csv
from dermtool.files import check_regular_file, read_text_file
from dermtool.models import color_constancy

MODEL_FILE = "model.keras"
LABELS_FILE = "labels.txt"
INPUT_SPEC_FILE = "input_spec.json"
METRICS_FILE = "metrics.json"
CONFIG_FILE = "config.toml"
SPLIT_FILE = "split.csv"
HISTORY_FILE = "history.csv"
CONFUSION_MATRIX_FILE = "confusion_matrix.png"
TRAINING_CURVES_FILE = "training_curves.png"
CHECKPOINTS_DIR = "checkpoints"
LOGS_DIR = "logs"

# Above this many images, predictions run as a traced tf.function (graph mode fuses convolution, BatchNorm
# and activation: much less CPU than eager calls); below, tracing would cost more than it saves.
GRAPH_MODE_MIN_IMAGES = 256

# What a finished run must hold to be used by evaluate, export, bench, predict and explain.
REQUIRED_FILES = (MODEL_FILE, LABELS_FILE, INPUT_SPEC_FILE, METRICS_FILE)
# Everything train writes (used to clear a folder on --overwrite without touching anything else).
RUN_ENTRIES = REQUIRED_FILES + (CONFIG_FILE, SPLIT_FILE, HISTORY_FILE, CONFUSION_MATRIX_FILE,
                                TRAINING_CURVES_FILE, CHECKPOINTS_DIR, LOGS_DIR, "train.log")


class LogitsPredictor:
    """float64 logits (N x C) of a logits model (a Keras model whose output is the ``logits`` layer), in order.

    Up to :data:`GRAPH_MODE_MIN_IMAGES` images, eager calls; above, one ``tf.function`` traced once for any
    batch size and kept for later calls. Used by training (validation and test datasets) and by
    :meth:`RunFolder.predict_logits`.
    """

    def __init__(self, logits_model: Any) -> None:
        self.model = logits_model
        self._graph_function = None

    def _function(self):
        if self._graph_function is None:
            import tensorflow as tf

            model = self.model
            shape = (None, *model.input_shape[1:])

            @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32)])
            def logits_of(images):
                return tf.cast(model(images, training=False), tf.float32)

            self._graph_function = logits_of
        return self._graph_function

    def predict_batches(self, batches: Any, count: int) -> np.ndarray:
        """Logits of an iterable of normalised image batches holding ``count`` images in all."""
        call = self._function() if count > GRAPH_MODE_MIN_IMAGES else (
            lambda images: self.model(images, training=False))
        outputs = [np.asarray(call(images), dtype=np.float64) for images in batches]
        if not outputs:
            return np.zeros((0, int(self.model.output_shape[-1])), dtype=np.float64)
        return np.concatenate(outputs, axis=0)

    def __call__(self, dataset: Any, count: int) -> np.ndarray:
        """Logits of an un-augmented dataset of ``(images, labels)`` batches holding ``count`` images."""
        return self.predict_batches((images for images, _ in dataset), count)


class RunFolder:
    """A finished training run. Raises :class:`DermtoolError` naming the missing file if ``path`` is not one."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise DermtoolError(f"{self.path}: no such run folder (train one with `dermtool train`)")
        missing = [name for name in REQUIRED_FILES if not (self.path / name).is_file()]
        if missing:
            hint = ""
            if (self.path / CHECKPOINTS_DIR).is_dir():
                hint = " (training did not finish: continue it with `dermtool train --resume`)"
            raise DermtoolError(
                f"{self.path} is not a finished run folder: missing {', '.join(missing)}{hint}"
            )
        self._cached_logits_predictor = None

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    # ---- files -------------------------------------------------------------------------------------
    @property
    def model_path(self) -> Path:
        return self.path / MODEL_FILE

    def file(self, name: str) -> Path:
        """The path of ``name`` inside the run; a DermtoolError if it does not exist."""
        path = self.path / name
        if not path.exists():
            raise DermtoolError(f"{self.path}: missing {name}")
        return path

    @cached_property
    def labels(self) -> list[str]:
        """Class names in the model's output order."""
        lines = read_text_file(self.file(LABELS_FILE), "run file").splitlines()
        labels = [line.strip() for line in lines if line.strip()]
        if not labels:
            raise DermtoolError(f"{self.path / LABELS_FILE}: no labels")
        return labels

    @cached_property
    def input_spec(self):
        """The :class:`dermtool.data.preprocess.InputSpec` the model was trained with."""
        return InputSpec.from_dict(self._read_json(INPUT_SPEC_FILE))

    @cached_property
    def metrics(self) -> dict[str, Any]:
        """The parsed metrics.json."""
        return self._read_json(METRICS_FILE)

    @property
    def temperature(self) -> float:
        """The calibration temperature fitted on the validation split (1.0 if none was recorded)."""
        value = self.metrics.get("temperature", 1.0)
        try:
            temperature = float(value)
        except (TypeError, ValueError):
            raise DermtoolError(f"{self.path / METRICS_FILE}: temperature {value!r} is not a number") from None
        if not np.isfinite(temperature) or temperature <= 0:
            raise DermtoolError(f"{self.path / METRICS_FILE}: temperature must be positive, got {value!r}")
        return temperature

    @cached_property
    def config(self):
        """The resolved :class:`dermtool.config.Config` of the run (from config.toml)."""
        return load_config(self.file(CONFIG_FILE))

    @cached_property
    def split_rows(self) -> list:
        """The rows of split.csv (``SplitRow``: image_id, label, group, split)."""
        return read_split_csv(self.file(SPLIT_FILE))

    @property
    def history(self) -> list[dict[str, str]]:
        """The rows of history.csv as dicts of strings (empty if the file is missing)."""
        path = self.path / HISTORY_FILE
        if not path.is_file():
            return []
        with open(path, newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))

    def _read_json(self, name: str) -> dict[str, Any]:
        path = self.file(name)
        try:
            value = json.loads(read_text_file(path, "run file"))
        except json.JSONDecodeError as error:
            raise DermtoolError(f"{path}: not valid JSON ({error})") from None
        if not isinstance(value, dict):
            raise DermtoolError(f"{path}: expected a JSON object")
        return value

    # ---- model -------------------------------------------------------------------------------------
    def load_model(self):
        """A fresh tf_keras model from model.keras (``compile=False``); callers may modify it freely."""
        import tf_keras as keras

        color_constancy.register()  # a model trained with [model] color_constancy has this layer
        check_regular_file(self.model_path, "model file", model=True)  # not a FIFO or a link to /dev/zero
        try:
            return keras.models.load_model(self.model_path, compile=False)
        except (OSError, ValueError) as error:
            raise DermtoolError(f"{self.model_path}: cannot load the model ({error})") from None

    def logits_model(self, model=None):
        """A model from the same input to the "logits" layer (uncalibrated, before the softmax).

        Shares weights with ``model`` (a freshly loaded one when omitted).
        """
        import tf_keras as keras

        model = self.load_model() if model is None else model
        try:
            logits = model.get_layer("logits").output
        except ValueError:
            raise DermtoolError(f"{self.model_path}: the model has no layer named 'logits'") from None
        return keras.Model(model.inputs, logits, name="logits_model")

    def use_model(self, model) -> None:
        """Predict with ``model``, already loaded from this run's model.keras, instead of loading it again."""
        self._cached_logits_predictor = LogitsPredictor(self.logits_model(model))

    def predict_logits(self, uint8_images: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """Uncalibrated logits (float64, N x C) for ``load_image`` outputs (uint8 N x S x S x 3).

        The model is loaded once per RunFolder and reused by later calls.
        """
        images = np.asarray(uint8_images)
        size = self.input_spec.image_size
        if images.ndim != 4 or images.shape[1:] != (size, size, 3):
            raise DermtoolError(
                f"expected uint8 images of shape (N, {size}, {size}, 3) for this model, got {images.shape}"
            )
        if self._cached_logits_predictor is None:
            self._cached_logits_predictor = LogitsPredictor(self.logits_model())
        batches = (normalize(images[start:start + batch_size], self.input_spec)
                   for start in range(0, len(images), batch_size))
        return self._cached_logits_predictor.predict_batches(batches, len(images))

    def predict_probabilities(self, uint8_images: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """Calibrated probabilities ``softmax(logits / T)`` (float64, N x C), columns in ``labels`` order."""
        return metrics.softmax(self.predict_logits(uint8_images, batch_size), self.temperature)
