"""The JSON API of `dermtool serve`, against a live uvicorn server and real HAM10000 images.

The int8 .tflite of the export fixture serves the fast tests; the float run of the training fixture serves
Grad-CAM. Every answer is compared with what :class:`dermtool.prediction.predictor.Predictor` says directly.
"""

from __future__ import annotations

import base64
import io
import os
import socket
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from dermtool.prediction.predictor import CLASS_NAMES, Predictor
from dermtool.serve.app import create_app
from dermtool.serve.service import ModelService
from tests.serve.conftest import LiveServer

#: the predict --json keys, and the lesion check's verdict (issue 29: null for a model without the check)
CONTRACT_KEYS = {"image", "outcome", "label", "probability", "probabilities", "top_k", "ood_score", "lesion_check"}


@pytest.fixture(scope="module")
def int8_model(exported_models: dict[str, Path]) -> Path:
    return Path(exported_models["int8"])


@pytest.fixture(scope="module")
def tflite_service(int8_model: Path) -> ModelService:
    return ModelService(int8_model)


@pytest.fixture(scope="module")
def tflite_server(tflite_service: ModelService):
    with LiveServer(create_app(tflite_service, max_upload_mb=10)) as server:
        yield server


@pytest.fixture(scope="module")
def reference(int8_model: Path) -> Predictor:
    """An independent Predictor on the same .tflite: what the API must agree with."""
    return Predictor(int8_model)


@pytest.fixture()
def client(tflite_server: LiveServer):
    with httpx.Client(base_url=tflite_server.url, timeout=60) as http:
        yield http


def post_image(http: httpx.Client, data: bytes, name: str = "lesion.jpg", content_type: str = "image/jpeg",
               path: str = "/api/predict") -> httpx.Response:
    return http.post(path, files={"image": (name, data, content_type)})


def test_health_and_model_description(client: httpx.Client, reference: Predictor) -> None:
    health = client.get("/api/health")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    model = client.get("/api/model").json()
    assert model["kind"] == "tflite"
    assert model["labels"] == reference.labels
    assert model["names"] == {label: CLASS_NAMES.get(label, label) for label in reference.labels}
    assert model["input_size"] == reference.input_spec.image_size
    assert model["explain_available"] is False
    assert set(model["outcomes"]) == {"refer", "uncertain", "not_a_lesion", "benign"}
    assert "not a medical device" in model["disclaimer"]
    assert model["referral_threshold"] == pytest.approx(reference.thresholds.referral)
    # The referral message names the model's own referral classes (its metadata), every one of them.
    referral = [label for label in reference.thresholds.malignant_classes if label in reference.labels]
    assert model["referral_labels"] == referral and referral
    for label in referral:
        assert CLASS_NAMES.get(label, label) in model["outcomes"]["refer"]["message"]
    assert "{classes}" not in model["outcomes"]["refer"]["message"]


def test_openapi_documents_the_api(client: httpx.Client) -> None:
    schema = client.get("/openapi.json").json()
    for path in ("/api/predict", "/api/explain", "/api/health", "/api/model"):
        assert path in schema["paths"], path
    body = schema["paths"]["/api/predict"]["post"]["requestBody"]["content"]
    assert body["multipart/form-data"]["schema"]["properties"]["image"]["format"] == "binary"
    assert "yes or no" in body["multipart/form-data"]["schema"]["properties"]["bleed"]["description"]
    responses = schema["paths"]["/api/predict"]["post"]["responses"]
    assert {"200", "413", "415", "422"} <= set(responses)
    assert "ErrorDetail" in schema["components"]["schemas"]
    assert client.get("/docs").status_code == 404  # Swagger UI would load scripts from a CDN


