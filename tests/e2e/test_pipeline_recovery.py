"""A crash, a cancel, a flaky or absent cluster: nothing is lost, nothing is counted twice."""

import os
import signal
import subprocess
import sys
import time

import orjson
import pytest
from django.test import override_settings

from tests.factories import book
from tests.helpers import (
    BOTH_TRANSPORTS,
    PROJECT_DIR,
    database_url_of_test_database,
    query,
    wait_until,
)
from tests.milvus.fake_cluster import FakeCluster
from upserts.milvus.client import ClusterClient, ClusterConfig
from upserts.milvus.grpc_client import GrpcClusterClient
from upserts.milvus.schema import CollectionSchema
from upserts.models import ClusterEndpoint, JobStatus, UpsertBatch, UpsertJob
from upserts.services import jobs
from upserts.services.pipeline import SliceOutcome, run_job_slice
from upserts.services.sending import RetryPolicy, TargetRefusesEveryRow, send_batch
from upserts.services.uploads import UploadRejected
from upserts.tasks import run_upsert_job

pytestmark = [pytest.mark.django_db(transaction=True)]

FAST_RETRIES = {
    "UPSERT_RETRY_ATTEMPTS": 3,
    "UPSERT_RETRY_BASE_SECONDS": 0.01,
    "UPSERT_RETRY_MAX_SECONDS": 0.02,
}


BOOKS_SCHEMA = CollectionSchema(name="books", fields=())


def jsonl(rows) -> bytes:
    return b"".join(orjson.dumps(row) + b"\n" for row in rows)


def assert_batches_cover_the_file_once(job: UpsertJob, rows: int) -> None:
    batches = list(
        job.batches.order_by("sequence").values_list("sequence", "first_row", "last_row")
    )
    assert [seq for seq, _, _ in batches] == list(range(1, len(batches) + 1))
    expected_first = 1
    for _, first, last in batches:
        assert first == expected_first
        expected_first = last + 1
    assert expected_first == rows + 1


@pytest.mark.milvus
@pytest.mark.worker
@BOTH_TRANSPORTS
def test_a_job_killed_mid_way_resumes_from_its_checkpoint_with_exact_counts(
    books, upload, milvus, celery_worker
):
    rows = [book(i) for i in range(1, 20_001)]
    job = upload(jsonl(rows), "many.jsonl", books, batch_size=100, max_in_flight=1)
    env = {
        **os.environ,
        "DATABASE_URL": database_url_of_test_database(),
        "UPSERT_LEASE_SECONDS": "2",
    }
    # The job runs in a process of its own, which is killed without warning mid-way.
    runner = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import django; django.setup(); "
            f"from upserts.services.pipeline import run_job_slice; run_job_slice({job.pk})",
        ],
        cwd=PROJECT_DIR,
        env={**env, "DJANGO_SETTINGS_MODULE": "console.settings"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: UpsertJob.objects.get(pk=job.pk).batches_done >= 5, timeout=60)
    finally:
        os.kill(runner.pid, signal.SIGKILL)
        runner.wait()
    interrupted = UpsertJob.objects.get(pk=job.pk)
    assert interrupted.status == JobStatus.RUNNING and interrupted.checkpoint_row < 20_000

    time.sleep(2.5)  # the dead process's lease runs out
    run_upsert_job.delay(job.pk)
    job = wait_until(
        lambda: (j := UpsertJob.objects.get(pk=job.pk)).is_final and j, timeout=120, interval=0.3
    )

    assert job.status == JobStatus.SUCCEEDED, job.error_message
    assert (job.rows_read, job.rows_upserted, job.rows_failed) == (20_000, 20_000, 0)
    assert_batches_cover_the_file_once(job, 20_000)
    assert sum(job.batches.values_list("upsert_count", flat=True)) == 20_000
    stored = query(milvus, books, "book_id in [1, 9999, 20000]", ["book_id", "title"], count=3)
    assert [row["title"] for row in stored] == ["Book 1", "Book 9999", "Book 20000"]


