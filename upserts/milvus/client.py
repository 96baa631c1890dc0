"""HTTP to a Milvus / Zilliz Cloud cluster's REST API (v1 or v2): list, describe, upsert.

The client never retries and never sleeps: every failure is raised as one of the classes in
``errors`` so that the caller, which knows the job, decides between retrying, splitting the
batch and stopping. The token only ever travels in the ``Authorization`` header, and only to
the base URL's origin: redirects are never followed. Answers are read up to a size limit, and
connections reach only the addresses the ``NetworkPolicy`` allows.
"""

import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, NamedTuple
from urllib.parse import urljoin

import orjson
import requests

from .errors import (
    ClusterError,
    FatalTargetError,
    RetryableClusterError,
    RowEncodingError,
    classify_failure,
)
from .network import AddressRefused, CheckedHTTPAdapter, NetworkPolicy
from .schema import CollectionSchema, parse_collection
from .transport import RowForm, UpsertResult

# "grpc" is carried by ``grpc_client.GrpcClusterClient``; this module speaks REST only.
ApiVersion = Literal["v1", "v2", "grpc"]
PARTIAL_UPDATE_NEEDS = (
    "Updating only the fields in the file needs REST v2 or gRPC, and Milvus 2.6.2 or later; "
    "this cluster uses REST v1"
)
_EXCERPT_CHARS = 200
_TAG = re.compile(r"<[^>]*>")
_SPACES = re.compile(r"\s+")
_UPSERT_PATHS = {"v1": "/v1/vector/upsert", "v2": "/v2/vectordb/entities/upsert"}
_READ_CHUNK_BYTES = 64 * 1024
# An upsert answer repeats the ids of the rows sent: unless they are mostly characters the
# cluster escapes in JSON (<, >, &), it is smaller than its request, which a job keeps to 64 MiB.
# Describe and list answers are kilobytes.
DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024
_LINE_BREAKS = frozenset("\r\n")


def token_problem(token: str) -> str | None:
    """What in the token an HTTP header cannot carry (never the token itself), or None.

    Header values are sent as latin-1 and must hold no control characters; requests quotes an
    invalid value in its exception, which would leak the token. A key or "user:password" is
    printable ASCII, where a space is fine: only a typing or pasting accident falls outside.
    """
    for char in token:
        if char in _LINE_BREAKS:
            return "a line break"
        if ord(char) < 0x20 or ord(char) == 0x7F:
            return "a control character"
        if ord(char) > 0x7E:
            return "a character outside ASCII (such as an accented letter or a curly quote)"
    return None


def redact_token(text: str, token: str) -> str:
    """``text`` without the token, nor the password of a "user:password" token."""
    if not token:
        return text
    text = text.replace(token, "***")
    _, _, password = token.partition(":")
    if len(password) >= 4:
        text = text.replace(password, "***")
    return text


def address_refused(url: str, refusal: str) -> FatalTargetError:
    """The failure of a connection the network policy refuses (``refusal`` says why)."""
    return FatalTargetError(
        f"The console does not connect to {url}: {refusal}. Give the cluster an address in a "
        "network the console may reach (CLUSTER_DENIED_NETWORKS, CLUSTER_ALLOWED_NETWORKS)"
    )


@dataclass(frozen=True)
class ClusterConfig:
    """How to reach one cluster. Build it from a ``ClusterEndpoint`` at the edge of the app."""

    base_url: str
    api_version: ApiVersion = "v1"
    # An API key or "user:password"; empty for a cluster without authentication.
    token: str = field(default="", repr=False)
    verify_tls: bool = True
    timeout_seconds: float = 30.0
    # The most bytes of one answer read; a larger answer fails instead of filling memory.
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    # Which addresses a connection may reach; a session given to the client must enforce it.
    network_policy: NetworkPolicy = field(default_factory=NetworkPolicy)

    def __post_init__(self) -> None:
        if self.api_version not in ("v1", "v2", "grpc"):
            raise ValueError(f"api_version must be 'v1', 'v2' or 'grpc', not {self.api_version!r}")
        if self.timeout_seconds <= 0:
            raise ValueError("timeout_seconds must be more than 0")
        if self.max_response_bytes <= 0:
            raise ValueError("max_response_bytes must be more than 0")
        # A token an HTTP header cannot carry is kept and refused when a request is sent, as a
        # FatalTargetError that fails the job or the connection test with a message.
        object.__setattr__(self, "token", self.token.strip())
        object.__setattr__(self, "base_url", self.base_url.strip().rstrip("/"))

    def __repr__(self) -> str:
        token = "'***'" if self.token else "''"
        return (
            f"ClusterConfig(base_url={self.base_url!r}, api_version={self.api_version!r}, "
            f"token={token}, verify_tls={self.verify_tls!r}, "
            f"timeout_seconds={self.timeout_seconds!r}, "
            f"max_response_bytes={self.max_response_bytes!r})"
        )


