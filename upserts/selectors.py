"""Read-only queries shared by the pages and the API."""

from collections.abc import Iterator
from typing import Any

import orjson
from django.db.models import QuerySet

from upserts.models import ClusterEndpoint, EntityWrite, FailedRow, UpsertJob


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
