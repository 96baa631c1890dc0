"""A cluster's rate budget, shared through Redis by every job on every worker process: the
fake cluster measures what arrives."""

import io
from typing import Any

import orjson
import pytest
from django.test import Client
from django.urls import reverse

from tests.factories import book, make_user
from tests.helpers import wait_until
from tests.milvus.fake_cluster import FakeCluster
from tests.milvus.fake_collection import V2_UPSERT, FakeCollection
from upserts.models import (
    AuditAction,
    AuditEvent,
    ClusterEndpoint,
    JobStatus,
    UpsertBatch,
    UpsertJob,
)
from upserts.rate_budget import BURST_SECONDS
from upserts.services.job_control import start_job
from upserts.services.pipeline import SliceOutcome, run_job_slice
from upserts.services.rate_budgets import budget_for_job
from upserts.services.uploads import create_job

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def upload(cluster: ClusterEndpoint, keys: range, **options: Any) -> UpsertJob:
    # About 300 bytes a row, most of it in the collection's dynamic field.
    lines = [orjson.dumps(book(key, notes="n" * 200)) for key in keys]
    return create_job(
        source=io.BytesIO(b"\n".join(lines) + b"\n"),
        filename="books.jsonl",
        cluster=cluster,
        collection_name="books",
        **options,
    )


def test_two_jobs_on_two_worker_processes_together_stay_within_the_clusters_cap(
    fake_cluster: FakeCluster, celery_worker
):
    collection = FakeCollection().serve(fake_cluster, api="v2")
    cap_mb = 0.1
    cluster = ClusterEndpoint.objects.create(
        name="throttled", base_url=fake_cluster.url, api_version="v2", max_mb_per_second=cap_mb
    )
    # Each job alone would send as fast as the cluster answers; together they have 100 kB/s.
    jobs = [
        upload(cluster, range(1, 801), batch_size=50),
        upload(cluster, range(100_001, 100_801), batch_size=50),
    ]
    viewer = Client()
    viewer.force_login(make_user("viewer", superuser=True))
    for job in jobs:
        start_job(job)

    def waiting_shown() -> bool:
        page = viewer.get(reverse("job_live", args=[jobs[0].pk])).content.decode()
        return "Waiting for the cluster's rate budget, 0.1 MB/s from all jobs together" in page

    wait_until(waiting_shown, timeout=30, interval=0.2)
    for job in jobs:
        wait_until(lambda job=job: job.refresh_from_db() or job.is_final, timeout=60)

    assert [job.status for job in jobs] == [JobStatus.SUCCEEDED] * 2, jobs[0].error_message
    assert len(collection.entities) == 1600
    cap = cap_mb * 1024 * 1024
    times = [at for at, _ in collection.arrivals]
    sizes = [size for _, size in collection.arrivals]
    span = times[-1] - times[0]
    assert span > 3.5  # 480 kB at 100 kB/s, less the burst
    # All that arrived, over the time it took: the burst at the start and the last request
    # are all a cap lets through beyond its rate.
    assert sum(sizes) / span <= 1.2 * cap
    # After the burst, the rate the cluster saw is the cap (the workers keep up with it).
    steady = [size for at, size in collection.arrivals if at > times[0] + BURST_SECONDS + 0.2]
    steady_rate = sum(steady) / (times[-1] - (times[0] + BURST_SECONDS + 0.2))
    assert 0.85 * cap <= steady_rate <= 1.15 * cap
    # The jobs shared the budget (requests go in the order they asked; both keep as many in
    # flight), rather than one starving while the other sent.
    first_job_times = [
        at for at, keys in zip(times, collection.arrived, strict=True) if keys[0] < 100_000
    ]
    second_job_times = [
        at for at, keys in zip(times, collection.arrived, strict=True) if keys[0] > 100_000
    ]
    overlap = min(first_job_times[-1], second_job_times[-1]) - max(
        first_job_times[0], second_job_times[0]
    )
    assert overlap > 0.6 * span
    for job in jobs:
        waited = sum(UpsertBatch.objects.filter(job=job).values_list("budget_wait_ms", flat=True))
        assert waited > 1000
        assert job.budget_wait_seconds == pytest.approx(waited / 1000, abs=0.01)
        finished = AuditEvent.objects.get(action=AuditAction.JOB_FINISHED, target_id=str(job.pk))
        assert finished.details["budget_wait_seconds"] == round(job.budget_wait_seconds, 1)


