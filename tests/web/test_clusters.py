"""Clusters: list, register, change, delete, test the connection, browse a collection's schema."""

import pytest
from django.urls import reverse

from tests.factories import BOOK_FIELDS, make_cluster, make_job
from tests.helpers import BOTH_TRANSPORTS, UNREACHABLE_URL, log_in, page_text
from upserts.models import AuditAction, AuditEvent, ClusterEndpoint

pytestmark = pytest.mark.django_db

TOKEN = "root:Milvus-very-secret-7f3a9c"


def _cluster_form(**overrides):
    data = {
        "name": "prod-eu",
        "base_url": "https://in01-abc.api.gcp-us-west1.zillizcloud.com",
        "api_version": "v2",
        "default_database": "default",
        "verify_tls": "on",
        "request_timeout_seconds": "30",
        "token": "",
    }
    data.update(overrides)
    return data


def test_cluster_list_shows_url_api_version_and_last_test(viewer_client):
    cluster = make_cluster("prod-eu", base_url="https://example.zillizcloud.com", api_version="v2")
    ClusterEndpoint.objects.filter(pk=cluster.pk).update(
        last_test_ok=False,
        last_test_latency_ms=12,
        last_test_message="Could not reach the cluster",
        last_tested_at="2025-01-02T03:04:05Z",
    )

    page = page_text(viewer_client.get(reverse("cluster_list")))

    assert "prod-eu" in page and "https://example.zillizcloud.com" in page
    assert ">v2<" in page
    assert "unreachable" in page and "Could not reach the cluster" in page


def test_admin_registers_a_cluster_and_the_token_is_stored_but_never_shown(admin_client_):
    response = admin_client_.post(
        reverse("cluster_create"), _cluster_form(token=TOKEN), REMOTE_ADDR="192.0.2.7"
    )

    cluster = ClusterEndpoint.objects.get(name="prod-eu")
    assert response.status_code == 302
    assert response.url == reverse("cluster_detail", args=[cluster.pk])
    assert cluster.token == TOKEN and cluster.api_version == "v2"
    event = AuditEvent.objects.get(action=AuditAction.CLUSTER_CREATED)
    assert event.actor_username == "cluster_admin" and event.client_ip == "192.0.2.7"
    detail = page_text(admin_client_.get(response.url))
    assert "set" in detail and TOKEN not in detail


def test_a_bad_url_is_explained_on_the_form_and_the_typed_token_is_not_echoed(admin_client_):
    response = admin_client_.post(
        reverse("cluster_create"), _cluster_form(base_url="ftp://milvus", token=TOKEN)
    )

    page = page_text(response)
    assert response.status_code == 200
    assert "Use an http:// or https:// URL." in page
    assert TOKEN not in page
    assert not ClusterEndpoint.objects.exists()


def test_a_second_cluster_of_the_same_name_is_refused(admin_client_):
    make_cluster("prod-eu")

    response = admin_client_.post(reverse("cluster_create"), _cluster_form())

    assert "Cluster endpoint with this Name already exists." in page_text(response)
    assert ClusterEndpoint.objects.count() == 1


def test_editing_with_a_blank_token_keeps_it_and_the_page_only_says_it_is_set(admin_client_):
    cluster = make_cluster("prod-eu", token=TOKEN)

    form_page = page_text(admin_client_.get(reverse("cluster_edit", args=[cluster.pk])))
    response = admin_client_.post(
        reverse("cluster_edit", args=[cluster.pk]),
        _cluster_form(base_url="http://milvus:19530", is_enabled="on"),
    )

    assert "A token is set — replace it?" in form_page and TOKEN not in form_page
    assert response.status_code == 302
    cluster.refresh_from_db()
    assert cluster.token == TOKEN and cluster.base_url == "http://milvus:19530"
    event = AuditEvent.objects.get(action=AuditAction.CLUSTER_UPDATED)
    assert event.details["changes"]["base_url"]["to"] == "http://milvus:19530"
    assert event.details["token_changed"] is False
    assert TOKEN not in str(event.details)


