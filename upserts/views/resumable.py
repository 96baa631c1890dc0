"""The upload page's resumable uploads (tus 1.0.0): the browser sends a file in parts, then
the upload form's target fields make it a job."""

from uuid import UUID

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from upserts import roles, selectors, tus_protocol
from upserts.client_address import client_ip
from upserts.errors import ConsoleError
from upserts.forms import UploadForm, UploadTargetForm
from upserts.middleware import accepts_uploads
from upserts.models import ResumableUpload
from upserts.services.submissions import Start, submit_resumable_upload
from upserts.views.access import is_htmx, staff_required


@require_http_methods(["OPTIONS", "POST"])
@staff_required(roles.OPERATE_JOBS)
def tus_uploads(request: HttpRequest) -> HttpResponse:
    if request.method == "OPTIONS":
        return tus_protocol.options()
    return tus_protocol.create(request, lambda upload: request.build_absolute_uri(_address(upload)))


def _address(upload: ResumableUpload) -> str:
    return reverse("tus_upload", args=[upload.pk])


@accepts_uploads
@require_http_methods(["OPTIONS", "HEAD", "PATCH", "DELETE"])
@staff_required(roles.OPERATE_JOBS)
def tus_upload(request: HttpRequest, pk: UUID) -> HttpResponse:
    if request.method == "OPTIONS":
        return tus_protocol.options()
    upload = tus_protocol.upload_of(request, pk)
    if upload is None:
        return tus_protocol.not_found()
    if request.method == "HEAD":
        return tus_protocol.status(upload)
    if request.method == "PATCH":
        return tus_protocol.append(request, upload)
    return tus_protocol.terminate(request, upload)


@require_POST
@staff_required(roles.OPERATE_JOBS)
def tus_submit(request: HttpRequest, pk: UUID) -> HttpResponse:
    """The finished upload and the form's target: a pending job, shown in its preview."""
    upload = tus_protocol.upload_of(request, pk)
    form = UploadTargetForm(request.POST)
    problem = "" if upload is not None else "There is no such upload of yours; send it again."
    if upload is not None and form.is_valid():
        try:
            job = submit_resumable_upload(
                upload,
                target=form.upload_target(),
                start=Start.AFTER_PREVIEW,
                limits=form.job_limits(),
                actor=request.user,
                client_ip=client_ip(request),
            )
        except ConsoleError as exc:
            problem = str(exc)
        else:
            preview = reverse("upload_preview", args=[job.pk])
            if is_htmx(request):
                return HttpResponse(headers={"HX-Redirect": preview})
            return redirect(preview)
    # The upload form again, with what was typed and what is wrong; its file is in already.
    page = UploadForm(request.POST)
    page.is_valid()
    page.errors.pop("file", None)
    if problem:
        page.add_error(None, problem)
    return render(
        request,
        "uploads/new.html",
        {"form": page, "has_clusters": selectors.enabled_clusters().exists()},
        status=400,
    )
