"""Typed configuration: TOML files in ``configs/`` loaded into dataclasses, with command-line overrides.

A config file has up to five sections, ``[data]``, ``[augment]``, ``[model]``, ``[train]`` and ``[export]``;
every key is optional and falls back to the defaults below. An unknown section or key, or a value of the
wrong type, is a :class:`dermtool.DermtoolError` that names the key and the file.

Example::

    config = load_config("configs/ham10000_cpu.toml", overrides=["train.batch_size=16"])
    config.train.batch_size  # 16
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

from dermtool import DermtoolError
from dermtool.files import read_regular_file

ResizePolicy = Literal["squash", "center_crop", "pad"]
SourceKind = Literal["dermoscopic", "smartphone", "clinical", "other"]


#: The colour-constancy methods of ``[model] color_constancy`` (the layer: dermtool.models.color_constancy).
COLOR_CONSTANCY_METHODS: tuple[str, ...] = ("none", "shades_of_grey")


def check_color_constancy(method: str, power: float) -> None:
    """A :class:`DermtoolError` for an unknown method or a power outside [1, 16]."""
    if method not in COLOR_CONSTANCY_METHODS:
        raise DermtoolError(
            f"model.color_constancy must be one of {', '.join(COLOR_CONSTANCY_METHODS)} (got {method!r})"
        )
    if isinstance(power, bool) or not isinstance(power, (int, float)) or not 1.0 <= float(power) <= 16.0:
        raise DermtoolError(
            f"model.color_constancy_power must be a number in [1, 16] (got {power!r}); "
            "1 is grey world, 6 the usual shades of grey"
        )


@dataclass
class SourceConfig:
    """One labelled image folder of a multi-source run (``[[data.sources]]`` in a config file).

    ``label_map`` renames the folder's labels onto the model's classes (``{ack = "akiec", nev = "nv"}``);
    a label mapped to ``""`` is left out; unmapped labels keep their name. ``share`` is the fraction of
    every training batch drawn from this source (0 for every source: in proportion to its images).
    ``where`` keeps only the images whose CSV columns hold these values (``{ image_type = "clinical" }``):
    two sources may read one folder, one kind of photo each; sources that read the same folder are split
    together, grouped by its lesion ids, so a lesion's photos never straddle two splits.
    ``out_of_scope`` names labels that are not trained as classes but kept aside as the out-of-scope
    check (how often such a lesion is called benign).
    """

    name: str = ""
    data_dir: str = ""
    labels_csv: str = ""
    kind: SourceKind = "dermoscopic"
    share: float = 0.0
    label_map: dict[str, str] = field(default_factory=dict)
    where: dict[str, str] = field(default_factory=dict)
    out_of_scope: list[str] = field(default_factory=list)


@dataclass
class DataConfig:
    """Where the images are and how they become model inputs."""

    # The labelled image folder (relative paths: to where dermtool runs). No default: a config names its folder
    # (as every file in configs/ does) or `dermtool train --data DATA` gives it.
    data_dir: str = ""
    labels_csv: str = ""  # empty: detect the layout and CSV automatically
    split_csv: str = ""  # empty: make a lesion-grouped split with the fractions below
    split_seed: int = 0
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    image_size: int = 224
    resize_policy: ResizePolicy = "squash"
    max_images_per_class: int = 0  # 0 = all; small values make quick experiments and tests
    cache: bool = True  # keep decoded, resized images in memory across epochs
    # Several labelled folders in one run ([[data.sources]] tables); empty: the one folder data_dir.
    sources: list[SourceConfig] = field(default_factory=list)


@dataclass
class AugmentConfig:
    """Training-time augmentation; each transform can be switched off (0 or false)."""

    rotation_degrees: float = 180.0  # random rotation in [-d, d]; lesions have no "up"
    horizontal_flip: bool = True
    vertical_flip: bool = True
    zoom: float = 0.15  # random crop-and-resize of up to this fraction
    brightness: float = 0.1
    contrast: float = 0.1
    saturation: float = 0.1
    hue: float = 0.02
    # Camera and device variation (phone photos, other dermatoscopes); each 0 = off. See
    # dermtool.data.camera_augment for what each does.
    zoom_out: float = 0.0  # shrink the picture by up to this fraction (lesion smaller, reflected skin around)
    shift: float = 0.0  # move the picture off-centre by up to this fraction of the side
    white_balance: float = 0.0  # per-channel gains exp(+-white_balance): colour casts of other cameras
    vignette: float = 0.0  # darken the corners by up to this fraction
    blur: float = 0.0  # Gaussian defocus, sigma up to this many pixels (half of the images)
    motion_blur: int = 0  # a line kernel of up to this many pixels at a random angle (a quarter of the images)
    noise: float = 0.0  # Gaussian sensor noise, standard deviation up to this fraction of 255
    downscale: float = 0.0  # down to a (1 - downscale .. 1) fraction of the side and back, random resamplers
    jpeg_quality: int = 0  # JPEG re-compression at a quality in [jpeg_quality, 95] (half of the images); 0 off
    grid: float = 0.0  # ruler / grid line overlay on this fraction of the images


@dataclass
class ModelConfig:
    """Which backbone, its weights and the classification head."""

    name: str = "efficientnet-lite0"
    weights: str = "imagenet"  # "imagenet" | "none" | a path to a Keras .weights.h5 / .h5 file
    dropout: float = 0.2
    # Colour constancy as the model's first layer (dermtool.models.color_constancy): "none" or
    # "shades_of_grey" (per-image white balance; power 1 = grey world, 6 = the ISIC 2018 choice).
    color_constancy: Literal["none", "shades_of_grey"] = "none"
    color_constancy_power: float = 6.0


@dataclass
class TrainConfig:
    """Two-phase transfer learning: the head on a frozen backbone, then fine-tuning."""

    seed: int = 0
    batch_size: int = 32
    head_epochs: int = 1
    head_learning_rate: float = 1e-3
    finetune_epochs: int = 6
    finetune_learning_rate: float = 3e-4
    finetune_from_block: int = 0  # 0 = fine-tune the whole backbone; N = blocks N.. and the head conv
    # Training images drawn per epoch (with source shares: by share, with replacement); 0 = one pass over
    # the training split. A time budget is spent in images, not in passes over the largest source.
    images_per_epoch: int = 0
    # BatchNorm of the fine-tuned blocks: "frozen" keeps the ImageNet statistics (safe with small batches);
    # "train" lets them follow this data (batch statistics in training, moving averages updated).
    finetune_batch_norm: Literal["frozen", "train"] = "frozen"
    warmup_fraction: float = 0.05  # share of fine-tuning steps spent warming the learning rate up
    weight_decay: float = 1e-5
    label_smoothing: float = 0.05
    class_balance: Literal["weights", "sampling", "none"] = "weights"
    loss: Literal["crossentropy", "focal"] = "crossentropy"
    focal_gamma: float = 2.0
    strategy: Literal["auto", "default", "mirrored", "multi_worker"] = "auto"
    mixed_precision: Literal["auto", "on", "off"] = "auto"  # auto: on when a GPU is present


@dataclass
class ExportConfig:
    """How ``dermtool export`` converts, quantizes and gates a trained model."""

    mode: Literal["float", "fp16", "dynamic", "int8"] = "int8"
    io: Literal["uint8", "int8", "float32"] = "uint8"
    representative_images: int = 300
    qat_epochs: int = 2
    qat_learning_rate: float = 1e-5
    prune_sparsity: float = 0.0
    prune_epochs: int = 2
    # Pruning re-learns around the zeroed weights, so it takes a larger step than QAT's gentle nudge.
    prune_learning_rate: float = 1e-4
    distill: bool = True  # QAT / pruning fine-tunes learn the float model's softmax, not the labels
    # post-training int8 (not with QAT unless asked): round the kernels to their int8 grid and take the mean
    # shift out of the biases (optimize/bias_correction.py)
    bias_correction: bool = True
    gate_max_balanced_accuracy_drop: float = 1.5  # points of balanced accuracy
    gate_min_agreement: float = 0.97


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    export: ExportConfig = field(default_factory=ExportConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return dataclasses.asdict(self)

    def to_toml(self) -> str:
        """The resolved configuration as TOML (written into every run folder)."""
        lines: list[str] = []
        tables: list[str] = []
        for section, values in self.to_dict().items():
            lines.append(f"[{section}]")
            for key, value in values.items():
                if isinstance(value, list):  # data.sources: arrays of tables, after the scalar keys
                    for table in value:
                        tables.append(f"[[{section}.{key}]]")
                        tables.extend(f"{name} = {_toml_value(item)}" for name, item in table.items())
                        tables.append("")
                else:
                    lines.append(f"{key} = {_toml_value(value)}")
            lines.append("")
            lines.extend(tables)
            tables.clear()
        return "\n".join(lines)


SECTIONS: dict[str, type] = {
    "data": DataConfig,
    "augment": AugmentConfig,
    "model": ModelConfig,
    "train": TrainConfig,
    "export": ExportConfig,
}


def _toml_value(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_toml_value(key)} = {_toml_value(item)}" for key, item in value.items()) + " }"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _check_value(value: Any, expected: Any, where: str) -> Any:
    """Return ``value`` converted to ``expected`` or raise an error that names ``where``."""
    if typing.get_origin(expected) is Literal:
        choices = typing.get_args(expected)
        if value not in choices:
            raise DermtoolError(f"{where}: {value!r} is not one of {', '.join(map(repr, choices))}")
        return value
    if expected is bool:
        if not isinstance(value, bool):
            raise DermtoolError(f"{where}: expected true or false, got {value!r}")
        return value
    if expected is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise DermtoolError(f"{where}: expected an integer, got {value!r}")
        return value
    if expected is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise DermtoolError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if expected is str:
        if not isinstance(value, str):
            raise DermtoolError(f"{where}: expected a string, got {value!r}")
        return value
    if expected == dict[str, str]:
        if not isinstance(value, Mapping) or not all(isinstance(item, str) for item in value.values()):
            raise DermtoolError(f"{where}: expected a table of strings such as {{ nev = \"nv\" }}, got {value!r}")
        return dict(value)
    if expected == list[str]:
        if not isinstance(value, (list, tuple)) or not all(isinstance(item, str) for item in value):
            raise DermtoolError(f"{where}: expected a list of strings such as [\"inf\", \"ben_oth\"], got {value!r}")
        return list(value)
    if expected == list[SourceConfig]:
        return _sources_from_value(value, where)
    raise TypeError(f"unsupported config type {expected!r} at {where}")  # a bug in this module


def _sources_from_value(value: Any, where: str) -> list[SourceConfig]:
    """``[[data.sources]]`` tables -> :class:`SourceConfig` objects, every key and type checked."""
    if isinstance(value, Mapping) or not isinstance(value, (list, tuple)):
        raise DermtoolError(f"{where}: expected [[data.sources]] tables (one per labelled folder)")
    hints = typing.get_type_hints(SourceConfig)
    sources: list[SourceConfig] = []
    for position, table in enumerate(value, start=1):
        if isinstance(table, SourceConfig):
            table = dataclasses.asdict(table)
        if not isinstance(table, Mapping):
            raise DermtoolError(f"{where}[{position}]: expected a table with name, data_dir, kind, share, label_map")
        source = SourceConfig()
        for key, item in table.items():
            if key not in hints:
                raise DermtoolError(f"{where}[{position}]: unknown key '{key}'; known keys: {', '.join(hints)}")
            setattr(source, key, _check_value(item, hints[key], f"{where}[{position}].{key}"))
        sources.append(source)
    return sources


def _parse_override_value(text: str) -> Any:
    """Parse the right-hand side of ``section.key=value`` as a TOML value, or as a bare string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def config_from_mapping(raw: Mapping[str, Any], source: str = "<config>") -> Config:
    """Build a :class:`Config` from a parsed TOML mapping, validating every section, key and type."""
    config = Config()
    for section, values in raw.items():
        if section not in SECTIONS:
            raise DermtoolError(
                f"{source}: unknown section [{section}]; known sections: {', '.join(SECTIONS)}"
            )
        if not isinstance(values, Mapping):
            raise DermtoolError(f"{source}: [{section}] must be a table of keys")
        section_object = getattr(config, section)
        hints = typing.get_type_hints(type(section_object))
        for key, value in values.items():
            if key not in hints:
                raise DermtoolError(
                    f"{source}: unknown key '{section}.{key}'; known keys in [{section}]: "
                    f"{', '.join(hints)}"
                )
            setattr(section_object, key, _check_value(value, hints[key], f"{source}: {section}.{key}"))
    validate(config, source)
    return config


