"""Colour constancy inside the model: the shades-of-grey layer (Finlayson & Trezzi 2004).

Different dermatoscopes and phone cameras light and white-balance a lesion differently; the best ISIC 2018
entries (Barata et al. 2014; Ng et al. 2018) undid that with shades of grey before the network. dermtool puts
it INSIDE the model, as its first layer, so every consumer gets it for free: ``predict``, ``bench``, the
exported TFLite model and an app that hands MediaPipe a camera frame all run the same arithmetic, and no
app has to port a preprocessing step.

Per image and channel ``c`` (pixels ``p`` in [0, 1]):

    e_c    = mean(p_c ** power) ** (1 / power)       the illuminant estimate (power 1: grey world;
                                                     large power: white patch; 6: the ISIC choice)
    gain_c = mean(e_r, e_g, e_b) / e_c               the cast is removed, overall brightness kept
    p'_c   = gain_c * p_c

The layer works on the model's normalised input ``x = (pixel - mean) / std`` and returns the normalised
corrected image, written as ``x * gain + (mean / std) * (gain - 1)`` (one multiply-add per pixel; no
clipping). Two choices are for int8, where the converter keeps ``POW`` in float and quantises the rest:
clipping with constants made the quantised multiply collapse, and the power is taken of ``p / max_c`` (then
scaled back), so that a dark channel's powers are not rounded to zero before the mean (one phone photo in
40 was off by 16 pixel levels without it, none by more than about one level with it). The converted layer
differs from the float one by about one pixel level (``tests/models/test_color_constancy.py``).

Off by default: measured against the two-source model, it raised an unseen dermoscopic source's balanced
accuracy but lowered its melanoma referral sensitivity and made the int8 model slower (the figures:
``docs/experiments.md`` section 7, "Third attempt").

The layer has no weights. It is registered with Keras (``dermtool>ShadesOfGrey``), so ``model.keras``
files load in safe mode once this module is imported (:meth:`dermtool.run.RunFolder.load_model` does).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dermtool.config import COLOR_CONSTANCY_METHODS, check_color_constancy

#: ``[model] color_constancy`` values.
LAYER_NAME = "color_constancy"
#: An illuminant estimate below this (pixel value ~2.5 of 255 in every channel) is treated as this.
MIN_ILLUMINANT = 1e-2


def shades_of_grey_numpy(pixels: np.ndarray, power: float = 6.0) -> np.ndarray:
    """The reference arithmetic on uint8 (or float 0-255) ``(..., H, W, 3)`` images; float64 0-255 out."""
    values = np.asarray(pixels, dtype=np.float64) / 255.0
    illuminant = np.mean(values ** power, axis=(-3, -2), keepdims=True) ** (1.0 / power)
    gain = np.mean(illuminant, axis=-1, keepdims=True) / np.maximum(illuminant, MIN_ILLUMINANT)
    return values * gain * 255.0


def _layer_class() -> type:
    import tensorflow as tf
    import tf_keras as keras

    @keras.saving.register_keras_serializable(package="dermtool")
    class ShadesOfGrey(keras.layers.Layer):
        """Shades-of-grey colour constancy on a normalised image batch (see the module docstring)."""

        def __init__(self, power: float = 6.0, mean: float = 127.0, std: float = 128.0, **kwargs: Any) -> None:
            kwargs.setdefault("trainable", False)
            super().__init__(**kwargs)
            check_color_constancy("shades_of_grey", power)
            self.power = float(power)
            self.mean = float(mean)
            self.std = float(std)

        def call(self, inputs: Any) -> Any:
            pixels = tf.nn.relu(inputs * (self.std / 255.0) + self.mean / 255.0)
            # e = max * mean((p / max) ** power) ** (1 / power): the same number as mean(p ** power) ** (1 / power),
            # but the powers of a dark channel keep their precision when int8 quantises them before the mean
            brightest = tf.maximum(tf.reduce_max(pixels, axis=[1, 2], keepdims=True), MIN_ILLUMINANT)
            moment = tf.reduce_mean(tf.pow(pixels / brightest, self.power), axis=[1, 2], keepdims=True)
            illuminant = brightest * tf.pow(moment + 1e-12, 1.0 / self.power)
            gain = tf.reduce_mean(illuminant, axis=-1, keepdims=True) / tf.maximum(illuminant, MIN_ILLUMINANT)
            return inputs * gain + (self.mean / self.std) * (gain - 1.0)

        def compute_output_shape(self, input_shape: Any) -> Any:
            return input_shape

        def get_prunable_weights(self) -> list:
            """Nothing to prune (TF-MOT's pruning wrapper asks every layer)."""
            return []

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "power": self.power, "mean": self.mean, "std": self.std}

    return ShadesOfGrey


_CLASS: type | None = None


def shades_of_grey_class() -> type:
    """The registered ``ShadesOfGrey`` tf_keras layer class (TensorFlow is imported on first call)."""
    global _CLASS
    if _CLASS is None:
        _CLASS = _layer_class()
    return _CLASS


def color_constancy_layer(method: str, power: float, mean: float, std: float) -> Any | None:
    """The first layer for ``[model] color_constancy`` (None for "none")."""
    check_color_constancy(method, power)
    if method == "none":
        return None
    return shades_of_grey_class()(power=power, mean=mean, std=std, name=LAYER_NAME)


def register() -> None:
    """Make ``model.keras`` files with this layer loadable (call before ``keras.models.load_model``)."""
    shades_of_grey_class()


__all__ = [
    "COLOR_CONSTANCY_METHODS",
    "LAYER_NAME",
    "check_color_constancy",
    "shades_of_grey_numpy",
    "shades_of_grey_class",
    "color_constancy_layer",
    "register",
]
