"""The login page, refusing attempts once a username or IP has failed too often."""

from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.views import LoginView
from django.http import HttpResponse

from upserts.forms import ThrottledAuthenticationForm, refused_by_login_throttle


class ThrottledLoginView(LoginView):
    authentication_form = ThrottledAuthenticationForm
    redirect_authenticated_user = True

    def form_invalid(self, form: AuthenticationForm) -> HttpResponse:
        response = super().form_invalid(form)
        if refused_by_login_throttle(form):
            response.status_code = 429
        return response
