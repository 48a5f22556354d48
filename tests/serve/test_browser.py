"""The page of `dermtool serve` in real headless Chromium: upload a real HAM10000 photo, read the result.

The probabilities shown on the page must match :class:`Predictor` on the same model; the page must make no
request outside the local server; screenshots (desktop and phone) go to test-artifacts/.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dermtool.prediction.predictor import CLASS_NAMES, Predictor
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


@pytest.fixture(scope="module")
def lesion_check_reference(lesion_check_run: Path) -> Predictor:
    return Predictor(lesion_check_run)


@pytest.fixture(scope="module")
def lesion_check_server(lesion_check_run: Path):
    """`dermtool serve` of the training fixture's run with its lesion check (tests/fixtures_export.py)."""
    from dermtool.serve.app import create_app

    with LiveServer(create_app(lesion_check_run)) as server:
        yield server


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

        # The heat map explains the class shown, laid over the photo; its legend is page text.
        page.wait_for_selector("#explain-figure:not([hidden])", timeout=60_000)
        assert page.get_attribute("body", "data-heat-label") == expected["label"]
        assert page.eval_on_selector("#explain-layer", "image => image.naturalWidth") > 10
        assert CLASS_NAMES.get(expected["label"], expected["label"]) in page.inner_text("#explain-caption")
        assert page.inner_text(".explain-legend").split() == ["little", "most"]
        assert page.get_attribute("#explain-stage", "data-mode") == "over"
        assert page.locator(".explain-plain").is_hidden()
        layer, photo = page.locator("#explain-layer").bounding_box(), page.locator("#explain-under").bounding_box()
        assert layer == pytest.approx(photo, abs=1.5)  # the layer lies exactly over the photo
        page.screenshot(path=str(artifacts / "serve_desktop.png"), full_page=True)
        page.check("input[name='explain-mode'][value='beside']")
        assert page.get_attribute("#explain-stage", "data-mode") == "beside"
        plain, heat = page.locator(".explain-plain").bounding_box(), page.locator(".explain-heat").bounding_box()
        assert plain["x"] + plain["width"] <= heat["x"] and abs(plain["y"] - heat["y"]) < 2  # side by side
        page.screenshot(path=str(artifacts / "serve_desktop_heat_beside.png"), full_page=True)
        check = page.inner_text("#check-line")
        assert "dermatoscopic" not in check and check

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


def test_phone_sized_screen(browser, run_server: LiveServer, run_reference: Predictor, ham_images,
                            artifacts: Path) -> None:
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
        # The heat map's legend and caption are page text at a size read on a phone (not baked into a PNG).
        for selector in ("#explain-caption", ".explain-legend"):
            size = page.eval_on_selector(selector, "element => parseFloat(getComputedStyle(element).fontSize)")
            assert size >= 14, (selector, size)
        page.check("input[name='explain-mode'][value='beside']")
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE_VIEWPORT["width"]
        page.locator("#explain-figure").scroll_into_view_if_needed()
        page.screenshot(path=str(artifacts / "serve_phone.png"), full_page=True)
        assert errors == []
    finally:
        context.close()


@pytest.mark.parametrize("viewport", [DESKTOP_VIEWPORT, PHONE_VIEWPORT], ids=["desktop", "phone"])
def test_non_lesion_pictures_get_not_a_lesion_and_no_probabilities(
    browser, lesion_check_server: LiveServer, lesion_check_reference: Predictor, non_lesion_images, ham_images,
    viewport: dict, artifacts: Path,
) -> None:
    """The issue's invoice and blue square: "not a lesion", with no class, bar or percentage of a class shown
    (and no heat map); the lesion check's line says what it found. A real lesion photo afterwards is
    classified again."""
    names = [CLASS_NAMES.get(label, label) for label in lesion_check_reference.labels]
    context, page, _, errors = open_page(browser, lesion_check_server, viewport, scale=2 if viewport == PHONE_VIEWPORT else 1)
    try:
        for count, picture in enumerate(non_lesion_images, start=1):
            expected = lesion_check_reference.predict([picture])[0]
            assert expected["outcome"] == "not_a_lesion", (picture.name, expected)
            page.set_input_files("#file-input", str(picture))
            page.wait_for_selector(f"body[data-results='{count}']", state="attached", timeout=60_000)
            assert page.get_attribute("#outcome", "data-outcome") == "not_a_lesion"
            assert page.inner_text("#outcome-title") == OUTCOME_GUIDANCE["not_a_lesion"]["title"]
            assert page.locator(".bar-row").count() == 0 and page.locator("#bars").is_hidden()
            shown = page.inner_text("#result")
            assert not [name for name in names if name in shown], shown
            assert "No class is reported" not in shown
            assert page.locator("#explain-figure").is_hidden()
            check = page.inner_text("#check-line")
            assert check.startswith("Lesion check: no skin lesion"), check
            assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
            page.screenshot(path=str(artifacts / f"serve_{'phone' if viewport == PHONE_VIEWPORT else 'desktop'}"
                                                 f"_not_a_lesion_{picture.stem}.png"), full_page=True)
        lesion = lesion_check_reference.predict([ham_images[20]])[0]
        page.set_input_files("#file-input", str(ham_images[20]))
        page.wait_for_selector(f"body[data-results='{len(non_lesion_images) + 1}']", state="attached", timeout=60_000)
        assert page.get_attribute("#outcome", "data-outcome") == lesion["outcome"]
        if lesion["outcome"] != "not_a_lesion":
            assert page.locator(".bar-row").count() == len(names)
        assert errors == []
    finally:
        context.close()