def validate(config: Config, source: str = "<config>") -> None:
    """Checks across values that a type alone cannot express."""
    data, train, export = config.data, config.train, config.export
    if not 0 <= data.val_fraction < 1 or not 0 <= data.test_fraction < 1:
        raise DermtoolError(f"{source}: data.val_fraction and data.test_fraction must be in [0, 1)")
    if data.val_fraction + data.test_fraction >= 0.9:
        raise DermtoolError(f"{source}: data.val_fraction + data.test_fraction leaves too little to train on")
    if data.image_size < 32:
        raise DermtoolError(f"{source}: data.image_size must be at least 32 (got {data.image_size})")
    if train.batch_size < 1:
        raise DermtoolError(f"{source}: train.batch_size must be at least 1")
    if train.images_per_epoch < 0:
        raise DermtoolError(f"{source}: train.images_per_epoch must be 0 (one pass over the training split) "
                            f"or positive")
    if train.head_epochs < 0 or train.finetune_epochs < 0 or train.head_epochs + train.finetune_epochs < 1:
        raise DermtoolError(f"{source}: train.head_epochs + train.finetune_epochs must be at least 1")
    _validate_sources(data.sources, source)
    try:  # the layer's own check, with the file named
        check_color_constancy(config.model.color_constancy, config.model.color_constancy_power)
    except DermtoolError as error:
        raise DermtoolError(f"{source}: {error}") from None
    if not 0 <= export.prune_sparsity < 1:
        raise DermtoolError(f"{source}: export.prune_sparsity must be in [0, 1)")
    for name in ("qat_learning_rate", "prune_learning_rate"):
        if getattr(export, name) <= 0:
            raise DermtoolError(f"{source}: export.{name} must be positive (such as 1e-4)")


