"""Fixtures of the app tests: live servers (uvicorn in a thread, a free port) and headless Chromium.

The browser is Debian's ``/usr/bin/chromium`` driven by Playwright; nothing downloads a browser. When it
(or mobile_demo's npm packages) is missing, the tests FAIL with a message saying what to install: CI
(`.ci/run`) installs both.
"""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
PHONE_VIEWPORT = {"width": 390, "height": 844}
DESKTOP_VIEWPORT = {"width": 1280, "height": 900}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LiveServer:
    """A FastAPI app served by uvicorn on 127.0.0.1 in a background thread."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False)
        )
        self.thread = threading.Thread(target=self.server.run, name="uvicorn-test", daemon=True)

    def __enter__(self) -> "LiveServer":
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def load_mobile_demo_script(name: str) -> Any:
    """mobile_demo/NAME.py as a module (the demo's build and serve scripts are not part of the package)."""
    from tests.scripts import load_script

    return load_script(REPO_ROOT / "mobile_demo" / f"{name}.py", f"mobile_demo_{name}")


def require_chromium() -> None:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests need Debian's Chromium "
            "(`apt-get install -y chromium`; .ci/run installs it). No browser is downloaded."
        )


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium (one per test session)."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """test-artifacts/ (gitignored): screenshots to look at."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def ham_images(small_ham: Path) -> list[Path]:
    """The real HAM10000 images of the small subset, in a fixed order."""
    return sorted((small_ham / "images").glob("*.jpg"))


@pytest.fixture(scope="session")
def run_server(tiny_run: Path) -> Iterator[LiveServer]:
    """`dermtool serve` of the float run of the training fixture (Grad-CAM available), once per session."""
    from dermtool.serve.app import create_app

    with LiveServer(create_app(tiny_run)) as server:
        yield server


@pytest.fixture(scope="session")
def fusion_run(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the training fixture's run with a questionnaire fusion (tests/fusion/toy.py) in fusion.json."""
    from dermtool.run import RunFolder
    from tests.fusion.toy import toy_fusion_dict

    run = tmp_path_factory.mktemp("fusion_run") / "run"
    shutil.copytree(tiny_run, run)
    (run / "fusion.json").write_text(json.dumps(toy_fusion_dict(RunFolder(run).labels)), encoding="utf-8")
    return run


@pytest.fixture(scope="session")
def fusion_server(fusion_run: Path) -> Iterator[LiveServer]:
    """`dermtool serve` of ``fusion_run`` (the page shows the questionnaire), once per session."""
    from dermtool.serve.app import create_app

    with LiveServer(create_app(fusion_run)) as server:
        yield server


def invoice_image(path: Path) -> Path:
    """A rendered invoice (PNG, 600x800): a header, an address block, a table of items and a total: what a
    health worker might send by mistake. Not a skin lesion."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (600, 800), "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, 600, 90), fill=(23, 92, 211))
    draw.text((30, 30), "INVOICE  No. 2026-0412", fill="white")
    for line, text in enumerate(["Clinic supplies Ltd", "12 Harbour Road", "Date: 2026-12-01", "Due: 2026-12-31"]):
        draw.text((30, 120 + 22 * line), text, fill="black")
    draw.line((30, 240, 570, 240), fill="black", width=2)
    for row in range(14):
        y = 255 + 30 * row
        draw.text((30, y), f"Item {row + 1:02d}  gauze pads, sterile, 10 x 10 cm", fill="black")
        draw.text((480, y), f"{(row + 1) * 3.75:8.2f}", fill="black")
        draw.line((30, y + 24, 570, y + 24), fill=(200, 200, 200))
    draw.text((380, 700), "TOTAL   393.75", fill="black")
    image.save(path)
    return path


def blue_square(path: Path) -> Path:
    """A plain blue square (PNG, 300x300). Not a skin lesion."""
    from PIL import Image

    Image.new("RGB", (300, 300), (20, 60, 200)).save(path)
    return path


@pytest.fixture(scope="session")
def non_lesion_images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The issue's two non-lesion pictures: a rendered invoice and a plain blue square."""
    folder = tmp_path_factory.mktemp("non_lesions")
    return [invoice_image(folder / "invoice.png"), blue_square(folder / "blue_square.png")]