def test_a_new_token_replaces_the_old_one_and_remove_token_clears_it(admin_client_):
    cluster = make_cluster("prod-eu", token=TOKEN)
    url = reverse("cluster_edit", args=[cluster.pk])

    admin_client_.post(url, _cluster_form(token="new-token", is_enabled="on"))
    cluster.refresh_from_db()
    replaced = cluster.token
    admin_client_.post(url, _cluster_form(remove_token="on", is_enabled="on"))
    cluster.refresh_from_db()

    assert replaced == "new-token"
    assert cluster.token == ""


def test_disabling_a_cluster_through_the_edit_form(admin_client_):
    cluster = make_cluster("prod-eu")

    admin_client_.post(reverse("cluster_edit", args=[cluster.pk]), _cluster_form())

    cluster.refresh_from_db()
    assert cluster.is_enabled is False


def test_a_cluster_with_jobs_cannot_be_deleted_only_disabled(admin_client_):
    cluster = make_cluster("prod-eu")
    make_job(cluster)

    confirm = page_text(admin_client_.get(reverse("cluster_delete", args=[cluster.pk])))
    response = admin_client_.post(reverse("cluster_delete", args=[cluster.pk]))

    assert "cannot be deleted" in confirm and "Disable it instead" in confirm
    assert response.status_code == 409
    assert "disable it instead" in page_text(response)
    assert ClusterEndpoint.objects.filter(pk=cluster.pk).exists()


def test_admin_registers_a_grpc_cluster_and_the_pages_say_so(admin_client_):
    response = admin_client_.post(
        reverse("cluster_create"),
        _cluster_form(api_version="grpc", base_url="https://in01-abc.zillizcloud.com:19530"),
    )

    cluster = ClusterEndpoint.objects.get(name="prod-eu")
    assert response.status_code == 302 and cluster.api_version == "grpc"
    assert "<dd>gRPC (Milvus" in page_text(admin_client_.get(response.url))
    assert ">grpc<" in page_text(admin_client_.get(reverse("cluster_list")))


def test_a_cluster_without_jobs_is_deleted_and_the_deletion_audited(admin_client_):
    cluster = make_cluster("old-test")

    response = admin_client_.post(reverse("cluster_delete", args=[cluster.pk]), follow=True)

    assert not ClusterEndpoint.objects.filter(pk=cluster.pk).exists()
    assert "Cluster old-test deleted." in page_text(response)
    assert AuditEvent.objects.filter(action=AuditAction.CLUSTER_DELETED).count() == 1


def test_testing_an_unreachable_cluster_shows_its_error(admin_client_):
    cluster = make_cluster("gone", base_url=UNREACHABLE_URL)

    response = admin_client_.post(
        reverse("cluster_test", args=[cluster.pk]), headers={"HX-Request": "true"}
    )

    page = page_text(response)
    assert "failed" in page and "Could not reach" in page
    cluster.refresh_from_db()
    assert cluster.last_test_ok is False
    assert AuditEvent.objects.get(action=AuditAction.CLUSTER_TESTED).details["ok"] is False


def test_testing_without_javascript_redirects_with_the_outcome_as_a_message(admin_client_):
    cluster = make_cluster("gone", base_url=UNREACHABLE_URL)

    response = admin_client_.post(reverse("cluster_test", args=[cluster.pk]), follow=True)

    assert response.redirect_chain[-1][0] == reverse("cluster_detail", args=[cluster.pk])
    assert "gone did not answer" in page_text(response)


@pytest.mark.milvus
@BOTH_TRANSPORTS
def test_testing_a_live_cluster_shows_latency_and_the_collections_it_found(
    client, milvus_cluster, make_collection
):
    books = make_collection(BOOK_FIELDS)
    log_in(client, "cluster_admin")

    response = client.post(
        reverse("cluster_test", args=[milvus_cluster.pk]), headers={"HX-Request": "true"}
    )
    row = client.post(
        reverse("cluster_test", args=[milvus_cluster.pk]),
        {"view": "row"},
        headers={"HX-Request": "true"},
    )

    page = page_text(response)
    assert "connected" in page and " ms</strong>" in page
    assert books in page
    assert "Answers REST v1, gRPC · Milvus v2.3.5" in page
    assert ("API to gRPC to load faster" in page) is (milvus_cluster.api_version == "v1")
    assert "reachable" in page_text(row)
    milvus_cluster.refresh_from_db()
    assert milvus_cluster.last_test_ok is True


