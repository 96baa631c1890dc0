"""Celery tasks: thin wrappers that load ids and call services."""

import socket

from celery import shared_task
from django.conf import settings

from upserts.models import WorkerHeartbeat
from upserts.services.pipeline import SliceOutcome, run_job_slice


@shared_task(name="upserts.record_worker_heartbeat")
def record_worker_heartbeat(nonce: str) -> None:
    """Answer a liveness probe: proves broker → worker → database works end to end."""
    WorkerHeartbeat.objects.get_or_create(nonce=nonce, defaults={"hostname": socket.gethostname()})


@shared_task(name="upserts.run_upsert_job")
def run_upsert_job(job_id: int) -> str:
    """Work on a job for one slice; queue the continuation (or a later try) if it is not done."""
    outcome = run_job_slice(job_id)
    if outcome is SliceOutcome.CONTINUE:
        run_upsert_job.delay(job_id)
    elif outcome is SliceOutcome.BUSY:
        run_upsert_job.apply_async((job_id,), countdown=max(1, settings.UPSERT_LEASE_SECONDS // 4))
    return outcome.value
