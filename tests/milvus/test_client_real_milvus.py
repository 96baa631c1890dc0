"""The client against the embedded Milvus 2.3.5 server: what it really answers over REST v1."""

import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from pymilvus import DataType

from console.localservices import create_collection
from tests.helpers import wait_until
from upserts.milvus.client import ClusterClient, ClusterConfig
from upserts.milvus.errors import (
    DataRejectedError,
    FatalTargetError,
    RetryableClusterError,
)

BOOK_FIELDS = [
    {"name": "id", "type": "INT64", "is_primary": True},
    {"name": "emb", "type": "FLOAT_VECTOR", "dim": 4},
    {"name": "title", "type": "VARCHAR", "max_length": 64},
]


@pytest.fixture(scope="module")
def books(milvus) -> str:
    """One collection for the tests that only add distinct ids or are refused: creating and
    loading a collection takes seconds."""
    name = f"books_{uuid.uuid4().hex[:12]}"
    create_collection(host="127.0.0.1", port=milvus.port, name=name, fields=BOOK_FIELDS)
    return name


@pytest.fixture
def client(milvus) -> Iterator[ClusterClient]:
    with ClusterClient(ClusterConfig(base_url=milvus.url, api_version="v1")) as client:
        yield client


def query(milvus, collection: str, ids: list[int], fields: list[str]) -> list[dict[str, Any]]:
    answer = requests.post(
        f"{milvus.url}/v1/vector/query",
        json={
            "collectionName": collection,
            "filter": f"id in [{', '.join(map(str, ids))}]",
            "outputFields": fields,
        },
        timeout=10,
    ).json()
    assert answer["code"] == 200, answer
    return sorted(answer["data"], key=lambda row: int(row["id"]))


@pytest.mark.milvus
def test_list_collections_includes_a_new_collection(client, make_collection):
    name = make_collection(BOOK_FIELDS)

    assert name in client.list_collections("default")


@pytest.mark.milvus
def test_describe_reads_primary_key_dimension_max_length_and_dynamic_flag(client, make_collection):
    name = make_collection(BOOK_FIELDS, enable_dynamic_field=False)

    schema = client.describe_collection("default", name)

    assert schema.name == name
    assert not schema.enable_dynamic_field
    assert schema.load_state == "LoadStateLoaded"
    assert (schema.primary_field.name, schema.primary_field.data_type) == ("id", "Int64")
    assert not schema.auto_id
    emb, title = schema.field_named("emb"), schema.field_named("title")
    assert emb is not None and (emb.data_type, emb.dim, emb.is_vector) == ("FloatVector", 4, True)
    assert title is not None and (title.data_type, title.max_length) == ("VarChar", 64)


@pytest.mark.milvus
def test_describe_reports_an_autoid_primary_key_and_the_dynamic_field(client, make_collection):
    name = make_collection(
        [
            {"name": "id", "type": "INT64", "is_primary": True, "auto_id": True},
            {"name": "emb", "type": "FLOAT_VECTOR", "dim": 4},
        ]
    )

    schema = client.describe_collection("default", name)

    assert schema.auto_id
    assert schema.enable_dynamic_field


@pytest.mark.milvus
def test_good_rows_land_and_int64_ids_come_back_as_strings(milvus, client, books):
    rows = [
        {"id": 1, "emb": [0.1, 0.2, 0.3, 0.4], "title": "Dune"},
        {"id": 9007199254740993, "emb": [0.5, 0.6, 0.7, 0.8], "title": "Emma", "year": 1815},
    ]

    result = client.upsert(database="default", collection=books, rows=rows)

    assert result.upsert_count == 2
    assert result.upsert_ids == ["1", "9007199254740993"]
    assert result.http_status == 200 and result.elapsed_ms > 0
    ids = [1, 9007199254740993]
    wait_until(lambda: len(query(milvus, books, ids, ["id"])) == 2, timeout=10)
    stored = query(milvus, books, ids, ["id", "title", "emb", "year"])
    assert [(row["id"], row["title"], row.get("year")) for row in stored] == [
        ("1", "Dune", None),
        ("9007199254740993", "Emma", 1815),
    ]
    assert stored[0]["emb"] == pytest.approx([0.1, 0.2, 0.3, 0.4])


@pytest.mark.milvus
def test_upserting_the_same_id_again_overwrites_the_row(milvus, client, books):
    client.upsert(
        database="default",
        collection=books,
        rows=[{"id": 7, "emb": [0.0, 0.0, 0.0, 1.0], "title": "first"}],
    )
    body = client.encode_upsert_body(
        database="default",
        collection=books,
        rows=[{"id": 7, "emb": [1.0, 0.0, 0.0, 0.0], "title": "second"}],
    )

    client.upsert(database="default", collection=books, body=body)

    stored = wait_until(
        lambda: [
            row for row in query(milvus, books, [7], ["id", "title"]) if row["title"] == "second"
        ],
        timeout=10,
    )
    assert stored == [{"id": "7", "title": "second"}]
    assert len(query(milvus, books, [7], ["id"])) == 1


