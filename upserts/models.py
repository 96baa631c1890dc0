"""Data of the console: clusters, upsert jobs and their batches, and the audit trail.

Models hold data and invariants only. Writes that change the world (create a job, move it
through its states, record an audit event) live in ``upserts.services``.
"""

import uuid
from collections.abc import Collection
from pathlib import PurePath
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from .fields import EncryptedTextField
from .job_limits import BATCH_SIZE, MAX_BATCH_BYTES, MAX_IN_FLIGHT
from .milvus.client import token_problem
from .milvus.network import NetworkPolicy
from .rate_budget import RateCap


def validate_cluster_url(value: str) -> None:
    """A cluster's base URL: http(s), a host, no credentials, query or fragment.

    Django's URLValidator refuses single-label hosts such as ``http://milvus:19530``, which is
    how a cluster is reached inside docker-compose, so this checks the parts itself.
    """
    try:
        parts = urlsplit(value)
    except ValueError as exc:  # e.g. an unbalanced "[" of an IPv6 host
        raise ValidationError(f"The URL cannot be read: {exc}.", code="invalid") from exc
    if parts.scheme not in ("http", "https"):
        raise ValidationError("Use an http:// or https:// URL.", code="scheme")
    if not parts.hostname:
        raise ValidationError("The URL has no host name.", code="host")
    if parts.username or parts.password:
        raise ValidationError(
            "Put credentials in the token field, not in the URL.", code="credentials"
        )
    if parts.query or parts.fragment:
        raise ValidationError("The URL must not have a query or fragment.", code="query")
    try:
        _ = parts.port
    except ValueError as exc:
        raise ValidationError("The URL's port is not a number from 0 to 65535.") from exc


def validate_cluster_token(value: str) -> None:
    """A token goes into an HTTP header, which cannot carry every character; the message
    names what is wrong with it, never the token."""
    problem = token_problem(value.strip())
    if problem:
        raise ValidationError(
            f"The token contains {problem}, which an HTTP header cannot carry; type it again.",
            code="header",
        )


def cluster_url_network_problem(value: str) -> str | None:
    """Why the console may not connect to a (well-formed) cluster URL's host, or None.

    Judged by what the host resolves to now; every connection is checked again by the client,
    against the address it reaches.
    """
    parts = urlsplit(value)
    if not parts.hostname:
        return None
    policy = NetworkPolicy.from_strings(
        settings.CLUSTER_DENIED_NETWORKS, settings.CLUSTER_ALLOWED_NETWORKS
    )
    port = parts.port or (443 if parts.scheme == "https" else 80)
    reason = policy.host_refusal(parts.hostname, port)
    if reason is None:
        return None
    return (
        f"The console may not connect to this URL: {reason} (CLUSTER_DENIED_NETWORKS, "
        "CLUSTER_ALLOWED_NETWORKS)."
    )


