"""Moving upsert jobs through their state machine.

Every status change is one conditional UPDATE (``WHERE status IN <legal sources>``), so two
processes racing on the same job cannot both move it, and no code path can set a status the
state machine does not allow.
"""

from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from upserts.errors import ConsoleError
from upserts.models import AuditAction, JobStatus, UpsertJob, statuses_that_may_become
from upserts.services.audit import record_event


class IllegalJobTransition(ConsoleError):
    """The job is not in a status from which the requested one can be reached (a race with a
    worker or another person, say)."""

    code = "job_action_refused"
    http_status = 409


class LeaseLost(Exception):
    """Our lease ran out and another task took the job: stop without changing it."""


def _transition(
    job: UpsertJob, to: str, *, lease_token: str | None = None, **fields: Any
) -> UpsertJob:
    """Move the job to ``to``; with ``lease_token``, only while that lease holds the job.

    A task's lease can run out while it waits (a cluster retried for longer than the lease):
    the task the sweeper then hands the job to, or a person's resume, must not be overruled
    by the stalled task ending the job when it wakes.
    """
    sources = statuses_that_may_become(to)
    held = Q(lease_token=lease_token) if lease_token is not None else Q()
    updated = UpsertJob.objects.filter(held, pk=job.pk, status__in=sources).update(
        status=to, **fields
    )
    if not updated:
        current = UpsertJob.objects.filter(pk=job.pk).values("status", "lease_token").first()
        if current and lease_token is not None and current["lease_token"] != lease_token:
            raise LeaseLost(f"Job {job.pk} is held by another task; it was not made {to}.")
        status = current["status"] if current else "gone"
        raise IllegalJobTransition(f"Job {job.pk} is {status}; it cannot become {to}.")
    job.refresh_from_db()
    return job


def mark_validating(job: UpsertJob, *, lease_token: str | None = None) -> UpsertJob:
    return _transition(
        job,
        JobStatus.VALIDATING,
        lease_token=lease_token,
        started_at=job.started_at or timezone.now(),
    )


def mark_running(job: UpsertJob, *, lease_token: str | None = None) -> UpsertJob:
    return _transition(job, JobStatus.RUNNING, lease_token=lease_token)


def mark_finished(job: UpsertJob, *, lease_token: str | None = None) -> UpsertJob:
    """Succeeded when no row failed, partially failed when some did, failed when all did.

    A check (``dry_run``) sends nothing, so its rows that passed the checks count as landed.
    """
    job.refresh_from_db(fields=["rows_failed", "rows_upserted", "rows_read", "dry_run"])
    if not job.rows_failed:
        return _transition(
            job, JobStatus.SUCCEEDED, lease_token=lease_token, finished_at=timezone.now()
        )
    if job.dry_run and job.rows_read > job.rows_failed:
        return _transition(
            job, JobStatus.PARTIALLY_FAILED, lease_token=lease_token, finished_at=timezone.now()
        )
    if job.dry_run:
        return _transition(
            job,
            JobStatus.FAILED,
            lease_token=lease_token,
            finished_at=timezone.now(),
            error_message=f"Every row failed the checks ({job.rows_failed:,}); see the failed "
            "rows. Nothing was sent.",
        )
    if job.rows_upserted:
        return _transition(
            job, JobStatus.PARTIALLY_FAILED, lease_token=lease_token, finished_at=timezone.now()
        )
    return _transition(
        job,
        JobStatus.FAILED,
        lease_token=lease_token,
        finished_at=timezone.now(),
        error_message=f"No row landed: all {job.rows_failed:,} rows failed; see the failed rows.",
    )


def mark_failed(job: UpsertJob, message: str, *, lease_token: str | None = None) -> UpsertJob:
    return _transition(
        job,
        JobStatus.FAILED,
        lease_token=lease_token,
        error_message=message,
        finished_at=timezone.now(),
    )


def mark_cancelled(job: UpsertJob, *, lease_token: str | None = None) -> UpsertJob:
    return _transition(
        job, JobStatus.CANCELLED, lease_token=lease_token, finished_at=timezone.now()
    )


