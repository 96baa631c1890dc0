"""Additions to the generated OpenAPI schema: the error answers every operation can give.

Each view documents its own success and the errors particular to it (409, 502); the ones
common to all (401, 403, and 404, 400 and 415 where they can happen) are added here, all with
the one error shape.
"""

from typing import Any

ERROR_SCHEMA = {"$ref": "#/components/schemas/Error"}

_COMMON_ERRORS = {
    "400": "Invalid input (`validation_error`; `details` names each field).",
    "401": "No credentials, or an unknown or revoked token (`not_authenticated`, "
    "`authentication_failed`).",
    "403": "Not a staff account, or the account's role does not allow this (`permission_denied`).",
    "404": "No such object, or no such page (`not_found`).",
    "415": "The request body's media type is not accepted (`unsupported_media_type`).",
}


def _errors_for(path: str, method: str, operation: dict[str, Any]) -> list[str]:
    query = {p["name"] for p in operation.get("parameters", []) if p.get("in") == "query"}
    writes = method in ("post", "put", "patch")
    codes = ["401", "403"]
    if "{" in path or "page" in query:  # a page past the last is not found either
        codes.append("404")
    if query or writes:
        codes.append("400")
    if writes and "requestBody" in operation:
        codes.append("415")
    return codes


_RESOURCE_NAMES = {"jobs": "job", "clusters": "cluster", "tokens": "API token"}
_PAGE_DESCRIPTION = (
    "One page of results, with the total `count` and the `next` and `previous` pages."
)


def _describe_path_parameters(path: str, operation: dict[str, Any]) -> None:
    resource = _RESOURCE_NAMES.get(path.removeprefix("/api/v1/").split("/")[0], "object")
    for parameter in operation.get("parameters", []):
        if parameter.get("in") == "path" and not parameter.get("description"):
            parameter["description"] = (
                "The collection's name." if parameter["name"] == "name" else f"The {resource}'s id."
            )


def add_error_responses(
    result: dict[str, Any], generator: Any, request: Any, public: bool
) -> dict[str, Any]:
    """Also describes path parameters and paginated answers, which spectacular leaves blank."""
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            _describe_path_parameters(path, operation)
            responses = operation.setdefault("responses", {})
            for answer in responses.values():
                if not answer.get("description"):
                    answer["description"] = _PAGE_DESCRIPTION
            for code in _errors_for(path, method, operation):
                responses.setdefault(
                    code,
                    {
                        "description": _COMMON_ERRORS[code],
                        "content": {"application/json": {"schema": ERROR_SCHEMA}},
                    },
                )
    return result