def make_session(
    pool_size: int = 16, *, network_policy: NetworkPolicy | None = None
) -> requests.Session:
    """A keep-alive session whose pool holds a connection per request in flight from threads.

    urllib3's own retries are off: a retry hidden here would hide latency and double-count
    attempts that the caller records. Every new connection is checked against the policy.
    """
    session = requests.Session()
    adapter = CheckedHTTPAdapter(
        network_policy if network_policy is not None else NetworkPolicy(),
        pool_connections=pool_size,
        pool_maxsize=pool_size,
        max_retries=0,
    )
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _first_non_finite(value: Any) -> tuple[str, float] | None:
    """Where a NaN or Infinity hides in a value, as (path, number); None when there is none."""
    if isinstance(value, float):
        return None if math.isfinite(value) else ("", value)
    if isinstance(value, Mapping):
        for key, item in value.items():
            found = _first_non_finite(item)
            if found:
                return (f".{key}{found[0]}", found[1])
        return None
    if isinstance(value, list | tuple):
        # sum() runs in C: a vector of finite floats is cleared without a Python-level loop.
        total: Any
        try:
            total = sum(value)
        except (TypeError, OverflowError):
            total = math.nan
        if isinstance(total, int) or (isinstance(total, float) and math.isfinite(total)):
            return None
        for index, item in enumerate(value):
            found = _first_non_finite(item)
            if found:
                return (f"[{index}]{found[0]}", found[1])
    return None


def _check_finite(rows: Sequence[Mapping[str, Any]]) -> None:
    for row_index, row in enumerate(rows):
        for name, value in row.items():
            found = _first_non_finite(value)
            if found:
                path, number = found
                raise RowEncodingError(
                    f"row {row_index} of the batch, field `{name}{path}`: {number} is not a "
                    "number JSON can carry; the cluster would store it as null or 0",
                    row_index=row_index,
                    field=name,
                )


def assemble_body(prefix: bytes, encoded_rows: Sequence[bytes]) -> bytes:
    """An upsert body from its JSON prefix (ending in ``"data":[``) and pre-encoded rows.

    One join, no intermediate copy: a batch's body is several MB, and copying it twice cost
    eight times as much CPU as building it once.
    """
    if len(encoded_rows) < 2:
        return b"".join((prefix, *encoded_rows, b"]}"))
    first, last = encoded_rows[0], encoded_rows[-1]
    return b",".join((prefix + first, *encoded_rows[1:-1], last + b"]}"))


class JsonRowEncoder:
    """REST requests of one target from rows that are already JSON text."""

    def __init__(self, prefix: bytes) -> None:
        self.prefix = prefix

    def row_size(self, row: bytes) -> int:
        return len(row) + 1

    def request(self, rows: Sequence[bytes]) -> bytes:
        return assemble_body(self.prefix, rows)

    def request_size(self, request: bytes) -> int:
        return len(request)

    def entity(self, row: bytes) -> dict[str, Any]:
        entity: dict[str, Any] = orjson.loads(row)
        return entity


