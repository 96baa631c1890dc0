"""The gRPC client: against the embedded Milvus 2.3.5 for what it answers, and against a scripted
gRPC server (pymilvus' own service) for TLS, tokens, rate limits and a server gone away."""

import base64
import uuid
from collections.abc import Iterator

import grpc
import numpy as np
import pytest
import redis
from pymilvus.grpc_gen import common_pb2, milvus_pb2

from console.localservices import create_collection, free_port
from tests.helpers import REDIS_KEY_PREFIX, self_signed_certificate
from tests.milvus.fake_grpc_cluster import FakeGrpcCluster, refused
from upserts.milvus.client import ClusterClient, ClusterConfig
from upserts.milvus.errors import (
    AuthenticationError,
    DataRejectedError,
    FatalTargetError,
    RetryableClusterError,
)
from upserts.milvus.grpc_client import GrpcClusterClient, grpc_address
from upserts.milvus.grpc_columns import ColumnEncoder
from upserts.milvus.grpc_wire import is_partial_update, valid_data_of
from upserts.milvus.network import NetworkPolicy
from upserts.milvus.schema import CollectionSchema, FieldSchema
from upserts.rate_budget import ClusterBudget, RateCap
from upserts.readers import NumberVector
from upserts.services.sending import RetryPolicy, send_batch

FIELDS = [
    {"name": "id", "type": "INT64", "is_primary": True},
    {"name": "title", "type": "VARCHAR", "max_length": 64},
    {"name": "emb", "type": "FLOAT_VECTOR", "dim": 4},
]
SCHEMA = CollectionSchema(
    name="books",
    fields=(
        FieldSchema("id", "Int64", is_primary=True),
        FieldSchema("title", "VarChar", max_length=64),
        FieldSchema("emb", "FloatVector", dim=4),
    ),
)
ROWS = [{"id": i, "title": f"Book {i}", "emb": [0.5, 0.25, -1.0, float(i)]} for i in range(1, 5)]


def grpc_client(url: str, **settings) -> GrpcClusterClient:
    return GrpcClusterClient(ClusterConfig(base_url=url, api_version="grpc", **settings))


def upsert(client: GrpcClusterClient, rows=ROWS, collection: str = "books"):
    encoder = client.upsert_encoder(database="", collection=collection, schema=SCHEMA)
    return client.send_upsert(encoder.request(rows))


# --- the embedded Milvus --------------------------------------------------------------------


@pytest.mark.milvus
def test_describe_over_grpc_gives_the_schema_rest_gives(milvus):
    name = f"g_{uuid.uuid4().hex[:12]}"
    create_collection(host="127.0.0.1", port=milvus.port, name=name, fields=FIELDS)

    with (
        grpc_client(milvus.url) as client,
        ClusterClient(ClusterConfig(base_url=milvus.url)) as rest,
    ):
        over_grpc = client.describe_collection("default", name)
        over_rest = rest.describe_collection("default", name)
        listed = client.list_collections("default")

    assert over_grpc.fields == over_rest.fields
    assert over_grpc.enable_dynamic_field and over_grpc.name == name
    assert over_grpc.load_state == over_rest.load_state == "LoadStateLoaded"
    assert name in listed


@pytest.mark.milvus
@pytest.mark.parametrize(
    ("primary", "keys"),
    [
        ({"name": "id", "type": "INT64", "is_primary": True}, [2**63 - 1, 2**53 + 1, -(2**63)]),
        ({"name": "id", "type": "VARCHAR", "is_primary": True, "max_length": 32}, ["a", "9"]),
    ],
)
def test_upserted_ids_come_back_exact_as_text(primary, keys, milvus):
    name = f"g_{uuid.uuid4().hex[:12]}"
    create_collection(host="127.0.0.1", port=milvus.port, name=name, fields=[primary, FIELDS[2]])
    rows = [{"id": key, "emb": [1.0, 0.0, 0.0, 0.0]} for key in keys]

    with grpc_client(milvus.url) as client:
        schema = client.describe_collection("", name)
        encoder = client.upsert_encoder(database="", collection=name, schema=schema)
        result = client.send_upsert(encoder.request(rows))

    assert result.upsert_count == len(keys)
    assert result.upsert_ids == [str(key) for key in keys]
    assert result.http_status is None and result.code == 0


