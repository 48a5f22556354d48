"""The page of `dermtool serve` in real headless Chromium: upload a real HAM10000 photo, read the result.

The probabilities shown on the page must match :class:`Predictor` on the same model; the page must make no
request outside the local server; screenshots (desktop and phone) go to test-artifacts/.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dermtool.explain.predict import CLASS_NAMES, Predictor
from dermtool.serve.service import OUTCOME_GUIDANCE
from tests.serve.conftest import DESKTOP_VIEWPORT, PHONE_VIEWPORT, LiveServer

pytestmark = pytest.mark.slow


def percent_of(text: str) -> float:
    match = re.fullmatch(r"\s*(<)?([0-9.]+)%\s*", text)
    assert match, f"not a percentage: {text!r}"
    return float(match.group(2)) / 100


def open_page(browser, server: LiveServer, viewport: dict, scale: int = 1):
    context = browser.new_context(viewport=viewport, device_scale_factor=scale)
    page = context.new_page()
    requests: list[str] = []
    errors: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(server.url + "/")
    page.wait_for_selector("body[data-ready]", state="attached", timeout=30_000)
    return context, page, requests, errors


@pytest.fixture(scope="module")
def run_reference(tiny_run: Path) -> Predictor:
    return Predictor(tiny_run)


def test_upload_through_the_page_shows_the_predictor_probabilities(
    browser, run_server: LiveServer, run_reference: Predictor, ham_images, artifacts: Path
) -> None:
    image = ham_images[20]
    expected = run_reference.predict([image], top_k=len(run_reference.labels))[0]
    context, page, requests, errors = open_page(browser, run_server, DESKTOP_VIEWPORT)
    try:
        page.screenshot(path=str(artifacts / "serve_desktop_empty.png"), full_page=True)
        page.set_input_files("#file-input", str(image))
        page.wait_for_selector("body[data-state='done']", state="attached", timeout=60_000)

        rows = page.locator(".bar-row")
        assert rows.count() == len(run_reference.labels)
        shown: dict[str, float] = {}
        for index in range(rows.count()):
            row = rows.nth(index)
            label = row.get_attribute("data-label")
            shown[label] = percent_of(row.locator(".bar-value").inner_text())
            name_text = row.locator(".bar-name").inner_text()
            assert CLASS_NAMES.get(label, label) in name_text
        assert set(shown) == set(expected["probabilities"])
        for label, probability in expected["probabilities"].items():
            assert shown[label] == pytest.approx(probability, abs=0.01), label
        # Bars are ordered by probability, the most likely first.
        assert rows.first.get_attribute("data-label") == expected["label"]

        outcome = page.locator("#outcome")
        assert outcome.get_attribute("data-outcome") == expected["outcome"]
        assert page.inner_text("#outcome-title") == OUTCOME_GUIDANCE[expected["outcome"]]["title"]
        assert page.locator("footer").inner_text().count("not a medical device") >= 1

        page.wait_for_selector("#explain-figure:not([hidden])", timeout=60_000)
        assert page.eval_on_selector("#explain-image", "image => image.naturalWidth") > 100
        assert CLASS_NAMES.get(expected["label"], expected["label"]) in page.inner_text("#explain-caption")
        page.screenshot(path=str(artifacts / "serve_desktop.png"), full_page=True)

        # A file that is not an image gets a clear message, and the page (and server) carry on.
        page.set_input_files(
            "#file-input", files=[{"name": "notes.jpg", "mimeType": "image/jpeg", "buffer": b"not a photo"}]
        )
        page.wait_for_selector("#error:not([hidden])", timeout=30_000)
        assert "not an image" in page.inner_text("#error")
        assert page.locator("#explain-figure").is_hidden()
        page.screenshot(path=str(artifacts / "serve_desktop_error.png"), full_page=True)
        assert errors == []
        outside = [url for url in requests if not url.startswith((run_server.url, "data:", "blob:"))]
        assert outside == [], f"the page requested something outside the local server: {outside}"
    finally:
        context.close()


def text_image(path: Path) -> None:
    """A photo-sized picture of a printed page: black text lines on white (not a skin lesion)."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (400, 300), "white")
    draw = ImageDraw.Draw(image)
    for line in range(12):
        draw.text((20, 15 + 23 * line), "Patient notes: lorem ipsum dolor sit amet " * 2, fill="black")
    image.save(path)


