"""Workers as hosts of their own: each with an empty working directory and media root,
sharing only PostgreSQL, Redis and the S3-compatible store (a real moto_server process) with
the web side. They read each job's file from the bucket, resume a killed job from the object
at its checkpoint, and see several jobs through when one host is killed."""

import uuid
from collections.abc import Iterator

import orjson
import pytest

from console import celery_app
from tests.e2e.test_pipeline import FILES
from tests.factories import BOOK_FIELDS, book
from tests.faults.test_faults import assert_every_row_once, count_in_milvus, kill_hard
from tests.helpers import wait_until
from tests.object_storage import BUCKET, PREFIX, start_s3_worker
from upserts.models import JobStatus, UpsertJob
from upserts.services.job_control import start_job
from upserts.services.submissions import retry_failed_rows

pytestmark = [pytest.mark.milvus, pytest.mark.worker, pytest.mark.django_db(transaction=True)]

BOOKS = [book(i) for i in range(1, 201)]


def finished(job: UpsertJob, timeout: float = 120) -> UpsertJob:
    return wait_until(
        lambda: (fresh := UpsertJob.objects.get(pk=job.pk)).is_final and fresh,
        timeout=timeout,
        interval=0.2,
    )


@pytest.mark.parametrize("filename", ["books.jsonl.gz", "books.csv", "books.parquet"])
def test_a_worker_host_reads_the_job_from_the_bucket(
    filename, s3_storage, s3_queue, s3_worker, make_collection, upload, milvus
):
    books = make_collection(BOOK_FIELDS)
    job = upload(FILES[filename](BOOKS), filename, books, batch_size=64)

    start_job(job)
    job = finished(job)

    assert job.status == JobStatus.SUCCEEDED, job.error_message
    assert_every_row_once(job, len(BOOKS))
    assert count_in_milvus(milvus, books) == len(BOOKS)
    assert not (s3_worker.cwd / "no-shared-disk").exists()  # nothing stored on the host


def test_failed_rows_are_retried_from_a_new_object(
    s3_storage, s3_queue, s3_worker, make_collection, upload, milvus
):
    books = make_collection(BOOK_FIELDS)
    rows = [book(i) for i in range(1, 11)]
    rows[4]["title"] = 5
    job = upload(FILES["books.jsonl"](rows), "books.jsonl", books)
    start_job(job)
    job = finished(job)
    assert (job.status, job.rows_failed) == (JobStatus.PARTIALLY_FAILED, 1)

    retry = finished(retry_failed_rows(job))

    key = f"{PREFIX}/{retry.source_file.name}"
    assert s3_storage.client().head_object(Bucket=BUCKET, Key=key)["ContentLength"] > 0
    assert list(retry.failed_rows.values_list("row_number", flat=True)) == [1]


@pytest.fixture
def own_queue() -> Iterator[str]:
    """Jobs of this test go to its own workers alone."""
    queue = f"hosts-{uuid.uuid4().hex[:8]}"
    before = celery_app.conf.CELERY_TASK_DEFAULT_QUEUE
    celery_app.conf.update(CELERY_TASK_DEFAULT_QUEUE=queue)
    try:
        yield queue
    finally:
        celery_app.conf.update(CELERY_TASK_DEFAULT_QUEUE=before)


def jsonl(rows: int) -> bytes:
    return b"".join(orjson.dumps(book(i)) + b"\n" for i in range(1, rows + 1))


@pytest.mark.usefixtures("other_workers_paused")
def test_a_job_killed_mid_way_resumes_from_the_object_at_its_checkpoint(
    s3_storage, own_queue, worker_environment, make_collection, upload, milvus, tmp_path
):
    books = make_collection(BOOK_FIELDS)
    content = jsonl(20_000)
    job = upload(content, "books.jsonl", books, batch_size=200, max_in_flight=1)
    first = start_s3_worker(worker_environment, s3_storage, own_queue, tmp_path / "host-a")
    second = None
    try:
        start_job(job)
        wait_until(
            lambda: UpsertJob.objects.get(pk=job.pk).rows_read >= 2_000, timeout=60, interval=0.1
        )
        kill_hard(first)
        at_kill = UpsertJob.objects.get(pk=job.pk)
        offset = at_kill.checkpoint_offset
        assert at_kill.status == JobStatus.RUNNING and at_kill.rows_read < 20_000
        assert content[:offset].count(b"\n") == at_kill.checkpoint_row == at_kill.checkpoint_line
        # Every byte before the checkpoint is spoiled in the stored object: a worker that read
        # the file from its start again would fail those rows, and number the rest wrongly.
        s3_storage.client().put_object(
            Bucket=BUCKET,
            Key=f"{PREFIX}/{job.source_file.name}",
            Body=b"\x00" * offset + content[offset:],
        )

        second = start_s3_worker(worker_environment, s3_storage, own_queue, tmp_path / "host-b")
        job = finished(job, timeout=180)
    finally:
        for worker in (first, second):
            if worker is not None:
                worker.stop()

    assert job.status == JobStatus.SUCCEEDED, job.error_message
    assert_every_row_once(job, 20_000)
    assert count_in_milvus(milvus, books) == 20_000


@pytest.mark.usefixtures("other_workers_paused")
def test_jobs_spread_over_two_worker_hosts_all_land_when_one_host_is_killed(
    s3_storage, own_queue, worker_environment, make_collection, upload, milvus, tmp_path
):
    collections = [make_collection(BOOK_FIELDS) for _ in range(3)]
    jobs = [
        upload(jsonl(6_000), f"books-{n}.jsonl", name, batch_size=200, max_in_flight=1)
        for n, name in enumerate(collections)
    ]
    hosts = [
        start_s3_worker(worker_environment, s3_storage, own_queue, tmp_path / f"host-{name}")
        for name in ("a", "b")
    ]
    try:
        for job in jobs:
            start_job(job)
        # Four pool processes on two hosts: every job is under way before one host dies.
        wait_until(
            lambda: all(UpsertJob.objects.get(pk=j.pk).rows_read >= 400 for j in jobs),
            timeout=60,
            interval=0.1,
        )
        kill_hard(hosts[0])
        assert any(not UpsertJob.objects.get(pk=j.pk).is_final for j in jobs)
        done = [finished(job, timeout=240) for job in jobs]
    finally:
        for host in hosts:
            host.stop()

    for job, name in zip(done, collections, strict=True):
        assert job.status == JobStatus.SUCCEEDED, job.error_message
        assert_every_row_once(job, 6_000)
        assert count_in_milvus(milvus, name) == 6_000
        writes = job.entity_writes.values_list("entity_id", flat=True)
        assert len(writes) == len(set(writes)) == 6_000
