"""``/api/``: the OpenAPI schema, its Swagger UI, and version 1 of the API."""

from django.urls import include, path, re_path, register_converter
from django.urls.converters import IntConverter

from upserts.api.errors import api_not_found
from upserts.api.views import audit, clusters, jobs, schema, tokens, uploads

app_name = "api"


class IdConverter(IntConverter):
    """A database id: at most 18 digits, so that every one fits a 64-bit integer column."""

    regex = "[0-9]{1,18}"


register_converter(IdConverter, "id")

v1 = [
    path("jobs/", jobs.JobListView.as_view(), name="job-list"),
    path("jobs/<id:pk>/", jobs.JobDetailView.as_view(), name="job-detail"),
    path("jobs/<id:pk>/batches/", jobs.JobBatchesView.as_view(), name="job-batches"),
    path("jobs/<id:pk>/failed-rows/", jobs.JobFailedRowsView.as_view(), name="job-failed-rows"),
    path("jobs/<id:pk>/cancel/", jobs.JobCancelView.as_view(), name="job-cancel"),
    path("jobs/<id:pk>/resume/", jobs.JobResumeView.as_view(), name="job-resume"),
    path("jobs/<id:pk>/retry-failed/", jobs.JobRetryFailedView.as_view(), name="job-retry-failed"),
    path("uploads/", uploads.UploadListView.as_view(), name="upload-list"),
    path("uploads/<uuid:pk>", uploads.UploadDetailView.as_view(), name="upload-detail"),
    path("clusters/", clusters.ClusterListView.as_view(), name="cluster-list"),
    path("clusters/<id:pk>/", clusters.ClusterDetailView.as_view(), name="cluster-detail"),
    path("clusters/<id:pk>/test/", clusters.ClusterTestView.as_view(), name="cluster-test"),
    path(
        "clusters/<id:pk>/collections/",
        clusters.ClusterCollectionsView.as_view(),
        name="cluster-collections",
    ),
    path(
        "clusters/<id:pk>/collections/<str:name>/",
        clusters.ClusterCollectionView.as_view(),
        name="cluster-collection",
    ),
    path("audit/", audit.AuditEventListView.as_view(), name="audit-list"),
    path("entities/lookup/", audit.EntityLookupView.as_view(), name="entity-lookup"),
    path("tokens/", tokens.ApiTokenListView.as_view(), name="token-list"),
    path("tokens/<id:pk>/", tokens.ApiTokenDetailView.as_view(), name="token-detail"),
]

urlpatterns = [
    path("schema/", schema.SchemaView.as_view(), name="schema"),
    # The split view serves Swagger UI's init script as a file: the CSP allows no inline script.
    path("docs/", schema.SchemaDocsView.as_view(url_name="api:schema"), name="docs"),
    path("v1/", include(v1)),
    re_path(r"^.*$", api_not_found, name="not-found"),
]