def _validate_sources(sources: Sequence[SourceConfig], where: str) -> None:
    names = [item.name for item in sources]
    for position, item in enumerate(sources, start=1):
        if not item.name or not item.name.replace("_", "").replace("-", "").isalnum():
            raise DermtoolError(f"{where}: data.sources[{position}] needs a name of letters, digits, - or _ "
                                f"(got {item.name!r})")
        if not item.data_dir:
            raise DermtoolError(f"{where}: data.sources[{position}] ({item.name}) needs a data_dir")
        if not math.isfinite(item.share) or item.share < 0:
            raise DermtoolError(f"{where}: data.sources[{position}] ({item.name}): share must be 0 or positive")
        lowered = [key.strip().lower() for key in item.label_map]
        twice = sorted({key for key in lowered if lowered.count(key) > 1})
        if twice:
            raise DermtoolError(f"{where}: data.sources[{position}] ({item.name}): label_map names "
                                f"{', '.join(twice)} more than once")
        if any(not column.strip() or not value.strip() for column, value in item.where.items()):
            raise DermtoolError(f"{where}: data.sources[{position}] ({item.name}): where needs a column and a "
                                f"value, such as {{ image_type = \"clinical\" }}")
        both = sorted({label.strip().lower() for label in item.out_of_scope} & set(lowered))
        if both:
            raise DermtoolError(f"{where}: data.sources[{position}] ({item.name}): {', '.join(both)} is in "
                                f"label_map and in out_of_scope; name it in one of them")
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise DermtoolError(f"{where}: data.sources: the name {twice[0]!r} is used twice; names must be unique")
    shares = [item.share for item in sources]
    if any(shares) and not all(shares):
        raise DermtoolError(f"{where}: data.sources: give every source a share, or none (0: by image count)")


