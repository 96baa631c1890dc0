"""Faults survived with real processes: a killed worker, a Milvus that goes away, a Redis
restart, two workers given the same job. Nothing is lost, nothing is counted twice.

These tests own their Redis, Milvus and workers (never the session's), so they can kill and
restart them freely.
"""

import contextlib
import io
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator

import orjson
import pytest
from django.conf import settings

from console import celery_app
from console.localservices import LocalMilvus, LocalRedis, create_collection
from tests.factories import BOOK_FIELDS, book
from tests.helpers import (
    WORKER_TEST_SETTINGS,
    CeleryWorkerProcess,
    database_url_of_test_database,
    wait_until,
)
from tests.milvus.fake_cluster import FakeCluster
from tests.milvus.fake_collection import BOOKS_DESCRIBE, FakeCollection
from upserts.models import (
    AuditAction,
    AuditEvent,
    ClusterEndpoint,
    JobStatus,
    UpsertBatch,
    UpsertJob,
)
from upserts.services import jobs
from upserts.services.uploads import create_job
from upserts.tasks import run_upsert_job

pytestmark = [pytest.mark.milvus, pytest.mark.worker, pytest.mark.django_db(transaction=True)]

FAULT_SETTINGS = {
    **WORKER_TEST_SETTINGS,
    # About 20 s of retries: long enough to ride out a Milvus restart, short enough to test.
    "UPSERT_RETRY_ATTEMPTS": "12",
    "UPSERT_RETRY_BASE_SECONDS": "0.5",
    "UPSERT_RETRY_MAX_SECONDS": "2",
    "UPSERT_LEASE_SECONDS": "6",
    "UPSERT_STALE_GRACE_SECONDS": "2",
    "UPSERT_TASK_SLICE_SECONDS": "10",
    "CELERY_VISIBILITY_TIMEOUT": "30",
}


