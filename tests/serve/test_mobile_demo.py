"""The offline PWA of mobile_demo/: built around the int8 .tflite, run ON the browser by MediaPipe Tasks.

Build dist/, serve it, open it in headless Chromium, classify a real HAM10000 photo; then cut the network
(``context.set_offline(True)``), reload and classify again. The top-1 class must match dermtool's own
LiteRT run of the same .tflite (:class:`Predictor`). The page's port of dermtool's preprocessing
(mobile_demo/src/preprocess.js) is checked pixel by pixel against dermtool.data.preprocess.

The model's dermtool.json is given a questionnaire fusion (tests/fusion/toy.py) as ``dermtool export`` writes
one: the page asks the questions beside the photo and applies the fusion after MediaPipe (src/fusion.js);
without answers it shows the image alone, with answers what dermtool.fusion computes from the same image
probabilities, and the same sentence.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np

import pytest

from dermtool.data.images import load_rgb
from dermtool.data.preprocess import resize
from dermtool.prediction.predictor import CLASS_NAMES, Predictor
from dermtool.fusion.explain import answer_effects
from dermtool.fusion.model import Fusion
from tests.fusion.toy import toy_fusion_dict
from tests.serve.conftest import DESKTOP_VIEWPORT, PHONE_VIEWPORT, REPO_ROOT, load_mobile_demo_script

pytestmark = pytest.mark.slow

MOBILE_DEMO = REPO_ROOT / "mobile_demo"


def build_demo(model: Path, out: Path, fusion: dict | None = None) -> dict:
    """build.py's build of ``model``; with ``fusion``, as if the model's dermtool.json carried it."""
    if not (MOBILE_DEMO / "node_modules" / "@mediapipe" / "tasks-vision" / "vision_bundle.mjs").exists():
        pytest.fail(
            "mobile_demo/node_modules is missing: run `npm ci` in mobile_demo/ (node and npm are needed; "
            ".ci/run does it before `make test`)"
        )
    script = load_mobile_demo_script("build")
    if fusion is None:
        return script.build(model, out)
    read = script.read_model_metadata
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(script, "read_model_metadata", lambda path: {**read(path), "fusion": fusion})
        return script.build(model, out)


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
def toy_fusion(exported_models: dict[str, Path]) -> dict:
    return toy_fusion_dict(Predictor(Path(exported_models["int8"])).labels)


@pytest.fixture(scope="module")
def demo_dist(exported_models: dict[str, Path], toy_fusion: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    dist = tmp_path_factory.mktemp("mobile_demo") / "dist"
    config = build_demo(Path(exported_models["int8"]), dist, fusion=toy_fusion)
    assert json.loads((dist / "config.json").read_text())["referral"] == config["referral"]
    assert config["fusion"]["referral"] == {"classes": toy_fusion["referral"]["classes"], "threshold": 0.3,
                                            "source": "dermtool.json fusion"}
    assert (dist / "wasm" / "vision_wasm_internal.wasm").exists()
    assert (dist / "fusion.js").exists() and (dist / "questionnaire.js").exists()
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
            # No broken-image icon before a photo is chosen: the empty preview is not displayed at all.
            assert page.eval_on_selector("#preview", "image => getComputedStyle(image).display") == "none"
            assert page.locator("#another").is_hidden()

            online = classify(page, image, 1)
            # An export from before the lesion check: the app says it has none (and still works).
            assert page.inner_text("#check-line").startswith("This model has no lesion check")
            assert online["lesion_check"] is None
            assert online["top"] == expected["label"]
            # Same pixels in (preprocess.js), same LiteRT kernels: the probabilities agree too.
            reference = predictor.predict([image], top_k=1)[0]["probabilities"]
            for label, probability in reference.items():
                assert online["probabilities"][label] == pytest.approx(probability, abs=0.01), label
            assert set(online["probabilities"]) == set(predictor.labels)  # names from the model's metadata
            assert page.get_attribute("#outcome", "data-outcome") in {"refer", "uncertain", "benign"}
            assert online["fusion"] is None and page.get_attribute("#fusion", "data-applied") == "false"
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


def test_pwa_questionnaire_fuses_after_mediapipe(browser, demo_dist: Path, toy_fusion: dict, ham_images,
                                                 artifacts: Path) -> None:
    """The short form beside the photo (nine questions, every one unknown); no answers: the image alone;
    answers: the fusion applied to MediaPipe's probabilities exactly as dermtool.fusion applies it (1e-6),
    the same sentence, the fusion's own referral rule; a bad answer: Python's message; cleared: the image
    alone again."""
    fusion = Fusion.from_dict(toy_fusion)
    answers = {"bleed": "yes", "grew": "yes", "age": "64"}
    levels = {"bleed": "yes", "grew": "yes", "age": "60-74"}
    with load_mobile_demo_script("serve").DemoServer(demo_dist) as server:
        context = browser.new_context(viewport=PHONE_VIEWPORT, device_scale_factor=2)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        try:
            page.goto(server.url + "/")
            page.wait_for_selector("body[data-ready]", state="attached", timeout=90_000)
            assert page.get_attribute("body", "data-ready") == "true", page.inner_text("#error")
            controls = page.locator("#questions select, #questions input[name]")
            assert controls.count() == 9 and all(controls.nth(i).input_value() == "" for i in range(9))

            alone = classify(page, ham_images[20], 1)
            assert alone["fusion"] is None and alone["probabilities"] == alone["image_probabilities"]
            assert page.inner_text("#fusion") == "No answers given: the image alone decides."

            for name, value in answers.items():
                if name == "age":
                    page.fill("#q-age", value)
                    page.press("#q-age", "Tab")
                else:
                    page.select_option(f"#q-{name}", value)
            page.wait_for_function(
                "n => Object.keys((window.dermtoolLastResult.fusion || {}).answers || {}).length === n",
                arg=len(answers), timeout=30_000)
            fused = page.evaluate("window.dermtoolLastResult")
            image = [fused["image_probabilities"][label] for label in fusion.labels]
            assert image == [alone["probabilities"][label] for label in fusion.labels]  # the model ran once
            expected = fusion.apply_one(image, levels)
            assert [fused["probabilities"][label] for label in fusion.labels] == pytest.approx(list(expected), abs=1e-6)
            effects = answer_effects(fusion, image, levels, toy_fusion["referral"]["classes"])
            assert fused["fusion"]["answers"] == levels
            assert fused["fusion"]["malignant_probability"]["summary"] == effects["summary"]
            # The sentence names the classes the answers moved, read from the bars' own numbers.
            sentence = page.inner_text(".fusion-summary")
            moved = max(fusion.labels, key=lambda label: abs(fused["probabilities"][label] - alone["probabilities"][label]))
            if abs(fused["probabilities"][moved] - alone["probabilities"][moved]) >= 0.01:
                verb = "raised" if fused["probabilities"][moved] > alone["probabilities"][moved] else "lowered"
                assert sentence.startswith(f"Compared with the photo alone, the answers {verb} {CLASS_NAMES[moved]} from "
                                           f"{alone['probabilities'][moved] * 100:.1f}% to "
                                           f"{fused['probabilities'][moved] * 100:.1f}%"), sentence
            referral = toy_fusion["referral"]["classes"]
            assert (f"{sum(fused['probabilities'][label] for label in referral) * 100:.1f}% with them." in sentence)
            assert f"{sum(fused['probabilities'][label] for label in referral) * 100:.1f}%" in page.inner_text("#outcome-numbers")
            malignant = sum(expected[fusion.labels.index(label)] for label in toy_fusion["referral"]["classes"])
            rule = "refer" if malignant >= 0.3 else "uncertain" if max(expected) < 0.5 else "benign"
            assert fused["outcome"] == rule
            assert page.get_attribute("#outcome", "data-outcome") == fused["outcome"]
            assert "not a medical device" in page.inner_text("footer")
            page.screenshot(path=str(artifacts / "pwa_phone_questionnaire.png"), full_page=True)

            # An age of 150: said beside the field in plain words, left out; the other answers still count.
            page.fill("#q-age", "150")
            page.press("#q-age", "Tab")
            page.wait_for_selector("#q-age-problem:not([hidden])", timeout=30_000)
            assert "from 0 to 120" in page.inner_text("#q-age-problem")
            page.wait_for_function("() => !('age' in ((window.dermtoolLastResult.fusion || {}).answers || {}))",
                                   timeout=30_000)
            without_age = fusion.apply_one(image, {"bleed": "yes", "grew": "yes"})
            shown = page.evaluate("window.dermtoolLastResult.probabilities")
            assert [shown[label] for label in fusion.labels] == pytest.approx(list(without_age), abs=1e-6)
            assert page.locator("#error").is_hidden() and page.locator("#result").is_visible()
            assert "age" in page.inner_text(".fusion-unread")
            page.click("#questions .clear-answers")
            page.wait_for_selector("#fusion[data-applied='false']", state="visible", timeout=30_000)
            assert page.evaluate("window.dermtoolLastResult.probabilities") == alone["probabilities"]
            assert errors == []
        finally:
            context.close()


def test_config_carries_the_fusion_only_when_the_model_does(toy_fusion: dict, tmp_path: Path) -> None:
    script = load_mobile_demo_script("build")
    model = tmp_path / "model.tflite"
    model.write_bytes(b"stand-in")
    metadata = {"labels": toy_fusion["labels"], "referral": {"classes": ["mel"], "threshold": 0.4}}
    assert script.app_config(model, metadata)["fusion"] is None
    without_point = {key: value for key, value in toy_fusion.items() if key != "referral"}
    config = script.app_config(model, {**metadata, "fusion": without_point})
    assert config["fusion"]["referral"]["classes"] == ["mel"] and config["fusion"]["referral"]["threshold"] == 0.4
    assert config["fusion"]["questions"] == toy_fusion["questions"]
    with pytest.raises(script.BuildError, match="are not the model's"):
        script.app_config(model, {**metadata, "labels": ["nv", "mel"], "fusion": toy_fusion})
    with pytest.raises(script.BuildError, match="image_scale must be a positive number"):
        script.app_config(model, {**metadata, "fusion": {**toy_fusion, "image_scale": -1}})


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


def accepted_photos(model: Path, images: list[Path], count: int) -> list[Path]:
    """The first ``count`` lesion photos the model's lesion check accepts (dermtool predict's word)."""
    results = Predictor(model).predict(images)
    accepted = [image for image, result in zip(images, results) if result["outcome"] != "not_a_lesion"]
    if len(accepted) < count:
        pytest.fail(f"{model.name}'s lesion check accepts {len(accepted)} of {len(images)} real lesion photos")
    return accepted[:count]


@pytest.fixture(scope="module")
def check_dist(exported_with_lesion_check: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The PWA built around the int8 export WITH the lesion check (its second head) and a fusion."""
    model = Path(exported_with_lesion_check["int8"])
    dist = tmp_path_factory.mktemp("mobile_demo_check") / "dist"
    config = build_demo(model, dist, fusion=toy_fusion_dict(Predictor(model).labels))
    assert config["lesion_check"]["head_name"] == "lesion_check"
    assert config["lesion_check"]["threshold"] == pytest.approx(Predictor(model).lesion_check_threshold)
    assert config["multi_photo"]["rule"] and config["multi_photo"]["referral_classes"] == config["referral"]["classes"]
    for label in config["referral"]["classes"]:  # the referral message names every referral class
        assert CLASS_NAMES.get(label, label) in config["outcomes"]["refer"]["message"]
    return dist