def shown_probabilities(page) -> dict[str, float]:
    rows = page.locator(".bar-row")
    return {rows.nth(i).get_attribute("data-label"): float(rows.nth(i).get_attribute("data-probability"))
            for i in range(rows.count())}


def answer(page, answers: dict[str, str]) -> None:
    for name, value in answers.items():
        if name == "age":
            page.fill("#q-age", value)
            page.press("#q-age", "Tab")
        else:
            page.select_option(f"#q-{name}", value)


SENTENCE_MOVE = re.compile(r"(raised|lowered) (.+?) from (<?[0-9.]+%) to (<?[0-9.]+%)")


def assert_one_story(page, prediction: dict, image_alone: dict, referral_labels: list[str]) -> None:
    """The outcome, the bars, the referral figure and the answers' sentence tell the same story: every
    number on the page is read from the fused probabilities (and the photo-alone ones for "from")."""
    probabilities = prediction["probabilities"]
    assert shown_probabilities(page) == pytest.approx(probabilities, abs=1e-6)
    assert page.get_attribute("#outcome", "data-outcome") == prediction["outcome"]
    referral = sum(probabilities[label] for label in referral_labels)
    numbers = page.inner_text("#outcome-numbers")
    assert f"{referral * 100:.1f}%" in numbers, numbers
    if prediction["outcome"] == "refer" and prediction["label"] not in referral_labels:
        assert f"most likely single class is {CLASS_NAMES[prediction['label']]}" in numbers
    sentence = page.inner_text(".fusion-summary")
    moves = SENTENCE_MOVE.findall(sentence)
    by_name = {CLASS_NAMES.get(label, label): label for label in probabilities}
    for verb, name, before, after in moves:
        label = by_name[name]
        old, new = image_alone["probabilities"][label], probabilities[label]
        assert verb == ("raised" if new > old else "lowered"), (sentence, label, old, new)
        assert percent_of(before) == pytest.approx(old, abs=0.0006) and percent_of(after) == pytest.approx(new, abs=0.0006)
    moved = sorted(probabilities, key=lambda label: -abs(probabilities[label] - image_alone["probabilities"][label]))
    if abs(probabilities[moved[0]] - image_alone["probabilities"][moved[0]]) >= 0.01:
        assert moves and by_name[moves[0][1]] == moved[0], sentence  # the class that moved most is named first
    before = sum(image_alone["probabilities"][label] for label in referral_labels)
    assert f"Referral classes together: {before * 100:.1f}% before the answers, {referral * 100:.1f}% with them." in sentence