def test_page_and_security_headers(client: httpx.Client) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "not a medical device" in page.text
    assert 'capture="environment"' in page.text and 'accept="image/*"' in page.text
    assert "http://" not in page.text and "https://" not in page.text  # nothing loaded from the network
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    for asset in ("/static/app.js", "/static/style.css", "/static/results.js", "/static/results.css",
                  "/static/questionnaire.js"):
        response = client.get(asset)
        assert response.status_code == 200
        assert "http://" not in response.text and "https://" not in response.text


def test_predict_real_image_matches_predictor(client: httpx.Client, reference: Predictor, ham_images) -> None:
    for path in ham_images[:3]:
        data = path.read_bytes()
        response = post_image(client, data)
        assert response.status_code == 200, response.text
        assert response.headers["cache-control"] == "no-store"
        result = response.json()
        assert set(result) == CONTRACT_KEYS
        expected = reference.predict([data], top_k=len(reference.labels))[0]
        assert result["image"] == "<upload>"
        assert result["label"] == expected["label"]
        assert result["outcome"] == expected["outcome"]
        for label, probability in expected["probabilities"].items():
            assert result["probabilities"][label] == pytest.approx(probability, abs=1e-6)
        # uint8 outputs of an int8 model are multiples of 1/256: the sum is 1 within C half-steps.
        assert sum(result["probabilities"].values()) == pytest.approx(1.0, abs=len(expected["probabilities"]) / 512)
        assert [entry["label"] for entry in result["top_k"]] == [entry["label"] for entry in expected["top_k"]]
        assert all(entry["name"] == CLASS_NAMES.get(entry["label"], entry["label"]) for entry in result["top_k"])


def test_predict_accepts_a_raw_image_body(client: httpx.Client, reference: Predictor, ham_images) -> None:
    data = ham_images[5].read_bytes()
    response = client.post("/api/predict", content=data, headers={"Content-Type": "image/jpeg"})
    assert response.status_code == 200, response.text
    assert response.json()["label"] == reference.predict([data])[0]["label"]


def test_non_image_upload_is_refused_with_415(client: httpx.Client) -> None:
    response = post_image(client, b"name,dx\nISIC_1,mel\n", name="labels.csv", content_type="text/csv")
    assert response.status_code == 415
    assert "not an image" in response.json()["detail"]
    response = client.post("/api/predict", json={"image": "lesion.jpg"})
    assert response.status_code == 415
    assert "multipart/form-data" in response.json()["detail"]


def test_undecodable_images_are_refused_with_422(client: httpx.Client, ham_images) -> None:
    text = post_image(client, b"<html>this is not a photo</html>")
    assert text.status_code == 422
    assert "not an image" in text.json()["detail"]
    truncated = post_image(client, ham_images[0].read_bytes()[:2000])
    assert truncated.status_code == 422
    assert "[truncated]" in truncated.json()["detail"] or "[unreadable]" in truncated.json()["detail"]


def test_empty_requests_are_refused_with_422(client: httpx.Client) -> None:
    no_body = client.post("/api/predict")
    assert no_body.status_code == 422 and "No image" in no_body.json()["detail"]
    no_file = client.post("/api/predict", data={"note": "forgot the photo"}, files={"other": ("", b"", "")})
    assert no_file.status_code in (415, 422), no_file.text
    form_without_file = client.post(
        "/api/predict",
        content=b"--xyz\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n--xyz--\r\n",
        headers={"Content-Type": "multipart/form-data; boundary=xyz"},
    )
    assert form_without_file.status_code == 422 and "No image" in form_without_file.json()["detail"]
    empty_file = post_image(client, b"")
    assert empty_file.status_code == 422 and "empty" in empty_file.json()["detail"]