def open_demo(browser, server, viewport: dict):
    context = browser.new_context(viewport=viewport, device_scale_factor=2 if viewport == PHONE_VIEWPORT else 1)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(server.url + "/")
    page.wait_for_selector("body[data-ready]", state="attached", timeout=90_000)
    assert page.get_attribute("body", "data-ready") == "true", page.inner_text("#error")
    return context, page, errors


@pytest.mark.parametrize("viewport", [DESKTOP_VIEWPORT, PHONE_VIEWPORT], ids=["desktop", "phone"])
def test_pwa_lesion_check_turns_non_lesions_away(browser, exported_with_lesion_check: dict[str, Path], check_dist: Path,
                                                 non_lesion_images, ham_images, viewport: dict, artifacts: Path) -> None:
    """The invoice and the blue square, on the device: MediaPipe's second head (lesion_check) says what
    dermtool predict says, the outcome is "not a lesion" and no class, bar or percentage of a class is shown."""
    predictor = Predictor(Path(exported_with_lesion_check["int8"]))
    names = [CLASS_NAMES.get(label, label) for label in predictor.labels]
    with load_mobile_demo_script("serve").DemoServer(check_dist) as server:
        context, page, errors = open_demo(browser, server, viewport)
        try:
            for count, picture in enumerate(non_lesion_images, start=1):
                expected = predictor.predict([picture])[0]
                assert expected["outcome"] == "not_a_lesion", (picture.name, expected["lesion_check"])
                shown = classify(page, picture, count)
                assert shown["outcome"] == "not_a_lesion" and shown["probabilities"] is None
                assert shown["lesion_check"]["not_a_lesion"] == pytest.approx(expected["lesion_check"]["not_a_lesion"], abs=0.02)
                assert page.get_attribute("#outcome", "data-outcome") == "not_a_lesion"
                assert page.locator(".bar-row").count() == 0 and page.locator("#bars").is_hidden()
                text = page.inner_text("#result")
                assert not [name for name in names if name in text], text
                assert page.inner_text("#check-line").startswith("Lesion check: no skin lesion found")
                assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
                page.screenshot(path=str(artifacts / f"pwa_{'phone' if viewport == PHONE_VIEWPORT else 'desktop'}"
                                                     f"_not_a_lesion_{picture.stem}.png"), full_page=True)
            photo = accepted_photos(Path(exported_with_lesion_check["int8"]), ham_images, 1)[0]
            lesion = predictor.predict([photo])[0]
            shown = classify(page, photo, len(non_lesion_images) + 1)
            assert shown["lesion_check"]["not_a_lesion"] == pytest.approx(lesion["lesion_check"]["not_a_lesion"], abs=0.02)
            assert shown["outcome"] == lesion["outcome"]
            if lesion["outcome"] != "not_a_lesion":
                assert page.locator(".bar-row").count() == len(names)
                assert page.inner_text("#check-line").startswith("Lesion check passed")
            assert errors == []
        finally:
            context.close()


