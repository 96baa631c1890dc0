"""Every API error in one shape: ``{"code": ..., "message": ..., "details": {...}}``.

``code`` is a stable machine-readable word (``not_authenticated``, ``validation_error``,
``job_action_refused``...), ``message`` a sentence for a person, ``details`` the field errors
of a validation error (by field name) or other facts about the error, else ``{}``. The
services' own exceptions are mapped here to their HTTP status, so views just let them rise.
"""

import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, JsonResponse
from django.urls import Resolver404, resolve
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler, set_rollback

from upserts.errors import ConsoleError
from upserts.milvus.errors import ClusterError
from upserts.views.access import public

logger = logging.getLogger(__name__)

# Milvus' codes for "no such collection" and "no such database" (pkg/util/merr).
_NOT_FOUND_CODES = {100: "collection_not_found", 800: "database_not_found"}


class Refused(exceptions.APIException):
    """A ``ConsoleError``, answered with its own status and code."""

    def __init__(self, exc: ConsoleError) -> None:
        super().__init__(exc.message, exc.code)
        self.status_code = exc.http_status


class ClusterFailed(exceptions.APIException):
    """The cluster behind the console answered with an error or not at all."""

    status_code = status.HTTP_502_BAD_GATEWAY
    default_code = "cluster_error"

    def __init__(self, message: str, *, code: str = "cluster_error", **facts: Any) -> None:
        super().__init__(message, code)
        self.facts = facts


class ServerError(exceptions.APIException):
    status_code = status.HTTP_500_INTERNAL_SERVER_ERROR
    default_code = "server_error"
    default_detail = "The server failed to answer this request; the error has been logged."


def as_api_exception(exc: Exception) -> Exception:
    """The DRF exception for a service's exception; other exceptions are returned as they are."""
    if isinstance(exc, ConsoleError):
        return Refused(exc)
    if isinstance(exc, ClusterError):
        if exc.code in _NOT_FOUND_CODES:
            return exceptions.NotFound(str(exc), _NOT_FOUND_CODES[exc.code])
        return ClusterFailed(str(exc), cluster_code=exc.code, cluster_http_status=exc.http_status)
    if isinstance(exc, DjangoValidationError):
        return exceptions.ValidationError(as_serializer_error(exc))
    if isinstance(exc, Http404):
        return exceptions.NotFound(*exc.args)
    if isinstance(exc, DjangoPermissionDenied):
        return exceptions.PermissionDenied(*exc.args)
    return exc


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    exc = as_api_exception(exc)
    response = exception_handler(exc, context)
    if response is None:
        if settings.DEBUG:
            return None  # Django's debug page says more than any JSON could
        logger.error("Unhandled error in %s", context.get("view"), exc_info=exc)
        set_rollback()
        exc = ServerError()
        response = Response(status=exc.status_code)
    assert isinstance(exc, exceptions.APIException)
    response.data = error_body(exc)
    return response


def error_body(exc: exceptions.APIException) -> dict[str, Any]:
    if isinstance(exc, exceptions.ValidationError):
        field_errors = _field_errors(exc.detail)
        return {
            "code": "validation_error",
            "message": "Invalid input. "
            + " ".join(f"{field}: {' '.join(errors)}" for field, errors in _flatten(field_errors)),
            "details": field_errors,
        }
    details: dict[str, Any] = dict(getattr(exc, "facts", {}))
    wait = getattr(exc, "wait", None)
    if wait is not None:
        details["retry_after_seconds"] = wait
    codes = exc.get_codes()
    return {
        "code": codes if isinstance(codes, str) else exc.default_code,
        "message": str(exc.detail),
        "details": details,
    }


def _field_errors(detail: Any) -> dict[str, Any]:
    """Errors by field name; errors of the request as a whole under ``non_field_errors``."""
    if isinstance(detail, dict):
        return {str(field): _errors_of(errors) for field, errors in detail.items()}
    return {api_settings.NON_FIELD_ERRORS_KEY: _errors_of(detail)}


def _errors_of(errors: Any) -> Any:
    if isinstance(errors, dict):
        return {str(field): _errors_of(inner) for field, inner in errors.items()}
    if isinstance(errors, list):
        return [_errors_of(inner) for inner in errors]
    return str(errors)


def _flatten(details: dict[str, Any], prefix: str = "") -> list[tuple[str, list[str]]]:
    """``[("file", ["No file was submitted."]), ("options.batch_size", [...])]``."""
    flat: list[tuple[str, list[str]]] = []
    for field, errors in details.items():
        path = f"{prefix}{field}"
        if isinstance(errors, dict):
            flat.extend(_flatten(errors, f"{path}."))
        elif isinstance(errors, list) and all(isinstance(e, str) for e in errors):
            flat.append((path, errors))
        elif isinstance(errors, list):
            for index, inner in enumerate(errors):
                if isinstance(inner, dict):
                    flat.extend(_flatten(inner, f"{path}[{index}]."))
                elif inner:
                    flat.append((f"{path}[{index}]", inner if isinstance(inner, list) else [inner]))
        else:
            flat.append((path, [str(errors)]))
    return flat


@public
@csrf_exempt  # a 404 whatever the method; the CSRF check would answer 403 in HTML first
def api_not_found(request: HttpRequest) -> JsonResponse:
    """A JSON 404 for any address under /api/ that names no endpoint."""
    message = f"No API endpoint at {request.path}."
    if not request.path.endswith("/"):
        try:
            match = resolve(request.path + "/")
        except Resolver404:
            match = None
        if match is not None and match.func is not api_not_found:
            message += f" Did you mean {request.path}/?"
    return JsonResponse(
        {"code": "not_found", "message": message, "details": {}}, status=status.HTTP_404_NOT_FOUND
    )
