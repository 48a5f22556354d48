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
opens the ``.tflite`` bytes with :mod:`zipfile`: no TensorFlow, no FlatBuffers, a few milliseconds.

Writing is dermtool's own small populator on the generated TFLite metadata schema (MediaPipe's
``metadata_schema_py_generated``, copied into :mod:`dermtool.export.metadata_schema_py_generated`) and on
TensorFlow's TFLite model schema (the converter's own, so re-packing the model keeps every field): it builds the
same ``ModelMetadata`` as tflite-support's ``image_classifier.MetadataWriter`` did (``GeneralMd``,
``InputImageTensorMd``, ``ClassificationTensorMd`` with the label file, plus ``dermtool.json``), inserts it as
the model's ``TFLITE_METADATA`` buffer and appends the associated files as a zip, as tflite-support's
``MetadataPopulator`` does. tflite-support's ``MetadataDisplayer`` reads every exported model as before
(tests/export/golden/displayer_*.json); neither tflite-support nor MediaPipe is needed to export.
"""

from __future__ import annotations

import io
import json
import zipfile
import zlib
from pathlib import Path
from typing import Any, Mapping, Sequence

from dermtool import DISCLAIMER, DermtoolError, __version__
from dermtool.export import metadata_schema_py_generated as metadata_fb
from dermtool.export.metadata_check import MAX_ASSOCIATED_FILES, MAX_ASSOCIATED_FILE_BYTES, check_metadata
from dermtool.files import read_regular_file
from dermtool.prediction import lesion_check

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


# ------------------------------------------------------------------------------------------------ reading
def read_associated_files(path_or_bytes: str | Path | bytes) -> dict[str, bytes]:
    """The associated files packed into a ``.tflite`` (name -> content); ``{}`` for a model without any.

    Pure Python: the files are a zip archive appended to the model's FlatBuffer. At most
    ``MAX_ASSOCIATED_FILES`` entries of at most ``MAX_ASSOCIATED_FILE_BYTES`` each (declared and inflated),
    else a one-line :class:`DermtoolError`: a zip bomb in the metadata is never read whole.
    """
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

    check_metadata(metadata, source)  # every field, by the rules export writes it with (one line naming it)
    return metadata


def _model_bytes(path_or_bytes: str | Path | bytes) -> bytes:
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        return bytes(path_or_bytes)

    return read_regular_file(Path(path_or_bytes), "model file", model=True)


# ------------------------------------------------------------------------------------------------ writing
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
    """``model_content`` with image-classifier metadata, ``labels.txt`` and ``dermtool.json`` attached.

    A model with a second output (the lesion check, :mod:`dermtool.prediction.lesion_check`) gets a second
    classification tensor ``lesion_check`` with its own label file (``lesion, not_a_lesion``), so MediaPipe's
    ``ImageClassifier`` returns it as a second head; ``extra["lesion_check"]`` must then describe it."""
    metadata_fb, model_fb = _schemas()
    input_type, output_types = _io_tensor_types(model_content, model_fb)
    output_type = output_types[0]
    has_check = len(output_types) == 2
    if has_check != bool((extra or {}).get(lesion_check.HEAD_NAME)):
        raise DermtoolError("a model with the lesion-check output needs its 'lesion_check' metadata, and only such a "
                            "model may carry it")
    size = input_spec.image_size
    mean, std = float(input_spec.mean), float(input_spec.std)

    model_metadata = metadata_fb.ModelMetadataT()
    model_metadata.name = f"dermtool skin-lesion classifier ({model_name}, {mode})"
    model_metadata.version = f"dermtool {__version__}"
    model_metadata.description = model_description(labels, model_name, mode)
    model_metadata.author = author
    model_metadata.license = licence

    # The input image (tflite-support's InputImageTensorMd): RGB, normalisation, the value range it holds.
    pixels = (
        "raw 0-255 RGB pixels: the input quantisation (scale 1/std, zero point mean) performs the normalisation"
        if input_type in (model_fb.TensorType.UINT8, model_fb.TensorType.INT8)
        else "float32 (pixel - mean) / std"
    )
    image = metadata_fb.TensorMetadataT()
    image.name = "image"
    image.description = (
        f"RGB image {size}x{size} (resize policy '{input_spec.resize_policy}'), normalised as "
        f"(pixel - {input_spec.mean:g}) / {input_spec.std:g}; tensor holds {pixels}."
    )
    if input_type == model_fb.TensorType.UINT8:
        image.stats = _stats(metadata_fb, [_MIN_UINT8], [_MAX_UINT8])
    elif input_type == model_fb.TensorType.FLOAT32:
        image.stats = _stats(metadata_fb, [(0.0 - mean) / std], [(255.0 - mean) / std])
    else:
        image.stats = _stats(metadata_fb, None, None)
    image.content = metadata_fb.ContentT()
    image.content.contentProperties = metadata_fb.ImagePropertiesT()
    image.content.contentProperties.colorSpace = metadata_fb.ColorSpaceType.RGB
    image.content.contentPropertiesType = metadata_fb.ContentProperties.ImageProperties
    normalization = metadata_fb.ProcessUnitT()
    normalization.optionsType = metadata_fb.ProcessUnitOptions.NormalizationOptions
    normalization.options = metadata_fb.NormalizationOptionsT()
    normalization.options.mean = [mean]
    normalization.options.std = [std]
    image.processUnits = [normalization]

    # The output (tflite-support's ClassificationTensorMd): probabilities, the label file.
    probability = metadata_fb.TensorMetadataT()
    probability.name = "probability"
    probability.description = f"Calibrated probabilities of the {len(labels)} classes, in {LABELS_FILE_NAME} order."
    if output_type == model_fb.TensorType.UINT8:
        probability.stats = _stats(metadata_fb, [_MIN_UINT8], [_MAX_UINT8])
    elif output_type == model_fb.TensorType.FLOAT32:
        probability.stats = _stats(metadata_fb, [0.0], [1.0])
    else:
        probability.stats = _stats(metadata_fb, None, None)
    probability.content = metadata_fb.ContentT()
    probability.content.contentProperties = metadata_fb.FeaturePropertiesT()
    probability.content.contentPropertiesType = metadata_fb.ContentProperties.FeatureProperties
    probability.associatedFiles = [_associated_file(
        metadata_fb, LABELS_FILE_NAME, _LABEL_FILE_DESCRIPTION, metadata_fb.AssociatedFileType.TENSOR_AXIS_LABELS)]

    outputs = [probability]
    if has_check:  # the lesion check: a second classification head with its own label file
        check = metadata_fb.TensorMetadataT()
        check.name = lesion_check.HEAD_NAME
        check.description = (f"Lesion check: probabilities of {', '.join(lesion_check.CATEGORIES)} (in "
                             f"{lesion_check.LABELS_FILE_NAME} order); reject the photo when P(not_a_lesion) >= "
                             f"the threshold in {DERMTOOL_FILE_NAME} (lesion_check.threshold).")
        check.stats = _stats(metadata_fb, *({model_fb.TensorType.UINT8: ([_MIN_UINT8], [_MAX_UINT8]),
                                              model_fb.TensorType.FLOAT32: ([0.0], [1.0])}
                                             .get(output_types[1], (None, None))))
        check.content = metadata_fb.ContentT()
        check.content.contentProperties = metadata_fb.FeaturePropertiesT()
        check.content.contentPropertiesType = metadata_fb.ContentProperties.FeatureProperties
        check.associatedFiles = [_associated_file(
            metadata_fb, lesion_check.LABELS_FILE_NAME, "Categories of the lesion check.",
            metadata_fb.AssociatedFileType.TENSOR_AXIS_LABELS)]
        outputs.append(check)

    subgraph = metadata_fb.SubGraphMetadataT()
    subgraph.inputTensorMetadata = [image]
    subgraph.outputTensorMetadata = outputs
    model_metadata.subgraphMetadata = [subgraph]
    model_metadata.associatedFiles = [_associated_file(
        metadata_fb, DERMTOOL_FILE_NAME,
        "dermtool's own metadata (JSON): labels, input specification (image size, resize policy, mean, std), "
        "calibration temperature (already folded into the model), export mode.",
        metadata_fb.AssociatedFileType.DESCRIPTIONS)]

    info = dermtool_info(labels, input_spec, temperature, mode, io_type, extra)

    check_metadata(json.loads(json.dumps(info)), "export")  # the rules every model load checks again
    files = {
        LABELS_FILE_NAME: ("\n".join(labels) + "\n").encode("utf-8"),
        DERMTOOL_FILE_NAME: (json.dumps(info, indent=2) + "\n").encode("utf-8"),
    }
    if has_check:
        files[lesion_check.LABELS_FILE_NAME] = ("\n".join(lesion_check.CATEGORIES) + "\n").encode("utf-8")
    return populate(model_content, _pack_metadata(model_metadata, metadata_fb), files)


# What tflite-support's metadata writers put in the fields dermtool does not choose.
_MIN_UINT8, _MAX_UINT8 = 0, 255
_LABEL_FILE_DESCRIPTION = "Labels for categories that the model can recognize."
#: The TFLite model's metadata entry that holds the metadata FlatBuffer, and the two file identifiers.
METADATA_FIELD_NAME = "TFLITE_METADATA"
METADATA_FILE_IDENTIFIER = b"M001"
MODEL_FILE_IDENTIFIER = b"TFL3"
#: The oldest metadata parser that reads what :func:`write_metadata` writes: every field it sets (general
#: information, image properties, normalisation, stats, associated files of type DESCRIPTIONS and
#: TENSOR_AXIS_LABELS) is in version 1.0.0 of the schema. tflite-support's populator computed it with a C++
#: function; tests/export/test_metadata.py checks the constant against it.
MIN_PARSER_VERSION = "1.0.0"


def _schemas() -> tuple[Any, Any]:
    """(the metadata schema, the TFLite model schema) modules; the model schema is TensorFlow's own."""
    from tensorflow.lite.python import schema_py_generated as model_fb

    return metadata_fb, model_fb


