"""``dermtool serve``: the local web app for clinicians (FastAPI + uvicorn, offline, localhost by default)."""

from __future__ import annotations

import errno
import ipaddress
import socket
import warnings

import click
from pathlib import Path

from dermtool import DISCLAIMER, DermtoolError

LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}


def _is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.command(
    "serve",
    epilog=(
        "\b\nExamples:\n"
        "  dermtool serve --model runs/lite0                  float run: probabilities + Grad-CAM\n"
        "  dermtool serve --model lite0_int8.tflite --port 8080\n"
        "  curl -F image=@lesion.jpg http://127.0.0.1:8000/api/predict\n"
        "  curl -F image=@close_up.jpg -F image=@dermoscope.jpg http://127.0.0.1:8000/api/predict_lesion\n"
        "\b\nAPI: POST /api/predict, POST /api/predict_lesion (several photos of one lesion, combined by the\n"
        "model's rule; photos its lesion check rejects left out), POST /api/explain (run only; heat map of a\n"
        "class), GET /api/health, GET /api/model;\n"
        "OpenAPI schema at /openapi.json.\n\n" + DISCLAIMER
    ),
)
@click.option("--model", "model_path", required=True, type=click.Path(exists=True),
              help="A run folder (float model, Grad-CAM available) or an exported .tflite file.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Keep the default (this computer only) unless the network is trusted. "
              "Requests must name localhost or this address in their Host header (DNS-rebinding guard).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="TCP port.")
@click.option("--max-upload-mb", default=10.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Refuse uploads larger than this (HTTP 413).")
@click.option("--threads", default=1, show_default=True, type=click.IntRange(min=1),
              help="Interpreter threads of the model.")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(min=1),
              help="Threads that decode uploads and call the model.")
def serve(model_path: str, host: str, port: int, max_upload_mb: float, threads: int, workers: int) -> None:
    """Serve a local web page and JSON API that classify skin-lesion photos with MODEL.

    Open the printed address in a browser: choose, drop or take a photo; the page shows calibrated
    probabilities per class, the outcome (refer, uncertain, not a lesion, benign) and what to do, and a
    Grad-CAM heat map when a run folder is served. Images stay in memory: never stored, never logged,
    EXIF dropped. Nothing is fetched from the internet.
    """
    try:
        import uvicorn

        from dermtool.serve.app import create_app
    except ImportError as error:  # pragma: no cover - dependencies are pinned in requirements.txt
        raise DermtoolError(f"dermtool serve needs fastapi and uvicorn ({error}); run `make install`") from None

    if not _is_loopback(host):
        click.echo(
            f"Warning: listening on {host}: anyone who can reach this computer on the network can upload "
            "images. Use the default 127.0.0.1 unless the network is trusted.",
            err=True,
        )
    # Bind first: a port in use is one line, before the model is loaded, and uvicorn gets this socket.
    listener = bind_socket(host, port)
    try:
        if Path(model_path).exists() and not Path(model_path).is_dir():  # a FIFO or a link to /dev/zero: refused at once, not read
            from dermtool.files import check_regular_file

            check_regular_file(model_path, "model file", model=True)
        click.echo(f"Loading {model_path} ...", err=True)
        with warnings.catch_warnings(record=True) as notes:
            warnings.simplefilter("always", UserWarning)
            app = create_app(model_path, max_upload_mb=max_upload_mb, threads=threads, workers=workers, host=host)
        for note in notes:
            click.echo(f"Note: {note.message}", err=True)
        port = listener.getsockname()[1]
        shown_host = f"[{host}]" if ":" in host else host
        click.echo(f"dermtool serve: http://{shown_host}:{port}/  (Ctrl+C to stop)", err=True)
        click.echo(DISCLAIMER, err=True)
        config = uvicorn.Config(app, host=host, port=port, log_level="info", access_log=True, server_header=False)
        uvicorn.Server(config).run(sockets=[listener])
    finally:
        listener.close()


def bind_socket(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` (not yet listening), or DermtoolError in one line."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise DermtoolError(f"cannot listen on {host}:{port}: unknown address ({error.strerror})") from None
    family, kind, protocol, _, address = infos[0]
    listener = socket.socket(family, kind, protocol)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        listener.bind(address)
        listener.set_inheritable(True)
    except OSError as error:
        listener.close()
        reason = "the port is in use" if error.errno == errno.EADDRINUSE else (error.strerror or str(error))
        raise DermtoolError(f"cannot listen on {host}:{port}: {reason} (choose another --port)") from None
    return listener