def apply_overrides(config: Config, overrides: Sequence[str], source: str = "command line") -> Config:
    """Apply ``section.key=value`` strings (values parsed as TOML, bare words as strings)."""
    raw = config.to_dict()
    for override in overrides:
        name, sep, text = override.partition("=")
        section, dot, key = name.strip().partition(".")
        if not sep or not dot:
            raise DermtoolError(f"{source}: override {override!r} must look like section.key=value")
        raw.setdefault(section, {})[key] = _parse_override_value(text.strip())
    return config_from_mapping(raw, source)


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> Config:
    """Load a TOML config file (or the defaults when ``path`` is None) and apply overrides."""
    if path is None:
        config = Config()
    else:
        path = Path(path)
        if not path.exists():
            raise DermtoolError(f"config file not found: {path}")
        data = read_regular_file(path, "config file")  # a regular file within DERMTOOL_MAX_FILE_MB
        try:
            raw = tomllib.loads(data.decode("utf-8"))
        except UnicodeDecodeError as error:
            raise DermtoolError(f"{path}: not a UTF-8 text file (byte {error.start}); save it as UTF-8 TOML") from None
        except tomllib.TOMLDecodeError as error:
            raise DermtoolError(f"{path}: not valid TOML: {error}") from None
        except RecursionError:
            raise DermtoolError(f"{path}: not a usable config (its arrays or tables are nested too deeply)") from None
        config = config_from_mapping(raw, str(path))
    if overrides:
        config = apply_overrides(config, overrides)
    return config
