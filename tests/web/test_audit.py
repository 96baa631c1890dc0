"""The audit trail: every event with actor, time, IP and details; filters; CSV; entity lookup."""

import csv
import io
from datetime import timedelta

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from tests.factories import make_cluster, make_job, make_user
from tests.helpers import log_in, page_text
from upserts.models import AuditAction, AuditEvent, BatchStatus, EntityWrite, UpsertBatch
from upserts.services.audit import record_event

pytestmark = pytest.mark.django_db


def test_every_event_shows_actor_time_ip_action_target_and_details(viewer_client):
    alice = make_user("alice")
    cluster = make_cluster("prod")
    record_event(
        action=AuditAction.CLUSTER_TESTED,
        actor=alice,
        target=cluster,
        client_ip="192.0.2.44",
        details={"ok": True, "latency_ms": 17},
    )

    page = page_text(viewer_client.get(reverse("audit_list")))

    assert "alice" in page and "192.0.2.44" in page and "Cluster tested" in page
    assert f'href="{reverse("cluster_detail", args=[cluster.pk])}"' in page
    assert "<b>latency_ms</b> 17" in page


def audited_ip(client, *, remote: str, forwarded: str) -> str:
    """The IP the audit trail records for a cluster created from ``remote`` with that header."""
    log_in(client, "cluster_admin")
    client.post(
        reverse("cluster_create"),
        {
            "name": "prod",
            "base_url": "http://milvus:19530",
            "api_version": "v1",
            "default_database": "default",
            "request_timeout_seconds": 30,
        },
        REMOTE_ADDR=remote,
        HTTP_X_FORWARDED_FOR=forwarded,
    )
    return AuditEvent.objects.get().client_ip


def test_the_ip_is_the_peers_address_not_a_forwarded_header(client):
    assert audited_ip(client, remote="192.0.2.10", forwarded="203.0.113.66") == "192.0.2.10"


def test_behind_a_trusted_proxy_the_ip_is_the_one_the_proxy_appended(client, settings):
    """A client may send an X-Forwarded-For of its own; the proxy appends the real address."""
    settings.TRUST_X_FORWARDED_FOR = True

    ip = audited_ip(client, remote="10.0.0.2", forwarded="6.6.6.6, 203.0.113.66")

    assert ip == "203.0.113.66"


@pytest.fixture
def trail(db):
    alice, bob = make_user("alice"), make_user("bob")
    cluster = make_cluster("prod")
    job = make_job(cluster)
    record_event(action=AuditAction.CLUSTER_CREATED, actor=alice, target=cluster)
    record_event(action=AuditAction.FILE_UPLOADED, actor=bob, target=job, client_ip="198.51.100.5")
    old = record_event(action=AuditAction.JOB_STARTED, actor=bob, target=job)
    # Events are append-only through the ORM; only SQL can date one back for the test.
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE upserts_auditevent SET created_at = %s WHERE id = %s",
            [timezone.now() - timedelta(days=10), old.pk],
        )
    return {"cluster": cluster, "job": job}


@pytest.mark.parametrize(
    ("query", "count"),
    [
        ({}, 3),
        ({"action": "file.uploaded"}, 1),
        ({"user": "bob"}, 2),
        ({"target_type": "clusterendpoint"}, 1),
        ({"q": "198.51.100.5"}, 1),
        ({"q": "Job "}, 2),
        ({"created_from": (timezone.localdate() - timedelta(days=1)).isoformat()}, 2),
        ({"created_to": (timezone.localdate() - timedelta(days=5)).isoformat()}, 1),
    ],
)
def test_the_audit_list_filters(viewer_client, trail, query, count):
    page = page_text(viewer_client.get(reverse("audit_list"), query))

    assert page.count('<td data-label="Time">') == count


def test_the_csv_export_streams_the_filtered_events(viewer_client, trail):
    response = viewer_client.get(reverse("audit_export"), {"user": "bob"})

    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="audit-')
    rows = list(csv.reader(io.StringIO(page_text(response))))
    assert rows[0] == [
        "time",
        "actor",
        "action",
        "target_type",
        "target_id",
        "target",
        "ip",
        "details",
    ]
    assert [row[2] for row in rows[1:]] == ["file.uploaded", "job.started"]
    assert rows[1][1] == "bob" and rows[1][6] == "198.51.100.5" and rows[1][3] == "upsertjob"


