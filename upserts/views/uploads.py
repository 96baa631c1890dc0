"""New upload: pick the target, send the file, look at the preview, then start or cancel."""

from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from upserts import roles, selectors
from upserts.client_address import client_ip
from upserts.errors import ConsoleError
from upserts.forms import ColumnMappingForm, UploadForm
from upserts.middleware import accepts_uploads
from upserts.models import JobStatus, UpsertJob
from upserts.preview import Preview, preview_job
from upserts.services import clusters
from upserts.services.job_control import cancel_job, start_job
from upserts.services.submissions import (
    Start,
    submit_object,
    submit_objects_under,
    submit_upload,
)
from upserts.services.uploads import set_column_mapping
from upserts.views.access import is_htmx, staff_required
from upserts.views.actions import act


@accepts_uploads
@require_http_methods(["GET", "POST"])
@staff_required(roles.OPERATE_JOBS)
def upload_new(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        form = UploadForm(request.POST, request.FILES)
        if form.is_valid() and str(form.cleaned_data["source"]).endswith("/"):
            queued = _create_jobs_under(request, form)
            if queued is not None:
                messages.success(
                    request,
                    f"{len(queued)} jobs queued, one a file under {form.cleaned_data['source']}.",
                )
                if is_htmx(request):
                    return HttpResponse(headers={"HX-Redirect": reverse("job_list")})
                return redirect("job_list")
        elif form.is_valid():
            job = _create_job(request, form)
            if job is not None:
                preview = reverse("upload_preview", args=[job.pk])
                if is_htmx(request):
                    return HttpResponse(headers={"HX-Redirect": preview})
                return redirect(preview)
    else:
        form = UploadForm(initial=_initial(request))
    return render(
        request,
        "uploads/new.html",
        {"form": form, "has_clusters": selectors.enabled_clusters().exists()},
    )


def _initial(request: HttpRequest) -> dict[str, Any]:
    """Preselected target, as the collection page's "upload into it" link passes it."""
    initial: dict[str, Any] = {
        key: request.GET[param]
        for key, param in (
            ("cluster", "cluster"),
            ("database_name", "database"),
            ("collection_name", "collection"),
        )
        if request.GET.get(param)
    }
    if "cluster" not in initial:
        first = selectors.enabled_clusters().first()
        if first is not None:
            initial["cluster"] = first.pk
    return initial


def _create_jobs_under(request: HttpRequest, form: UploadForm) -> list[UpsertJob] | None:
    """Each file under a bucket prefix, queued: with many files, no preview comes first."""
    try:
        return submit_objects_under(
            form.cleaned_data["source"],
            target=form.upload_target(),
            limits=form.job_limits(),
            actor=request.user,
            client_ip=client_ip(request),
        )
    except ConsoleError as exc:
        form.add_error(None, str(exc))
    return None


def _create_job(request: HttpRequest, form: UploadForm) -> UpsertJob | None:
    upload = form.cleaned_data["file"]
    options: dict[str, Any] = {
        "target": form.upload_target(),
        "start": Start.AFTER_PREVIEW,
        "limits": form.job_limits(),
        "actor": request.user,
        "client_ip": client_ip(request),
    }
    try:
        if form.cleaned_data["source"]:
            return submit_object(form.cleaned_data["source"], **options)
        return submit_upload(source=upload, filename=upload.name, **options)
    except ConsoleError as exc:
        form.add_error(None, str(exc))
    except ValidationError as exc:
        form.add_error(None, " ".join(exc.messages))
    return None


@require_GET
@staff_required(roles.OPERATE_JOBS)
def upload_collections(request: HttpRequest) -> HttpResponse:
    """The collection picker for the chosen cluster and database (an htmx partial)."""
    cluster_pk = _int(request.GET.get("cluster"))
    cluster = (
        selectors.enabled_clusters().filter(pk=cluster_pk).first()
        if cluster_pk is not None
        else None
    )
    listing = clusters.collection_listing(cluster, request.GET.get("database_name", "").strip())
    selected = request.GET.get("collection_name", "").strip()
    return render(
        request,
        "uploads/_collection_picker.html",
        {"listing": listing, "selected": selected},
    )


def _int(text: str | None) -> int | None:
    return int(text) if text and text.isdigit() else None


@require_GET
@staff_required(roles.VIEW_JOBS)
def upload_preview(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(selectors.job_list(), pk=pk)
    if job.status != JobStatus.PENDING:
        return redirect("job_detail", pk=job.pk)
    preview = preview_job(job)
    return _render_preview(request, preview, _mapping_form(preview))


@require_POST
@staff_required(roles.OPERATE_JOBS)
def upload_mapping(request: HttpRequest, pk: int) -> HttpResponse:
    """Save the column mapping chosen in the preview and show the rows checked with it."""
    job = get_object_or_404(selectors.job_list(), pk=pk)
    if job.status != JobStatus.PENDING:
        return redirect("job_detail", pk=job.pk)
    preview = preview_job(job)
    form = _mapping_form(preview, request.POST)
    if form is not None and form.is_valid():
        try:
            set_column_mapping(job, form.mapping())
        except ConsoleError as exc:
            form.add_error(None, str(exc))
        else:
            preview = preview_job(job)
            form = _mapping_form(preview)
    return _render_preview(request, preview, form)


def _mapping_form(preview: Preview, data: Any = None) -> ColumnMappingForm | None:
    if preview.schema is None or not preview.file_columns:
        return None
    return ColumnMappingForm(data, preview=preview)


def _render_preview(
    request: HttpRequest, preview: Preview, form: ColumnMappingForm | None
) -> HttpResponse:
    context = {"job": preview.job, "preview": preview, "mapping_form": form}
    template = "uploads/_preview_body.html" if is_htmx(request) else "uploads/preview.html"
    return render(request, template, context)


@require_POST
@staff_required(roles.OPERATE_JOBS)
def upload_check(request: HttpRequest, pk: int) -> HttpResponse:
    """Read and check every row of the file, sending nothing: a dry run of the job."""
    job = get_object_or_404(selectors.job_list(), pk=pk)
    if act(request, _start_check, job) is not None:
        messages.success(
            request, f"Job {job.pk} checks every row of {job.original_filename}; nothing is sent."
        )
    return redirect("job_detail", pk=job.pk)


def _start_check(job: UpsertJob, **who: Any) -> UpsertJob:
    return start_job(job, dry_run=True, **who)


@require_POST
@staff_required(roles.OPERATE_JOBS)
def upload_start(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(selectors.job_list(), pk=pk)
    if job.status == JobStatus.PENDING and not preview_job(job, limit=1).can_start:
        messages.error(request, "This file cannot be sent to that collection; see the preview.")
        return redirect("upload_preview", pk=job.pk)
    if act(request, start_job, job) is not None:
        messages.success(request, f"Job {job.pk} started.")
    return redirect("job_detail", pk=job.pk)


@require_POST
@staff_required(roles.OPERATE_JOBS)
def upload_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(selectors.job_list(), pk=pk)
    if act(request, cancel_job, job) is None:
        return redirect("job_detail", pk=job.pk)
    messages.info(request, f"Upload of {job.original_filename} cancelled; nothing was sent.")
    return redirect("upload_new")
