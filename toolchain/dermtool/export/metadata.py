"""TFLite metadata: written with tflite-support at export, read back in pure Python by the runtime.

What an exported model carries (the standard TFLite image-classifier metadata, so MediaPipe's
``ImageClassifier`` and the TFLite Task Library understand the model without dermtool):

- general information: name, description (with the "decision support, not a diagnosis" disclaimer),
  version, author, licence;
- the input image tensor: RGB, ``NormalizationOptions(mean=[spec.mean], std=[spec.std])``;
- the output tensor: probabilities, with the associated label file ``labels.txt`` (one class per line,
  in output order);
- a model-level associated file ``dermtool.json``::

      {"labels": [...], "input_spec": InputSpec.to_dict(), "temperature": T, "mode": "int8", "io": "uint8",
       "dermtool_version": "...", ...}

  The temperature is already folded into the model's "logits" layer; it is recorded for information only.

The associated files are stored as a zip archive appended to the FlatBuffer, so :func:`read_metadata`
opens the ``.tflite`` bytes with :mod:`zipfile`: no TensorFlow, no tflite-support, a few milliseconds.

Writing needs tflite-support, imported as ``tensorflow_lite_support.metadata.python.metadata_writers``
(its documented ``tflite_support.metadata_writers`` import fails with protobuf 7), after loading the
``libusb-1.0`` shipped by ``libusb-package`` into the process (the compiled modules link against it).
tflite-support is installed without its declared dependencies (``protobuf<4``): see requirements-nodeps.txt.
"""

from __future__ import annotations

import io
import json
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import Any, Mapping, Sequence

from dermtool import DISCLAIMER, DermtoolError, __version__

LABELS_FILE_NAME = "labels.txt"
DERMTOOL_FILE_NAME = "dermtool.json"
DEFAULT_AUTHOR = "dermtool"
DATA_LICENCE = (
    "Trained on HAM10000 (Tschandl P., Rosendahl C., Kittler H., Sci. Data 5, 180161, 2018), "
    "CC BY-NC-SA 4.0: attribution, non-commercial use only, share-alike."
)
INTENDED_USE = (
    "Decision support for referral of dermoscopic images of skin lesions; not a diagnosis and not a "
    "screening tool."
)

_LIBUSB_LOADED = False


# ------------------------------------------------------------------------------------------------ reading
def read_associated_files(path_or_bytes: str | Path | bytes) -> dict[str, bytes]:
    """The associated files packed into a ``.tflite`` (name -> content); ``{}`` for a model without any.

    Pure Python: the files are a zip archive appended to the model's FlatBuffer. At most
    ``MAX_ASSOCIATED_FILES`` entries of at most ``MAX_ASSOCIATED_FILE_BYTES`` each (declared and inflated),
    else a one-line :class:`DermtoolError`: a zip bomb in the metadata is never read whole.
    """
    from dermtool.export.metadata_check import MAX_ASSOCIATED_FILE_BYTES, MAX_ASSOCIATED_FILES

    content = _model_bytes(path_or_bytes)
    source = str(path_or_bytes) if isinstance(path_or_bytes, (str, Path)) else "<model bytes>"
    cap = MAX_ASSOCIATED_FILE_BYTES
    try:
        archive = zipfile.ZipFile(io.BytesIO(content))
    except zipfile.BadZipFile:
        return {}
    files: dict[str, bytes] = {}
    with archive:
        entries = archive.infolist()
        if len(entries) > MAX_ASSOCIATED_FILES:
            raise DermtoolError(f"{source}: its metadata holds {len(entries)} associated files (at most "
                                f"{MAX_ASSOCIATED_FILES}); the model file is corrupt or was edited")
        for entry in entries:  # declared size first, then the bytes it really inflates to (a zip bomb stops here)
            if entry.file_size > cap:
                raise DermtoolError(f"{source}: its associated file {entry.filename[:80]!r} declares "
                                    f"{entry.file_size:,} bytes (at most {cap:,}); the model file is corrupt or was edited")
            try:
                with archive.open(entry) as handle:
                    data = handle.read(cap + 1)
            except (zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError, EOFError, OSError) as error:
                raise DermtoolError(f"{source}: its associated file {entry.filename[:80]!r} cannot be read "
                                    f"({error}); the model file is corrupt or was edited") from None
            if len(data) > cap:
                raise DermtoolError(f"{source}: its associated file {entry.filename[:80]!r} inflates to more than "
                                    f"{cap:,} bytes (it declares {entry.file_size:,}); the model file is corrupt or "
                                    "was edited")
            files[entry.filename] = data
    return files


