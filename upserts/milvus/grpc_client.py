"""gRPC to a Milvus / Zilliz Cloud cluster: list, describe, upsert, with pymilvus' own stubs.

Milvus decodes a gRPC upsert five times cheaper per row than a JSON one (its floats arrive as
bytes, not text), so a job over gRPC sends several times the rows per second that REST can.
The requests are the official ``pymilvus`` package's generated messages, sent over a channel of
our own rather than through ``MilvusClient``: that keeps the REST client's guarantees here too.
The channel connects to an address the ``NetworkPolicy`` allows, resolved once and used as an
IP, so a name cannot resolve elsewhere later; nothing retries or sleeps, every failure is one
of the ``errors`` classes; answers are read up to the same size limit. Upserts are built by
``grpc_columns``.
"""

import base64
import socket
import ssl
import time
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import grpc
from cryptography import x509
from pymilvus.grpc_gen import common_pb2, milvus_pb2, milvus_pb2_grpc, schema_pb2

from .client import ClusterConfig, address_refused, redact_token, token_problem
from .errors import (
    AuthenticationError,
    ClusterError,
    DataRejectedError,
    FatalTargetError,
    RateLimitedError,
    RetryableClusterError,
    classify_failure,
)
from .grpc_columns import ColumnEncoder
from .grpc_wire import data_type_name, field_is_nullable
from .schema import CollectionSchema, FieldSchema
from .transport import RowForm, UpsertResult

DEFAULT_GRPC_PORT = 19530
_RETRYABLE_STATUS = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
    }
)
# Codes of Milvus before pkg/util/merr (Status.error_code, with Status.code 0), as merr codes.
_LEGACY_CODES = {
    3: 1800,  # PermissionDenied
    4: 100,  # CollectionNotExists
    5: 1100,  # IllegalArgument
    7: 1100,  # IllegalDimension
    11: 1100,  # IllegalRowRecord
    28: 100,  # CollectionNameNotFound
    45: 8,  # NotShardLeader
    46: 8,  # NoReplicaAvailable
    48: 9,  # ForceDeny (writes denied by the quota)
    49: 8,  # RateLimit
    53: 9,  # MemoryQuotaExhausted
    54: 9,  # DiskQuotaExhausted
    55: 8,  # TimeTickLongDelay
    56: 8,  # NotReadyServe
    57: 8,  # NotReadyCoordActivating
}
_KEEPALIVE_MS = 55_000


def grpc_address(base_url: str) -> tuple[str, int, bool]:
    """(host, port, TLS) of a cluster URL: https is TLS on port 443 unless one is given,
    http is plaintext on Milvus' port 19530 unless one is given."""
    parts = urlsplit(base_url)
    tls = parts.scheme == "https"
    host = parts.hostname or ""
    port = parts.port or (443 if tls else DEFAULT_GRPC_PORT)
    return host, port, tls


class GrpcChannel:
    """One cluster's channel: the resolved address, TLS and the token's metadata.

    A channel multiplexes every request of a process on one connection, so threads share it;
    it is made in the process that uses it (a gRPC channel does not survive a fork).
    """

    def __init__(self, config: ClusterConfig) -> None:
        self.config = config
        self.host, self.port, self.tls = grpc_address(config.base_url)
        address = self._allowed_address()
        target = f"ipv6:[{address}]:{self.port}" if ":" in address else f"{address}:{self.port}"
        options: list[tuple[str, Any]] = [
            ("grpc.max_send_message_length", -1),
            ("grpc.max_receive_message_length", config.max_response_bytes),
            ("grpc.keepalive_time_ms", _KEEPALIVE_MS),
            ("grpc.keepalive_permit_without_calls", 1),
            # A retry hidden here would hide latency and double-count attempts.
            ("grpc.enable_retries", 0),
        ]
        if self.tls:
            credentials, name = self._tls_credentials(address)
            options.append(("grpc.ssl_target_name_override", name))
            self.channel = grpc.secure_channel(target, credentials, options=options)
        else:
            options.append(("grpc.default_authority", f"{self.host}:{self.port}"))
            self.channel = grpc.insecure_channel(target, options=options)
        self.stub = milvus_pb2_grpc.MilvusServiceStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def _allowed_address(self) -> str:
        url = self.config.base_url
        try:
            found = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise RetryableClusterError(
                f"Could not resolve {self.host} (from {url}); check the base URL and the "
                f"network: {exc}"
            ) from exc
        addresses = [str(info[4][0]) for info in found]
        refused = self.config.network_policy.connection_refusal(self.host, addresses)
        if refused:
            raise address_refused(url, refused)
        return addresses[0]

    def _tls_credentials(self, address: str) -> tuple[grpc.ChannelCredentials, str]:
        """Credentials and the name the certificate must hold.

        Without verification, gRPC still checks a certificate, so the one the server presents
        is fetched and trusted, under the name it holds: a self-signed certificate then works
        as it does over REST with verification off.
        """
        if self.config.verify_tls:
            return grpc.ssl_channel_credentials(), self.host
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        try:
            with (
                socket.create_connection(
                    (address, self.port), timeout=self.config.timeout_seconds
                ) as sock,
                context.wrap_socket(sock, server_hostname=self.host) as tls_sock,
            ):
                der = tls_sock.getpeercert(binary_form=True)
        except (OSError, ssl.SSLError) as exc:
            raise RetryableClusterError(
                f"Could not open a TLS connection to {self.config.base_url}: {exc}"
            ) from exc
        if not der:
            raise FatalTargetError(f"{self.config.base_url} presented no TLS certificate")
        pem = ssl.DER_cert_to_PEM_cert(der).encode()
        return grpc.ssl_channel_credentials(root_certificates=pem), _certificate_name(
            der, self.host
        )


