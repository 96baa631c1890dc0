"""Whole jobs, run by the worker, against a cluster that refuses, delays and echoes as a test
chooses: what the cluster ends up holding is compared with the file, row by row."""

import io
import socket
import threading
import time
from typing import Any

import orjson
import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from tests.factories import book, make_user
from tests.milvus.fake_cluster import FakeCluster
from tests.milvus.fake_collection import BOOKS_FIELDS_V2, V2_UPSERT, FakeCollection
from upserts.models import (
    AuditAction,
    AuditEvent,
    BatchStatus,
    ClusterEndpoint,
    EntityWrite,
    FailedRow,
    JobStatus,
    UpsertBatch,
    UpsertJob,
)
from upserts.services.pipeline import SliceOutcome, run_job_slice
from upserts.services.uploads import create_job

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def fake(fake_cluster: FakeCluster) -> FakeCluster:
    return fake_cluster


def upload(cluster: ClusterEndpoint, lines: list[bytes], **options: Any) -> UpsertJob:
    return create_job(
        source=io.BytesIO(b"\n".join(lines) + b"\n"),
        filename="books.jsonl",
        cluster=cluster,
        collection_name="books",
        **options,
    )


def last_value_per_key(lines: list[bytes]) -> dict[int, dict[str, Any]]:
    """What the cluster must hold after the file: each key's last row (bad rows left out)."""
    expected: dict[int, dict[str, Any]] = {}
    for line in lines:
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if len(row.get("emb", [])) == 4:
            expected[row["book_id"]] = row
    return expected


def test_rows_the_cluster_refuses_are_failed_rows_at_their_numbers_and_the_rest_land(
    fake, run_in_worker
):
    collection = FakeCollection(
        refuse={
            5: "error: title of 5 is not acceptable",
            17: "error: 17 clashes with an index",
            18: "error: 18 clashes with an index",
            30: "error: the last row is refused",
        }
    ).serve(fake)
    cluster = ClusterEndpoint.objects.create(name="refusing", base_url=fake.url)
    lines = [orjson.dumps(book(i)) for i in range(1, 31)]
    # Rows our own checks refuse shift every later row's place in its batch.
    lines[1] = orjson.dumps({**book(2), "emb": [1.0]})
    lines.insert(9, b"{not json")

    job = run_in_worker(upload(cluster, lines, batch_size=10))

    assert job.status == JobStatus.PARTIALLY_FAILED, job.error_message
    failed = {r.row_number: r.reason for r in FailedRow.objects.filter(job=job)}
    # Book n is row n up to the broken line (row 10), row n + 1 after it.
    assert sorted(failed) == [2, 5, 10, 18, 19, 31]
    assert failed[5] == "fail to deal the insert data, error: title of 5 is not acceptable"
    assert failed[18].endswith("17 clashes with an index")
    assert failed[31].endswith("the last row is refused")
    assert FailedRow.objects.get(job=job, row_number=19).entity == book(18)
    expected = last_value_per_key(lines)
    for key in (5, 17, 18, 30):
        del expected[key]
    assert collection.entities == expected
    assert (job.rows_read, job.rows_upserted, job.rows_failed) == (31, 25, 6)
    batches = UpsertBatch.objects.filter(job=job)
    assert sum(b.upsert_count for b in batches) == 25
    assert {b.status for b in batches} == {BatchStatus.PARTIALLY_FAILED}
    written = EntityWrite.objects.filter(job_id=job.pk).values_list("entity_id", flat=True)
    assert sorted(map(int, written)) == sorted(expected)


def test_batches_are_committed_in_file_order_when_a_later_one_answers_first(fake):
    # The first batch (keys 1-10) answers last: the second is sent beside it, answers at once.
    collection = FakeCollection(delays={1: 0.8}).serve(fake)
    cluster = ClusterEndpoint.objects.create(name="slow-first", base_url=fake.url)
    lines = [orjson.dumps(book(i)) for i in range(1, 41)]
    job = upload(cluster, lines, batch_size=10, max_in_flight=2)

    assert run_job_slice(job.pk) is SliceOutcome.FINISHED

    assert collection.applied[0] == list(range(11, 21))  # the cluster did answer out of order
    committed = UpsertBatch.objects.filter(job=job).order_by("pk")
    assert [b.sequence for b in committed] == [1, 2, 3, 4]
    assert [b.first_row for b in committed] == [1, 11, 21, 31]
    job.refresh_from_db()
    assert (job.checkpoint_row, job.rows_upserted) == (40, 40)