def test_oversized_upload_is_refused_with_413(tflite_service: ModelService, ham_images) -> None:
    data = ham_images[0].read_bytes()
    limit_mb = len(data) / 2 / 1_000_000
    with LiveServer(create_app(tflite_service, max_upload_mb=limit_mb, warm_up=False)) as server:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            response = post_image(http, data)
            assert response.status_code == 413
            assert "larger than the limit" in response.json()["detail"]
            # The same limit without a Content-Length (chunked upload) is enforced while reading.
            chunked = http.post(
                "/api/predict", content=iter([data[:1000], data[1000:]]), headers={"Content-Type": "image/jpeg"}
            )
            assert chunked.status_code == 413
            small = Image.open(io.BytesIO(data)).resize((60, 45))
            buffer = io.BytesIO()
            small.save(buffer, format="JPEG")
            assert post_image(http, buffer.getvalue()).status_code == 200
            assert http.get("/api/health").status_code == 200


def test_explain_on_a_tflite_says_why_with_409(client: httpx.Client, ham_images) -> None:
    response = post_image(client, ham_images[0].read_bytes(), path="/api/explain")
    assert response.status_code == 409
    assert "run folder" in response.json()["detail"]


def test_parallel_requests_are_answered_and_the_server_stays_healthy(
    client: httpx.Client, reference: Predictor, tflite_server: LiveServer, ham_images
) -> None:
    images = [path.read_bytes() for path in ham_images[:8]]
    bad = [b"", b"GIF89a broken", b"\x89PNG\r\n\x1a\n" + b"\x00" * 20]

    def send(data: bytes) -> httpx.Response:
        with httpx.Client(base_url=tflite_server.url, timeout=120) as http:
            return post_image(http, data)

    with ThreadPoolExecutor(max_workers=len(images) + len(bad)) as pool:
        responses = list(pool.map(send, images + bad))
    expected = reference.predict(images, top_k=len(reference.labels))
    for response, wanted in zip(responses[: len(images)], expected):
        assert response.status_code == 200, response.text
        assert response.json()["label"] == wanted["label"]
        for label, probability in wanted["probabilities"].items():
            assert response.json()["probabilities"][label] == pytest.approx(probability, abs=1e-6)
    assert all(response.status_code == 422 for response in responses[len(images):])
    assert client.get("/api/health").json()["status"] == "ok"
    assert post_image(client, images[0]).json()["label"] == expected[0]["label"]


def test_malformed_requests_do_not_take_the_server_down(client: httpx.Client, ham_images) -> None:
    garbage = client.post(
        "/api/predict", content=b"\x00\xff" * 500, headers={"Content-Type": "multipart/form-data; boundary=abc"}
    )
    assert garbage.status_code in (400, 422)
    no_boundary = client.post("/api/predict", content=b"x", headers={"Content-Type": "multipart/form-data"})
    assert no_boundary.status_code == 400
    port = int(str(client.base_url).rsplit(":", 1)[1].strip("/"))
    bad_length = raw_request(port, b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/jpeg\r\n"
                             b"Content-Length: not-a-number\r\n\r\nabc")
    assert bad_length.startswith(b"HTTP/1.1 400")
    # A client that promises 100 kB, sends 10 bytes and hangs up.
    raw_request(port, b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/jpeg\r\n"
                b"Content-Length: 100000\r\n\r\n0123456789", read=False)
    assert client.get("/api/health").status_code == 200
    assert post_image(client, ham_images[1].read_bytes()).status_code == 200


def raw_request(port: int, request: bytes, read: bool = True) -> bytes:
    """Send bytes as they are (no client-side checks) and return what the server answers."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(request)
        if not read:
            return b""
        return connection.recv(4096)


class WriteRecorder:
    """Python's audit hook: records every file opened for writing and every temp file made, while armed."""

    def __init__(self) -> None:
        self.armed = False
        self.writes: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        sys.addaudithook(self._hook)

    def _hook(self, event: str, arguments: tuple) -> None:
        if not self.armed:
            return
        if event == "open":
            path, mode, flags = (list(arguments) + [None, None, None])[:3]
            writing = (isinstance(mode, str) and any(ch in mode for ch in "wax+")) or (
                isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
            )
            if writing:
                with self._lock:
                    self.writes.append((event, str(path)))
        elif event in ("tempfile.mkstemp", "tempfile.mkdtemp", "os.rename", "os.replace", "shutil.copyfile"):
            with self._lock:
                self.writes.append((event, str(arguments[:1])))


