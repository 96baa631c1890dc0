"""The rate budget of a job's cluster, in the Redis every worker shares."""

from functools import lru_cache
from typing import Any

import redis
from django.conf import settings

from upserts.models import ClusterEndpoint, UpsertJob
from upserts.rate_budget import ClusterBudget, RateCap

MEGABYTE = 1024 * 1024


@lru_cache(maxsize=4)
def _redis(url: str) -> Any:
    # One connection pool per process (redis-py starts a new one in a forked child).
    return redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5)


def redis_client() -> Any:
    return _redis(settings.REDIS_URL)


def cluster_cap(cluster: ClusterEndpoint) -> RateCap:
    mb = cluster.max_mb_per_second
    return RateCap(
        bytes_per_second=mb * MEGABYTE if mb else None,
        requests_per_second=cluster.max_requests_per_second or None,
    )


def budget_key(cluster_id: int) -> str:
    return f"{settings.REDIS_KEY_PREFIX}:budget:cluster:{cluster_id}"


def waiting_key(job_id: int) -> str:
    return f"{settings.REDIS_KEY_PREFIX}:budget:waiting:job:{job_id}"


def budget_for_job(job: UpsertJob) -> ClusterBudget | None:
    """The budget the job's requests take from; None when its cluster has no cap."""
    cap = cluster_cap(job.cluster)
    if not cap.is_capped:
        return None
    return ClusterBudget(
        redis_client(),
        key=budget_key(job.cluster_id),
        cap=cap,
        waiting_key=waiting_key(job.pk),
        recovery_seconds=settings.UPSERT_BUDGET_RECOVERY_SECONDS,
    )
