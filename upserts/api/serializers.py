"""The API's request and response shapes.

Input serializers only validate; the views hand their ``validated_data`` to a service. Output
serializers only read: every relation they touch is loaded by the view's selector, so
serializing never queries.
"""

from dataclasses import asdict
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.reverse import reverse

from upserts import selectors
from upserts.column_mapping import ColumnMapping, InvalidMapping
from upserts.job_limits import BATCH_SIZE, MAX_BATCH_BYTES, MAX_IN_FLIGHT, JobLimits
from upserts.milvus.schema import CollectionSchema
from upserts.models import (
    ApiToken,
    AuditAction,
    AuditEvent,
    BatchStatus,
    ClusterEndpoint,
    EntityWrite,
    FileFormat,
    JobStatus,
    UpsertBatch,
    UpsertJob,
    validate_cluster_url,
)
from upserts.services.clusters import EDITABLE_CLUSTER_FIELDS, ConnectionTest
from upserts.services.submissions import UploadTarget

# The largest id a 64-bit integer column holds: larger ones would fail in the database.
MAX_ID = 2**63 - 1


def _url(name: str, pk: int, context: dict[str, Any]) -> str:
    return reverse(name, kwargs={"pk": pk}, request=context.get("request"))


class ErrorSerializer(serializers.Serializer):
    code = serializers.CharField(
        help_text="A stable machine-readable code: not_authenticated, authentication_failed, "
        "permission_denied, not_found, method_not_allowed, unsupported_media_type, "
        "throttled, validation_error, upload_rejected, job_action_refused, cluster_in_use, "
        "cluster_error, collection_not_found, database_not_found, server_error."
    )
    message = serializers.CharField(help_text="What went wrong, in a sentence for a person.")
    details = serializers.DictField(
        child=serializers.JSONField(),
        help_text="For validation_error, the errors by field name; otherwise facts about the "
        "error (e.g. the cluster's own code), or empty.",
    )


# --- jobs ---------------------------------------------------------------------------------


class JobProgressSerializer(serializers.Serializer):
    percent = serializers.FloatField(
        allow_null=True,
        help_text="Share of the file read, 0–100, from the row estimate taken at upload; "
        "100 once the job succeeded or partially failed; null while no estimate exists.",
    )
    rows_per_second = serializers.FloatField(
        allow_null=True, help_text="Rows read per second since the job started; null before."
    )
    eta_seconds = serializers.FloatField(
        allow_null=True,
        help_text="Seconds left at the current rate; null when unknown or once the job ended.",
    )


class JobSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="The job's number.")
    url = serializers.SerializerMethodField(help_text="This job's address in the API.")
    status = serializers.ChoiceField(
        choices=JobStatus.choices,
        help_text="pending → validating → running → succeeded | partially_failed | failed | "
        "cancelled. A failed job may be resumed (back to pending).",
    )
    cluster = serializers.IntegerField(source="cluster_id", help_text="The target cluster's id.")
    cluster_name = serializers.CharField(source="cluster.name", help_text="The cluster's name.")
    database = serializers.CharField(source="database_name", help_text="The target database.")
    collection = serializers.CharField(source="collection_name", help_text="The target collection.")
    partition = serializers.CharField(
        source="partition_name", help_text="The target partition; empty for the default one."
    )
    filename = serializers.CharField(
        source="original_filename", help_text="The uploaded file's name."
    )
    size_bytes = serializers.IntegerField(help_text="The uploaded file's size in bytes.")
    sha256 = serializers.CharField(help_text="SHA-256 of the uploaded file, in hex.")
    file_format = serializers.ChoiceField(
        choices=FileFormat.choices,
        allow_blank=True,
        help_text="The format detected from the file's content; empty if not detected.",
    )
    is_gzipped = serializers.BooleanField(help_text="Whether the file was gzip-compressed.")
    batch_size = serializers.IntegerField(help_text="Most rows sent in one upsert request.")
    max_batch_bytes = serializers.IntegerField(help_text="Largest upsert request body, bytes.")
    max_in_flight = serializers.IntegerField(help_text="Upsert requests sent at the same time.")
    estimated_rows = serializers.IntegerField(
        allow_null=True,
        help_text="Rows in the file, estimated at upload (exact for Parquet and small files).",
    )
    rows_read = serializers.IntegerField(help_text="Rows read from the file so far.")
    rows_upserted = serializers.IntegerField(help_text="Rows the cluster accepted so far.")
    rows_failed = serializers.IntegerField(
        help_text="Rows that did not land (see failed_rows_url)."
    )
    batches_done = serializers.IntegerField(help_text="Batches whose outcome is saved.")
    duplicate_ids = serializers.IntegerField(
        help_text="Primary keys seen more than once in the file (the last row wins)."
    )
    progress = serializers.SerializerMethodField(
        help_text="Progress computed from the counters: percent, rate and ETA."
    )
    cancel_requested = serializers.BooleanField(
        help_text="A cancel was asked for; a running job stops after its current batch."
    )
    budget_wait_seconds = serializers.FloatField(
        help_text="Seconds the job's requests waited for the cluster's rate budget (its most "
        "MB and requests per second from all jobs together), summed over its saved batches."
    )
    waiting_for_budget = serializers.SerializerMethodField(
        help_text="Whether the job's requests are held back by the cluster's rate budget now."
    )
    error_message = serializers.CharField(help_text="Why the job failed; empty otherwise.")
    mapping = serializers.JSONField(
        source="column_mapping",
        help_text="The column mapping the job sends with: column: field, or null for a column "
        "left out.",
    )
    dry_run = serializers.BooleanField(help_text="A check of the file that sends nothing.")
    partial_update = serializers.BooleanField(
        help_text="Each row changes only the fields it gives; the entities keep the others."
    )
    retry_of = serializers.IntegerField(
        source="retry_of_id",
        allow_null=True,
        help_text="The job whose failed rows this job sends again; null for an upload.",
    )
    created_by = serializers.CharField(
        source="created_by.username",
        allow_null=True,
        help_text="Who uploaded the file; null if that account was deleted.",
    )
    created_at = serializers.DateTimeField(help_text="When the file was uploaded.")
    started_at = serializers.DateTimeField(
        allow_null=True, help_text="When a worker first picked the job up."
    )
    finished_at = serializers.DateTimeField(
        allow_null=True, help_text="When the job reached a final status."
    )
    batches_url = serializers.SerializerMethodField(help_text="The job's batches.")
    failed_rows_url = serializers.SerializerMethodField(
        help_text="The job's failed rows as JSON Lines."
    )

    def get_url(self, job: UpsertJob) -> str:
        return _url("api:job-detail", job.pk, self.context)

    def get_batches_url(self, job: UpsertJob) -> str:
        return _url("api:job-batches", job.pk, self.context)

    def get_failed_rows_url(self, job: UpsertJob) -> str:
        return _url("api:job-failed-rows", job.pk, self.context)

    @extend_schema_field(JobProgressSerializer)
    def get_progress(self, job: UpsertJob) -> dict[str, Any]:
        # The progress is plain floats: no serializer needed to write it (polling is hot).
        return asdict(selectors.job_progress(job))

    def get_waiting_for_budget(self, job: UpsertJob) -> bool:
        return selectors.job_waits_for_budget(job)


