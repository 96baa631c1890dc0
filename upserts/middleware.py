"""Nothing of a request body is read before it is allowed.

Django parses a multipart body the first time anything asks for ``request.POST`` (the CSRF
check does, on every POST) and writes each file part to a temporary file as it goes: an
anonymous POST of a 100 MiB file to the login page would be stored in full. So before any view
or CSRF check runs, this refuses a body larger than the URL accepts, from its Content-Length
(Django never reads past it), and takes file parts only on the views that accept uploads, and
there only from a signed-in user allowed to upload. Its process_view runs after every
middleware has set up the request (the user included) and before any process_view reads it.
"""

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.http import HttpRequest, HttpResponse, JsonResponse

from upserts import roles

View = Callable[..., Any]


def accepts_uploads(view: View) -> View:
    """Mark a page view that takes file parts of up to ``UPLOAD_MAX_BYTES``."""
    view.accepts_uploads = True  # type: ignore[attr-defined]
    return view


class RefuseFileParts(FileUploadHandler):
    """Stops parsing at the first file part, reading no more of the body."""

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        raise StopUpload(connection_reset=True)

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes | None:
        return None

    def file_complete(self, file_size: int) -> None:
        return None


class UploadGateMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view: View, args: Any, kwargs: Any
    ) -> HttpResponse | None:
        length = _content_length(request)
        if not length:
            return None
        api_upload = getattr(getattr(view, "cls", None), "accepts_uploads", False)
        page_upload = getattr(view, "accepts_uploads", False)
        limit = (
            settings.UPLOAD_MAX_BYTES + settings.UPLOAD_FORM_OVERHEAD_BYTES
            if api_upload or page_upload
            else settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        )
        if length > limit:
            return _too_large(request, length, limit, upload=api_upload or page_upload)
        if page_upload and _may_upload(request):
            return None
        # A token is checked by the API view before it parses the body; a signed-in session
        # is checked here, since the session's CSRF check reads the body first.
        if api_upload and (not request.user.is_authenticated or _may_upload(request)):
            return None
        request.upload_handlers = [RefuseFileParts(request)]
        return None


def _content_length(request: HttpRequest) -> int:
    try:
        return max(0, int(request.META.get("CONTENT_LENGTH") or 0))
    except ValueError:
        return 0


def _may_upload(request: HttpRequest) -> bool:
    user = request.user
    return bool(user.is_authenticated and user.is_staff and user.has_perm(roles.OPERATE_JOBS))


def _too_large(request: HttpRequest, length: int, limit: int, *, upload: bool) -> HttpResponse:
    if upload:
        message = (
            f"The upload is {length:,} bytes; the largest file accepted is "
            f"{settings.UPLOAD_MAX_BYTES:,} bytes. Split the file, or compress it with gzip."
        )
    else:
        message = f"The request body is {length:,} bytes; this address takes at most {limit:,}."
    if request.path.startswith("/api/"):
        return JsonResponse(
            {"code": "request_too_large", "message": message, "details": {}}, status=413
        )
    response = HttpResponse(message, status=413, content_type="text/plain; charset=utf-8")
    # The client may still be sending: close the connection rather than read the rest.
    response["Connection"] = "close"
    return response
