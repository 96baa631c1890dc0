"""Clusters through the API: the token goes in and never comes out; tests and schemas come
from the cluster itself, and a cluster that cannot answer is a clean 502."""

import orjson
import pytest

from tests.factories import make_cluster, make_job
from tests.helpers import BOTH_TRANSPORTS
from tests.milvus.fake_cluster import ScriptedAnswer
from tests.milvus.fake_collection import FakeCollection
from upserts.models import AuditAction, AuditEvent, ClusterEndpoint

pytestmark = pytest.mark.django_db

SECRET = "db_admin:s3cr3t-Token-Value-7f3a9c"
# Nothing listens on port 9 of the loopback: connecting fails at once.
CLOSED = "http://127.0.0.1:9"


def assert_secret_absent(*responses) -> None:
    for response in responses:
        assert SECRET not in response.content.decode(), response.content
    for details in AuditEvent.objects.values_list("details", flat=True):
        assert SECRET not in orjson.dumps(details).decode()


def test_lists_and_details_never_show_the_token(api_as):
    cluster = make_cluster("east", token=SECRET)
    client = api_as("cluster_admin")

    listing = client.get("/api/v1/clusters/")
    detail = client.get(f"/api/v1/clusters/{cluster.pk}/")

    assert listing.json()["results"][0]["has_token"] is True
    assert detail.json()["has_token"] is True and "token" not in detail.json()
    assert_secret_absent(listing, detail)


def test_a_cluster_admin_registers_a_cluster_with_a_write_only_token(api_as):
    response = api_as("cluster_admin").post(
        "/api/v1/clusters/",
        {"name": "zilliz", "base_url": "https://in01-x.zillizcloud.com/", "token": SECRET},
        format="json",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    cluster = ClusterEndpoint.objects.get(pk=body["id"])
    assert response["Location"] == body["url"]
    assert body["base_url"] == "https://in01-x.zillizcloud.com" and body["has_token"] is True
    assert cluster.token == SECRET and cluster.created_by.username == "cluster_admin"
    [event] = AuditEvent.objects.filter(action=AuditAction.CLUSTER_CREATED)
    assert event.details["token_set"] is True
    assert_secret_absent(response)


def test_a_cluster_is_registered_for_grpc_and_rest_stays_the_default(api_as):
    client = api_as("cluster_admin")

    over_grpc = client.post(
        "/api/v1/clusters/",
        {
            "name": "self-hosted",
            "base_url": "https://in01-y.zillizcloud.com:19530",
            "api_version": "grpc",
        },
        format="json",
    )
    by_default = client.post(
        "/api/v1/clusters/",
        {"name": "zilliz", "base_url": "https://in01-x.zillizcloud.com/"},
        format="json",
    )

    assert over_grpc.status_code == 201, over_grpc.content
    assert over_grpc.json()["api_version"] == "grpc"
    assert ClusterEndpoint.objects.get(name="self-hosted").api_version == "grpc"
    assert by_default.json()["api_version"] == "v1"


def test_patch_keeps_replaces_or_removes_the_token(api_as):
    cluster = make_cluster("east", token=SECRET)
    client = api_as("cluster_admin")
    url = f"/api/v1/clusters/{cluster.pk}/"

    kept = client.patch(
        url,
        {"request_timeout_seconds": 60, "max_mb_per_second": 4.5, "max_requests_per_second": 20},
        format="json",
    )
    cluster.refresh_from_db()
    assert kept.status_code == 200 and cluster.token == SECRET
    assert cluster.request_timeout_seconds == 60
    assert kept.json()["max_mb_per_second"] == 4.5 and cluster.max_requests_per_second == 20

    replaced = client.patch(url, {"token": "new-key"}, format="json")
    cluster.refresh_from_db()
    assert replaced.json()["has_token"] is True and cluster.token == "new-key"

    removed = client.patch(url, {"token": ""}, format="json")
    cluster.refresh_from_db()
    assert removed.json()["has_token"] is False and cluster.token == ""
    assert_secret_absent(kept, replaced, removed)
    assert "new-key" not in replaced.content.decode()


def test_put_replaces_the_settings_and_needs_the_required_fields(api_as):
    cluster = make_cluster("east", token=SECRET)
    client = api_as("cluster_admin")

    missing = client.put(f"/api/v1/clusters/{cluster.pk}/", {"name": "west"}, format="json")
    replaced = client.put(
        f"/api/v1/clusters/{cluster.pk}/",
        {"name": "west", "base_url": "http://milvus:19530", "api_version": "v2"},
        format="json",
    )

    assert missing.status_code == 400 and set(missing.json()["details"]) == {"base_url"}
    cluster.refresh_from_db()
    assert replaced.status_code == 200
    assert (cluster.name, cluster.api_version, cluster.token) == ("west", "v2", SECRET)


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"name": "east", "base_url": "http://a:1"}, "name", "already exists"),
        ({"name": "x", "base_url": "http://user:pw@host"}, "base_url", "token field"),
        ({"name": "x", "base_url": "ftp://host"}, "base_url", "http"),
        (
            {"name": "x", "base_url": "http://h", "request_timeout_seconds": 0},
            "request_timeout_seconds",
            "",
        ),
        ({"name": "x", "base_url": "http://h", "api_version": "v9"}, "api_version", "valid choice"),
        (
            {"name": "x", "base_url": "http://h", "max_mb_per_second": 0},
            "max_mb_per_second",
            "greater than or equal to 0.01",
        ),
    ],
)
def test_invalid_cluster_fields_are_named(api_as, fields, field, words):
    make_cluster("east")

    response = api_as("cluster_admin").post("/api/v1/clusters/", fields, format="json")

    body = response.json()
    assert response.status_code == 400 and body["code"] == "validation_error"
    assert list(body["details"]) == [field]
    assert words in " ".join(body["details"][field])
    assert body["message"].startswith(f"Invalid input. {field}: ")


