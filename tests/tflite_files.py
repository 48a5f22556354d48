"""Helpers for tests that need a .tflite file with chosen (or broken) metadata, made from a real export."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any


def with_metadata(model_path: Path, destination: Path, files: dict[str, str]) -> Path:
    """A copy of ``model_path`` whose associated files (the zip appended to the FlatBuffer) are ``files``.

    tflite-support packs associated files as a zip archive after the FlatBuffer; a zip appended after that
    one is the one a reader finds (the end-of-archive record is read from the end of the file). ``{}``
    gives a model without metadata.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    destination.write_bytes(Path(model_path).read_bytes() + buffer.getvalue())
    return destination


def dermtool_metadata(metadata: dict[str, Any], **changes: Any) -> dict[str, str]:
    """labels.txt + dermtool.json files from a model's metadata dict, with ``changes`` applied."""
    values = dict(metadata)
    values.update(changes)
    return {"labels.txt": "\n".join(values["labels"]) + "\n", "dermtool.json": json.dumps(values)}


def with_nan_weights(model_path: Path, destination: Path) -> Path:
    """A copy of a float ``model_path`` whose float32 constant tensors (the weights) are all NaN.

    The bytes are overwritten in place inside the FlatBuffer, so the file stays a valid model with its
    metadata: it loads fine and answers NaN for every input (a corrupted model).
    """
    import numpy as np
    from tensorflow.lite.python import schema_py_generated as schema

    data = bytearray(Path(model_path).read_bytes())
    model = schema.Model.GetRootAs(data, 0)
    weights = set()
    for index in range(model.SubgraphsLength()):
        graph = model.Subgraphs(index)
        for position in range(graph.TensorsLength()):
            tensor = graph.Tensors(position)
            if tensor.Type() == schema.TensorType.FLOAT32 and tensor.Buffer() > 0:
                weights.add(tensor.Buffer())
    overwritten = 0
    for buffer_index in sorted(weights):
        raw = model.Buffers(buffer_index).DataAsNumpy()
        if isinstance(raw, int) or raw.size == 0:
            continue
        raw.view(np.float32)[:] = np.nan  # a view into ``data``
        overwritten += 1
    if not overwritten:
        raise AssertionError(f"{model_path}: no float32 weights found to overwrite")
    destination.write_bytes(bytes(data))
    return destination
