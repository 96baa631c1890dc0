"""A text field stored encrypted at rest (Fernet), for cluster tokens."""

from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models


@lru_cache(maxsize=4)
def _fernet_for(keys: tuple[str, ...]) -> MultiFernet:
    try:
        return MultiFernet([Fernet(key.encode()) for key in keys])
    except ValueError as exc:
        raise ImproperlyConfigured(
            "FIELD_ENCRYPTION_KEY must be one or more comma-separated Fernet keys "
            "(32 url-safe base64-encoded bytes)."
        ) from exc


def field_fernet() -> MultiFernet:
    """The cipher for the keys configured now (first encrypts, all decrypt)."""
    return _fernet_for(tuple(settings.FIELD_ENCRYPTION_KEYS))


def encrypt_text(plain: str) -> str:
    return field_fernet().encrypt(plain.encode()).decode()


def decrypt_text(stored: str) -> str:
    try:
        return field_fernet().decrypt(stored.encode()).decode()
    except InvalidToken as exc:
        raise ImproperlyConfigured(
            "A stored secret cannot be decrypted with FIELD_ENCRYPTION_KEY: the key that "
            "encrypted it is missing from the list (keep old keys after the new one when rotating)."
        ) from exc


class EncryptedTextField(models.TextField):
    """Holds plain text in Python and Fernet ciphertext in the database.

    The empty string is stored as is, so "no token" stays visible to queries without
    decrypting anything.
    """

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> str | None:
        if not value:
            return value
        return decrypt_text(value)

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        if not value:
            return value
        return encrypt_text(value)
