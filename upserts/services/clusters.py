"""Registered clusters: reaching them (one keep-alive session or gRPC channel per cluster per
process), registering, changing, testing and removing them, each change audited."""

import os
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any

import requests
from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db import transaction
from django.utils import timezone

from upserts.errors import ConsoleError
from upserts.milvus.client import (
    PARTIAL_UPDATE_NEEDS,
    ClusterClient,
    ClusterConfig,
    make_session,
)
from upserts.milvus.errors import ClusterError, RetryableClusterError
from upserts.milvus.grpc_client import GrpcChannel, GrpcClusterClient
from upserts.milvus.network import NetworkPolicy
from upserts.milvus.probe import (
    PROBE_TIMEOUT_SECONDS,
    ApiProbe,
    probe_endpoint,
    takes_partial_updates,
)
from upserts.milvus.schema import CollectionSchema
from upserts.milvus.transport import ClusterTransport
from upserts.models import AuditAction, ClusterEndpoint
from upserts.services.audit import record_event

Actor = AbstractBaseUser | AnonymousUser | None

# Keyed by the policy too: a session's connections are checked against the policy it was made
# with, so a changed policy gets sessions of its own.
_sessions: dict[tuple[int, NetworkPolicy], requests.Session] = {}
_sessions_lock = threading.Lock()


def _session_for(cluster_id: int, policy: NetworkPolicy) -> requests.Session:
    with _sessions_lock:
        session = _sessions.get((cluster_id, policy))
        if session is None:
            session = _sessions[(cluster_id, policy)] = make_session(network_policy=policy)
        return session


# Keyed by the whole config (a changed token or timeout gets a channel of its own) and by the
# process: a channel made before a fork does not work in the child.
_channels: dict[tuple[int, int, ClusterConfig], GrpcChannel] = {}


def _channel_for(cluster_id: int, config: ClusterConfig) -> GrpcChannel:
    key = (os.getpid(), cluster_id, config)
    with _sessions_lock:
        channel = _channels.get(key)
        if channel is None:
            channel = _channels[key] = GrpcChannel(config)
            # The cluster's channels of its settings before a change are not handed out again;
            # one still in use by a request goes when its last user lets go of it.
            for stale in [k for k in _channels if k[:2] == key[:2] and k != key]:
                del _channels[stale]
        return channel


def cluster_network_policy() -> NetworkPolicy:
    """The networks a cluster may (not) be reached in, as configured."""
    return NetworkPolicy.from_strings(
        settings.CLUSTER_DENIED_NETWORKS, settings.CLUSTER_ALLOWED_NETWORKS
    )


def cluster_config(cluster: ClusterEndpoint) -> ClusterConfig:
    return ClusterConfig(
        base_url=cluster.base_url,
        api_version=cluster.api_version,  # type: ignore[arg-type]
        token=cluster.token,
        verify_tls=cluster.verify_tls,
        timeout_seconds=float(cluster.request_timeout_seconds),
        max_response_bytes=settings.CLUSTER_MAX_RESPONSE_BYTES,
        network_policy=cluster_network_policy(),
    )


def client_for(cluster: ClusterEndpoint) -> ClusterTransport:
    """A client for the cluster, REST or gRPC, that reuses this process's connections to it."""
    config = cluster_config(cluster)
    if config.api_version == "grpc":
        return GrpcClusterClient(config, channel=_channel_for(cluster.pk, config))
    return ClusterClient(config, session=_session_for(cluster.pk, config.network_policy))


class ClusterInUse(ConsoleError):
    """A cluster with jobs cannot be deleted: the jobs' history would point nowhere."""

    code = "cluster_in_use"
    http_status = 409


# What a person may change on a cluster besides its token (forms, admin, API and audit use it).
EDITABLE_CLUSTER_FIELDS = (
    "name",
    "base_url",
    "api_version",
    "default_database",
    "verify_tls",
    "request_timeout_seconds",
    "max_request_mb",
    "max_mb_per_second",
    "max_requests_per_second",
    "server_version",
    "is_enabled",
)


