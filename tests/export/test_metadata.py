"""TFLite metadata: written with tflite-support, read back in pure Python, and a golden metadata file."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from dermtool import DermtoolError
from dermtool.export.metadata import read_associated_files, read_metadata, stable_metadata_json
from dermtool.run import RunFolder

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
    assert metadata["ood"]["threshold"] is not None  # the OOD guard travels with the model
    files = read_associated_files(exported_models[mode])
    assert set(files) == {"labels.txt", "dermtool.json"}
    assert files["labels.txt"].decode().splitlines() == run.labels


@pytest.mark.parametrize("mode", ["float", "int8"])
def test_standard_metadata_has_normalisation_labels_and_general_info(mode, exported_models, tiny_run):
    spec = RunFolder(tiny_run).input_spec
    values = stable_metadata_json(exported_models[mode])
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


def _golden_model_metadata() -> dict:
    """Metadata of a fixed small int8 model with EfficientNet-Lite0's input spec and the HAM10000 labels."""
    import numpy as np

    from dermtool.data.preprocess import InputSpec
    from dermtool.export.calibration_data import representative_batches
    from dermtool.export.convert import convert
    from dermtool.export.metadata import write_metadata
    from tests.export.tiny_models import build_tiny_classifier

    spec = InputSpec(image_size=64, resize_policy="squash", mean=127.0, std=128.0)
    pixels = np.random.default_rng(0).integers(0, 256, size=(8, 64, 64, 3), dtype=np.uint8)
    content = convert(build_tiny_classifier(7, 64), "int8", "uint8", representative_batches(pixels, spec))
    content = write_metadata(content, labels=HAM_LABELS, input_spec=spec, temperature=1.5, mode="int8",
                             io_type="uint8", model_name="efficientnet-lite0")
    metadata = read_metadata(content)
    assert metadata["labels"] == HAM_LABELS and metadata["temperature"] == 1.5
    return stable_metadata_json(content)


def test_golden_metadata_file():
    """The full metadata JSON (tflite-support's MetadataDisplayer; the version field left out) is the golden
    file. Regenerate it deliberately with DERMTOOL_UPDATE_GOLDEN=1 after an intended change."""
    actual = _golden_model_metadata()
    if os.environ.get("DERMTOOL_UPDATE_GOLDEN") == "1":
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(actual, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    expected = json.loads(GOLDEN.read_text(encoding="utf-8"))
    assert actual == expected


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
