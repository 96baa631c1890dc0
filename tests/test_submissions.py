"""Every way in — the upload form, the API, the ``upsert`` command (queued or run here) and
"retry failed rows" — goes through ``submit_upload``: the same checks refuse the same files
with the same words, and a job gets the same audit events whichever way it came."""

import io
from pathlib import Path

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core.management import CommandError, call_command
from django.urls import reverse

from tests.factories import make_user_with_role
from tests.helpers import log_in, token_client
from upserts import roles
from upserts.models import AuditAction, AuditEvent, FailedRow, JobStatus, UpsertJob
from upserts.services.submissions import retry_failed_rows

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_password_hashing")]

ROWS = b'{"book_id": 1, "title": "A", "emb": [0.1, 0.2, 0.3, 0.4]}\n'
MISSING = "Cannot use collection films on books-fake: "


@pytest.fixture(autouse=True)
def no_queue(monkeypatch):
    """Jobs are queued (the on-commit hook runs) but no worker is asked to run them here."""
    queued: list[int] = []
    monkeypatch.setattr("upserts.tasks.run_upsert_job.delay", queued.append)
    return queued


def through_the_form(client, cluster, collection: str):
    log_in(client, "operator")
    file = io.BytesIO(ROWS)
    file.name = "books.jsonl"
    response = client.post(
        reverse("upload_new"),
        {
            "cluster": cluster.pk,
            "collection_name": collection,
            "file": file,
            "batch_size": 500,
            "max_in_flight": 2,
        },
    )
    if response.status_code == 200:
        return response.context["form"].non_field_errors()[0]
    return None


def through_the_api(client, cluster, collection: str):
    api = token_client(make_user_with_role("api-operator", roles.OPERATORS))
    file = io.BytesIO(ROWS)
    file.name = "books.jsonl"
    response = api.post(
        "/api/v1/jobs/",
        {"cluster": cluster.pk, "collection": collection, "file": file},
        format="multipart",
    )
    return response.json()["message"] if response.status_code == 400 else None


def through_the_command(client, cluster, collection: str, *extra: str, tmp_path: Path):
    path = tmp_path / "books.jsonl"
    path.write_bytes(ROWS)
    try:
        call_command(
            "upsert",
            str(path),
            "--cluster",
            cluster.name,
            "--collection",
            collection,
            *extra,
            stdout=io.StringIO(),
        )
    except CommandError as exc:
        return str(exc)
    return None


ENTRIES = {
    "form": (through_the_form, [AuditAction.FILE_UPLOADED]),
    "api": (through_the_api, [AuditAction.FILE_UPLOADED, AuditAction.JOB_STARTED]),
    "command": (
        lambda c, k, n, tmp_path: through_the_command(c, k, n, tmp_path=tmp_path),
        [AuditAction.FILE_UPLOADED, AuditAction.JOB_STARTED],
    ),
}


def submit(entry: str, client, cluster, collection: str, tmp_path: Path, capture):
    how, _ = ENTRIES[entry]
    with capture(execute=True):  # as the commit of a real request would
        if entry == "command":
            return how(client, cluster, collection, tmp_path)
        return how(client, cluster, collection)


def events_of(job: UpsertJob) -> list[AuditEvent]:
    return list(
        AuditEvent.objects.filter(
            target_type=ContentType.objects.get_for_model(UpsertJob), target_id=str(job.pk)
        ).order_by("pk")
    )


@pytest.mark.parametrize("entry", sorted(ENTRIES))
def test_every_way_in_refuses_a_missing_collection_alike_and_stores_nothing(
    entry, client, books_cluster, tmp_path, settings, django_capture_on_commit_callbacks
):
    settings.MEDIA_ROOT = tmp_path / "media"

    refusal = submit(
        entry, client, books_cluster, "films", tmp_path, django_capture_on_commit_callbacks
    )

    assert refusal is not None and refusal.startswith(MISSING), refusal
    assert "can't find collection: films" in refusal
    assert not UpsertJob.objects.exists()
    assert not AuditEvent.objects.filter(action=AuditAction.FILE_UPLOADED).exists()
    assert not (tmp_path / "media" / "uploads").exists() or not any(
        (tmp_path / "media" / "uploads").iterdir()
    )


@pytest.mark.parametrize("entry", sorted(ENTRIES))
def test_every_way_in_makes_the_same_job_with_the_same_audit_events(
    entry, client, books_cluster, tmp_path, no_queue, django_capture_on_commit_callbacks
):
    assert (
        submit(entry, client, books_cluster, "books", tmp_path, django_capture_on_commit_callbacks)
        is None
    )

    job = UpsertJob.objects.get()
    events = events_of(job)
    assert [e.action for e in events] == ENTRIES[entry][1]
    uploaded = events[0].details
    assert (uploaded["collection"], uploaded["format"], uploaded["size_bytes"]) == (
        "books",
        "jsonl",
        len(ROWS),
    )
    assert (job.batch_size, job.max_in_flight, job.max_batch_bytes) == (500, 2, 8 * 1024 * 1024)
    assert no_queue == ([job.pk] if len(ENTRIES[entry][1]) == 2 else [])


@pytest.mark.django_db(transaction=True)  # the job runs on another thread's connection
def test_the_command_run_here_is_audited_as_started_and_queues_nothing(
    books_cluster, tmp_path, no_queue
):
    assert through_the_command(None, books_cluster, "books", "--here", tmp_path=tmp_path) is None

    job = UpsertJob.objects.get()
    assert job.status == JobStatus.SUCCEEDED
    started = AuditEvent.objects.get(action=AuditAction.JOB_STARTED, target_id=str(job.pk))
    assert started.details["runs_in"] == "the command"
    assert no_queue == []


def test_retrying_failed_rows_is_a_submission_checked_against_the_cluster(
    books_cluster, tmp_path, no_queue, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        assert through_the_command(None, books_cluster, "books", tmp_path=tmp_path) is None
    job = UpsertJob.objects.get()
    UpsertJob.objects.filter(pk=job.pk).update(status=JobStatus.PARTIALLY_FAILED)
    FailedRow.objects.create(job=job, row_number=1, reason="refused", entity={"book_id": 1})
    job.refresh_from_db()

    with django_capture_on_commit_callbacks(execute=True):
        retry = retry_failed_rows(job)

    events = events_of(retry)
    assert [e.action for e in events] == [
        AuditAction.FILE_UPLOADED,
        AuditAction.JOB_STARTED,
        AuditAction.JOB_RETRIED,
    ]
    assert no_queue == [job.pk, retry.pk]


def test_a_disabled_cluster_or_a_v1_partition_is_refused_without_asking_the_cluster(
    books_cluster, fake_cluster, tmp_path
):
    refused_partition = through_the_command(
        None, books_cluster, "books", "--partition", "p1", tmp_path=tmp_path
    )
    books_cluster.is_enabled = False
    books_cluster.save()
    refused_disabled = through_the_command(None, books_cluster, "books", tmp_path=tmp_path)

    assert refused_partition == "The v1 REST API cannot upsert into a partition; leave it empty."
    assert refused_disabled == "Cluster books-fake is disabled; it takes no new jobs."
    assert fake_cluster.requests == [] and not UpsertJob.objects.exists()
