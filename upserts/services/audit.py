"""The audit trail: one function writes every event."""

from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.contrib.contenttypes.models import ContentType
from django.db import models

from upserts.models import AuditEvent

# Keys whose values must never reach the trail, whatever a caller passes in ``details``.
_SECRET_KEYS = frozenset({"token", "password", "api_key", "apikey", "secret", "authorization"})
REDACTED = "[redacted]"


def _redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: REDACTED if str(key).lower() in _SECRET_KEYS else _redact(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_redact(item) for item in value]
    return value


def record_event(
    *,
    action: str,
    actor: AbstractBaseUser | AnonymousUser | None = None,
    target: models.Model | None = None,
    details: dict[str, Any] | None = None,
    client_ip: str | None = None,
) -> AuditEvent:
    """Append one event to the audit trail; secret-looking keys in ``details`` are redacted."""
    user = actor if isinstance(actor, AbstractBaseUser) and actor.is_authenticated else None
    return AuditEvent.objects.create(
        actor=user,  # type: ignore[misc]
        actor_username=user.get_username() if user is not None else "",
        action=action,
        target_type=ContentType.objects.get_for_model(target) if target is not None else None,
        target_id=str(target.pk) if target is not None else "",
        target_repr=str(target)[:300] if target is not None else "",
        details=_redact(details or {}),
        client_ip=client_ip,
    )
