"""Read-only queries shared by the pages and the API."""

import ipaddress
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, TypeVar

import redis
from django.contrib.auth import get_user_model
from django.db.models import Count, Min, Q, QuerySet
from django.utils import timezone

from upserts.models import (
    ApiToken,
    AuditEvent,
    ClusterEndpoint,
    EntityWrite,
    FailedRow,
    JobStatus,
    UpsertBatch,
    UpsertJob,
)
from upserts.shared_redis import budget_waiting_key, redis_client


def recent_jobs(*, limit: int = 20) -> QuerySet[UpsertJob]:
    return UpsertJob.objects.select_related("cluster", "created_by").order_by("-created_at")[:limit]


def cluster_list() -> QuerySet[ClusterEndpoint]:
    return ClusterEndpoint.objects.order_by("name")


def entity_writes(
    *,
    entity_id: str,
    collection_name: str,
    cluster: ClusterEndpoint | None = None,
    database_name: str | None = None,
) -> QuerySet[EntityWrite]:
    """The batches that upserted an entity id into a collection, the last write first."""
    writes = EntityWrite.objects.filter(
        entity_id=entity_id.strip(), job__collection_name=collection_name
    )
    if cluster is not None:
        writes = writes.filter(job__cluster=cluster)
    if database_name:
        writes = writes.filter(job__database_name=database_name)
    return writes.select_related("job", "job__cluster", "job__created_by", "batch").order_by(
        "-batch__created_at", "-id"
    )


@dataclass(frozen=True)
class JobProgress:
    percent: float | None
    rows_per_second: float | None
    eta_seconds: float | None


def job_progress(job: UpsertJob, *, now: datetime | None = None) -> JobProgress:
    """Progress from the counters alone (no query): percent of the estimate, rate, ETA."""
    total = job.estimated_rows
    if job.is_final and job.status in (JobStatus.SUCCEEDED, JobStatus.PARTIALLY_FAILED):
        percent: float | None = 100.0
    elif total:
        percent = min(99.9, 100.0 * job.rows_read / total)
    else:
        percent = None
    rate = None
    if job.started_at is not None:
        end = job.finished_at or now or timezone.now()
        elapsed = (end - job.started_at).total_seconds()
        if elapsed > 0 and job.rows_read:
            rate = job.rows_read / elapsed
    eta = None
    if not job.is_final and rate and total and total > job.rows_read:
        eta = (total - job.rows_read) / rate
    return JobProgress(percent=percent, rows_per_second=rate, eta_seconds=eta)


def job_waits_for_budget(job: UpsertJob) -> bool:
    """Whether the job's requests are held back by its cluster's rate budget now (or were in
    the last few seconds: a job paced by the budget waits before most of its requests)."""
    if job.status != JobStatus.RUNNING or not job.cluster.rate_cap.is_capped:
        return False
    try:
        return bool(redis_client().exists(budget_waiting_key(job.pk)))
    except redis.RedisError:
        # The page says what it knows; the worker, which needs Redis, reports its own trouble.
        return False


def throughput_series(job: UpsertJob, *, points: int = 60) -> list[tuple[float, float]]:
    """(seconds since start, rows/s) per time bucket, from the batches' commit times."""
    if job.started_at is None:
        return []
    commits = list(
        job.batches.order_by("created_at").values_list("created_at", "last_row", "first_row")
    )
    if not commits:
        return []
    span = max((commits[-1][0] - job.started_at).total_seconds(), 1.0)
    width = span / points
    buckets = [0] * points
    for created_at, last_row, first_row in commits:
        offset = (created_at - job.started_at).total_seconds()
        buckets[min(points - 1, max(0, int(offset / width)))] += last_row - first_row + 1
    return [(round((i + 1) * width, 2), round(rows / width, 1)) for i, rows in enumerate(buckets)]


def clusters_with_job_counts() -> QuerySet[ClusterEndpoint]:
    """Every cluster with ``job_count``, for the clusters page (one query)."""
    return ClusterEndpoint.objects.annotate(job_count=Count("jobs")).order_by("name")


def enabled_clusters() -> QuerySet[ClusterEndpoint]:
    return ClusterEndpoint.objects.filter(is_enabled=True).order_by("name")