def test_a_key_in_flight_is_not_sent_again_until_its_batch_is_answered(fake):
    # Key 1 is in the first batch and again in the second; the first request is slow. Sent at
    # once, the second would land first and the first would then overwrite the file's last row.
    collection = FakeCollection(delays={2: 0.8}).serve(fake)  # key 2: the first batch only
    cluster = ClusterEndpoint.objects.create(name="slow-first", base_url=fake.url)
    lines = [
        orjson.dumps(row)
        for row in [book(1, "first"), book(2), book(3, "third"), book(1, "last"), book(4)]
    ]
    job = upload(cluster, lines, batch_size=3, max_in_flight=2)

    assert run_job_slice(job.pk) is SliceOutcome.FINISHED

    assert collection.entities == last_value_per_key(lines)
    assert collection.entities[1]["title"] == "last"
    assert collection.applied == [[1, 2, 3], [1, 4]]
    job.refresh_from_db()
    assert job.duplicate_ids == 1


TOKEN = "db_admin:Echoed-Secret-5e1d"


def test_a_cluster_that_echoes_the_token_leaks_it_nowhere(fake, run_in_worker, celery_worker):
    """Milvus puts what it was sent in its messages; a proxy may echo headers. None of it may
    reach a batch, a failed row, the audit trail, a page, an API answer or the worker's log."""

    def echo(request) -> str:
        return f"error: refused with Authorization: {request.headers['Authorization']}"

    fake.answer(
        "/v1/vector/upsert",
        status=503,
        body=f"<html>upstream busy; password {TOKEN.partition(':')[2]}</html>".encode(),
        content_type="text/html",
    )
    FakeCollection(refuse={3: echo, 7: echo}).serve(fake)
    cluster = ClusterEndpoint.objects.create(name="echoing", base_url=fake.url, token=TOKEN)
    lines = [orjson.dumps(book(i)) for i in range(1, 11)]

    job = run_in_worker(upload(cluster, lines, batch_size=5))

    assert job.status == JobStatus.PARTIALLY_FAILED, job.error_message
    assert job.rows_failed == 2 and job.rows_upserted == 8
    assert any(TOKEN in r.headers.get("Authorization", "") for r in fake.requests)
    reasons = list(FailedRow.objects.filter(job=job).values_list("reason", flat=True))
    assert all("refused with Authorization: Bearer ***" in r for r in reasons), reasons
    user = make_user("root", superuser=True)
    api = APIClient()
    api.force_authenticate(user)
    web = Client()
    web.force_login(user)
    said = [
        job.error_message,
        *UpsertBatch.objects.filter(job=job).values_list("milvus_message", flat=True),
        *reasons,
        *FailedRow.objects.filter(job=job).values_list("raw", flat=True),
        *(orjson.dumps(e.details).decode() + e.target_repr for e in AuditEvent.objects.all()),
        web.get(reverse("job_detail", args=[job.pk])).content.decode(),
        b"".join(web.get(reverse("job_failed_rows", args=[job.pk])).streaming_content).decode(),
        api.get(f"/api/v1/jobs/{job.pk}/").content.decode(),
        api.get(f"/api/v1/jobs/{job.pk}/batches/").content.decode(),
        b"".join(api.get(f"/api/v1/jobs/{job.pk}/failed-rows/").streaming_content).decode(),
        celery_worker.log_path.read_text(),
    ]
    for text in said:
        assert TOKEN not in text
        assert "Echoed-Secret" not in text


def test_a_v2_job_lands_with_defaults_filled_exact_ids_and_a_408_retried(fake, settings):
    settings.UPSERT_RETRY_BASE_SECONDS = 0.05
    collection = FakeCollection(
        fields_v2=[
            *BOOKS_FIELDS_V2,
            {
                "name": "year",
                "type": "Int64",
                "nullable": False,
                "defaultValue": {"Data": {"LongData": 1999}},
            },
        ]  # fmt: skip
    ).serve(fake, api="v2")
    # The cluster gives up on the first request at its Request-Timeout.
    fake.answer(V2_UPSERT, status=408, json_body={"code": 10001, "message": "request timeout"})
    cluster = ClusterEndpoint.objects.create(name="v2", base_url=fake.url, api_version="v2")
    largest = 2**63 - 1
    rows = [book(1, year=2001), book(2), book(largest, year=None)]
    job = upload(cluster, [orjson.dumps(row) for row in rows])

    assert run_job_slice(job.pk) is SliceOutcome.FINISHED

    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error_message
    assert {key: row["year"] for key, row in collection.entities.items()} == {
        1: 2001,
        2: 1999,
        largest: 1999,
    }
    [batch] = UpsertBatch.objects.filter(job=job)
    assert (batch.attempts, batch.milvus_code, batch.upsert_count) == (2, 0, 3)
    upserts = [r for r in fake.requests if r.path == V2_UPSERT]
    assert {r.headers["Accept-Type-Allow-Int64"] for r in upserts} == {"true"}
    written = EntityWrite.objects.filter(job_id=job.pk).values_list("entity_id", flat=True)
    assert sorted(written, key=int) == ["1", "2", str(largest)]


