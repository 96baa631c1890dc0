"""Celery tasks: thin wrappers that load ids and call services."""

import socket

from celery import shared_task

from upserts.models import WorkerHeartbeat


@shared_task(name="upserts.record_worker_heartbeat")
def record_worker_heartbeat(nonce: str) -> None:
    """Answer a liveness probe: proves broker → worker → database works end to end."""
    WorkerHeartbeat.objects.get_or_create(nonce=nonce, defaults={"hostname": socket.gethostname()})