class ClusterEndpoint(models.Model):
    """A Milvus / Zilliz Cloud cluster that jobs upsert into."""

    class ApiVersion(models.TextChoices):
        V1 = "v1", "REST v1 (/v1/vector/upsert)"
        V2 = "v2", "REST v2 (/v2/vectordb/entities/upsert)"
        GRPC = "grpc", "gRPC (Milvus' own protocol, port 19530 unless the URL gives one)"

    name = models.CharField(max_length=100, unique=True)
    base_url = models.CharField(
        "base URL",
        max_length=500,
        validators=[validate_cluster_url],
        help_text="For example https://in01-xxxx.api.gcp-us-west1.zillizcloud.com or http://127.0.0.1:19530",
    )
    api_version = models.CharField(
        "API",
        max_length=4,
        choices=ApiVersion.choices,
        default=ApiVersion.V1,
        help_text="How jobs reach the cluster. gRPC sends several times the rows per second "
        "of REST to a self-hosted Milvus; Zilliz Cloud endpoints take it too.",
    )
    # Write-only: an API key or "user:password"; never rendered back, listed or logged.
    token = EncryptedTextField(blank=True, default="")
    default_database = models.CharField(max_length=255, default="default")
    verify_tls = models.BooleanField("verify TLS certificates", default=True)
    request_timeout_seconds = models.PositiveIntegerField(
        default=30, validators=[MinValueValidator(1), MaxValueValidator(600)]
    )
    server_version = models.CharField(
        "Milvus version",
        max_length=100,
        blank=True,
        default="",
        help_text="As the server names it (v2.6.4): the connection test fills it in where the "
        "endpoint says (over gRPC); type it for one that does not. Partial updates need 2.6.2.",
    )
    max_request_mb = models.PositiveIntegerField(
        "largest request (MB)",
        default=64,
        validators=[MinValueValidator(1), MaxValueValidator(1024)],
        help_text="The most the cluster takes in one request: 64 MB on Milvus and Zilliz Cloud "
        "unless its configuration says otherwise. A job's batches stay below it.",
    )
    # What all jobs on all workers together send to the cluster at most (one budget in Redis).
    max_mb_per_second = models.FloatField(
        "most MB per second",
        null=True,
        blank=True,
        validators=[MinValueValidator(0.01)],
        help_text="What all jobs on all workers together send to the cluster at most, in "
        "request bytes; blank for no cap. Zilliz Cloud throttles upserts by plan: set it a "
        "little below the plan's rate.",
    )
    max_requests_per_second = models.FloatField(
        "most requests per second",
        null=True,
        blank=True,
        validators=[MinValueValidator(0.01)],
        help_text="Upsert requests per second from all jobs together; blank for no cap.",
    )
    is_enabled = models.BooleanField(
        default=True, help_text="A disabled cluster keeps its jobs but takes no new ones."
    )
    last_tested_at = models.DateTimeField(null=True, blank=True)
    last_test_ok = models.BooleanField(null=True, blank=True)
    last_test_latency_ms = models.PositiveIntegerField(null=True, blank=True)
    last_test_message = models.TextField(blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"<ClusterEndpoint {self.pk}: {self.name} {self.base_url}>"

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.base_url = self.base_url.strip().rstrip("/")
        super().save(*args, **kwargs)

    def clean_fields(self, exclude: Collection[str] | None = None) -> None:
        """The fields' checks, then two of how the cluster is reached, on the same fields.

        The base URL must not lead into a network the console does not connect to, and the
        token must be text an HTTP header can carry. They are not field validators: the first
        reads settings and DNS at the time of saving, and neither changes the database, so
        neither belongs in a migration. A form that does not edit a field skips its check.
        """
        errors: dict[str, list[ValidationError]] = {}
        try:
            super().clean_fields(exclude)
        except ValidationError as exc:
            errors = exc.update_error_dict(errors)
        skipped = set(exclude or ()) | set(errors)
        if "base_url" not in skipped:
            network_problem = cluster_url_network_problem(self.base_url)
            if network_problem:
                errors["base_url"] = [ValidationError(network_problem, code="network")]
        if "token" not in skipped:
            try:
                validate_cluster_token(self.token)
            except ValidationError as exc:
                errors["token"] = [exc]
        if errors:
            raise ValidationError(errors)

    @property
    def has_token(self) -> bool:
        return bool(self.token)

    @property
    def rate_cap(self) -> RateCap:
        """What all jobs together may send to the cluster per second (one budget in Redis)."""
        mb = self.max_mb_per_second
        return RateCap(
            bytes_per_second=mb * 1024 * 1024 if mb else None,
            requests_per_second=self.max_requests_per_second or None,
        )


class SourceBucket(models.Model):
    """An S3-compatible bucket (or a part of it) that jobs may read files from where they lie,
    allowed by a cluster admin, with the credentials to read it.

    A job names an object as ``s3://bucket/key``: the key must start with ``prefix``.
    """

    name = models.CharField(max_length=100, unique=True)
    bucket = models.CharField(max_length=255)
    prefix = models.CharField(
        max_length=1024, blank=True, default="", help_text="Keys jobs may read start with this."
    )
    endpoint_url = models.CharField(
        "endpoint URL",
        max_length=500,
        blank=True,
        default="",
        validators=[validate_cluster_url],
        help_text="Empty for AWS S3 itself; http://minio:9000 for a MinIO of the compose file.",
    )
    region = models.CharField(max_length=64, blank=True, default="")
    path_style = models.BooleanField(
        "path-style addresses", default=False, help_text="For MinIO and most self-hosted stores."
    )
    # Write-only, as cluster tokens are: never rendered back, listed or logged.
    access_key_id = EncryptedTextField("access key id", blank=True, default="")
    secret_access_key = EncryptedTextField(blank=True, default="")
    is_enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} (s3://{self.bucket}/{self.prefix})"


class SourceAddress(models.Model):
    """An https:// address prefix that jobs may read files from, allowed by a cluster admin.

    A job may name any address that starts with ``url_prefix``; redirects are never followed,
    and the host must be one the console may connect to (the cluster network rules).
    """

    name = models.CharField(max_length=100, unique=True)
    url_prefix = models.CharField(
        "URL prefix",
        max_length=1000,
        validators=[validate_cluster_url],
        help_text="For example https://data.example.com/exports/",
    )
    # Write-only: sent as the Authorization header, never rendered back, listed or logged.
    authorization = EncryptedTextField(blank=True, default="")
    verify_tls = models.BooleanField("verify TLS certificates", default=True)
    is_enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.url_prefix})"


class JobStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    VALIDATING = "validating", "Validating"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    PARTIALLY_FAILED = "partially_failed", "Partially failed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


# The job state machine: each status and the statuses it may move to. A failed job can be
# resumed (back to pending); the other final states are final.
JOB_TRANSITIONS: dict[str, frozenset[str]] = {
    JobStatus.PENDING: frozenset({JobStatus.VALIDATING, JobStatus.FAILED, JobStatus.CANCELLED}),
    JobStatus.VALIDATING: frozenset({JobStatus.RUNNING, JobStatus.FAILED, JobStatus.CANCELLED}),
    JobStatus.RUNNING: frozenset(
        {
            JobStatus.SUCCEEDED,
            JobStatus.PARTIALLY_FAILED,
            JobStatus.FAILED,
            JobStatus.CANCELLED,
        }
    ),
    JobStatus.SUCCEEDED: frozenset(),
    JobStatus.PARTIALLY_FAILED: frozenset(),
    JobStatus.FAILED: frozenset({JobStatus.PENDING}),
    JobStatus.CANCELLED: frozenset(),
}
FINAL_JOB_STATUSES = frozenset(
    {JobStatus.SUCCEEDED, JobStatus.PARTIALLY_FAILED, JobStatus.FAILED, JobStatus.CANCELLED}
)


def statuses_that_may_become(status: str) -> frozenset[str]:
    """The statuses from which a job may legally move to ``status``."""
    return frozenset(source for source, targets in JOB_TRANSITIONS.items() if status in targets)


UPLOAD_DIRECTORY = "uploads"


def safe_suffix(filename: str) -> str:
    """The last two suffixes of an uploaded name (``.jsonl.gz``), letters, digits and dots
    only: all of the name a stored path ever keeps."""
    suffixes = "".join(PurePath(filename).suffixes[-2:]).lower()
    return "".join(ch for ch in suffixes if ch.isalnum() or ch == ".")[:20]


def job_upload_path(job: "UpsertJob", filename: str) -> str:
    """A storage name made by the console; the uploaded name never becomes a path."""
    return f"{UPLOAD_DIRECTORY}/{uuid.uuid4().hex}{safe_suffix(filename)}"


RESUMABLE_DIRECTORY = "resumable"


class ResumableUploadStatus(models.TextChoices):
    RECEIVING = "receiving", "Receiving"
    COMPLETE = "complete", "Complete"
    SUBMITTED = "submitted", "Submitted as a job"
    CANCELLED = "cancelled", "Cancelled"
    EXPIRED = "expired", "Expired"


