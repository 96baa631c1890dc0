"""The one way a file becomes a job: the upload form, the API, the ``upsert`` command and
"retry failed rows" all call ``submit_upload``, so each gets the same checks, the same audit
events and the same transaction.
"""

import enum
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

import orjson

from upserts.column_mapping import ColumnMapping
from upserts.job_limits import DEFAULT_LIMITS, JobLimits
from upserts.models import (
    AuditAction,
    ClusterEndpoint,
    FailedRow,
    ResumableUpload,
    ResumableUploadStatus,
    UpsertJob,
)
from upserts.readers import HEAD_BYTES, FileFormatError, detect_format
from upserts.services.audit import record_event
from upserts.services.job_control import (
    Actor,
    JobActionRefused,
    file_removed_message,
    start_job,
)
from upserts.services.job_files import FileInPlace, ObjectFacts, files_under, find_source
from upserts.services.stored_files import open_stored, upload_storage
from upserts.services.uploads import (
    UploadRejected,
    check_upload_target,
    create_job,
)


class Start(enum.Enum):
    """When the job starts once it is created."""

    AFTER_PREVIEW = "after preview"  # the upload form: a person looks at the preview first
    QUEUED = "queued"  # a worker picks it up as soon as the job is committed
    HERE = "here"  # the caller runs it in its own process (``upsert --here``)


@dataclass(frozen=True)
class UploadTarget:
    """Where a file's rows go, and whether each replaces its entity or, with
    ``partial_update``, changes only the fields it gives."""

    cluster: ClusterEndpoint
    collection_name: str
    database_name: str = ""
    partition_name: str = ""
    partial_update: bool = False

    @classmethod
    def of_job(cls, job: UpsertJob) -> "UploadTarget":
        return cls(
            job.cluster,
            job.collection_name,
            job.database_name,
            job.partition_name,
            job.partial_update,
        )


def submit_upload(
    *,
    source: IO[bytes],
    filename: str,
    target: UploadTarget,
    start: Start,
    limits: JobLimits = DEFAULT_LIMITS,
    mapping: ColumnMapping | None = None,
    dry_run: bool = False,
    actor: Actor = None,
    client_ip: str | None = None,
    retry_of: UpsertJob | None = None,
    stored_name: str | None = None,
    in_place: FileInPlace | None = None,
    facts: ObjectFacts | None = None,
    and_then: Callable[[UpsertJob], object] | None = None,
) -> UpsertJob:
    """Check the target with the cluster, store and check the file, create the job and audit
    it; with ``start`` other than ``AFTER_PREVIEW`` also start it (as a check that sends
    nothing, with ``dry_run``).

    The job, its ``file.uploaded`` and its ``job.started`` events commit together (the file
    is stored just before and removed if they do not), so no job is ever left created but
    not started, nor started without its events; ``and_then(job)`` runs in that transaction
    too, for a caller's own event. Raises ``UploadRejected`` saying what the
    person who sent the file can do about it.
    """
    schema = check_upload_target(
        cluster=target.cluster,
        collection_name=target.collection_name,
        database_name=target.database_name,
        partition_name=target.partition_name,
        partial_update=target.partial_update,
    )
    mapping = mapping or ColumnMapping()
    problems = mapping.problems_with(schema)
    if problems:
        raise UploadRejected(" ".join(problems))

    def started(job: UpsertJob) -> None:
        if start is not Start.AFTER_PREVIEW:
            start_job(
                job,
                actor=actor,
                client_ip=client_ip,
                queue=start is Start.QUEUED,
                dry_run=dry_run,
            )
        if and_then is not None:
            and_then(job)

    return create_job(
        source=source,
        filename=filename,
        cluster=target.cluster,
        collection_name=target.collection_name,
        database_name=target.database_name,
        partition_name=target.partition_name,
        batch_size=limits.batch_size,
        max_in_flight=limits.max_in_flight,
        max_batch_bytes=limits.max_batch_bytes,
        actor=actor,
        client_ip=client_ip,
        retry_of=retry_of,
        column_mapping=mapping.to_json(),
        partial_update=target.partial_update,
        stored_name=stored_name,
        in_place=in_place,
        facts=facts,
        then=started,
    )


def retry_failed_rows(
    job: UpsertJob, *, actor: Actor = None, client_ip: str | None = None
) -> UpsertJob:
    """A new job, to the same target and with the same limits, from the failed rows that were
    read as entities.

    Rows that could not even be parsed (a broken JSON line, say) would fail the same way
    again; they stay in the failed-rows download for a person to fix.
    """
    if not job.is_final:
        raise JobActionRefused(f"Job {job.pk} is still {job.status}; retry once it has ended.")
    if job.failed_rows_removed_at is not None:
        raise JobActionRefused(
            f"The failed rows of job {job.pk} were removed on "
            f"{job.failed_rows_removed_at:%Y-%m-%d} by the retention policy "
            "(RETAIN_FAILED_ROWS_DAYS after the job ended), so there is nothing to send again."
        )
    entities = FailedRow.objects.filter(job=job, entity__isnull=False).order_by("row_number")
    content = io.BytesIO()
    rows = 0
    for entity in entities.values_list("entity", flat=True).iterator(chunk_size=2000):
        content.write(orjson.dumps(entity) + b"\n")
        rows += 1
    if not rows:
        raise JobActionRefused(f"Job {job.pk} has no failed rows that can be sent again.")
    content.seek(0)
    return submit_upload(
        source=content,
        filename=f"job-{job.pk}-failed-rows.jsonl",
        target=UploadTarget.of_job(job),
        start=Start.QUEUED,
        limits=JobLimits.of_job(job),
        mapping=ColumnMapping.from_json(job.column_mapping),
        actor=actor,
        client_ip=client_ip,
        retry_of=job,
        and_then=lambda retry: record_event(
            action=AuditAction.JOB_RETRIED,
            actor=actor,
            target=retry,
            client_ip=client_ip,
            details={"retry_of": job.pk, "rows": rows},
        ),
    )


