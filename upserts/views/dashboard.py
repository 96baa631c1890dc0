"""The console's landing page."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from upserts import roles, selectors
from upserts.views.access import staff_required


@require_GET
@staff_required(roles.ANY_STAFF)
def dashboard(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "dashboard.html",
        {
            "recent_jobs": selectors.recent_jobs(limit=20),
            "clusters": selectors.cluster_list(),
        },
    )
