"""The API's list filters: the pages' selectors, narrowed by what only the API offers.

The pages filter by whole days and one status; scripts ask for exact instants ("jobs created
since my last run"), several statuses at once and an ordering. The query parameters are
validated by the serializers in ``upserts.api.serializers`` before they reach these functions.
"""

from typing import Any

from django.db.models import F, QuerySet

from upserts import selectors
from upserts.models import AuditEvent, EntityWrite, UpsertJob


def jobs_matching(params: dict[str, Any]) -> QuerySet[UpsertJob]:
    jobs = selectors.job_list(
        collection_name=params.get("collection", ""), username=params.get("created_by", "")
    )
    if params.get("cluster") is not None:
        # An id that names no cluster matches no job, rather than being an error.
        jobs = jobs.filter(cluster_id=params["cluster"])
    if params.get("status"):
        jobs = jobs.filter(status__in=params["status"])
    if params.get("created_after") is not None:
        jobs = jobs.filter(created_at__gte=params["created_after"])
    if params.get("created_before") is not None:
        jobs = jobs.filter(created_at__lt=params["created_before"])
    ordering = params.get("ordering", "-created_at")
    field = ordering.lstrip("-")
    # Jobs not finished yet sort after the finished ones, whichever the direction.
    key = (
        F(field).desc(nulls_last=True)
        if ordering.startswith("-")
        else F(field).asc(nulls_last=True)
    )
    return jobs.order_by(key, "-id")


def audit_events_matching(params: dict[str, Any]) -> QuerySet[AuditEvent]:
    events = selectors.audit_events(
        action=params.get("action", ""),
        username=params.get("actor", ""),
        target_type=params.get("target_type", ""),
        target_id=params.get("target_id", ""),
    )
    if params.get("created_after") is not None:
        events = events.filter(created_at__gte=params["created_after"])
    if params.get("created_before") is not None:
        events = events.filter(created_at__lt=params["created_before"])
    return events


def entity_writes_matching(params: dict[str, Any]) -> QuerySet[EntityWrite]:
    writes = selectors.entity_writes(
        entity_id=params["id"],
        collection_name=params["collection"],
        database_name=params.get("database") or None,
    )
    if params.get("cluster") is not None:
        writes = writes.filter(job__cluster_id=params["cluster"])
    return writes