@pytest.mark.milvus
@BOTH_TRANSPORTS
def test_a_slice_that_runs_out_of_time_continues_where_it_stopped(books, upload, milvus):
    job = upload(jsonl([book(i) for i in range(1, 1001)]), "rows.jsonl", books, batch_size=50)

    with override_settings(UPSERT_TASK_SLICE_SECONDS=0):
        outcomes = [run_job_slice(job.pk)]
        while outcomes[-1] is SliceOutcome.CONTINUE:
            outcomes.append(run_job_slice(job.pk))

    job.refresh_from_db()
    assert len(outcomes) > 2 and outcomes[-1] is SliceOutcome.FINISHED
    assert job.status == JobStatus.SUCCEEDED
    assert (job.rows_read, job.rows_upserted) == (1000, 1000)
    assert_batches_cover_the_file_once(job, 1000)


@pytest.mark.milvus
@BOTH_TRANSPORTS
def test_a_cancelled_job_stops_between_batches_with_true_counters(books, upload):
    job = upload(jsonl([book(i) for i in range(1, 2001)]), "rows.jsonl", books, batch_size=50)
    UpsertJob.objects.filter(pk=job.pk).update(cancel_requested=True)

    assert run_job_slice(job.pk) is SliceOutcome.FINISHED

    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED
    assert job.rows_read == sum(b.last_row - b.first_row + 1 for b in job.batches.all())
    assert job.rows_upserted == sum(job.batches.values_list("upsert_count", flat=True))


@pytest.mark.milvus
@pytest.mark.parametrize(
    ("api_version", "reason"),
    [
        ("v1", "vector length diff from dimension"),
        # Milvus 2.3.5 answers a gRPC column of the wrong size as an unexpected error (65535),
        # so the encoder refuses the column itself, as the cluster's own refusal would.
        ("grpc", "the vector has"),
    ],
)
def test_rows_the_cluster_rejects_are_isolated_and_the_rest_land(
    api_version, reason, books, milvus
):
    config = ClusterConfig(base_url=milvus.url, api_version=api_version)
    client = GrpcClusterClient(config) if api_version == "grpc" else ClusterClient(config)
    rows = [book(i) for i in range(1, 11)]
    rows[2]["emb"] = [1.0, 2.0]  # Milvus refuses the whole request for this row
    rows[6]["emb"] = [1.0]
    schema = client.describe_collection("", books)
    encoder = client.upsert_encoder(database="", collection=books, schema=schema)
    if client.row_form == "json":
        rows = [orjson.dumps(r) for r in rows]

    with client:
        outcome = send_batch(client, encoder=encoder, rows=rows, policy=RetryPolicy(max_attempts=1))

    assert outcome.upsert_count == 8
    assert sorted(outcome.upsert_ids, key=int) == [str(i) for i in range(1, 11) if i not in (3, 7)]
    assert [r.index for r in outcome.rejections] == [2, 6]
    assert all(reason in r.reason for r in outcome.rejections)


def test_a_cluster_that_refuses_every_row_alone_is_a_target_problem(fake_v2):
    refusal = {"code": 1804, "message": "fail to deal the insert data, error: mystery"}
    for _ in range(100):
        fake_v2.answer("/v1/vector/upsert", json_body=refusal)
    client = ClusterClient(ClusterConfig(base_url=fake_v2.url))
    encoder = client.upsert_encoder(database="", collection="books", schema=BOOKS_SCHEMA)
    rows = [orjson.dumps(book(i)) for i in range(1, 65)]

    with pytest.raises(TargetRefusesEveryRow, match="mystery"):
        send_batch(client, encoder=encoder, rows=rows, policy=RetryPolicy(max_attempts=1))

    # It gives up after a handful of single rows, not after trying all 64 of them.
    assert len(fake_v2.requests) < 30


V2_DESCRIBE = {
    "code": 0,
    "data": {
        "collectionName": "books",
        "enableDynamicField": False,
        "fields": [
            {"name": "book_id", "type": "Int64", "primaryKey": True, "autoId": False},
            {"name": "title", "type": "VarChar", "params": [{"key": "max_length", "value": "64"}]},
            {"name": "emb", "type": "FloatVector", "params": [{"key": "dim", "value": "4"}]},
        ],
    },
}


def v2_ok(count: int, first_id: int) -> dict:
    return {
        "code": 0,
        "data": {"upsertCount": count, "upsertIds": [str(first_id + i) for i in range(count)]},
    }


@pytest.fixture
def fake_v2():
    fake = FakeCluster().start()
    try:
        yield fake
    finally:
        fake.stop()


