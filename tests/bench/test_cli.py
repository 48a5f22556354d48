"""`dermtool bench` on the command line: outputs written, and every bad input a one-line error (exit 2)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from dermtool.cli.main import cli
from dermtool.runtime import TFLiteModel
from tests.bench.test_runner import assert_bench_schema
from tests.tflite_files import dermtool_metadata, with_metadata

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def bench(*arguments: str):
    return CliRunner().invoke(cli, ["bench", *map(str, arguments)])


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_help_teaches_with_examples() -> None:
    result = bench("--help")
    assert result.exit_code == 0
    for option in ("--data", "--split", "--manifest", "--reference", "--threads", "--runs", "--warmup", "--json",
                   "--md", "--plots", "--ignore-unknown", "--labels", "Examples:"):
        assert option in result.output, option


def test_bench_writes_json_markdown_and_plots(
    exported_models: dict[str, Path], tiny_run: Path, small_ham: Path, tmp_path: Path
) -> None:
    out_json, out_md, plots = tmp_path / "int8.json", tmp_path / "int8.md", tmp_path / "plots"
    # the run-folder reference is covered by tests/bench/test_runner.py; here the float .tflite (no TensorFlow)
    result = bench(exported_models["int8"], "--data", small_ham, "--split", "test", "--manifest", tiny_run / "split.csv",
                   "--reference", exported_models["float"], "--threads", "1", "--threads", "2", "--runs", "20", "--warmup", "2",
                   "--json", out_json, "--md", out_md, "--plots", plots)
    assert result.exit_code == 0, result.output
    results = json.loads(out_json.read_text())
    labels = TFLiteModel(exported_models["int8"]).labels
    assert_bench_schema(results, labels, [1, 2], reference=True)
    assert results["latency_ms"]["1"]["runs"] == 20
    # the terminal table and the Markdown list melanoma first
    table = result.stdout
    assert "Latency" in table and "Reference:" in table
    class_rows = [line.split()[0] for line in table.split("Per class")[1].splitlines()[2:2 + len(labels)]]
    assert class_rows[0] == "mel" and sorted(class_rows) == sorted(labels)
    markdown = out_md.read_text()
    assert "| mel (melanoma) |" in markdown and "### Latency (ms)" in markdown and "top-1 agreement" in markdown
    assert markdown.index("| mel (melanoma) |") < markdown.index(f"| {[label for label in labels if label != 'mel'][0]} |")
    for name in ("confusion_matrix.png", "reliability.png", "latency_histogram.png"):
        assert (plots / name).read_bytes()[:8] == PNG_SIGNATURE, name


def test_json_to_stdout(exported_models: dict[str, Path], small_ham: Path) -> None:
    result = bench(exported_models["float"], "--data", small_ham, "--runs", "3", "--warmup", "0", "--json", "-")
    assert result.exit_code == 0, result.output
    results = json.loads(result.stdout)
    assert results["n"] == 84 and list(results["latency_ms"]) == ["1"]


# ------------------------------------------------------------------------------------------ bad inputs
def test_not_a_tflite_file(small_ham: Path, tmp_path: Path) -> None:
    text = tmp_path / "model.tflite"
    text.write_text("not a model")
    assert_one_line_error(bench(text, "--data", small_ham), "not a TFLite model", "TFL3")
    assert_one_line_error(bench(tmp_path / "missing.tflite", "--data", small_ham), "model file not found")


def test_truncated_model(exported_models: dict[str, Path], small_ham: Path, tmp_path: Path) -> None:
    content = exported_models["int8"].read_bytes()
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(content[: len(content) // 2])
    assert_one_line_error(bench(truncated, "--data", small_ham), "truncated or corrupt")


def test_model_input_size_does_not_fit_its_spec(exported_models: dict[str, Path], small_ham: Path, tmp_path: Path) -> None:
    model = TFLiteModel(exported_models["int8"])
    spec = dict(model.input_spec.to_dict(), image_size=model.image_size * 2)
    broken = with_metadata(exported_models["int8"], tmp_path / "size.tflite", dermtool_metadata(model.metadata, input_spec=spec))
    assert_one_line_error(bench(broken, "--data", small_ham), f"takes {model.image_size}x{model.image_size} images")


def test_label_count_does_not_fit_the_model(exported_models: dict[str, Path], small_ham: Path, tmp_path: Path) -> None:
    model = TFLiteModel(exported_models["int8"])
    broken = with_metadata(exported_models["int8"], tmp_path / "labels.tflite",
                           dermtool_metadata(model.metadata, labels=model.labels[:3]))
    assert_one_line_error(bench(broken, "--data", small_ham), f"{model.num_classes} outputs", "3 labels")


def test_model_without_labels(exported_models: dict[str, Path], small_ham: Path, tmp_path: Path) -> None:
    bare = with_metadata(exported_models["int8"], tmp_path / "bare.tflite", {})
    assert_one_line_error(bench(bare, "--data", small_ham), "no label metadata")


def test_reference_with_other_labels(exported_models: dict[str, Path], small_ham: Path, tmp_path: Path) -> None:
    model = TFLiteModel(exported_models["float"])
    renamed = with_metadata(exported_models["float"], tmp_path / "renamed.tflite",
                            dermtool_metadata(model.metadata, labels=[f"class{n}" for n in range(model.num_classes)],
                                              referral=None, melanoma=None, multi_photo=None))  # a valid model of other classes
    result = bench(exported_models["int8"], "--data", small_ham, "--reference", renamed, "--runs", "2")
    assert_one_line_error(result, "must be the same classes")


def test_split_without_a_split_file(exported_models: dict[str, Path], small_ham: Path) -> None:
    assert_one_line_error(bench(exported_models["int8"], "--data", small_ham, "--split", "test"), "--manifest")


@pytest.fixture(scope="module")
def data_with_unknown_labels(small_ham: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """small_ham's images with the 12 dermatofibroma images relabelled 'scc' (a class the model lacks)."""
    folder = tmp_path_factory.mktemp("unknown_labels")
    (folder / "images").mkdir()
    for image in (small_ham / "images").iterdir():  # linked files (a folder link out of DATA is refused)
        (folder / "images" / image.name).symlink_to(image.resolve())
    with open(small_ham / "labels.csv", newline="") as source, open(folder / "labels.csv", "w", newline="") as target:
        writer = csv.writer(target)
        for row in csv.reader(source):
            writer.writerow([row[0], "scc" if row[1] == "df" else row[1], *row[2:]])
    return folder


def test_labels_the_model_does_not_know(exported_models: dict[str, Path], data_with_unknown_labels: Path) -> None:
    assert_one_line_error(bench(exported_models["int8"], "--data", data_with_unknown_labels),
                          "'scc' (12 images)", "--ignore-unknown")
    result = bench(exported_models["int8"], "--data", data_with_unknown_labels, "--ignore-unknown",
                   "--runs", "3", "--warmup", "0", "--json", "-")
    assert result.exit_code == 0, result.output
    assert "ignored 12 image(s)" in result.stderr
    results = json.loads(result.stdout)
    assert results["n"] == 72 and results["ignored_unknown"] == {"scc": 12}


def test_a_real_process_prints_exactly_one_line(exported_models: dict[str, Path], data_with_unknown_labels: Path) -> None:
    """In a fresh process the model is loaded (LiteRT's native logging included) before the error: still one line."""
    completed = subprocess.run(
        [sys.executable, "-m", "dermtool.cli.main", "bench", str(exported_models["int8"]), "--data",
         str(data_with_unknown_labels)], capture_output=True, text=True, timeout=120,
    )
    assert completed.returncode == 2
    assert completed.stderr.count("\n") == 1 and completed.stderr.startswith("Error: labels in DATA"), completed.stderr
