"""What the client sends where, and how much it reads back: redirects are not followed, answers
are read up to a limit, connections reach only the addresses the network policy allows, and a
token an HTTP header cannot carry is never sent."""

import gzip
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import self_signed_certificate
from tests.milvus.fake_cluster import FakeCluster
from upserts.milvus.client import ClusterClient, ClusterConfig, make_session
from upserts.milvus.errors import FatalTargetError, RetryableClusterError
from upserts.milvus.network import NetworkPolicy

TOKEN = "db_admin:s3cret-Pa55word"
V1_LIST = "/v1/vector/collections"
V2_UPSERT = "/v2/vectordb/entities/upsert"
ROWS = [{"id": 1, "emb": [0.1, 0.2, 0.3, 0.4]}]
LISTED = {"code": 200, "data": ["books"]}
MIB = 1024 * 1024
LOOPBACK = NetworkPolicy.from_strings(["127.0.0.0/8", "::1/128"])


@pytest.fixture
def elsewhere() -> Iterator[FakeCluster]:
    """A second server on another port of the same host: another origin."""
    cluster = FakeCluster().start()
    try:
        yield cluster
    finally:
        cluster.stop()


def client_at(base_url: str, **config: Any) -> ClusterClient:
    settings = {"api_version": "v1", "token": TOKEN, "timeout_seconds": 5.0, **config}
    return ClusterClient(ClusterConfig(base_url=base_url, **settings))


def port_of(cluster: FakeCluster) -> int:
    return int(cluster.url.rsplit(":", 1)[1])


# -- redirects --------------------------------------------------------------------------------


def test_a_redirect_to_another_origin_is_not_followed_and_nothing_reaches_it(
    fake_cluster, elsewhere
):
    target = f"{elsewhere.url}{V1_LIST}"
    fake_cluster.answer(V1_LIST, method="GET", status=302, headers={"Location": target})
    elsewhere.answer(V1_LIST, method="GET", json_body=LISTED)

    with pytest.raises(FatalTargetError) as caught:
        client_at(fake_cluster.url).list_collections("default")

    assert f"redirect (HTTP 302) to {target}" in str(caught.value)
    assert "base URL" in str(caught.value) and caught.value.http_status == 302
    assert len(fake_cluster.requests) == 1
    assert elsewhere.requests == []


def test_an_upsert_redirected_with_its_body_is_not_sent_again_anywhere(fake_cluster, elsewhere):
    fake_cluster.answer(V2_UPSERT, status=308, headers={"Location": f"{elsewhere.url}/upsert"})
    client = client_at(fake_cluster.url, api_version="v2")

    with pytest.raises(FatalTargetError, match="redirect"):
        client.upsert(database="default", collection="books", rows=ROWS)

    assert [request.path for request in fake_cluster.requests] == [V2_UPSERT]
    assert elsewhere.requests == []


def test_a_redirect_on_the_same_origin_is_not_followed_either(fake_cluster):
    fake_cluster.answer(V1_LIST, method="GET", status=301, headers={"Location": "/milvus/v1"})

    with pytest.raises(FatalTargetError) as caught:
        client_at(fake_cluster.url).list_collections("default")

    # A relative Location is shown whole, so the base URL to use can be read off it.
    assert f"to {fake_cluster.url}/milvus/v1;" in str(caught.value)
    assert len(fake_cluster.requests) == 1


# -- answer size ------------------------------------------------------------------------------


def test_an_answer_declared_larger_than_the_limit_is_refused_before_it_is_read(fake_cluster):
    chunk = b" " * (64 * 1024)
    fake_cluster.answer(V1_LIST, method="GET", body=chunk, repeat=1600)  # 100 MiB declared

    with pytest.raises(FatalTargetError, match=r"larger than 1,048,576 bytes"):
        client_at(fake_cluster.url, max_response_bytes=MIB).list_collections("default")

    assert fake_cluster.body_bytes_sent < 20 * MIB


def test_an_endless_answer_is_cut_off_at_the_limit_and_its_connection_dropped(fake_cluster):
    chunk = b" " * (64 * 1024)
    fake_cluster.answer(V1_LIST, method="GET", body=chunk, repeat=1600, declare_length=False)
    fake_cluster.answer(V1_LIST, method="GET", json_body=LISTED)
    client = client_at(fake_cluster.url, max_response_bytes=MIB)

    with pytest.raises(FatalTargetError, match="larger than 1,048,576 bytes"):
        client.list_collections("default")
    assert fake_cluster.body_bytes_sent < 20 * MIB

    # The half-read connection is not reused: the next request gets a fresh one and its answer.
    assert client.list_collections("default") == ["books"]
    first, second = fake_cluster.requests
    assert first.client_port != second.client_port


def test_a_compressed_answer_is_limited_by_what_it_expands_to(fake_cluster):
    bomb = gzip.compress(b'{"code": 200, "data": [' + b" " * (8 * MIB) + b"]}")
    assert len(bomb) < MIB
    fake_cluster.answer(V1_LIST, method="GET", body=bomb, headers={"Content-Encoding": "gzip"})

    with pytest.raises(FatalTargetError, match="larger than 1,048,576 bytes"):
        client_at(fake_cluster.url, max_response_bytes=MIB).list_collections("default")


