"""Read-only queries shared by the pages and the API."""

from django.db.models import QuerySet

from upserts.models import ClusterEndpoint, UpsertJob


def recent_jobs(*, limit: int = 20) -> QuerySet[UpsertJob]:
    return UpsertJob.objects.select_related("cluster", "created_by").order_by("-created_at")[:limit]


def cluster_list() -> QuerySet[ClusterEndpoint]:
    return ClusterEndpoint.objects.order_by("name")