WRITE_RECORDER = WriteRecorder()


def large_png_of(path: Path) -> bytes:
    """A real lesion photo as a PNG over 1 MB (Starlette would spool such an upload to a temp file)."""
    image = Image.open(path).convert("RGB").resize((1200, 900))
    noise = np.random.default_rng(0).integers(0, 12, size=(900, 1200, 3), dtype=np.uint8)
    pixels = np.clip(np.asarray(image, dtype=np.int16) + noise, 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def test_nothing_is_written_to_disk_during_a_request(
    client: httpx.Client, ham_images, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    working = tmp_path / "working"
    private_temp = tmp_path / "temp"
    working.mkdir()
    private_temp.mkdir()
    monkeypatch.chdir(working)
    monkeypatch.setattr(tempfile, "tempdir", str(private_temp))
    large = large_png_of(ham_images[2])
    assert 1_000_000 < len(large) < 10_000_000
    # The recorder itself works: a deliberate temporary file is caught.
    WRITE_RECORDER.armed = True
    with tempfile.TemporaryFile() as control:
        control.write(b"x")
    WRITE_RECORDER.armed = False
    assert WRITE_RECORDER.writes, "the audit hook recorded no write for a deliberate temporary file"
    WRITE_RECORDER.writes.clear()

    WRITE_RECORDER.armed = True
    try:
        assert post_image(client, large, name="large.png", content_type="image/png").status_code == 200
        assert post_image(client, ham_images[3].read_bytes()).status_code == 200
        assert client.post("/api/predict", content=large, headers={"Content-Type": "image/png"}).status_code == 200
        assert post_image(client, b"not an image").status_code == 422
    finally:
        WRITE_RECORDER.armed = False
    assert WRITE_RECORDER.writes == []
    assert list(working.iterdir()) == []
    assert list(private_temp.iterdir()) == []


@pytest.mark.slow
def test_explain_returns_a_gradcam_overlay_for_a_float_run(run_server: LiveServer, ham_images) -> None:
    with httpx.Client(base_url=run_server.url, timeout=120) as http:
        model = http.get("/api/model").json()
        assert model["kind"] == "run" and model["explain_available"] is True
        data = ham_images[10].read_bytes()
        predicted = post_image(http, data).json()
        response = post_image(http, data, path="/api/explain")
        assert response.status_code == 200, response.text
        result = response.json()
        assert result["label"] == predicted["label"]
        assert result["name"] == CLASS_NAMES.get(result["label"], result["label"])
        png = base64.b64decode(result["overlay_png_base64"])
        overlay = Image.open(io.BytesIO(png))
        assert overlay.format == "PNG" and overlay.width > 100 and overlay.height > 100
        # The heat map alone, the photo's aspect ratio, transparent where cold: the page lays it over the
        # photo or beside it and writes its legend as text (nothing is drawn on it).
        layer = Image.open(io.BytesIO(base64.b64decode(result["heatmap_png_base64"])))
        photo = Image.open(ham_images[10])
        assert layer.mode == "RGBA"
        assert layer.width / layer.height == pytest.approx(photo.width / photo.height, rel=0.02)
        alpha = np.asarray(layer)[..., 3]
        assert alpha.min() == 0 and alpha.max() > 100  # see-through somewhere, coloured where the map is hot
        # The class to explain can be named (the page sends the class it shows, the fused one with answers).
        other = next(label for label in model["labels"] if label != predicted["label"])
        named = http.post("/api/explain", files={"image": ("lesion.jpg", data, "image/jpeg")}, data={"label": other})
        assert named.status_code == 200 and named.json()["label"] == other
        assert named.json()["heatmap_png_base64"] != result["heatmap_png_base64"]
        unknown = http.post("/api/explain", files={"image": ("lesion.jpg", data, "image/jpeg")}, data={"label": "xyz"})
        assert unknown.status_code == 400 and "unknown class 'xyz'" in unknown.json()["detail"]
        assert post_image(http, b"nope", path="/api/explain").status_code == 422


def test_cli_help_teaches_and_bad_model_is_one_line_error(tmp_path: Path) -> None:
    from dermtool.cli.main import cli

    runner = CliRunner()
    help_result = runner.invoke(cli, ["serve", "--help"])
    assert help_result.exit_code == 0
    assert "--max-upload-mb" in help_result.output and "/api/predict" in help_result.output
    assert "127.0.0.1" in help_result.output
    not_a_model = tmp_path / "notes.txt"
    not_a_model.write_text("hello")
    result = runner.invoke(cli, ["serve", "--model", str(not_a_model)])
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1].startswith("Error: ")


# ---- the questionnaire (#20): answers sent with the photo, fused by the model's fusion ---------------------

@pytest.fixture(scope="module")
def fusion_reference(fusion_run: Path) -> Predictor:
    return Predictor(fusion_run)


def test_answers_are_fused_as_the_predictor_fuses_them(fusion_server: LiveServer, fusion_reference: Predictor,
                                                       ham_images) -> None:
    data = ham_images[7].read_bytes()
    answers = {"bleed": "yes", "grew": "yes", "age": "64", "sex": ""}  # sex left unknown
    expected = fusion_reference.predict([data], top_k=len(fusion_reference.labels), answers=answers)[0]
    image_alone = fusion_reference.predict([data], top_k=len(fusion_reference.labels))[0]
    with httpx.Client(base_url=fusion_server.url, timeout=120) as http:
        model = http.get("/api/model").json()
        assert [item["name"] for item in model["fusion"]["questions"]] == [
            "age", "sex", "site", "itch", "grew", "hurt", "changed", "bleed", "elevation"]
        assert model["fusion"]["referral_threshold"] == pytest.approx(0.3)
        assert model["fusion"]["referral_labels"] == [label for label in ("mel", "bcc", "akiec", "scc")
                                                      if label in fusion_reference.labels]
        fused = http.post("/api/predict", files={"image": ("lesion.jpg", data, "image/jpeg")}, data=answers)
        assert fused.status_code == 200, fused.text
        result = fused.json()
        assert result["fusion"]["answers"] == {"bleed": "yes", "grew": "yes", "age": "60-74"}
        assert result["fusion"]["malignant_probability"]["summary"] == \
            expected["fusion"]["malignant_probability"]["summary"]
        assert "raised the malignant probability from" in result["fusion"]["malignant_probability"]["summary"]
        assert result["outcome"] == expected["outcome"]
        for label, probability in expected["probabilities"].items():
            assert result["probabilities"][label] == pytest.approx(probability, abs=1e-6)
        assert result["fusion"]["image_only"]["probabilities"] == pytest.approx(image_alone["probabilities"], abs=1e-6)

        # The same answers as query parameters (a raw image body has no form fields).
        raw = http.post("/api/predict", params=answers, content=data, headers={"Content-Type": "image/jpeg"})
        assert raw.status_code == 200 and raw.json()["probabilities"] == result["probabilities"]
        twice = http.post("/api/predict?bleed=yes", data={"bleed": "no"},
                          files={"image": ("a.jpg", data, "image/jpeg")})
        assert twice.status_code == 400 and twice.json()["detail"] == "answer bleed is given twice"

        # Without answers (or with every answer unknown), the image alone, exactly as before the questionnaire.
        for fields in ({}, {"bleed": "", "age": "", "site": "unknown"}):
            plain = http.post("/api/predict", files={"image": ("lesion.jpg", data, "image/jpeg")}, data=fields)
            assert plain.status_code == 200, plain.text
            assert set(plain.json()) == CONTRACT_KEYS
            assert plain.json()["probabilities"] == pytest.approx(image_alone["probabilities"], abs=1e-6)


@pytest.mark.parametrize("fields, message", [
    ({"bleed": "maybe"}, "answer bleed='maybe' is not understood; bleed: yes or no, or unknown"),
    ({"age": "150"}, "answer age='150' is not understood; age: a number of years (0-120), or unknown"),
    ({"colour": "brown"}, "unknown question 'colour'; the questions are age, sex, site, itch, grew, hurt, "
                          "changed, bleed, elevation"),
    ({"bleed": "x" * 65}, "is too long"),
])
def test_a_bad_answer_is_a_400_naming_it(fusion_server: LiveServer, ham_images, fields: dict, message: str) -> None:
    with httpx.Client(base_url=fusion_server.url, timeout=60) as http:
        response = http.post("/api/predict", files={"image": ("lesion.jpg", ham_images[0].read_bytes(), "image/jpeg")},
                             data=fields)
        assert response.status_code == 400
        detail = response.json()["detail"]
        assert message in detail and "\n" not in detail


def test_answers_to_a_model_without_a_fusion_are_a_400(client: httpx.Client, ham_images) -> None:
    assert client.get("/api/model").json()["fusion"] is None
    data = ham_images[0].read_bytes()
    response = client.post("/api/predict", files={"image": ("lesion.jpg", data, "image/jpeg")}, data={"bleed": "yes"})
    assert response.status_code == 400
    assert "no questionnaire fusion" in response.json()["detail"] and "/" not in response.json()["detail"].split(":")[0]
    # the page's empty form (every answer unknown) is the photo alone
    empty = client.post("/api/predict", files={"image": ("lesion.jpg", data, "image/jpeg")}, data={"bleed": ""})
    assert empty.status_code == 200 and set(empty.json()) == CONTRACT_KEYS


@pytest.mark.slow
def test_predict_lesion_combines_the_photos_of_one_lesion(lesion_check_run: Path, ham_images,
                                                          non_lesion_images) -> None:
    """POST /api/predict_lesion: what dermtool.prediction.lesion.predict_lesion says for the same photos (the
    invoice left out and listed, the rest combined by the model's rule), with answers refused for a model
    without a fusion, and a clear 422 for an unreadable photo."""
    from dermtool.prediction.lesion import predict_lesion

    reference = Predictor(lesion_check_run)
    results = reference.predict(ham_images[:30])
    lesions = [image for image, result in zip(ham_images, results) if result["outcome"] != "not_a_lesion"][:2]
    photos = [*lesions, non_lesion_images[0]]
    expected = predict_lesion(reference, photos, top_k=len(reference.labels))
    files = [("image", (path.name, path.read_bytes(), "image/png" if path.suffix == ".png" else "image/jpeg"))
             for path in photos]
    with LiveServer(create_app(lesion_check_run, warm_up=False)) as server, \
            httpx.Client(base_url=server.url, timeout=120) as http:
        response = http.post("/api/predict_lesion", files=files)
        assert response.status_code == 200, response.text
        result = response.json()
        assert CONTRACT_KEYS <= set(result)
        assert result["outcome"] == expected["outcome"]
        assert result["probabilities"] == pytest.approx(expected["probabilities"], abs=1e-6)
        assert result["combined"] == ["photo 1", "photo 2"]
        assert [(item["image"], item["reason"]) for item in result["left_out"]] == [("photo 3", "not_a_lesion")]
        assert result["multi_photo"]["rule"] == expected["multi_photo"]["rule"]
        assert http.post("/api/predict_lesion", files=files, data={"bleed": "yes"}).status_code == 400
        broken = http.post("/api/predict_lesion", files=[files[0], ("image", ("x.jpg", b"nope", "image/jpeg"))])
        assert broken.status_code == 422 and broken.json()["detail"].startswith("Photo 2:")
        too_many = http.post("/api/predict_lesion", files=[files[0]] * 7)
        assert too_many.status_code == 422 and "at most 6" in too_many.json()["detail"]
