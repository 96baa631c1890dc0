"""API token authentication: ``Authorization: Token <key>`` (or ``Bearer <key>``).

Listed before session authentication, so an anonymous request is answered 401 with a
``WWW-Authenticate`` header rather than 403.
"""

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

from upserts.models import ApiToken
from upserts.services.api_tokens import token_for_key

KEYWORDS = (b"token", b"bearer")


class ApiTokenAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[Any, ApiToken] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() not in KEYWORDS:
            return None  # not ours: the session may still authenticate the request
        if len(parts) != 2:
            raise AuthenticationFailed(
                "Malformed Authorization header: send `Authorization: Token <key>`."
            )
        try:
            key = parts[1].decode("ascii")
        except UnicodeDecodeError as exc:
            raise AuthenticationFailed("An API token is plain ASCII.") from exc
        token = token_for_key(key)
        if token is None:
            raise AuthenticationFailed(
                "This API token is unknown or has been revoked; create a new one."
            )
        if not token.user.is_active:
            raise AuthenticationFailed("The account this API token belongs to is disabled.")
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        return 'Token realm="api"'


class ApiTokenScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    target_class = ApiTokenAuthentication
    name = "apiToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": (
                "An API token, created under /api/v1/tokens/ or with `manage.py api_token "
                "create`. Send it as `Authorization: Bearer <key>` or `Authorization: Token <key>`."
            ),
        }
