"""The offline PWA of mobile_demo/: built around the int8 .tflite, run ON the browser by MediaPipe Tasks.

Build dist/, serve it, open it in headless Chromium, classify a real HAM10000 photo; then cut the network
(``context.set_offline(True)``), reload and classify again. The top-1 class must match dermtool's own
LiteRT run of the same .tflite (:class:`Predictor`).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dermtool.explain.predict import Predictor
from tests.serve.conftest import PHONE_VIEWPORT, REPO_ROOT, StaticServer

pytestmark = pytest.mark.slow

MOBILE_DEMO = REPO_ROOT / "mobile_demo"


def build_demo(model: Path, out: Path) -> dict:
    if not (MOBILE_DEMO / "node_modules" / "@mediapipe" / "tasks-vision" / "vision_bundle.mjs").exists():
        pytest.fail(
            "mobile_demo/node_modules is missing: run `npm ci` in mobile_demo/ (node and npm are needed; "
            ".ci/run does it before `make test`)"
        )
    import importlib.util

    spec = importlib.util.spec_from_file_location("mobile_demo_build", MOBILE_DEMO / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build(model, out)


def decisive_image(predictor: Predictor, images: list[Path], minimum_margin: float = 0.01) -> tuple[Path, dict]:
    """The image whose top class leads the second by the widest margin: top-1 is then a fair comparison
    between two resamplers (PIL's bilinear in dermtool, MediaPipe's in the browser)."""
    results = predictor.predict(images, top_k=2)
    margins = [result["top_k"][0]["probability"] - result["top_k"][1]["probability"] for result in results]
    best = max(range(len(images)), key=lambda index: margins[index])
    if margins[best] < minimum_margin:
        pytest.fail(f"the model's top class never leads by {minimum_margin} on {len(images)} images")
    return images[best], results[best]


def classify(page, image: Path, count: int) -> dict:
    page.set_input_files("#file-input", str(image))
    page.wait_for_selector(f"body[data-classified='{count}']", state="attached", timeout=60_000)
    return page.evaluate("window.dermtoolLastResult")


def test_pwa_classifies_on_device_and_offline(
    browser, exported_models: dict[str, Path], ham_images, tmp_path: Path, artifacts: Path
) -> None:
    model = Path(exported_models["int8"])
    dist = tmp_path / "dist"
    config = build_demo(model, dist)
    assert json.loads((dist / "config.json").read_text())["referral"] == config["referral"]
    assert (dist / "wasm" / "vision_wasm_internal.wasm").exists()

    predictor = Predictor(model)
    image, expected = decisive_image(predictor, ham_images[:40])
    other_image, other_expected = decisive_image(predictor, ham_images[40:])

    with StaticServer(dist) as server:
        context = browser.new_context(viewport=PHONE_VIEWPORT, device_scale_factor=2)
        page = context.new_page()
        requests: list[str] = []
        page.on("request", lambda request: requests.append(request.url))
        try:
            page.goto(server.url + "/")
            page.wait_for_selector("body[data-ready]", state="attached", timeout=90_000)
            assert page.get_attribute("body", "data-ready") == "true", page.inner_text("#error")
            assert page.get_attribute("body", "data-offline") == "active"

            online = classify(page, image, 1)
            assert online["top"] == expected["label"]
            assert set(online["probabilities"]) == set(predictor.labels)  # names from the model's metadata
            assert page.get_attribute("#outcome", "data-outcome") in {"refer", "uncertain", "benign"}
            assert "not a medical device" in page.inner_text("footer")
            page.screenshot(path=str(artifacts / "pwa_phone_online.png"), full_page=True)

            context.set_offline(True)
            page.reload()
            page.wait_for_selector("body[data-ready]", state="attached", timeout=90_000)
            assert page.get_attribute("body", "data-ready") == "true", page.inner_text("#error")
            offline = classify(page, other_image, 1)
            assert offline["top"] == other_expected["label"]
            again = classify(page, image, 2)
            assert again["top"] == expected["label"]
            for label, probability in online["probabilities"].items():
                assert again["probabilities"][label] == pytest.approx(probability, abs=1e-6)
            page.screenshot(path=str(artifacts / "pwa_phone_offline.png"), full_page=True)
        finally:
            context.close()
    outside = [url for url in requests if not url.startswith((server.url, "data:", "blob:"))]
    assert outside == [], f"the PWA requested something outside its own origin: {outside}"