@pytest.mark.milvus
def test_a_missing_collection_stops_with_milvus_words(milvus):
    with grpc_client(milvus.url) as client, pytest.raises(FatalTargetError) as refusal:
        client.describe_collection("default", "no_such_collection")

    assert refusal.value.code == 100 and "can't find collection" in str(refusal.value)


@pytest.mark.milvus
def test_a_value_milvus_refuses_is_a_data_rejection_with_its_message(milvus):
    name = f"g_{uuid.uuid4().hex[:12]}"
    create_collection(host="127.0.0.1", port=milvus.port, name=name, fields=FIELDS)
    rows = [{**ROWS[0], "title": "x" * 65}]

    with grpc_client(milvus.url) as client, pytest.raises(DataRejectedError) as refusal:
        upsert(client, rows, collection=name)

    assert "exceeds max length (64)" in refusal.value.cluster_message


@pytest.mark.milvus
def test_a_batch_milvus_refuses_is_split_to_its_bad_row_with_milvus_message(milvus):
    name = f"g_{uuid.uuid4().hex[:12]}"
    create_collection(host="127.0.0.1", port=milvus.port, name=name, fields=FIELDS)
    rows = [dict(row) for row in ROWS]
    rows[2]["title"] = "x" * 65

    with grpc_client(milvus.url) as client:
        encoder = client.upsert_encoder(database="", collection=name, schema=SCHEMA)
        outcome = send_batch(client, encoder=encoder, rows=rows, policy=RetryPolicy(max_attempts=1))

    assert outcome.upsert_count == 3 and sorted(outcome.upsert_ids) == ["1", "2", "4"]
    [rejection] = outcome.rejections
    assert rejection.index == 2 and "exceeds max length (64)" in rejection.reason


# --- the scripted server --------------------------------------------------------------------


@pytest.fixture
def fake_grpc() -> Iterator[FakeGrpcCluster]:
    server = FakeGrpcCluster().start()
    try:
        yield server
    finally:
        server.stop()


def test_the_token_and_database_travel_as_milvus_metadata(fake_grpc):
    with grpc_client(fake_grpc.url, token="root:Milvus") as client:
        assert client.list_collections("library") == ["books"]

    metadata = fake_grpc.metadata_of("ShowCollections")[0]
    assert base64.b64decode(metadata["authorization"]) == b"root:Milvus"
    assert metadata["dbname"] == "library"
    assert fake_grpc.calls[0][1].db_name == "library"


def test_rate_limits_and_an_unavailable_server_are_retried_then_the_batch_lands(
    fake_grpc, redis_url
):
    fake_grpc.answer(
        "Upsert",
        (grpc.StatusCode.UNAVAILABLE, "connection reset"),
        refused(8, "rate limit exceeded"),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "request is rejected by grpc RateLimiter"),
        (grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"),
        (grpc.StatusCode.ABORTED, "transaction aborted"),
    )
    budget = ClusterBudget(
        redis.Redis.from_url(redis_url),
        key=f"{REDIS_KEY_PREFIX}:grpc-budget:{uuid.uuid4().hex}",
        cap=RateCap(requests_per_second=1000),
    )
    with grpc_client(fake_grpc.url) as client:
        encoder = client.upsert_encoder(database="", collection="books", schema=SCHEMA)
        outcome = send_batch(
            client,
            encoder=encoder,
            rows=ROWS,
            policy=RetryPolicy(max_attempts=6, base_delay=0.01, max_delay=0.02),
            budget=budget,
        )

    assert outcome.requests == 6 and outcome.upsert_count == 4
    assert outcome.upsert_ids == ["1", "2", "3", "4"] and outcome.code == 0
    # Both rate limits (one storm) halved the cluster's budget once; the others did not.
    assert 0.5 <= budget.share() < 0.55


