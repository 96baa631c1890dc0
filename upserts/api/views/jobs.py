"""Jobs: create from a file, list, poll (with ETags), batches, failed rows and the actions."""

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpResponseBase, HttpResponseNotModified, StreamingHttpResponse
from django.utils.http import parse_etags
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import generics, status
from rest_framework.exceptions import NotFound
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from upserts import exports, roles, selectors, tus_protocol
from upserts.api import filters
from upserts.api.renderers import JsonLinesRenderer
from upserts.api.serializers import (
    BatchSerializer,
    ErrorSerializer,
    JobCreateSerializer,
    JobFilterSerializer,
    JobSerializer,
)
from upserts.api.views.common import validated_query
from upserts.client_address import client_ip
from upserts.models import UpsertJob
from upserts.services import job_control
from upserts.services.submissions import (
    Start,
    retry_failed_rows,
    submit_object,
    submit_resumable_upload,
    submit_upload,
)


def _job_or_404(pk: int) -> UpsertJob:
    try:
        return selectors.job_detail(pk)
    except UpsertJob.DoesNotExist:
        raise NotFound(f"There is no job {pk}.") from None


def _job_answer(request: Request, job: UpsertJob, status_code: int) -> Response:
    """A job with its address, for the requests that made or changed it."""
    data = JobSerializer(job, context={"request": request}).data
    return Response(data, status=status_code, headers={"Location": data["url"]})


# --- the API's own description ------------------------------------------------------------


_JOB_ACTION_RESPONSES = {
    409: OpenApiResponse(ErrorSerializer, description="The job's status does not allow this."),
}