def _certificate_name(der: bytes, host: str) -> str:
    """The host when the certificate names it, else the first name it holds."""
    certificate = x509.load_der_x509_certificate(der)
    names: list[str] = []
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names += san.get_values_for_type(x509.DNSName)
        names += [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        pass
    common = certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    names += [str(attribute.value) for attribute in common]
    if host in names or not names:
        return host
    return names[0]


class GrpcClusterClient:
    """One cluster over gRPC; threads may share an instance and its channel."""

    row_form: RowForm = "entity"

    def __init__(self, config: ClusterConfig, channel: GrpcChannel | None = None) -> None:
        self.config = config
        self._owns_channel = channel is None
        self._channel = channel if channel is not None else GrpcChannel(config)

    def __repr__(self) -> str:
        return f"GrpcClusterClient({self.config!r})"

    def close(self) -> None:
        if self._owns_channel:
            self._channel.close()

    def __enter__(self) -> "GrpcClusterClient":
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
        request = milvus_pb2.ShowCollectionsRequest(db_name=database)
        response = self._call("ShowCollections", request, database)
        return [str(name) for name in response.collection_names]

    def describe_collection(self, database: str, collection: str) -> CollectionSchema:
        request = milvus_pb2.DescribeCollectionRequest(db_name=database, collection_name=collection)
        response = self._call("DescribeCollection", request, database)
        load_state = ""
        try:
            state = self._call(
                "GetLoadState",
                milvus_pb2.GetLoadStateRequest(db_name=database, collection_name=collection),
                database,
            )
            load_state = common_pb2.LoadState.Name(state.state)
        except ClusterError:
            pass  # the load state only informs a person
        return collection_from_proto(response, load_state=load_state)

    def server_version(self) -> str:
        """The server's version as it names it (``v2.3.5``); REST has no such question."""
        response = self._call("GetVersion", milvus_pb2.GetVersionRequest(), "")
        return str(response.version)

    def upsert_encoder(
        self,
        *,
        database: str,
        collection: str,
        schema: CollectionSchema,
        partition: str = "",
        partial_update: bool = False,
    ) -> ColumnEncoder:
        return ColumnEncoder(
            schema,
            database=database,
            collection=collection,
            partition=partition,
            partial_update=partial_update,
        )

    def send_upsert(self, request: milvus_pb2.UpsertRequest) -> UpsertResult:
        started = time.perf_counter()
        response = self._call("Upsert", request, request.db_name)
        elapsed_ms = (time.perf_counter() - started) * 1000
        ids = response.IDs
        if ids.HasField("str_id"):
            upsert_ids: list[str | int] = list(ids.str_id.data)
        else:
            upsert_ids = [str(value) for value in ids.int_id.data]
        return UpsertResult(
            upsert_count=int(response.upsert_cnt),
            upsert_ids=upsert_ids,
            http_status=None,
            elapsed_ms=elapsed_ms,
            code=0,
        )

    # -- gRPC ---------------------------------------------------------------------------------

    def _metadata(self, database: str) -> list[tuple[str, str]]:
        metadata = []
        if self.config.token:
            encoded = base64.b64encode(self.config.token.encode()).decode()
            metadata.append(("authorization", encoded))
        if database:
            metadata.append(("dbname", database))
        return metadata

    def _call(self, method: str, request: Any, database: str) -> Any:
        problem = token_problem(self.config.token)
        if problem:
            raise FatalTargetError(
                f"The cluster's token contains {problem}, which a request cannot carry; type "
                "the token again in the cluster's settings"
            )
        try:
            response = getattr(self._channel.stub, method)(
                request, timeout=self.config.timeout_seconds, metadata=self._metadata(database)
            )
        except grpc.RpcError as exc:
            raise self._rpc_failure(exc) from None
        status = response.status
        if status.code == 0 and status.error_code == 0:
            return response
        code = status.code or _LEGACY_CODES.get(status.error_code, status.error_code)
        raise classify_failure(http_status=None, code=code, message=self._redact(status.reason))

    def _rpc_failure(self, exc: grpc.RpcError) -> ClusterError:
        """The class of a failure of the call itself (no Milvus status came back)."""
        status = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
        details = exc.details() if isinstance(exc, grpc.Call) else str(exc)
        said = self._redact(details or "")
        where = self.config.base_url
        lowered = said.lower()
        if status in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
            return AuthenticationError(
                "The cluster refused the credentials; check the cluster's token (an API key or "
                f"user:password) and its permissions: {said}",
                cluster_message=said,
            )
        if status is grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in lowered:
            return DataRejectedError(
                f"The request is too large for the cluster; send fewer rows: {said}",
                cluster_message=said,
            )
        if "ssl" in lowered or "handshake" in lowered or "certificate" in lowered:
            return FatalTargetError(
                f"The TLS connection to {where} failed; check the certificate, or turn off TLS "
                f"verification for this cluster if it is self-signed: {said}"
            )
        if any(sign in lowered for sign in ("http1", "http/1", "failed parsing http/2")):
            return FatalTargetError(
                f"{where} answers HTTP/1, not gRPC; check the port, or choose a REST API version "
                f"for this cluster: {said}"
            )
        if status is grpc.StatusCode.UNIMPLEMENTED:
            return FatalTargetError(
                f"{where} does not offer this Milvus gRPC call; check that the base URL is the "
                f"cluster's gRPC endpoint: {said}"
            )
        if status is grpc.StatusCode.DEADLINE_EXCEEDED:
            return RetryableClusterError(
                f"No answer from {where} within {self.config.timeout_seconds:g} s; retry later "
                f"or raise the cluster's timeout: {said}"
            )
        if status is grpc.StatusCode.RESOURCE_EXHAUSTED:
            return RateLimitedError(
                f"{where} is rate-limiting upserts ({status.name}); retry later: {said}",
                cluster_message=said,
            )
        if status in _RETRYABLE_STATUS:
            return RetryableClusterError(
                f"Could not reach {where} over gRPC ({status.name}); check the base URL and "
                f"the network: {said}"
            )
        return FatalTargetError(
            f"The gRPC call to {where} failed ({status.name}): {said}", cluster_message=said
        )

    def _redact(self, text: str) -> str:
        return redact_token(text, self.config.token)


def collection_from_proto(
    response: milvus_pb2.DescribeCollectionResponse, *, load_state: str = ""
) -> CollectionSchema:
    """A describe answer as the schema REST describes; the dynamic field's column is left out
    (a row's keys beyond the schema go to it, as REST sends them)."""
    fields = []
    for item in response.schema.fields:
        if item.is_dynamic:
            continue
        params = {pair.key: pair.value for pair in item.type_params}
        data_type = data_type_name(item.data_type)
        element_type = data_type_name(item.element_type) if data_type == "Array" else None
        fields.append(
            FieldSchema(
                name=item.name,
                data_type=data_type,
                is_primary=item.is_primary_key,
                auto_id=item.autoID,
                max_length=_int_or_none(params.get("max_length")),
                dim=_int_or_none(params.get("dim")) if data_type.endswith("Vector") else None,
                element_type=element_type,
                nullable=field_is_nullable(item),
                **_default_of(item),
            )
        )
    return CollectionSchema(
        name=response.collection_name or response.schema.name,
        fields=tuple(fields),
        enable_dynamic_field=response.schema.enable_dynamic_field,
        load_state=load_state,
        extra={"shardsNum": response.shards_num, "collectionID": response.collectionID},
    )


def _default_of(item: schema_pb2.FieldSchema) -> dict[str, Any]:
    if not item.HasField("default_value"):
        return {}
    kind = item.default_value.WhichOneof("data")
    if kind is None:
        return {}
    value = getattr(item.default_value, kind)
    return {"has_default": True, "default_value": value if kind != "bytes_data" else None}


def _int_or_none(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None
