"""What a person does to a job: start it, cancel it, resume it, retry its failed rows.

Each writes an audit event, so the trail answers who did what to which job, and when.
"""

import io

import orjson
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db import transaction

from upserts.models import AuditAction, FailedRow, JobStatus, UpsertJob
from upserts.services import jobs
from upserts.services.audit import record_event
from upserts.services.uploads import create_job, job_summary

Actor = AbstractBaseUser | AnonymousUser | None


class JobActionRefused(Exception):
    """The job is not in a state that allows the action; the message says why."""


def _enqueue(job: UpsertJob) -> None:
    from upserts.tasks import run_upsert_job

    jobs.mark_queued(job.pk)
    transaction.on_commit(lambda: run_upsert_job.delay(job.pk))


def start_job(job: UpsertJob, *, actor: Actor = None, client_ip: str | None = None) -> None:
    """Queue a pending job for a worker once the surrounding transaction has committed."""
    if job.status != JobStatus.PENDING:
        raise JobActionRefused(
            f"Job {job.pk} is {job.get_status_display().lower()}; only a pending job starts."
        )
    record_event(
        action=AuditAction.JOB_STARTED,
        actor=actor,
        target=job,
        client_ip=client_ip,
        details=job_summary(job),
    )
    _enqueue(job)


def cancel_job(job: UpsertJob, *, actor: Actor = None, client_ip: str | None = None) -> UpsertJob:
    """A job not yet picked up is cancelled now; a running one stops after its current batch."""
    if job.is_final:
        raise JobActionRefused(f"Job {job.pk} has already {job.get_status_display().lower()}.")
    UpsertJob.objects.filter(pk=job.pk).update(cancel_requested=True)
    job.refresh_from_db()
    if job.status == JobStatus.PENDING:
        try:
            jobs.mark_cancelled(job)
        except jobs.IllegalJobTransition:
            job.refresh_from_db()  # a worker took it meanwhile: it will see the request
    record_event(
        action=AuditAction.JOB_CANCELLED,
        actor=actor,
        target=job,
        client_ip=client_ip,
        details={"status": job.status, "rows_upserted": job.rows_upserted},
    )
    return job


def resume_job(job: UpsertJob, *, actor: Actor = None, client_ip: str | None = None) -> UpsertJob:
    """A failed job carries on from its checkpoint: rows already saved are not sent again."""
    if job.status != JobStatus.FAILED:
        raise JobActionRefused(f"Only a failed job can be resumed; job {job.pk} is {job.status}.")
    jobs.mark_resumed(job)
    record_event(
        action=AuditAction.JOB_RESUMED,
        actor=actor,
        target=job,
        client_ip=client_ip,
        details={"from_row": job.checkpoint_row + 1},
    )
    _enqueue(job)
    return job


def retry_failed_rows(
    job: UpsertJob, *, actor: Actor = None, client_ip: str | None = None
) -> UpsertJob:
    """A new job, to the same target, from the failed rows that were read as entities.

    Rows that could not even be parsed (a broken JSON line, say) would fail the same way
    again; they stay in the failed-rows download for a person to fix.
    """
    if not job.is_final:
        raise JobActionRefused(f"Job {job.pk} is still {job.status}; retry once it has ended.")
    entities = FailedRow.objects.filter(job=job, entity__isnull=False).order_by("row_number")
    content = io.BytesIO()
    rows = 0
    for entity in entities.values_list("entity", flat=True).iterator(chunk_size=2000):
        content.write(orjson.dumps(entity) + b"\n")
        rows += 1
    if not rows:
        raise JobActionRefused(f"Job {job.pk} has no failed rows that can be sent again.")
    content.seek(0)
    retry = create_job(
        source=content,
        filename=f"job-{job.pk}-failed-rows.jsonl",
        cluster=job.cluster,
        collection_name=job.collection_name,
        database_name=job.database_name,
        partition_name=job.partition_name,
        batch_size=job.batch_size,
        max_in_flight=job.max_in_flight,
        max_batch_bytes=job.max_batch_bytes,
        actor=actor,
        client_ip=client_ip,
        retry_of=job,
    )
    record_event(
        action=AuditAction.JOB_RETRIED,
        actor=actor,
        target=retry,
        client_ip=client_ip,
        details={"retry_of": job.pk, "rows": rows},
    )
    start_job(retry, actor=actor, client_ip=client_ip)
    return retry
