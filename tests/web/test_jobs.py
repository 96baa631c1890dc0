"""Jobs: the filtered list, one job live, and cancel / resume / retry / failed rows download."""

from datetime import timedelta

import orjson
import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone

from tests.factories import make_cluster, make_job
from tests.helpers import page_text
from upserts.models import (
    AuditAction,
    AuditEvent,
    BatchStatus,
    FailedRow,
    JobStatus,
    UpsertBatch,
    UpsertJob,
)
from upserts.services.jobs import IllegalJobTransition

pytestmark = pytest.mark.django_db


def _finished_job(cluster=None, **fields):
    """A job that ran: 3 batches, 2 failed rows (one twice the same reason), a throughput."""
    started = timezone.now() - timedelta(seconds=30)
    fields.setdefault("status", JobStatus.PARTIALLY_FAILED)
    job = make_job(
        cluster,
        file_format="jsonl",
        sha256="ab" * 32,
        estimated_rows=300,
        rows_read=300,
        rows_upserted=297,
        rows_failed=3,
        batches_done=3,
        started_at=started,
        finished_at=started + timedelta(seconds=30),
        **fields,
    )
    for sequence in range(3):
        batch = UpsertBatch.objects.create(
            job=job,
            sequence=sequence,
            first_row=sequence * 100 + 1,
            last_row=sequence * 100 + 100,
            row_count=100,
            status=BatchStatus.PARTIALLY_FAILED if sequence == 1 else BatchStatus.SUCCEEDED,
            attempts=2 if sequence == 1 else 1,
            upsert_count=97 if sequence == 1 else 100,
            milvus_code=200 if sequence != 1 else 1100,
            milvus_message="" if sequence != 1 else "invalid parameter",
            duration_ms=120 + sequence,
        )
        UpsertBatch.objects.filter(pk=batch.pk).update(
            created_at=started + timedelta(seconds=10 * (sequence + 1))
        )
    for row, reason in [
        (150, "field `emb`: expected 4 floats, got 3"),
        (151, "field `emb`: expected 4 floats, got 3"),
        (160, "field `title`: 80 characters, more than its max_length 64"),
    ]:
        FailedRow.objects.create(job=job, row_number=row, reason=reason, entity={"book_id": row})
    return job


def test_the_job_list_shows_badges_and_progress_newest_first(viewer_client):
    cluster = make_cluster("prod")
    older = make_job(cluster, original_filename="older.jsonl")
    running = make_job(
        cluster,
        original_filename="running.jsonl",
        status=JobStatus.RUNNING,
        estimated_rows=200,
        rows_read=50,
        started_at=timezone.now(),
    )

    page = page_text(viewer_client.get(reverse("job_list")))

    assert page.index("running.jsonl") < page.index("older.jsonl")
    assert '<span class="badge running">Running</span>' in page
    assert f'aria-label="Progress of job {running.pk}" value="25.0"' in page
    assert 'hx-trigger="every 3s"' in page, "a running job keeps the list refreshing"
    assert older.pk and running.pk


def test_a_list_of_finished_jobs_does_not_poll(viewer_client):
    _finished_job()

    page = page_text(viewer_client.get(reverse("job_list")))

    assert "hx-trigger" not in page.split('id="job-table"')[1].split(">")[0]


@pytest.mark.parametrize(
    ("query", "shown", "hidden"),
    [
        ({"status": "failed"}, ["a-failed.jsonl"], ["b-ok.jsonl", "c-other.jsonl"]),
        ({"collection": "movies"}, ["c-other.jsonl"], ["a-failed.jsonl", "b-ok.jsonl"]),
        ({"user": "carol"}, ["b-ok.jsonl"], ["a-failed.jsonl", "c-other.jsonl"]),
        ({"q": "OK.JSON"}, ["b-ok.jsonl"], ["a-failed.jsonl", "c-other.jsonl"]),
        ({"q": "cafe"}, ["a-failed.jsonl"], ["b-ok.jsonl", "c-other.jsonl"]),
    ],
)
def test_the_job_list_filters(viewer_client, query, shown, hidden):
    cluster = make_cluster("prod")
    carol = get_user_model().objects.create_user("carol", is_staff=True)
    make_job(
        cluster, original_filename="a-failed.jsonl", status=JobStatus.FAILED, sha256="cafe" * 16
    )
    make_job(cluster, original_filename="b-ok.jsonl", created_by=carol)
    make_job(cluster, original_filename="c-other.jsonl", collection_name="movies")

    page = page_text(viewer_client.get(reverse("job_list"), query))

    assert all(name in page for name in shown)
    assert not any(name in page for name in hidden)


