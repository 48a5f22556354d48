"""The PWA applies the questionnaire fusion in JavaScript (mobile_demo/src/fusion.js) after MediaPipe: it
must read the answers, fuse and explain exactly as dermtool.fusion does in Python.

The recorded inputs (tests/fusion/data/fusion_parity.json): a real two-source fusion and a synthetic one
(large weights, image_scale 0.8, floor 1e-3, a question and a level without weights), probability vectors
with zeros, uint8 steps, one-hot, uniform, all-zero and a malignant sum of exactly 0.125 (a rounding tie),
answer sets empty, partial, all nine, every one unknown, in spellings people type; answers both must refuse,
and numbers whose two- and six-digit rounding ties JavaScript's toFixed rounds the other way. node runs the
JavaScript (tests/fusion/fusion_node.mjs); the fused probabilities must agree to 1e-6, the sentences,
levels and error messages exactly.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from dermtool import DermtoolError
from dermtool.fusion.explain import answer_effects
from dermtool.fusion.model import Fusion
from dermtool.fusion.questionnaire import read_answers

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
FUSION_JS = REPO_ROOT / "mobile_demo" / "src" / "fusion.js"
FIXTURE = HERE / "data" / "fusion_parity.json"
TOLERANCE = 1e-6
KINDS = ("the answers together", "raised", "lowered", "left the malignant probability", "no answers given",
         "0.12 (image alone)")  # the last: Python's rounding of the tie 0.125


@pytest.fixture(scope="module")
def fixture() -> dict:
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def javascript(fixture: dict) -> dict:
    """What fusion.js computes on the fixture, run once by node."""
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        pytest.skip("node is not installed: the JavaScript side of the parity test cannot run (apt-get install nodejs)")
    completed = subprocess.run([node, str(HERE / "fusion_node.mjs"), str(FUSION_JS), str(FIXTURE)],
                               capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)


def python_read(raw: dict) -> dict | str:
    try:
        return read_answers(raw)
    except DermtoolError as error:
        return str(error)


def test_fixture_covers_the_cases(fixture: dict) -> None:
    answers = [python_read(raw) for raw in fixture["answers"]]
    assert {} in answers and any(len(item) == 9 for item in answers) and any(0 < len(item) < 9 for item in answers)
    assert any(raw and not read for raw, read in zip(fixture["answers"], answers))  # all given as unknown
    for vectors in fixture["probabilities"].values():
        assert any(0.0 in row for row in vectors)


def test_javascript_reads_answers_as_python(fixture: dict, javascript: dict) -> None:
    for name in fixture["fusions"]:
        for raw, result in zip(fixture["answers"], javascript["results"][name]):
            assert result.get("answers") == python_read(raw), raw
    for raw, result in zip(fixture["refused"], javascript["refused"]):
        expected = python_read(raw)
        assert isinstance(expected, str), raw
        assert result == {"error": expected}, raw


def test_javascript_fuses_and_explains_as_python(fixture: dict, javascript: dict) -> None:
    compared = 0
    sentences = set()
    for name, item in fixture["fusions"].items():
        fusion = Fusion.from_dict(item)
        malignant = item["referral"]["classes"]
        vectors = fixture["probabilities"][name]
        for raw, result in zip(fixture["answers"], javascript["results"][name]):
            answers = read_answers(raw)
            expected = fusion.apply(np.asarray(vectors, dtype=np.float64), [answers] * len(vectors))
            for vector, fused, js in zip(vectors, expected, result["rows"]):
                np.testing.assert_allclose(js["fused"], fused, atol=TOLERANCE, rtol=0)
                effects = answer_effects(fusion, vector, answers, malignant)
                assert js["effects"]["summary"] == effects["summary"], (name, raw, vector)
                assert js["effects"]["image_only"] == pytest.approx(effects["image_only"], abs=TOLERANCE)
                assert js["effects"]["fused"] == pytest.approx(effects["fused"], abs=TOLERANCE)
                assert [(e["question"], e["answer"], e["words"]) for e in js["effects"]["effects"]] == [
                    (e["question"], e["answer"], e["words"]) for e in effects["effects"]]
                for mine, theirs in zip(js["effects"]["effects"], effects["effects"]):
                    assert mine["change"] == pytest.approx(theirs["change"], abs=TOLERANCE)
                block = js["block"]
                assert block["fusion"]["applied"] == bool(answers)
                assert block["fusion"]["answers"] == answers
                assert block["fusion"]["image_only"]["label"] == item["labels"][int(np.argmax(vector))]
                fused_map = block["probabilities"]
                assert [fused_map[label] for label in item["labels"]] == pytest.approx(
                    list(fused) if answers else vector, abs=TOLERANCE)
                sentences.update(kind for kind in KINDS if kind in effects["summary"])
                compared += 1
    assert compared == sum(len(vectors) for vectors in fixture["probabilities"].values()) * len(fixture["answers"])
    assert sentences == set(KINDS), sentences  # every kind of sentence was compared


def test_javascript_rounds_and_formats_as_python(fixture: dict, javascript: dict) -> None:
    for value, result in zip(fixture["numbers"], javascript["numbers"]):
        assert result["fixed2"] == f"{value:.2f}", value
        assert result["fixed6"] == f"{value:.6f}", value
        assert result["round6"] == round(value, 6), value


def test_the_native_snippets_read_what_the_fusion_json_holds(fixture: dict) -> None:
    """mobile_demo/EMBEDDING.md's Kotlin and Swift read the fusion JSON's own keys and apply the formula's
    parts (floor, log, weights, softmax). (Compiled and run against this fixture by hand with kotlinc:
    the Kotlin agrees with Fusion.apply to 1e-15; the Swift parses; no Swift compiler runs here.)"""
    import re

    guide = (REPO_ROOT / "mobile_demo" / "EMBEDDING.md").read_text(encoding="utf-8")
    section = guide.split("## Questionnaire fusion (after MediaPipe)", 1)[1].split("\n## ", 1)[0]
    kotlin = re.search(r"```kotlin\n(.*?)```", section, re.S).group(1)
    swift = re.search(r"```swift\n(.*?)```", section, re.S).group(1)
    item = fixture["fusions"]["real"]
    swift_keys = set(re.findall(r'case (\w+) = "(\w+)"', swift)) | {
        (name, name) for line in re.findall(r"^\s*case ([\w, ]+)$", swift, re.M) for name in line.split(", ")}
    for key in ("labels", "image_scale", "probability_floor", "weights", "questions"):
        assert key in item and f'"{key}"' in kotlin, key
        assert key in {json_key for _, json_key in swift_keys}, key
    for key in ("bands", "levels", "minimum", "maximum"):  # the age question's
        assert key in item["questions"][0] and f'"{key}"' in kotlin and f"let {key}:" in swift, key
    for code in (kotlin, swift):
        assert "max(" in code and "exp(" in code and ("ln(" in code or "log(" in code) and "imageScale *" in code


CHECK_CONFIG = """
import { checkConfig } from %s;
const base = { labels: ["mel", "nv"], referral: { classes: ["mel"], threshold: 0.3 }, uncertainty_threshold: 0.5,
  fusion: null, lesion_check: { head_name: "lesion_check", categories: ["lesion", "not_a_lesion"], threshold: 0.9 } };
