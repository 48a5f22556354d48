"""The offline app combines a lesion's photos in JavaScript (mobile_demo/src/combine.js): it must give the
numbers dermtool.prediction.multi_photo gives in Python, to 1e-6, and refuse what Python refuses.

The cases: every rule on one to six photos drawn from Dirichlet distributions of 8 classes, rows with exact
zeros and uint8 steps (an int8 model's outputs), one-hot rows, uniform rows, a tie of referral probabilities
(the first photo wins), floors 1e-4 and 1e-2, and rules both sides must refuse. node runs the JavaScript
(tests/explain/combine_node.mjs), as tests/fusion/test_fusion_js.py does for the fusion.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from dermtool import DermtoolError
from dermtool.prediction.multi_photo import RULES, combine_photos

HERE = Path(__file__).resolve().parent
COMBINE_JS = HERE.parents[1] / "mobile_demo" / "src" / "combine.js"
LABELS = ["akiec", "bcc", "bkl", "df", "mel", "nv", "scc", "vasc"]
REFERRAL = ["mel", "bcc", "akiec", "scc"]
TOLERANCE = 1e-6


def _maps(rows: np.ndarray) -> list[dict[str, float]]:
    return [{label: float(value) for label, value in zip(LABELS, row)} for row in rows]


def _cases() -> list[dict]:
    random = np.random.default_rng(29)
    cases = []
    for name in RULES:
        for floor in (1e-4, 1e-2):
            rule = {"rule": name, "probability_floor": floor, "referral_classes": REFERRAL}
            for count in (1, 2, 3, 6):
                rows = random.dirichlet(np.full(len(LABELS), 0.5), size=count)
                cases.append({"maps": _maps(rows), "rule": rule})
                steps = np.round(rows * 256) / 256  # uint8 outputs: exact zeros
                cases.append({"maps": _maps(steps), "rule": rule})
            cases.append({"maps": _maps(np.eye(len(LABELS))[[0, 5, 4]]), "rule": rule})
            cases.append({"maps": _maps(np.full((2, len(LABELS)), 1 / len(LABELS))), "rule": rule})
    tie = np.array([[0.25, 0.0, 0.25, 0.0, 0.0, 0.5, 0.0, 0.0], [0.0, 0.25, 0.0, 0.0, 0.0, 0.75, 0.0, 0.0]])
    cases.append({"maps": _maps(tie), "rule": {"rule": "max_referral", "referral_classes": REFERRAL}})
    cases.append({"maps": _maps(tie[::-1]), "rule": "mean"})  # a bare name
    return cases


REFUSED = [
    {"maps": _maps(np.full((1, 8), 0.125)), "rule": {"rule": "median"}},
    {"maps": _maps(np.full((1, 8), 0.125)), "rule": {"rule": "max_referral"}},
    {"maps": _maps(np.full((1, 8), 0.125)), "rule": {"rule": "mean", "probability_floor": 2}},
    {"maps": [], "rule": "mean"},
    {"maps": [{"mel": 1.0}, {"nv": 1.0}], "rule": "mean"},
]


@pytest.fixture(scope="module")
def javascript(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """What combine.js computes on every case (the agreeing ones, then the refused), run once by node."""
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        pytest.skip("node is not installed: the JavaScript side of the parity test cannot run (apt-get install nodejs)")
    path = tmp_path_factory.mktemp("combine") / "cases.json"
    path.write_text(json.dumps(_cases() + REFUSED), encoding="utf-8")
    completed = subprocess.run([node, str(HERE / "combine_node.mjs"), str(COMBINE_JS), str(path)],
                               capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)


def test_javascript_combines_as_python(javascript: list[dict]) -> None:
    cases = _cases()
    assert {case["rule"]["rule"] if isinstance(case["rule"], dict) else case["rule"] for case in cases} == set(RULES)
    for case, result in zip(cases, javascript):
        expected = combine_photos(case["maps"], case["rule"])
        assert "error" not in result, (case, result)
        assert list(result["combined"]) == list(expected)
        np.testing.assert_allclose([result["combined"][label] for label in expected], list(expected.values()),
                                   atol=TOLERANCE, rtol=0)
    tie = javascript[len(cases) - 2]["combined"]
    assert tie["akiec"] == 0.25  # the first of two photos with the same referral probability


def test_javascript_refuses_what_python_refuses(javascript: list[dict]) -> None:
    for case, result in zip(REFUSED, javascript[len(_cases()):]):
        with pytest.raises(DermtoolError) as refused:
            combine_photos(case["maps"], case["rule"])
        assert result == {"error": str(refused.value).removeprefix("multi_photo: ")}, case


def test_the_native_snippets_apply_every_rule() -> None:
    """mobile_demo/EMBEDDING.md's Kotlin and Swift for several photos of one lesion name every rule and its
    parts (the floor, log, exp, the referral classes). (No Kotlin or Swift compiler runs here.)"""
    import re

    guide = (HERE.parents[1] / "mobile_demo" / "EMBEDDING.md").read_text(encoding="utf-8")
    section = guide.split("## Several photos of one lesion", 1)[1].split("\n## ", 1)[0]
    kotlin = re.search(r"```kotlin\n(.*?)```", section, re.S).group(1)
    swift = re.search(r"```swift\n(.*?)```", section, re.S).group(1)
    for code in (kotlin, swift):
        assert "combinePhotos" in code and "floor" in code and "referral" in code
        assert "exp(" in code and ("ln(" in code or "log(" in code)
        for rule in RULES[:2]:
            assert f'"{rule}"' in code, rule
    assert '"max_referral"' in kotlin and "max_referral" in swift
    for key in ("rule", "probability_floor", "referral_classes"):
        assert f"`{key}`" in section