def send_checked_file(
    job: UpsertJob, *, actor: Actor = None, client_ip: str | None = None
) -> UpsertJob:
    """A job that sends the file a finished check read, to the same target, with the same
    mapping and limits."""
    if not (job.dry_run and job.is_final):
        raise JobActionRefused(f"Job {job.pk} is not a finished check of a file.")
    if job.file_removed_at is not None:
        raise JobActionRefused(file_removed_message(job))
    options: dict[str, Any] = {
        "target": UploadTarget.of_job(job),
        "start": Start.QUEUED,
        "limits": JobLimits.of_job(job),
        "mapping": ColumnMapping.from_json(job.column_mapping),
        "actor": actor,
        "client_ip": client_ip,
    }
    if not job.source_file.name and job.source_reference:
        return submit_object(job.source_reference, **options)
    with open_stored(job.source_file.name) as source:
        return submit_upload(source=source, filename=job.original_filename, **options)


def submit_resumable_upload(
    upload: ResumableUpload,
    *,
    target: UploadTarget,
    start: Start,
    limits: JobLimits = DEFAULT_LIMITS,
    mapping: ColumnMapping | None = None,
    dry_run: bool = False,
    actor: Actor = None,
    client_ip: str | None = None,
) -> UpsertJob:
    """A job of a finished resumable upload, its stored file used where it lies."""
    if upload.status != ResumableUploadStatus.COMPLETE:
        raise JobActionRefused(
            f"The upload of {upload.filename} is {upload.get_status_display().lower()} "
            f"({upload.offset:,} of {upload.length:,} bytes); only a finished upload becomes "
            "a job."
        )

    def submitted(job: UpsertJob) -> None:
        updated = ResumableUpload.objects.filter(
            pk=upload.pk, status=ResumableUploadStatus.COMPLETE
        ).update(status=ResumableUploadStatus.SUBMITTED, job=job)
        if not updated:
            raise JobActionRefused(f"The upload of {upload.filename} is a job already.")

    with open_stored(upload.storage_name) as source:
        job = submit_upload(
            source=source,
            filename=upload.filename,
            target=target,
            start=start,
            limits=limits,
            mapping=mapping,
            dry_run=dry_run,
            actor=actor,
            client_ip=client_ip,
            stored_name=upload.storage_name,
            and_then=submitted,
        )
    if job.source_file.name != upload.storage_name:
        # Gzip Parquet is stored decompressed: the upload as sent is not needed any more.
        upload_storage().delete(upload.storage_name)
    return job


def submit_object(
    reference: str,
    *,
    target: UploadTarget,
    start: Start,
    limits: JobLimits = DEFAULT_LIMITS,
    mapping: ColumnMapping | None = None,
    dry_run: bool = False,
    actor: Actor = None,
    client_ip: str | None = None,
) -> UpsertJob:
    """A job of a file where it lies: ``s3://bucket/key`` in an allowed bucket, or an
    https:// address under an allowed prefix.

    The file is read once here, as an upload is, for its SHA-256, its format and its first
    rows; the job records its ETag and size, so the audit says exactly what was read.
    """
    place = find_source(reference)
    facts = place.facts()
    with place.open(size=facts.size) as stream:
        return submit_upload(
            source=stream,
            filename=place.filename,
            target=target,
            start=start,
            limits=limits,
            mapping=mapping,
            dry_run=dry_run,
            actor=actor,
            client_ip=client_ip,
            in_place=place,
            facts=facts,
        )


def submit_objects_under(
    prefix: str,
    *,
    target: UploadTarget,
    limits: JobLimits = DEFAULT_LIMITS,
    mapping: ColumnMapping | None = None,
    dry_run: bool = False,
    actor: Actor = None,
    client_ip: str | None = None,
) -> list[UpsertJob]:
    """A queued job of each file under ``s3://bucket/prefix/``, in key order.

    One job a file keeps each file's checks, failures and retry its own. The files must be of
    one format, which their names and first bytes say before any job is made; then each is
    submitted as one object is, and a file refused stops the rest, saying which it was.
    """
    places = files_under(prefix)
    formats = {}
    for place in places:
        with place.open() as stream:
            try:
                formats[place.reference] = detect_format(place.filename, stream.read(HEAD_BYTES))
            except FileFormatError as exc:
                raise UploadRejected(f"{place.reference}: {exc}") from exc
    kinds = {found.file_format for found in formats.values()}
    if len(kinds) > 1:
        raise UploadRejected(
            f"{prefix} holds files of several formats ({', '.join(sorted(kinds))}); a prefix "
            "becomes jobs of one format. Name a narrower prefix, or the files one by one."
        )
    jobs: list[UpsertJob] = []
    for place in places:
        try:
            jobs.append(
                submit_object(
                    place.reference,
                    target=target,
                    start=Start.QUEUED,
                    limits=limits,
                    mapping=mapping,
                    dry_run=dry_run,
                    actor=actor,
                    client_ip=client_ip,
                )
            )
        except UploadRejected as exc:
            made = f" Jobs {', '.join(str(job.pk) for job in jobs)} were made." if jobs else ""
            raise UploadRejected(f"{place.reference}: {exc}{made}") from exc
    return jobs
