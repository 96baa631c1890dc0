"""The rate budget a job's requests take from: its cluster's, in the Redis every host shares."""

import time
from collections.abc import Callable

from django.conf import settings

from upserts.models import UpsertJob
from upserts.rate_budget import ClusterBudget
from upserts.shared_redis import budget_key, budget_waiting_key, redis_client


def budget_for_job(
    job: UpsertJob, *, sleep: Callable[[float], object] = time.sleep
) -> ClusterBudget | None:
    """None when the job's cluster has no cap; ``sleep`` waits for a request's turn."""
    cap = job.cluster.rate_cap
    if not cap.is_capped:
        return None
    return ClusterBudget(
        redis_client(),
        key=budget_key(job.cluster_id),
        cap=cap,
        waiting_key=budget_waiting_key(job.pk),
        recovery_seconds=settings.UPSERT_BUDGET_RECOVERY_SECONDS,
        sleep=sleep,
    )
