"""Resumable uploads over the API: the tus 1.0.0 protocol, so that a script can send a file
of many gigabytes with any tus client and resume it after a dropped connection; then
``POST /api/v1/jobs/`` with ``upload`` makes the finished upload a job."""

from typing import Any
from uuid import UUID

from django.http import HttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.reverse import reverse
from rest_framework.views import APIView

from upserts import roles, tus_protocol

# What a tus answer may also be, in plain text (the protocol's, not the API's JSON errors).
_REFUSALS = {
    400: OpenApiResponse(description="A header is missing or malformed."),
    404: OpenApiResponse(description="No such upload of yours."),
    409: OpenApiResponse(description="`Upload-Offset` is not where the stored bytes end."),
    410: OpenApiResponse(description="The upload was cancelled, expired or is a job."),
    412: OpenApiResponse(description="`Tus-Resumable: 1.0.0` is missing."),
    413: OpenApiResponse(description="Past the upload limit, or the file's length."),
    415: OpenApiResponse(description="A part is sent as `application/offset+octet-stream`."),
}
_TUS = (
    "The tus 1.0.0 protocol (https://tus.io/protocols/resumable-upload), with its creation, "
    "termination and expiration extensions: send `Tus-Resumable: 1.0.0`."
)


class UploadListView(APIView):
    required_permissions = {"POST": roles.OPERATE_JOBS}

    @extend_schema(
        tags=["uploads"],
        summary="Begin a resumable upload",
        description=f"{_TUS} `Upload-Length` gives the file's size, `Upload-Metadata` its "
        "`filename`. Answers 201 with the upload's address in `Location`.",
        request=None,
        responses={201: OpenApiResponse(description="The upload, at `Location`."), **_REFUSALS},
    )
    def post(self, request: Request) -> HttpResponse:
        return tus_protocol.create(
            request._request,  # noqa: SLF001 - the body is the protocol's, not DRF's
            lambda upload: reverse("api:upload-detail", args=[upload.pk], request=request),
        )

    def options(self, request: Request, *args: Any, **kwargs: Any) -> HttpResponse:
        return tus_protocol.options()


class UploadDetailView(APIView):
    # Deliberately one permission: it is the uploader's own upload in every method.
    required_permissions = {
        "GET": roles.OPERATE_JOBS,
        "PATCH": roles.OPERATE_JOBS,
        "DELETE": roles.OPERATE_JOBS,
    }
    # Parts of up to UPLOAD_MAX_BYTES (upserts.middleware); read only after the permission.
    accepts_uploads = True

    @extend_schema(
        tags=["uploads"],
        summary="Stored bytes of an upload",
        description=f"{_TUS} HEAD answers `Upload-Offset`: where the next part starts.",
        responses={
            200: OpenApiResponse(description="`Upload-Offset`, `Upload-Length`."),
            **_REFUSALS,
        },
    )
    def get(self, request: Request, pk: UUID) -> HttpResponse:
        upload = tus_protocol.upload_of(request, pk)
        return tus_protocol.status(upload) if upload else tus_protocol.not_found()

    def head(self, request: Request, pk: UUID) -> HttpResponse:
        return self.get(request, pk)

    @extend_schema(
        tags=["uploads"],
        summary="Send a part",
        description=f"{_TUS} The body (`application/offset+octet-stream`) is stored from "
        "`Upload-Offset` on; a part cut short keeps what arrived.",
        request=None,
        responses={204: OpenApiResponse(description="The new `Upload-Offset`."), **_REFUSALS},
    )
    def patch(self, request: Request, pk: UUID) -> HttpResponse:
        upload = tus_protocol.upload_of(request, pk)
        if upload is None:
            return tus_protocol.not_found()
        return tus_protocol.append(request._request, upload)  # noqa: SLF001

    @extend_schema(
        tags=["uploads"],
        summary="Cancel an upload",
        description=f"{_TUS} What is stored of it is removed.",
        responses={204: OpenApiResponse(description="Removed."), **_REFUSALS},
    )
    def delete(self, request: Request, pk: UUID) -> HttpResponse:
        upload = tus_protocol.upload_of(request, pk)
        if upload is None:
            return tus_protocol.not_found()
        return tus_protocol.terminate(request._request, upload)  # noqa: SLF001

    def options(self, request: Request, *args: Any, **kwargs: Any) -> HttpResponse:
        return tus_protocol.options()
