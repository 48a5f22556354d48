"""Issue #27: a model file, an answers/config file and an output path are untrusted input too.

Tampered models are real exports of the tiny run whose appended zip (labels.txt + dermtool.json) is
rewritten (tests/tflite_files.py). Every refusal is one line, exit 2, naming the field or the file.
"""

from __future__ import annotations

import io
import json
import math
import os
import stat
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from dermtool import DermtoolError
from dermtool.cli.main import cli
from dermtool.export.metadata import read_metadata
from dermtool.export.metadata_check import MAX_ASSOCIATED_FILE_BYTES
from tests.data.test_hardening import run_with_timeout
from tests.fusion.toy import toy_fusion_dict
from tests.tflite_files import dermtool_metadata, with_metadata

REPO_ROOT = Path(__file__).resolve().parents[1]


def one_error_line(result, *words: str) -> str:
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1 and result.output.startswith("Error: "), result.output
    assert "Traceback" not in result.output
    for word in words:
        assert word in result.output, result.output
    return result.output


@pytest.fixture(scope="module")
def int8_model(exported_models: dict[str, Path]) -> Path:
    return Path(exported_models["int8"])


@pytest.fixture(scope="module")
def image(small_ham: Path) -> Path:
    return sorted((small_ham / "images").iterdir())[0]


def tampered(model: Path, folder: Path, name: str, **changes) -> Path:
    return with_metadata(model, folder / f"{name}.tflite", dermtool_metadata(read_metadata(model), **changes))


# ---- 1. every metadata field is checked when a model loads -------------------------------------------------


@pytest.mark.parametrize("threshold", [float("nan"), 2.0, -0.1, "0.3"])
def test_tampered_referral_threshold_is_refused_everywhere(int8_model: Path, image: Path, tmp_path: Path,
                                                           threshold) -> None:
    from dermtool.prediction.predictor import Predictor
    from dermtool.runtime import TFLiteModel

    metadata = read_metadata(int8_model)
    referral = dict(metadata.get("referral") or {"classes": ["mel"]}, threshold=threshold)
    model = tampered(int8_model, tmp_path, "referral", referral=referral)
    output = one_error_line(CliRunner().invoke(cli, ["predict", str(image), "--model", str(model)]),
                            "referral.threshold")
    assert str(model) in output
    with pytest.raises(DermtoolError, match="referral.threshold"):  # the Python API
        TFLiteModel(model)
    with pytest.raises(DermtoolError, match="referral.threshold"):
        Predictor(model)


