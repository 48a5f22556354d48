"""Reading an uploaded image from a request, in memory only.

Starlette's own form parser spools any upload larger than 1 MB to a temporary file on disk. A photo of a
patient's skin must never touch the disk, so this module reads the request body itself, with a byte limit,
and parses ``multipart/form-data`` with python-multipart's streaming parser into ``bytes`` held in memory.

Two request shapes are accepted:

* ``multipart/form-data`` with one file field (named ``image``, or any name when there is a single file),
  and any plain fields (the questionnaire's answers: :attr:`Upload.fields`, read by the app); a second file
  part beside the image (an answer sent as a file, ``-F bleed=@file``) is refused with 422, never dropped;
* a raw body whose ``Content-Type`` is ``image/*`` (handy with ``curl --data-binary``).

:func:`extract_uploads` reads the several photos of one lesion (``multipart/form-data``, each file in a field
named ``image``) for ``POST /api/predict_lesion``.

Every problem becomes an :class:`UploadError` carrying the HTTP status to answer with (400, 413, 415, 422)
and a message a person can act on.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

IMAGE_FIELD = "image"
ACCEPTED_TYPES_TEXT = "JPEG, PNG, BMP, TIFF, WebP or GIF"
# Some phones and browsers send no type (or a generic one) for a picked file: decoding decides then.
GENERIC_TYPES = {"", "application/octet-stream"}


class UploadError(Exception):
    """A request that carries no usable image: ``status`` is the HTTP status, ``detail`` the message."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass(frozen=True)
class Upload:
    """One uploaded file, in memory, and the request's plain form fields ``(name, value)`` in order."""

    data: bytes
    content_type: str
    filename: str
    fields: tuple[tuple[str, str], ...] = ()


def _too_large(limit_bytes: int) -> UploadError:
    return UploadError(
        413, f"The upload is larger than the limit of {limit_bytes / 1_000_000:g} MB. Send a smaller photo "
        "(a phone photo resized to about 2000 pixels on its long side is plenty)."
    )


async def read_body(request: Request, limit_bytes: int) -> bytes:
    """The whole request body, refusing (413) as soon as it exceeds ``limit_bytes``.

    The declared Content-Length is checked first, so an oversized upload is refused before it is read.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit_bytes:
                raise _too_large(limit_bytes)
        except ValueError:
            raise UploadError(400, "The Content-Length header is not a number.") from None
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit_bytes:
            raise _too_large(limit_bytes)
        chunks.append(chunk)
    return b"".join(chunks)


def _check_image_type(content_type: str, filename: str) -> None:
    if content_type in GENERIC_TYPES or content_type.startswith("image/"):
        return
    name = f" ({filename})" if filename else ""
    raise UploadError(
        415, f"The file{name} has type '{content_type}', not an image. Send a photo: {ACCEPTED_TYPES_TEXT}."
    )


def _parse_parts(body: bytes, content_type_header: str,
                 limit_bytes: int) -> tuple[list[tuple[str, Upload]], list[tuple[str, str]]]:
    """``(files [(field name, Upload)], plain fields [(name, value)])`` of a ``multipart/form-data`` body."""
    _, options = parse_options_header(content_type_header)
    boundary = options.get(b"boundary")
    if not boundary:
        raise UploadError(400, "The multipart request has no boundary: send it as multipart/form-data.")

    parts: list[dict] = []
    current: dict = {}
    header_field = bytearray()
    header_value = bytearray()

    def on_part_begin() -> None:
        current.clear()
        current.update(headers={}, data=bytearray())

    def on_part_data(data: bytes, start: int, end: int) -> None:
        current["data"] += data[start:end]

    def on_part_end() -> None:
        parts.append(dict(current))

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header_field.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header_value.extend(data[start:end])

    def on_header_end() -> None:
        current["headers"][bytes(header_field).lower()] = bytes(header_value)
        header_field.clear()
        header_value.clear()

    parser = MultipartParser(
        boundary,
        callbacks={
            "on_part_begin": on_part_begin,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
        },
        max_size=limit_bytes,
    )
    try:
        parser.write(body)
        parser.finalize()
    except Exception as error:  # python-multipart raises several error types for malformed bodies
        raise UploadError(400, f"The multipart body could not be parsed ({type(error).__name__}).") from None

    files = []
    fields: list[tuple[str, str]] = []
    for part in parts:
        _, disposition = parse_options_header(part["headers"].get(b"content-disposition", b""))
        if b"filename" not in disposition:  # a plain form field
            name = disposition.get(b"name", b"").decode("utf-8", "replace")
            if name != IMAGE_FIELD:  # a text field named "image" is not an answer: the image is missing
                fields.append((name, bytes(part["data"]).decode("utf-8", "replace")))
            continue
        files.append(
            (
                disposition.get(b"name", b"").decode("utf-8", "replace"),
                Upload(
                    data=bytes(part["data"]),
                    content_type=part["headers"].get(b"content-type", b"").decode("latin-1").strip().lower(),
                    filename=disposition.get(b"filename", b"").decode("utf-8", "replace"),
                ),
            )
        )
    return files, fields


def parse_multipart(body: bytes, content_type_header: str, limit_bytes: int) -> Upload:
    """The image file of a ``multipart/form-data`` body, parsed in memory."""
    files, fields = _parse_parts(body, content_type_header, limit_bytes)
    named = [upload for name, upload in files if name == IMAGE_FIELD]
    if named:
        others = [name for name, _ in files if name != IMAGE_FIELD]
        if len(named) > 1 or others:  # never dropped silently: an answer sent as a file (-F bleed=@file) included
            extra = f"a file in the field '{others[0][:40]}'" if others else f"{len(named)} files named '{IMAGE_FIELD}'"
            raise UploadError(422, f"The request holds {extra} besides the image: send one image per request, "
                                   "and the questionnaire's answers as plain form fields (bleed=yes), not as files.")
        return replace(named[0], fields=tuple(fields))
    if len(files) == 1:
        return replace(files[0][1], fields=tuple(fields))
    if not files:
        raise UploadError(422, f"No image in the request: send a file in a form field named '{IMAGE_FIELD}'.")
    raise UploadError(422, f"Several files and none named '{IMAGE_FIELD}': send one image per request.")


def check_request_type(content_type_header: str) -> str:
    """The request's media type, if it can carry an image (else UploadError 415/422)."""
    media_type = content_type_header.split(";")[0].strip().lower()
    if media_type == "multipart/form-data" or media_type.startswith("image/"):
        return media_type
    if not media_type:
        raise UploadError(
            422, f"No image in the request: send multipart/form-data with a file field named '{IMAGE_FIELD}'."
        )
    raise UploadError(
        415,
        f"Unsupported request type '{media_type}': send multipart/form-data with a file field named "
        f"'{IMAGE_FIELD}', or the image itself with an image/* Content-Type.",
    )


