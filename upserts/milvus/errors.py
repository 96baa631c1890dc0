"""What can go wrong when talking to a cluster, sorted by what the caller should do next.

Retry later (``RetryableClusterError``), split the batch to find the bad rows
(``DataRejectedError``), or stop the job (``FatalTargetError``). Milvus answers HTTP 200 for
its own errors and puts the outcome in ``code``, so the class is decided by the code first and
by the HTTP status only when there is no code.
"""

import re
from typing import Any

# Codes from Milvus' pkg/util/merr: 2 service unavailable, then the rate limits (4 too many
# requests, 8 rate limited, 1807 the REST layer's limiter).
RATE_LIMIT_CODES = frozenset({4, 8, 1807})
RETRYABLE_CODES = frozenset({2}) | RATE_LIMIT_CODES
# 10001: a v2 request that ran past its Request-Timeout (answered with HTTP 408).
TIMEOUT_CODE = 10001
DATA_REJECTED_CODES = frozenset({1804, 1806})
AUTHENTICATION_CODE = 1800
INVALID_PARAMETER_CODES = range(1100, 1200)

_FATAL_EXPLANATIONS = {
    9: "The cluster's quota is exhausted (for example its disk quota); free space or raise "
    "the quota, then restart the job",
    100: "The collection does not exist on the cluster; check the collection name and database",
    200: "The partition does not exist in the collection; check the partition name",
    800: "The database does not exist on the cluster; check the database name",
    1801: "The cluster could not read the request as JSON; this is a bug in the console",
    1802: "The cluster found a required parameter missing from the request; this is a bug in "
    "the console",
}

# The REST layer of some Milvus versions cannot build a column of certain field types at all
# (2.3.5: JSON fields through v1, Array fields through v1). Every row fails the same way, so
# splitting the batch would only multiply the failures.
_UNWRITABLE_FIELD_PATTERNS = (
    re.compile(r"field '[^']*' is illegal, array type mismatch"),
    re.compile(r"fieldName: \S+: invalid parameter\[expected=\]\[actual=\w+\]"),
)


class ClusterError(Exception):
    """The cluster did not accept a request; ``str()`` tells a person what to do about it."""

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        http_status: int | None = None,
        cluster_message: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.http_status = http_status
        # The cluster's own words, for storing beside the code (e.g. UpsertBatch.milvus_message).
        self.cluster_message = cluster_message

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, code={self.code!r}, "
            f"http_status={self.http_status!r})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only arguments are lost by Exception's default pickling (Celery results).
        return (type(self), (self.message,), self.__dict__)


class RetryableClusterError(ClusterError):
    """The cluster was unreachable, slow or busy; the same request may succeed later."""


class RateLimitedError(RetryableClusterError):
    """The cluster throttled the request: the senders should slow down, not only retry."""


class DataRejectedError(ClusterError):
    """The cluster refused the request because of its rows; nothing of it was written."""


class FatalTargetError(ClusterError):
    """The target cannot take any rows as configured (missing collection, bad credentials...)."""


class AuthenticationError(FatalTargetError):
    """The cluster refused the token."""


class RowEncodingError(ValueError):
    """A row cannot be written as JSON the cluster would read back faithfully."""

    def __init__(self, message: str, *, row_index: int, field: str) -> None:
        super().__init__(message)
        # Index within the rows given to the encoder, so a caller can report that row alone.
        self.row_index = row_index
        self.field = field


def _described(explanation: str, code: int | None, http_status: int | None, message: str) -> str:
    parts = []
    if code is not None:
        parts.append(f"code {code}")
    if http_status is not None and http_status != 200:
        parts.append(f"HTTP {http_status}")
    detail = f" ({', '.join(parts)})" if parts else ""
    said = f": {message}" if message else ""
    return f"{explanation}{detail}{said}"


def classify_failure(*, http_status: int | None, code: int | None, message: str) -> ClusterError:
    """The exception for a failed answer; ``message`` is the cluster's own (already redacted)."""

    def make(cls: type[ClusterError], explanation: str) -> ClusterError:
        return cls(
            _described(explanation, code, http_status, message),
            code=code,
            http_status=http_status,
            cluster_message=message,
        )

    if http_status in (401, 403) or code == AUTHENTICATION_CODE:
        return make(
            AuthenticationError,
            "The cluster refused the credentials; check the cluster's token "
            "(an API key or user:password) and its permissions",
        )
    if code in RATE_LIMIT_CODES or http_status == 429:
        return make(RateLimitedError, "The cluster is rate-limiting upserts; retry later")
    if code in RETRYABLE_CODES:
        return make(RetryableClusterError, "The cluster is busy; retry later")
    if http_status == 408 or code == TIMEOUT_CODE:
        return make(
            RetryableClusterError,
            "The cluster did not finish the request within its Request-Timeout; retry later "
            "or raise the cluster's timeout",
        )
    if code in _FATAL_EXPLANATIONS:
        return make(FatalTargetError, _FATAL_EXPLANATIONS[code])
    if any(pattern.search(message) for pattern in _UNWRITABLE_FIELD_PATTERNS):
        return make(
            FatalTargetError,
            "This cluster's REST API cannot write one of the collection's field types; use "
            "the v2 API, a newer Milvus, or a collection without that field",
        )
    if code in INVALID_PARAMETER_CODES and "autoid" in message.lower():
        return make(
            FatalTargetError,
            "The collection generates its own primary keys (autoID) and Milvus refuses upserts "
            "into it; use a collection whose primary key is not autoID",
        )
    if code in DATA_REJECTED_CODES or code in INVALID_PARAMETER_CODES:
        return make(DataRejectedError, "The cluster refused the rows")
    if code is None and http_status == 413:
        return make(DataRejectedError, "The request is too large for the cluster; send fewer rows")
    if http_status is not None and (http_status == 429 or http_status >= 500):
        return make(
            RetryableClusterError,
            "The cluster (or a proxy in front of it) is unavailable; retry later",
        )
    if code is None and http_status == 404:
        return make(
            FatalTargetError,
            "The cluster has no such REST endpoint; check the base URL and the REST API version",
        )
    if code is None:
        return make(FatalTargetError, "The cluster gave an answer the console cannot read")
    return make(
        FatalTargetError, "The cluster answered with an error code the console does not know"
    )
