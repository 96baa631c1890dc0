"""Where a request came from, for the audit trail and the login throttle."""

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest | None) -> str | None:
    """The peer address; behind a proxy (``TRUST_X_FORWARDED_FOR``), the address that proxy
    appended to X-Forwarded-For.

    The rightmost entry, not the leftmost: a client can send an X-Forwarded-For of its own,
    which the proxy keeps and appends to, so everything left of the proxy's entry is whatever
    the client chose, and would let it write any address into the audit trail and spread its
    failed logins over made-up addresses.
    """
    if request is None:
        return None
    if settings.TRUST_X_FORWARDED_FOR:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        if hops:
            return hops[-1]
    return request.META.get("REMOTE_ADDR") or None