@extend_schema_view(
    get=extend_schema(
        tags=["jobs"],
        summary="List jobs",
        description="Upsert jobs, newest first unless `ordering` says otherwise, paginated.",
        parameters=[JobFilterSerializer],
    )
)
class JobListView(generics.ListAPIView):
    required_permissions = {"GET": roles.VIEW_JOBS, "POST": roles.OPERATE_JOBS}
    # Takes file parts (upserts.middleware); the body is parsed only after the permission check.
    accepts_uploads = True
    serializer_class = JobSerializer
    parser_classes = [MultiPartParser, FormParser]

    def get_queryset(self) -> QuerySet[UpsertJob]:
        return filters.jobs_matching(validated_query(JobFilterSerializer, self.request))

    @extend_schema(
        tags=["jobs"],
        summary="Upload a file and start a job",
        description=(
            "Stores the file, detects its format and queues the job for a worker. Answers 202 "
            "with the job; its address is in the `Location` header and in `url`. Poll that "
            "address until `status` is final. Needs the Operators role."
        ),
        request=JobCreateSerializer,
        responses={
            202: OpenApiResponse(JobSerializer, description="The job, queued for a worker."),
            400: OpenApiResponse(
                ErrorSerializer,
                description="A field is invalid (`validation_error`, the field named in "
                "`details`), or the file cannot become a job (`upload_rejected`).",
            ),
        },
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = JobCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        options: dict[str, Any] = {
            "target": serializer.upload_target(),
            "start": Start.QUEUED,
            "limits": serializer.job_limits(),
            "mapping": data["mapping"],
            "dry_run": data["dry_run"],
            "actor": request.user,
            "client_ip": client_ip(request),
        }
        if "upload" in data:
            resumable = tus_protocol.upload_of(request, data["upload"])
            if resumable is None:
                raise NotFound(f"There is no upload {data['upload']} of yours.")
            job = submit_resumable_upload(resumable, **options)
        elif "source" in data:
            job = submit_object(data["source"], **options)
        else:
            file = data["file"]
            job = submit_upload(source=file, filename=file.name or "upload", **options)
        return _job_answer(request, job, status.HTTP_202_ACCEPTED)


def job_etag(representation: Mapping[str, Any]) -> str:
    """A weak ETag of the job's representation, as the serializer wrote it.

    Taken from the answer itself, so no field the serializer adds can be left out of it (and
    a client never gets a stale 304). Weak, and without the rate and ETA of ``progress``:
    those drift with the clock while nothing about the job changed; a client that gets 304
    keeps its last figures.
    """
    stable = {**representation, "progress": {"percent": representation["progress"]["percent"]}}
    text = json.dumps(stable, sort_keys=True, default=str).encode()
    return f'W/"{hashlib.blake2b(text, digest_size=16).hexdigest()}"'


def _etag_matches(request: Request, etag: str) -> bool:
    header = request.headers.get("If-None-Match", "")
    if not header:
        return False
    tags = parse_etags(header)
    # If-None-Match compares weakly (RFC 9110 §13.1.2): W/"x" matches "x".
    return "*" in tags or etag.removeprefix("W/") in {tag.removeprefix("W/") for tag in tags}


class JobDetailView(APIView):
    required_permissions = {"GET": roles.VIEW_JOBS}

    @extend_schema(
        tags=["jobs"],
        summary="Get a job",
        description=(
            "The job's status, counters, progress (percent, rows per second, ETA), timestamps "
            "and error. One database query for the job. Send the `ETag` of the last answer in "
            "`If-None-Match` to get 304 Not Modified while nothing changed: poll once a second "
            "at no cost."
        ),
        parameters=[
            OpenApiParameter(
                "If-None-Match",
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                description="The ETag of an earlier answer.",
            ),
        ],
        responses={
            200: OpenApiResponse(JobSerializer, description="The job."),
            304: OpenApiResponse(description="Nothing changed since the ETag sent."),
        },
    )
    def get(self, request: Request, pk: int) -> HttpResponseBase:
        job = _job_or_404(pk)
        data = JobSerializer(job, context={"request": request}).data
        headers = {"ETag": job_etag(data), "Cache-Control": "private, no-cache"}
        if _etag_matches(request, headers["ETag"]):
            not_modified = HttpResponseNotModified()
            for name, value in headers.items():
                not_modified[name] = value
            return not_modified
        return Response(data, headers=headers)


@extend_schema_view(
    get=extend_schema(
        tags=["jobs"],
        summary="List a job's batches",
        description="The saved outcome of each batch the job sent, in order, paginated.",
    )
)
class JobBatchesView(generics.ListAPIView):
    required_permissions = {"GET": roles.VIEW_JOBS}
    serializer_class = BatchSerializer

    def get_queryset(self) -> QuerySet[Any]:
        return selectors.job_batches(_job_or_404(self.kwargs["pk"]))


class JobFailedRowsView(APIView):
    required_permissions = {"GET": roles.VIEW_JOBS}
    renderer_classes = [JSONRenderer, JsonLinesRenderer]

    @extend_schema(
        tags=["jobs"],
        summary="Download a job's failed rows",
        description=(
            "JSON Lines, one failed row a line: `row_number`, `reason`, and `entity` (the row "
            "as read) or `raw` (the text of a row that could not be parsed). Fix the entities "
            "and upload them again, or retry them with `retry-failed`."
        ),
        parameters=[
            OpenApiParameter(
                "format",
                OpenApiTypes.STR,
                enum=["jsonl", "json"],
                description="Instead of an Accept header: the media type of an error answer.",
            )
        ],
        responses={
            (200, "application/x-ndjson"): OpenApiResponse(
                OpenApiTypes.STR, description="The failed rows, streamed."
            )
        },
    )
    def get(self, request: Request, pk: int) -> HttpResponseBase:
        job = _job_or_404(pk)
        response = StreamingHttpResponse(
            exports.failed_rows_jsonl(job), content_type=JsonLinesRenderer.media_type
        )
        response["Content-Disposition"] = f'attachment; filename="job-{job.pk}-failed-rows.jsonl"'
        return response


class JobCancelView(APIView):
    required_permissions = {"POST": roles.OPERATE_JOBS}

    @extend_schema(
        tags=["jobs"],
        summary="Cancel a job",
        description=(
            "A job no worker has picked up is cancelled at once; a running job stops after "
            "its current batch (`cancel_requested` is true until then). Needs the Operators "
            "role; audited."
        ),
        request=None,
        responses={
            200: OpenApiResponse(JobSerializer, description="The job, cancelled or stopping."),
            **_JOB_ACTION_RESPONSES,
        },
    )
    def post(self, request: Request, pk: int) -> Response:
        job = job_control.cancel_job(
            _job_or_404(pk), actor=request.user, client_ip=client_ip(request)
        )
        return _job_answer(request, _job_or_404(job.pk), status.HTTP_200_OK)


class JobResumeView(APIView):
    required_permissions = {"POST": roles.OPERATE_JOBS}

    @extend_schema(
        tags=["jobs"],
        summary="Resume a failed job",
        description=(
            "A failed job goes back to pending and carries on from its checkpoint: rows "
            "already saved are not sent again. Needs the Operators role; audited."
        ),
        request=None,
        responses={
            202: OpenApiResponse(JobSerializer, description="The job, queued again."),
            **_JOB_ACTION_RESPONSES,
        },
    )
    def post(self, request: Request, pk: int) -> Response:
        with transaction.atomic():
            job = job_control.resume_job(
                _job_or_404(pk), actor=request.user, client_ip=client_ip(request)
            )
        return _job_answer(request, _job_or_404(job.pk), status.HTTP_202_ACCEPTED)


class JobRetryFailedView(APIView):
    required_permissions = {"POST": roles.OPERATE_JOBS}

    @extend_schema(
        tags=["jobs"],
        summary="Retry a job's failed rows",
        description=(
            "Starts a new job, to the same target, from the failed rows of an ended job that "
            "were read as entities. Answers 202 with the new job (its address in `Location`). "
            "Needs the Operators role; audited."
        ),
        request=None,
        responses={
            202: OpenApiResponse(JobSerializer, description="The new job, queued."),
            **_JOB_ACTION_RESPONSES,
        },
    )
    def post(self, request: Request, pk: int) -> Response:
        with transaction.atomic():
            retry = retry_failed_rows(
                _job_or_404(pk), actor=request.user, client_ip=client_ip(request)
            )
        return _job_answer(request, _job_or_404(retry.pk), status.HTTP_202_ACCEPTED)


# --- clusters -----------------------------------------------------------------------------
