"""The Django admin works for every model and keeps cluster tokens write-only."""

import pytest
from django.urls import reverse

from tests.factories import make_cluster, make_job, make_user
from upserts.models import AuditAction, AuditEvent, ClusterEndpoint, UpsertBatch
from upserts.services.audit import record_event

pytestmark = pytest.mark.django_db

TOKEN = "api-key-4f9c2e1b77d0"


@pytest.fixture
def admin_client(client):
    client.force_login(make_user("root", superuser=True))
    return client


def cluster_form(**overrides):
    form = {
        "name": "zilliz-prod",
        "base_url": "https://in01-abc.zillizcloud.com",
        "api_version": "v1",
        "token": "",
        "default_database": "default",
        "verify_tls": "on",
        "request_timeout_seconds": "30",
        "is_enabled": "on",
    }
    form.update(overrides)
    return form


@pytest.mark.parametrize(
    "model", ["clusterendpoint", "upsertjob", "upsertbatch", "auditevent", "workerheartbeat"]
)
def test_every_model_has_a_working_admin_list(admin_client, model):
    job = make_job(make_cluster(token=TOKEN))
    UpsertBatch.objects.create(
        job=job, sequence=1, first_row=1, last_row=2, row_count=2, status="succeeded"
    )
    record_event(action=AuditAction.JOB_STARTED, target=job)

    response = admin_client.get(reverse(f"admin:upserts_{model}_changelist"))

    assert response.status_code == 200
    assert TOKEN not in response.content.decode()


def test_a_cluster_is_switched_to_grpc_in_admin(admin_client):
    cluster = make_cluster("zilliz-prod", base_url="https://in01-abc.zillizcloud.com")
    url = reverse("admin:upserts_clusterendpoint_change", args=[cluster.pk])

    response = admin_client.post(url, cluster_form(api_version="grpc"))

    assert response.status_code == 302
    cluster.refresh_from_db()
    assert cluster.api_version == "grpc"


def test_adding_a_cluster_in_admin_stores_the_token_encrypted_and_records_the_creator(admin_client):
    response = admin_client.post(
        reverse("admin:upserts_clusterendpoint_add"), cluster_form(token=TOKEN)
    )

    assert response.status_code == 302
    cluster = ClusterEndpoint.objects.get(name="zilliz-prod")
    assert cluster.token == TOKEN
    assert cluster.created_by.username == "root"


def test_cluster_change_page_never_renders_the_token_and_blank_keeps_it(admin_client):
    cluster = make_cluster(token=TOKEN)
    url = reverse("admin:upserts_clusterendpoint_change", args=[cluster.pk])

    page = admin_client.get(url).content.decode()
    assert TOKEN not in page
    assert "A token is set" in page

    response = admin_client.post(url, cluster_form(name="local", default_database="books_db"))
    assert response.status_code == 302
    cluster.refresh_from_db()
    assert cluster.token == TOKEN and cluster.default_database == "books_db"


def test_cluster_token_can_be_replaced_or_cleared_in_admin(admin_client):
    cluster = make_cluster(token=TOKEN)
    url = reverse("admin:upserts_clusterendpoint_change", args=[cluster.pk])

    admin_client.post(url, cluster_form(name="local", token="new-key"))
    cluster.refresh_from_db()
    assert cluster.token == "new-key"

    admin_client.post(url, cluster_form(name="local", clear_token="on"))
    cluster.refresh_from_db()
    assert cluster.token == ""


def test_cluster_admin_refuses_a_url_that_is_not_http(admin_client):
    response = admin_client.post(
        reverse("admin:upserts_clusterendpoint_add"), cluster_form(base_url="ftp://example.com")
    )

    assert response.status_code == 200
    assert "Use an http:// or https:// URL." in response.content.decode()
    assert not ClusterEndpoint.objects.exists()


def test_audit_events_are_read_only_in_admin(admin_client):
    event = record_event(action=AuditAction.CLUSTER_CREATED)

    assert admin_client.get(reverse("admin:upserts_auditevent_add")).status_code == 403
    assert (
        admin_client.get(reverse("admin:upserts_auditevent_delete", args=[event.pk])).status_code
        == 403
    )
    page = admin_client.get(reverse("admin:upserts_auditevent_change", args=[event.pk]))
    assert page.status_code == 200 and "Save" not in page.content.decode()


