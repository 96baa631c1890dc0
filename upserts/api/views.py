"""The API's views: validate the request, call a service or a selector, answer.

Service exceptions are not caught here: ``upserts.api.errors`` turns each into its HTTP
status and the one error shape. Every view needs a staff account and the role permission it
names in ``required_permissions`` (see ``upserts.api.permissions``).
"""

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
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework import generics, status
from rest_framework.exceptions import NotFound
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.serializers import BaseSerializer
from rest_framework.views import APIView

from upserts import exports, roles, selectors
from upserts.api import filters
from upserts.api.errors import ClusterFailed
from upserts.api.renderers import JsonLinesRenderer
from upserts.api.serializers import (
    ApiTokenCreatedSerializer,
    ApiTokenSerializer,
    AuditEventSerializer,
    AuditFilterSerializer,
    BatchSerializer,
    ClusterSerializer,
    ClusterWriteSerializer,
    CollectionListSerializer,
    CollectionSchemaSerializer,
    ConnectionTestRequestSerializer,
    ConnectionTestSerializer,
    DatabaseQuerySerializer,
    EntityLookupSerializer,
    EntityWriteSerializer,
    ErrorSerializer,
    JobCreateSerializer,
    JobFilterSerializer,
    JobSerializer,
)
from upserts.client_address import client_ip
from upserts.models import ApiToken, ClusterEndpoint, UpsertJob
from upserts.services import api_tokens, clusters, job_control
from upserts.services.submissions import Start, retry_failed_rows, submit_upload


def validated_query(serializer_class: type[BaseSerializer], request: Request) -> dict[str, Any]:
    """The request's query parameters, checked by ``serializer_class`` (400 naming the field)."""
    serializer = serializer_class(data=request.query_params)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def _job_or_404(pk: int) -> UpsertJob:
    try:
        return selectors.job_detail(pk)
    except UpsertJob.DoesNotExist:
        raise NotFound(f"There is no job {pk}.") from None


def _cluster_or_404(pk: int) -> ClusterEndpoint:
    cluster = selectors.cluster_list().filter(pk=pk).first()
    if cluster is None:
        raise NotFound(f"There is no cluster {pk}.")
    return cluster


def _job_answer(request: Request, job: UpsertJob, status_code: int) -> Response:
    """A job with its address, for the requests that made or changed it."""
    data = JobSerializer(job, context={"request": request}).data
    return Response(data, status=status_code, headers={"Location": data["url"]})


# --- the API's own description ------------------------------------------------------------


class SchemaView(SpectacularAPIView):
    required_permissions = {"GET": roles.ANY_STAFF}


class SchemaDocsView(SpectacularSwaggerSplitView):
    required_permissions = {"GET": roles.ANY_STAFF}


# --- jobs ---------------------------------------------------------------------------------

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
        upload = serializer.validated_data["file"]
        job = submit_upload(
            source=upload,
            filename=upload.name or "upload",
            target=serializer.upload_target(),
            start=Start.QUEUED,
            limits=serializer.job_limits(),
            actor=request.user,
            client_ip=client_ip(request),
        )
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

_CLUSTER_FAILED = OpenApiResponse(
    ErrorSerializer,
    description="The cluster answered with an error or not at all (`cluster_error`); "
    "`message` carries the cluster's own words.",
)