def read_metadata(path_or_bytes: str | Path | bytes) -> dict[str, Any]:
    """The dermtool metadata of an exported model, as a dict; ``{}`` when the model carries none.

    The keys of ``dermtool.json`` (labels, input_spec, temperature, mode, dermtool_version, ...). For a
    model that has only a ``labels.txt`` (exported by another tool), ``{"labels": [...]}``. Raises
    :class:`DermtoolError` when ``dermtool.json`` is not valid JSON, disagrees with ``labels.txt``, or breaks
    a rule of :func:`dermtool.export.metadata_check.check_metadata` (a threshold that is NaN or outside
    [0, 1], a fusion whose labels are not the model's, an associated file over the size cap ...).
    No TensorFlow import.
    """
    files = read_associated_files(path_or_bytes)
    source = str(path_or_bytes) if isinstance(path_or_bytes, (str, Path)) else "<model bytes>"
    labels_from_file = None
    if LABELS_FILE_NAME in files:
        text = files[LABELS_FILE_NAME].decode("utf-8", errors="replace")
        labels_from_file = [line.strip() for line in text.splitlines() if line.strip()]
    metadata: dict[str, Any] = {}
    if DERMTOOL_FILE_NAME in files:
        try:
            metadata = json.loads(files[DERMTOOL_FILE_NAME].decode("utf-8"))
        except RecursionError:
            raise DermtoolError(f"{source}: its {DERMTOOL_FILE_NAME} metadata is nested too deeply") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise DermtoolError(f"{source}: its {DERMTOOL_FILE_NAME} metadata is not valid JSON ({error})") from None
        if not isinstance(metadata, dict):
            raise DermtoolError(f"{source}: its {DERMTOOL_FILE_NAME} metadata is not a JSON object")
    if labels_from_file is not None:
        if "labels" not in metadata:
            metadata["labels"] = labels_from_file
        elif not isinstance(metadata["labels"], list) or list(metadata["labels"]) != labels_from_file:
            shown = metadata["labels"] if not isinstance(metadata["labels"], list) else ", ".join(map(str, metadata["labels"]))
            raise DermtoolError(
                f"{source}: {LABELS_FILE_NAME} ({', '.join(labels_from_file)}) and {DERMTOOL_FILE_NAME} "
                f"({shown}) disagree; the metadata was edited or mixed up"
            )
    from dermtool.export.metadata_check import check_metadata

    check_metadata(metadata, source)  # every field, by the rules export writes it with (one line naming it)
    return metadata


def _model_bytes(path_or_bytes: str | Path | bytes) -> bytes:
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        return bytes(path_or_bytes)
    from dermtool.files import read_regular_file

    return read_regular_file(Path(path_or_bytes), "model file", model=True)


# ------------------------------------------------------------------------------------------------ writing
def load_metadata_library() -> dict[str, Any]:
    """Import tflite-support's metadata writer and reader modules (loading libusb first).

    Returns ``{"image_classifier", "metadata_info", "writer_utils", "metadata", "schema", "model_schema"}``
    modules (``schema``: the metadata FlatBuffer schema; ``model_schema``: the TFLite model schema).
    """
    global _LIBUSB_LOADED
    if not _LIBUSB_LOADED:
        import ctypes

        try:
            import libusb_package

            library = libusb_package.get_library_path()
        except ImportError:
            library = None
        if library is not None:
            ctypes.CDLL(str(library), mode=ctypes.RTLD_GLOBAL)
        _LIBUSB_LOADED = True
    try:
        from tensorflow_lite_support.metadata import metadata_schema_py_generated as schema
        from tensorflow_lite_support.metadata import schema_py_generated as model_schema
        from tensorflow_lite_support.metadata.python import metadata
        from tensorflow_lite_support.metadata.python.metadata_writers import (
            image_classifier,
            metadata_info,
            writer_utils,
        )
    except ImportError as error:
        raise DermtoolError(
            f"cannot import tflite-support's metadata writer ({error}); install it with "
            "`pip install --no-deps tflite-support==0.4.4` and `pip install libusb-package` "
            "(see requirements-nodeps.txt)"
        ) from None
    return {
        "image_classifier": image_classifier,
        "metadata_info": metadata_info,
        "writer_utils": writer_utils,
        "metadata": metadata,
        "schema": schema,
        "model_schema": model_schema,
    }