def test_batches_stay_below_the_largest_request_the_cluster_takes(fake):
    collection = FakeCollection().serve(fake)
    cluster = ClusterEndpoint.objects.create(name="small", base_url=fake.url, max_request_mb=1)
    # About 200 KB a row, in the collection's dynamic field: five rows a megabyte.
    lines = [orjson.dumps(book(i, notes="n" * 200_000)) for i in range(1, 23)]
    job = upload(cluster, lines, batch_size=500)

    assert run_job_slice(job.pk) is SliceOutcome.FINISHED

    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error_message
    sizes = [size for _, size in collection.arrivals]
    assert max(sizes) < 1024 * 1024 and len(sizes) == 6
    assert sorted(collection.entities) == list(range(1, 23))


def v2_cluster(fake: FakeCluster, **fields: Any) -> ClusterEndpoint:
    fields.setdefault("base_url", fake.url)
    return ClusterEndpoint.objects.create(name="modern", api_version="v2", **fields)


def test_a_partial_update_changes_only_the_fields_each_row_gives(fake):
    collection = FakeCollection().serve(fake, api="v2")
    collection.entities.update({key: book(key) for key in (1, 2, 3)})
    cluster = v2_cluster(fake, server_version="v2.6.4")
    lines = [
        orjson.dumps({"book_id": 1, "title": "Renamed"}),
        orjson.dumps({"book_id": 2, "title": "Also renamed"}),
        orjson.dumps({"book_id": 3, "emb": [0.0, 0.0, 0.0, 1.0]}),  # other fields: a batch
        orjson.dumps({"title": "No key"}),
    ]
    job = upload(cluster, lines, partial_update=True)

    assert run_job_slice(job.pk) is SliceOutcome.FINISHED

    job.refresh_from_db()
    assert job.status == JobStatus.PARTIALLY_FAILED, job.error_message
    assert collection.entities == {
        1: {**book(1), "title": "Renamed"},
        2: {**book(2), "title": "Also renamed"},
        3: {**book(3), "emb": [0.0, 0.0, 0.0, 1.0]},
    }
    sent = [r.json() for r in fake.requests if r.path == V2_UPSERT]
    assert [body["partialUpdate"] for body in sent] == [True, True]
    assert [[sorted(row) for row in body["data"]] for body in sent] == [
        [["book_id", "title"], ["book_id", "title"]],
        [["book_id", "emb"]],
    ]
    assert "`book_id` (the primary key) is missing" in FailedRow.objects.get(job=job).reason
    started = AuditEvent.objects.get(action=AuditAction.JOB_FINISHED, target_id=str(job.pk))
    assert started.details["rows_upserted"] == 3


@pytest.mark.parametrize(
    ("api_version", "server_version", "refusal"),
    [
        ("v1", "v2.6.4", "needs REST v2 or gRPC"),
        ("v2", "v2.5.11", "the server says it is v2.5.11"),
        ("v2", "", "Type the server's version in the cluster's settings"),
    ],
)
def test_a_partial_update_is_refused_where_the_server_would_replace_whole_entities(
    fake, api_version, server_version, refusal
):
    from upserts.services.submissions import Start, UploadTarget, submit_upload
    from upserts.services.uploads import UploadRejected

    FakeCollection().serve(fake, api=api_version)
    cluster = ClusterEndpoint.objects.create(
        name="old", base_url=fake.url, api_version=api_version, server_version=server_version
    )

    with pytest.raises(UploadRejected, match=refusal):
        submit_upload(
            source=io.BytesIO(orjson.dumps({"book_id": 1, "title": "x"}) + b"\n"),
            filename="books.jsonl",
            target=UploadTarget(cluster, "books", partial_update=True),
            start=Start.QUEUED,
        )
    assert not UpsertJob.objects.exists()


def test_the_upsert_command_updates_only_the_fields_in_the_file(fake, tmp_path):
    from django.core.management import call_command

    collection = FakeCollection().serve(fake, api="v2")
    collection.entities.update({key: book(key) for key in (1, 2)})
    cluster = v2_cluster(fake, server_version="v2.6.4")
    path = tmp_path / "titles.csv"
    path.write_text("book_id,title\n1,Renamed\n2,Also renamed\n")

    call_command(
        "upsert", str(path), "--cluster", cluster.name, "--collection", "books",
        "--partial", "--here", stdout=io.StringIO(),
    )  # fmt: skip

    job = UpsertJob.objects.get()
    assert job.partial_update and job.status == JobStatus.SUCCEEDED, job.error_message
    assert collection.entities[2] == {**book(2), "title": "Also renamed"}
    web = Client()
    web.force_login(make_user("root", superuser=True))
    page = web.get(reverse("job_detail", args=[job.pk])).content.decode()
    assert "Updates only the fields in the file" in page