@pytest.mark.milvus
def test_vector_of_the_wrong_dimension_is_rejected_with_milvus_message(client, books):
    with pytest.raises(DataRejectedError) as caught:
        client.upsert(
            database="default",
            collection=books,
            rows=[{"id": 1, "emb": [0.1, 0.2, 0.3], "title": "short"}],
        )

    assert caught.value.code == 1804
    assert "vector length diff from dimension" in str(caught.value)


@pytest.mark.milvus
def test_string_in_an_int64_primary_key_is_rejected(client, books):
    with pytest.raises(DataRejectedError) as caught:
        client.upsert(
            database="default",
            collection=books,
            rows=[{"id": "x", "emb": [0.1, 0.2, 0.3, 0.4], "title": "t"}],
        )

    assert caught.value.code == 1804
    assert 'unable to cast "x" of type string to int64' in str(caught.value)


@pytest.mark.milvus
def test_string_longer_than_max_length_is_rejected_with_code_1100(client, books):
    with pytest.raises(DataRejectedError) as caught:
        client.upsert(
            database="default",
            collection=books,
            rows=[{"id": 1, "emb": [0.1, 0.2, 0.3, 0.4], "title": "x" * 65}],
        )

    assert caught.value.code == 1100
    assert "exceeds max length (64)" in str(caught.value)


@pytest.mark.milvus
def test_unknown_collection_is_fatal(client):
    with pytest.raises(FatalTargetError) as caught:
        client.upsert(
            database="default", collection="no_such_collection", rows=[{"id": 1, "emb": [0.0] * 4}]
        )

    assert caught.value.code == 100
    assert "does not exist" in str(caught.value) and "no_such_collection" in str(caught.value)


@pytest.mark.milvus
def test_unknown_collection_is_fatal_when_described(client):
    with pytest.raises(FatalTargetError) as caught:
        client.describe_collection("default", "no_such_collection")

    assert caught.value.code == 100


@pytest.mark.milvus
def test_unknown_database_is_fatal_for_upsert_describe_and_list(client, books):
    calls = [
        lambda: client.upsert(
            database="nodb", collection=books, rows=[{"id": 1, "emb": [0.0] * 4, "title": ""}]
        ),
        lambda: client.describe_collection("nodb", books),
        lambda: client.list_collections("nodb"),
    ]

    for call in calls:
        with pytest.raises(FatalTargetError) as caught:
            call()
        assert caught.value.code == 800
        assert "database not found, database: nodb" in str(caught.value)


@pytest.mark.milvus
def test_autoid_collection_is_fatal(client, make_collection):
    name = make_collection(
        [
            {"name": "id", "type": "INT64", "is_primary": True, "auto_id": True},
            {"name": "emb", "type": "FLOAT_VECTOR", "dim": 4},
        ]
    )

    with pytest.raises(FatalTargetError) as caught:
        client.upsert(database="default", collection=name, rows=[{"id": 1, "emb": [0.0] * 4}])

    assert caught.value.code == 1100
    assert "cannot upsert an autoID collection" in str(caught.value)


@pytest.mark.milvus
def test_collection_with_a_json_field_is_refused_with_code_1100_and_stops_the_job(
    client, make_collection
):
    """Milvus 2.3.5's v1 REST refuses JSON fields outright: every row, whatever its value
    (object, array or string), and insert as well as upsert, fails with "json field 'j' is
    illegal, array type mismatch". Splitting the batch cannot help, so the error is fatal."""
    name = make_collection(
        [
            {"name": "id", "type": "INT64", "is_primary": True},
            {"name": "emb", "type": "FLOAT_VECTOR", "dim": 4},
            {"name": "j", "type": "JSON"},
        ]
    )

    with pytest.raises(FatalTargetError) as caught:
        client.upsert(
            database="default",
            collection=name,
            rows=[{"id": 1, "emb": [0.0] * 4, "j": {"genre": "novel"}}],
        )

    assert caught.value.code == 1100
    assert "json field 'j' is illegal" in str(caught.value)


@pytest.mark.milvus
def test_collection_with_an_array_field_is_refused_and_stops_the_job(client, make_collection):
    """Milvus 2.3.5's v1 REST has no way to write an Array field either: every row fails with
    code 1804 "fieldName: arr: invalid parameter[expected=][actual=Array]"."""
    name = make_collection(
        [
            {"name": "id", "type": "INT64", "is_primary": True},
            {"name": "emb", "type": "FLOAT_VECTOR", "dim": 4},
            {"name": "arr", "type": "ARRAY", "element_type": DataType.INT64, "max_capacity": 4},
        ]
    )

    with pytest.raises(FatalTargetError) as caught:
        client.upsert(
            database="default", collection=name, rows=[{"id": 1, "emb": [0.0] * 4, "arr": [1, 2]}]
        )

    assert caught.value.code == 1804
    assert "fieldName: arr" in str(caught.value)


def test_a_closed_port_is_retryable():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = ClusterClient(ClusterConfig(base_url=f"http://127.0.0.1:{port}", timeout_seconds=5))

    with pytest.raises(RetryableClusterError, match=f"Could not reach http://127.0.0.1:{port}"):
        client.list_collections("default")
