"""Login throttling against password guessing, kept in the audit trail.

Every failed login is an audit event (the username tried, in its throttle key's spelling, and
the client IP). A username with too many recent failures, or an IP with many more, is refused
for the rest of the window, whatever the password, so guessing costs hours rather than
seconds. The console's login page and the admin's count and check the same failures.
"""

import unicodedata
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone

from upserts.client_address import client_ip
from upserts.models import AuditAction, AuditEvent
from upserts.services.audit import record_event


def login_throttle_key(username: str) -> str:
    """The one spelling of a username that failed logins are recorded under and checked against.

    The login form strips and NFKC-normalises what was typed before the backend sees it, so the
    raw field and the backend's credentials can differ ("alice " and "alice"); both go through
    this function. It case-folds too: the user lookup is case-sensitive, but "Alice" and "alice"
    share one count, so guesses cannot be spread over spellings of one name.
    """
    folded = unicodedata.normalize("NFKC", username.strip()).casefold()
    return unicodedata.normalize("NFKC", folded).strip()[:150]


def record_failed_login(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    """Receiver of django.contrib.auth's user_login_failed signal."""
    record_event(
        action=AuditAction.LOGIN_FAILED,
        client_ip=client_ip(request),
        details={"username": login_throttle_key(str(credentials.get("username", "")))},
    )


def seconds_until_login_allowed(username: str, ip: str | None) -> int:
    """0 when a login may be tried now, else how long until the window lets it through."""
    window = timedelta(seconds=settings.LOGIN_FAILURE_WINDOW_SECONDS)
    since = timezone.now() - window
    failures = AuditEvent.objects.filter(action=AuditAction.LOGIN_FAILED, created_at__gte=since)
    by_user = failures.filter(details__username=login_throttle_key(username))
    by_ip = failures.filter(client_ip=ip) if ip else failures.none()
    for recent, limit in (
        (by_user, settings.LOGIN_FAILURES_PER_USERNAME),
        (by_ip, settings.LOGIN_FAILURES_PER_IP),
    ):
        times = list(recent.order_by("-created_at").values_list("created_at", flat=True)[:limit])
        if len(times) >= limit:
            return max(1, int((times[-1] + window - timezone.now()).total_seconds()))
    return 0