def test_questionnaire_beside_the_photo(browser, fusion_server: LiveServer, fusion_run: Path, ham_images,
                                        artifacts: Path) -> None:
    """A model with a fusion: the page asks the nine questions (all unknown at first); a photo without answers
    gets the image-alone result; answers get the fused one, where outcome, bars, referral figure, sentence
    and heat map follow the same fused probabilities; an answer that is not understood is shown beside its
    field in plain words and left out (the rest still used); clearing the answers gives the image alone."""
    reference = Predictor(fusion_run)
    image = ham_images[20]
    answers = {"bleed": "yes", "grew": "yes", "age": "64"}
    image_alone = reference.predict([image], top_k=len(reference.labels))[0]
    fused = reference.predict([image], top_k=len(reference.labels), answers=answers)[0]
    without_age = reference.predict([image], top_k=len(reference.labels), answers={"bleed": "yes", "grew": "yes"})[0]
    referral_labels = [label for label in reference.fusion_thresholds.malignant_classes if label in reference.labels]

    context, page, requests, errors = open_page(browser, fusion_server, PHONE_VIEWPORT, scale=2)
    try:
        controls = page.locator("#questions select, #questions input[name]")
        assert controls.count() == 9
        assert all(controls.nth(i).input_value() == "" for i in range(9))  # every question skippable: unknown

        page.set_input_files("#file-input", str(image))
        page.wait_for_selector("body[data-results='1']", state="attached", timeout=60_000)
        assert shown_probabilities(page) == pytest.approx(image_alone["probabilities"], abs=1e-6)
        assert page.get_attribute("#fusion", "data-applied") == "false"
        assert page.inner_text("#fusion") == "No answers given: the image alone decides."

        answer(page, answers)
        page.wait_for_function("summary => document.getElementById('fusion').dataset.summary === summary",
                               arg=fused["fusion"]["malignant_probability"]["summary"], timeout=60_000)
        page.wait_for_selector("body[data-state='done']", state="attached")
        assert_one_story(page, fused, image_alone, referral_labels)
        assert CLASS_NAMES[image_alone["label"]] in page.inner_text(".fusion-image")
        # The heat map explains the class shown: the fused top class.
        page.wait_for_function("label => document.body.dataset.heatLabel === label", arg=fused["label"], timeout=60_000)
        assert CLASS_NAMES[fused["label"]] in page.inner_text("#explain-caption")
        assert "not a medical device" in page.inner_text("footer")
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE_VIEWPORT["width"]
        page.screenshot(path=str(artifacts / "serve_phone_questionnaire.png"), full_page=True)

        # An age of 150: said beside the field, in plain words; the result stays, without the age.
        page.fill("#q-age", "150")
        page.press("#q-age", "Tab")
        page.wait_for_selector("#q-age-problem:not([hidden])", timeout=60_000)
        problem = page.inner_text("#q-age-problem")
        assert "from 0 to 120" in problem and "not used" in problem and "'150'" not in problem
        field, note = page.locator("#q-age").bounding_box(), page.locator("#q-age-problem").bounding_box()
        assert 0 <= note["y"] - (field["y"] + field["height"]) < 40  # right under its field
        page.wait_for_function("summary => document.getElementById('fusion').dataset.summary === summary",
                               arg=without_age["fusion"]["malignant_probability"]["summary"], timeout=60_000)
        assert page.locator("#error").is_hidden() and page.locator("#result").is_visible()
        assert_one_story(page, without_age, image_alone, referral_labels)
        assert "age" in page.inner_text(".fusion-unread")
        page.locator("#q-age").scroll_into_view_if_needed()
        page.screenshot(path=str(artifacts / "serve_phone_answer_not_understood.png"))

        page.click("#questions .clear-answers")
        page.wait_for_selector("#fusion[data-applied='false']:not([hidden])", timeout=60_000)
        assert page.locator("#q-age-problem").is_hidden()
        assert shown_probabilities(page) == pytest.approx(image_alone["probabilities"], abs=1e-6)
        assert errors == []
        outside = [url for url in requests if not url.startswith((fusion_server.url, "data:", "blob:"))]
        assert outside == []
    finally:
        context.close()


#: true once the fusion box lists an answer as used (the last answer given has been applied)
ANSWERS_USED = "words => (document.querySelector('.fusion-image') || {}).textContent?.includes(words)"