def test_the_csv_export_defuses_spreadsheet_formulas(viewer_client):
    record_event(action=AuditAction.CLUSTER_TESTED, actor=make_user("=cmd|calc"))
    record_event(action=AuditAction.CLUSTER_TESTED, actor=make_user("@evil"))

    rows = list(csv.reader(io.StringIO(page_text(viewer_client.get(reverse("audit_export"))))))

    assert sorted(row[1] for row in rows[1:]) == ["'=cmd|calc", "'@evil"]


FORMULA_LEADS = {
    "equals": "=",
    "plus": "+",
    "minus": "-",
    "at": "@",
    "tab": "\t",
    "carriage return": "\r",
    "line feed": "\n",
    "full-width equals": "\uff1d",
    "full-width plus": "\uff0b",
    "full-width minus": "\uff0d",
    "full-width at": "\uff20",
    "small equals": "\ufe66",
    "small plus": "\ufe62",
    "small hyphen-minus": "\ufe63",
    "small at": "\ufe6b",
    "minus sign": "\u2212",
    "space then equals": " =",
    "spaces then minus": "  -",
    "no-break space then plus": "\u00a0+",
    "ideographic space then at": "\u3000@",
}


@pytest.mark.parametrize("lead", FORMULA_LEADS.values(), ids=FORMULA_LEADS.keys())
def test_the_csv_export_defuses_every_formula_start(viewer_client, lead):
    text = f"{lead}cmd|' /C calc'!A0"
    record_event(
        action=AuditAction.CLUSTER_TESTED, actor=make_user(text), target=make_cluster(text)
    )

    rows = list(csv.reader(io.StringIO(page_text(viewer_client.get(reverse("audit_export"))))))

    actor, target = rows[1][1], rows[1][5]
    assert actor.startswith("'") and target == f"'{text}"


def test_the_csv_export_leaves_plain_text_alone(viewer_client):
    for name in ["alice", "a-b", "1.5", "'quoted", "Zoë"]:
        record_event(action=AuditAction.CLUSTER_TESTED, target=make_cluster(name))

    rows = list(csv.reader(io.StringIO(page_text(viewer_client.get(reverse("audit_export"))))))

    assert sorted(row[5] for row in rows[1:]) == sorted(["alice", "a-b", "1.5", "'quoted", "Zoë"])


def test_the_export_link_carries_the_filters(viewer_client, trail):
    page = page_text(viewer_client.get(reverse("audit_list"), {"user": "bob"}))

    assert f'href="{reverse("audit_export")}?user=bob"' in page


def _write(job, entity_id, sequence, when):
    batch = UpsertBatch.objects.create(
        job=job,
        sequence=sequence,
        first_row=1,
        last_row=1,
        row_count=1,
        status=BatchStatus.SUCCEEDED,
        upsert_count=1,
    )
    UpsertBatch.objects.filter(pk=batch.pk).update(created_at=when)
    EntityWrite.objects.create(job=job, batch=batch, entity_id=entity_id)


def test_entity_lookup_names_the_jobs_that_wrote_an_id_latest_first(viewer_client):
    cluster = make_cluster("prod")
    alice, bob = make_user("alice"), make_user("bob")
    first = make_job(
        cluster, collection_name="books", original_filename="v1.jsonl", created_by=alice
    )
    second = make_job(
        cluster, collection_name="books", original_filename="v2.jsonl", created_by=bob
    )
    other = make_job(cluster, collection_name="movies", original_filename="m.jsonl")
    now = timezone.now()
    _write(first, "42", 0, now - timedelta(hours=2))
    _write(second, "42", 3, now - timedelta(hours=1))
    _write(other, "42", 0, now)

    page = page_text(
        viewer_client.get(reverse("entity_lookup"), {"entity_id": " 42 ", "collection": "books"})
    )

    assert "written by 2 batches" in page
    assert page.index("v2.jsonl") < page.index("v1.jsonl")
    assert "bob" in page and "alice" in page and "m.jsonl" not in page
    assert "latest" in page


def test_entity_lookup_says_when_no_job_wrote_the_id(viewer_client):
    page = page_text(
        viewer_client.get(reverse("entity_lookup"), {"entity_id": "7", "collection": "books"})
    )

    assert "No job of this console wrote entity <code>7</code> into <code>books</code>." in page


def test_entity_lookup_needs_an_id_and_a_collection(viewer_client):
    page = page_text(viewer_client.get(reverse("entity_lookup"), {"entity_id": ""}))

    assert page.count("This field is required.") == 2
