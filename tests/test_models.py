"""The data model's invariants: secrets at rest, URLs, the job state machine, the audit trail."""

import io

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.test import override_settings

from tests.factories import make_cluster, make_job, make_user
from upserts.models import (
    AuditAction,
    AuditEvent,
    ClusterEndpoint,
    JobStatus,
    UpsertBatch,
    job_upload_path,
    validate_cluster_url,
)
from upserts.services import jobs
from upserts.services.audit import REDACTED, record_event

pytestmark = pytest.mark.django_db

TOKEN = "db_admin:Sup3r-Secret-Passw0rd"


def raw_token_column(cluster: ClusterEndpoint) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT token FROM upserts_clusterendpoint WHERE id = %s", [cluster.pk])
        return cursor.fetchone()[0]


def test_cluster_token_is_stored_encrypted_and_read_back_in_clear():
    cluster = make_cluster(token=TOKEN)

    stored = raw_token_column(cluster)

    assert TOKEN not in stored and "Sup3r" not in stored
    assert stored.startswith("gAAAA")  # a Fernet token
    assert ClusterEndpoint.objects.get(pk=cluster.pk).token == TOKEN


def test_empty_token_stays_empty_and_means_no_token():
    cluster = make_cluster(token="")

    assert raw_token_column(cluster) == ""
    assert not ClusterEndpoint.objects.get(pk=cluster.pk).has_token


def test_token_never_appears_in_str_or_repr():
    cluster = make_cluster(token=TOKEN)

    assert TOKEN not in str(cluster) and TOKEN not in repr(cluster)


def test_rotating_the_encryption_key_keeps_tokens_readable():
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    with override_settings(FIELD_ENCRYPTION_KEYS=[old_key]):
        cluster = make_cluster(token=TOKEN)

    with override_settings(FIELD_ENCRYPTION_KEYS=[new_key, old_key]):
        assert ClusterEndpoint.objects.get(pk=cluster.pk).token == TOKEN
        call_command("rotate_encryption_key", stdout=io.StringIO())

    with override_settings(FIELD_ENCRYPTION_KEYS=[new_key]):
        assert ClusterEndpoint.objects.get(pk=cluster.pk).token == TOKEN
    assert Fernet(new_key.encode()).decrypt(raw_token_column(cluster).encode()).decode() == TOKEN


def test_token_encrypted_with_a_key_no_longer_listed_gives_an_actionable_error():
    with override_settings(FIELD_ENCRYPTION_KEYS=[Fernet.generate_key().decode()]):
        cluster = make_cluster(token=TOKEN)

    with (
        override_settings(FIELD_ENCRYPTION_KEYS=[Fernet.generate_key().decode()]),
        pytest.raises(ImproperlyConfigured, match="keep old keys"),
    ):
        ClusterEndpoint.objects.get(pk=cluster.pk)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:19530",
        "https://in01-abc.api.gcp-us-west1.zillizcloud.com",
        "http://milvus:19530",
        "https://[::1]:19530",
    ],
)
def test_cluster_url_accepts_http_and_https_hosts(url):
    validate_cluster_url(url)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://example.com", "http"),
        ("file:///etc/passwd", "http"),
        ("127.0.0.1:19530", "http"),
        ("http://", "host"),
        ("https://root:Milvus@example.com", "credentials"),
        ("https://example.com/?token=x", "query"),
        ("http://example.com:99999", "port"),
    ],
)
def test_cluster_url_refuses_what_cannot_be_a_cluster(url, problem):
    with pytest.raises(ValidationError, match=problem):
        validate_cluster_url(url)


def test_cluster_url_loses_its_trailing_slash():
    assert make_cluster(base_url="http://127.0.0.1:19530/").base_url == "http://127.0.0.1:19530"


def test_job_walks_the_happy_path_of_its_state_machine():
    job = make_job()

    jobs.mark_validating(job)
    jobs.mark_running(job)
    jobs.mark_finished(job)

    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED
    assert job.started_at is not None and job.finished_at is not None


