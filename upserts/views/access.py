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

from upserts import roles

View = Callable[..., HttpResponseBase]


def staff_required(permission: str) -> Callable[[View], View]:
    """Allow staff accounts holding ``permission`` (any staff account: ``roles.ANY_STAFF``).

    The view is marked with what it needs, so the ``upserts.E001`` check and the access tests
    can read every page's permission from the URLconf.
    """

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
            if permission != roles.ANY_STAFF and not user.has_perm(permission):
                raise PermissionDenied(
                    "Your account's role does not allow this. Ask an administrator to add you "
                    "to the role that does."
                )
            return view(request, *args, **kwargs)

        checked.required_permission = permission  # type: ignore[attr-defined]
        return checked

    return decorator


def public(view: View) -> View:
    """Mark a page anyone may open (login, logout, health): declared, not forgotten."""
    view.required_permission = roles.PUBLIC  # type: ignore[attr-defined]
    return view


class DeclaredAccessMiddleware:
    """Deny by default: a page that declares no permission is refused to everyone.

    The API's views declare theirs per method (``upserts.api.permissions``) and the admin
    checks its own; anything else must be marked by ``staff_required`` or ``public``.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view: View, args: Any, kwargs: Any
    ) -> HttpResponseBase | None:
        if hasattr(view, "required_permission") or hasattr(view, "cls"):
            return None
        match = request.resolver_match
        if match is not None and "admin" in match.namespaces:
            return None
        raise PermissionDenied("This page declares no permission, so it is refused.")


def is_htmx(request: HttpRequest) -> bool:
    return request.headers.get("HX-Request") == "true"