def test_a_request_over_the_servers_size_limit_is_split(fake_grpc):
    fake_grpc.answer(
        "Upsert", (grpc.StatusCode.RESOURCE_EXHAUSTED, "Received message larger than max (9 vs. 8)")
    )
    with grpc_client(fake_grpc.url) as client:
        encoder = client.upsert_encoder(database="", collection="books", schema=SCHEMA)
        outcome = send_batch(client, encoder=encoder, rows=ROWS, policy=RetryPolicy(max_attempts=1))

    assert outcome.upsert_count == 4 and outcome.requests == 3
    assert [call[1].num_rows for call in fake_grpc.calls] == [4, 2, 2]


@pytest.mark.parametrize(
    "answer",
    [
        ("abort", "UNAUTHENTICATED"),
        ("status", 1800),
        ("status", 3),  # PermissionDenied, as a Milvus before merr codes says it
    ],
)
def test_refused_credentials_stop_as_an_authentication_failure(answer, fake_grpc):
    kind, value = answer
    if kind == "abort":
        fake_grpc.answer("ShowCollections", (getattr(grpc.StatusCode, value), "bad token"))
    else:
        status = (
            common_pb2.Status(code=value) if value > 100 else common_pb2.Status(error_code=value)
        )
        status.reason = "auth check failure"
        fake_grpc.answer("ShowCollections", milvus_pb2.ShowCollectionsResponse(status=status))

    with grpc_client(fake_grpc.url, token="wrong") as client, pytest.raises(AuthenticationError):
        client.list_collections("")


def test_a_server_that_is_gone_is_worth_retrying():
    with (
        grpc_client(f"http://127.0.0.1:{free_port()}", timeout_seconds=2) as client,
        pytest.raises(RetryableClusterError, match="UNAVAILABLE"),
    ):
        client.list_collections("")


def test_an_http_server_at_the_address_is_named_as_such(fake_cluster):
    with (
        grpc_client(fake_cluster.url, timeout_seconds=3) as client,
        pytest.raises(FatalTargetError, match="HTTP/1, not gRPC"),
    ):
        client.list_collections("")


def test_the_network_policy_is_checked_before_connecting(fake_grpc):
    policy = NetworkPolicy.from_strings(["127.0.0.0/8"])

    with pytest.raises(FatalTargetError, match="127.0.0.0/8"):
        grpc_client(fake_grpc.url, network_policy=policy)

    assert fake_grpc.calls == []


def test_a_token_a_request_cannot_carry_is_refused_without_sending(fake_grpc):
    with (
        grpc_client(fake_grpc.url, token="abc\ndef") as client,
        pytest.raises(FatalTargetError, match="line break"),
    ):
        client.list_collections("")

    assert fake_grpc.calls == []


def test_tls_is_verified_and_a_self_signed_server_works_with_verification_off(tmp_path):
    server = FakeGrpcCluster(certificate=self_signed_certificate(tmp_path, "127.0.0.1")).start()
    try:
        with (
            grpc_client(server.url, timeout_seconds=3) as client,
            pytest.raises(FatalTargetError, match="TLS"),
        ):
            client.list_collections("")
        with grpc_client(server.url, verify_tls=False, token="k") as client:
            assert client.list_collections("") == ["books"]
    finally:
        server.stop()
    assert base64.b64decode(server.metadata_of("ShowCollections")[0]["authorization"]) == b"k"


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("http://10.0.0.5", ("10.0.0.5", 19530, False)),
        ("https://in01-x.zillizcloud.com", ("in01-x.zillizcloud.com", 443, True)),
        ("https://in01-x.zillizcloud.com:19530", ("in01-x.zillizcloud.com", 19530, True)),
        ("http://[::1]:19531", ("::1", 19531, False)),
    ],
)
def test_the_base_url_gives_host_port_and_tls(url, address):
    assert grpc_address(url) == address


