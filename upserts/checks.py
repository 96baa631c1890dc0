"""``upserts.E001``: every page and API method of the URLconf declares who may use it.

Access is deny by default, and this check makes the default visible at start-up instead of in
a 403 someone meets later: a page without ``staff_required`` or ``public``, or an API view
with a handler missing from its ``required_permissions``, stops ``manage.py check`` (and so
``runserver``, ``migrate`` and the test run) with its address named. The admin keeps its own
checks (staff accounts and model permissions) and is left to them.
"""

from collections.abc import Iterator
from typing import Any

from django.core.checks import CheckMessage, Error, Tags, register
from django.urls import URLPattern, URLResolver, get_resolver

from upserts.api.permissions import IsStaffWithRole, answers, required_permission

API_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
_LEFT_TO_ITS_OWN_CHECKS = {"admin"}


def url_patterns(
    resolver: URLResolver | None = None, prefix: str = "", namespace: str = ""
) -> Iterator[tuple[str, str, URLPattern]]:
    """(route, name with its namespace, pattern) of every URL the URLconf serves."""
    resolver = resolver or get_resolver()
    for entry in resolver.url_patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            inner = entry.namespace or ""
            if inner in _LEFT_TO_ITS_OWN_CHECKS:
                continue
            yield from url_patterns(entry, route, f"{namespace}{inner}:" if inner else namespace)
        else:
            yield route, f"{namespace}{entry.name or ''}", entry


def undeclared_access(pattern: URLPattern) -> list[str]:
    """What of the pattern's view is open without a declared permission (methods or "page")."""
    view_class: Any = getattr(pattern.callback, "cls", None)
    if view_class is None:
        return [] if hasattr(pattern.callback, "required_permission") else ["page"]
    view = view_class()
    if not any(issubclass(p, IsStaffWithRole) for p in view_class.permission_classes):
        return ["permission classes"]
    return [
        method
        for method in API_METHODS
        if answers(method, view) and required_permission(method, view) is None
    ]


@register(Tags.security, Tags.urls)
def check_every_view_declares_its_permission(**kwargs: Any) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    for route, name, pattern in url_patterns():
        for what in undeclared_access(pattern):
            errors.append(
                Error(
                    f"/{route} ({name or 'unnamed'}): {what} declares no permission.",
                    hint=(
                        "Decorate the page with staff_required(...) or public, or list the "
                        "method in the view's required_permissions; until then it is refused."
                    ),
                    obj=pattern.callback,
                    id="upserts.E001",
                )
            )
    return errors