class ClusterClient:
    """One cluster's REST API. It keeps no per-request state, so threads may share one
    instance and the connection pool of its session."""

    row_form: RowForm = "json"

    def __init__(self, config: ClusterConfig, session: requests.Session | None = None) -> None:
        if config.api_version == "grpc":
            raise ValueError("A gRPC cluster is reached with grpc_client.GrpcClusterClient")
        self.config = config
        self._owns_session = session is None
        if session is None:
            session = make_session(network_policy=config.network_policy)
        else:
            _check_session_policy(session, config)
        self._session = session

    def __repr__(self) -> str:
        return f"ClusterClient({self.config!r})"

    def close(self) -> None:
        if self._owns_session:
            self._session.close()

    def __enter__(self) -> "ClusterClient":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- public API ---------------------------------------------------------------------------

    def list_collections(self, database: str) -> list[str]:
        if self.config.api_version == "v1":
            params = {"dbName": database} if database else None
            data = self._call("GET", "/v1/vector/collections", params=params).data
        else:
            body = orjson.dumps({"dbName": database} if database else {})
            data = self._call("POST", "/v2/vectordb/collections/list", body=body).data
        if data is None:
            return []
        if not isinstance(data, list):
            raise self._unreadable("list of collections", data)
        return [str(name) for name in data]

    def describe_collection(self, database: str, collection: str) -> CollectionSchema:
        if self.config.api_version == "v1":
            params = {"collectionName": collection}
            if database:
                params["dbName"] = database
            data = self._call("GET", "/v1/vector/collections/describe", params=params).data
        else:
            payload = {"collectionName": collection}
            if database:
                payload["dbName"] = database
            body = orjson.dumps(payload)
            data = self._call("POST", "/v2/vectordb/collections/describe", body=body).data
        try:
            return parse_collection(data)
        except (AttributeError, KeyError, TypeError, ValueError):
            raise self._unreadable("collection description", data) from None

    def encode_upsert_body(
        self,
        *,
        database: str,
        collection: str,
        rows: Sequence[dict[str, Any]],
        partition: str = "",
        partial_update: bool = False,
    ) -> bytes:
        """The request body, encoded once so a caller can time it and resend it unchanged.

        An empty ``database`` leaves ``dbName`` out: Milvus reads ``"dbName": ""`` as a database
        named "" (code 800) rather than as its default database. ``data`` is the last key, so a
        caller may splice a body from this prefix and rows it encoded itself.
        """
        if not rows:
            raise ValueError("There are no rows to upsert")
        if partition and self.config.api_version == "v1":
            raise ValueError(
                "The v1 REST API cannot target a partition (it ignores partitionName); "
                "use the v2 API or leave the partition empty"
            )
        payload: dict[str, Any] = {}
        if database:
            payload["dbName"] = database
        payload["collectionName"] = collection
        if partition:
            payload["partitionName"] = partition
        if partial_update:
            if self.config.api_version == "v1":
                raise FatalTargetError(PARTIAL_UPDATE_NEEDS)
            payload["partialUpdate"] = True
        payload["data"] = rows
        try:
            body = orjson.dumps(payload)
        except orjson.JSONEncodeError as exc:
            raise ValueError(f"The rows cannot be encoded as JSON: {exc}") from exc
        # orjson writes NaN and Infinity as null, which Milvus stores as 0 in a vector. A body
        # without "null" cannot hold one, so only then are the rows walked.
        if b"null" in body:
            _check_finite(rows)
        return body

    def upsert_body_prefix(
        self, *, database: str, collection: str, partition: str = "", partial_update: bool = False
    ) -> bytes:
        """The body up to ``"data":[``, for callers that encode and join rows themselves.

        Batching by bytes needs each row's encoded size, so a caller encodes rows one by one
        and joins them after this prefix (``data`` is always the body's last key).
        """
        body = self.encode_upsert_body(
            database=database,
            collection=collection,
            rows=[{}],
            partition=partition,
            partial_update=partial_update,
        )
        return body[: -len(b"{}]}")]

    def upsert_encoder(
        self,
        *,
        database: str,
        collection: str,
        schema: CollectionSchema,
        partition: str = "",
        partial_update: bool = False,
    ) -> JsonRowEncoder:
        """The schema is not needed: each row's JSON text is the row as sent."""
        return JsonRowEncoder(
            self.upsert_body_prefix(
                database=database,
                collection=collection,
                partition=partition,
                partial_update=partial_update,
            )
        )

    def send_upsert(self, request: bytes) -> UpsertResult:
        """Send a body that ``upsert_encoder(...).request(rows)`` built."""
        return self.upsert(database="", collection="", body=request)

    def upsert(
        self,
        *,
        database: str,
        collection: str,
        rows: Sequence[dict[str, Any]] | None = None,
        body: bytes | None = None,
        partition: str = "",
    ) -> UpsertResult:
        """Send one batch; ``body`` is what ``encode_upsert_body`` returned for it."""
        if rows is not None and body is None:
            body = self.encode_upsert_body(
                database=database, collection=collection, rows=rows, partition=partition
            )
        elif rows is None and body is not None:
            if partition:
                raise ValueError(
                    "The partition is part of the encoded body; give it to encode_upsert_body"
                )
        else:
            raise ValueError("Pass either rows or an encoded body, not both or neither")
        path = _UPSERT_PATHS[self.config.api_version]
        answer = self._call("POST", path, body=body)
        try:
            count = int(answer.data["upsertCount"])
            ids = list(answer.data.get("upsertIds") or [])
        except (KeyError, TypeError, ValueError):
            raise self._unreadable("upsert result", answer.data) from None
        return UpsertResult(
            upsert_count=count,
            upsert_ids=ids,
            http_status=answer.http_status,
            elapsed_ms=answer.elapsed_ms,
            code=answer.code,
        )

    # -- HTTP ---------------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            # v2 is asked for Int64 ids as numbers, as today's servers send them by default;
            # v1 gets them as strings, as 2.3.5 does. orjson reads either exactly.
            "Accept-Type-Allow-Int64": "true" if self.config.api_version == "v2" else "false",
        }
        if self.config.token:
            headers["Authorization"] = f"Bearer {self.config.token}"
        if self.config.api_version == "v2":
            headers["Request-Timeout"] = str(server_timeout_seconds(self.config.timeout_seconds))
        return headers

    def _is_success(self, code: int | None, answer: dict[str, Any]) -> bool:
        """Code 0 on v2, where 200 is Milvus' code for "partition not found"; on v1, 200 (or
        0, the merr code of success) -- but a v1 200 with a message and no data is that
        error too."""
        if code == 0:
            return True
        return (
            self.config.api_version == "v1"
            and code == 200
            and ("data" in answer or "message" not in answer)
        )

    def _redact(self, text: str) -> str:
        return redact_token(text, self.config.token)

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> "_Answer":
        """A successful answer: its ``data``, HTTP status, time taken and success code."""
        url = f"{self.config.base_url}{path}"
        problem = token_problem(self.config.token)
        if problem:
            raise FatalTargetError(
                f"The cluster's token contains {problem}, which an HTTP header cannot carry; "
                "type the token again in the cluster's settings"
            )
        started = time.perf_counter()
        try:
            # Redirects are not followed: one would carry the token, and an upsert's body, to
            # wherever the answer points. The body is streamed so it can be read up to a limit.
            response = self._session.request(
                method,
                url,
                params=params,
                data=body,
                headers=self._headers(),
                timeout=self.config.timeout_seconds,
                verify=self.config.verify_tls,
                allow_redirects=False,
                stream=True,
            )
            try:
                if response.is_redirect:
                    raise self._redirected(url, response)
                content = self._read_capped(url, response)
            finally:
                # Back to the pool when read to the end; closed when the reading stopped early.
                response.close()
        except AddressRefused as exc:
            raise address_refused(url, str(exc)) from exc
        except requests.exceptions.SSLError as exc:
            raise FatalTargetError(
                self._redact(
                    f"The TLS connection to {url} failed; check the certificate, or turn off "
                    f"TLS verification for this cluster if it is self-signed: {exc}"
                )
            ) from exc
        except requests.Timeout as exc:
            raise RetryableClusterError(
                self._redact(
                    f"No answer from {url} within {self.config.timeout_seconds:g} s; "
                    f"retry later or raise the cluster's timeout: {exc}"
                )
            ) from exc
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            raise RetryableClusterError(
                self._redact(f"Could not reach {url}; check the base URL and the network: {exc}")
            ) from exc
        except requests.RequestException as exc:
            raise FatalTargetError(
                self._redact(f"Could not send a request to {url}: {exc}")
            ) from exc
        elapsed_ms = (time.perf_counter() - started) * 1000
        http_status = response.status_code

        try:
            answer = orjson.loads(content)
        except orjson.JSONDecodeError:
            answer = None
        if not isinstance(answer, dict):
            raise classify_failure(
                http_status=http_status,
                code=None,
                message=self._excerpt(content),
            )

        code = _as_int(answer.get("code"))
        if self._is_success(code, answer) and 200 <= http_status < 300:
            return _Answer(answer.get("data"), http_status, elapsed_ms, code or 0)
        message = answer.get("message")
        message = self._redact(message) if isinstance(message, str) else self._excerpt(content)
        raise classify_failure(http_status=http_status, code=code, message=message)

    def _read_capped(self, url: str, response: requests.Response) -> bytes:
        """The answer's body, decompressed, or a FatalTargetError once it passes the limit.

        A declared length over the limit is refused before anything is read; the count is of
        decompressed bytes, so a small compressed answer cannot expand past the limit either.
        """
        limit = self.config.max_response_bytes
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > limit:
            raise self._too_large(url, limit)
        chunks = []
        size = 0
        for chunk in response.iter_content(chunk_size=_READ_CHUNK_BYTES):
            size += len(chunk)
            if size > limit:
                raise self._too_large(url, limit)
            chunks.append(chunk)
        return b"".join(chunks)

    def _too_large(self, url: str, limit: int) -> ClusterError:
        return FatalTargetError(
            f"The answer from {url} is larger than {limit:,} bytes, the most the console reads "
            "of one answer; check that the base URL is the cluster's REST endpoint, or raise "
            "CLUSTER_MAX_RESPONSE_BYTES"
        )

    def _redirected(self, url: str, response: requests.Response) -> ClusterError:
        target = urljoin(url, response.headers.get("Location", ""))
        if len(target) > _EXCERPT_CHARS:
            target = target[:_EXCERPT_CHARS] + "…"
        return FatalTargetError(
            self._redact(
                f"The cluster answered with a redirect (HTTP {response.status_code}) to "
                f"{target}; the console does not follow redirects: put the final URL in the "
                "cluster's base URL"
            ),
            http_status=response.status_code,
        )

    def _unreadable(self, what: str, data: Any) -> ClusterError:
        text = self._excerpt(orjson.dumps(data, default=str))
        return FatalTargetError(f"The cluster's {what} has an unexpected shape: {text}")

    def _excerpt(self, content: bytes) -> str:
        """A short one-line start of a body; an HTML error page reads as its text."""
        text = self._redact(content[: _EXCERPT_CHARS * 20].decode("utf-8", errors="replace"))
        text = _SPACES.sub(" ", _TAG.sub(" ", text)).strip()
        if not text:
            return "(empty body)"
        if len(text) > _EXCERPT_CHARS:
            return text[:_EXCERPT_CHARS] + "…"
        return text


def _check_session_policy(session: requests.Session, config: ClusterConfig) -> None:
    """A session given to the client must enforce the config's network policy."""
    adapters = [session.get_adapter(scheme) for scheme in ("http://", "https://")]
    if not all(
        isinstance(adapter, CheckedHTTPAdapter) and adapter.network_policy == config.network_policy
        for adapter in adapters
    ):
        raise ValueError(
            "The session does not enforce the config's network policy; make it with "
            "make_session(network_policy=config.network_policy)"
        )


class _Answer(NamedTuple):
    data: Any
    http_status: int
    elapsed_ms: float
    code: int


def server_timeout_seconds(timeout_seconds: float) -> int:
    """The ``Request-Timeout`` a v2 request carries: a second short of the client's own, so a
    slow cluster answers 408 (and the batch is retried) before the client gives up on it."""
    return max(1, math.ceil(timeout_seconds) - 1)


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None