@pytest.fixture(scope="module")
def fault_redis(tmp_path_factory) -> Iterator[LocalRedis]:
    server = LocalRedis(tmp_path_factory.mktemp("fault-redis")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def fault_milvus(tmp_path_factory) -> Iterator[LocalMilvus]:
    server = LocalMilvus(tmp_path_factory.mktemp("fault-milvus")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def start_worker(
    fault_redis, tmp_path, django_db_blocker
) -> Iterator[Callable[..., CeleryWorkerProcess]]:
    """Start workers of this test's own queue, bound to the test database."""
    queue = f"faults-{uuid.uuid4().hex[:8]}"
    started: list[CeleryWorkerProcess] = []

    def start(*, beat: bool = True) -> CeleryWorkerProcess:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "console.settings",
            "DATABASE_URL": database_url_of_test_database(),
            "CELERY_BROKER_URL": fault_redis.url,
            "CELERY_QUEUE": queue,
            "MEDIA_ROOT": str(settings.MEDIA_ROOT),
            "FIELD_ENCRYPTION_KEY": ",".join(settings.FIELD_ENCRYPTION_KEYS),
            "SECRET_KEY": settings.SECRET_KEY,
            **FAULT_SETTINGS,
        }
        log = tmp_path / f"worker-{len(started)}.log"
        worker = CeleryWorkerProcess(env=env, log_path=log, queue=queue, beat=beat)
        worker.start()
        started.append(worker)
        return worker

    start.queue = queue  # type: ignore[attr-defined]
    start.started = started  # type: ignore[attr-defined]
    try:
        yield start
    finally:
        for worker in started:
            worker.stop()


def send(job: UpsertJob, queue: str, broker_url: str) -> None:
    with celery_app.connection_for_write(broker_url) as connection:
        run_upsert_job.apply_async((job.pk,), queue=queue, connection=connection)


def kill_hard(worker: CeleryWorkerProcess) -> None:
    """SIGKILL the worker and every pool process it forked: nothing gets to clean up."""
    assert worker.process is not None
    children = subprocess.run(
        ["pgrep", "-P", str(worker.process.pid)], capture_output=True, text=True
    ).stdout.split()
    for pid in [worker.process.pid, *map(int, children)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    worker.process.wait()
    worker.process = None


def count_in_milvus(milvus: LocalMilvus, collection: str) -> int:
    from pymilvus import Collection, connections

    alias = f"count-{uuid.uuid4().hex[:6]}"
    connections.connect(alias=alias, host="127.0.0.1", port=milvus.port)
    try:
        rows = Collection(collection, using=alias).query(
            expr="", output_fields=["count(*)"], consistency_level="Strong"
        )
        return int(rows[0]["count(*)"])
    finally:
        connections.disconnect(alias)


def finished(job: UpsertJob, timeout: float) -> UpsertJob:
    return wait_until(
        lambda: (fresh := UpsertJob.objects.get(pk=job.pk)).is_final and fresh,
        timeout=timeout,
        interval=0.5,
    )


def assert_every_row_once(job: UpsertJob, rows: int) -> None:
    assert (job.rows_read, job.rows_upserted, job.rows_failed) == (rows, rows, 0)
    ranges = list(job.batches.order_by("sequence").values_list("sequence", "first_row", "last_row"))
    assert [seq for seq, _, _ in ranges] == list(range(1, len(ranges) + 1))
    next_row = 1
    for _, first, last in ranges:
        assert first == next_row
        next_row = last + 1
    assert next_row == rows + 1
    assert sum(job.batches.values_list("upsert_count", flat=True)) == rows


def contents_of(milvus: LocalMilvus, collection: str) -> dict[int, tuple[str, list[float]]]:
    """Every entity Milvus holds, read back with strong consistency: id → (title, vector)."""
    from pymilvus import Collection, connections

    alias = f"read-{uuid.uuid4().hex[:6]}"
    connections.connect(alias=alias, host="127.0.0.1", port=milvus.port)
    try:
        iterator = Collection(collection, using=alias).query_iterator(
            batch_size=10_000,
            expr="book_id >= 0",
            output_fields=["book_id", "title", "emb"],
            consistency_level="Strong",
        )
        held = {}
        while page := iterator.next():
            for row in page:
                held[int(row["book_id"])] = (row["title"], [round(x, 4) for x in row["emb"]])
        iterator.close()
        return held
    finally:
        connections.disconnect(alias)


def assert_landed_exactly(job: UpsertJob, rows: int, milvus: LocalMilvus, collection: str) -> None:
    """The job succeeded, its batches cover the file once, and Milvus holds every row of the
    file with the file's values."""
    assert job.status == JobStatus.SUCCEEDED, job.error_message
    assert_every_row_once(job, rows)
    assert count_in_milvus(milvus, collection) == rows
    expected = {
        i: (row["title"], [round(x, 4) for x in row["emb"]])
        for i in range(1, rows + 1)
        for row in [book(i)]
    }
    assert contents_of(milvus, collection) == expected


def upload_books(cluster: ClusterEndpoint, collection: str, rows: int, **options) -> UpsertJob:
    content = b"".join(orjson.dumps(book(i)) + b"\n" for i in range(1, rows + 1))
    return create_job(
        source=io.BytesIO(content),
        filename=f"{rows}-books.jsonl",
        cluster=cluster,
        collection_name=collection,
        **options,
    )


def job_under_way(
    books_in_fault_milvus: tuple[ClusterEndpoint, str],
    fault_redis: LocalRedis,
    start_worker: Callable[..., CeleryWorkerProcess],
) -> tuple[UpsertJob, str]:
    """A 20 000-row job sent to a fresh worker, returned once 2 000 rows are done."""
    cluster, collection = books_in_fault_milvus
    job = upload_books(cluster, collection, 20_000, batch_size=200, max_in_flight=1)
    start_worker()
    send(job, start_worker.queue, fault_redis.url)  # type: ignore[attr-defined]
    wait_until(
        lambda: UpsertJob.objects.get(pk=job.pk).rows_read >= 2_000, timeout=60, interval=0.1
    )
    return job, collection


@pytest.fixture
def books_in_fault_milvus(fault_milvus) -> tuple[ClusterEndpoint, str]:
    name = f"faults_{uuid.uuid4().hex[:8]}"
    create_collection(host="127.0.0.1", port=fault_milvus.port, name=name, fields=BOOK_FIELDS)
    cluster = ClusterEndpoint.objects.create(name=f"fault-{name}", base_url=fault_milvus.url)
    return cluster, name


def test_worker_killed_mid_job_then_a_new_worker_finishes_it_exactly(
    books_in_fault_milvus, fault_milvus, fault_redis, start_worker
):
    cluster, collection = books_in_fault_milvus
    job = upload_books(cluster, collection, 50_000, batch_size=500)
    first = start_worker()
    send(job, start_worker.queue, fault_redis.url)
    wait_until(
        lambda: UpsertJob.objects.get(pk=job.pk).rows_read >= 10_000, timeout=120, interval=0.2
    )

    kill_hard(first)
    at_kill = UpsertJob.objects.get(pk=job.pk)
    assert at_kill.status == JobStatus.RUNNING and at_kill.rows_read < 50_000
    start_worker()
    job = finished(job, timeout=240)

    assert_landed_exactly(job, 50_000, fault_milvus, collection)


@pytest.mark.parametrize("applied", [False, True], ids=["request-lost", "answer-lost"])
def test_a_worker_killed_between_sending_a_batch_and_committing_it_loses_and_doubles_nothing(
    fault_redis, start_worker, applied
):
    """The kill lands in the one window that matters: batch 3 is sent, not yet committed.
    Either the cluster never applied it (the request died with its worker) or it did and only
    the answer was lost; the job resumes at its checkpoint and ends as if nothing happened."""
    fake = FakeCluster().start()
    try:
        collection = FakeCollection(holds={3}).serve(fake)
        cluster = ClusterEndpoint.objects.create(name="fake", base_url=fake.url)
        rows = [book(i) for i in range(1, 61)] + [book(i, f"again {i}") for i in range(1, 61, 7)]
        job = create_job(
            source=io.BytesIO(b"".join(orjson.dumps(row) + b"\n" for row in rows)),
            filename="books.jsonl",
            cluster=cluster,
            collection_name="books",
            batch_size=10,
            max_in_flight=1,
        )
        worker = start_worker()
        send(job, start_worker.queue, fault_redis.url)  # type: ignore[attr-defined]
        wait_until(lambda: collection.held() == [3], timeout=60)
        at_kill = UpsertJob.objects.get(pk=job.pk)
        assert (at_kill.checkpoint_row, at_kill.batches_done) == (20, 2)

        kill_hard(worker)
        collection.release(apply=applied)
        start_worker()
        job = finished(job, timeout=90)

        assert job.status == JobStatus.SUCCEEDED, job.error_message
        assert_every_row_once(job, len(rows))
        assert collection.entities == {row["book_id"]: row for row in rows}  # the last wins
        assert collection.arrived.count(list(range(21, 31))) == 2  # sent again after the kill
        assert collection.applied.count(list(range(21, 31))) == (2 if applied else 1)
    finally:
        fake.stop()


def test_milvus_restarted_within_the_retry_budget_loses_nothing(
    books_in_fault_milvus, fault_milvus, fault_redis, start_worker
):
    job, collection = job_under_way(books_in_fault_milvus, fault_redis, start_worker)

    fault_milvus.stop()
    fault_milvus.start()
    create_collection(
        host="127.0.0.1", port=fault_milvus.port, name=collection, fields=BOOK_FIELDS, replace=False
    )
    job = finished(job, timeout=180)

    assert_landed_exactly(job, 20_000, fault_milvus, collection)


def test_milvus_gone_past_the_retry_budget_fails_the_job_and_resume_finishes_it(
    books_in_fault_milvus, fault_milvus, fault_redis, start_worker
):
    job, collection = job_under_way(books_in_fault_milvus, fault_redis, start_worker)

    fault_milvus.stop()
    try:
        job = finished(job, timeout=120)
        assert job.status == JobStatus.FAILED
        assert "resume the job once the cluster answers again" in job.error_message
        saved = job.checkpoint_row
        assert 0 < saved < 20_000
    finally:
        fault_milvus.start()
        create_collection(
            host="127.0.0.1",
            port=fault_milvus.port,
            name=collection,
            fields=BOOK_FIELDS,
            replace=False,
        )
    jobs.mark_resumed(job)
    send(job, start_worker.queue, fault_redis.url)
    job = finished(job, timeout=180)

    assert_landed_exactly(job, 20_000, fault_milvus, collection)


def test_redis_restarted_mid_job_the_sweeper_sees_the_job_through(
    books_in_fault_milvus, fault_milvus, fault_redis, start_worker
):
    """The host of the worker and the broker restarts: the job's task message is gone with a
    Redis that keeps nothing on disk, so only the sweeper can find the job again."""
    job, collection = job_under_way(books_in_fault_milvus, fault_redis, start_worker)
    kill_hard(start_worker.started[0])  # type: ignore[attr-defined]
    fault_redis.stop()
    time.sleep(1)
    fault_redis.start()
    at_restart = UpsertJob.objects.get(pk=job.pk)

    start_worker()
    job = finished(job, timeout=180)

    assert_landed_exactly(job, 20_000, fault_milvus, collection)
    requeued = AuditEvent.objects.filter(action=AuditAction.JOB_REQUEUED, target_id=str(job.pk))
    assert [e.details["checkpoint_row"] for e in requeued] == [at_restart.checkpoint_row]


BOOKS_V1_DESCRIBE = {"code": 200, "data": BOOKS_DESCRIBE}


def test_two_workers_given_the_same_job_never_both_send_it(fault_redis, start_worker):
    fake = FakeCluster().start()
    try:
        fake.answer("/v1/vector/collections/describe", method="GET", json_body=BOOKS_V1_DESCRIBE)
        for batch in range(20):
            ids = [str(batch * 10 + i) for i in range(1, 11)]
            fake.answer(
                "/v1/vector/upsert",
                delay_seconds=0.1,
                json_body={"code": 200, "data": {"upsertCount": 10, "upsertIds": ids}},
            )
        cluster = ClusterEndpoint.objects.create(name="fake", base_url=fake.url)
        job = upload_books(cluster, "books", 100, batch_size=10, max_in_flight=1)
        start_worker(beat=False)
        start_worker(beat=False)

        # The broker delivers the same job twice, to two workers at once.
        send(job, start_worker.queue, fault_redis.url)
        send(job, start_worker.queue, fault_redis.url)
        job = finished(job, timeout=60)

        assert job.status == JobStatus.SUCCEEDED, job.error_message
        assert_every_row_once(job, 100)
        upserts = [r for r in fake.requests if r.path == "/v1/vector/upsert"]
        assert len(upserts) == 10 == UpsertBatch.objects.filter(job=job).count()
        describes = [r for r in fake.requests if r.path.endswith("/describe")]
        assert len(describes) == 1
    finally:
        fake.stop()


def pool_process_talking_to(worker: CeleryWorkerProcess, port: int) -> int | None:
    """The worker's pool process with a connection open to ``port``: the one on the job."""
    assert worker.process is not None
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                if int(fields[2].rsplit(":", 1)[1], 16) == port and fields[3] == "01":
                    inodes.add(fields[9])
    children = subprocess.run(
        ["pgrep", "-P", str(worker.process.pid)], capture_output=True, text=True
    ).stdout.split()
    for pid in children:
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    return int(pid)
    return None


def test_a_worker_killed_again_and_again_at_one_row_fails_the_job_and_resume_finishes_it(
    fault_redis, start_worker
):
    """acks_late hands the task of a killed worker out again: without a count of the stops, a
    row that kills the worker (for memory, say) would do so for ever."""
    fake = FakeCluster().start()
    try:
        for _ in range(5):
            fake.answer(
                "/v1/vector/collections/describe", method="GET", json_body=BOOKS_V1_DESCRIBE
            )
            # Every upsert hangs, so the worker is always killed on the job's first batch.
            fake.answer("/v1/vector/upsert", delay_seconds=60, json_body={})
        cluster = ClusterEndpoint.objects.create(name="fake", base_url=fake.url)
        job = upload_books(cluster, "books", 20, batch_size=10, max_in_flight=1)
        worker = start_worker()
        send(job, start_worker.queue, fault_redis.url)
        port = int(fake.url.rsplit(":", 1)[1])

        for stop in range(1, 4):
            wait_until(
                lambda n=stop: sum(r.path == "/v1/vector/upsert" for r in fake.requests) >= n,
                timeout=60,
            )
            pid = wait_until(lambda: pool_process_talking_to(worker, port), timeout=10)
            os.kill(pid, signal.SIGKILL)
        job = finished(job, timeout=90)

        assert job.status == JobStatus.FAILED
        assert "The worker stopped 3 times at row 1 " in job.error_message
        assert job.checkpoint_row == 0 and job.rows_upserted == 0
        upserts = [r for r in fake.requests if r.path == "/v1/vector/upsert"]
        assert len(upserts) == 3  # no fourth delivery sent the batch again

        fake.answers[("POST", "/v1/vector/upsert")].clear()
        for batch in range(2):
            ids = [str(batch * 10 + i) for i in range(1, 11)]
            fake.answer(
                "/v1/vector/upsert",
                json_body={"code": 200, "data": {"upsertCount": 10, "upsertIds": ids}},
            )
        jobs.mark_resumed(job)
        send(job, start_worker.queue, fault_redis.url)
        job = finished(job, timeout=60)

        assert job.status == JobStatus.SUCCEEDED, job.error_message
        assert_every_row_once(job, 20)
    finally:
        fake.stop()
