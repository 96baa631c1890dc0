"""Celery tasks: thin wrappers that load ids and call services."""

import socket
from typing import Any

from celery import shared_task
from celery.signals import task_prerun
from django.conf import settings
from django.contrib.contenttypes.models import ContentType

from upserts.models import WorkerHeartbeat
from upserts.services import jobs, resumable_uploads, retention, stored_files
from upserts.services.pipeline import SliceOutcome, run_job_slice


@task_prerun.connect
def _forget_content_types(**kwargs: Any) -> None:
    """A worker outlives database restores and flushes, which renumber content types; a
    cached id would make audit events point at nothing (and fail), so each task looks again."""
    ContentType.objects.clear_cache()


@shared_task(name="upserts.record_worker_heartbeat")
def record_worker_heartbeat(nonce: str) -> None:
    """Answer a liveness probe: proves broker → worker → database works end to end."""
    WorkerHeartbeat.objects.get_or_create(nonce=nonce, defaults={"hostname": socket.gethostname()})


@shared_task(name="upserts.run_upsert_job")
def run_upsert_job(job_id: int) -> str:
    """Work on a job for one slice; queue the continuation if it is not done.

    A job another task holds (BUSY) is left to that task: should the holder have died, the
    sweeper queues the job again once its lease has run out.
    """
    outcome = run_job_slice(job_id)
    if outcome is SliceOutcome.CONTINUE:
        jobs.mark_queued(job_id)
        run_upsert_job.delay(job_id)
    return outcome.value


@shared_task(name="upserts.sweep_stale_jobs")
def sweep_stale_jobs() -> list[int]:
    """Queue again the jobs whose worker died or whose task message was lost."""
    claimed = jobs.claim_stale_jobs(grace_seconds=settings.UPSERT_STALE_GRACE_SECONDS)
    for job_id in claimed:
        run_upsert_job.delay(job_id)
    return claimed


@shared_task(name="upserts.remove_orphan_uploads")
def remove_orphan_uploads() -> list[str]:
    """Remove stored files whose job never committed (a web process killed mid-upload)."""
    return stored_files.remove_orphan_uploads(grace_seconds=settings.UPLOAD_ORPHAN_GRACE_SECONDS)


@shared_task(name="upserts.prune_retained")
def prune_retained() -> dict[str, int]:
    """Apply the retention policy (old files, failed rows and entity writes) and remove the
    resumable uploads left unfinished past their expiry."""
    report = retention.prune()
    return {
        "expired_uploads": resumable_uploads.expire_uploads(),
        "files": report.files,
        "failed_rows": report.failed_rows,
        "entity_writes": report.entity_writes,
    }
