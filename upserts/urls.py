from django.urls import path

from upserts.views import audit, clusters, dashboard, health, jobs, resumable, uploads

urlpatterns = [
    path("", dashboard.dashboard, name="dashboard"),
    path("healthz", health.healthz, name="healthz"),
    # Jobs
    path("jobs/", jobs.job_list, name="job_list"),
    path("jobs/<int:pk>/", jobs.job_detail, name="job_detail"),
    path("jobs/<int:pk>/live/", jobs.job_live, name="job_live"),
    path("jobs/<int:pk>/cancel/", jobs.job_cancel, name="job_cancel"),
    path("jobs/<int:pk>/resume/", jobs.job_resume, name="job_resume"),
    path("jobs/<int:pk>/retry/", jobs.job_retry, name="job_retry"),
    path("jobs/<int:pk>/send/", jobs.job_send_checked, name="job_send_checked"),
    path("jobs/<int:pk>/failed-rows.jsonl", jobs.job_failed_rows, name="job_failed_rows"),
    # New upload
    path("uploads/new/", uploads.upload_new, name="upload_new"),
    path("uploads/collections/", uploads.upload_collections, name="upload_collections"),
    # Resumable uploads (tus 1.0.0), then the form's target makes one a job.
    path("uploads/tus/", resumable.tus_uploads, name="tus_uploads"),
    path("uploads/tus/<uuid:pk>", resumable.tus_upload, name="tus_upload"),
    path("uploads/tus/<uuid:pk>/submit/", resumable.tus_submit, name="tus_submit"),
    path("uploads/<int:pk>/preview/", uploads.upload_preview, name="upload_preview"),
    path("uploads/<int:pk>/mapping/", uploads.upload_mapping, name="upload_mapping"),
    path("uploads/<int:pk>/start/", uploads.upload_start, name="upload_start"),
    path("uploads/<int:pk>/check/", uploads.upload_check, name="upload_check"),
    path("uploads/<int:pk>/cancel/", uploads.upload_cancel, name="upload_cancel"),
    # Clusters
    path("clusters/", clusters.cluster_list, name="cluster_list"),
    path("clusters/new/", clusters.cluster_create, name="cluster_create"),
    path("clusters/<int:pk>/", clusters.cluster_detail, name="cluster_detail"),
    path("clusters/<int:pk>/edit/", clusters.cluster_edit, name="cluster_edit"),
    path("clusters/<int:pk>/delete/", clusters.cluster_delete, name="cluster_delete"),
    path("clusters/<int:pk>/test/", clusters.cluster_test, name="cluster_test"),
    path(
        "clusters/<int:pk>/collections/", clusters.cluster_collections, name="cluster_collections"
    ),
    path(
        "clusters/<int:pk>/collections/<str:collection>/",
        clusters.collection_schema,
        name="collection_schema",
    ),
    # Audit
    path("audit/", audit.audit_list, name="audit_list"),
    path("audit/export.csv", audit.audit_export, name="audit_export"),
    path("audit/entities/", audit.entity_lookup, name="entity_lookup"),
]
