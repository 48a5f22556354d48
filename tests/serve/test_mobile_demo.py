"""The offline PWA of mobile_demo/: built around the int8 .tflite, run ON the browser by MediaPipe Tasks.

Build dist/, serve it, open it in headless Chromium, classify a real HAM10000 photo; then cut the network
(``context.set_offline(True)``), reload and classify again. The top-1 class must match dermtool's own
LiteRT run of the same .tflite (:class:`Predictor`). The page's port of dermtool's preprocessing
(mobile_demo/src/preprocess.js) is checked pixel by pixel against dermtool.data.preprocess.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np

import pytest

from dermtool.data.images import load_rgb
from dermtool.data.preprocess import resize
from dermtool.explain.predict import Predictor
from tests.serve.conftest import PHONE_VIEWPORT, REPO_ROOT, load_mobile_demo_script

pytestmark = pytest.mark.slow

MOBILE_DEMO = REPO_ROOT / "mobile_demo"


def build_demo(model: Path, out: Path) -> dict:
    if not (MOBILE_DEMO / "node_modules" / "@mediapipe" / "tasks-vision" / "vision_bundle.mjs").exists():
        pytest.fail(
            "mobile_demo/node_modules is missing: run `npm ci` in mobile_demo/ (node and npm are needed; "
            ".ci/run does it before `make test`)"
        )
    return load_mobile_demo_script("build").build(model, out)


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


@pytest.fixture(scope="module")
def demo_dist(exported_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    dist = tmp_path_factory.mktemp("mobile_demo") / "dist"
    config = build_demo(Path(exported_models["int8"]), dist)
    assert json.loads((dist / "config.json").read_text())["referral"] == config["referral"]
    assert (dist / "wasm" / "vision_wasm_internal.wasm").exists()
    return dist


def test_pwa_classifies_on_device_and_offline(
    browser, exported_models: dict[str, Path], demo_dist: Path, ham_images, artifacts: Path
) -> None:
    model = Path(exported_models["int8"])
    dist = demo_dist
    predictor = Predictor(model)
    image, expected = decisive_image(predictor, ham_images[:40])
    other_image, other_expected = decisive_image(predictor, ham_images[40:])

    with load_mobile_demo_script("serve").DemoServer(dist) as server:
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
            # Same pixels in (preprocess.js), same LiteRT kernels: the probabilities agree too.
            reference = predictor.predict([image], top_k=1)[0]["probabilities"]
            for label, probability in reference.items():
                assert online["probabilities"][label] == pytest.approx(probability, abs=0.01), label
            assert set(online["probabilities"]) == set(predictor.labels)  # names from the model's metadata
            assert page.get_attribute("#outcome", "data-outcome") in {"refer", "uncertain", "benign"}
            assert "not a medical device" in page.inner_text("footer")
            page.screenshot(path=str(artifacts / "pwa_phone_online.png"), full_page=True)
            # serve.py sent the precompressed WebAssembly: what a phone downloads is the gzip size
            wasm = "/wasm/vision_wasm_internal.wasm"
            assert server.bytes_sent.get(wasm) == (dist / (wasm[1:] + ".gz")).stat().st_size, server.bytes_sent
            first_load = sum(server.bytes_sent.values())
            raw = sum((dist / path.lstrip("/")).stat().st_size for path in server.bytes_sent if path != "/")
            assert first_load < 0.6 * raw, (first_load, raw)

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


RESIZE_IN_PAGE = """async ([data, width, height, size, policy]) => {
  const module = await import("./preprocess.js");
  const pixels = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
  const result = module.resizeForModel(pixels, width, height, size, policy);
  let text = ""; for (const value of result) text += String.fromCharCode(value);
  return btoa(text);
}"""

DECODE_IN_PAGE = """async (data) => {
  const module = await import("./preprocess.js");
  const blob = new Blob([Uint8Array.from(atob(data), (c) => c.charCodeAt(0))], { type: "image/jpeg" });
  const decoded = await module.decodeRgb(blob);
  let text = ""; for (const value of decoded.pixels) text += String.fromCharCode(value);
  return [btoa(text), decoded.width, decoded.height];
}"""


def test_page_preprocessing_is_dermtools(browser, demo_dist: Path, ham_images) -> None:
    """preprocess.js against dermtool.data.preprocess: JPEG decoding and every resize policy."""
    rng = np.random.default_rng(0)
    with load_mobile_demo_script("serve").DemoServer(demo_dist) as server:
        context = browser.new_context()
        page = context.new_page()
        try:
            page.goto(server.url + "/")
            page.wait_for_selector("body[data-ready]", state="attached", timeout=90_000)

            def in_page(image: np.ndarray, size: int, policy: str) -> np.ndarray:
                height, width = image.shape[:2]
                encoded = base64.b64encode(image.tobytes()).decode()
                out = page.evaluate(RESIZE_IN_PAGE, [encoded, width, height, size, policy])
                return np.frombuffer(base64.b64decode(out), dtype=np.uint8).reshape(size, size, 3)

            # Real photos (HAM10000's 200x150, landscape and portrait) at the model sizes: identical pixels.
            for path in ham_images[:3]:
                data = path.read_bytes()
                encoded, width, height = page.evaluate(DECODE_IN_PAGE, base64.b64encode(data).decode())
                decoded = np.frombuffer(base64.b64decode(encoded), dtype=np.uint8).reshape(height, width, 3)
                np.testing.assert_array_equal(decoded, load_rgb(data))  # EXIF-free JPEG: same decoder output
                for image in (decoded, np.ascontiguousarray(decoded.transpose(1, 0, 2))):
                    for size in (64, 224):
                        for policy in ("squash", "center_crop", "pad"):
                            np.testing.assert_array_equal(in_page(image, size, policy), resize(image, size, policy))
            # Odd shapes, up- and down-scaling: Pillow sometimes runs its two passes in the other order
            # (its choice, not documented); the rounding then differs by at most 1 on some pixels.
            for height, width in ((23, 37), (97, 131), (301, 17), (64, 64)):
                image = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
                for policy in ("squash", "center_crop", "pad"):
                    difference = np.abs(in_page(image, 96, policy).astype(int) - resize(image, 96, policy).astype(int))
                    assert difference.max() <= 1, (height, width, policy)
                    assert difference.mean() < 0.5, (height, width, policy)
        finally:
            context.close()
