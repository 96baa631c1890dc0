"""Clusters: the list, registering and changing them, testing the connection, their schemas."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from upserts import roles, selectors
from upserts.client_address import client_ip
from upserts.errors import ConsoleError
from upserts.forms import ClusterForm
from upserts.milvus.errors import ClusterError
from upserts.models import ClusterEndpoint
from upserts.services import clusters
from upserts.validation.collections import schema_warnings
from upserts.views.access import is_htmx, staff_required


@require_GET
@staff_required(roles.VIEW_CLUSTERS)
def cluster_list(request: HttpRequest) -> HttpResponse:
    return render(request, "clusters/list.html", {"clusters": selectors.clusters_with_job_counts()})


@require_GET
@staff_required(roles.VIEW_CLUSTERS)
def cluster_detail(request: HttpRequest, pk: int) -> HttpResponse:
    cluster = get_object_or_404(selectors.clusters_with_job_counts(), pk=pk)
    return render(
        request,
        "clusters/detail.html",
        {"cluster": cluster, "recent_jobs": selectors.job_list(cluster=cluster)[:10]},
    )


@require_GET
@staff_required(roles.VIEW_CLUSTERS)
def cluster_collections(request: HttpRequest, pk: int) -> HttpResponse:
    """The collections the cluster lists now (an htmx partial of the cluster page)."""
    cluster = get_object_or_404(ClusterEndpoint, pk=pk)
    listing = clusters.collection_listing(cluster, request.GET.get("database", "").strip())
    return render(request, "clusters/_collections.html", {"listing": listing})


@require_POST
@staff_required(roles.MANAGE_CLUSTERS)
def cluster_test(request: HttpRequest, pk: int) -> HttpResponse:
    cluster = get_object_or_404(ClusterEndpoint, pk=pk)
    result = clusters.check_connection(
        cluster,
        database=request.POST.get("database", "").strip(),
        actor=request.user,
        client_ip=client_ip(request),
    )
    if is_htmx(request):
        template = (
            "clusters/_test_cell.html"
            if request.POST.get("view") == "row"
            else "clusters/_test_result.html"
        )
        return render(request, template, {"cluster": cluster, "result": result})
    if result.ok:
        messages.success(
            request,
            f"Connected to {cluster.name} in {result.latency_ms} ms: "
            f"{len(result.collections)} collection(s) in {result.database}.",
        )
    else:
        messages.error(request, f"{cluster.name} did not answer: {result.error}")
    return redirect("cluster_detail", pk=cluster.pk)


@require_http_methods(["GET", "POST"])
@staff_required(roles.ADD_CLUSTERS)
def cluster_create(request: HttpRequest) -> HttpResponse:
    form = ClusterForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            cluster = clusters.create_cluster(
                **form.cluster_fields(),
                token=form.cleaned_data["token"],
                actor=request.user,
                client_ip=client_ip(request),
            )
        except ValidationError as exc:
            form.add_error(None, " ".join(exc.messages))
        else:
            messages.success(request, f"Cluster {cluster.name} registered. Test its connection.")
            return redirect("cluster_detail", pk=cluster.pk)
    return render(request, "clusters/form.html", {"form": form, "cluster": None})


@require_http_methods(["GET", "POST"])
@staff_required(roles.MANAGE_CLUSTERS)
def cluster_edit(request: HttpRequest, pk: int) -> HttpResponse:
    cluster = get_object_or_404(ClusterEndpoint, pk=pk)
    # The form validates a copy: update_cluster compares the stored values with the new ones.
    form = ClusterForm(request.POST or None, instance=ClusterEndpoint.objects.get(pk=pk))
    if request.method == "POST" and form.is_valid():
        try:
            clusters.update_cluster(
                cluster,
                token=form.changed_token(),
                actor=request.user,
                client_ip=client_ip(request),
                **form.cluster_fields(),
            )
        except ValidationError as exc:
            form.add_error(None, " ".join(exc.messages))
        else:
            messages.success(request, f"Cluster {cluster.name} saved.")
            return redirect("cluster_detail", pk=cluster.pk)
    return render(request, "clusters/form.html", {"form": form, "cluster": cluster})


@require_http_methods(["GET", "POST"])
@staff_required(roles.DELETE_CLUSTERS)
def cluster_delete(request: HttpRequest, pk: int) -> HttpResponse:
    cluster = get_object_or_404(selectors.clusters_with_job_counts(), pk=pk)
    error = ""
    if request.method == "POST":
        try:
            clusters.delete_cluster(cluster, actor=request.user, client_ip=client_ip(request))
        except ConsoleError as exc:
            error = str(exc)
        else:
            messages.success(request, f"Cluster {cluster.name} deleted.")
            return redirect("cluster_list")
    return render(
        request,
        "clusters/delete.html",
        {"cluster": cluster, "error": error},
        status=409 if error else 200,
    )


@require_GET
@staff_required(roles.VIEW_CLUSTERS)
def collection_schema(request: HttpRequest, pk: int, collection: str) -> HttpResponse:
    """A collection's schema as the cluster describes it now."""
    cluster = get_object_or_404(ClusterEndpoint, pk=pk)
    database = request.GET.get("database", "").strip() or cluster.default_database
    schema = None
    error = ""
    try:
        schema = clusters.describe_collection(cluster, collection, database)
    except ClusterError as exc:
        error = str(exc)
    return render(
        request,
        "clusters/collection.html",
        {
            "cluster": cluster,
            "database": database,
            "collection": collection,
            "schema": schema,
            "warnings": (
                schema_warnings(schema, api_version=cluster.api_version) if schema else []
            ),
            "error": error,
        },
    )