def test_every_change_to_a_cluster_in_admin_is_audited_like_on_the_console_pages(admin_client):
    add = reverse("admin:upserts_clusterendpoint_add")
    admin_client.post(add, cluster_form(token=TOKEN), REMOTE_ADDR="10.0.0.7")
    cluster = ClusterEndpoint.objects.get(name="zilliz-prod")
    change = reverse("admin:upserts_clusterendpoint_change", args=[cluster.pk])
    admin_client.post(change, cluster_form(default_database="books_db", token="new-key"))
    admin_client.post(
        reverse("admin:upserts_clusterendpoint_delete", args=[cluster.pk]), {"post": "yes"}
    )

    events = list(AuditEvent.objects.order_by("pk"))
    assert [e.action for e in events] == [
        AuditAction.CLUSTER_CREATED,
        AuditAction.CLUSTER_UPDATED,
        AuditAction.CLUSTER_DELETED,
    ]
    assert {e.actor_username for e in events} == {"root"}
    assert events[0].client_ip == "10.0.0.7" and events[0].details["token_set"] is True
    assert events[1].details["changes"] == {
        "default_database": {"from": "default", "to": "books_db"}
    }
    assert events[1].details["token_changed"] is True
    assert not ClusterEndpoint.objects.exists()
    assert all(TOKEN not in str(e.details) and "new-key" not in str(e.details) for e in events)


def test_a_selection_holding_a_cluster_with_jobs_deletes_none_and_says_why(admin_client):
    used = make_cluster("used")
    make_job(used)
    spare = make_cluster("spare")

    response = admin_client.post(
        reverse("admin:upserts_clusterendpoint_changelist"),
        {"action": "delete_selected", "_selected_action": [spare.pk, used.pk], "post": "yes"},
        follow=True,
    )

    assert response.status_code == 200
    # The admin itself refuses first: a job protects its cluster.
    assert "Cannot delete cluster endpoint" in response.content.decode()
    assert set(ClusterEndpoint.objects.values_list("name", flat=True)) == {"used", "spare"}
    assert not AuditEvent.objects.filter(action=AuditAction.CLUSTER_DELETED).exists()


def test_clusters_deleted_from_the_admin_list_are_each_audited(admin_client):
    first, second = make_cluster("first"), make_cluster("second")

    admin_client.post(
        reverse("admin:upserts_clusterendpoint_changelist"),
        {"action": "delete_selected", "_selected_action": [first.pk, second.pk], "post": "yes"},
    )

    assert not ClusterEndpoint.objects.exists()
    deleted = AuditEvent.objects.filter(action=AuditAction.CLUSTER_DELETED)
    assert {e.details["name"] for e in deleted} == {"first", "second"}


SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCY"


def bucket_form(**overrides):
    form = {
        "name": "datasets",
        "bucket": "datasets",
        "prefix": "books/",
        "endpoint_url": "http://minio:9000",
        "region": "",
        "path_style": "on",
        "access_key_id": "AKIAEXAMPLE",
        "secret_access_key": SECRET,
        "is_enabled": "on",
    }
    form.update(overrides)
    return form


def test_source_bucket_keys_are_stored_encrypted_never_shown_and_kept_when_left_blank(
    admin_client,
):
    from django.db import connection

    from upserts.models import SourceBucket

    added = admin_client.post(reverse("admin:upserts_sourcebucket_add"), bucket_form())
    assert added.status_code == 302, added.content
    bucket = SourceBucket.objects.get()
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret_access_key FROM upserts_sourcebucket")
        assert SECRET not in cursor.fetchone()[0]
    change = reverse("admin:upserts_sourcebucket_change", args=[bucket.pk])
    assert SECRET not in admin_client.get(change).content.decode()

    admin_client.post(change, bucket_form(access_key_id="", secret_access_key="", prefix="b/"))

    bucket.refresh_from_db()
    assert (bucket.prefix, bucket.secret_access_key) == ("b/", SECRET)
    events = AuditEvent.objects.filter(action=AuditAction.SOURCE_BUCKET_SAVED)
    assert [e.details["created"] for e in events.order_by("pk")] == [True, False]
    assert all(SECRET not in str(e.details) for e in events)


def test_source_addresses_are_https_only_and_keep_their_header_write_only(admin_client):
    from upserts.models import SourceAddress

    form = {
        "name": "exports",
        "url_prefix": "https://data.example.com/exports/",
        "authorization": "Bearer hidden-42",
        "verify_tls": "on",
        "is_enabled": "on",
    }
    plain = admin_client.post(
        reverse("admin:upserts_sourceaddress_add"), {**form, "url_prefix": "http://x/"}
    )
    assert plain.status_code == 200 and not SourceAddress.objects.exists()

    assert admin_client.post(reverse("admin:upserts_sourceaddress_add"), form).status_code == 302
    address = SourceAddress.objects.get()
    change = reverse("admin:upserts_sourceaddress_change", args=[address.pk])
    assert "hidden-42" not in admin_client.get(change).content.decode()
    admin_client.post(change, {**form, "authorization": "", "name": "renamed"})

    address.refresh_from_db()
    assert (address.name, address.authorization) == ("renamed", "Bearer hidden-42")
    assert not any("hidden-42" in str(e.details) for e in AuditEvent.objects.all())
