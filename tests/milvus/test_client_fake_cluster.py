"""The client against a scripted server, for what a real Milvus 2.3.5 cannot produce: the v2
API, HTTP-level failures (429, 5xx, proxy pages, 401), slow answers, and error codes it never
sends here."""

import math
import pickle
from typing import Any

import orjson
import pytest

from tests.milvus.fake_cluster import FakeCluster
from upserts.milvus.client import ClusterClient, ClusterConfig
from upserts.milvus.errors import (
    AuthenticationError,
    ClusterError,
    DataRejectedError,
    FatalTargetError,
    RateLimitedError,
    RetryableClusterError,
    RowEncodingError,
)

TOKEN = "db_admin:s3cret-Pa55word"
V2_UPSERT = "/v2/vectordb/entities/upsert"
V1_UPSERT = "/v1/vector/upsert"
ROWS = [{"id": 1, "emb": [0.1, 0.2, 0.3, 0.4]}, {"id": 2, "emb": [0.5, 0.6, 0.7, 0.8]}]


def client_for(cluster: FakeCluster, **config: Any) -> ClusterClient:
    settings = {"api_version": "v2", "token": TOKEN, "timeout_seconds": 5.0, **config}
    return ClusterClient(ClusterConfig(base_url=cluster.url, **settings))


def upsert_rows(client: ClusterClient, **kwargs: Any) -> Any:
    return client.upsert(database="default", collection="books", rows=ROWS, **kwargs)


def test_v2_upsert_sends_bearer_token_int64_header_timeout_and_partition(fake_cluster):
    fake_cluster.answer(
        V2_UPSERT, json_body={"code": 0, "data": {"upsertCount": 2, "upsertIds": ["1", "2"]}}
    )
    client = client_for(fake_cluster, timeout_seconds=12.5)

    result = upsert_rows(client, partition="recent")

    assert (result.upsert_count, result.upsert_ids, result.http_status) == (2, ["1", "2"], 200)
    assert (result.code, result.elapsed_ms > 0) == (0, True)
    [sent] = fake_cluster.requests
    assert (sent.method, sent.path) == ("POST", V2_UPSERT)
    assert sent.headers["Authorization"] == f"Bearer {TOKEN}"
    assert sent.headers["Accept-Type-Allow-Int64"] == "true"
    assert sent.headers["Content-Type"] == "application/json"
    # A second short of the client's 12.5 s, so the cluster's 408 comes first.
    assert sent.headers["Request-Timeout"] == "12"
    assert sent.json() == {
        "dbName": "default",
        "collectionName": "books",
        "partitionName": "recent",
        "data": ROWS,
    }


def test_ids_are_kept_exactly_as_the_cluster_sent_them(fake_cluster):
    ids = ["9223372036854775807", 12, "abc"]
    fake_cluster.answer(
        V2_UPSERT, json_body={"code": 0, "data": {"upsertCount": 3, "upsertIds": ids}}
    )

    result = upsert_rows(client_for(fake_cluster))

    assert result.upsert_ids == ids


def test_int64_ids_sent_as_json_numbers_are_read_exactly(fake_cluster):
    # Past 2**53, where a reader of JSON numbers as doubles would round them.
    body = b'{"code":0,"data":{"upsertCount":2,"upsertIds":[9223372036854775807,9007199254740993]}}'
    fake_cluster.answer(V2_UPSERT, body=body)

    result = upsert_rows(client_for(fake_cluster))

    assert result.upsert_ids == [9223372036854775807, 9007199254740993]


def test_success_is_code_0_on_v2_and_200_or_0_on_v1(fake_cluster):
    fake_cluster.answer(V1_UPSERT, json_body={"code": 200, "data": {"upsertCount": 2}})
    fake_cluster.answer(V1_UPSERT, json_body={"code": 0, "data": {"upsertCount": 2}})
    # On v2, 200 is Milvus' code for a partition that does not exist.
    fake_cluster.answer(V2_UPSERT, json_body={"code": 200, "data": {"upsertCount": 2}})

    v1 = client_for(fake_cluster, api_version="v1")
    assert [upsert_rows(v1).code, upsert_rows(v1).code] == [200, 0]
    with pytest.raises(FatalTargetError, match="partition does not exist"):
        upsert_rows(client_for(fake_cluster))


