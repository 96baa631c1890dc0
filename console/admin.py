"""The project's admin site: Django's, with the console's login throttle and audit."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse

from upserts.forms import ThrottledAdminAuthenticationForm, refused_by_login_throttle


class ConsoleAdminSite(admin.AdminSite):
    """``/admin/login/`` guards the same accounts as the console's login page, so it counts
    and refuses failed logins exactly as that page does (every failure is an audit event)."""

    login_form = ThrottledAdminAuthenticationForm

    def login(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        response = super().login(request, extra_context)
        context = getattr(response, "context_data", None) or {}
        if refused_by_login_throttle(context.get("form")):
            response.status_code = 429
        return response
