"""The login page, refusing attempts once a username or IP has failed too often."""

from typing import Any

from django.contrib.auth.views import LoginView
from django.http import HttpRequest, HttpResponse

from upserts.services.logins import client_ip, seconds_until_login_allowed


class ThrottledLoginView(LoginView):
    redirect_authenticated_user = True

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        wait = seconds_until_login_allowed(request.POST.get("username", ""), client_ip(request))
        if wait:
            form = self.get_form()
            minutes = max(1, round(wait / 60))
            form.add_error(
                None,
                f"Too many failed logins. Try again in about {minutes} minute"
                f"{'s' if minutes != 1 else ''}.",
            )
            response = self.form_invalid(form)
            response.status_code = 429
            return response
        return super().post(request, *args, **kwargs)
