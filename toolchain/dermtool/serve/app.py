"""The local web app: a FastAPI application around one loaded model.

Endpoints (documented in the OpenAPI schema at ``/openapi.json``; FastAPI's /docs page is off because it
loads Swagger UI from a CDN, and this app makes no request to the network):

=============================  ===============================================================================
``GET  /``                     the page (static HTML/CSS/JS from ``dermtool/serve/static``, no external requests)
``POST /api/predict``          one image (multipart field ``image``, or a raw ``image/*`` body) -> the predict --json
                               object: ``{image, outcome, label, probability, probabilities, top_k, ood_score,
                               lesion_check}``;
                               with questionnaire answers (plain form fields or query parameters named as the
                               questions: ``bleed=yes``, ``age=64``; empty = unknown) and a model with a fusion, the
                               fused result and its ``fusion`` block (image-alone answer, how much the answers moved
                               the malignant probability, in one sentence)
``POST /api/predict_lesion``   several photos of ONE lesion (each file in a multipart field ``image``, at most
                               :data:`MAX_LESION_PHOTOS`) and optionally the answers -> the lesion's predict object
                               (:func:`dermtool.prediction.lesion.predict_lesion`: rejected photos left out and listed
                               in ``left_out``, the rest combined by the model's multi-photo rule, then fused), with
                               ``photos`` (each photo's own object: photo 1, photo 2 ...) and ``combined``
``POST /api/explain``          one image (and optionally ``label``, the class to explain: the page sends the class it
                               shows, the fused one when answers were given) -> Grad-CAM ``{label, name,
                               heatmap_png_base64 (the heat map alone, transparent where cold, to lay over the photo),
                               overlay_png_base64 (photo and heat map blended, no caption), media_type}`` (float run
                               only; 409 for a .tflite)
``GET  /api/health``           ``{status: "ok", ...}``
``GET  /api/model``            the model's name (not its path), labels, human-readable names, kind, input size, outcome
                               guidance (the referral message names the model's own referral classes), its lesion
                               check (threshold; null without one), what it was trained on (``trained_on``, in
                               words), disclaimer
=============================  ===============================================================================

Errors are JSON ``{"detail": "..."}`` with 400 (malformed request, an answer the questionnaire does not take
or answers to a model without a fusion, with the one-line reason, or a Host header that is not this server:
see below), 409 (Grad-CAM on a .tflite), 413 (upload over the limit, or an image over the decoding budget of
:mod:`dermtool.data.images`: too many pixels or too much memory to decode), 415 (not an image type), 422 (no
image, empty file, or bytes that do not decode as an image), 500 (the model gave non-finite outputs: no
outcome is ever made from them), 503 (server busy).

DNS rebinding: every request must name this server in its ``Host`` header: ``localhost``, a loopback
address, or the address it is bound to (``--host``); bound to a wildcard address (0.0.0.0, ::), any IP
address literal is accepted too. A web page on another site whose name is made to resolve to 127.0.0.1
sends its own name and is refused (400).

Privacy: the upload is read into memory (never spooled to disk: :mod:`dermtool.serve.uploads`), decoded with
:func:`dermtool.data.images.load_rgb` (EXIF and every other metadata dropped), classified and forgotten.
Nothing about the image is logged. Inference runs in a bounded thread pool, so the event loop never blocks
and a slow or malformed request cannot take the server down.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from dermtool import DISCLAIMER, DermtoolError, ModelOutputError, __version__
from dermtool.data.images import ImageError, load_rgb
from dermtool.fusion.questionnaire import QUESTIONS
from dermtool.serve.service import ModelService, read_form_answers
from dermtool.serve.uploads import (IMAGE_FIELD, UploadError, check_request_type, extract_upload, extract_uploads,
                                    read_body)

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).with_name("static")
DEFAULT_MAX_UPLOAD_MB = 10.0
#: requests allowed to wait for a worker at once; more get 503 rather than an ever-growing queue
DEFAULT_MAX_PENDING = 32
#: photos of one lesion that ``POST /api/predict_lesion`` takes at most
MAX_LESION_PHOTOS = 6

# Content-Security-Policy: the page may load nothing from anywhere but this server (no fonts, scripts or
# beacons from the network), and images only from itself, data: URLs and blob: URLs of local files.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; style-src 'self'; "
    "script-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)


def _answer_properties() -> dict[str, Any]:
    return {item.name: {"type": "string", "description": f"{item.text} ({item.describe()}; empty or omitted: "
                        "unknown). Only for a model with a questionnaire fusion."} for item in QUESTIONS}


def _image_request_body(extra_fields: dict[str, Any] | None = None) -> dict[str, Any]:
    """An OpenAPI request body holding one image (multipart field or raw ``image/*`` body), plus
    ``extra_fields`` as plain multipart fields."""
    image = {
        "type": "string",
        "format": "binary",
        "description": "The photo (JPEG, PNG, BMP, TIFF, WebP, GIF). EXIF is dropped; nothing is stored.",
    }
    return {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": [IMAGE_FIELD],
                    "properties": {IMAGE_FIELD: image, **(extra_fields or {})},
                }
            },
            "image/*": {"schema": {"type": "string", "format": "binary"}},
        },
    }


IMAGE_REQUEST_BODY = _image_request_body()
#: ``POST /api/predict_lesion``'s body: several photos of one lesion and, optionally, the answers.
LESION_REQUEST_BODY = {
    "required": True,
    "content": {"multipart/form-data": {"schema": {
        "type": "object",
        "required": [IMAGE_FIELD],
        "properties": {
            IMAGE_FIELD: {"type": "array", "items": {"type": "string", "format": "binary"},
                          "description": "The photos of one lesion, each in a field named image (EXIF dropped; "
                          "nothing is stored)."},
            **_answer_properties(),
        },
    }}},
}
#: ``POST /api/explain``'s body: the image and, optionally, the class to explain.
EXPLAIN_REQUEST_BODY = _image_request_body({"label": {
    "type": "string", "description": "The class whose score the heat map explains (one of the model's labels; "
    "omitted: the top class). The page sends the class it shows: the fused one when answers were given."}})
#: ``POST /api/predict``'s body: the image and, optionally, the questionnaire's answers as plain fields.
PREDICT_REQUEST_BODY = _image_request_body(_answer_properties())

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorDetail"}}},
    }
    for status, description in {
        400: "Malformed request (bad multipart body or headers), an answer the questionnaire does not take, "
        "or answers to a model without a questionnaire fusion.",
        413: "The upload is larger than --max-upload-mb, or the image has too many pixels.",
        415: "The upload is not an image type.",
        422: "No image in the request, an empty file, bytes that do not decode as an image, or a second file "
        "part beside the image (an answer sent as a file: send answers as plain form fields).",
        503: "The server is busy; try again.",
    }.items()
}

PREDICTION_SCHEMA = {
    "type": "object",
    "description": "The `dermtool predict --json` object of the uploaded image.",
    "properties": {
        "image": {"type": "string", "example": "<upload>"},
        "outcome": {"type": "string", "enum": ["benign", "refer", "uncertain", "not_a_lesion"]},
        "label": {"type": "string", "nullable": True},
        "probability": {"type": "number", "nullable": True},
        "probabilities": {"type": "object", "additionalProperties": {"type": "number"}},
        "top_k": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "label": {"type": "string"},
                    "name": {"type": "string"},
                    "probability": {"type": "number"},
                },
            },
        },
        "ood_score": {"type": "number", "nullable": True},
        "lesion_check": {
            "type": "object",
            "nullable": True,
            "description": "The model's lesion check: `{not_a_lesion: P(no lesion in the photo), threshold}`; the "
            "outcome is `not_a_lesion` when P >= threshold (an app then shows no class). Null for a model without one.",
        },
        "fusion": {
            "type": "object",
            "description": "Only when answers were sent: the answers (levels), the image-alone answer "
            "(`image_only`: label, probability, probabilities) and `malignant_probability` (image_only, fused, "
            "each answer's effect, `summary`: one sentence). `probabilities` and `outcome` are then the fused ones.",
        },
    },
}


class ServerBusy(Exception):
    """More requests are waiting than the server is willing to queue."""


class InferencePool:
    """A bounded thread pool for decoding and model calls, with a cap on waiting requests."""

    def __init__(self, workers: int, max_pending: int) -> None:
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dermtool-infer")
        self._slots = threading.BoundedSemaphore(max_pending)

    async def run(self, function: Callable[..., Any], *arguments: Any) -> Any:
        if not self._slots.acquire(blocking=False):
            raise ServerBusy()
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, function, *arguments)
        finally:
            self._slots.release()

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


#: What to tell the user for each ImageError reason of dermtool.data.images.
DECODE_MESSAGES = {
    "empty": "The uploaded file is empty (0 bytes). Choose or take the photo again.",
    "not_an_image": "The uploaded file is not an image in a format this tool reads. Send a JPEG or PNG photo "
    "(on an iPhone, HEIC photos are converted when shared as 'Most Compatible').",
    "truncated": "The image file is incomplete (its data stops early). Copy or take the photo again.",
    "unreadable": "The image data is corrupt and cannot be decoded. Send another copy of the photo.",
}


def _decode(data: bytes):
    """Pixels of the uploaded bytes (EXIF orientation applied, metadata dropped), or UploadError."""
    try:
        return load_rgb(data)
    except ImageError as error:
        if error.reason == "too_large":
            limit = str(error).split("refused, ", 1)[-1]
            raise UploadError(
                413, f"The image is too large to decode: {limit}. Send a smaller photo (a phone photo resized "
                "to about 2000 pixels on its long side is plenty).",
            ) from None
        message = DECODE_MESSAGES.get(error.reason, "The upload could not be read as an image. Send a JPEG or PNG photo.")
        raise UploadError(422, f"{message} [{error.reason}]") from None


LOCAL_HOST_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})


def _host_name(header: str) -> str:
    """The name of a Host header without its port, lower case: ``[::1]:8000`` -> ``::1``."""
    host = header.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


def _ip_address(name: str):
    import ipaddress

    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


def host_allowed(header: str | None, bound_host: str) -> bool:
    """Whether a request's Host header names this server (see the module docstring)."""
    if not header:
        return False
    name = _host_name(header)
    address = _ip_address(name)
    if name in LOCAL_HOST_NAMES or (address is not None and address.is_loopback):
        return True
    bound = _host_name(bound_host) if bound_host else ""
    if name == bound:
        return True
    return bound in WILDCARD_HOSTS and address is not None  # an IP literal cannot be rebound by DNS


def _json_error(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers={"Cache-Control": "no-store"})


def create_app(
    model: str | Path | ModelService | Any,
    *,
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
    threads: int = 1,
    workers: int = 2,
    max_pending: int = DEFAULT_MAX_PENDING,
    warm_up: bool = True,
    host: str = "127.0.0.1",
) -> FastAPI:
    """The FastAPI app serving ``model``.

    ``model``: a run folder or ``.tflite`` path, a loaded :class:`ModelService`, or a loaded ``Predictor``.
    ``max_upload_mb``: the request size limit (413 above it). ``threads``: interpreter threads of the model.
    ``workers``: threads that decode images and call the model (the model call itself is serialised by the
    Predictor's lock; decoding runs in parallel). ``max_pending``: requests allowed in flight before 503.
    ``warm_up``: run one prediction now (and build Grad-CAM's gradient model) so that the first real request
    is not slow. ``host``: the address the server is bound
    to; requests whose Host header names neither it nor localhost are refused (400, DNS rebinding).
    """
    if max_upload_mb <= 0:
        raise DermtoolError(f"--max-upload-mb must be positive, got {max_upload_mb}")
    if workers < 1 or max_pending < 1:
        raise DermtoolError("workers and max_pending must be at least 1")
    service = model if isinstance(model, ModelService) else ModelService(model, threads=threads)
    if warm_up:
        service.warm_up()
    limit_bytes = int(max_upload_mb * 1_000_000)
    pool = InferencePool(workers=workers, max_pending=max_pending)

    app = FastAPI(
        title="dermtool",
        version=__version__,
        summary="Calibrated skin-lesion classification on this computer, offline.",
        description=(
            f"**{DISCLAIMER}**\n\nImages are processed in memory and never stored or logged; EXIF is "
            "dropped. Upload one image per request as multipart/form-data (field `image`) or as a raw "
            "`image/*` body."
        ),
        docs_url=None,  # Swagger UI would load its scripts from a CDN: not offline, and blocked by the CSP
        redoc_url=None,
    )
    app.state.service = service
    app.state.pool = pool
    app.state.max_upload_bytes = limit_bytes
    app.router.add_event_handler("shutdown", pool.shutdown)
    app.openapi = _openapi_with_error_schema(app)  # type: ignore[method-assign]
    _add_security_middleware(app, host)
    _add_model_routes(app, service, pool, limit_bytes)
    _add_server_routes(app, service, max_upload_mb)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


#: The 200 answer of ``POST /api/explain``.
EXPLANATION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "label": {"type": "string"},
        "name": {"type": "string"},
        "heatmap_png_base64": {"type": "string", "format": "byte",
                               "description": "The heat map alone (RGBA PNG, the photo's aspect ratio; "
                               "transparent where the class's score was not raised)."},
        "overlay_png_base64": {"type": "string", "format": "byte",
                               "description": "The photo with the heat map blended in (no caption)."},
        "media_type": {"type": "string", "example": "image/png"},
    },
}


def _openapi_with_error_schema(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """``app.openapi``: FastAPI's schema plus ``ErrorDetail``, which every error response references."""

    def openapi_with_error_schema() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        from fastapi.openapi.utils import get_openapi

        schema = get_openapi(
            title=app.title,
            version=app.version,
            summary=app.summary,
            description=app.description,
            routes=app.routes,
        )
        schema.setdefault("components", {}).setdefault("schemas", {})["ErrorDetail"] = {
            "type": "object",
            "required": ["detail"],
            "properties": {"detail": {"type": "string", "description": "What went wrong and what to do."}},
        }
        app.openapi_schema = schema
        return schema

    return openapi_with_error_schema


def _add_security_middleware(app: FastAPI, host: str) -> None:
    """The Host-header check (400, DNS rebinding), a 500 that never echoes internals, and the security
    headers (CSP, nosniff, no referrer, no framing; no-store on the API)."""

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        try:
            if not host_allowed(request.headers.get("host"), host):
                response = _json_error(
                    400, "Invalid Host header: this server answers only requests addressed to localhost or to "
                    "its own address.")
            else:
                response = await call_next(request)
        except Exception:  # never echo internals; the server stays up
            logger.exception("unexpected error in %s %s", request.method, request.url.path)
            response = _json_error(500, "Internal error while handling the request; the server is still running.")
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("X-Frame-Options", "DENY")
        if request.url.path.startswith("/api/"):
            response.headers["Cache-Control"] = "no-store"
        return response


def _add_model_routes(app: FastAPI, service: ModelService, pool: InferencePool, limit_bytes: int) -> None:
    """``POST /api/predict`` and ``POST /api/explain``: one uploaded image, decoded and run in ``pool``."""

    def _parse_and_decode(body: bytes, content_type_header: str, query: list[tuple[str, str]],
                          reads: str | None) -> tuple[Any, Any]:
        """The decoded image and what else the request carries: ``reads="answers"``, the questionnaire's
        answers (None when none is given); ``reads="label"``, the class to explain (None: the top class)."""
        if reads == "lesion":  # several photos of one lesion and the answers
            uploads, lesion_fields = extract_uploads(body, content_type_header, limit_bytes, MAX_LESION_PHOTOS)
            try:
                answers = read_form_answers([*query, *lesion_fields])
                service.check_answers(answers)
            except DermtoolError as error:
                raise UploadError(400, str(error)) from None
            photos = []
            for position, upload in enumerate(uploads, start=1):
                try:
                    photos.append(_decode(upload.data))
                except UploadError as error:
                    raise UploadError(error.status, f"Photo {position}: {error.detail}") from None
            return photos, answers or None
        upload = extract_upload(body, content_type_header, limit_bytes)
        extra: Any = None
        fields = [*query, *upload.fields]
        if reads == "answers":  # checked before the image is decoded: a wrong answer is refused at once
            try:
                extra = read_form_answers(fields)
                service.check_answers(extra)
            except DermtoolError as error:
                raise UploadError(400, str(error)) from None
            extra = extra or None  # no answer given: the image alone, as without a form
        elif reads == "label":
            labels = [value for name, value in fields if name == "label" and value]
            if len(labels) > 1 or any(name != "label" for name, _ in fields):
                raise UploadError(400, "explain takes one optional field, label (a class of the model)")
            if labels and labels[0] not in service.labels:
                raise UploadError(400, f"unknown class {labels[0][:64]!r}; the model's classes are "
                                  f"{', '.join(service.labels)}")
            extra = labels[0] if labels else None
        return _decode(upload.data), extra

    async def _image_of(request: Request, reads: str | None):
        content_type_header = request.headers.get("content-type", "")
        check_request_type(content_type_header)  # refuse before reading a body that cannot be an image
        body = await read_body(request, limit_bytes)
        query = list(request.query_params.multi_items())
        # Parsing a multipart body of megabytes and decoding a JPEG are CPU work: off the event loop.
        return await pool.run(_parse_and_decode, body, content_type_header, query, reads)

    async def _answer(request: Request, work: Callable[..., dict[str, Any]],
                      reads: str | None = None) -> JSONResponse:
        try:
            pixels, extra = await _image_of(request, reads)
            result = await (pool.run(work, pixels) if extra is None else pool.run(work, pixels, extra))
        except UploadError as error:
            return _json_error(error.status, error.detail)
        except ServerBusy:
            return _json_error(503, "The server is busy with other images; try again in a moment.")
        except ModelOutputError:  # a corrupt model: fail closed, never an outcome
            logger.error("the model gave non-finite outputs (NaN or infinity); no outcome was given")
            return _json_error(500, "No result: the model gave non-finite outputs (NaN or infinity), so its answer "
                               "cannot be trusted. The model file is probably corrupt; tell whoever runs this "
                               "server.")
        except DermtoolError as error:
            return _json_error(422, str(error))
        return JSONResponse(result, headers={"Cache-Control": "no-store"})

    @app.post(
        "/api/predict",
        summary="Classify one image",
        description="Calibrated probabilities of every class, the top classes with readable names, an "
        "out-of-distribution score, and the outcome: `refer`, `uncertain`, `not_a_lesion` or `benign`. With "
        "questionnaire answers (form fields or query parameters; a model with a fusion), the fused result and "
        "how much the answers moved it. " + DISCLAIMER,
        openapi_extra={
            "requestBody": PREDICT_REQUEST_BODY,
            "responses": {"200": {"content": {"application/json": {"schema": PREDICTION_SCHEMA}}}},
        },
        responses=ERROR_RESPONSES,
        tags=["model"],
    )
    async def predict(request: Request) -> JSONResponse:
        return await _answer(request, service.predict, reads="answers")

    @app.post(
        "/api/predict_lesion",
        summary="Classify one lesion from several photos of it",
        description="Up to " + str(MAX_LESION_PHOTOS) + " photos of ONE lesion (multipart, each file in a field "
        "named `image`), and optionally the questionnaire's answers as plain fields. Photos the lesion check "
        "rejects are left out and listed (`left_out`); the others are combined by the model's multi-photo rule "
        "(`multi_photo`) and the answers fused once: the predict object of the lesion, plus `photos` (each "
        "photo's own object, named photo 1, photo 2, ...), `combined` and `left_out`. " + DISCLAIMER,
        openapi_extra={
            "requestBody": LESION_REQUEST_BODY,
            "responses": {"200": {"content": {"application/json": {"schema": PREDICTION_SCHEMA}}}},
        },
        responses=ERROR_RESPONSES,
        tags=["model"],
    )
    async def predict_lesion(request: Request) -> JSONResponse:
        return await _answer(request, service.predict_lesion, reads="lesion")

    @app.post(
        "/api/explain",
        summary="Grad-CAM heat map of one image",
        description="The regions that drove a class's score (the top class, or `label`), as a transparent "
        "heat-map layer and a blended overlay (PNG, base64). Needs a float run "
        "(409 when a .tflite is served).",
        openapi_extra={
            "requestBody": EXPLAIN_REQUEST_BODY,
            "responses": {"200": {"content": {"application/json": {"schema": EXPLANATION_SCHEMA}}}},
        },
        responses={
            **ERROR_RESPONSES,
            409: {"description": "Grad-CAM needs a float run; a .tflite is served."},
        },
        tags=["model"],
    )
    async def explain(request: Request) -> JSONResponse:
        if not service.explain_available:
            await read_body_discarded(request)
            return _json_error(
                409,
                "Grad-CAM needs the float model of a training run; this server runs a .tflite model. "
                "Serve the run folder (dermtool serve --model RUN) to see heat maps.",
            )
        return await _answer(request, service.explain, reads="label")

    async def read_body_discarded(request: Request) -> None:
        """Drain (up to the limit) and drop the body, so the client gets the answer, not a reset."""
        received = 0
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit_bytes:
                break


def _add_server_routes(app: FastAPI, service: ModelService, max_upload_mb: float) -> None:
    """``GET /api/health``, ``GET /api/model`` and the page at ``/``."""

    @app.get("/api/health", summary="Liveness", tags=["server"])
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model_kind": service.kind, "dermtool_version": __version__}

    @app.get("/api/model", summary="The served model", tags=["server"])
    async def model_description() -> dict[str, Any]:
        description = service.describe().to_dict()
        description["max_upload_mb"] = max_upload_mb
        return description

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})