def job_list(
    *,
    status: str = "",
    cluster: ClusterEndpoint | None = None,
    collection_name: str = "",
    username: str = "",
    created_from: date | None = None,
    created_to: date | None = None,
    search: str = "",
) -> QuerySet[UpsertJob]:
    """Jobs, newest first, narrowed by whichever filters are given.

    ``search`` matches the file name, the collection, the SHA-256 prefix or the job number.
    Dates are whole days in the console's time zone, both ends included.
    """
    jobs = UpsertJob.objects.select_related("cluster", "created_by")
    if status:
        jobs = jobs.filter(status=status)
    if cluster is not None:
        jobs = jobs.filter(cluster=cluster)
    if collection_name:
        jobs = jobs.filter(collection_name=collection_name.strip())
    if username:
        jobs = jobs.filter(created_by__username=username.strip())
    jobs = _created_between(jobs, created_from, created_to)
    search = search.strip()
    if search:
        matches = (
            Q(original_filename__icontains=search)
            | Q(collection_name__icontains=search)
            | Q(sha256__startswith=search.lower())
        )
        if search.lstrip("#").isdigit():
            matches |= Q(pk=int(search.lstrip("#")))
        jobs = jobs.filter(matches)
    return jobs.order_by("-created_at", "-id")


def job_detail(pk: int) -> UpsertJob:
    """One job with its cluster, creator and the job it retries, in one query: all a page or
    a poller of the job needs. Raises UpsertJob.DoesNotExist."""
    return UpsertJob.objects.select_related("cluster", "created_by", "retry_of").get(pk=pk)


def job_retries(job: UpsertJob) -> QuerySet[UpsertJob]:
    return UpsertJob.objects.filter(retry_of=job).order_by("created_at", "id")


def job_batches(job: UpsertJob) -> QuerySet[UpsertBatch]:
    return UpsertBatch.objects.filter(job=job).order_by("sequence")


@dataclass(frozen=True)
class FailureReason:
    reason: str
    rows: int
    first_row: int


def failure_reasons(job: UpsertJob, *, limit: int = 20) -> list[FailureReason]:
    """The job's failed rows grouped by reason, the most common first."""
    groups = (
        FailedRow.objects.filter(job=job)
        .values("reason")
        .annotate(rows=Count("id"), first_row=Min("row_number"))
        .order_by("-rows", "first_row")[:limit]
    )
    return [FailureReason(g["reason"], g["rows"], g["first_row"]) for g in groups]


def has_failed_rows(job: UpsertJob) -> bool:
    return FailedRow.objects.filter(job=job).exists()


def known_collections() -> list[str]:
    """Collection names that jobs have written to, for suggestions in forms."""
    names = UpsertJob.objects.order_by("collection_name").values_list("collection_name", flat=True)
    return list(names.distinct())


def staff_usernames() -> list[str]:
    users = get_user_model().objects.filter(is_staff=True).order_by("username")
    return list(users.values_list("username", flat=True))


def audit_events(
    *,
    action: str = "",
    username: str = "",
    target_type: str = "",
    target_id: str = "",
    created_from: date | None = None,
    created_to: date | None = None,
    search: str = "",
) -> QuerySet[AuditEvent]:
    """Audit events, newest first, narrowed by whichever filters are given.

    ``target_type`` is a model name (``upsertjob``, ``clusterendpoint``); ``search`` matches
    the target's description and the client IP.
    """
    events: QuerySet[AuditEvent] = AuditEvent.objects.select_related("target_type")
    if action:
        events = events.filter(action=action)
    if username:
        events = events.filter(actor_username=username.strip())
    if target_type:
        events = events.filter(target_type__app_label="upserts", target_type__model=target_type)
    if target_id:
        events = events.filter(target_id=target_id.strip())
    events = _created_between(events, created_from, created_to)
    search = search.strip()
    if search:
        matches = Q(target_repr__icontains=search)
        ip = _as_ip(search)
        if ip is not None:
            matches |= Q(client_ip=ip)
        events = events.filter(matches)
    return events.order_by("-created_at", "-id")


_Dated = TypeVar("_Dated", UpsertJob, AuditEvent)


def _created_between(
    rows: QuerySet[_Dated], first_day: date | None, last_day: date | None
) -> QuerySet[_Dated]:
    """Rows created on the given days in the console's time zone, both ends included."""
    if first_day is not None:
        rows = rows.filter(created_at__gte=_start_of_day(first_day))
    if last_day is not None:
        rows = rows.filter(created_at__lt=_start_of_day(last_day + timedelta(days=1)))
    return rows


def _start_of_day(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def _as_ip(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def api_tokens_of(user: Any) -> QuerySet[ApiToken]:
    """A user's API tokens, newest first, revoked ones included."""
    return ApiToken.objects.filter(user_id=user.pk).order_by("-created_at", "-id")