def test_without_a_token_no_authorization_header_is_sent_and_v1_has_no_request_timeout(
    fake_cluster,
):
    fake_cluster.answer(V1_UPSERT, json_body={"code": 200, "data": {"upsertCount": 2}})

    upsert_rows(client_for(fake_cluster, api_version="v1", token=""))

    [sent] = fake_cluster.requests
    assert "Authorization" not in sent.headers
    assert "Request-Timeout" not in sent.headers
    assert sent.headers["Accept-Type-Allow-Int64"] == "false"


def test_pre_encoded_body_is_sent_byte_for_byte(fake_cluster):
    fake_cluster.answer(V2_UPSERT, json_body={"code": 0, "data": {"upsertCount": 2}})
    client = client_for(fake_cluster)
    body = client.encode_upsert_body(
        database="default", collection="books", rows=ROWS, partition="p1"
    )

    client.upsert(database="default", collection="books", body=body)

    assert fake_cluster.requests[0].body == body


def test_empty_database_leaves_db_name_out_so_the_cluster_uses_its_default(fake_cluster):
    client = client_for(fake_cluster)

    body = client.encode_upsert_body(database="", collection="books", rows=ROWS)

    assert "dbName" not in orjson.loads(body)


def test_v2_lists_collections_of_the_given_database(fake_cluster):
    fake_cluster.answer(
        "/v2/vectordb/collections/list", json_body={"code": 0, "data": ["books", "films"]}
    )

    names = client_for(fake_cluster).list_collections("library")

    assert names == ["books", "films"]
    assert fake_cluster.requests[0].json() == {"dbName": "library"}


def test_v2_describe_reads_dim_max_length_element_type_and_nullable_from_params(fake_cluster):
    fake_cluster.answer(
        "/v2/vectordb/collections/describe",
        json_body={
            "code": 0,
            "data": {
                "collectionName": "books",
                "autoId": False,
                "enableDynamicField": True,
                "load": "LoadStateLoaded",
                "shardsNum": 1,
                "fields": [
                    {"name": "id", "type": "Int64", "primaryKey": True, "autoId": False, "id": 100},
                    {
                        "name": "emb",
                        "type": "FloatVector",
                        "primaryKey": False,
                        "autoId": False,
                        "params": [{"key": "dim", "value": "768"}],
                    },
                    {
                        "name": "title",
                        "type": "VarChar",
                        "nullable": True,
                        "params": [{"key": "max_length", "value": "256"}],
                    },
                    # As Milvus writes a protobuf ValueField, and as a plain value.
                    {"name": "year", "type": "Int64", "defaultValue": {"Data": {"LongData": 1999}}},
                    {"name": "shelf", "type": "VarChar", "defaultValue": "A"},
                    {"name": "rank", "type": "Int32", "nullable": True, "defaultValue": None},
                    {
                        "name": "tags",
                        "type": "Array",
                        "elementType": "VarChar",
                        "params": [
                            {"key": "max_capacity", "value": "8"},
                            {"key": "max_length", "value": "32"},
                        ],
                    },
                ],
            },
        },
    )

    schema = client_for(fake_cluster).describe_collection("library", "books")

    assert fake_cluster.requests[0].json() == {"dbName": "library", "collectionName": "books"}
    assert (schema.name, schema.enable_dynamic_field, schema.load_state) == (
        "books",
        True,
        "LoadStateLoaded",
    )
    assert schema.primary_field.name == "id" and not schema.auto_id
    emb, title, tags = (schema.field_named(n) for n in ("emb", "title", "tags"))
    assert emb is not None and emb.is_vector and emb.dim == 768
    assert title is not None and title.max_length == 256 and title.nullable
    assert tags is not None and tags.data_type == "Array" and tags.element_type == "VarChar"
    assert schema.extra["shardsNum"] == 1
    defaults = {f.name: (f.has_default, f.default_value) for f in schema.fields}
    assert defaults["year"] == (True, 1999) and defaults["shelf"] == (True, "A")
    assert defaults["rank"] == (False, None) and defaults["title"] == (False, None)
    assert [f.name for f in schema.fields if f.may_be_left_out] == [
        "title",
        "year",
        "shelf",
        "rank",
    ]