def test_the_job_list_filters_by_cluster_and_date_range(viewer_client):
    prod, test = make_cluster("prod"), make_cluster("test")
    make_job(prod, original_filename="today.jsonl")
    old = make_job(test, original_filename="last-week.jsonl")
    UpsertJob.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=7))
    today = timezone.localdate()

    by_cluster = page_text(viewer_client.get(reverse("job_list"), {"cluster": test.pk}))
    by_date = page_text(
        viewer_client.get(
            reverse("job_list"),
            {"created_from": today.isoformat(), "created_to": today.isoformat()},
        )
    )
    last_week = (today - timedelta(days=7)).isoformat()
    old_only = page_text(viewer_client.get(reverse("job_list"), {"created_to": last_week}))

    assert "last-week.jsonl" in by_cluster and "today.jsonl" not in by_cluster
    assert "today.jsonl" in by_date and "last-week.jsonl" not in by_date
    assert "last-week.jsonl" in old_only and "today.jsonl" not in old_only


@pytest.mark.parametrize("page", ["job_list", "audit_list"])
def test_a_date_range_that_ends_before_it_starts_is_explained_not_applied(viewer_client, page):
    make_job(make_cluster("prod"), original_filename="today.jsonl")
    today = timezone.localdate()
    backwards = {"created_from": today.isoformat(), "created_to": str(today - timedelta(days=3))}

    text = page_text(viewer_client.get(reverse(page), backwards))

    assert "To: The last day comes before the first." in text
    assert page == "audit_list" or "today.jsonl" in text


def test_the_job_list_is_paginated_and_keeps_its_filters(viewer_client):
    cluster = make_cluster("prod")
    for number in range(30):
        make_job(cluster, original_filename=f"file-{number:02d}.jsonl")

    first = page_text(viewer_client.get(reverse("job_list"), {"cluster": cluster.pk}))
    second = page_text(viewer_client.get(reverse("job_list"), {"cluster": cluster.pk, "page": 2}))

    assert "page 1 of 2" in first and "file-29.jsonl" in first and "file-00.jsonl" not in first
    assert f"?cluster={cluster.pk}&amp;page=2" in first
    assert "file-00.jsonl" in second and "file-29.jsonl" not in second


def test_the_job_page_shows_counters_sha256_batches_failures_and_chart(viewer_client):
    job = _finished_job()

    page = page_text(viewer_client.get(reverse("job_detail", args=[job.pk])))

    assert "ab" * 32 in page
    assert "100.0 %" in page and "297" in page
    assert "rows/s" in page and "<svg" in page and 'class="line"' in page
    assert "invalid parameter" in page and "1100" in page
    assert "Failures by reason" in page
    assert page.count("field `emb`: expected 4 floats, got 3") == 1, "grouped, not per row"
    assert "Download failed rows" in page
    assert "Retry failed rows" not in page, "a viewer may not act on jobs"


def test_the_batch_table_is_paginated(viewer_client):
    job = make_job(file_format="jsonl", status=JobStatus.SUCCEEDED)
    UpsertBatch.objects.bulk_create(
        UpsertBatch(
            job=job,
            sequence=number,
            first_row=number * 10 + 1,
            last_row=number * 10 + 10,
            row_count=10,
            status=BatchStatus.SUCCEEDED,
            upsert_count=10,
        )
        for number in range(30)
    )

    second = page_text(viewer_client.get(reverse("job_detail", args=[job.pk]), {"page": 2}))

    assert "page 2 of 2" in second and "291–300" in second and "1–10" not in second


def test_the_live_partial_polls_while_the_job_runs_and_reloads_the_page_once_it_ends(
    viewer_client,
):
    job = make_job(
        file_format="jsonl",
        status=JobStatus.RUNNING,
        estimated_rows=1000,
        rows_read=400,
        started_at=timezone.now() - timedelta(seconds=20),
    )
    url = reverse("job_live", args=[job.pk])

    running = viewer_client.get(url, headers={"HX-Request": "true"})
    UpsertJob.objects.filter(pk=job.pk).update(
        status=JobStatus.SUCCEEDED, finished_at=timezone.now()
    )
    finished = viewer_client.get(url, headers={"HX-Request": "true"})

    assert 'hx-trigger="every 2s"' in page_text(running)
    assert "40.0 %" in page_text(running) and "left" in page_text(running)
    assert "HX-Refresh" not in running
    assert finished["HX-Refresh"] == "true"
    assert "hx-trigger" not in page_text(finished)


