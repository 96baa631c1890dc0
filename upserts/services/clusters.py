"""Reaching a registered cluster: one keep-alive HTTP session per cluster per process."""

import threading

import requests

from upserts.milvus.client import ClusterClient, ClusterConfig, make_session
from upserts.models import ClusterEndpoint

_sessions: dict[int, requests.Session] = {}
_sessions_lock = threading.Lock()


def _session_for(cluster_id: int) -> requests.Session:
    with _sessions_lock:
        session = _sessions.get(cluster_id)
        if session is None:
            session = _sessions[cluster_id] = make_session()
        return session


def cluster_config(cluster: ClusterEndpoint) -> ClusterConfig:
    return ClusterConfig(
        base_url=cluster.base_url,
        api_version=cluster.api_version,  # type: ignore[arg-type]
        token=cluster.token,
        verify_tls=cluster.verify_tls,
        timeout_seconds=float(cluster.request_timeout_seconds),
    )


def client_for(cluster: ClusterEndpoint) -> ClusterClient:
    """A client for the cluster that reuses this process's connections to it."""
    return ClusterClient(cluster_config(cluster), session=_session_for(cluster.pk))