def test_a_cluster_with_jobs_cannot_be_deleted_one_without_can(api_as):
    busy, idle = make_cluster("busy"), make_cluster("idle")
    make_job(busy)
    client = api_as("cluster_admin")

    refused = client.delete(f"/api/v1/clusters/{busy.pk}/")
    deleted = client.delete(f"/api/v1/clusters/{idle.pk}/")

    assert refused.status_code == 409
    assert refused.json()["code"] == "cluster_in_use"
    assert "disable it instead" in refused.json()["message"]
    assert deleted.status_code == 204
    assert list(ClusterEndpoint.objects.values_list("name", flat=True)) == ["busy"]
    assert AuditEvent.objects.filter(action=AuditAction.CLUSTER_DELETED).count() == 1


def test_a_cluster_that_does_not_answer_fails_its_test_with_a_502(api_as):
    cluster = make_cluster("closed", base_url=CLOSED, token=SECRET)

    response = api_as("cluster_admin").post(f"/api/v1/clusters/{cluster.pk}/test/")

    body = response.json()
    assert response.status_code == 502
    assert body["code"] == "cluster_error"
    assert body["message"].startswith("The connection test failed: Could not reach")
    assert body["details"]["database"] == "default"
    cluster.refresh_from_db()
    assert cluster.last_test_ok is False and cluster.last_tested_at is not None
    assert AuditEvent.objects.filter(action=AuditAction.CLUSTER_TESTED).count() == 1
    assert_secret_absent(response)


@pytest.mark.parametrize(
    "address", ["/api/v1/clusters/{pk}/collections/", "/api/v1/clusters/{pk}/collections/books/"]
)
def test_collections_of_a_cluster_that_does_not_answer_are_a_502(api_as, address):
    cluster = make_cluster("closed", base_url=CLOSED)

    response = api_as("viewer").get(address.format(pk=cluster.pk))

    assert response.status_code == 502
    assert response.json()["code"] == "cluster_error"
    assert "127.0.0.1:9" in response.json()["message"]


@pytest.mark.milvus
@BOTH_TRANSPORTS
def test_connection_test_collections_and_schema_come_from_the_real_cluster(api_as, cluster, books):
    admin = api_as("cluster_admin")

    tested = admin.post(f"/api/v1/clusters/{cluster.pk}/test/", {}, format="json")
    listed = admin.get(f"/api/v1/clusters/{cluster.pk}/collections/")
    schema = admin.get(f"/api/v1/clusters/{cluster.pk}/collections/{books}/")

    assert tested.status_code == 200, tested.content
    assert tested.json()["ok"] is True and books in tested.json()["collections"]
    assert tested.json()["cluster"]["last_test_ok"] is True
    # Milvus 2.3.5 serves REST v1 and gRPC on one port, and no v2.
    assert tested.json()["answers"] == ["v1", "grpc"]
    assert tested.json()["server_version"].startswith("v2.3.5")
    suggestion = tested.json()["suggestion"]
    assert ("switch the cluster's API to gRPC" in suggestion) is (cluster.api_version == "v1")
    assert listed.json() == {**listed.json(), "database": "default"}
    assert books in listed.json()["collections"]
    body = schema.json()
    assert body["name"] == books and body["primary_field"] == "book_id"
    assert {f["name"]: (f["data_type"], f["dim"]) for f in body["fields"]} == {
        "book_id": ("Int64", None),
        "title": ("VarChar", None),
        "emb": ("FloatVector", 4),
    }


@pytest.mark.milvus
@BOTH_TRANSPORTS
def test_a_collection_the_cluster_does_not_have_is_a_404(api_as, cluster):
    response = api_as("viewer").get(f"/api/v1/clusters/{cluster.pk}/collections/no_such_books/")

    assert response.status_code == 404, response.content
    assert response.json()["code"] == "collection_not_found"


def test_a_v1_cluster_whose_endpoint_answers_v2_is_told_to_switch(api_as, fake_cluster):
    FakeCollection().serve(fake_cluster)
    FakeCollection().serve(fake_cluster, api="v2")
    fake_cluster.respond(
        "/v1/vector/collections",
        lambda request: ScriptedAnswer(body=b'{"code": 200, "data": ["books"]}'),
        method="GET",
    )
    cluster = make_cluster("both", base_url=fake_cluster.url)

    tested = api_as("cluster_admin").post(f"/api/v1/clusters/{cluster.pk}/test/")

    assert tested.status_code == 200, tested.content
    assert tested.json()["answers"] == ["v1", "v2"]
    assert tested.json()["server_version"] == ""
    assert "switch the cluster's API to v2" in tested.json()["suggestion"]
    event = AuditEvent.objects.get(action=AuditAction.CLUSTER_TESTED)
    assert event.details["answers"] == ["v1", "v2"]