def test_tampered_lesion_check_and_fusion_thresholds_are_refused(int8_model: Path, image: Path, tmp_path: Path,
                                                                  exported_with_lesion_check: dict) -> None:
    metadata = read_metadata(int8_model)
    labels = metadata["labels"]
    checked = Path(exported_with_lesion_check["int8"])
    block = read_metadata(checked)["lesion_check"]
    for name, value in (("nan", float("nan")), ("two", 2.0), ("text", "high")):
        model = tampered(checked, tmp_path, f"lesion_check_{name}", lesion_check=dict(block, threshold=value))
        one_error_line(CliRunner().invoke(cli, ["predict", str(image), "--model", str(model)]),
                       "lesion_check.threshold")
    # metadata that claims a lesion check the graph does not have (or the reverse) is refused too
    model = tampered(int8_model, tmp_path, "lesion_check_claimed", lesion_check=block)
    one_error_line(CliRunner().invoke(cli, ["predict", str(image), "--model", str(model)]), "lesion-check output")
    nan_fusion = toy_fusion_dict(labels)
    nan_fusion["referral"] = dict(nan_fusion.get("referral") or {}, threshold=float("nan"))
    model = tampered(int8_model, tmp_path, "fusion", fusion=nan_fusion)
    one_error_line(CliRunner().invoke(cli, ["predict", str(image), "--model", str(model), "--answer", "bleed=yes",
                                            "--json", "-"]), "fusion.referral.threshold")
    wrong_labels = toy_fusion_dict(list(reversed(labels)))
    model = tampered(int8_model, tmp_path, "fusion_labels", fusion=wrong_labels)
    one_error_line(CliRunner().invoke(cli, ["predict", str(image), "--model", str(model)]), "fusion")
    # the untouched fusion still loads and answers
    model = tampered(int8_model, tmp_path, "fusion_ok", fusion=toy_fusion_dict(labels))
    result = CliRunner().invoke(cli, ["predict", str(image), "--model", str(model), "--answer", "bleed=yes",
                                      "--json", "-", "--no-ood"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["fusion"]["applied"] is True


@pytest.mark.parametrize("field, value, words", [
    ("temperature", float("inf"), "temperature"),
    ("input_spec", {"image_size": 64, "resize_policy": "squash", "mean": float("nan"), "std": 1.0}, "input_spec"),
    ("melanoma", {"threshold": 7}, "melanoma.threshold"),
    ("mode", "quantum", "mode"),
])
def test_other_tampered_fields_name_themselves(int8_model: Path, tmp_path: Path, field, value, words) -> None:
    model = tampered(int8_model, tmp_path, field, **{field: value})
    with pytest.raises(DermtoolError, match=words):
        read_metadata(model)


def test_a_threshold_that_is_nan_in_a_run_folder_is_refused(tiny_run: Path, tmp_path: Path) -> None:
    import shutil

    from dermtool.prediction.predictor import Predictor

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    metrics = json.loads((run / "metrics.json").read_text())
    metrics["referral"] = dict(metrics.get("referral") or {"classes": ["mel"]}, threshold=2.0)
    (run / "metrics.json").write_text(json.dumps(metrics))
    with pytest.raises(DermtoolError, match="referral.threshold must be a number in"):
        Predictor(run)


def test_the_web_app_and_the_pwa_build_refuse_a_tampered_model(int8_model: Path, tmp_path: Path) -> None:
    from dermtool.serve.app import create_app
    from tests.serve.conftest import load_mobile_demo_script

    model = tampered(int8_model, tmp_path, "nan", referral={"classes": ["mel"], "threshold": float("nan")})
    with pytest.raises(DermtoolError, match="referral.threshold"):
        create_app(model, warm_up=False)
    script = load_mobile_demo_script("build")
    assert script.main(["--model", str(model), "--out", str(tmp_path / "dist")]) == 2
    assert not (tmp_path / "dist" / "config.json").exists()


def test_json_output_never_holds_nan(tmp_path: Path) -> None:
    from dermtool.cli.output import JsonOutput, finite_json

    assert finite_json({"a": [1.0, float("nan"), {"b": float("-inf")}], "c": "x"}) == {"a": [1.0, None, {"b": None}],
                                                                                      "c": "x"}
    target = tmp_path / "out.json"
    JsonOutput(str(target)).write({"threshold": float("nan")})
    assert json.loads(target.read_text()) == {"threshold": None}


# ---- 2. a zip bomb in the metadata ------------------------------------------------------------------------


def _append_zip(model: Path, destination: Path, entries: dict[str, bytes]) -> Path:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    destination.write_bytes(model.read_bytes() + buffer.getvalue())
    return destination


def test_a_zip_bomb_in_the_metadata_is_refused_unread(int8_model: Path, image: Path, tmp_path: Path) -> None:
    files = dermtool_metadata(read_metadata(int8_model))
    big = b"\0" * (64 * 1024 * 1024)  # 64 MiB of zeros: 64 kB deflated
    model = _append_zip(int8_model, tmp_path / "bomb.tflite", {**{k: v.encode() for k, v in files.items()},
                                                                 "padding.bin": big})
    del big
    assert model.stat().st_size < int8_model.stat().st_size + 200_000
    one_error_line(CliRunner().invoke(cli, ["predict", str(image), "--model", str(model)]), "padding.bin",
                   "declares")
    # an entry that lies about its size: the declared size is small, the inflated bytes are not
    lying = _append_zip(int8_model, tmp_path / "lying.tflite", {"dermtool.json": b" " * (MAX_ASSOCIATED_FILE_BYTES * 2)})
    content = bytearray(lying.read_bytes())
    start = content.rfind(b"PK\x01\x02")  # the central directory's entry: patch its uncompressed size
    content[start + 24:start + 28] = (100).to_bytes(4, "little")
    local = content.rfind(b"PK\x03\x04")
    content[local + 22:local + 26] = (100).to_bytes(4, "little")
    lying.write_bytes(bytes(content))
    with pytest.raises(DermtoolError, match="inflates to more than|cannot be read"):
        read_metadata(lying)


# ---- 4. model, answers and config files: regular files under a size cap ------------------------------------


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_and_dev_zero_as_model_answers_and_config_are_refused_at_once(int8_model: Path, image: Path,
                                                                             tmp_path: Path) -> None:
    fifo = tmp_path / "model.tflite"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.tflite"
    zero.symlink_to("/dev/zero")
    fifo_csv = tmp_path / "answers.csv"
    os.mkfifo(fifo_csv)
    zero_toml = tmp_path / "zero.toml"
    zero_toml.symlink_to("/dev/zero")
    runner = CliRunner()
    for model in (fifo, zero):
        one_error_line(run_with_timeout(lambda: runner.invoke(cli, ["predict", str(image), "--model", str(model)])),
                       "model file", "not a regular file")
    for answers in (fifo_csv, zero):
        one_error_line(run_with_timeout(lambda: runner.invoke(
            cli, ["predict", str(image), "--model", str(int8_model), "--answers", str(answers)])),
            "--answers", "not a regular file")
    for config in (zero_toml, fifo_csv):
        one_error_line(run_with_timeout(lambda: runner.invoke(
            cli, ["train", "--config", str(config), "--out", str(tmp_path / "r")])), "config file", "not a regular file")
    one_error_line(run_with_timeout(lambda: runner.invoke(cli, ["serve", "--model", str(zero), "--port", "0"])),
                   "model file", "not a regular file")
    assert not (tmp_path / "r").exists()


def test_the_size_caps_name_themselves(int8_model: Path, image: Path, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    answers = tmp_path / "answers.csv"
    answers.write_text("image,bleed\nx.jpg,yes\n" + "y.jpg,no\n" * 2000)
    monkeypatch.setenv("DERMTOOL_MAX_FILE_MB", "0.001")
    one_error_line(CliRunner().invoke(cli, ["predict", str(image), "--model", str(int8_model), "--answers",
                                            str(answers)]), "DERMTOOL_MAX_FILE_MB", "the limit is")
    monkeypatch.setenv("DERMTOOL_MAX_MODEL_MB", "0.01")
    one_error_line(CliRunner().invoke(cli, ["predict", str(image), "--model", str(int8_model)]),
                   "DERMTOOL_MAX_MODEL_MB")


# ---- 5. output paths --------------------------------------------------------------------------------------


def _device_or_fifo(folder: Path) -> Path:
    """A character device (``mknod`` c 1 3, i.e. /dev/null) when running as root, a FIFO otherwise."""
    target = folder / "nul"
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        try:
            os.mknod(target, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
            return target
        except OSError:
            pass
    os.mkfifo(target)
    return target


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_json_path_that_is_a_device_or_fifo_is_never_replaced(int8_model: Path, image: Path, tmp_path: Path) -> None:
    node = _device_or_fifo(tmp_path)
    kind = stat.S_IFMT(node.stat().st_mode)
    link = tmp_path / "link.json"
    link.symlink_to(node)
    for path in (node, link):
        one_error_line(run_with_timeout(lambda: CliRunner().invoke(
            cli, ["predict", str(image), "--model", str(int8_model), "--json", str(path)])), "not a regular file")
    assert stat.S_IFMT(node.stat().st_mode) == kind and link.is_symlink()
    # the same rule for the other output options
    for arguments in (["data", "split", str(tmp_path), "--out", str(node)],
                      ["export", str(tmp_path), "--out", str(node)],
                      ["evaluate", str(tmp_path), "--data", str(tmp_path), "--json", str(node)]):
        one_error_line(run_with_timeout(lambda: CliRunner().invoke(cli, arguments)), "not a regular file")
    assert stat.S_IFMT(node.stat().st_mode) == kind
    # a regular file is replaced, '-' is stdout
    regular = tmp_path / "out.json"
    regular.write_text("old")
    result = CliRunner().invoke(cli, ["predict", str(image), "--model", str(int8_model), "--json", str(regular)])
    assert result.exit_code == 0, result.output
    assert isinstance(json.loads(regular.read_text()), list)


# ---- 6. three tracebacks ----------------------------------------------------------------------------------


def test_outputs_below_a_file_or_in_proc_are_one_line(small_ham: Path, tmp_path: Path) -> None:
    a_file = tmp_path / "hostname"
    a_file.write_text("x\n")
    config = str(REPO_ROOT / "configs" / "smoke.toml")
    one_error_line(CliRunner().invoke(cli, ["train", "--config", config, "--data", str(small_ham),
                                            "--out", str(a_file / "r")]), "is not a folder")
    one_error_line(CliRunner().invoke(cli, ["data", "split", str(small_ham), "--out", str(a_file / "s.csv")]),
                   "is not a folder")
    if Path("/proc/self").exists():
        result = CliRunner().invoke(cli, ["train", "--config", config, "--data", str(small_ham), "--out", "/proc/x",
                                          "--quiet"])
        one_error_line(result, "/proc/x")


def test_deeply_nested_answers_json_is_one_line(int8_model: Path, image: Path, tmp_path: Path) -> None:
    answers = tmp_path / "answers.json"
    answers.write_text("{\"x.jpg\": " + "[" * 100_000 + "]" * 100_000 + "}")
    one_error_line(CliRunner().invoke(cli, ["predict", str(image), "--model", str(int8_model), "--answers",
                                            str(answers)]), "--answers", "nested")
    config = tmp_path / "deep.toml"
    config.write_text("a = " + "[" * 100_000 + "]" * 100_000 + "\n")
    one_error_line(CliRunner().invoke(cli, ["train", "--config", str(config), "--out", str(tmp_path / "r")]),
                   "nested")


# ---- 7. conflicting answers ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fusion_model(int8_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The int8 export with a questionnaire fusion (tests/fusion/toy.py) in its dermtool.json."""
    metadata = read_metadata(int8_model)
    folder = tmp_path_factory.mktemp("fusion_model")
    return with_metadata(int8_model, folder / "fusion.tflite",
                         dermtool_metadata(metadata, fusion=toy_fusion_dict(metadata["labels"])))


@pytest.mark.parametrize("name, text, words", [
    ("rows.csv", "image,bleed\n{image},yes\n{image},no\n", ("{image}", "bleed", "two rows")),
    ("columns.csv", "image,bleed,bleed\n{image},yes,no\n", ("bleed",)),
    ("aliases.csv", "image,sex,gender\n{image},male,female\n", ("sex", "gender")),
    ("keys.json", '{{"{image}": {{"bleed": "yes", "bleed": "no"}}}}', ("{image}", "bleed", "twice")),
    ("images.json", '{{"{image}": {{"bleed": "yes"}}, "{image}": {{"bleed": "no"}}}}', ("{image}", "twice")),
    ("alias.json", '{{"{image}": {{"sex": "male", "gender": "female"}}}}', ("{image}", "sex")),
])
def test_conflicting_answers_in_a_file_are_an_error(fusion_model: Path, image: Path, tmp_path: Path,
                                                    name: str, text: str, words) -> None:
    answers = tmp_path / name
    answers.write_text(text.format(image=image.name))
    output = one_error_line(CliRunner().invoke(cli, ["predict", str(image), "--model", str(fusion_model),
                                                     "--answers", str(answers), "--no-ood"]), "--answers")
    for word in words:
        assert word.format(image=image.name) in output, output


def test_conflicting_answers_in_the_api_name_the_image(fusion_model: Path, image: Path) -> None:
    from dermtool.prediction.predictor import Predictor

    predictor = Predictor(fusion_model, ood=False)
    with pytest.raises(DermtoolError, match=rf"image 1 \({image.name}|sex"):
        predictor.predict([str(image)], answers=[{"sex": "male", "gender": "female"}])
    assert predictor.predict([str(image)], answers=[{"sex": "male", "gender": "male"}])[0]["fusion"]["applied"]


def test_the_web_app_refuses_an_answer_sent_as_a_file(fusion_model: Path, image: Path) -> None:
    from starlette.testclient import TestClient

    from dermtool.serve.app import create_app

    client = TestClient(create_app(fusion_model, warm_up=False), base_url="http://127.0.0.1:8000")
    photo = image.read_bytes()
    response = client.post("/api/predict", files={"image": ("x.jpg", photo, "image/jpeg"),
                                                  "bleed": ("answer.txt", b"yes", "text/plain")})
    assert response.status_code == 422 and "bleed" in response.json()["detail"], response.text
    response = client.post("/api/predict", files={"image": ("x.jpg", photo, "image/jpeg")},
                           data={"sex": "male", "gender": "female"})
    assert response.status_code == 400 and "sex" in response.json()["detail"], response.text
    response = client.post("/api/predict", files={"image": ("x.jpg", photo, "image/jpeg")}, data={"bleed": "yes"})
    assert response.status_code == 200 and response.json()["fusion"]["applied"], response.text


# ---- 8. a folder with no images ---------------------------------------------------------------------------


def test_predict_on_a_folder_without_images_says_so(int8_model: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "readme.txt").write_text("no photos here")
    for folder in (empty, notes):
        one_error_line(CliRunner().invoke(cli, ["predict", str(folder), "--model", str(int8_model), "--json", "-"]),
                       str(folder), "no images")


# ---- 3. a symlinked folder inside DATA reaches outside it ----------------------------------------------------


def _data_with_a_linked_folder(tmp_path: Path, small_ham: Path) -> tuple[Path, Path]:
    import shutil

    images = sorted((small_ham / "images").iterdir())
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copyfile(images[2].resolve(), outside / "SECRET_0001.jpg")
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    for source in images[:2]:
        (data / "images" / source.name).symlink_to(source.resolve())  # linked files stay allowed
    (data / "images" / "linkdir").symlink_to(outside)
    rows = [f"{images[0].stem},nv", f"{images[1].stem},mel", "linkdir/SECRET_0001,mel", "SECRET_0001,bcc"]
    (data / "labels.csv").write_text("image_id,dx\n" + "\n".join(rows) + "\n")
    return data, outside


def test_a_folder_link_out_of_data_is_refused_and_listed(small_ham: Path, int8_model: Path, tmp_path: Path) -> None:
    from dermtool.data.check import check_dataset
    from dermtool.data.layouts import read_dataset

    data, outside = _data_with_a_linked_folder(tmp_path, small_ham)
    for command in (["bench", str(int8_model), "--data", str(data), "--quiet"],
                    ["data", "split", str(data), "--out", str(tmp_path / "split.csv")]):
        output = one_error_line(CliRunner().invoke(cli, command), "images/linkdir", "outside the data folder")
        assert str(outside) not in output
    dataset = read_dataset(data, allow_outside=True)
    assert len(dataset.records) == 2 and not dataset.missing
    assert all(outside not in Path(path).resolve().parents for path in dataset.unlisted)
    report = check_dataset(data, progress=False)
    defects = {error["image_id"]: error for error in report.errors}
    assert set(defects) == {"images/linkdir", "linkdir/SECRET_0001", "SECRET_0001"}
    assert {error["reason"] for error in defects.values()} == {"outside_data"}
    assert not any(str(outside) in error["message"] for error in report.errors)
    assert report.n_valid == 2


def test_a_class_folder_linked_from_outside_is_refused(small_ham: Path, tmp_path: Path) -> None:
    from dermtool.data.check import check_dataset
    from dermtool.data.layouts import read_dataset

    images = sorted((small_ham / "images").iterdir())
    outside = tmp_path / "outside_class"
    outside.mkdir()
    (outside / "SECRET_0002.jpg").symlink_to(images[3].resolve())
    nested = tmp_path / "outside_nested"
    nested.mkdir()
    (nested / "SECRET_0003.jpg").symlink_to(images[4].resolve())
    data = tmp_path / "folders"
    for label, source in (("nv", images[0]), ("mel", images[1])):
        (data / label).mkdir(parents=True)
        (data / label / source.name).symlink_to(source.resolve())
    (data / "bcc").symlink_to(outside)  # a class folder that is a link to outside
    (data / "nv" / "more").symlink_to(nested)  # a folder link inside a class folder
    with pytest.raises(DermtoolError, match="outside the data folder"):
        read_dataset(data)
    dataset = read_dataset(data, allow_outside=True)
    assert dataset.layout == "folders" and sorted(record.label for record in dataset.records) == ["mel", "nv"]
    report = check_dataset(data, progress=False)
    assert {error["image_id"] for error in report.errors} == {"bcc", "nv/more"}


def test_the_pwa_loader_checks_config_json(fusion_model: Path, tmp_path: Path) -> None:
    """mobile_demo/src/fusion.js checkConfig (called by app.js on config.json) refuses a tampered threshold."""
    import shutil
    import subprocess

    from tests.serve.conftest import load_mobile_demo_script

    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        pytest.skip("node is not installed")
    script = load_mobile_demo_script("build")
    config = script.app_config(fusion_model, script.read_model_metadata(fusion_model))
    cases = {"valid": config,
             "referral": {**config, "referral": {**config["referral"], "threshold": 2.0}},
             "string": {**config, "referral": {**config["referral"], "threshold": "0.3"}},
             "fusion": {**config, "fusion": {**config["fusion"], "referral": {**config["fusion"]["referral"],
                                                                            "threshold": None}}},
             "labels": {**config, "fusion": {**config["fusion"], "labels": list(reversed(config["labels"]))}}}
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    runner = tmp_path / "check.mjs"
    runner.write_text(
        'import { readFileSync } from "node:fs";\n'
        f'const {{ checkConfig }} = await import({json.dumps((REPO_ROOT / "mobile_demo/src/fusion.js").as_uri())});\n'
        'const cases = JSON.parse(readFileSync(process.argv[2], "utf8"));\n'
        'const out = {};\n'
        'for (const [name, config] of Object.entries(cases)) {\n'
        '  try { checkConfig(config); out[name] = "ok"; } catch (error) { out[name] = error.message; }\n'
        '}\n'
        'console.log(JSON.stringify(out));\n')
    completed = subprocess.run([node, str(runner), str(tmp_path / "cases.json")], capture_output=True, text=True,
                               timeout=60)
    assert completed.returncode == 0, completed.stderr
    results = json.loads(completed.stdout)
    assert results["valid"] == "ok"
    assert "referral.threshold" in results["referral"] and "referral.threshold" in results["string"]
    assert "fusion.referral.threshold" in results["fusion"] and "fusion.labels" in results["labels"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_run_folder_whose_files_are_fifos_or_devices_is_refused_at_once(tiny_run: Path, tmp_path: Path) -> None:
    import shutil

    from dermtool.prediction.predictor import Predictor

    for name, make in (("metrics.json", os.mkfifo), ("model.keras", lambda path: path.symlink_to("/dev/zero")),
                       ("labels.txt", os.mkfifo)):
        run = tmp_path / name.replace(".", "_")
        shutil.copytree(tiny_run, run)
        (run / name).unlink()
        make(run / name)
        with pytest.raises(DermtoolError, match=f"not a regular file|missing {name}"):
            run_with_timeout(lambda: Predictor(run))
    run = tmp_path / "ood"  # an optional file: read through the guard
    shutil.copytree(tiny_run, run)
    (run / "fusion.json").unlink(missing_ok=True)
    os.mkfifo(run / "fusion.json")
    with pytest.raises(DermtoolError, match="not a regular file|fusion"):
        run_with_timeout(lambda: Predictor(run))