@pytest.mark.parametrize(
    ("status", "answer", "content_type", "shown", "throttled"),
    [
        (
            429,
            b'{"code": 1807, "message": "request is rejected by limiter"}',
            "application/json",
            "rejected by limiter",
            True,
        ),
        (429, b"Too Many Requests", "text/plain", "Too Many Requests", True),
        (503, b"upstream connect error", "text/plain", "upstream connect error", False),
        (
            502,
            b"<html><head><title>502 Bad Gateway</title></head>\n<body><center>"
            b"<h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>",
            "text/html",
            "502 Bad Gateway",
            False,
        ),
        (
            200,
            b'{"code": 1807, "message": "request is rejected by limiter"}',
            "application/json",
            "rejected by limiter",
            True,
        ),
        (
            200,
            b'{"code": 8, "message": "rate limit exceeded[rate=10]"}',
            "application/json",
            "rate limit exceeded",
            True,
        ),
        (
            200,
            b'{"code": 4, "message": "too many concurrent requests"}',
            "application/json",
            "too many concurrent",
            True,
        ),
        (
            200,
            b'{"code": 2, "message": "service unavailable: not ready"}',
            "application/json",
            "service unavailable",
            False,
        ),
    ],
)
def test_rate_limits_and_unavailable_clusters_are_retryable(
    fake_cluster, status, answer, content_type, shown, throttled
):
    fake_cluster.answer(V2_UPSERT, status=status, body=answer, content_type=content_type)

    with pytest.raises(RetryableClusterError) as caught:
        upsert_rows(client_for(fake_cluster))

    assert shown in str(caught.value)
    assert caught.value.http_status == status
    # A rate limit also shrinks the cluster's rate budget; an unavailable cluster does not.
    assert isinstance(caught.value, RateLimitedError) is throttled
    assert "<" not in str(caught.value), "an HTML page is shown as its text"


def test_http_401_is_an_authentication_error_that_stops_the_job(fake_cluster):
    fake_cluster.answer(
        V2_UPSERT, status=401, json_body={"code": 1800, "message": "user hasn't authenticated"}
    )

    with pytest.raises(AuthenticationError) as caught:
        upsert_rows(client_for(fake_cluster))

    assert isinstance(caught.value, FatalTargetError)
    assert (caught.value.code, caught.value.http_status) == (1800, 401)
    assert "token" in str(caught.value) and "user hasn't authenticated" in str(caught.value)


@pytest.mark.parametrize(
    ("code", "message", "expected"),
    [
        (9, "quota exceeded[reason=disk quota exceeded]", FatalTargetError),
        (200, "partition not found[partition=recent]", FatalTargetError),
        (1801, "can only accept json format request", FatalTargetError),
        (65535, "something new went wrong", FatalTargetError),
        (1802, "missing required parameters", FatalTargetError),
        (1806, "primary key type mismatch", DataRejectedError),
        (1102, "parameter too large", DataRejectedError),
        (1100, "the length (65) of 0th string exceeds max length (64)", DataRejectedError),
    ],
)
def test_error_codes_the_local_milvus_never_sends_are_classified(
    fake_cluster, code, message, expected
):
    fake_cluster.answer(V2_UPSERT, json_body={"code": code, "message": message})

    with pytest.raises(ClusterError) as caught:
        upsert_rows(client_for(fake_cluster))

    assert type(caught.value) is expected
    assert caught.value.code == code
    assert message in str(caught.value) and caught.value.cluster_message == message


def test_a_too_large_request_page_is_data_rejected_so_the_batch_can_be_split(fake_cluster):
    fake_cluster.answer(
        V2_UPSERT,
        status=413,
        body=b"<h1>413 Request Entity Too Large</h1>",
        content_type="text/html",
    )

    with pytest.raises(DataRejectedError, match="413 Request Entity Too Large"):
        upsert_rows(client_for(fake_cluster))


def test_a_server_without_the_v2_api_is_fatal_and_names_the_api_version(fake_cluster):
    with pytest.raises(FatalTargetError, match="REST API version") as caught:
        upsert_rows(client_for(fake_cluster))

    assert caught.value.http_status == 404
    assert "404 page not found" in str(caught.value)


