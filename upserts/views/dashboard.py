"""The console's landing page."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from upserts import selectors
from upserts.views.access import staff_required


@staff_required()
def dashboard(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "dashboard.html",
        {
            "recent_jobs": selectors.recent_jobs(limit=20),
            "clusters": selectors.cluster_list(),
        },
    )