def mark_resumed(job: UpsertJob) -> UpsertJob:
    """A failed job goes back to pending and keeps its checkpoint, to carry on where it stopped."""
    return _transition(
        job, JobStatus.PENDING, error_message="", finished_at=None, unfinished_deliveries=0
    )


def acquire_lease(job_id: int, *, token: str, seconds: float) -> bool:
    """Take (or extend) the right to work on a job; False while another holder's lease runs.

    Redis can deliver the same task twice (a visibility timeout, a lost ack); the lease makes
    sure only one delivery sends batches at a time.
    """
    now = timezone.now()
    free_or_ours = (
        Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now) | Q(lease_token=token)
    )
    return bool(
        UpsertJob.objects.filter(free_or_ours, pk=job_id).update(
            lease_token=token, lease_expires_at=now + timedelta(seconds=seconds)
        )
    )


def renew_lease(job_id: int, *, token: str, seconds: float) -> bool:
    """Extend our own lease; False once another task holds (or has held) the job, even if it
    has since let it go: its batches may be past ours."""
    return bool(
        UpsertJob.objects.filter(pk=job_id, lease_token=token).update(
            lease_expires_at=timezone.now() + timedelta(seconds=seconds)
        )
    )


def release_lease(job_id: int, *, token: str) -> None:
    """Give the job up; a delivery that gets here ended, so it no longer counts as a stop."""
    UpsertJob.objects.filter(pk=job_id, lease_token=token).update(
        lease_token="", lease_expires_at=timezone.now(), unfinished_deliveries=0
    )


def count_delivery(job: UpsertJob, *, token: str) -> int:
    """Count this delivery as begun at the job's checkpoint; the deliveries before it that
    began at that same row and never ended (their worker was killed) come back.

    Called under our lease, so no other task changes these fields meanwhile. A delivery that
    moved the checkpoint before it died starts a new count: only stops at one row add up.
    """
    at_same_row = job.delivery_checkpoint_row == job.checkpoint_row
    earlier = job.unfinished_deliveries if at_same_row else 0
    UpsertJob.objects.filter(pk=job.pk, lease_token=token).update(
        unfinished_deliveries=earlier + 1, delivery_checkpoint_row=job.checkpoint_row
    )
    job.unfinished_deliveries = earlier + 1
    job.delivery_checkpoint_row = job.checkpoint_row
    return earlier


def claim_stale_jobs(*, grace_seconds: float) -> list[int]:
    """Jobs that should be moving but that no task holds or will pick up; claimed for requeue.

    A job is stale when it is running or validating, or pending after a start, and neither a
    lease nor a queued task has touched it for ``grace_seconds``: its worker died (the lease
    ran out) or its task message was lost (a broker restarted without persistence). Claiming
    is a conditional update, so two sweepers never queue the same job twice; each claim is an
    audit event, so the trail says when a job was picked up again and from which row.
    """
    now = timezone.now()
    cutoff = now - timedelta(seconds=grace_seconds)
    idle = (Q(lease_expires_at__lt=cutoff) | Q(lease_expires_at__isnull=True)) & (
        Q(queued_at__lt=cutoff) | Q(queued_at__isnull=True)
    )
    moving = Q(status__in=[JobStatus.VALIDATING, JobStatus.RUNNING]) | Q(
        status=JobStatus.PENDING, queued_at__isnull=False
    )
    claimed = []
    for job in UpsertJob.objects.filter(moving & idle):
        with transaction.atomic():
            if UpsertJob.objects.filter(idle, pk=job.pk).update(queued_at=now):
                claimed.append(job.pk)
                record_event(
                    action=AuditAction.JOB_REQUEUED,
                    target=job,
                    details={
                        "status": job.status,
                        "checkpoint_row": job.checkpoint_row,
                        "idle_seconds": grace_seconds,
                    },
                )
    return claimed


def mark_queued(job_id: int) -> None:
    UpsertJob.objects.filter(pk=job_id).update(queued_at=timezone.now())
