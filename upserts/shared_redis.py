"""The Redis every web and worker host shares, for what is not in the database: the clusters'
rate budgets, and which jobs wait for theirs. Its keys sit under ``REDIS_KEY_PREFIX``."""

from functools import lru_cache

import redis
from django.conf import settings


@lru_cache(maxsize=4)
def _connect(url: str) -> redis.Redis:
    # One connection pool per process and URL; redis-py starts a new one in a forked child.
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)


def redis_client() -> redis.Redis:
    return _connect(settings.REDIS_URL)


def budget_key(cluster_id: int) -> str:
    return f"{settings.REDIS_KEY_PREFIX}:budget:cluster:{cluster_id}"


def budget_waiting_key(job_id: int) -> str:
    return f"{settings.REDIS_KEY_PREFIX}:budget:waiting:job:{job_id}"