def test_operator_sees_the_actions_the_job_allows(operator_client):
    running = make_job(file_format="jsonl", status=JobStatus.RUNNING)
    failed = _finished_job(running.cluster, status=JobStatus.FAILED)

    running_page = page_text(operator_client.get(reverse("job_detail", args=[running.pk])))
    failed_page = page_text(operator_client.get(reverse("job_detail", args=[failed.pk])))

    assert "Cancel job" in running_page and "Resume" not in running_page
    assert "Resume" in failed_page and "Retry failed rows" in failed_page
    assert "Cancel job" not in failed_page


def test_cancelling_a_running_job_asks_it_to_stop(operator_client):
    job = make_job(file_format="jsonl", status=JobStatus.RUNNING)

    response = operator_client.post(reverse("job_cancel", args=[job.pk]), follow=True)

    job.refresh_from_db()
    assert job.cancel_requested and job.status == JobStatus.RUNNING
    assert "stops after the batch it is sending" in page_text(response)
    assert AuditEvent.objects.filter(action=AuditAction.JOB_CANCELLED).exists()


def test_cancelling_a_finished_job_is_refused_with_a_reason(operator_client):
    job = _finished_job()

    response = operator_client.post(reverse("job_cancel", args=[job.pk]), follow=True)

    assert f"Job {job.pk} has already partially failed." in page_text(response)


def test_resuming_a_failed_job_queues_it_from_its_checkpoint(
    operator_client, django_capture_on_commit_callbacks, monkeypatch
):
    queued = []
    monkeypatch.setattr("upserts.tasks.run_upsert_job.delay", queued.append)
    job = _finished_job(status=JobStatus.FAILED, checkpoint_row=200)

    with django_capture_on_commit_callbacks(execute=True):
        response = operator_client.post(reverse("job_resume", args=[job.pk]), follow=True)

    job.refresh_from_db()
    assert job.status == JobStatus.PENDING and queued == [job.pk]
    assert f"Job {job.pk} resumes from row 201." in page_text(response)


def test_a_resume_that_loses_a_race_is_refused_with_a_message_not_a_server_error(
    operator_client, monkeypatch
):
    """Someone else resumed the job between the page's check and its own update."""
    job = _finished_job(status=JobStatus.FAILED)

    def raced(job):
        raise IllegalJobTransition(f"Job {job.pk} is pending; it cannot become pending.")

    monkeypatch.setattr("upserts.services.jobs.mark_resumed", raced)

    response = operator_client.post(reverse("job_resume", args=[job.pk]), follow=True)

    assert response.status_code == 200
    assert f"Job {job.pk} is pending; it cannot become pending." in page_text(response)


def test_resuming_a_job_that_did_not_fail_is_refused(operator_client):
    job = _finished_job()

    response = operator_client.post(reverse("job_resume", args=[job.pk]), follow=True)

    assert "Only a failed job can be resumed" in page_text(response)


def test_retrying_failed_rows_makes_a_new_job_from_them(
    operator_client, django_capture_on_commit_callbacks, monkeypatch, books_cluster
):
    monkeypatch.setattr("upserts.tasks.run_upsert_job.delay", lambda pk: None)
    job = _finished_job(books_cluster)

    with django_capture_on_commit_callbacks(execute=True):
        response = operator_client.post(reverse("job_retry", args=[job.pk]))

    retry = UpsertJob.objects.get(retry_of=job)
    assert response.url == reverse("job_detail", args=[retry.pk])
    with retry.source_file.open("rb") as stored:
        assert [orjson.loads(line)["book_id"] for line in stored] == [150, 151, 160]
    page = page_text(operator_client.get(response.url))
    assert f"job {job.pk}</a>" in page


def test_failed_rows_download_streams_json_lines_with_a_safe_file_name(viewer_client):
    job = _finished_job(original_filename='evil"; filename=../../etc/passwd.jsonl')

    response = viewer_client.get(reverse("job_failed_rows", args=[job.pk]))

    assert response.streaming
    assert response["Content-Type"] == "application/x-ndjson"
    assert (
        response["Content-Disposition"] == f'attachment; filename="job-{job.pk}-failed-rows.jsonl"'
    )
    lines = [orjson.loads(line) for line in page_text(response).splitlines()]
    assert [line["row_number"] for line in lines] == [150, 151, 160]
    assert lines[0]["reason"] == "field `emb`: expected 4 floats, got 3"
    assert lines[0]["entity"] == {"book_id": 150}


def test_an_unknown_job_is_a_friendly_404(viewer_client):
    response = viewer_client.get(reverse("job_detail", args=[999]))

    assert response.status_code == 404
    assert "There is nothing here" in page_text(response)
