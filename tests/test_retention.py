"""The retention policy: what it removes, what it keeps, and what it tells a person after."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from tests.factories import make_cluster, make_job
from tests.helpers import log_in, page_text
from upserts.models import (
    AuditAction,
    AuditEvent,
    BatchStatus,
    EntityWrite,
    FailedRow,
    JobStatus,
    UpsertBatch,
)
from upserts.services.job_control import JobActionRefused, resume_job
from upserts.services.retention import RetentionPolicy, prune
from upserts.services.stored_files import upload_storage
from upserts.services.submissions import retry_failed_rows

pytestmark = pytest.mark.django_db

POLICY = RetentionPolicy(file_days=30, failed_row_days=90, writes_per_id=2, write_days=60)


@pytest.fixture
def cluster():
    return make_cluster()


def ended_job(cluster, days_ago: float, status=JobStatus.FAILED, **fields):
    job = make_job(cluster, content=b'{"a": 1}\n', status=status, rows_failed=1, **fields)
    job.finished_at = timezone.now() - timedelta(days=days_ago)
    job.save()
    FailedRow.objects.create(job=job, row_number=1, reason="bad", entity={"a": 1})
    return job


def test_files_and_failed_rows_of_jobs_that_ended_long_enough_ago_are_removed(client, cluster):
    old, recent = ended_job(cluster, 100), ended_job(cluster, 10)
    running = make_job(cluster, status=JobStatus.RUNNING)
    storage = upload_storage()

    preview = prune(POLICY, dry_run=True)
    assert (preview.files, preview.failed_rows, preview.jobs) == (1, 1, [old.pk])
    assert storage.exists(old.source_file.name) and FailedRow.objects.count() == 2

    report = prune(POLICY)

    assert (report.files, report.file_bytes, report.failed_rows) == (1, 9, 1)
    assert not storage.exists(old.source_file.name)
    assert storage.exists(recent.source_file.name) and storage.exists(running.source_file.name)
    old.refresh_from_db()
    assert old.file_removed_at and old.failed_rows_removed_at and old.sha256 == old.sha256
    assert list(FailedRow.objects.values_list("job", flat=True)) == [recent.pk]
    event = AuditEvent.objects.get(action=AuditAction.RETENTION_PRUNED)
    assert event.details["files"] == 1 and event.details["policy"]["file_days"] == 30
    assert prune(POLICY).removed_anything is False  # nothing left to remove, nothing audited
    assert AuditEvent.objects.filter(action=AuditAction.RETENTION_PRUNED).count() == 1

    with pytest.raises(JobActionRefused, match="was removed on .* by the retention policy"):
        resume_job(old)
    with pytest.raises(JobActionRefused, match="failed rows of job .* were removed on"):
        retry_failed_rows(old)
    log_in(client, "operator")
    page = " ".join(page_text(client.get(f"/jobs/{old.pk}/")).split())
    assert "The file was removed on" in page and "cannot be resumed or sent again" in page
    assert ">Resume<" not in page and "Retry failed rows" not in page


def write(job, entity_id: str, days_ago: float, sequence: int) -> None:
    batch = UpsertBatch.objects.create(
        job=job, sequence=sequence, first_row=1, last_row=1, row_count=1,
        status=BatchStatus.SUCCEEDED,
    )  # fmt: skip
    UpsertBatch.objects.filter(pk=batch.pk).update(
        created_at=timezone.now() - timedelta(days=days_ago)
    )
    EntityWrite.objects.create(job=job, batch=batch, entity_id=entity_id)


@pytest.mark.parametrize("chunk_rows", [1, 3, 10_000])
def test_entity_writes_keep_the_last_of_each_id_or_the_recent_whichever_keeps_more(
    chunk_rows, cluster
):
    books = make_job(cluster, collection_name="books")
    films = make_job(cluster, collection_name="films")
    # id 7 in books: five old writes and one recent one; the last two are kept (one is old).
    for sequence, days_ago in enumerate([400, 300, 200, 100, 70, 5], start=1):
        write(books, "7", days_ago, sequence)
    # id 8 in books: three recent writes, all kept however many there are.
    for sequence, days_ago in enumerate([50, 40, 30], start=7):
        write(books, "8", days_ago, sequence)
    # id 7 in films is another entity: its one old write is its last, so it stays.
    write(films, "7", 400, 1)

    report = prune(POLICY, chunk_rows=chunk_rows)

    assert report.entity_writes == 4
    kept = EntityWrite.objects.order_by("pk").values_list(
        "job__collection_name", "entity_id", "batch__sequence"
    )
    assert list(kept) == [
        ("books", "7", 5),
        ("books", "7", 6),
        ("books", "8", 7),
        ("books", "8", 8),
        ("books", "8", 9),
        ("films", "7", 1),
    ]


def test_the_prune_command_says_what_it_would_remove_and_removes_nothing_on_a_dry_run(
    settings, cluster
):
    settings.RETAIN_FILES_DAYS = 30
    job = ended_job(cluster, 100)
    out = StringIO()

    call_command("prune", "--dry-run", stdout=out)

    assert "Would remove 1 stored files (9 bytes), 1 failed rows and 0 entity writes." in (
        out.getvalue()
    )
    assert upload_storage().exists(job.source_file.name)
    call_command("prune", stdout=StringIO())
    assert not upload_storage().exists(job.source_file.name)