def test_answers_read_to_the_end_leave_their_connection_for_the_next_request(fake_cluster):
    for _ in range(3):
        fake_cluster.answer(V1_LIST, method="GET", json_body=LISTED)
    fake_cluster.answer(V1_LIST, method="GET", status=503, body=b"busy", content_type="text/plain")
    client = client_at(fake_cluster.url)

    for _ in range(3):
        assert client.list_collections("default") == ["books"]
    with pytest.raises(RetryableClusterError):  # an error answer is read to the end as well
        client.list_collections("default")

    assert len({request.client_port for request in fake_cluster.requests}) == 1


# -- networks ---------------------------------------------------------------------------------


def test_a_connection_to_a_denied_network_is_refused_once_the_address_is_known(fake_cluster):
    fake_cluster.answer(V1_LIST, method="GET", json_body=LISTED)
    # "localhost" says nothing about the network: only the address connected to does.
    client = client_at(f"http://localhost:{port_of(fake_cluster)}", network_policy=LOOPBACK)

    with pytest.raises(FatalTargetError) as caught:
        client.list_collections("default")

    message = str(caught.value)
    assert "localhost is at 127.0.0.1, which is in 127.0.0.0/8" in message
    assert "CLUSTER_DENIED_NETWORKS" in message
    assert fake_cluster.requests == []


def test_a_name_that_resolves_elsewhere_after_it_was_checked_is_refused(fake_cluster, monkeypatch):
    real_getaddrinfo = socket.getaddrinfo
    answers = ["192.0.2.10"]  # first an address the policy allows, then the loopback

    def rebinding_dns(host: str, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "cluster.test":
            host = answers.pop(0) if answers else "127.0.0.1"
        return real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding_dns)
    port = port_of(fake_cluster)
    assert LOOPBACK.host_refusal("cluster.test", port) is None  # what a save sees
    client = client_at(f"http://cluster.test:{port}", network_policy=LOOPBACK)

    with pytest.raises(FatalTargetError, match=r"cluster\.test is at 127\.0\.0\.1"):
        client.list_collections("default")

    assert fake_cluster.requests == []


def test_an_allow_list_refuses_every_address_outside_it(fake_cluster):
    policy = NetworkPolicy.from_strings([], ["10.0.0.0/8"])

    with pytest.raises(FatalTargetError, match=r"outside the networks .* \(10\.0\.0\.0/8\)"):
        client_at(fake_cluster.url, network_policy=policy).list_collections("default")

    assert fake_cluster.requests == []


@pytest.mark.parametrize(
    ("address", "refused"),
    [
        ("169.254.169.254", True),
        ("::ffff:169.254.169.254", True),
        ("fe80::1%eth0", True),
        ("fd00:ec2::254", True),
        ("100.100.100.200", True),
        ("100.100.100.201", False),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("fd00::1", False),
        ("34.120.1.1", False),
    ],
)
def test_the_default_policy_refuses_link_local_and_metadata_addresses_only(address, refused):
    assert (NetworkPolicy().refusal(address) is not None) is refused


def test_a_session_that_does_not_enforce_the_policy_is_refused():
    config = ClusterConfig(base_url="http://127.0.0.1:9", network_policy=LOOPBACK)

    with pytest.raises(ValueError, match="network policy"):
        ClusterClient(config, session=make_session())
    ClusterClient(config, session=make_session(network_policy=LOOPBACK)).close()


# -- TLS --------------------------------------------------------------------------------------


def tls_for_localhost(tmp_path: Path, server_names: list[str | None]) -> ssl.SSLContext:
    """A server context with a self-signed certificate for localhost, noting each SNI name."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*self_signed_certificate(tmp_path, "localhost"))
    context.sni_callback = lambda _socket, server_name, _context: server_names.append(server_name)
    return context


def test_https_sends_the_host_name_for_sni_and_is_checked_before_the_handshake(tmp_path):
    server_names: list[str | None] = []
    cluster = FakeCluster().start(tls=tls_for_localhost(tmp_path, server_names))
    try:
        cluster.answer(V1_LIST, method="GET", json_body=LISTED)
        base_url = f"https://localhost:{port_of(cluster)}"

        with pytest.warns(Warning, match="Unverified HTTPS request"):
            listed = client_at(base_url, verify_tls=False).list_collections("default")
        assert listed == ["books"] and server_names == ["localhost"]

        with pytest.raises(FatalTargetError, match="localhost is at 127.0.0.1"):
            client_at(base_url, network_policy=LOOPBACK).list_collections("default")
        assert server_names == ["localhost"] and len(cluster.requests) == 1
    finally:
        cluster.stop()


# -- tokens -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "problem"),
    [
        ("abc\ndef-secret", "a line break"),
        ("abc\x00def-secret", "a control character"),
        ("abc\tdef-secret", "a control character"),
        ("abcdéf-secret", "a character outside ASCII"),
    ],
)
def test_a_token_a_header_cannot_carry_is_never_sent(fake_cluster, token, problem):
    with pytest.raises(FatalTargetError, match=problem) as caught:
        client_at(fake_cluster.url, token=token).list_collections("default")

    assert "secret" not in str(caught.value) and "abc" not in str(caught.value)
    assert fake_cluster.requests == []


def test_a_token_with_spaces_inside_is_sent_as_typed(fake_cluster):
    fake_cluster.answer(V1_LIST, method="GET", json_body=LISTED)

    client_at(fake_cluster.url, token="user:pass word").list_collections("default")

    assert fake_cluster.requests[0].headers["Authorization"] == "Bearer user:pass word"