def test_a_rate_limit_answer_shrinks_the_budget_and_the_job_still_lands(
    fake_cluster: FakeCluster, redis_url, settings
):
    settings.UPSERT_RETRY_BASE_SECONDS = 0.05
    collection = FakeCollection().serve(fake_cluster, api="v2")
    # Milvus' REST limiter: HTTP 200, code 1807 (merr.ErrHTTPRateLimit).
    for _ in range(2):
        fake_cluster.answer(
            V2_UPSERT, json_body={"code": 1807, "message": "request is rejected by limiter"}
        )
    cluster = ClusterEndpoint.objects.create(
        name="limited", base_url=fake_cluster.url, api_version="v2", max_requests_per_second=50
    )
    job = upload(cluster, range(1, 21), batch_size=10)

    assert run_job_slice(job.pk) is SliceOutcome.FINISHED

    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error_message
    assert sorted(collection.entities) == list(range(1, 21))
    # Two answers "rate limited", each retried (both batches may have been in flight at once).
    assert sum(UpsertBatch.objects.filter(job=job).values_list("attempts", flat=True)) == 4
    # Two answers a moment apart count as one storm: the budget halved once, and grows back.
    budget = budget_for_job(job)
    assert budget is not None
    assert 0.5 <= budget.share() < 0.6


def test_the_upsert_command_says_how_long_the_job_waited_for_the_budget(
    fake_cluster: FakeCluster, redis_url, tmp_path
):
    from django.core.management import call_command

    FakeCollection().serve(fake_cluster, api="v2")
    cluster = ClusterEndpoint.objects.create(
        name="paced", base_url=fake_cluster.url, api_version="v2", max_requests_per_second=10
    )
    path = tmp_path / "books.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(book(key)) for key in range(1, 26)) + b"\n")
    output = io.StringIO()

    call_command(
        "upsert", str(path), "--cluster", cluster.name, "--collection", "books",
        "--batch-size", "1", "--here", stdout=output, stderr=io.StringIO(),
    )  # fmt: skip

    # 25 requests at 10 a second: 5 in the burst, then 2 s for the other 20.
    assert "25 upserted" in output.getvalue()
    assert "s for the cluster's rate budget." in output.getvalue()
    assert UpsertJob.objects.get().budget_wait_seconds >= 1


def test_a_cancel_stops_batches_waiting_for_the_budget_and_what_was_sent_is_recorded(
    fake_cluster: FakeCluster, redis_url
):
    import threading
    import time

    from upserts.models import EntityWrite
    from upserts.services.job_control import cancel_job

    collection = FakeCollection().serve(fake_cluster, api="v2")
    # One request every four seconds: with four in flight, the last waits twelve.
    cluster = ClusterEndpoint.objects.create(
        name="slow-plan", base_url=fake_cluster.url, api_version="v2", max_requests_per_second=0.25
    )
    job = upload(cluster, range(1, 11), batch_size=1, max_in_flight=4)
    outcome: list[SliceOutcome] = []
    slice_ = threading.Thread(target=lambda: outcome.append(run_job_slice(job.pk)))
    slice_.start()
    wait_until(lambda: len(collection.arrivals) >= 1, timeout=10, interval=0.05)

    cancel_job(job)
    cancelled_at = time.monotonic()
    slice_.join(timeout=30)

    assert time.monotonic() - cancelled_at < 3  # not the twelve seconds of the last booking
    # The batches that were waiting were not sent past the budget either.
    assert len(collection.arrivals) == 1
    job.refresh_from_db()
    assert outcome == [SliceOutcome.FINISHED] and job.status == JobStatus.CANCELLED
    sent = {key for keys in collection.applied for key in keys}
    written = EntityWrite.objects.filter(job=job).values_list("entity_id", flat=True)
    assert {int(entity_id) for entity_id in written} == sent
    assert job.rows_upserted == len(sent) < 10
