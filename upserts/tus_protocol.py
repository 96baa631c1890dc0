"""The tus 1.0.0 resumable upload protocol (core, creation, termination, expiration) spoken
by the console's upload page and its API alike: headers in, headers out, and the services of
``upserts.services.resumable_uploads`` in between.

https://tus.io/protocols/resumable-upload says what each header means; every answer carries
``Tus-Resumable``, and a request in another protocol version is refused with 412.
"""

import base64
import binascii
from collections.abc import Callable
from email.utils import format_datetime
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from upserts.client_address import client_ip
from upserts.errors import ConsoleError
from upserts.models import ResumableUpload, ResumableUploadStatus
from upserts.services import resumable_uploads

VERSION = "1.0.0"
EXTENSIONS = "creation,termination,expiration"
PART_CONTENT_TYPE = "application/offset+octet-stream"
_MAX_METADATA_BYTES = 16 * 1024


def _answer(status: int, message: str = "", **headers: str) -> HttpResponse:
    response = HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")
    response["Tus-Resumable"] = VERSION
    # A tus client in a page reads these from another script's answer.
    response["Access-Control-Expose-Headers"] = (
        "Location, Upload-Offset, Upload-Length, Upload-Expires, Tus-Resumable, Tus-Version"
    )
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def _refused(exc: ConsoleError) -> HttpResponse:
    return _answer(exc.http_status, str(exc))


def _expires(upload: ResumableUpload) -> str:
    return format_datetime(upload.expires_at, usegmt=True)


def options() -> HttpResponse:
    return _answer(
        204,
        Tus_Version=VERSION,
        Tus_Extension=EXTENSIONS,
        Tus_Max_Size=str(settings.UPLOAD_MAX_BYTES),
    )


def _wrong_version(request: HttpRequest) -> HttpResponse | None:
    if request.headers.get("Tus-Resumable") != VERSION:
        return _answer(412, f"This server speaks tus {VERSION}.", Tus_Version=VERSION)
    return None


def parse_metadata(header: str) -> dict[str, str]:
    """``key base64value,key2 base64value2`` as text values; keys without a value are ''."""
    if len(header) > _MAX_METADATA_BYTES:
        raise resumable_uploads.UploadRefused("The Upload-Metadata header is too long.")
    metadata: dict[str, str] = {}
    for pair in filter(None, (item.strip() for item in header.split(","))):
        key, _, encoded = pair.partition(" ")
        try:
            metadata[key] = base64.b64decode(encoded, validate=True).decode() if encoded else ""
        except (binascii.Error, UnicodeDecodeError):
            raise resumable_uploads.UploadRefused(
                f"Upload-Metadata: the value of {key!r} is not base64 of UTF-8 text."
            ) from None
    return metadata


def create(request: HttpRequest, location: Callable[[ResumableUpload], str]) -> HttpResponse:
    """POST: a new upload; its address in Location."""
    refused = _wrong_version(request)
    if refused:
        return refused
    if "Upload-Defer-Length" in request.headers:
        return _answer(400, "Give the file's length (Upload-Length); it cannot be deferred.")
    try:
        length = int(request.headers.get("Upload-Length", ""))
    except ValueError:
        return _answer(400, "Upload-Length must be the file's size in bytes.")
    try:
        upload = resumable_uploads.create_upload(
            length=length,
            metadata=parse_metadata(request.headers.get("Upload-Metadata", "")),
            actor=request.user,
            client_ip=client_ip(request),
        )
    except ConsoleError as exc:
        return _refused(exc)
    return _answer(201, Location=location(upload), Upload_Expires=_expires(upload))


def status(upload: ResumableUpload) -> HttpResponse:
    """HEAD: how much of the upload is stored."""
    if upload.status in (ResumableUploadStatus.CANCELLED, ResumableUploadStatus.EXPIRED):
        return _answer(410, f"The upload is {upload.get_status_display().lower()}.")
    return _answer(
        200,
        Upload_Offset=str(upload.offset),
        Upload_Length=str(upload.length),
        Upload_Expires=_expires(upload),
        Cache_Control="no-store",
    )


def append(request: HttpRequest, upload: ResumableUpload) -> HttpResponse:
    """PATCH: store the body from Upload-Offset on."""
    refused = _wrong_version(request)
    if refused:
        return refused
    if request.content_type != PART_CONTENT_TYPE:
        return _answer(415, f"A part is sent as {PART_CONTENT_TYPE}.")
    try:
        offset = int(request.headers.get("Upload-Offset", ""))
    except ValueError:
        return _answer(400, "Upload-Offset must say where this part starts, in bytes.")
    length = request.META.get("CONTENT_LENGTH")
    try:
        upload = resumable_uploads.receive_part(
            upload,
            offset=offset,
            read=request.read,
            content_length=int(length) if length else None,
            actor=request.user,
            client_ip=client_ip(request),
        )
    except ConsoleError as exc:
        return _refused(exc)
    return _answer(204, Upload_Offset=str(upload.offset), Upload_Expires=_expires(upload))


def terminate(request: HttpRequest, upload: ResumableUpload) -> HttpResponse:
    """DELETE: the upload and what is stored of it removed."""
    refused = _wrong_version(request)
    if refused:
        return refused
    try:
        resumable_uploads.cancel_upload(upload, actor=request.user, client_ip=client_ip(request))
    except ConsoleError as exc:
        return _refused(exc)
    return _answer(204)


def upload_of(request: HttpRequest, pk: Any) -> ResumableUpload | None:
    """The upload, if it is the requesting user's own."""
    return ResumableUpload.objects.filter(pk=pk, created_by_id=request.user.pk).first()


def not_found() -> HttpResponse:
    return _answer(404, "There is no such upload of yours.")