@override_settings(**FAST_RETRIES)
def test_v2_cluster_gets_partition_and_token_and_5xx_answers_are_retried(fake_v2, upload):
    cluster = ClusterEndpoint.objects.create(
        name="zilliz", base_url=fake_v2.url, api_version="v2", token="api-key-123"
    )
    fake_v2.answer("/v2/vectordb/collections/describe", json_body=V2_DESCRIBE)
    fake_v2.answer(
        "/v2/vectordb/entities/upsert",
        status=503,
        body=b"<html>busy</html>",
        content_type="text/html",
    )
    fake_v2.answer("/v2/vectordb/entities/upsert", json_body={"code": 1807, "message": "rate"})
    fake_v2.answer("/v2/vectordb/entities/upsert", json_body=v2_ok(3, 1))
    job = upload(
        jsonl([book(1), book(2), book(3)]),
        "rows.jsonl",
        "books",
        cluster=cluster,
        partition_name="recent",
    )

    assert run_job_slice(job.pk) is SliceOutcome.FINISHED

    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED and job.rows_upserted == 3
    batch = UpsertBatch.objects.get(job=job)
    written = batch.entity_writes.order_by("entity_id").values_list("entity_id", flat=True)
    assert batch.attempts == 3 and list(written) == ["1", "2", "3"]
    sent = [r for r in fake_v2.requests if r.path.endswith("/upsert")][-1]
    assert sent.json()["partitionName"] == "recent"
    assert sent.headers["Authorization"] == "Bearer api-key-123"


def test_a_job_keeps_its_in_flight_limit(fake_v2, upload):
    """A built batch waits behind the requests in flight; it is never an extra request."""
    cluster = ClusterEndpoint.objects.create(name="slow", base_url=fake_v2.url, api_version="v2")
    fake_v2.answer("/v2/vectordb/collections/describe", json_body=V2_DESCRIBE)
    for first_id in range(1, 21, 2):
        fake_v2.answer(
            "/v2/vectordb/entities/upsert", json_body=v2_ok(2, first_id), delay_seconds=0.15
        )
    job = upload(
        jsonl([book(i) for i in range(1, 21)]),
        "rows.jsonl",
        "books",
        cluster=cluster,
        batch_size=2,
        max_in_flight=2,
    )

    assert run_job_slice(job.pk) is SliceOutcome.FINISHED

    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED and job.rows_upserted == 20
    assert fake_v2.most_at_once == 2
    assert_batches_cover_the_file_once(job, 20)


@override_settings(**FAST_RETRIES)
def test_a_cluster_down_past_the_retry_budget_fails_the_job_and_resume_finishes_it(fake_v2, upload):
    cluster = ClusterEndpoint.objects.create(name="flaky", base_url=fake_v2.url, api_version="v2")
    fake_v2.answer("/v2/vectordb/collections/describe", json_body=V2_DESCRIBE)
    fake_v2.answer("/v2/vectordb/entities/upsert", json_body=v2_ok(2, 1))
    for _ in range(3):
        fake_v2.answer(
            "/v2/vectordb/entities/upsert",
            status=502,
            body=b"bad gateway",
            content_type="text/plain",
        )
    job = upload(
        jsonl([book(i) for i in range(1, 5)]),
        "rows.jsonl",
        "books",
        cluster=cluster,
        batch_size=2,
        max_in_flight=1,
    )

    run_job_slice(job.pk)

    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert "502" in job.error_message and "resume" in job.error_message
    assert (job.checkpoint_row, job.rows_upserted) == (2, 2)

    fake_v2.answer("/v2/vectordb/collections/describe", json_body=V2_DESCRIBE)
    fake_v2.answer("/v2/vectordb/entities/upsert", json_body=v2_ok(2, 3))
    jobs.mark_resumed(job)
    run_job_slice(job.pk)

    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED
    assert (job.rows_read, job.rows_upserted, job.batches_done) == (4, 4, 2)
    sent_ids = [
        [row["book_id"] for row in r.json()["data"]]
        for r in fake_v2.requests
        if r.path.endswith("/upsert")
    ]
    assert sent_ids[0] == [1, 2] and sent_ids[-1] == [3, 4]


def test_upload_is_refused_before_anything_is_stored(upload, settings):
    settings.UPLOAD_MAX_BYTES = 10
    with pytest.raises(UploadRejected, match="largest file accepted is 10 bytes"):
        upload(b'{"book_id": 1, "emb": [1, 2, 3, 4]}', "big.json", "books")
    with pytest.raises(UploadRejected, match="empty"):
        upload(b"", "empty.jsonl", "books")
    assert not UpsertJob.objects.exists()