class ResumableUpload(models.Model):
    """A file sent in parts (the tus protocol) straight into the upload storage.

    ``offset`` is what is safely stored; a part cut off mid-way keeps what arrived, and the
    client asks for the offset (HEAD) and sends the rest. On S3 the parts are a multipart
    upload of ``part_bytes``-sized parts, and what is left over from a part cut short waits
    in a tail object until the next part completes it.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    filename = models.CharField(max_length=255)
    length = models.PositiveBigIntegerField()
    offset = models.PositiveBigIntegerField(default=0)
    # The tus Upload-Metadata as sent (text values), for the job it becomes.
    metadata = models.JSONField(default=dict, blank=True)
    storage_name = models.CharField(max_length=255)
    # S3 only: the multipart upload and its parts so far ([{"PartNumber", "ETag", "Size"}]),
    # and the bytes waiting in the tail object.
    multipart_id = models.CharField(max_length=255, blank=True, default="")
    parts = models.JSONField(default=list, blank=True)
    tail_bytes = models.PositiveBigIntegerField(default=0)
    status = models.CharField(
        max_length=20,
        choices=ResumableUploadStatus.choices,
        default=ResumableUploadStatus.RECEIVING,
        db_index=True,
    )
    job = models.OneToOneField(
        "UpsertJob", null=True, blank=True, on_delete=models.SET_NULL, related_name="upload"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    expires_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"{self.filename} ({self.offset:,} of {self.length:,} bytes)"


class FileFormat(models.TextChoices):
    JSON = "json", "JSON"
    JSONL = "jsonl", "JSON Lines"
    CSV = "csv", "CSV"
    PARQUET = "parquet", "Parquet"


class UpsertJob(models.Model):
    """One uploaded entity file sent, in batches, to one collection of one cluster."""

    cluster = models.ForeignKey(ClusterEndpoint, on_delete=models.PROTECT, related_name="jobs")
    database_name = models.CharField(max_length=255, default="default")
    collection_name = models.CharField(max_length=255)
    partition_name = models.CharField(max_length=255, blank=True, default="")

    source_file = models.FileField(upload_to=job_upload_path, max_length=255, blank=True)
    original_filename = models.CharField(max_length=255)
    size_bytes = models.PositiveBigIntegerField(default=0)
    sha256 = models.CharField("SHA-256", max_length=64, blank=True, default="")
    file_format = models.CharField(max_length=10, choices=FileFormat.choices, blank=True)
    is_gzipped = models.BooleanField(default=False)

    # From the first rows' size at upload; exact for Parquet. Drives the progress bar and ETA.
    estimated_rows = models.PositiveBigIntegerField(null=True, blank=True)
    retry_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="retries"
    )
    # A file read where it lies instead of an upload: s3://bucket/key in an allowed bucket,
    # or an https:// address under an allowed prefix, with its ETag when the job was made
    # (source_file is then empty).
    source_reference = models.CharField(max_length=2048, blank=True, default="")
    source_bucket = models.ForeignKey(
        SourceBucket, null=True, blank=True, on_delete=models.PROTECT, related_name="jobs"
    )
    source_address = models.ForeignKey(
        SourceAddress, null=True, blank=True, on_delete=models.PROTECT, related_name="jobs"
    )
    source_etag = models.CharField(max_length=255, blank=True, default="")
    # {file column: field, or null to leave it out}; see upserts.column_mapping.
    column_mapping = models.JSONField(default=dict, blank=True)
    dry_run = models.BooleanField(
        default=False, help_text="Reads and checks every row, and sends nothing."
    )
    partial_update = models.BooleanField(
        "update only the fields in the file",
        default=False,
        help_text="Each row changes only the fields it gives, besides its primary key; the "
        "entity keeps the others (REST v2 or gRPC, Milvus 2.6.2 and later).",
    )
    # Set when the retention policy removed the stored file, or the failed rows, of the job.
    file_removed_at = models.DateTimeField(null=True, blank=True)
    failed_rows_removed_at = models.DateTimeField(null=True, blank=True)

    batch_size = models.PositiveIntegerField(
        default=BATCH_SIZE.default, validators=BATCH_SIZE.validators()
    )
    max_batch_bytes = models.PositiveIntegerField(
        default=MAX_BATCH_BYTES.default, validators=MAX_BATCH_BYTES.validators()
    )
    max_in_flight = models.PositiveSmallIntegerField(
        default=MAX_IN_FLIGHT.default, validators=MAX_IN_FLIGHT.validators()
    )

    status = models.CharField(
        max_length=20, choices=JobStatus.choices, default=JobStatus.PENDING, db_index=True
    )
    rows_read = models.PositiveBigIntegerField(default=0)
    rows_upserted = models.PositiveBigIntegerField(default=0)
    rows_failed = models.PositiveBigIntegerField(default=0)
    batches_done = models.PositiveIntegerField(default=0)
    # Rows of the file (in file order) whose outcome is committed; a restarted task skips them.
    checkpoint_row = models.PositiveBigIntegerField(default=0)
    # Where in the file reading resumes after ``checkpoint_row``: the byte offset past it and
    # the lines read up to it (JSON Lines and CSV that are not gzip-compressed; 0 otherwise).
    checkpoint_offset = models.PositiveBigIntegerField(default=0)
    checkpoint_line = models.PositiveBigIntegerField(default=0)
    error_message = models.TextField(blank=True, default="")
    cancel_requested = models.BooleanField(default=False)
    # Primary keys that appeared more than once in the file (the last row wins, as in Milvus).
    duplicate_ids = models.PositiveBigIntegerField(default=0)
    # Time the job's requests waited for the cluster's rate budget, summed over its batches.
    budget_wait_seconds = models.FloatField(default=0.0)
    # Who may work on the job now: one task at a time, even if the broker delivers it twice.
    lease_token = models.CharField(max_length=64, blank=True, default="")
    # While leased: when the lease runs out. Once released: when it was released, so the
    # sweeper can tell a job between two tasks from a job no task will ever pick up.
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    # When a task for the job was last queued (start, resume, continuation, sweep).
    queued_at = models.DateTimeField(null=True, blank=True)
    # Deliveries that started at ``delivery_checkpoint_row`` and never ended: a worker killed
    # on the job (out of memory, say). acks_late hands the task out again and again, so after
    # a few in a row at the same row the job fails instead, keeping its checkpoint.
    unfinished_deliveries = models.PositiveSmallIntegerField(default=0)
    delivery_checkpoint_row = models.PositiveBigIntegerField(default=0)

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["cluster", "collection_name"])]
        permissions = [("operate_upsertjob", "Can upload files and cancel, resume or retry jobs")]

    def __str__(self) -> str:
        return f"Job {self.pk}: {self.original_filename} → {self.collection_name}"

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_JOB_STATUSES


class BatchStatus(models.TextChoices):
    SUCCEEDED = "succeeded", "Succeeded"
    PARTIALLY_FAILED = "partially_failed", "Partially failed"
    FAILED = "failed", "Failed"


class UpsertBatch(models.Model):
    """The saved outcome of one batch of rows sent to the cluster."""

    job = models.ForeignKey(UpsertJob, on_delete=models.CASCADE, related_name="batches")
    sequence = models.PositiveIntegerField()
    first_row = models.PositiveBigIntegerField()
    last_row = models.PositiveBigIntegerField()
    row_count = models.PositiveIntegerField()
    status = models.CharField(max_length=20, choices=BatchStatus.choices)
    attempts = models.PositiveSmallIntegerField(default=1)
    # The ids the cluster returned are in EntityWrite, one indexed row each.
    upsert_count = models.PositiveIntegerField(default=0)
    milvus_code = models.IntegerField(null=True, blank=True)
    milvus_message = models.TextField(blank=True, default="")
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    # Of the duration, what the batch's requests waited for the cluster's rate budget.
    budget_wait_ms = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["job", "sequence"]
        constraints = [
            # A batch is recorded once, even when a redelivered task sends it again.
            models.UniqueConstraint(fields=["job", "sequence"], name="unique_batch_per_job"),
        ]

    def __str__(self) -> str:
        return f"Batch {self.sequence} of job {self.job_id}"


class FailedRow(models.Model):
    """A row of the file that did not land, with the reason, in a shape fit to re-upload."""

    job = models.ForeignKey(UpsertJob, on_delete=models.CASCADE, related_name="failed_rows")
    batch = models.ForeignKey(
        UpsertBatch, null=True, blank=True, on_delete=models.CASCADE, related_name="failed_rows"
    )
    row_number = models.PositiveBigIntegerField()
    reason = models.TextField()
    # The entity as read (JSON), or the raw text of a row that could not be parsed.
    entity = models.JSONField(null=True, blank=True)
    raw = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["job", "row_number"]
        constraints = [
            models.UniqueConstraint(fields=["job", "row_number"], name="unique_failed_row_per_job"),
        ]

    def __str__(self) -> str:
        return f"Row {self.row_number} of job {self.job_id}: {self.reason[:60]}"


class EntityWrite(models.Model):
    """One entity id upserted by one batch: answers "which job last wrote id X?" by index."""

    job = models.ForeignKey(UpsertJob, on_delete=models.CASCADE, related_name="entity_writes")
    batch = models.ForeignKey(UpsertBatch, on_delete=models.CASCADE, related_name="entity_writes")
    # Int64 ids are kept as their decimal text, VarChar ids as they are.
    entity_id = models.CharField(max_length=512)

    class Meta:
        indexes = [models.Index(fields=["entity_id", "job"], name="entity_write_lookup")]

    def __str__(self) -> str:
        return f"{self.entity_id} by job {self.job_id}"


class AuditEventQuerySet(models.QuerySet):
    """Audit events are append-only: bulk updates and deletes are refused."""

    def update(self, **kwargs: Any) -> int:
        raise PermissionError("Audit events are append-only.")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise PermissionError("Audit events are append-only.")


class AuditAction(models.TextChoices):
    CLUSTER_CREATED = "cluster.created", "Cluster created"
    CLUSTER_UPDATED = "cluster.updated", "Cluster updated"
    CLUSTER_DELETED = "cluster.deleted", "Cluster deleted"
    CLUSTER_TESTED = "cluster.tested", "Cluster tested"
    FILE_UPLOADED = "file.uploaded", "File uploaded"
    JOB_STARTED = "job.started", "Job started"
    JOB_FINISHED = "job.finished", "Job finished"
    JOB_CANCELLED = "job.cancelled", "Job cancelled"
    JOB_RETRIED = "job.retried", "Job retried"
    JOB_RESUMED = "job.resumed", "Job resumed"
    JOB_REQUEUED = "job.requeued", "Job requeued by the sweeper"
    LOGIN_FAILED = "login.failed", "Login failed"
    API_TOKEN_CREATED = "api_token.created", "API token created"
    API_TOKEN_REVOKED = "api_token.revoked", "API token revoked"
    RETENTION_PRUNED = "retention.pruned", "Pruned by the retention policy"
    UPLOAD_CREATED = "upload.created", "Resumable upload begun"
    UPLOAD_PART_RECEIVED = "upload.part_received", "Part of an upload received"
    UPLOAD_COMPLETED = "upload.completed", "Resumable upload completed"
    UPLOAD_CANCELLED = "upload.cancelled", "Resumable upload cancelled"
    UPLOAD_EXPIRED = "upload.expired", "Resumable upload expired"
    SOURCE_BUCKET_SAVED = "source_bucket.saved", "Source bucket saved"
    SOURCE_BUCKET_DELETED = "source_bucket.deleted", "Source bucket deleted"
    SOURCE_ADDRESS_SAVED = "source_address.saved", "Source address saved"
    SOURCE_ADDRESS_DELETED = "source_address.deleted", "Source address deleted"


class AuditEvent(models.Model):
    """Who did what to which object, when and from where. Never changed, never deleted."""

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Kept beside the foreign key so the trail still names a user who was deleted.
    actor_username = models.CharField(max_length=150, blank=True, default="")
    action = models.CharField(max_length=40, choices=AuditAction.choices, db_index=True)
    target_type = models.ForeignKey(
        ContentType, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    target_id = models.CharField(max_length=64, blank=True, default="")
    target_repr = models.CharField(max_length=300, blank=True, default="")
    details = models.JSONField(default=dict, blank=True)
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["target_type", "target_id"])]

    def __str__(self) -> str:
        return (
            f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor_username or 'system'} {self.action}"
        )

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise PermissionError("Audit events are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise PermissionError("Audit events are append-only.")


class ApiToken(models.Model):
    """A key a script sends as ``Authorization: Token <key>``; revocable, never kept in clear.

    The key is shown once, when it is made. Only its SHA-256 is stored (the key is 256 random
    bits, so a fast hash is enough), with a short prefix that names it in lists and commands.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100, help_text="What the token is for, e.g. nightly-sync.")
    prefix = models.CharField(max_length=16, unique=True)
    key_hash = models.CharField("key SHA-256", max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Touched at most once a minute, so polling with a token costs no write per request.
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class WorkerHeartbeat(models.Model):
    """Written by a Celery worker on request: proof that the queue and a worker are alive."""

    hostname = models.CharField(max_length=255)
    nonce = models.CharField(max_length=64, unique=True)
    seen_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-seen_at"]

    def __str__(self) -> str:
        return f"{self.hostname} at {self.seen_at:%Y-%m-%d %H:%M:%S}"
