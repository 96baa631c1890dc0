"""Who may call what: staff accounts only, then the permission each view declares; deny by
default.

A view lists the permission each HTTP method needs in ``required_permissions``
(``{"GET": roles.VIEW_JOBS, "POST": roles.OPERATE_JOBS}``; ``roles.ANY_STAFF`` where no role is
needed); HEAD needs what GET needs, OPTIONS what the first method listed needs. A method the
view answers but does not list is refused to everyone, so a handler added without a
permission is closed, not open to all staff (and the ``upserts.E001`` check names it at
start). A method the view does not answer at all goes through to its 405.
"""

from typing import Any

from django.core.cache import cache
from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from upserts import roles
from upserts.models import ApiToken

PERMISSION_CACHE_SECONDS = 30

_ROLE_GRANTING = {
    roles.VIEW_JOBS: roles.VIEWERS,
    roles.VIEW_CLUSTERS: roles.VIEWERS,
    roles.VIEW_AUDIT: roles.VIEWERS,
    roles.OPERATE_JOBS: roles.OPERATORS,
    roles.ADD_CLUSTERS: roles.CLUSTER_ADMINS,
    roles.MANAGE_CLUSTERS: roles.CLUSTER_ADMINS,
    roles.DELETE_CLUSTERS: roles.CLUSTER_ADMINS,
}


def required_permission(method: str, view: Any) -> str | None:
    """What ``method`` needs on ``view``, or None when the view declares nothing for it."""
    by_method: dict[str, str] = getattr(view, "required_permissions", {})
    if method == "HEAD":
        method = "GET"
    elif method == "OPTIONS":
        method = next(iter(by_method), "")
    return by_method.get(method)


def answers(method: str, view: Any) -> bool:
    """Whether ``view`` has a handler for ``method`` (otherwise DRF answers 405)."""
    return method.lower() in view.http_method_names and hasattr(view, method.lower())


def holds_permission(request: Request, permission: str) -> bool:
    """``request.user.has_perm``, with a token's permissions kept for a few seconds.

    Reading a user's permissions costs two joined queries, more than the rest of a job poll
    together; a script polling every second with its token reads them once per
    ``PERMISSION_CACHE_SECONDS`` instead. Only role changes wait that long: the token itself,
    and whether its user is active and staff, are read afresh on every request.
    """
    if permission == roles.ANY_STAFF:
        return True
    user = request.user
    token = request.auth
    if not isinstance(token, ApiToken) or (user.is_active and user.is_superuser):
        return bool(user.has_perm(permission))
    key = f"api-token-permissions:{token.key_hash}"
    granted = cache.get(key)
    if granted is None:
        granted = user.get_all_permissions()
        cache.set(key, granted, PERMISSION_CACHE_SECONDS)
    return permission in granted


class IsStaffWithRole(BasePermission):
    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False  # answered 401 by the view, with WWW-Authenticate
        if not user.is_staff:
            raise PermissionDenied("The API is for staff accounts only.")
        method = request.method or ""
        permission = required_permission(method, view)
        if permission is None:
            if not answers(method, view):
                return True  # answered 405 by the view
            raise PermissionDenied(f"{method} declares no permission here, so it is refused.")
        if not holds_permission(request, permission):
            role = _ROLE_GRANTING.get(permission)
            group = f"the {role} group" if role else "a group that grants it"
            raise PermissionDenied(
                f"Your account lacks the permission {permission}; ask an administrator to add "
                f"you to {group}."
            )
        return True
