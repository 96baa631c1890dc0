"""The audit trail and the entity lookup through the API."""

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.factories import make_cluster, make_job, make_user
from upserts.models import AuditAction, BatchStatus, EntityWrite, UpsertBatch
from upserts.services.audit import record_event

pytestmark = pytest.mark.django_db


def test_audit_lists_events_newest_first_with_filters(api_as):
    client = api_as("viewer")
    alice, bob = make_user("alice"), make_user("bob")
    job = make_job()
    uploaded = record_event(action=AuditAction.FILE_UPLOADED, actor=alice, target=job)
    cancelled = record_event(
        action=AuditAction.JOB_CANCELLED, actor=bob, target=job, client_ip="10.0.0.5"
    )
    tested = record_event(action=AuditAction.CLUSTER_TESTED, actor=bob, target=job.cluster)

    def ids(query: str) -> list[int]:
        response = client.get(f"/api/v1/audit/?{query}")
        assert response.status_code == 200, response.content
        return [event["id"] for event in response.json()["results"]]

    assert ids("actor=bob") == [tested.pk, cancelled.pk]
    assert ids("action=job.cancelled") == [cancelled.pk]
    assert ids(f"target_type=upsertjob&target_id={job.pk}") == [cancelled.pk, uploaded.pk]
    assert ids("target_type=clusterendpoint") == [tested.pk]
    later = (timezone.now() + timedelta(minutes=1)).isoformat()
    assert ids(f"created_after={later.replace('+00:00', 'Z')}") == []
    event = client.get("/api/v1/audit/?action=job.cancelled").json()["results"][0]
    assert event == {
        **event,
        "actor": "bob",
        "action": "job.cancelled",
        "target_type": "upsertjob",
        "target_id": str(job.pk),
        "client_ip": "10.0.0.5",
    }


def test_audit_refuses_an_unknown_action_naming_the_parameter(api_as):
    response = api_as("viewer").get("/api/v1/audit/?action=job.exploded")

    assert response.status_code == 400
    assert list(response.json()["details"]) == ["action"]


def _write(job, sequence: int, entity_id: str, *, ago: int = 0) -> None:
    batch = UpsertBatch.objects.create(
        job=job,
        sequence=sequence,
        first_row=1,
        last_row=1,
        row_count=1,
        status=BatchStatus.SUCCEEDED,
    )
    UpsertBatch.objects.filter(pk=batch.pk).update(
        created_at=timezone.now() - timedelta(minutes=ago)
    )
    EntityWrite.objects.create(job=job, batch=batch, entity_id=entity_id)


def test_entity_lookup_names_the_jobs_that_wrote_an_id_the_last_first(api_as):
    east, west = make_cluster("east"), make_cluster("west")
    first = make_job(east, created_by=make_user("alice"))
    second = make_job(east)
    elsewhere = make_job(west)
    other_collection = make_job(east, collection_name="films")
    _write(first, 1, "42", ago=10)
    _write(second, 3, "42", ago=1)
    _write(elsewhere, 1, "42", ago=5)
    _write(other_collection, 1, "42")
    client = api_as("viewer")

    found = client.get("/api/v1/entities/lookup/?collection=books&id=42").json()
    in_east = client.get(f"/api/v1/entities/lookup/?collection=books&id=42&cluster={east.pk}")

    assert [w["job"] for w in found["results"]] == [second.pk, elsewhere.pk, first.pk]
    latest = found["results"][0]
    assert latest["batch"] == 3 and latest["cluster_name"] == "east"
    assert latest["job_url"] == f"http://testserver/api/v1/jobs/{second.pk}/"
    assert found["results"][2]["written_by"] == "alice"
    assert [w["job"] for w in in_east.json()["results"]] == [second.pk, first.pk]
    none = client.get("/api/v1/entities/lookup/?collection=books&id=43").json()
    assert none["count"] == 0


def test_entity_lookup_needs_a_collection_and_an_id(api_as):
    response = api_as("viewer").get("/api/v1/entities/lookup/?id=")

    body = response.json()
    assert response.status_code == 400
    assert set(body["details"]) == {"collection", "id"}