def test_phone_sized_screen(browser, run_server: LiveServer, run_reference: Predictor, ham_images,
                            artifacts: Path, tmp_path: Path) -> None:
    image = ham_images[40]
    expected = run_reference.predict([image])[0]
    context, page, _, errors = open_page(browser, run_server, PHONE_VIEWPORT, scale=2)
    try:
        camera = page.locator("#camera-input")
        assert camera.get_attribute("capture") == "environment"
        assert camera.get_attribute("accept") == "image/*"
        page.set_input_files("#camera-input", str(image))
        page.wait_for_selector("body[data-state='done']", state="attached", timeout=60_000)
        assert page.locator(".bar-row").first.get_attribute("data-label") == expected["label"]
        page.wait_for_selector("#explain-figure:not([hidden])", timeout=60_000)
        # Nothing wider than the screen: no sideways scrolling on a phone.
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE_VIEWPORT["width"]
        page.screenshot(path=str(artifacts / "serve_phone.png"), full_page=True)

        # A photo of a printed page: the outcome shown is the Predictor's (not_a_lesion when the guard works).
        document = tmp_path / "document.png"
        text_image(document)
        expected_document = run_reference.predict([document])[0]
        page.set_input_files("#file-input", str(document))
        page.wait_for_selector(f"#outcome[data-outcome='{expected_document['outcome']}']", state="attached",
                               timeout=60_000)
        assert page.inner_text("#outcome-title") == OUTCOME_GUIDANCE[expected_document["outcome"]]["title"]
        page.screenshot(path=str(artifacts / f"serve_phone_{expected_document['outcome']}.png"), full_page=True)
        assert errors == []
    finally:
        context.close()


def test_questionnaire_beside_the_photo(browser, fusion_server: LiveServer, fusion_run: Path, ham_images,
                                        artifacts: Path) -> None:
    """A model with a fusion: the page asks the nine questions (all unknown at first); a photo without answers
    gets the image-alone result, answers get the fused one with the sentence, a bad answer the server's
    one-line message, and clearing the answers the image alone again."""
    reference = Predictor(fusion_run)
    image = ham_images[20]
    answers = {"bleed": "yes", "grew": "yes", "age": "64"}
    image_alone = reference.predict([image], top_k=len(reference.labels))[0]
    fused = reference.predict([image], top_k=len(reference.labels), answers=answers)[0]
    summary = fused["fusion"]["malignant_probability"]["summary"]

    def shown_probabilities(page) -> dict[str, float]:
        rows = page.locator(".bar-row")
        return {rows.nth(i).get_attribute("data-label"): float(rows.nth(i).get_attribute("data-probability"))
                for i in range(rows.count())}

    context, page, requests, errors = open_page(browser, fusion_server, PHONE_VIEWPORT, scale=2)
    try:
        controls = page.locator("#questions select, #questions input")
        assert controls.count() == 9
        assert all(controls.nth(i).input_value() == "" for i in range(9))  # every question skippable: unknown

        page.set_input_files("#file-input", str(image))
        page.wait_for_selector("body[data-results='1']", state="attached", timeout=60_000)
        assert shown_probabilities(page) == pytest.approx(image_alone["probabilities"], abs=1e-6)
        assert page.get_attribute("#fusion", "data-applied") == "false"
        assert page.inner_text("#fusion") == "No answers given: the image alone decides."

        page.select_option("#q-bleed", "yes")
        page.select_option("#q-grew", "yes")
        page.fill("#q-age", "64")
        page.press("#q-age", "Tab")
        page.wait_for_function("summary => document.getElementById('fusion').dataset.summary === summary", arg=summary,
                               timeout=60_000)
        page.wait_for_selector("body[data-state='done']", state="attached")
        assert shown_probabilities(page) == pytest.approx(fused["probabilities"], abs=1e-6)
        assert page.get_attribute("#outcome", "data-outcome") == fused["outcome"]
        assert page.inner_text(".fusion-summary") == summary[0].upper() + summary[1:] + "."
        assert CLASS_NAMES[image_alone["label"]] in page.inner_text(".fusion-image")
        assert "not a medical device" in page.inner_text("footer")
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE_VIEWPORT["width"]
        page.screenshot(path=str(artifacts / "serve_phone_questionnaire.png"), full_page=True)

        page.fill("#q-age", "150")
        page.press("#q-age", "Tab")
        page.wait_for_selector("#error:not([hidden])", timeout=60_000)
        assert "answer age='150' is not understood" in page.inner_text("#error")

        page.click("#questions .clear-answers")
        page.wait_for_selector("#fusion[data-applied='false']:not([hidden])", timeout=60_000)
        assert page.locator("#error").is_hidden()
        assert shown_probabilities(page) == pytest.approx(image_alone["probabilities"], abs=1e-6)
        assert errors == []
        outside = [url for url in requests if not url.startswith((fusion_server.url, "data:", "blob:"))]
        assert outside == []
    finally:
        context.close()
