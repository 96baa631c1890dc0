"""Jobs: the list, one job live, and what a person can do to it."""

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from upserts import exports, roles, selectors
from upserts.column_mapping import ColumnMapping
from upserts.forms import JobFilterForm
from upserts.models import UpsertJob
from upserts.services.job_control import cancel_job, resume_job
from upserts.services.retention import RetentionPolicy
from upserts.services.submissions import retry_failed_rows, send_checked_file
from upserts.views.access import is_htmx, staff_required
from upserts.views.actions import act

JOBS_PER_PAGE = 25
BATCHES_PER_PAGE = 25


@require_GET
@staff_required(roles.VIEW_JOBS)
def job_list(request: HttpRequest) -> HttpResponse:
    filters = JobFilterForm(request.GET or None)
    jobs = selectors.job_list(**filters.selector_arguments())
    page = Paginator(jobs, JOBS_PER_PAGE).get_page(request.GET.get("page"))
    rows = [(job, selectors.job_progress(job)) for job in page.object_list]
    return render(
        request,
        "jobs/list.html",
        {
            "filters": filters,
            "page": page,
            "rows": rows,
            "any_active": any(not job.is_final for job, _ in rows),
            "usernames": selectors.staff_usernames(),
            "collections": selectors.known_collections(),
        },
    )


@require_GET
@staff_required(roles.VIEW_JOBS)
def job_detail(request: HttpRequest, pk: int) -> HttpResponse:
    job = _job_or_404(pk)
    batches = Paginator(selectors.job_batches(job), BATCHES_PER_PAGE)
    return render(
        request,
        "jobs/detail.html",
        {
            **_live_context(job),
            "batches": batches.get_page(request.GET.get("page")),
            "reasons": selectors.failure_reasons(job),
            "has_failed_rows": selectors.has_failed_rows(job),
            "retries": selectors.job_retries(job),
            "mapping": ColumnMapping.from_json(job.column_mapping).described(),
            "retention": RetentionPolicy.from_settings(),
        },
    )


@require_GET
@staff_required(roles.VIEW_JOBS)
def job_live(request: HttpRequest, pk: int) -> HttpResponse:
    """The job's progress, counters and chart: the partial the job page polls while it runs."""
    job = _job_or_404(pk)
    response = render(request, "jobs/_live.html", _live_context(job))
    if job.is_final and is_htmx(request):
        # The batches, failures and actions changed too: show the finished job whole, once.
        response["HX-Refresh"] = "true"
    return response


def _job_or_404(pk: int) -> UpsertJob:
    try:
        return selectors.job_detail(pk)
    except UpsertJob.DoesNotExist:
        raise Http404(f"There is no job {pk}.") from None


def _live_context(job: UpsertJob) -> dict[str, object]:
    elapsed = None
    if job.started_at is not None:
        elapsed = ((job.finished_at or timezone.now()) - job.started_at).total_seconds()
    return {
        "job": job,
        "progress": selectors.job_progress(job),
        "waits_for_budget": selectors.job_waits_for_budget(job),
        "series": selectors.throughput_series(job),
        "elapsed": elapsed,
    }


@require_POST
@staff_required(roles.OPERATE_JOBS)
def job_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    job = _job_or_404(pk)
    cancelled = act(request, cancel_job, job)
    if cancelled is not None and cancelled.is_final:
        messages.info(request, f"Job {job.pk} cancelled.")
    elif cancelled is not None:
        messages.info(request, f"Job {job.pk} stops after the batch it is sending.")
    return redirect("job_detail", pk=job.pk)


@require_POST
@staff_required(roles.OPERATE_JOBS)
def job_resume(request: HttpRequest, pk: int) -> HttpResponse:
    job = _job_or_404(pk)
    if act(request, resume_job, job) is not None:
        messages.success(request, f"Job {job.pk} resumes from row {job.checkpoint_row + 1:,}.")
    return redirect("job_detail", pk=job.pk)


@require_POST
@staff_required(roles.OPERATE_JOBS)
def job_retry(request: HttpRequest, pk: int) -> HttpResponse:
    job = _job_or_404(pk)
    retry = act(request, retry_failed_rows, job)
    if retry is None:
        return redirect("job_detail", pk=job.pk)
    messages.success(request, f"Job {retry.pk} sends the failed rows of job {job.pk} again.")
    return redirect("job_detail", pk=retry.pk)


@require_POST
@staff_required(roles.OPERATE_JOBS)
def job_send_checked(request: HttpRequest, pk: int) -> HttpResponse:
    job = _job_or_404(pk)
    sent = act(request, send_checked_file, job)
    if sent is None:
        return redirect("job_detail", pk=job.pk)
    messages.success(request, f"Job {sent.pk} sends the file that job {job.pk} checked.")
    return redirect("job_detail", pk=sent.pk)


@require_GET
@staff_required(roles.VIEW_JOBS)
def job_failed_rows(request: HttpRequest, pk: int) -> StreamingHttpResponse:
    job = get_object_or_404(UpsertJob, pk=pk)
    response = StreamingHttpResponse(
        exports.failed_rows_jsonl(job), content_type="application/x-ndjson"
    )
    # The name is made here from the job number; the uploaded file's name never reaches it.
    response["Content-Disposition"] = f'attachment; filename="job-{job.pk}-failed-rows.jsonl"'
    response["X-Content-Type-Options"] = "nosniff"
    return response