def test_a_new_photo_starts_a_new_patient(browser, fusion_server: LiveServer, fusion_run: Path, ham_images) -> None:
    """Answers given for one photo are cleared when another photo is chosen (the next patient), unless the
    health worker ticks "same lesion or patient": then they are kept and used for the new photo."""
    reference = Predictor(fusion_run)
    first, second = ham_images[20], ham_images[30]
    answers = {"bleed": "yes", "age": "70"}
    second_alone = reference.predict([second], top_k=len(reference.labels))[0]
    second_fused = reference.predict([second], top_k=len(reference.labels), answers=answers)[0]
    context, page, _, errors = open_page(browser, fusion_server, DESKTOP_VIEWPORT)
    try:
        page.set_input_files("#file-input", str(first))
        page.wait_for_selector("body[data-results='1']", state="attached", timeout=60_000)
        answer(page, answers)
        page.wait_for_function(ANSWERS_USED, arg="age 60-74", timeout=60_000)  # both answers applied

        results = int(page.get_attribute("body", "data-results"))
        page.set_input_files("#file-input", str(second))
        page.wait_for_selector(f"body[data-results='{results + 1}']", state="attached", timeout=60_000)
        controls = page.locator("#questions select, #questions input[name]")
        assert all(controls.nth(i).input_value() == "" for i in range(controls.count()))
        assert page.get_attribute("#fusion", "data-applied") == "false"
        assert shown_probabilities(page) == pytest.approx(second_alone["probabilities"], abs=1e-6)

        page.check("#same-patient")
        answer(page, answers)
        page.wait_for_function(ANSWERS_USED, arg="age 60-74", timeout=60_000)  # both answers applied
        results = int(page.get_attribute("body", "data-results"))
        page.set_input_files("#file-input", str(first))
        page.wait_for_selector(f"body[data-results='{results + 1}']", state="attached", timeout=60_000)
        page.set_input_files("#file-input", str(second))
        page.wait_for_selector(f"body[data-results='{results + 2}']", state="attached", timeout=60_000)
        assert page.input_value("#q-bleed") == "yes" and page.input_value("#q-age") == "70"
        assert page.get_attribute("#fusion", "data-applied") == "true"
        assert shown_probabilities(page) == pytest.approx(second_fused["probabilities"], abs=1e-6)
        assert errors == []
    finally:
        context.close()


def test_add_another_photo_of_this_lesion(browser, lesion_check_server: LiveServer, lesion_check_reference: Predictor,
                                          ham_images, non_lesion_images) -> None:
    """Several photos of one lesion: the page sends them together, the lesion's answer is
    dermtool.prediction.lesion.predict_lesion's (the rejected photo left out and listed, the rest combined by the
    model's rule), and a new photo starts a new lesion again."""
    from dermtool.prediction.lesion import predict_lesion

    results = lesion_check_reference.predict(ham_images[:30])
    first, second = [image for image, result in zip(ham_images, results) if result["outcome"] != "not_a_lesion"][:2]
    photos = [first, second, non_lesion_images[0]]
    expected = predict_lesion(lesion_check_reference, photos, top_k=len(lesion_check_reference.labels))
    assert expected["outcome"] != "not_a_lesion" and len(expected["combined"]) == 2
    context, page, _, errors = open_page(browser, lesion_check_server, DESKTOP_VIEWPORT)
    try:
        assert page.locator("#another").is_hidden()
        page.set_input_files("#file-input", str(first))
        page.wait_for_selector("body[data-results='1']", state="attached", timeout=60_000)
        for count, photo in enumerate(photos[1:], start=2):
            page.set_input_files("#another-input", str(photo))
            page.wait_for_selector(f"body[data-results='{count}']", state="attached", timeout=60_000)
        assert shown_probabilities(page) == pytest.approx(expected["probabilities"], abs=1e-6)
        assert page.get_attribute("#outcome", "data-outcome") == expected["outcome"]
        assert page.locator("#lesion-photos li").count() == 3
        assert [page.get_attribute(f"#lesion-photos li:nth-child({n})", "data-used") for n in (1, 2, 3)] == \
            ["true", "true", "false"]
        check = page.inner_text("#check-line")
        assert "2 of 3 photos show a skin lesion; left out: photo 3 (no skin lesion found)" in check, check
        assert "2 photos combined" in page.inner_text("#bars-title")
        page.wait_for_function("label => document.body.dataset.heatLabel === label", arg=expected["label"],
                               timeout=60_000)

        page.set_input_files("#file-input", str(second))  # a new lesion: one photo again
        page.wait_for_selector("body[data-results='4']", state="attached", timeout=60_000)
        alone = lesion_check_reference.predict([second], top_k=len(lesion_check_reference.labels))[0]
        assert shown_probabilities(page) == pytest.approx(alone["probabilities"], abs=1e-6)
        assert page.locator("#lesion-photos").is_hidden()
        assert errors == []
    finally:
        context.close()
