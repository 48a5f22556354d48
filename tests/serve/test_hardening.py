"""Issue #19 for the web app: the Host-header check (DNS rebinding), the model's name instead of its path,
a corrupt model's outputs as a 500 (never an outcome), and the decoding budget as a 413 naming the limit.

A stub service stands in for the model (the real-model cases are in tests/explain/test_fail_closed.py)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from starlette.testclient import TestClient

from dermtool import ModelOutputError
from dermtool.serve.app import create_app, host_allowed
from dermtool.serve.service import ModelService
from tests.data.conftest import encode, ham_image, png_claiming_size
from tests.data.test_hardening import png_16bit_grey


class StubService(ModelService):
    """A ModelService without a model: answers a fixed result, or raises ModelOutputError."""

    def __init__(self, broken: bool = False) -> None:  # noqa: D107 - no model to load
        self.predictor = None
        self.path = "/very/secret/folder/lite0_int8.tflite"
        self.labels = ["mel", "nv"]
        self.kind = "tflite"
        self.names = {"mel": "melanoma", "nv": "melanocytic nevus"}
        self.broken = broken

    def predict(self, pixels: np.ndarray) -> dict:
        if self.broken:
            raise ModelOutputError("/very/secret/folder/lite0_int8.tflite: the model gave non-finite outputs")
        return {"image": "<upload>", "outcome": "uncertain", "label": "nv", "probability": 0.5,
                "probabilities": {"mel": 0.5, "nv": 0.5}, "top_k": [], "ood_score": None}


def client_for(service: ModelService, host: str = "127.0.0.1", base_url: str = "http://127.0.0.1:8000") -> TestClient:
    return TestClient(create_app(service, warm_up=False, host=host), base_url=base_url)


def post(client: TestClient, data: bytes, path: str = "/api/predict", **headers: str):
    return client.post(path, content=data, headers={"Content-Type": "image/png", **headers})


@pytest.mark.parametrize("header, bound, allowed", [
    ("127.0.0.1:8000", "127.0.0.1", True),
    ("localhost:8000", "127.0.0.1", True),
    ("LOCALHOST.", "127.0.0.1", True),
    ("[::1]:8000", "127.0.0.1", True),
    ("127.0.0.2", "127.0.0.1", True),
    ("attacker.example:8000", "127.0.0.1", False),
    ("127.0.0.1.attacker.example", "127.0.0.1", False),
    ("", "127.0.0.1", False),
    (None, "127.0.0.1", False),
    ("192.168.1.20:8000", "192.168.1.20", True),
    ("clinic-pc.lan:8000", "clinic-pc.lan", True),
    ("192.168.1.20:8000", "0.0.0.0", True),  # a wildcard bind: any IP literal (DNS cannot rebind those)
    ("rebind.example:8000", "0.0.0.0", False),
])
def test_host_allowed(header: str | None, bound: str, allowed: bool) -> None:
    assert host_allowed(header, bound) is allowed


def test_requests_for_another_host_name_are_refused() -> None:
    client = client_for(StubService())
    jpeg = ham_image("ISIC_0024306").read_bytes()
    assert client.get("/api/health").status_code == 200
    refused = client.get("/api/health", headers={"Host": "evil.example:8000"})
    assert refused.status_code == 400 and "Host header" in refused.json()["detail"]
    assert client.post("/api/predict", content=jpeg, headers={"Host": "evil.example", "Content-Type": "image/jpeg"}
                       ).status_code == 400
    assert client.get("/", headers={"Host": "evil.example"}).status_code == 400
    assert client.get("/api/health", headers={"Host": "localhost:8000"}).status_code == 200


def test_model_endpoint_shows_the_name_not_the_path() -> None:
    response = client_for(StubService()).get("/api/model")
    assert response.status_code == 200
    assert response.json()["name"] == "lite0_int8.tflite"
    assert "/very/secret" not in response.text and "path" not in response.json()


def test_non_finite_model_outputs_are_a_500_never_an_outcome() -> None:
    response = client_for(StubService(broken=True)).post(
        "/api/predict", content=ham_image("ISIC_0024306").read_bytes(), headers={"Content-Type": "image/jpeg"})
    assert response.status_code == 500
    assert "non-finite" in response.json()["detail"] and "outcome" not in response.json()
    assert "/very/secret" not in response.text


def test_images_over_the_decoding_budget_are_413_naming_the_limit() -> None:
    client = client_for(StubService())
    claims_huge = post(client, png_claiming_size(6300, 6300))  # 115 bytes claiming 40 megapixels of RGB
    assert claims_huge.status_code == 413, claims_huge.text
    assert "DERMTOOL_MAX_DECODE_MB" in claims_huge.json()["detail"]
    for path in ("/api/predict", "/api/explain"):
        deep = post(client, png_16bit_grey(6100, 6100), path=path)  # a small file, 37 MP: over 256 MB
        assert deep.status_code in (409, 413), deep.text  # the stub is a .tflite: explain says 409 first
    assert post(client, png_16bit_grey(6100, 6100)).status_code == 413
    small = encode(Image.new("RGB", (64, 48), (120, 80, 60)), "PNG")
    assert post(client, small).status_code == 200