class JobCreateSerializer(serializers.Serializer):
    file = serializers.FileField(
        required=False,
        help_text="The entity file: JSON, JSON Lines, CSV or Parquet, optionally gzip-compressed. "
        "The format is detected from the content. Give either `file` or `upload`.",
    )
    upload = serializers.UUIDField(
        required=False,
        help_text="A finished resumable upload of yours (`/api/v1/uploads/`), used instead of "
        "`file`: the job reads the file where the upload stored it.",
    )
    source = serializers.CharField(
        required=False,
        max_length=2048,
        help_text="A file where it lies, used instead of `file`: `s3://bucket/key` in a bucket, "
        "or an `https://` address under a prefix, that a cluster admin has allowed.",
    )
    cluster = serializers.PrimaryKeyRelatedField(
        queryset=ClusterEndpoint.objects.all(), help_text="The id of the target cluster."
    )
    database = serializers.CharField(
        max_length=255,
        required=False,
        allow_blank=True,
        default="",
        help_text="The target database; the cluster's default database when left out.",
    )
    collection = serializers.CharField(max_length=255, help_text="The target collection.")
    partition = serializers.CharField(
        max_length=255,
        required=False,
        allow_blank=True,
        default="",
        help_text="The target partition (v2 clusters only); the default partition when left out.",
    )
    batch_size = serializers.IntegerField(
        default=BATCH_SIZE.default,
        help_text=BATCH_SIZE.help_text,
        min_value=BATCH_SIZE.minimum,
        max_value=BATCH_SIZE.maximum,
    )
    max_in_flight = serializers.IntegerField(
        default=MAX_IN_FLIGHT.default,
        help_text=MAX_IN_FLIGHT.help_text,
        min_value=MAX_IN_FLIGHT.minimum,
        max_value=MAX_IN_FLIGHT.maximum,
    )
    max_batch_bytes = serializers.IntegerField(
        default=MAX_BATCH_BYTES.default,
        help_text=MAX_BATCH_BYTES.help_text,
        min_value=MAX_BATCH_BYTES.minimum,
        max_value=MAX_BATCH_BYTES.maximum,
    )

    mapping = serializers.JSONField(
        binary=True,
        required=False,
        default=dict,
        help_text="Which field each column of the file fills, where the names differ: an object "
        "of column: field, or column: null to leave a column out, as JSON text "
        '(`{"old_title": "title", "notes": null}`). Columns not named keep their names.',
    )
    dry_run = serializers.BooleanField(
        default=False,
        help_text="Read and check every row and send none: the job ends with its failed rows "
        "and their reasons.",
    )
    partial_update = serializers.BooleanField(
        default=False,
        help_text="Update only the fields in the file: each row needs its primary key and "
        "changes only the fields it gives (REST v2 or gRPC, Milvus 2.6.2 and later).",
    )

    _ONE_SOURCE = (
        "Give one of the file, a finished upload (`upload`) or an object in a bucket (`source`)."
    )

    def to_internal_value(self, data: Any) -> Any:
        """The fields' errors and, with them, a missing or doubled source of the file."""
        given = sum(bool(data.get(name)) for name in ("file", "upload", "source"))
        try:
            attrs = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            if given != 1 and isinstance(exc.detail, dict):
                exc.detail.setdefault("file", [serializers.ErrorDetail(self._ONE_SOURCE)])
            raise
        if given != 1:
            raise serializers.ValidationError({"file": [self._ONE_SOURCE]})
        return attrs

    def validate_mapping(self, value: Any) -> ColumnMapping:
        try:
            return ColumnMapping.from_json(value)
        except InvalidMapping as exc:
            raise serializers.ValidationError(str(exc)) from None

    def upload_target(self) -> UploadTarget:
        data = self.validated_data
        return UploadTarget(
            data["cluster"],
            data["collection"],
            data["database"],
            data["partition"],
            data["partial_update"],
        )

    def job_limits(self) -> JobLimits:
        data = self.validated_data
        return JobLimits(data["batch_size"], data["max_in_flight"], data["max_batch_bytes"])


class JobFilterSerializer(serializers.Serializer):
    status = serializers.ListField(
        child=serializers.ChoiceField(choices=JobStatus.choices),
        required=False,
        help_text="Only jobs in these statuses; repeat the parameter for several.",
    )
    cluster = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_ID,
        help_text="Only jobs sent to the cluster with this id.",
    )
    collection = serializers.CharField(
        required=False, max_length=255, help_text="Only jobs sent to this collection."
    )
    created_by = serializers.CharField(
        required=False, max_length=150, help_text="Only jobs uploaded by this username."
    )
    created_after = serializers.DateTimeField(
        required=False, help_text="Only jobs uploaded at or after this time (ISO 8601)."
    )
    created_before = serializers.DateTimeField(
        required=False, help_text="Only jobs uploaded before this time (ISO 8601)."
    )
    ordering = serializers.ChoiceField(
        choices=[
            "created_at",
            "-created_at",
            "finished_at",
            "-finished_at",
            "rows_upserted",
            "-rows_upserted",
            "id",
            "-id",
        ],
        default="-created_at",
        help_text="Sort order; a leading minus sorts descending. Newest first by default.",
    )


