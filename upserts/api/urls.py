"""``/api/``: the OpenAPI schema, its Swagger UI, and version 1 of the API."""

from django.urls import include, path, re_path, register_converter
from django.urls.converters import IntConverter

from upserts.api import views
from upserts.api.errors import api_not_found

app_name = "api"


class IdConverter(IntConverter):
    """A database id: at most 18 digits, so that every one fits a 64-bit integer column."""

    regex = "[0-9]{1,18}"


register_converter(IdConverter, "id")

v1 = [
    path("jobs/", views.JobListView.as_view(), name="job-list"),
    path("jobs/<id:pk>/", views.JobDetailView.as_view(), name="job-detail"),
    path("jobs/<id:pk>/batches/", views.JobBatchesView.as_view(), name="job-batches"),
    path("jobs/<id:pk>/failed-rows/", views.JobFailedRowsView.as_view(), name="job-failed-rows"),
    path("jobs/<id:pk>/cancel/", views.JobCancelView.as_view(), name="job-cancel"),
    path("jobs/<id:pk>/resume/", views.JobResumeView.as_view(), name="job-resume"),
    path("jobs/<id:pk>/retry-failed/", views.JobRetryFailedView.as_view(), name="job-retry-failed"),
    path("clusters/", views.ClusterListView.as_view(), name="cluster-list"),
    path("clusters/<id:pk>/", views.ClusterDetailView.as_view(), name="cluster-detail"),
    path("clusters/<id:pk>/test/", views.ClusterTestView.as_view(), name="cluster-test"),
    path(
        "clusters/<id:pk>/collections/",
        views.ClusterCollectionsView.as_view(),
        name="cluster-collections",
    ),
    path(
        "clusters/<id:pk>/collections/<str:name>/",
        views.ClusterCollectionView.as_view(),
        name="cluster-collection",
    ),
    path("audit/", views.AuditEventListView.as_view(), name="audit-list"),
    path("entities/lookup/", views.EntityLookupView.as_view(), name="entity-lookup"),
    path("tokens/", views.ApiTokenListView.as_view(), name="token-list"),
    path("tokens/<id:pk>/", views.ApiTokenDetailView.as_view(), name="token-detail"),
]

urlpatterns = [
    path("schema/", views.SchemaView.as_view(), name="schema"),
    # The split view serves Swagger UI's init script as a file: the CSP allows no inline script.
    path("docs/", views.SchemaDocsView.as_view(url_name="api:schema"), name="docs"),
    path("v1/", include(v1)),
    re_path(r"^.*$", api_not_found, name="not-found"),
]