def create_cluster(
    *,
    name: str,
    base_url: str,
    api_version: str = ClusterEndpoint.ApiVersion.V1,
    token: str = "",
    default_database: str = "default",
    verify_tls: bool = True,
    request_timeout_seconds: int = 30,
    max_request_mb: int = 64,
    max_mb_per_second: float | None = None,
    max_requests_per_second: float | None = None,
    server_version: str = "",
    is_enabled: bool = True,
    actor: Actor = None,
    client_ip: str | None = None,
) -> ClusterEndpoint:
    cluster = ClusterEndpoint(
        name=name,
        base_url=base_url.strip().rstrip("/"),
        api_version=api_version,
        token=token.strip(),
        default_database=default_database or "default",
        verify_tls=verify_tls,
        request_timeout_seconds=request_timeout_seconds,
        max_request_mb=max_request_mb,
        max_mb_per_second=max_mb_per_second,
        max_requests_per_second=max_requests_per_second,
        server_version=server_version.strip(),
        is_enabled=is_enabled,
        created_by=actor if isinstance(actor, AbstractBaseUser) else None,  # type: ignore[misc]
    )
    cluster.full_clean()
    with transaction.atomic():
        cluster.save()
        record_event(
            action=AuditAction.CLUSTER_CREATED,
            actor=actor,
            target=cluster,
            client_ip=client_ip,
            details={**_describe(cluster), "token_set": cluster.has_token},
        )
    return cluster


def update_cluster(
    cluster: ClusterEndpoint,
    *,
    token: str | None = None,
    actor: Actor = None,
    client_ip: str | None = None,
    **fields: Any,
) -> ClusterEndpoint:
    """Change the given fields; ``token=None`` keeps the token, ``""`` removes it."""
    unknown = set(fields) - set(EDITABLE_CLUSTER_FIELDS)
    if unknown:
        raise ValueError(f"not editable: {', '.join(sorted(unknown))}")
    before = _describe(cluster)
    for name, value in fields.items():
        setattr(cluster, name, value)
    token_changed = token is not None and token.strip() != cluster.token
    if token is not None:
        cluster.token = token.strip()
    cluster.full_clean()
    changes = {
        name: {"from": before[name], "to": value}
        for name, value in _describe(cluster).items()
        if before[name] != value
    }
    with transaction.atomic():
        cluster.save()
        record_event(
            action=AuditAction.CLUSTER_UPDATED,
            actor=actor,
            target=cluster,
            client_ip=client_ip,
            details={"changes": changes, "token_changed": token_changed},
        )
    return cluster


def delete_cluster(
    cluster: ClusterEndpoint, *, actor: Actor = None, client_ip: str | None = None
) -> None:
    jobs = cluster.jobs.count()
    if jobs:
        raise ClusterInUse(
            f"Cluster {cluster.name} has {jobs} job(s) and cannot be deleted; disable it instead."
        )
    with transaction.atomic():
        record_event(
            action=AuditAction.CLUSTER_DELETED,
            actor=actor,
            target=cluster,
            client_ip=client_ip,
            details=_describe(cluster),
        )
        cluster.delete()


@dataclass(frozen=True)
class ConnectionTest:
    ok: bool
    latency_ms: int
    database: str
    collections: list[str] = field(default_factory=list)
    error: str = ""
    # The APIs the endpoint answers ("v1", "v2", "grpc"), its version where it says, and what
    # to change about the cluster's API, if anything.
    answers: list[str] = field(default_factory=list)
    server_version: str = ""
    suggestion: str = ""

    @property
    def answer_names(self) -> list[str]:
        return [_API_NAMES.get(api, api) for api in self.answers]


_API_NAMES = {"v1": "REST v1", "v2": "REST v2", "grpc": "gRPC"}


def _suggestion(current: str, answers: list[str]) -> str:
    """What a person may want to change, given the APIs the endpoint answers."""
    if current == "v1" and "v2" in answers:
        advice = (
            "This endpoint answers REST v2 too: switch the cluster's API to v2, the API "
            "today's Milvus and Zilliz Cloud develop (v1 is to be deprecated)."
        )
        if "grpc" in answers:
            advice += " It answers gRPC as well, which takes several times the rows per second."
        return advice
    if current in ("v1", "v2") and "grpc" in answers:
        return (
            "This endpoint answers gRPC too, which takes several times the rows per second of "
            "REST on a self-hosted Milvus: switch the cluster's API to gRPC to load faster."
        )
    return ""


