"""Grad-CAM: which regions of the image drove the float model's score for a class.

Grad-CAM (Selvaraju et al., 2017) weights the feature maps of the last convolutional layer by the spatially
averaged gradient of the class's *logit* and keeps the positive part. Here:

- The classifier is one flat tf_keras functional model (``dermtool.models.build_classifier``), so a model with
  outputs ``[last_conv_output, logits]`` is built directly from its graph. The layer comes from the registry
  (``ModelSpec.last_conv_layer_name``) or, failing that, is the last 4-D layer before ``pooled``. The model
  must be one flat functional model, as :func:`dermtool.models.build_classifier` builds them; a model with
  a nested sub-model is refused with a clear error.
- The score differentiated is, by default, the class's logit *minus the mean logit*
  (``target="contrastive"``), not the raw logit of the original paper (``target="logit"``). The softmax
  probabilities depend only on differences between logits: a feature map that raises every logit alike
  changes no probability, yet it dominates a raw-logit map (on dermoscopic images, raw-logit maps tend to
  light the dark vignette and the borders).
- The map is computed on the model input (``S x S``) and mapped back onto the original image, undoing the
  resize policy: ``squash`` stretches it back; ``center_crop`` places it on the central square (the cut-off
  sides, never seen by the model, are 0); ``pad`` drops the black borders. Values are in [0, 1] (1 = the
  hottest pixel).
- Memory stays bounded for any image the decoder accepts: the map is computed at model resolution
  (:attr:`ExplainResult.cam`); :attr:`ExplainResult.heatmap` upsamples it to the original size only when
  it is read, and the overlay is drawn at most :data:`OVERLAY_MAX_PIXELS` pixels large (the original size
  for ordinary photos, a downscaled copy for larger ones). No full-size float map is made for an overlay.
- A model whose logits or map are not finite (NaN, infinity) raises :class:`dermtool.ModelOutputError`:
  it is probed when the explainer is built, and every explanation is checked.
- :func:`overlay_png` draws the overlay with a colour bar and a caption (top probabilities and the
  disclaimer) with matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

import io
import os
import textwrap
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

from dermtool import DISCLAIMER, DermtoolError, check_finite_outputs
from dermtool.data.images import load_rgb
from dermtool.data.preprocess import normalize, resize
from dermtool.metrics import softmax
from dermtool.models.registry import get_spec
from dermtool.prediction.predictor import CLASS_NAMES, _cache_key, class_name
from dermtool.run import RunFolder

COLORMAP = "jet"
#: what the map explains: "contrastive" = logit_c - mean_j logit_j (softmax-invariant), "logit" = raw logit_c
TARGETS = ("contrastive", "logit")
DEFAULT_TARGET = "contrastive"
OVERLAY_ALPHA = 0.45
#: The overlay keeps the original size up to this many pixels; a larger image's overlay is downscaled.
OVERLAY_MAX_PIXELS = 4_000_000


@dataclass
class ExplainResult:
    """A Grad-CAM explanation of one image (nothing of it is written anywhere unless the caller does).

    ``cam`` is the map at model resolution; :attr:`heatmap` is the same map at the original image's size,
    computed on first access (a float32 array of the original's size: read it only if needed)."""

    cam: np.ndarray  # float32 (h, w) in [0, 1] over the model input (the conv layer's resolution)
    overlay: np.ndarray  # uint8 (H, W, 3): the image with the heat map blended in (<= OVERLAY_MAX_PIXELS)
    label: str  # the predicted (top-1) class
    probabilities: dict[str, float]  # calibrated probabilities, every class
    explained_label: str = ""  # the class whose score the map explains (= label unless asked otherwise)
    image_name: str = "<upload>"
    original_shape: tuple[int, int] = (0, 0)  # (height, width) of the original image
    image_size: int = 0  # the model input's side
    resize_policy: str = "squash"
    _heatmap: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def heatmap(self) -> np.ndarray:
        """float32 ``(H, W)`` in [0, 1] at the original image's size (computed lazily, then kept)."""
        if self._heatmap is None:
            height, width = self.original_shape
            self._heatmap = heatmap_to_original(self.cam, height, width, self.image_size, self.resize_policy)
        return self._heatmap


# ---- building the gradient model ---------------------------------------------------------------------


def _is_model(layer: Any) -> bool:
    import tf_keras as keras

    return isinstance(layer, keras.Model)


def _last_spatial_layer_name(model: Any) -> str | None:
    """The last layer with a 4-D output before the global pooling."""
    candidate = None
    for layer in model.layers:
        if layer.name == "pooled":
            break
        shape = getattr(layer, "output_shape", None)
        if isinstance(shape, tuple) and len(shape) == 4 and not layer.name.startswith("input"):
            candidate = layer.name
    return candidate


def _contains_layer(model: Any, name: str) -> bool:
    try:
        model.get_layer(name)
        return True
    except ValueError:
        return False


def _logits_layer(model: Any) -> Any:
    if _contains_layer(model, "logits"):
        return model.get_layer("logits")
    last = model.layers[-1]
    activation = getattr(last, "activation", None)
    if getattr(activation, "__name__", "") == "softmax" and len(model.layers) > 1:
        if hasattr(last, "kernel"):  # a Dense with a softmax activation: no separate logits tensor
            raise DermtoolError(
                "Grad-CAM needs the logits: this model's last Dense applies softmax itself; "
                "build it with a separate 'logits' layer (dermtool.models.build_classifier does)"
            )
        return model.layers[-2]
    raise DermtoolError("cannot find the logits layer (named 'logits') of the model")


class GradientModel:
    """``__call__(images) -> (conv_output, logits)`` of a flat tf_keras functional model: one
    ``keras.Model(inputs, [conv.output, logits.output])``. A model with a nested sub-model (a backbone inside
    a functional model or a Sequential) is refused: build the classifier flat, as
    :func:`dermtool.models.build_classifier` does."""

    def __init__(self, model: Any, layer_name: str | None = None) -> None:
        import tf_keras as keras

        nested = [layer.name for layer in model.layers if _is_model(layer)]
        if nested:
            raise DermtoolError(
                f"Grad-CAM needs one flat functional model; this one nests the sub-model(s) {', '.join(nested)} "
                "(build the classifier with dermtool.models.build_classifier)"
            )
        self.model = model
        name = layer_name or _last_spatial_layer_name(model)
        if name is None or not _contains_layer(model, name):
            raise DermtoolError(f"cannot find the convolutional layer {name!r} for Grad-CAM in the model")
        self.layer_name = name
        self.logits_name = _logits_layer(model).name
        self._flat = keras.Model(model.inputs, [model.get_layer(name).output, model.get_layer(self.logits_name).output])

    def __call__(self, images: Any) -> tuple[Any, Any]:
        conv, logits = self._flat(images, training=False)
        return conv, logits


def gradcam_maps(
    gradient_model: GradientModel,
    inputs: np.ndarray,
    class_indices: Sequence[int] | None = None,
    target: str = DEFAULT_TARGET,
):
    """Grad-CAM maps at the conv layer's resolution for a normalised float batch.

    Returns ``(maps float32 (N, h, w) in [0, 1], logits float32 (N, C), class_indices)``; ``class_indices``
    None means each image's top-1 class. ``target``: ``"contrastive"`` (default) differentiates
    ``logit_c - mean_j logit_j``, ``"logit"`` the raw ``logit_c`` (the original Grad-CAM); see the module
    docstring.
    """
    import tensorflow as tf

    batch = tf.convert_to_tensor(inputs, dtype=tf.float32)
    with tf.GradientTape() as tape:
        conv, logits = gradient_model(batch)
        tape.watch(conv)
        if class_indices is None:
            chosen = tf.argmax(logits, axis=1, output_type=tf.int32)
        else:
            chosen = tf.constant(list(class_indices), dtype=tf.int32)
        if target not in TARGETS:
            raise DermtoolError(f"Grad-CAM target {target!r} is not one of {', '.join(TARGETS)}")
        class_logits = tf.gather(logits, chosen, axis=1, batch_dims=1)
        if target == "contrastive":
            class_logits = class_logits - tf.reduce_mean(logits, axis=1)
        score = tf.reduce_sum(class_logits)
    gradients = tape.gradient(score, conv)
    if gradients is None:
        raise DermtoolError(f"no gradient flows from the logits to layer {gradient_model.layer_name!r}")
    weights = tf.reduce_mean(tf.cast(gradients, tf.float32), axis=(1, 2), keepdims=True)
    maps = tf.nn.relu(tf.reduce_sum(weights * tf.cast(conv, tf.float32), axis=-1)).numpy()
    peaks = maps.reshape(len(maps), -1).max(axis=1)
    maps = np.where(peaks[:, None, None] > 0, maps / np.maximum(peaks, 1e-12)[:, None, None], 0.0)
    return maps.astype(np.float32), tf.cast(logits, tf.float32).numpy(), chosen.numpy().tolist()


# ---- mapping back onto the original image -------------------------------------------------------------


def _resize_float(values: np.ndarray, width: int, height: int) -> np.ndarray:
    picture = Image.fromarray(np.ascontiguousarray(values, dtype=np.float32), mode="F")
    return np.asarray(picture.resize((int(width), int(height)), Image.Resampling.BILINEAR), dtype=np.float32)


def heatmap_to_original(heatmap: np.ndarray, height: int, width: int, image_size: int, policy: str) -> np.ndarray:
    """Map a heat map over the model input (any resolution) back onto the ``height x width`` original,
    undoing ``policy`` (see the module docstring); result float32 in [0, 1]."""
    square = _resize_float(heatmap, image_size, image_size)
    if policy == "squash":
        result = _resize_float(square, width, height)
    elif policy == "center_crop":
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        result = np.zeros((height, width), np.float32)
        result[top : top + side, left : left + side] = _resize_float(square, side, side)
    elif policy == "pad":
        scale = image_size / max(height, width)
        new_width = min(image_size, max(1, round(width * scale)))
        new_height = min(image_size, max(1, round(height * scale)))
        left, top = (image_size - new_width) // 2, (image_size - new_height) // 2
        content = square[top : top + new_height, left : left + new_width]
        result = _resize_float(content, width, height)
    else:
        raise DermtoolError(f"unknown resize policy {policy!r}")
    result = np.clip(result, 0.0, None)
    peak = float(result.max())
    return (result / peak if peak > 0 else result).astype(np.float32)


def colorize(heatmap: np.ndarray) -> np.ndarray:
    """uint8 RGB of a [0, 1] heat map with :data:`COLORMAP` (a 256-entry lookup table: no float image)."""
    import matplotlib

    table = (matplotlib.colormaps[COLORMAP](np.linspace(0.0, 1.0, 256))[:, :3] * 255).round().astype(np.uint8)
    levels = np.clip(np.nan_to_num(np.asarray(heatmap, dtype=np.float32)), 0, 1) * 255
    return table[np.rint(levels).astype(np.uint8)]


def blend(image: np.ndarray, heatmap: np.ndarray, alpha: float = OVERLAY_ALPHA) -> np.ndarray:
    """The image with the coloured heat map blended in (uint8 RGB, the image's size)."""
    mixed = (1 - alpha) * image.astype(np.float32) + alpha * colorize(heatmap).astype(np.float32)
    return np.clip(mixed.round(), 0, 255).astype(np.uint8)


def overlay_shape(height: int, width: int, max_pixels: int = OVERLAY_MAX_PIXELS) -> tuple[int, int]:
    """``(height, width)`` of the overlay of a ``height x width`` image: the same up to ``max_pixels``,
    else scaled down to fit, keeping the aspect ratio."""
    if height * width <= max_pixels:
        return height, width
    scale = (max_pixels / (height * width)) ** 0.5
    return max(1, int(height * scale)), max(1, int(width * scale))


# ---- the explainer -------------------------------------------------------------------------------------


class Explainer:
    """Grad-CAM on a run folder's float model. Thread-safe; the gradient model is built once."""

    def __init__(self, run_path: str | os.PathLike, layer_name: str | None = None, model: Any = None) -> None:
        """``model``: an already loaded tf_keras classifier of this run (reused instead of loading it again)."""
        path = Path(run_path)
        if path.is_file() and path.suffix.lower() == ".tflite":
            raise DermtoolError(
                f"{path}: Grad-CAM needs gradients of the float model; give the run folder it was exported from"
            )
        if not path.is_dir():
            raise DermtoolError(f"{path}: not a run folder (Grad-CAM needs a run folder written by `dermtool train`)")

        self.run = RunFolder(path)
        self.labels = list(self.run.labels)
        self.input_spec = self.run.input_spec
        self.temperature = float(self.run.temperature or 1.0)
        model = self.run.load_model() if model is None else model
        self.gradient_model = GradientModel(model, layer_name or self._registry_layer_name())
        self._lock = threading.Lock()
        size = int(self.input_spec.image_size)  # fail closed now: a NaN model must not load
        self.maps(np.full((1, size, size, 3), 128, dtype=np.uint8))

    def _registry_layer_name(self) -> str | None:
        try:
            return get_spec(self.run.config.model.name).last_conv_layer_name
        except Exception:  # unknown backbone or no registry entry: find the layer from the graph
            return None

    def class_index(self, class_name: str | None) -> int | None:
        if class_name is None:
            return None
        label = class_name.strip().lower()
        if label not in self.labels:
            by_name = {name: code for code, name in CLASS_NAMES.items()}
            label = by_name.get(label, label)
        if label not in self.labels:
            raise DermtoolError(f"unknown class {class_name!r}; the model's classes are {', '.join(self.labels)}")
        return self.labels.index(label)

    def maps(
        self, model_inputs_uint8: np.ndarray, class_indices: Sequence[int] | None = None, target: str | None = None
    ):
        """``(maps (N, h, w), calibrated probabilities (N, C), class_indices)`` for model-input uint8 images.

        ``target``: ``"contrastive"`` (default) or ``"logit"`` (see :func:`gradcam_maps`)."""
        inputs = normalize(np.asarray(model_inputs_uint8), self.input_spec)
        with self._lock:
            maps, logits, chosen = gradcam_maps(self.gradient_model, inputs, class_indices, target or DEFAULT_TARGET)
        check_finite_outputs(logits, self.run.path)  # a corrupt model explains nothing (fail closed)
        check_finite_outputs(maps, self.run.path)
        return maps, np.asarray(softmax(logits, temperature=self.temperature)), chosen

    def heatmap_for_original(self, heatmap: np.ndarray, height: int, width: int) -> np.ndarray:
        spec = self.input_spec
        return heatmap_to_original(heatmap, height, width, spec.image_size, spec.resize_policy)

    def explain(self, image: Any, class_name: str | None = None, target: str | None = None) -> ExplainResult:
        """Explain one image (path, bytes or uint8 HxWx3 array) for its top class or ``class_name``."""
        if isinstance(image, np.ndarray):
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
                raise DermtoolError(f"an image array must be uint8 (height, width, 3), got {image.dtype} {image.shape}")
            original, name = image, "<upload>"
        elif isinstance(image, (bytes, bytearray, memoryview)):
            original, name = load_rgb(bytes(image)), "<upload>"
        else:
            original, name = load_rgb(image), str(image)
        spec = self.input_spec
        model_input = resize(original, spec.image_size, spec.resize_policy)
        index = self.class_index(class_name)
        maps, probabilities, chosen = self.maps(model_input[None], None if index is None else [index], target)
        height, width = original.shape[:2]
        shown_height, shown_width = overlay_shape(height, width)
        if (shown_height, shown_width) != (height, width):  # a large image: the overlay is drawn smaller
            shown = np.asarray(Image.fromarray(original).resize((shown_width, shown_height), Image.Resampling.BILINEAR,
                                                                reducing_gap=3.0))
        else:
            shown = original
        del original
        row = probabilities[0]
        shown_heatmap = self.heatmap_for_original(maps[0], shown_height, shown_width)
        return ExplainResult(
            cam=maps[0],
            overlay=blend(shown, shown_heatmap),
            label=self.labels[int(np.argmax(row))],
            probabilities={label: float(p) for label, p in zip(self.labels, row)},
            explained_label=self.labels[int(chosen[0])],
            image_name=name,
            original_shape=(height, width),
            image_size=int(spec.image_size),
            resize_policy=spec.resize_policy,
            _heatmap=shown_heatmap if (shown_height, shown_width) == (height, width) else None,
        )


def overlay_png(result: ExplainResult, top_k: int = 3, dpi: int = 100) -> bytes:
    """A PNG of the overlay with a colour bar and a caption (top probabilities and the disclaimer)."""
    from matplotlib import colors
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.cm import ScalarMappable
    from matplotlib.figure import Figure

    height, width = result.overlay.shape[:2]
    figure_width, image_fraction, title_height, caption_height = 6.4, 0.8, 0.4, 0.8  # inches / fraction
    image_height = figure_width * image_fraction * height / width
    total_height = image_height + title_height + caption_height
    figure = Figure(figsize=(figure_width, total_height), dpi=dpi)
    FigureCanvasAgg(figure)
    bottom, box_height = caption_height / total_height, image_height / total_height
    axes = figure.add_axes([0.03, bottom, image_fraction, box_height])
    axes.imshow(result.overlay, interpolation="bilinear")
    axes.set_axis_off()
    explained = result.explained_label or result.label
    axes.set_title(f"Grad-CAM: regions behind \u201c{class_name(explained)}\u201d", fontsize=10)
    bar_axes = figure.add_axes([0.03 + image_fraction + 0.03, bottom, 0.03, box_height])
    mappable = ScalarMappable(norm=colors.Normalize(0, 1), cmap=COLORMAP)
    bar = figure.colorbar(mappable, cax=bar_axes)
    bar.set_label("relative importance", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    ranked = sorted(result.probabilities.items(), key=lambda item: -item[1])[:top_k]
    top_text = "   ".join(f"{class_name(label)} ({label}): {p * 100:.1f} %" for label, p in ranked)
    caption = "\n".join(textwrap.wrap(top_text, 95) + textwrap.wrap(DISCLAIMER, 105))
    figure.text(0.03, (caption_height - 0.1) / total_height, caption, fontsize=7, va="top", ha="left")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


# ---- module-level convenience (dermtool.explain) --------------------------------------------------------

_EXPLAINERS: dict[tuple[str, float], Explainer] = {}
_EXPLAINERS_LOCK = threading.Lock()


def get_explainer(model: Any) -> Explainer:
    """A cached :class:`Explainer` per resolved run folder.

    ``model``: a run folder path, an :class:`Explainer`, or a :class:`~dermtool.prediction.predictor.Predictor` of a
    run folder (its loaded Keras model is reused).
    """
    if isinstance(model, Explainer):
        return model
    loaded = None
    if hasattr(model, "model_path") and hasattr(model, "kind"):  # a Predictor
        if model.kind != "run":
            raise DermtoolError(
                f"{model.model_path}: Grad-CAM needs gradients of the float model; give the run folder it was "
                "exported from"
            )
        loaded = model._shared.backend.model  # reuse the Predictor's loaded Keras model
        model = model.model_path

    key = _cache_key(model)
    with _EXPLAINERS_LOCK:
        if key not in _EXPLAINERS:
            _EXPLAINERS[key] = Explainer(model, model=loaded)
        return _EXPLAINERS[key]


def explain(image: Any, model: Any, class_name: str | None = None) -> ExplainResult:
    """``dermtool.explain``: a Grad-CAM :class:`ExplainResult` for one image.

    ``model``: a run folder, or a run-folder :class:`~dermtool.prediction.predictor.Predictor` (a .tflite has no
    gradients: DermtoolError).
    """
    return get_explainer(model).explain(image, class_name=class_name)


__all__ = [
    "OVERLAY_MAX_PIXELS",
    "ExplainResult",
    "Explainer",
    "GradientModel",
    "blend",
    "colorize",
    "explain",
    "get_explainer",
    "gradcam_maps",
    "heatmap_to_original",
    "overlay_png",
    "overlay_shape",
]