def _io_tensor_types(model_content: bytes, model_fb: Any) -> tuple[int, list[int]]:
    """(input tensor type, [output tensor types]) of a one-subgraph, one-input TFLite model with one output
    (the class probabilities) or two (the class probabilities, then the two-category lesion check)."""
    try:
        model = model_fb.Model.GetRootAsModel(model_content, 0)
        if model.SubgraphsLength() != 1:
            raise DermtoolError(f"a TFLite model with {model.SubgraphsLength()} subgraphs cannot take metadata (one)")
        subgraph = model.Subgraphs(0)
        if subgraph.InputsLength() != 1 or subgraph.OutputsLength() not in (1, 2):
            raise DermtoolError(
                f"metadata describes one input and one or two output tensors; the model has "
                f"{subgraph.InputsLength()} and {subgraph.OutputsLength()}"
            )
        outputs = [subgraph.Tensors(subgraph.Outputs(index)) for index in range(subgraph.OutputsLength())]
        if len(outputs) == 2 and int(outputs[1].ShapeAsNumpy()[-1]) != 2:
            raise DermtoolError("the second output of the model must be the two-category lesion check; the "
                                f"converter put a tensor of shape {list(outputs[1].ShapeAsNumpy())} there")
        return subgraph.Tensors(subgraph.Inputs(0)).Type(), [tensor.Type() for tensor in outputs]
    except DermtoolError:
        raise
    except Exception as error:  # a FlatBuffer that is not a TFLite model fails anywhere while being read
        raise DermtoolError(f"not a TFLite model ({type(error).__name__}: {error})") from None