def dermtool_info(
    labels: Sequence[str],
    input_spec: Any,
    temperature: float,
    mode: str,
    io_type: str,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The content of ``dermtool.json``."""
    info: dict[str, Any] = {
        "labels": list(labels),
        "input_spec": input_spec.to_dict(),
        "temperature": float(temperature),
        "temperature_folded": True,
        "mode": mode,
        "io": io_type,
        "dermtool_version": __version__,
        "intended_use": INTENDED_USE,
        "disclaimer": DISCLAIMER,
    }
    if extra:
        info.update(extra)
    return info


def model_description(labels: Sequence[str], model_name: str, mode: str) -> str:
    """The metadata's description: what the model does and what it must not be used for."""
    return (
        f"Classifies a dermoscopic image of a skin lesion into {len(labels)} classes ({', '.join(labels)}). "
        f"Network: {model_name}, exported as {mode}. Outputs calibrated probabilities (temperature scaling "
        f"folded into the model). {INTENDED_USE} {DISCLAIMER}"
    )


def write_metadata(
    model_content: bytes,
    *,
    labels: Sequence[str],
    input_spec: Any,
    temperature: float,
    mode: str,
    io_type: str,
    model_name: str,
    author: str = DEFAULT_AUTHOR,
    licence: str = DATA_LICENCE,
    extra: Mapping[str, Any] | None = None,
) -> bytes:
    """``model_content`` with image-classifier metadata, ``labels.txt`` and ``dermtool.json`` attached."""
    library = load_metadata_library()
    metadata_info = library["metadata_info"]
    writer_utils = library["writer_utils"]
    schema = library["schema"]
    buffer = bytearray(model_content)
    size = input_spec.image_size

    general = metadata_info.GeneralMd(
        name=f"dermtool skin-lesion classifier ({model_name}, {mode})",
        version=f"dermtool {__version__}",
        description=model_description(labels, model_name, mode),
        author=author,
        licenses=licence,
    )
    input_type = writer_utils.get_input_tensor_types(buffer)[0]
    pixels = (
        "raw 0-255 RGB pixels: the input quantisation (scale 1/std, zero point mean) performs the normalisation"
        if input_type in (library["model_schema"].TensorType.UINT8, library["model_schema"].TensorType.INT8)
        else "float32 (pixel - mean) / std"
    )
    input_metadata = metadata_info.InputImageTensorMd(
        name="image",
        description=(
            f"RGB image {size}x{size} (resize policy '{input_spec.resize_policy}'), normalised as "
            f"(pixel - {input_spec.mean:g}) / {input_spec.std:g}; tensor holds {pixels}."
        ),
        norm_mean=[float(input_spec.mean)],
        norm_std=[float(input_spec.std)],
        color_space_type=schema.ColorSpaceType.RGB,
        tensor_type=input_type,
    )
    with tempfile.TemporaryDirectory(prefix="dermtool-metadata-") as folder:
        labels_path = Path(folder) / LABELS_FILE_NAME
        labels_path.write_text("\n".join(labels) + "\n", encoding="utf-8")
        info_path = Path(folder) / DERMTOOL_FILE_NAME
        info = dermtool_info(labels, input_spec, temperature, mode, io_type, extra)
        from dermtool.export.metadata_check import check_metadata

        check_metadata(json.loads(json.dumps(info)), "export")  # the rules every model load checks again
        info_path.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")

        output_metadata = metadata_info.ClassificationTensorMd(
            name="probability",
            description=f"Calibrated probabilities of the {len(labels)} classes, in {LABELS_FILE_NAME} order.",
            label_files=[metadata_info.LabelFileMd(file_path=str(labels_path))],
            tensor_type=writer_utils.get_output_tensor_types(buffer)[0],
        )
        model_metadata = general.create_metadata()
        info_file = schema.AssociatedFileT()
        info_file.name = DERMTOOL_FILE_NAME
        info_file.description = (
            "dermtool's own metadata (JSON): labels, input specification (image size, resize policy, mean, "
            "std), calibration temperature (already folded into the model), export mode."
        )
        info_file.type = schema.AssociatedFileType.DESCRIPTIONS
        model_metadata.associatedFiles = [info_file]
        writer = library["image_classifier"].MetadataWriter.create_from_metadata(
            buffer,
            model_metadata=model_metadata,
            input_metadata=[input_metadata.create_metadata()],
            output_metadata=[output_metadata.create_metadata()],
            associated_files=[str(labels_path), str(info_path)],
        )
        return bytes(writer.populate())


def metadata_json(path_or_bytes: str | Path | bytes) -> dict[str, Any]:
    """The model's metadata FlatBuffer as a dict (tflite-support's ``MetadataDisplayer`` JSON)."""
    library = load_metadata_library()
    content = _model_bytes(path_or_bytes)
    try:
        displayer = library["metadata"].MetadataDisplayer.with_model_buffer(content)
    except ValueError as error:
        raise DermtoolError(f"the model has no TFLite metadata ({error})") from None
    return json.loads(displayer.get_metadata_json())


#: Fields of :func:`metadata_json` that change with the dermtool version (left out of golden comparisons).
VOLATILE_FIELDS = ("version",)


def stable_metadata_json(path_or_bytes: str | Path | bytes) -> dict[str, Any]:
    """:func:`metadata_json` without :data:`VOLATILE_FIELDS` (for golden-file tests)."""
    values = metadata_json(path_or_bytes)
    for key in VOLATILE_FIELDS:
        values.pop(key, None)
    return values


__all__ = [
    "LABELS_FILE_NAME",
    "DERMTOOL_FILE_NAME",
    "DATA_LICENCE",
    "INTENDED_USE",
    "read_metadata",
    "read_associated_files",
    "write_metadata",
    "dermtool_info",
    "metadata_json",
    "stable_metadata_json",
    "load_metadata_library",
]