def test_a_silent_grpc_port_holds_the_version_question_only_briefly(fake):
    from upserts.milvus.probe import PROBE_TIMEOUT_SECONDS
    from upserts.services.clusters import partial_update_problem

    # The kernel accepts the connection; nothing ever answers on it.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        cluster = v2_cluster(
            fake,
            base_url=f"http://127.0.0.1:{silent.getsockname()[1]}",
            request_timeout_seconds=60,
            server_version="v2.6.4",
        )
        started = time.monotonic()
        problem = partial_update_problem(cluster)
        elapsed = time.monotonic() - started

    # The version in the cluster's settings stands in for the one the server did not give.
    assert problem == ""
    assert elapsed < PROBE_TIMEOUT_SECONDS + 2


def test_a_batch_slower_than_the_lease_keeps_the_job_from_other_tasks(fake, settings):
    settings.UPSERT_LEASE_SECONDS = 1
    collection = FakeCollection(delays={3: 2.5}).serve(fake)
    cluster = ClusterEndpoint.objects.create(name="slow", base_url=fake.url)
    job = upload(cluster, [orjson.dumps(book(i)) for i in range(1, 5)])
    # The first lease ran out long ago; the batch is not back yet.
    assert run_slice_while_another_task_tries_the_lease(job, after_seconds=1.8) == [False]
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED and sorted(collection.entities) == [1, 2, 3, 4]


def test_a_lease_another_task_has_held_is_not_renewed(fake):
    from upserts.services.jobs import acquire_lease, release_lease, renew_lease

    cluster = ClusterEndpoint.objects.create(name="leased", base_url=fake.url)
    job = upload(cluster, [orjson.dumps(book(1))])
    assert acquire_lease(job.pk, token="stalled", seconds=0)  # runs out at once
    assert acquire_lease(job.pk, token="another", seconds=5)
    release_lease(job.pk, token="another")

    # The job is free again, but the stalled task's batches may now be behind the other's.
    assert not renew_lease(job.pk, token="stalled", seconds=5)


def test_describe_retries_keep_the_lease_from_other_tasks(settings):
    settings.UPSERT_LEASE_SECONDS = 1
    settings.UPSERT_RETRY_ATTEMPTS = 8
    settings.UPSERT_RETRY_BASE_SECONDS = settings.UPSERT_RETRY_MAX_SECONDS = 0.6
    # Nothing listens on port 9 of the loopback: every describe fails at once, worth retrying.
    cluster = ClusterEndpoint.objects.create(name="gone", base_url="http://127.0.0.1:9")
    job = upload(cluster, [orjson.dumps(book(1))])
    # The first lease would have run out; the retries go on past 2 s.
    assert run_slice_while_another_task_tries_the_lease(job, after_seconds=1.6) == [False]
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert "resume the job once the cluster answers again" in job.error_message


def test_a_task_whose_lease_another_took_cannot_end_the_job(fake):
    from upserts.services import jobs

    cluster = ClusterEndpoint.objects.create(name="leased", base_url=fake.url)
    job = upload(cluster, [orjson.dumps(book(1))])
    assert jobs.acquire_lease(job.pk, token="stalled", seconds=0)  # runs out at once
    assert jobs.acquire_lease(job.pk, token="another", seconds=5)

    for end in (
        lambda: jobs.mark_failed(job, "the cluster went away", lease_token="stalled"),
        lambda: jobs.mark_finished(job, lease_token="stalled"),
        lambda: jobs.mark_cancelled(job, lease_token="stalled"),
    ):
        with pytest.raises(jobs.LeaseLost):
            end()
    job.refresh_from_db()
    assert job.status == JobStatus.PENDING and not job.error_message

    jobs.mark_failed(job, "the cluster went away", lease_token="another")
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED


def run_slice_while_another_task_tries_the_lease(
    job: UpsertJob, *, after_seconds: float
) -> list[bool]:
    """Run the job's slice here while another task tries to take its lease after
    ``after_seconds``; whether it got the lease (empty if the slice ended first)."""
    from upserts.services.jobs import acquire_lease

    taken_by_another: list[bool] = []

    def another_task() -> None:
        time.sleep(after_seconds)
        taken_by_another.append(acquire_lease(job.pk, token="another", seconds=5))

    rival = threading.Thread(target=another_task)
    rival.start()
    assert run_job_slice(job.pk) is SliceOutcome.FINISHED
    rival.join()
    return taken_by_another
