"""Starting, cancelling, resuming and retrying jobs; the preview; the upsert command."""

import io
import json
import subprocess
import sys
from datetime import timedelta

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from tests.factories import book
from tests.helpers import (
    BOTH_TRANSPORTS,
    PROJECT_DIR,
    database_url_of_test_database,
    query,
    wait_until,
)
from upserts.models import AuditAction, AuditEvent, JobStatus, UpsertJob
from upserts.preview import estimate_rows, preview_job
from upserts.selectors import job_progress
from upserts.services.job_control import JobActionRefused, cancel_job, resume_job, start_job
from upserts.services.pipeline import SliceOutcome, run_job_slice
from upserts.services.submissions import retry_failed_rows

pytestmark = [pytest.mark.milvus, pytest.mark.django_db(transaction=True)]


def jsonl(rows) -> bytes:
    return b"".join(orjson.dumps(row) + b"\n" for row in rows)


def test_a_pending_job_is_cancelled_at_once_and_never_sent(books, upload):
    job = upload(jsonl([book(1)]), "rows.jsonl", books)

    cancel_job(job)
    run_job_slice(job.pk)

    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED and job.batches_done == 0
    assert AuditEvent.objects.filter(
        action=AuditAction.JOB_CANCELLED, target_id=str(job.pk)
    ).exists()
    with pytest.raises(JobActionRefused, match="already cancelled"):
        cancel_job(job)
    with pytest.raises(JobActionRefused, match="only a pending job starts"):
        start_job(job)


def test_retrying_failed_rows_sends_them_as_a_new_job_once_they_are_fixed(
    books, upload, make_collection, milvus
):
    rows = [book(1), {**book(2), "title": "x" * 80}, book(3), {**book(4), "title": "y" * 70}]
    job = upload(jsonl(rows), "long-titles.jsonl", books)
    run_job_slice(job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.PARTIALLY_FAILED and job.rows_failed == 2

    retry = retry_failed_rows(job)

    assert retry.retry_of == job and retry.status == JobStatus.PENDING
    assert retry.original_filename == f"job-{job.pk}-failed-rows.jsonl"
    resent = [json.loads(line) for line in retry.source_file.open("rb").read().splitlines()]
    assert [row["book_id"] for row in resent] == [2, 4]
    assert AuditEvent.objects.filter(
        action=AuditAction.JOB_RETRIED, target_id=str(retry.pk)
    ).exists()
    if run_job_slice(retry.pk) is SliceOutcome.BUSY:
        # The session's worker, when one runs, took the queued retry first: let it finish.
        wait_until(lambda: UpsertJob.objects.get(pk=retry.pk).is_final, timeout=60)
    retry.refresh_from_db()
    # The rows were not fixed, so they fail again, with the same reasons.
    assert retry.status == JobStatus.FAILED and retry.rows_failed == 2
    assert "No row landed" in retry.error_message


def test_only_a_failed_job_can_be_resumed(books, upload):
    job = upload(jsonl([book(1)]), "rows.jsonl", books)

    with pytest.raises(JobActionRefused, match="Only a failed job"):
        resume_job(job)


@BOTH_TRANSPORTS
def test_preview_checks_the_first_rows_against_the_live_schema(books, upload):
    rows = [book(1), {**book(2), "emb": [1.0]}, book(3)]
    content = jsonl(rows) + b"{broken\n"
    job = upload(content, "rows.jsonl", books)

    preview = preview_job(job, limit=10)

    assert preview.can_start and not preview.target_error and not preview.file_error
    assert preview.columns[:3] == ["book_id", "title", "emb"]
    assert [row.number for row in preview.rows] == [1, 2, 3, 4]
    assert preview.rows[0].is_valid
    assert list(preview.rows[1].problems) == ["emb"]
    assert "" in preview.rows[3].problems
    assert preview.invalid_rows == 2


@BOTH_TRANSPORTS
def test_preview_of_a_missing_collection_says_so_and_cannot_start(upload):
    job = upload(jsonl([book(1)]), "rows.jsonl", "no_such_collection")

    preview = preview_job(job)

    assert not preview.can_start
    assert "can't find collection" in preview.target_error


def test_row_estimate_is_exact_for_parquet_and_small_files_and_close_for_big_ones():
    table = pa.table({"book_id": list(range(5000))})
    parquet = io.BytesIO()
    pq.write_table(table, parquet)
    big = jsonl([book(i) for i in range(1, 40_001)])

    def estimate(content: io.BytesIO, file_format: str, size: int = 0) -> int | None:
        return estimate_rows(
            content, file_format=file_format, gzipped=False, size_bytes=size, filename="f"
        )

    assert estimate(parquet, "parquet") == 5000
    assert estimate(io.BytesIO(jsonl([book(1), book(2)])), "jsonl") == 2
    big_estimate = estimate(io.BytesIO(big), "jsonl", len(big))
    assert big_estimate is not None and 36_000 <= big_estimate <= 44_000


def test_progress_reports_percent_rate_and_eta_from_the_counters(books, upload):
    job = upload(jsonl([book(i) for i in range(1, 101)]), "rows.jsonl", books)
    job.status, job.rows_read, job.estimated_rows = JobStatus.RUNNING, 40, 100
    job.started_at = timezone.now() - timedelta(seconds=10)

    progress = job_progress(job, now=job.started_at + timedelta(seconds=10))

    assert progress.percent == pytest.approx(40.0)
    assert progress.rows_per_second == pytest.approx(4.0)
    assert progress.eta_seconds == pytest.approx(15.0)


def test_upsert_command_runs_a_file_through_the_pipeline_here(books, cluster, milvus, tmp_path):
    path = tmp_path / "books.jsonl"
    path.write_bytes(jsonl([book(i) for i in range(1, 301)]))
    out = io.StringIO()

    call_command(
        "upsert",
        str(path),
        "--cluster",
        cluster.name,
        "--collection",
        books,
        "--here",
        "--batch-size",
        "100",
        stdout=out,
    )

    assert "succeeded: 300 rows read, 300 upserted, 0 failed in 3 batches" in out.getvalue()
    assert len(query(milvus, books, "book_id > 0", ["book_id"], count=300)) == 300


def test_upsert_command_names_what_is_wrong(books, cluster, tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")

    with pytest.raises(CommandError, match="No cluster named 'nope'"):
        call_command("upsert", str(path), "--cluster", "nope", "--collection", books)
    with pytest.raises(CommandError, match="empty"):
        call_command("upsert", str(path), "--cluster", cluster.name, "--collection", books)
    assert not UpsertJob.objects.exists()


@pytest.mark.worker
def test_upsert_command_waits_for_the_worker_and_reports(books, cluster, celery_worker, tmp_path):
    path = tmp_path / "books.csv"
    path.write_text('book_id,title,emb\n1,One,"[1,2,3,4]"\n2,Two,"[1,2,3]"\n')
    env = {
        "DATABASE_URL": database_url_of_test_database(),
        "CELERY_BROKER_URL": celery_worker.env["CELERY_BROKER_URL"],
        "CELERY_QUEUE": celery_worker.queue,
    }

    result = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "upsert",
            str(path),
            "--cluster",
            cluster.name,
            "--collection",
            books,
            "--wait",
        ],
        cwd=PROJECT_DIR,
        env={**celery_worker.env, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    assert "partially failed: 2 rows read, 1 upserted, 1 failed" in result.stdout
    assert "Failures by reason (rows, reason, first row):" in result.stdout
    assert "1  field `emb`: expected 4 floats, got 3  (row 2)" in result.stdout