class BatchSerializer(serializers.ModelSerializer):
    status = serializers.ChoiceField(choices=BatchStatus.choices, help_text="The batch's outcome.")

    class Meta:
        model = UpsertBatch
        fields = [
            "sequence",
            "first_row",
            "last_row",
            "row_count",
            "status",
            "attempts",
            "upsert_count",
            "milvus_code",
            "milvus_message",
            "http_status",
            "duration_ms",
            "budget_wait_ms",
            "created_at",
        ]
        read_only_fields = fields
        extra_kwargs = {
            "sequence": {"help_text": "The batch's number within the job, from 1."},
            "first_row": {"help_text": "Number of the batch's first row in the file."},
            "last_row": {"help_text": "Number of the batch's last row in the file."},
            "row_count": {"help_text": "Rows sent in the batch."},
            "attempts": {"help_text": "Requests made for the batch, retries included."},
            "upsert_count": {"help_text": "Rows the cluster reported as upserted."},
            "milvus_code": {
                "help_text": "The cluster's answer code (200 is success over REST, 0 over gRPC)."
            },
            "milvus_message": {"help_text": "The cluster's message, if it gave one."},
            "http_status": {"help_text": "HTTP status of the cluster's last answer."},
            "duration_ms": {"help_text": "Time spent sending the batch, in milliseconds."},
            "budget_wait_ms": {
                "help_text": "Of the duration, what the batch's requests waited for the "
                "cluster's rate budget, in milliseconds."
            },
            "created_at": {"help_text": "When the batch's outcome was saved."},
        }


# --- clusters -----------------------------------------------------------------------------


_CLUSTER_HELP = {
    "id": "The cluster's id.",
    "name": "A unique name for the cluster.",
    "base_url": "The cluster's REST address, e.g. https://in01-xxxx.api.gcp-us-west1."
    "zillizcloud.com or http://127.0.0.1:19530; no credentials in it.",
    "api_version": "How jobs reach the cluster: REST v1 (/v1/vector/upsert), REST v2 "
    "(/v2/vectordb/entities/upsert) or grpc (Milvus' gRPC protocol at the base URL's host and "
    "port; 19530 for http:// and 443 for https:// when the URL gives none).",
    "default_database": "The database used when a job names none.",
    "verify_tls": "Whether TLS certificates are verified.",
    "request_timeout_seconds": "Seconds to wait for one answer of the cluster (1–600).",
    "server_version": "The Milvus version as the server names it (v2.6.4); filled in by the "
    "connection test where the endpoint says, typed otherwise. Partial updates need 2.6.2.",
    "max_request_mb": "The largest request the cluster takes, in MB (1–1024; 64 on Milvus and "
    "Zilliz Cloud by default); every batch stays below it.",
    "max_mb_per_second": "What all jobs on all workers together send to the cluster at most, "
    "in MB of requests per second; null for no cap.",
    "max_requests_per_second": "Upsert requests per second to the cluster from all jobs "
    "together at most; null for no cap.",
    "is_enabled": "A disabled cluster keeps its jobs but takes no new ones.",
    "has_token": "Whether a token is stored (the token itself is never shown).",
    "last_tested_at": "When the connection was last tested.",
    "last_test_ok": "Whether the last connection test succeeded; null if never tested.",
    "last_test_latency_ms": "Round trip of the last connection test, in milliseconds.",
    "last_test_message": "What the last connection test found.",
    "created_at": "When the cluster was registered.",
    "updated_at": "When the cluster was last changed.",
}


class ClusterSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField(help_text="This cluster's address in the API.")
    has_token = serializers.BooleanField(read_only=True, help_text=_CLUSTER_HELP["has_token"])

    class Meta:
        model = ClusterEndpoint
        fields = [
            "id",
            "url",
            "name",
            "base_url",
            "api_version",
            "default_database",
            "verify_tls",
            "request_timeout_seconds",
            "max_request_mb",
            "max_mb_per_second",
            "max_requests_per_second",
            "server_version",
            "is_enabled",
            "has_token",
            "last_tested_at",
            "last_test_ok",
            "last_test_latency_ms",
            "last_test_message",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields
        extra_kwargs = {name: {"help_text": text} for name, text in _CLUSTER_HELP.items()}

    def get_url(self, cluster: ClusterEndpoint) -> str:
        return _url("api:cluster-detail", cluster.pk, self.context)


@extend_schema_field(
    {"type": "string", "maxLength": 500, "pattern": r"^https?://[^\s/?#@]+(/[^\s?#]*)?$"}
)
class ClusterUrlField(serializers.CharField):
    """A cluster's base URL; its pattern in the schema, the model's validator on the way in."""


class ClusterWriteSerializer(serializers.ModelSerializer):
    """Validates a cluster's fields; the token is write-only and never read back."""

    base_url = ClusterUrlField(
        max_length=500, validators=[validate_cluster_url], help_text=_CLUSTER_HELP["base_url"]
    )

    token = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        max_length=4096,
        style={"input_type": "password"},
        help_text="An API key or user:password, stored encrypted and never shown again. "
        "Left out: the stored token is kept. Empty: the stored token is removed.",
    )

    class Meta:
        model = ClusterEndpoint
        fields = [*EDITABLE_CLUSTER_FIELDS, "token"]
        extra_kwargs = {name: {"help_text": text} for name, text in _CLUSTER_HELP.items()}


