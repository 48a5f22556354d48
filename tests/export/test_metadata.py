"""TFLite metadata: written by dermtool's populator, read back in pure Python and by tflite-support's
MetadataDisplayer (golden files per export mode)."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from dermtool import DermtoolError
from dermtool.export.metadata import read_associated_files, read_metadata
from dermtool.run import RunFolder
from tests.export import displayer
from tests.fixtures_export import EXPORT_MODES

GOLDEN = Path(__file__).parent / "golden" / "metadata_lite0_int8.json"
HAM_LABELS = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]


@pytest.mark.parametrize("mode", ["float", "fp16", "dynamic", "int8"])
def test_dermtool_metadata_reads_back(mode, exported_models, tiny_run):
    run = RunFolder(tiny_run)
    metadata = read_metadata(exported_models[mode])
    assert metadata["labels"] == run.labels
    assert metadata["input_spec"] == run.input_spec.to_dict()
    assert metadata["temperature"] == pytest.approx(run.temperature)
    assert metadata["temperature_folded"] is True
    assert metadata["mode"] == mode
    assert metadata["io"] == ("uint8" if mode == "int8" else "float32")
    assert metadata["model"] == run.config.model.name
    assert metadata["referral"] == run.metrics.get("referral")  # what predict needs for its outcome
    assert "not a diagnosis" in metadata["disclaimer"]
    assert "ood" not in metadata and "lesion_check" not in metadata  # tiny_run has no lesion_check.json
    files = read_associated_files(exported_models[mode])
    assert set(files) == {"labels.txt", "dermtool.json"}
    assert files["labels.txt"].decode().splitlines() == run.labels


@pytest.mark.parametrize("mode", ["float", "int8"])
def test_standard_metadata_has_normalisation_labels_and_general_info(mode, exported_models, tiny_run):
    spec = RunFolder(tiny_run).input_spec
    values = displayer.displayed(exported_models[mode])["metadata"]
    assert "not a diagnosis" in values["description"] and "screening" in values["description"]
    assert values["author"] == "dermtool" and "CC BY-NC-SA 4.0" in values["license"]
    subgraph = values["subgraph_metadata"][0]
    image = subgraph["input_tensor_metadata"][0]
    assert image["content"]["content_properties"]["color_space"] == "RGB"
    normalisation = image["process_units"][0]
    assert normalisation["options_type"] == "NormalizationOptions"
    assert normalisation["options"] == {"mean": [spec.mean], "std": [spec.std]}
    output = subgraph["output_tensor_metadata"][0]
    assert output["associated_files"] == [
        {"name": "labels.txt", "description": "Labels for categories that the model can recognize.",
         "type": "TENSOR_AXIS_LABELS"}
    ]
    assert [entry["name"] for entry in values["associated_files"]] == ["dermtool.json"]


@pytest.fixture(scope="module")
def golden_model() -> tuple[bytes, bytes]:
    """(converter output, the same with metadata) of a fixed small int8 model with EfficientNet-Lite0's input
    spec and the HAM10000 labels."""
    import numpy as np

    from dermtool.data.preprocess import InputSpec
    from dermtool.export.calibration_data import representative_batches
    from dermtool.export.convert import convert
    from dermtool.export.metadata import write_metadata
    from tests.export.tiny_models import build_tiny_classifier

    spec = InputSpec(image_size=64, resize_policy="squash", mean=127.0, std=128.0)
    pixels = np.random.default_rng(0).integers(0, 256, size=(8, 64, 64, 3), dtype=np.uint8)
    converted = convert(build_tiny_classifier(7, 64), "int8", "uint8", representative_batches(pixels, spec))
    content = write_metadata(converted, labels=HAM_LABELS, input_spec=spec, temperature=1.5, mode="int8",
                             io_type="uint8", model_name="efficientnet-lite0")
    metadata = read_metadata(content)
    assert metadata["labels"] == HAM_LABELS and metadata["temperature"] == 1.5
    return converted, content


@pytest.mark.parametrize("mode", EXPORT_MODES)
def test_displayer_reads_every_export_mode_as_the_golden_file(mode, exported_models):
    """tflite-support's MetadataDisplayer reads each exported mode exactly as golden/displayer_<mode>.json (the
    metadata JSON and the packed files; written with tflite-support's writer before dermtool had its own).
    QAT + pruning: tests/export/test_optimize.py; fusion: tests/fusion/test_commands.py."""
    reading = displayer.assert_matches_golden(exported_models[mode], mode)
    assert reading["packed_files"] == ["dermtool.json", "labels.txt"]


def test_golden_metadata_file(golden_model):
    """The full metadata JSON (tflite-support's MetadataDisplayer; the version field left out) is the golden
    file. Regenerate it deliberately with DERMTOOL_UPDATE_GOLDEN=1 after an intended change."""
    actual = displayer.displayed(golden_model[1])["metadata"]
    if os.environ.get("DERMTOOL_UPDATE_GOLDEN") == "1":
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(actual, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    expected = json.loads(GOLDEN.read_text(encoding="utf-8"))
    assert actual == expected


def test_populator_writes_what_tflite_supports_populator_writes(golden_model):
    """tflite-support's MetadataPopulator, given dermtool's metadata FlatBuffer and the same files, makes the
    same model bytes (the zip's timestamps aside); it computes the minimum parser version itself (C++), so
    this also checks MIN_PARSER_VERSION."""
    from dermtool.export.metadata import METADATA_FIELD_NAME, MIN_PARSER_VERSION

    metadata = displayer.metadata_module()
    converted, ours = golden_model
    buffer = metadata.get_metadata_buffer(ours)
    assert json.loads(metadata.convert_to_json(bytes(buffer)))["min_parser_version"] == MIN_PARSER_VERSION
    files = read_associated_files(ours)
    populator = metadata.MetadataPopulator.with_model_buffer(bytearray(converted))
    populator.load_metadata_buffer(bytearray(buffer))
    populator.load_associated_file_buffers(files)
    populator.populate()
    theirs = bytes(populator.get_model_buffer())
    assert _flatbuffer(theirs) == _flatbuffer(ours) and METADATA_FIELD_NAME.encode() in _flatbuffer(ours)
    entries = [zipfile.ZipFile(io.BytesIO(model)).infolist() for model in (ours, theirs)]
    assert [(entry.filename, entry.compress_type, entry.file_size) for entry in entries[0]] == \
        [(entry.filename, entry.compress_type, entry.file_size) for entry in entries[1]]
    assert read_associated_files(theirs) == files and list(files) == ["labels.txt", "dermtool.json"]


def _flatbuffer(model: bytes) -> bytes:
    """The model's FlatBuffer: what precedes its first packed file."""
    return model[: zipfile.ZipFile(io.BytesIO(model)).infolist()[0].header_offset]


def test_writing_needs_neither_tflite_support_nor_mediapipe(exported_models):
    """write_metadata on an exported model's FlatBuffer (its metadata replaced) in a fresh process: the same
    metadata, and no tflite-support or MediaPipe module imported."""
    code = (
        "import sys\n"
        "from dermtool.data.preprocess import InputSpec\n"
        "from dermtool.export.metadata import read_metadata, write_metadata\n"
        f"path = {str(exported_models['float'])!r}\n"
        "content = open(path, 'rb').read()\n"
        "old = read_metadata(content)\n"
        "import io, zipfile\n"
        "flat = content[: zipfile.ZipFile(io.BytesIO(content)).infolist()[0].header_offset]\n"
        "new = read_metadata(write_metadata(flat, labels=old['labels'], input_spec=InputSpec.from_dict(old['input_spec']),\n"
        "    temperature=old['temperature'], mode='float', io_type='float32', model_name=old['model']))\n"
        "assert new['labels'] == old['labels'] and new['input_spec'] == old['input_spec'], new\n"
        "heavy = [name for name in sys.modules if name.split('.')[0] in ('tflite_support', 'tensorflow_lite_support', 'mediapipe')]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@pytest.mark.skipif(importlib.util.find_spec("mediapipe") is None, reason="mediapipe is not installed")
def test_the_metadata_schema_is_mediapipes():
    """dermtool.export.metadata_schema_py_generated is MediaPipe's generated module below its header (read from
    the installed package's files: importing mediapipe takes seconds)."""
    import dermtool.export.metadata_schema_py_generated as ours

    (folder,) = importlib.util.find_spec("mediapipe").submodule_search_locations
    theirs = Path(folder) / "tasks" / "metadata" / "metadata_schema_py_generated.py"
    text = Path(ours.__file__).read_text(encoding="utf-8")
    assert text[text.index("import flatbuffers"):] == theirs.read_text(encoding="utf-8")


def _zip(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def test_read_metadata_edge_cases(exported_models, tmp_path):
    plain = exported_models["int8"].read_bytes()
    flatbuffer_only = plain[: plain.rfind(b"PK\x05\x06")]  # cut at the zip's end record: no readable zip
    assert read_metadata(flatbuffer_only) == {}
    assert read_metadata(b"TFL3 not a model") == {}
    # another tool's model with only labels.txt
    assert read_metadata(plain + _zip({"labels.txt": "a\nb\n"})) == {"labels": ["a", "b"]}
    with pytest.raises(DermtoolError, match="disagree"):
        read_metadata(plain + _zip({"labels.txt": "a\nb\n", "dermtool.json": json.dumps({"labels": ["b", "a"]})}))
    with pytest.raises(DermtoolError, match="not valid JSON"):
        read_metadata(plain + _zip({"dermtool.json": "{broken"}))
    with pytest.raises(DermtoolError, match="not found"):
        read_metadata(tmp_path / "missing.tflite")


def test_read_metadata_imports_no_tensorflow(exported_models):
    code = (
        "import sys\n"
        "from dermtool.export.metadata import read_metadata\n"
        f"metadata = read_metadata({str(exported_models['int8'])!r})\n"
        "assert metadata['labels'], metadata\n"
        "heavy = [name for name in ('tensorflow', 'tflite_support', 'tensorflow_lite_support') if name in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
