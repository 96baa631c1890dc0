"""Users of every role, and a cluster nothing listens on, for the pages' tests."""

import pytest
from django.test import Client

from tests.factories import make_cluster, make_user, make_user_with_role
from upserts import roles
from upserts.models import ClusterEndpoint

ROLE_GROUPS = {
    "viewer": roles.VIEWERS,
    "operator": roles.OPERATORS,
    "cluster_admin": roles.CLUSTER_ADMINS,
}
# Nothing listens on the discard port, so a request to it is refused at once.
UNREACHABLE_URL = "http://127.0.0.1:9"


def log_in(client: Client, role: str) -> None:
    """Log the client in as a fresh user of ``role`` (``anonymous`` stays logged out)."""
    if role == "anonymous":
        return
    if role == "non_staff":
        user = make_user("outsider", staff=False)
    elif role == "staff":
        user = make_user("staff-no-role")
    elif role == "superuser":
        user = make_user("root", superuser=True)
    else:
        user = make_user_with_role(role, ROLE_GROUPS[role])
    client.force_login(user)


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
def milvus_cluster(milvus, db) -> ClusterEndpoint:
    """A cluster endpoint pointing at the embedded Milvus."""
    return make_cluster("embedded-milvus", base_url=milvus.url)


def page_text(response) -> str:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content).decode()
    return response.content.decode()