def check_connection(
    cluster: ClusterEndpoint,
    *,
    database: str = "",
    actor: Actor = None,
    client_ip: str | None = None,
) -> ConnectionTest:
    """List the database's collections, timing the round trip; the outcome is kept and audited."""
    database = database or cluster.default_database
    started = time.perf_counter()
    try:
        collections = client_for(cluster).list_collections(database)
        result = ConnectionTest(
            ok=True,
            latency_ms=round((time.perf_counter() - started) * 1000),
            database=database,
            collections=sorted(collections),
        )
    except ClusterError as exc:
        result = ConnectionTest(
            ok=False,
            latency_ms=round((time.perf_counter() - started) * 1000),
            database=database,
            error=str(exc),
        )
        unreachable = isinstance(exc, RetryableClusterError)
    else:
        unreachable = False
    if not unreachable:
        # An endpoint that answers at all is asked which APIs it serves; one that does not
        # answer would only make the test wait for each.
        known = ApiProbe(cluster.api_version, True) if result.ok else None  # type: ignore[arg-type]
        probed = probe_endpoint(cluster_config(cluster), database, known=known)
        result = replace(
            result,
            answers=[str(api) for api in probed.answering],
            server_version=probed.server_version,
            suggestion=_suggestion(cluster.api_version, list(probed.answering)),
        )
    learned = {"server_version": result.server_version} if result.server_version else {}
    ClusterEndpoint.objects.filter(pk=cluster.pk).update(
        **learned,
        last_tested_at=timezone.now(),
        last_test_ok=result.ok,
        last_test_latency_ms=result.latency_ms,
        last_test_message=result.error or f"{len(result.collections)} collection(s) in {database}",
    )
    cluster.refresh_from_db()
    record_event(
        action=AuditAction.CLUSTER_TESTED,
        actor=actor,
        target=cluster,
        client_ip=client_ip,
        details={
            "ok": result.ok,
            "latency_ms": result.latency_ms,
            "database": database,
            "collections": len(result.collections),
            "error": result.error,
            "answers": result.answers,
            "server_version": result.server_version,
        },
    )
    return result


def list_collections(cluster: ClusterEndpoint, database: str = "") -> list[str]:
    """Raises ClusterError with the cluster's own message when it cannot answer."""
    return sorted(client_for(cluster).list_collections(database or cluster.default_database))


@dataclass(frozen=True)
class CollectionListing:
    """A cluster's collections in one database as a page shows them: the names, or why the
    cluster could not list them."""

    cluster: ClusterEndpoint | None
    database: str
    names: list[str] = field(default_factory=list)
    error: str = ""


def collection_listing(cluster: ClusterEndpoint | None, database: str = "") -> CollectionListing:
    """Never raises: a cluster that cannot answer gives a listing holding its message."""
    if cluster is None:
        return CollectionListing(cluster=None, database=database)
    database = database or cluster.default_database
    try:
        names = list_collections(cluster, database)
    except ClusterError as exc:
        return CollectionListing(cluster=cluster, database=database, error=str(exc))
    return CollectionListing(cluster=cluster, database=database, names=names)


def describe_collection(
    cluster: ClusterEndpoint, collection: str, database: str = ""
) -> CollectionSchema:
    return client_for(cluster).describe_collection(database or cluster.default_database, collection)


def _describe(cluster: ClusterEndpoint) -> dict[str, Any]:
    return {name: getattr(cluster, name) for name in EDITABLE_CLUSTER_FIELDS}


def partial_update_problem(cluster: ClusterEndpoint) -> str:
    """Why jobs on the cluster cannot update only the fields in their files, or "".

    The server is asked its version over gRPC (REST has no such question; Milvus serves both
    at one address), else the version the cluster's settings name is taken: a Milvus before
    2.6.2 ignores the option and would replace each whole entity, so a version that is too
    old, or that cannot be learned, refuses the job.
    """
    if cluster.api_version == ClusterEndpoint.ApiVersion.V1:
        return PARTIAL_UPDATE_NEEDS
    config = cluster_config(cluster)
    # A REST-only endpoint behind a firewall that drops the call must not hold a page for the
    # cluster's whole timeout.
    config = replace(
        config,
        api_version="grpc",
        timeout_seconds=min(config.timeout_seconds, PROBE_TIMEOUT_SECONDS),
    )
    try:
        with GrpcClusterClient(config) as client:
            version = client.server_version()
    except ClusterError as exc:
        if not cluster.server_version:
            return (
                "Updating only the fields in the file needs Milvus 2.6.2 or later, and the "
                f"server did not say its version over gRPC ({exc}); a server before 2.6.2 "
                "would replace each whole entity, so the job is refused. Type the server's "
                "version in the cluster's settings if the endpoint does not say it"
            )
        version = cluster.server_version
    if not takes_partial_updates(version):
        return (
            "Updating only the fields in the file needs Milvus 2.6.2 or later; the server "
            f"says it is {version or 'of no version'}, which would replace each whole entity"
        )
    return ""
