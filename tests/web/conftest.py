"""Users of every role, and a cluster nothing listens on, for the pages' tests."""

import pytest
from django.test import Client

from tests.factories import make_cluster
from tests.helpers import UNREACHABLE_URL, log_in
from upserts.models import ClusterEndpoint


@pytest.fixture
def unreachable_cluster(db) -> ClusterEndpoint:
    return make_cluster("unreachable", base_url=UNREACHABLE_URL, token="s3cr3t-token-value")


@pytest.fixture
def viewer_client(client: Client) -> Client:
    log_in(client, "viewer")
    return client


@pytest.fixture
def operator_client(client: Client) -> Client:
    log_in(client, "operator")
    return client


@pytest.fixture
def admin_client_(client: Client) -> Client:
    log_in(client, "cluster_admin")
    return client


@pytest.fixture
def milvus_cluster(cluster) -> ClusterEndpoint:
    """A cluster endpoint pointing at the embedded Milvus (REST v1 unless BOTH_TRANSPORTS)."""
    return cluster