def test_pwa_new_photo_clears_answers_and_adds_photos_of_one_lesion(browser, exported_with_lesion_check: dict[str, Path],
                                                                    check_dist: Path, ham_images,
                                                                    non_lesion_images) -> None:
    """A new photo clears the answers unless "same lesion or patient" is ticked; "add another photo of this
    lesion" combines the photos by the model's rule (combine.js, as dermtool.prediction.multi_photo does), the
    rejected ones left out and listed, and the answers are fused once, with the lesion's probabilities."""
    from dermtool.prediction.multi_photo import combine_photos

    config = json.loads((check_dist / "config.json").read_text())
    fusion = Fusion.from_dict(toy_fusion_dict(config["labels"]))  # the fusion check_dist was built with
    lesions = accepted_photos(Path(exported_with_lesion_check["int8"]), ham_images, 3)
    with load_mobile_demo_script("serve").DemoServer(check_dist) as server:
        context, page, errors = open_demo(browser, server, PHONE_VIEWPORT)
        try:
            first = classify(page, lesions[0], 1)
            page.select_option("#q-bleed", "yes")
            page.wait_for_function("() => (window.dermtoolLastResult.fusion || {}).applied === true", timeout=30_000)
            second = classify(page, lesions[1], 2)  # a new lesion, a new patient
            assert page.input_value("#q-bleed") == "" and second["fusion"] is None
            assert page.locator("#lesion-photos").is_hidden()

            page.check("#same-patient")
            page.select_option("#q-bleed", "yes")
            page.wait_for_function("() => (window.dermtoolLastResult.fusion || {}).applied === true", timeout=30_000)
            page.set_input_files("#another-input", str(lesions[0]))
            page.wait_for_selector("body[data-classified='3']", state="attached", timeout=60_000)
            page.set_input_files("#another-input", str(non_lesion_images[1]))
            page.wait_for_selector("body[data-classified='4']", state="attached", timeout=60_000)
            lesion = page.evaluate("window.dermtoolLastResult")
            assert [photo["rejected"] for photo in lesion["photos"]] == [False, False, True]
            assert page.input_value("#q-bleed") == "yes"
            combined = combine_photos([second["image_probabilities"], first["image_probabilities"]], config["multi_photo"])
            assert lesion["image_probabilities"] == pytest.approx(combined, abs=1e-6)
            expected = fusion.apply_one([combined[label] for label in fusion.labels], {"bleed": "yes"})
            assert [lesion["probabilities"][label] for label in fusion.labels] == pytest.approx(list(expected), abs=1e-6)
            assert page.locator("#lesion-photos li").count() == 3
            assert page.get_attribute("#lesion-photos li:nth-child(3)", "data-used") == "false"
            assert "left out: photo 3" in page.inner_text("#check-line")
            assert "2 photos combined" in page.inner_text("#bars-title")

            page.uncheck("#same-patient")
            classify(page, lesions[2], 5)  # the next patient: one photo, no answers
            assert page.input_value("#q-bleed") == "" and page.locator("#lesion-photos").is_hidden()
            assert len(page.evaluate("window.dermtoolLastResult.photos")) == 1
            assert errors == []
        finally:
            context.close()
