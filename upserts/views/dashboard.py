"""The console's landing page."""

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from upserts import selectors


@staff_member_required(login_url="login")
def dashboard(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "dashboard.html",
        {
            "recent_jobs": selectors.recent_jobs(limit=20),
            "clusters": selectors.cluster_list(),
        },
    )