@extend_schema_view(
    get=extend_schema(
        tags=["clusters"],
        summary="List clusters",
        description="Registered clusters, by name. The token is never shown, only `has_token`.",
    )
)
class ClusterListView(generics.ListAPIView):
    required_permissions = {"GET": roles.VIEW_CLUSTERS, "POST": roles.ADD_CLUSTERS}
    serializer_class = ClusterSerializer

    def get_queryset(self) -> QuerySet[ClusterEndpoint]:
        return selectors.cluster_list()

    @extend_schema(
        tags=["clusters"],
        summary="Register a cluster",
        description="Needs the Cluster admins role; audited. The token is write-only.",
        request=ClusterWriteSerializer,
        responses={201: OpenApiResponse(ClusterSerializer, description="The new cluster.")},
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = ClusterWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        cluster = clusters.create_cluster(
            **serializer.validated_data, actor=request.user, client_ip=client_ip(request)
        )
        data = ClusterSerializer(cluster, context={"request": request}).data
        return Response(data, status=status.HTTP_201_CREATED, headers={"Location": data["url"]})


class ClusterDetailView(APIView):
    required_permissions = {
        "GET": roles.VIEW_CLUSTERS,
        "PUT": roles.MANAGE_CLUSTERS,
        "PATCH": roles.MANAGE_CLUSTERS,
        "DELETE": roles.DELETE_CLUSTERS,
    }

    @extend_schema(
        tags=["clusters"],
        summary="Get a cluster",
        description="The cluster's settings and last connection test; never its token.",
        responses=OpenApiResponse(ClusterSerializer, description="The cluster."),
    )
    def get(self, request: Request, pk: int) -> Response:
        return Response(ClusterSerializer(_cluster_or_404(pk), context={"request": request}).data)

    @extend_schema(
        tags=["clusters"],
        summary="Replace a cluster's settings",
        description="Needs the Cluster admins role; audited. Leave `token` out to keep it.",
        request=ClusterWriteSerializer,
        responses=OpenApiResponse(ClusterSerializer, description="The changed cluster."),
    )
    def put(self, request: Request, pk: int) -> Response:
        return self._update(request, pk, partial=False)

    @extend_schema(
        tags=["clusters"],
        summary="Change some of a cluster's settings",
        description=(
            "Needs the Cluster admins role; audited. Leave `token` out to keep it, send an "
            "empty `token` to remove it."
        ),
        request=ClusterWriteSerializer,
        responses=OpenApiResponse(ClusterSerializer, description="The changed cluster."),
    )
    def patch(self, request: Request, pk: int) -> Response:
        return self._update(request, pk, partial=True)

    def _update(self, request: Request, pk: int, *, partial: bool) -> Response:
        cluster = _cluster_or_404(pk)
        serializer = ClusterWriteSerializer(cluster, data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        changes = dict(serializer.validated_data)
        token = changes.pop("token", None)
        cluster = clusters.update_cluster(
            cluster, token=token, actor=request.user, client_ip=client_ip(request), **changes
        )
        return Response(ClusterSerializer(cluster, context={"request": request}).data)

    @extend_schema(
        tags=["clusters"],
        summary="Remove a cluster",
        description=(
            "Needs the Cluster admins role; audited. A cluster with jobs cannot be removed "
            "(409): disable it instead."
        ),
        responses={
            204: OpenApiResponse(description="Removed."),
            409: OpenApiResponse(ErrorSerializer, description="The cluster has jobs."),
        },
    )
    def delete(self, request: Request, pk: int) -> Response:
        clusters.delete_cluster(
            _cluster_or_404(pk), actor=request.user, client_ip=client_ip(request)
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class ClusterTestView(APIView):
    required_permissions = {"POST": roles.MANAGE_CLUSTERS}

    @extend_schema(
        tags=["clusters"],
        summary="Test the connection to a cluster",
        description=(
            "Lists the database's collections, timing the round trip; the outcome is kept on "
            "the cluster (`last_test_*`) and audited. A failed test answers 502 with the "
            "cluster's message. Needs the Cluster admins role."
        ),
        request=ConnectionTestRequestSerializer,
        responses={
            200: OpenApiResponse(ConnectionTestSerializer, description="The cluster answered."),
            502: _CLUSTER_FAILED,
        },
    )
    def post(self, request: Request, pk: int) -> Response:
        cluster = _cluster_or_404(pk)
        serializer = ConnectionTestRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = clusters.check_connection(
            cluster,
            database=serializer.validated_data["database"],
            actor=request.user,
            client_ip=client_ip(request),
        )
        if not result.ok:
            raise ClusterFailed(
                f"The connection test failed: {result.error}",
                latency_ms=result.latency_ms,
                database=result.database,
            )
        context = {"request": request, "cluster": cluster}
        return Response(ConnectionTestSerializer(result, context=context).data)


class ClusterCollectionsView(APIView):
    required_permissions = {"GET": roles.VIEW_CLUSTERS}

    @extend_schema(
        tags=["clusters"],
        summary="List a cluster's collections",
        operation_id="clusters_collections_list",
        description="Asks the cluster for the database's collections.",
        parameters=[DatabaseQuerySerializer],
        responses={
            200: OpenApiResponse(CollectionListSerializer, description="The collections."),
            502: _CLUSTER_FAILED,
        },
    )
    def get(self, request: Request, pk: int) -> Response:
        cluster = _cluster_or_404(pk)
        database = validated_query(DatabaseQuerySerializer, request)["database"]
        database = database or cluster.default_database
        names = clusters.list_collections(cluster, database)
        return Response(CollectionListSerializer({"database": database, "collections": names}).data)


class ClusterCollectionView(APIView):
    required_permissions = {"GET": roles.VIEW_CLUSTERS}

    @extend_schema(
        tags=["clusters"],
        summary="Get a collection's schema",
        operation_id="clusters_collection_schema",
        description=(
            "Asks the cluster to describe the collection: its fields, primary key, vector "
            "dimensions and whether it takes dynamic fields. 404 when the cluster has no such "
            "collection or database."
        ),
        parameters=[DatabaseQuerySerializer],
        responses={
            200: OpenApiResponse(CollectionSchemaSerializer, description="The schema."),
            502: _CLUSTER_FAILED,
        },
    )
    def get(self, request: Request, pk: int, name: str) -> Response:
        cluster = _cluster_or_404(pk)
        database = validated_query(DatabaseQuerySerializer, request)["database"]
        database = database or cluster.default_database
        schema = clusters.describe_collection(cluster, name, database)
        return Response(CollectionSchemaSerializer(schema, context={"database": database}).data)


# --- audit and entities -------------------------------------------------------------------


@extend_schema_view(
    get=extend_schema(
        tags=["audit"],
        summary="List audit events",
        description="Who did what to which object, when and from where; newest first.",
        parameters=[AuditFilterSerializer],
    )
)
class AuditEventListView(generics.ListAPIView):
    required_permissions = {"GET": roles.VIEW_AUDIT}
    serializer_class = AuditEventSerializer

    def get_queryset(self) -> QuerySet[Any]:
        return filters.audit_events_matching(validated_query(AuditFilterSerializer, self.request))


@extend_schema_view(
    get=extend_schema(
        tags=["entities"],
        summary="Find the jobs that wrote an entity",
        description=(
            "Every batch that upserted the entity id into the collection, the last write "
            'first: the first item answers "which job last wrote this id?".'
        ),
        parameters=[EntityLookupSerializer],
    )
)
class EntityLookupView(generics.ListAPIView):
    required_permissions = {"GET": roles.VIEW_AUDIT}
    serializer_class = EntityWriteSerializer

    def get_queryset(self) -> QuerySet[Any]:
        return filters.entity_writes_matching(validated_query(EntityLookupSerializer, self.request))


# --- API tokens ---------------------------------------------------------------------------


@extend_schema_view(
    get=extend_schema(
        tags=["tokens"],
        summary="List your API tokens",
        description="Your tokens, revoked ones included; never their keys.",
    )
)
class ApiTokenListView(generics.ListAPIView):
    """Any staff account manages its own tokens; no role is needed."""

    required_permissions = {"GET": roles.ANY_STAFF, "POST": roles.ANY_STAFF}

    serializer_class = ApiTokenSerializer

    def get_queryset(self) -> QuerySet[ApiToken]:
        return selectors.api_tokens_of(self.request.user)

    @extend_schema(
        tags=["tokens"],
        summary="Create an API token",
        description=(
            "Answers with the token's secret `key`, shown this once: store it now. Send it as "
            "`Authorization: Bearer <key>`. Audited."
        ),
        request=ApiTokenSerializer,
        responses={
            201: OpenApiResponse(ApiTokenCreatedSerializer, description="The token and its key.")
        },
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = ApiTokenSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        issued = api_tokens.create_api_token(
            user=request.user,  # type: ignore[arg-type]
            name=serializer.validated_data["name"],
            actor=request.user,
            client_ip=client_ip(request),
        )
        data = ApiTokenCreatedSerializer(issued.token, context={"key": issued.key}).data
        location = reverse("api:token-detail", kwargs={"pk": issued.token.pk}, request=request)
        return Response(
            data,
            status=status.HTTP_201_CREATED,
            # The key is in this body only: no cache anywhere may keep it.
            headers={"Location": location, "Cache-Control": "no-store"},
        )


class ApiTokenDetailView(APIView):
    required_permissions = {"GET": roles.ANY_STAFF, "DELETE": roles.ANY_STAFF}

    def _token(self, request: Request, pk: int) -> ApiToken:
        token = selectors.api_tokens_of(request.user).filter(pk=pk).first()
        if token is None:
            raise NotFound(f"You have no API token {pk}.")
        return token

    @extend_schema(
        tags=["tokens"],
        summary="Get one of your API tokens",
        description="The token's name, prefix and use; never its key.",
        responses=OpenApiResponse(ApiTokenSerializer, description="The token."),
    )
    def get(self, request: Request, pk: int) -> Response:
        return Response(ApiTokenSerializer(self._token(request, pk)).data)

    @extend_schema(
        tags=["tokens"],
        summary="Revoke one of your API tokens",
        description="The token is refused from now on (401). Revoking twice is harmless. Audited.",
        responses={204: OpenApiResponse(description="Revoked.")},
    )
    def delete(self, request: Request, pk: int) -> Response:
        api_tokens.revoke_api_token(
            self._token(request, pk), actor=request.user, client_ip=client_ip(request)
        )
        return Response(status=status.HTTP_204_NO_CONTENT)