@pytest.mark.milvus
@BOTH_TRANSPORTS
def test_the_collection_browser_shows_the_schema_as_the_cluster_describes_it(
    client, milvus_cluster, make_collection
):
    books = make_collection(BOOK_FIELDS)
    log_in(client, "viewer")

    listing = page_text(client.get(reverse("cluster_collections", args=[milvus_cluster.pk])))
    page = page_text(client.get(reverse("collection_schema", args=[milvus_cluster.pk, books])))

    assert books in listing
    assert "<code>book_id</code>" in page and "Int64" in page and "primary" in page
    assert "FloatVector" in page and "dim 4" in page
    assert "VarChar" in page and "max 64" in page
    assert "on — fields not in the schema are kept" in page


@pytest.mark.milvus
def test_an_autoid_collection_is_marked_as_unable_to_take_upserts(
    client, milvus_cluster, make_collection
):
    auto = make_collection(
        [
            {"name": "id", "type": "INT64", "is_primary": True, "auto_id": True},
            {"name": "emb", "type": "FLOAT_VECTOR", "dim": 4},
        ]
    )
    log_in(client, "cluster_admin")

    page = page_text(client.get(reverse("collection_schema", args=[milvus_cluster.pk, auto])))

    assert "yes — the collection makes its own keys" in page
    assert "cannot take upserts" in page
    assert "Upload into this collection" not in page


@pytest.mark.milvus
@BOTH_TRANSPORTS
def test_a_missing_collection_shows_the_clusters_explanation(client, milvus_cluster):
    log_in(client, "viewer")

    response = client.get(reverse("collection_schema", args=[milvus_cluster.pk, "no_such_thing"]))

    assert response.status_code == 200
    assert "does not exist" in page_text(response)


def test_the_token_appears_on_no_page(client, unreachable_cluster):
    """Every cluster page, the audit trail and its export: the raw token is never there."""
    token = unreachable_cluster.token
    job = make_job(unreachable_cluster, file_format="jsonl")
    log_in(client, "superuser")
    client.post(reverse("cluster_test", args=[unreachable_cluster.pk]))
    client.post(
        reverse("cluster_edit", args=[unreachable_cluster.pk]),
        _cluster_form(name="unreachable", base_url=UNREACHABLE_URL, is_enabled="on"),
    )
    pk = unreachable_cluster.pk
    urls = [
        reverse("dashboard"),
        reverse("cluster_list"),
        reverse("cluster_detail", args=[pk]),
        reverse("cluster_edit", args=[pk]),
        reverse("cluster_delete", args=[pk]),
        reverse("cluster_collections", args=[pk]),
        reverse("collection_schema", args=[pk, "books"]),
        reverse("upload_new"),
        reverse("upload_collections") + f"?cluster={pk}",
        reverse("upload_preview", args=[job.pk]),
        reverse("job_list"),
        reverse("job_detail", args=[job.pk]),
        reverse("audit_list"),
        reverse("audit_export"),
    ]

    for url in urls:
        response = client.get(url, follow=True)
        assert response.status_code == 200, url
        assert token not in page_text(response), url


def test_a_rate_cap_typed_on_the_form_is_saved_and_shown(admin_client_):
    response = admin_client_.post(
        reverse("cluster_create"),
        _cluster_form(max_mb_per_second="2.5", max_requests_per_second="20"),
    )

    cluster = ClusterEndpoint.objects.get(name="prod-eu")
    assert (cluster.max_mb_per_second, cluster.max_requests_per_second) == (2.5, 20)
    detail = page_text(admin_client_.get(response.url))
    assert "2.5 MB/s and 20 requests/s from all jobs together" in detail
    uncapped = page_text(admin_client_.get(reverse("cluster_detail", args=[make_cluster().pk])))
    assert '<dt>Rate cap</dt><dd><span class="muted">none</span></dd>' in uncapped