def _stats(metadata_fb: Any, minimum: list[float] | None, maximum: list[float] | None) -> Any:
    stats = metadata_fb.StatsT()
    stats.max = maximum
    stats.min = minimum
    return stats


def _associated_file(metadata_fb: Any, name: str, description: str, file_type: int) -> Any:
    entry = metadata_fb.AssociatedFileT()
    entry.name = name
    entry.description = description
    entry.type = file_type
    return entry


def _pack_metadata(model_metadata: Any, metadata_fb: Any) -> bytes:
    """The metadata FlatBuffer of ``model_metadata`` with :data:`MIN_PARSER_VERSION`, packed as tflite-support
    did: once as written, then read back and packed again with the parser version (same bytes)."""
    import flatbuffers

    builder = flatbuffers.Builder(0)
    builder.Finish(model_metadata.Pack(builder), METADATA_FILE_IDENTIFIER)
    metadata = metadata_fb.ModelMetadataT.InitFromObj(
        metadata_fb.ModelMetadata.GetRootAsModelMetadata(builder.Output(), 0))
    metadata.minParserVersion = MIN_PARSER_VERSION
    builder = flatbuffers.Builder(0)
    builder.Finish(metadata.Pack(builder), METADATA_FILE_IDENTIFIER)
    return bytes(builder.Output())


def populate(model_content: bytes, metadata_buffer: bytes, files: Mapping[str, bytes]) -> bytes:
    """The model with ``metadata_buffer`` as its ``TFLITE_METADATA`` and ``files`` appended as a zip archive.

    What tflite-support's (and MediaPipe's) ``MetadataPopulator.populate`` does for a model without packed
    files: an existing ``TFLITE_METADATA`` buffer is replaced, otherwise a buffer and a metadata entry are
    added; the model is packed again (with TensorFlow's own schema, so no field of the converter's output is
    lost) and the files follow it, stored uncompressed, in order.
    """
    import flatbuffers

    _, model_fb = _schemas()
    content = bytes(model_content)
    if zipfile.is_zipfile(io.BytesIO(content)):
        raise DermtoolError("the model already carries associated files; populate a model fresh from the converter")
    model = model_fb.ModelT.InitFromObj(model_fb.Model.GetRootAsModel(content, 0))
    buffer = model_fb.BufferT()
    buffer.data = bytearray(metadata_buffer)
    model.metadata = model.metadata or []
    model.buffers = model.buffers or []
    for entry in model.metadata:
        if entry.name.decode("utf-8") == METADATA_FIELD_NAME:
            model.buffers[entry.buffer] = buffer
            break
    else:
        model.buffers.append(buffer)
        entry = model_fb.MetadataT()
        entry.name = METADATA_FIELD_NAME
        entry.buffer = len(model.buffers) - 1
        model.metadata.append(entry)
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), MODEL_FILE_IDENTIFIER)
    output = io.BytesIO(bytes(builder.Output()))
    with zipfile.ZipFile(output, "a") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return output.getvalue()


__all__ = [
    "LABELS_FILE_NAME",
    "DERMTOOL_FILE_NAME",
    "DATA_LICENCE",
    "INTENDED_USE",
    "read_metadata",
    "read_associated_files",
    "write_metadata",
    "populate",
    "dermtool_info",
    "MIN_PARSER_VERSION",
]