class ConnectionTestRequestSerializer(serializers.Serializer):
    database = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=255,
        default="",
        help_text="The database to list; the cluster's default database when left out.",
    )


class ConnectionTestSerializer(serializers.Serializer):
    ok = serializers.BooleanField(help_text="Always true here: a failed test answers 502.")
    latency_ms = serializers.IntegerField(help_text="Round trip to the cluster, milliseconds.")
    database = serializers.CharField(help_text="The database whose collections were listed.")
    collections = serializers.ListField(
        child=serializers.CharField(), help_text="The database's collections, sorted."
    )
    answers = serializers.ListField(
        child=serializers.ChoiceField(choices=["v1", "v2", "grpc"]),
        help_text="The APIs the endpoint answers (a refused token counts as an answer).",
    )
    server_version = serializers.CharField(
        help_text="The server's version where it says (gRPC only); empty otherwise."
    )
    suggestion = serializers.CharField(
        help_text="What to change about the cluster's API, e.g. v1 to v2; empty if nothing."
    )
    cluster = serializers.SerializerMethodField(help_text="The cluster, with the test recorded.")

    @extend_schema_field(ClusterSerializer)
    def get_cluster(self, result: ConnectionTest) -> dict[str, Any]:
        return dict(ClusterSerializer(self.context["cluster"], context=self.context).data)


class DatabaseQuerySerializer(serializers.Serializer):
    database = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=255,
        default="",
        help_text="The database; the cluster's default database when left out.",
    )


class CollectionListSerializer(serializers.Serializer):
    database = serializers.CharField(help_text="The database listed.")
    collections = serializers.ListField(
        child=serializers.CharField(), help_text="Its collections' names, sorted."
    )


class FieldSchemaSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="The field's name.")
    data_type = serializers.CharField(
        help_text="Milvus' type name: Int64, VarChar, FloatVector, JSON, Array, ..."
    )
    is_primary = serializers.BooleanField(help_text="Whether this is the primary key.")
    auto_id = serializers.BooleanField(help_text="Whether Milvus generates the key itself.")
    max_length = serializers.IntegerField(allow_null=True, help_text="A VarChar's max length.")
    dim = serializers.IntegerField(allow_null=True, help_text="A vector's dimension.")
    element_type = serializers.CharField(allow_null=True, help_text="An Array's element type.")
    nullable = serializers.BooleanField(help_text="Whether the field may be null.")


class CollectionSchemaSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="The collection's name.")
    database = serializers.SerializerMethodField(help_text="The database it was read from.")
    fields = FieldSchemaSerializer(many=True, help_text="The collection's fields.")
    primary_field = serializers.SerializerMethodField(
        help_text="Name of the primary key field; null if the cluster reported none."
    )
    enable_dynamic_field = serializers.BooleanField(
        help_text="Whether rows may carry fields the schema does not name."
    )
    load_state = serializers.CharField(help_text="The load state the cluster reported.")

    def get_database(self, schema: CollectionSchema) -> str:
        return str(self.context["database"])

    def get_primary_field(self, schema: CollectionSchema) -> str | None:
        return next((item.name for item in schema.fields if item.is_primary), None)


# --- audit and entities -------------------------------------------------------------------


class AuditEventSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(
        source="actor_username", help_text="Username of who acted; empty for the system."
    )
    action = serializers.ChoiceField(choices=AuditAction.choices, help_text="What was done.")
    target_type = serializers.CharField(
        source="target_type.model",
        allow_null=True,
        help_text="The kind of object acted on: upsertjob, clusterendpoint, apitoken.",
    )

    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "created_at",
            "actor",
            "action",
            "target_type",
            "target_id",
            "target_repr",
            "details",
            "client_ip",
        ]
        read_only_fields = fields
        extra_kwargs = {
            "id": {"help_text": "The event's id."},
            "created_at": {"help_text": "When it happened."},
            "target_id": {"help_text": "The id of the object acted on."},
            "target_repr": {"help_text": "The object as it was described then."},
            "details": {"help_text": "Facts of the event (secret-looking keys are redacted)."},
            "client_ip": {"help_text": "The address the request came from."},
        }


class AuditFilterSerializer(serializers.Serializer):
    action = serializers.ChoiceField(
        choices=AuditAction.choices, required=False, help_text="Only events of this action."
    )
    actor = serializers.CharField(
        required=False, max_length=150, help_text="Only events by this username."
    )
    target_type = serializers.ChoiceField(
        choices=["upsertjob", "clusterendpoint", "apitoken"],
        required=False,
        help_text="Only events about this kind of object.",
    )
    target_id = serializers.CharField(
        required=False, max_length=64, help_text="Only events about the object with this id."
    )
    created_after = serializers.DateTimeField(
        required=False, help_text="Only events at or after this time (ISO 8601)."
    )
    created_before = serializers.DateTimeField(
        required=False, help_text="Only events before this time (ISO 8601)."
    )


class EntityLookupSerializer(serializers.Serializer):
    collection = serializers.CharField(max_length=255, help_text="The collection to look in.")
    id = serializers.CharField(
        max_length=512, help_text="The entity's primary key (an Int64 as its decimal text)."
    )
    cluster = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_ID,
        help_text="Only writes to the cluster with this id.",
    )
    database = serializers.CharField(
        required=False, max_length=255, help_text="Only writes to this database."
    )


class EntityWriteSerializer(serializers.Serializer):
    entity_id = serializers.CharField(help_text="The entity's primary key.")
    job = serializers.IntegerField(source="job_id", help_text="The job that wrote it.")
    job_url = serializers.SerializerMethodField(help_text="That job's address in the API.")
    batch = serializers.IntegerField(
        source="batch.sequence", help_text="The batch of that job that wrote it."
    )
    cluster = serializers.IntegerField(source="job.cluster_id", help_text="The cluster's id.")
    cluster_name = serializers.CharField(source="job.cluster.name", help_text="The cluster.")
    database = serializers.CharField(source="job.database_name", help_text="The database.")
    collection = serializers.CharField(source="job.collection_name", help_text="The collection.")
    written_at = serializers.DateTimeField(
        source="batch.created_at", help_text="When the batch that wrote it was saved."
    )
    written_by = serializers.CharField(
        source="job.created_by.username",
        allow_null=True,
        help_text="Who uploaded the job's file; null if that account was deleted.",
    )

    def get_job_url(self, write: EntityWrite) -> str:
        return _url("api:job-detail", write.job_id, self.context)


# --- API tokens ---------------------------------------------------------------------------


class ApiTokenSerializer(serializers.ModelSerializer):
    is_active = serializers.BooleanField(
        read_only=True, help_text="False once the token is revoked."
    )

    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "created_at", "last_used_at", "revoked_at", "is_active"]
        read_only_fields = ["id", "prefix", "created_at", "last_used_at", "revoked_at"]
        extra_kwargs = {
            "id": {"help_text": "The token's id."},
            "name": {"help_text": "What the token is for."},
            "prefix": {"help_text": "The key's first characters, to tell tokens apart."},
            "created_at": {"help_text": "When the token was created."},
            "last_used_at": {"help_text": "When the token was last used (to the minute)."},
            "revoked_at": {"help_text": "When the token was revoked; null while it is active."},
        }


class ApiTokenCreatedSerializer(ApiTokenSerializer):
    key = serializers.SerializerMethodField(
        help_text="The secret key, shown this once and never again: send it as "
        "`Authorization: Bearer <key>`."
    )

    class Meta(ApiTokenSerializer.Meta):
        fields = [*ApiTokenSerializer.Meta.fields, "key"]

    def get_key(self, token: ApiToken) -> str:
        return str(self.context["key"])
