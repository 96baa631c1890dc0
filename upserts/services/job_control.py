"""What a person does to a job: start it, cancel it, resume it (retrying its failed rows is a
new submission: ``upserts.services.submissions``).

Each writes an audit event, so the trail answers who did what to which job, and when.
"""

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db import transaction

from upserts.errors import ConsoleError
from upserts.models import AuditAction, JobStatus, UpsertJob
from upserts.services import jobs
from upserts.services.audit import record_event
from upserts.services.uploads import job_summary

Actor = AbstractBaseUser | AnonymousUser | None


class JobActionRefused(ConsoleError):
    """The job is not in a state that allows the action; the message says why."""

    code = "job_action_refused"
    http_status = 409


def file_removed_message(job: UpsertJob) -> str:
    return (
        f"The file of job {job.pk} was removed on {job.file_removed_at:%Y-%m-%d} by the "
        "retention policy (RETAIN_FILES_DAYS after the job ended), so it cannot be read "
        "again; upload the file once more to send it."
    )


def _enqueue(job: UpsertJob) -> None:
    from upserts.tasks import run_upsert_job

    jobs.mark_queued(job.pk)
    transaction.on_commit(lambda: run_upsert_job.delay(job.pk))


def start_job(
    job: UpsertJob,
    *,
    actor: Actor = None,
    client_ip: str | None = None,
    queue: bool = True,
    dry_run: bool = False,
) -> UpsertJob:
    """Start a pending job: queued for a worker once the surrounding transaction has committed,
    or, with ``queue=False``, left to the caller to run in its own process (still audited).

    A ``dry_run`` reads and checks every row and sends none: the job ends with its failed rows
    and their reasons, so a person can fix the file before it touches the cluster.
    """
    if job.status != JobStatus.PENDING:
        raise JobActionRefused(
            f"Job {job.pk} is {job.get_status_display().lower()}; only a pending job starts."
        )
    with transaction.atomic():
        if dry_run:
            job.dry_run = True
            job.save(update_fields=["dry_run"])
        record_event(
            action=AuditAction.JOB_STARTED,
            actor=actor,
            target=job,
            client_ip=client_ip,
            details={**job_summary(job), "runs_in": "a worker" if queue else "the command"},
        )
        if queue:
            _enqueue(job)
    return job


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
    if job.file_removed_at is not None:
        raise JobActionRefused(file_removed_message(job))
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