def test_job_with_failed_rows_finishes_as_partially_failed():
    job = make_job(status=JobStatus.RUNNING, rows_failed=3, rows_upserted=7)

    jobs.mark_finished(job)

    assert job.status == JobStatus.PARTIALLY_FAILED


def test_job_whose_every_row_failed_finishes_as_failed_and_says_why():
    job = make_job(status=JobStatus.RUNNING, rows_failed=3, rows_upserted=0)

    jobs.mark_finished(job)

    assert job.status == JobStatus.FAILED
    assert job.error_message == "No row landed: all 3 rows failed; see the failed rows."


@pytest.mark.parametrize(
    ("start", "move"),
    [
        (JobStatus.PENDING, jobs.mark_running),
        (JobStatus.SUCCEEDED, jobs.mark_validating),
        (JobStatus.CANCELLED, jobs.mark_resumed),
        (JobStatus.RUNNING, jobs.mark_resumed),
    ],
)
def test_job_refuses_transitions_the_state_machine_does_not_allow(start, move):
    job = make_job(status=start)

    with pytest.raises(jobs.IllegalJobTransition, match=f"is {start}"):
        move(job)

    job.refresh_from_db()
    assert job.status == start


def test_a_failed_job_can_be_resumed_keeping_its_checkpoint():
    job = make_job(status=JobStatus.FAILED, checkpoint_row=1500, error_message="cluster down")

    jobs.mark_resumed(job)

    assert job.status == JobStatus.PENDING
    assert job.checkpoint_row == 1500 and job.error_message == ""


def test_two_processes_moving_the_same_job_cannot_both_win():
    job = make_job(status=JobStatus.RUNNING)
    stale_copy = type(job).objects.get(pk=job.pk)

    jobs.mark_cancelled(job)

    with pytest.raises(jobs.IllegalJobTransition):
        jobs.mark_finished(stale_copy)
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED


def test_a_batch_is_recorded_once_per_job_and_sequence():
    job = make_job()
    fields = {"first_row": 1, "last_row": 10, "row_count": 10, "status": "succeeded"}
    UpsertBatch.objects.create(job=job, sequence=1, **fields)

    with pytest.raises(IntegrityError), transaction.atomic():
        UpsertBatch.objects.create(job=job, sequence=1, **fields)


@pytest.mark.parametrize("name", ["../../etc/passwd", "rows.jsonl", "a b/../c.JSON.GZ", "x" * 400])
def test_uploaded_file_names_never_become_storage_paths(name):
    path = job_upload_path(None, name)  # type: ignore[arg-type]

    assert path.startswith("uploads/") and ".." not in path and " " not in path
    assert len(path) < 80


def test_audit_events_cannot_be_changed_or_deleted():
    event = record_event(action=AuditAction.CLUSTER_CREATED, details={"name": "x"})

    event.details = {"name": "y"}
    with pytest.raises(PermissionError):
        event.save()
    with pytest.raises(PermissionError):
        event.delete()
    with pytest.raises(PermissionError):
        AuditEvent.objects.filter(pk=event.pk).update(action="job.started")
    with pytest.raises(PermissionError):
        AuditEvent.objects.all().delete()
    assert AuditEvent.objects.get(pk=event.pk).details == {"name": "x"}


def test_audit_event_never_stores_secrets_passed_in_details():
    event = record_event(
        action=AuditAction.CLUSTER_UPDATED,
        details={"token": TOKEN, "changes": [{"field": "x", "Password": "p"}], "name": "c1"},
    )

    stored = AuditEvent.objects.get(pk=event.pk).details
    assert stored == {
        "token": REDACTED,
        "changes": [{"field": "x", "Password": REDACTED}],
        "name": "c1",
    }


def test_audit_event_keeps_the_actor_name_after_the_user_is_deleted():
    user = make_user("alice")
    cluster = make_cluster()
    event = record_event(
        action=AuditAction.CLUSTER_CREATED, actor=user, target=cluster, client_ip="10.1.2.3"
    )

    user.delete()

    event = AuditEvent.objects.get(pk=event.pk)
    assert event.actor is None and event.actor_username == "alice"
    assert event.target_repr == "local" and event.target_id == str(cluster.pk)
    assert event.client_ip == "10.1.2.3"