def extract_upload(body: bytes, content_type_header: str, limit_bytes: int) -> Upload:
    """The one image of a request body (CPU work: run it off the event loop), checked for type and emptiness."""
    media_type = check_request_type(content_type_header)
    if media_type == "multipart/form-data":
        upload = parse_multipart(body, content_type_header, limit_bytes)
    else:
        upload = Upload(data=body, content_type=media_type, filename="")
    _check_image_type(upload.content_type, upload.filename)
    if not upload.data:
        raise UploadError(422, "The uploaded file is empty (0 bytes). Choose or take the photo again.")
    return upload


def extract_uploads(body: bytes, content_type_header: str, limit_bytes: int,
                    max_files: int) -> tuple[list[Upload], tuple[tuple[str, str], ...]]:
    """The photos of one lesion: every file of a ``multipart/form-data`` body in fields named ``image`` (1 to
    ``max_files``, in order), each checked for type and emptiness, and the plain fields (the answers)."""
    if check_request_type(content_type_header) != "multipart/form-data":
        raise UploadError(422, "Send the lesion's photos as multipart/form-data, each in a field named "
                               f"'{IMAGE_FIELD}'.")
    files, fields = _parse_parts(body, content_type_header, limit_bytes)
    others = [name for name, _ in files if name != IMAGE_FIELD]
    if others:
        raise UploadError(422, f"The request holds a file in the field '{others[0][:40]}': send the photos in fields "
                               f"named '{IMAGE_FIELD}' and the questionnaire's answers as plain form fields.")
    uploads = [upload for _, upload in files]
    if not uploads:
        raise UploadError(422, f"No image in the request: send the lesion's photos in fields named '{IMAGE_FIELD}'.")
    if len(uploads) > max_files:
        raise UploadError(422, f"{len(uploads)} photos of one lesion; at most {max_files} are taken.")
    for position, upload in enumerate(uploads, start=1):
        _check_image_type(upload.content_type, upload.filename)
        if not upload.data:
            raise UploadError(422, f"Photo {position} is empty (0 bytes). Choose or take it again.")
    return uploads, tuple(fields)