def test_rows_become_columns_with_one_array_per_vector_field():
    dynamic = CollectionSchema(name="books", fields=SCHEMA.fields, enable_dynamic_field=True)
    encoder = ColumnEncoder(dynamic, database="db", collection="books", partition="p")
    rows = [
        {**ROWS[0], "shelf": 3},
        {**ROWS[1], "emb": NumberVector(np.array([1, 2, 3, 4], dtype=np.float32), 4.0)},
    ]

    request = encoder.request(rows)

    columns = {column.field_name: column for column in request.fields_data}
    assert (request.db_name, request.collection_name, request.partition_name) == (
        "db",
        "books",
        "p",
    )
    assert request.num_rows == 2 and list(columns["id"].scalars.long_data.data) == [1, 2]
    assert list(columns["emb"].vectors.float_vector.data) == [0.5, 0.25, -1.0, 1.0, 1, 2, 3, 4]
    assert columns["$meta"].is_dynamic
    assert list(columns["$meta"].scalars.json_data.data) == [b'{"shelf":3}', b"{}"]


def test_a_column_that_rows_may_leave_out_carries_its_values_and_a_flag_per_row():
    schema = CollectionSchema(
        name="books",
        fields=(
            FieldSchema("id", "Int64", is_primary=True),
            FieldSchema("year", "Int64", nullable=True),
            FieldSchema("shelf", "VarChar", max_length=8, has_default=True, default_value="A"),
            FieldSchema("title", "VarChar", max_length=8),
        ),
    )
    encoder = ColumnEncoder(schema, database="", collection="books")
    rows = [
        {"id": 1, "year": 2001, "shelf": "B", "title": "a"},
        {"id": 2, "title": "b"},
        {"id": 3, "year": None, "shelf": None, "title": "c"},
    ]

    columns = {c.field_name: c for c in encoder.request(rows).fields_data}

    assert list(columns["year"].scalars.long_data.data) == [2001]
    assert valid_data_of(columns["year"]) == [True, False, False]
    assert list(columns["shelf"].scalars.string_data.data) == ["B"]
    assert valid_data_of(columns["shelf"]) == [True, False, False]
    # A field every row must give carries no flags, as Milvus 2.3.5 expects.
    assert valid_data_of(columns["title"]) == [] and valid_data_of(columns["id"]) == []


def test_an_int8_vector_column_goes_as_one_signed_byte_per_value():
    schema = CollectionSchema(
        name="books",
        fields=(
            FieldSchema("id", "Int64", is_primary=True),
            FieldSchema("emb", "Int8Vector", dim=3),
        ),
    )
    encoder = ColumnEncoder(schema, database="", collection="books")

    request = encoder.request([{"id": 1, "emb": [-128, 0, 127]}, {"id": 2, "emb": [1, 2, 3]}])

    column = next(c for c in request.fields_data if c.field_name == "emb")
    assert column.type == 105 and column.vectors.dim == 3
    # Written by its field number (7), which pymilvus 2.4.15's VectorField does not know.
    assert column.vectors.SerializeToString().endswith(b"\x3a\x06\x80\x00\x7f\x01\x02\x03")
    with pytest.raises(DataRejectedError, match="outside -128 to 127"):
        encoder.request([{"id": 1, "emb": [0, 0, 128]}])


def test_a_partial_update_request_carries_the_flag_and_only_the_fields_the_rows_give():
    dynamic = CollectionSchema(name="books", fields=SCHEMA.fields, enable_dynamic_field=True)
    encoder = ColumnEncoder(dynamic, database="", collection="books", partial_update=True)

    request = encoder.request([{"id": 1, "title": "a"}, {"id": 2, "title": "b"}])
    full = ColumnEncoder(dynamic, database="", collection="books").request(ROWS)

    assert [c.field_name for c in request.fields_data] == ["id", "title"]
    assert is_partial_update(request) and not is_partial_update(full)
    # Field 9 of Milvus' UpsertRequest, which pymilvus 2.4.15 does not know.
    assert request.SerializeToString().endswith(b"\x48\x01")
