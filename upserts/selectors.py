"""Read-only queries shared by the pages and the API."""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from django.db.models import QuerySet
from django.utils import timezone

from upserts.models import ClusterEndpoint, EntityWrite, FailedRow, JobStatus, UpsertJob


def recent_jobs(*, limit: int = 20) -> QuerySet[UpsertJob]:
    return UpsertJob.objects.select_related("cluster", "created_by").order_by("-created_at")[:limit]


def cluster_list() -> QuerySet[ClusterEndpoint]:
    return ClusterEndpoint.objects.order_by("name")


def failed_rows_jsonl(job: UpsertJob, *, chunk_size: int = 2000) -> Iterator[bytes]:
    """The job's failed rows as JSON Lines, fit to fix and upload again.

    Each line holds the row number, the reason, and the entity as read (or, for a row that
    could not be parsed, its raw text). Streamed in chunks: a job may have millions.
    """
    rows = (
        FailedRow.objects.filter(job=job)
        .order_by("row_number")
        .values_list("row_number", "reason", "entity", "raw")
    )
    for row_number, reason, entity, raw in rows.iterator(chunk_size=chunk_size):
        line: dict[str, Any] = {"row_number": row_number, "reason": reason}
        if entity is not None:
            line["entity"] = entity
        else:
            line["raw"] = raw
        yield orjson.dumps(line) + b"\n"


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
