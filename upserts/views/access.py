"""Who may open a page, and where a request came from.

Every page needs a staff account and, for most, one of the role permissions of
``upserts.roles``. A visitor who is not logged in is sent to the login page; a logged-in user
without the right gets the 403 page, which says what is missing (a redirect to the login page
would loop, since the login page sends a logged-in user straight back).
"""

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import resolve_url

View = Callable[..., HttpResponseBase]


def staff_required(permission: str | None = None) -> Callable[[View], View]:
    """Allow staff accounts, and only those holding ``permission`` when one is given."""

    def decorator(view: View) -> View:
        @wraps(view)
        def checked(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            user = request.user
            if not user.is_authenticated:
                if is_htmx(request):
                    # A partial must not swap the login form into the page: reload instead.
                    login = resolve_url("login")
                    return HttpResponse(headers={"HX-Redirect": login})
                return redirect_to_login(request.get_full_path())
            if not user.is_staff:
                raise PermissionDenied("This console is for staff accounts only.")
            if permission is not None and not user.has_perm(permission):
                raise PermissionDenied(
                    "Your account's role does not allow this. Ask an administrator to add you "
                    "to the role that does."
                )
            return view(request, *args, **kwargs)

        return checked

    return decorator


def is_htmx(request: HttpRequest) -> bool:
    return request.headers.get("HX-Request") == "true"