const answers = {};
for (const [name, config] of Object.entries({
  ok: base, none: { ...base, lesion_check: null },
  zero: { ...base, lesion_check: { ...base.lesion_check, threshold: 0 } },
  above_one: { ...base, lesion_check: { ...base.lesion_check, threshold: 1.5 } },
  text: { ...base, lesion_check: { ...base.lesion_check, threshold: "0.9" } },
  no_head: { ...base, lesion_check: { ...base.lesion_check, head_name: "" } },
})) {
  try { checkConfig(config); answers[name] = "ok"; } catch (error) { answers[name] = error.message; }
}
console.log(JSON.stringify(answers));
"""


def test_the_app_refuses_a_tampered_lesion_check_in_its_config() -> None:
    """config.json's lesion check (threshold in (0, 1], a head name) is checked when the offline app loads: an
    edited threshold must neither let every photo through nor turn every lesion away."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is missing: the offline app's JavaScript tests need it (.ci/run installs it)")
    script = CHECK_CONFIG % json.dumps(FUSION_JS.as_uri())
    answers = json.loads(subprocess.run([node, "--input-type=module", "-e", script], capture_output=True, text=True,
                                        check=True, timeout=60).stdout)
    assert answers["ok"] == "ok" and answers["none"] == "ok"
    for name in ("zero", "above_one", "text"):
        assert answers[name].startswith("config.json: lesion_check.threshold must be a number in (0, 1]"), answers
    assert answers["no_head"].startswith("config.json: lesion_check.head_name must be"), answers
