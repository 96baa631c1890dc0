"""API tokens: issuing one (its key shown once), revoking it, and knowing a key when it comes.

A key is ``uc_`` followed by 43 URL-safe characters (256 random bits). Only its SHA-256 is
stored: a key that random cannot be guessed from its hash, and a fast hash keeps every
authenticated request at one indexed lookup.
"""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from upserts.models import ApiToken, AuditAction
from upserts.services.audit import record_event

Actor = AbstractBaseUser | AnonymousUser | None

KEY_PREFIX = "uc_"
# "uc_" and 8 characters of the key: enough to tell a user's tokens apart, useless to an attacker.
PREFIX_LENGTH = len(KEY_PREFIX) + 8
# A polling script sends its token every second; its last use is written once a minute at most.
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class IssuedToken:
    """A new token and its key: the only moment the key exists outside the caller's hands."""

    token: ApiToken
    key: str


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_token(
    *,
    user: AbstractBaseUser,
    name: str,
    actor: Actor = None,
    client_ip: str | None = None,
) -> IssuedToken:
    """Issue a token for ``user``; the returned key is never stored and cannot be shown again."""
    name = name.strip()
    if not name:
        raise ValidationError({"name": "Give the token a name that says what it is for."})
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        user=user,  # type: ignore[misc]
        name=name,
        prefix=key[:PREFIX_LENGTH],
        key_hash=hash_key(key),
    )
    token.full_clean()
    with transaction.atomic():
        token.save()
        record_event(
            action=AuditAction.API_TOKEN_CREATED,
            actor=actor or user,
            target=token,
            client_ip=client_ip,
            details={"user": user.get_username(), "name": name, "prefix": token.prefix},
        )
    return IssuedToken(token=token, key=key)


def revoke_api_token(
    token: ApiToken, *, actor: Actor = None, client_ip: str | None = None
) -> ApiToken:
    """Refuse the token from now on; revoking a revoked token changes nothing."""
    if token.revoked_at is not None:
        return token
    with transaction.atomic():
        token.revoked_at = timezone.now()
        ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
            revoked_at=token.revoked_at
        )
        record_event(
            action=AuditAction.API_TOKEN_REVOKED,
            actor=actor,
            target=token,
            client_ip=client_ip,
            details={"user": token.user.get_username(), "name": token.name, "prefix": token.prefix},
        )
    return token


def token_for_key(key: str) -> ApiToken | None:
    """The active token with this key (its user loaded), noting its use; None if unknown.

    One query in the common case; a second, an UPDATE, when the recorded last use is more
    than a minute old.
    """
    if not key.startswith(KEY_PREFIX) or len(key) > 200:
        return None
    try:
        token = ApiToken.objects.select_related("user").get(
            key_hash=hash_key(key), revoked_at__isnull=True
        )
    except ApiToken.DoesNotExist:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token