@pytest.mark.parametrize(
    ("status", "answer"),
    [
        (408, {"code": 10001, "message": "request timeout"}),
        (408, None),
    ],
    ids=["json", "no-body"],
)
def test_a_408_after_the_request_timeout_is_retryable(fake_cluster, status, answer):
    if answer is None:
        fake_cluster.answer(V2_UPSERT, status=status, body=b"", content_type="text/plain")
    else:
        fake_cluster.answer(V2_UPSERT, status=status, json_body=answer)

    with pytest.raises(RetryableClusterError, match="Request-Timeout") as caught:
        upsert_rows(client_for(fake_cluster))

    assert caught.value.http_status == 408


def test_an_answer_slower_than_the_timeout_is_retryable(fake_cluster):
    fake_cluster.answer(V2_UPSERT, json_body={"code": 0, "data": {}}, delay_seconds=2.0)

    with pytest.raises(RetryableClusterError, match="within 0.3 s"):
        upsert_rows(client_for(fake_cluster, timeout_seconds=0.3))


def test_the_token_appears_in_no_message_or_repr(fake_cluster):
    password = TOKEN.partition(":")[2]
    fake_cluster.answer(
        V2_UPSERT,
        status=401,
        json_body={"code": 1800, "message": f"bad credentials Bearer {TOKEN}"},
    )
    fake_cluster.answer(
        V2_UPSERT,
        status=502,
        body=f"<html>proxy saw password {password}</html>".encode(),
        content_type="text/html",
    )
    fake_cluster.answer(V2_UPSERT, json_body={"code": 0, "data": {}}, delay_seconds=2.0)
    client = client_for(fake_cluster, timeout_seconds=0.3)
    seen = [repr(client.config), str(client.config), repr(client)]

    for _ in range(3):
        with pytest.raises(ClusterError) as caught:
            upsert_rows(client)
        seen += [str(caught.value), repr(caught.value), caught.value.cluster_message]

    assert "'***'" in repr(client.config)
    assert not [text for text in seen if password in text]


def test_a_token_with_a_line_break_is_refused_without_echoing_it(fake_cluster):
    client = client_for(fake_cluster, token="abc\ndef")

    with pytest.raises(FatalTargetError, match="line break") as caught:
        upsert_rows(client)

    assert "abc" not in str(caught.value) and "def" not in str(caught.value)
    assert fake_cluster.requests == []


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nan_and_infinity_are_refused_naming_the_row_and_field(fake_cluster, bad):
    rows = [ROWS[0], {"id": 2, "emb": [0.1, bad, 0.3, 0.4], "note": None}]

    with pytest.raises(RowEncodingError) as caught:
        client_for(fake_cluster).encode_upsert_body(
            database="default", collection="books", rows=rows
        )

    assert isinstance(caught.value, ValueError)
    assert (caught.value.row_index, caught.value.field) == (1, "emb")
    assert "row 1" in str(caught.value) and "emb[1]" in str(caught.value)


def test_nulls_and_huge_finite_floats_are_encoded_as_given(fake_cluster):
    rows = [{"id": 1, "emb": [1e308, 1e308, 0.0, 0.0], "meta": {"score": None, "n": [1, "a"]}}]

    body = client_for(fake_cluster).encode_upsert_body(
        database="default", collection="books", rows=rows
    )

    assert orjson.loads(body)["data"] == rows


def test_nan_inside_a_json_value_is_refused(fake_cluster):
    rows = [{"id": 1, "emb": [0.0] * 4, "meta": {"scores": [[1.0, math.nan]]}}]

    with pytest.raises(RowEncodingError, match=r"meta\.scores\[0\]\[1\]"):
        client_for(fake_cluster).encode_upsert_body(
            database="default", collection="books", rows=rows
        )


def test_v1_refuses_a_partition_because_the_server_would_ignore_it(fake_cluster):
    with pytest.raises(ValueError, match="v1 REST API cannot target a partition"):
        client_for(fake_cluster, api_version="v1").encode_upsert_body(
            database="default", collection="books", rows=ROWS, partition="recent"
        )

    assert fake_cluster.requests == []


def test_cluster_errors_keep_their_code_through_pickling():
    error = DataRejectedError("refused", code=1804, http_status=200, cluster_message="bad")

    copy = pickle.loads(pickle.dumps(error))

    assert type(copy) is DataRejectedError
    assert (str(copy), copy.code, copy.http_status, copy.cluster_message) == (
        "refused",
        1804,
        200,
        "bad",
    )
