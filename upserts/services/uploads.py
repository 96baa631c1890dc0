"""Turning an uploaded entity file into a pending upsert job, and starting it."""

import hashlib
from collections.abc import Callable
from typing import IO, Any, BinaryIO, cast

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.core.files import File
from django.db import transaction

from upserts.column_mapping import ColumnMapping
from upserts.errors import ConsoleError
from upserts.milvus.errors import ClusterError
from upserts.milvus.schema import CollectionSchema
from upserts.models import AuditAction, ClusterEndpoint, JobStatus, UpsertJob
from upserts.preview import estimate_rows
from upserts.readers import (
    HEAD_BYTES,
    FileFormatError,
    detect_format,
    open_byte_stream,
    spool_to_temporary_file,
)
from upserts.services.audit import record_event
from upserts.services.clusters import describe_collection, partial_update_problem
from upserts.services.job_files import FileInPlace, ObjectFacts
from upserts.validation.collections import blocking_schema_problems

_HASH_CHUNK = 1024 * 1024


class UploadRejected(ConsoleError):
    """The file cannot become a job; the message says why, for the person who sent it."""

    code = "upload_rejected"


def _size_and_sha256(source: IO[bytes]) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    source.seek(0)
    while chunk := source.read(_HASH_CHUNK):
        digest.update(chunk)
        size += len(chunk)
    source.seek(0)
    return size, digest.hexdigest()


def check_upload_target(
    *,
    cluster: ClusterEndpoint,
    collection_name: str,
    database_name: str = "",
    partition_name: str = "",
    partial_update: bool = False,
) -> CollectionSchema:
    """The target collection's schema, if it can take upserts at all (and updates of only the
    fields a file gives, with ``partial_update``).

    What the cluster's settings alone rule out is refused first, without a request; then the
    cluster is asked, so a missing collection or an autoID collection (which Milvus never lets
    anyone upsert into) is refused when the file is sent instead of failing a job later.
    """
    if not cluster.is_enabled:
        raise UploadRejected(f"Cluster {cluster.name} is disabled; it takes no new jobs.")
    if cluster.api_version == ClusterEndpoint.ApiVersion.V1 and partition_name:
        raise UploadRejected("The v1 REST API cannot upsert into a partition; leave it empty.")
    try:
        schema = describe_collection(cluster, collection_name, database_name)
    except ClusterError as exc:
        raise UploadRejected(
            f"Cannot use collection {collection_name} on {cluster.name}: {exc}"
        ) from exc
    problems = blocking_schema_problems(schema)
    if problems:
        raise UploadRejected(" ".join(problems))
    if partial_update:
        problem = partial_update_problem(cluster)
        if problem:
            raise UploadRejected(f"{problem}.")
    return schema


def set_column_mapping(job: UpsertJob, mapping: ColumnMapping) -> UpsertJob:
    """The mapping a pending job will send with, once it fits the collection.

    Not audited on its own: the job's start records the mapping it starts with.
    """
    if job.status != JobStatus.PENDING:
        raise UploadRejected(f"Job {job.pk} has started; its column mapping is fixed.")
    schema = check_upload_target(
        cluster=job.cluster,
        collection_name=job.collection_name,
        database_name=job.database_name,
        partition_name=job.partition_name,
    )
    problems = mapping.problems_with(schema)
    if problems:
        raise UploadRejected(" ".join(problems))
    updated = UpsertJob.objects.filter(pk=job.pk, status=JobStatus.PENDING).update(
        column_mapping=mapping.to_json()
    )
    if not updated:
        raise UploadRejected(f"Job {job.pk} has started; its column mapping is fixed.")
    job.column_mapping = mapping.to_json()
    return job


def create_job(
    *,
    source: IO[bytes],
    filename: str,
    cluster: ClusterEndpoint,
    collection_name: str,
    database_name: str = "",
    partition_name: str = "",
    batch_size: int = 500,
    max_in_flight: int = 2,
    max_batch_bytes: int | None = None,
    actor: AbstractBaseUser | AnonymousUser | None = None,
    client_ip: str | None = None,
    retry_of: UpsertJob | None = None,
    column_mapping: dict[str, str | None] | None = None,
    partial_update: bool = False,
    stored_name: str | None = None,
    in_place: "FileInPlace | None" = None,
    facts: "ObjectFacts | None" = None,
    then: Callable[[UpsertJob], None] | None = None,
) -> UpsertJob:
    """Store the file, fingerprint it and detect its format; the job waits in ``pending``.

    Everything a person can get wrong about the file itself (empty, too big, not a format we
    read) is refused here, before anything is stored or started; the target is checked before,
    by ``check_upload_target``. ``then`` runs in the job's
    own transaction (``submit_upload`` starts the job there). ``stored_name`` is where
    ``source`` already lies in the upload storage (a resumable upload): it becomes the job's
    file as it is, never copied, and is left in place if the job is refused. Entry points call
    ``upserts.services.submissions.submit_upload``, which checks the target first.
    """
    size, sha256 = _size_and_sha256(source)
    if size == 0:
        raise UploadRejected(f"{filename} is empty.")
    if size > settings.UPLOAD_MAX_BYTES:
        raise UploadRejected(
            f"{filename} is {size:,} bytes; the largest file accepted is "
            f"{settings.UPLOAD_MAX_BYTES:,} bytes."
        )
    head = source.read(HEAD_BYTES)
    source.seek(0)
    decompressed: IO[bytes] | None = None
    try:
        detected = detect_format(filename, head)
        stored, target_name, gzipped = source, filename, detected.gzipped
        if detected.file_format == "parquet" and detected.gzipped:
            # Parquet keeps its table of contents at the end, which a gzip stream cannot seek
            # to: decompressed once here, the job keeps plain Parquet, and neither preview
            # nor worker ever copies it again.
            stored = decompressed = _decompressed(source, filename)
            target_name = filename[:-3] if filename.lower().endswith(".gz") else filename
            gzipped = False
        estimated_rows = estimate_rows(
            stored,
            file_format=detected.file_format,
            gzipped=gzipped,
            size_bytes=size,
            filename=filename,
        )
        job = UpsertJob(
            cluster=cluster,
            database_name=database_name or cluster.default_database,
            collection_name=collection_name,
            partition_name=partition_name,
            original_filename=filename[:255],
            size_bytes=size,
            sha256=sha256,
            file_format=detected.file_format,
            is_gzipped=gzipped,
            estimated_rows=estimated_rows,
            batch_size=batch_size,
            max_in_flight=max_in_flight,
            retry_of=retry_of,
            column_mapping=column_mapping or {},
            partial_update=partial_update,
            created_by=actor if isinstance(actor, AbstractBaseUser) else None,  # type: ignore[misc]
        )
        if max_batch_bytes is not None:
            job.max_batch_bytes = max_batch_bytes
        job.full_clean(exclude=["source_file", "created_by"])
        if in_place is not None:
            job.source_reference = in_place.reference
            job.source_bucket = in_place.bucket
            job.source_address = in_place.address
            job.source_etag = facts.etag if facts is not None else ""
        details = job_summary(job)
        if decompressed is not None:
            details["decompressed_at_upload"] = True
        already_stored = (stored_name is not None or in_place is not None) and decompressed is None
        if already_stored:
            job.source_file.name = stored_name or ""
        else:
            # Stored before the transaction, so a copy of many gigabytes holds no database
            # lock; removed again when the job is not committed.
            job.source_file.save(target_name, File(stored), save=False)
        try:
            with transaction.atomic():
                job.save()
                record_event(
                    action=AuditAction.FILE_UPLOADED,
                    actor=actor,
                    target=job,
                    client_ip=client_ip,
                    details=details,
                )
                if then is not None:
                    then(job)
        except BaseException:
            # The job was not committed: its file would belong to nobody. (A process killed
            # before the commit leaves it behind: remove_orphan_uploads takes it later.)
            if not already_stored:
                job.source_file.storage.delete(job.source_file.name)
            raise
    except FileFormatError as exc:
        raise UploadRejected(str(exc)) from exc
    finally:
        if decompressed is not None:
            decompressed.close()
    return job


def _decompressed(source: IO[bytes], filename: str) -> IO[bytes]:
    stream = open_byte_stream(
        cast(BinaryIO, source),
        gzipped=True,
        filename=filename,
        max_decompressed_bytes=settings.UPLOAD_MAX_DECOMPRESSED_BYTES,
    )
    try:
        return spool_to_temporary_file(stream)
    finally:
        stream.close()
        source.seek(0)


def job_summary(job: UpsertJob) -> dict[str, Any]:
    return {
        "file": job.original_filename,
        "size_bytes": job.size_bytes,
        "sha256": job.sha256,
        "format": job.file_format + (".gz" if job.is_gzipped else ""),
        "cluster": job.cluster.name,
        "api": job.cluster.api_version,
        "database": job.database_name,
        "collection": job.collection_name,
        "partition": job.partition_name,
        **({"mapping": job.column_mapping} if job.column_mapping else {}),
        **(
            {"source": job.source_reference, "etag": job.source_etag}
            if job.source_reference
            else {}
        ),
        **({"dry_run": True} if job.dry_run else {}),
        **({"partial_update": True} if job.partial_update else {}),
    }
