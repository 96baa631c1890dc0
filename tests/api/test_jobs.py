"""Jobs through the API: listing, detail and its polling cost, batches, failed rows, actions."""

import io
from datetime import timedelta

import orjson
import pytest
from django.utils import timezone

from tests.factories import make_cluster, make_job, make_user, make_user_with_role
from upserts import roles
from upserts.models import (
    AuditAction,
    AuditEvent,
    BatchStatus,
    FailedRow,
    JobStatus,
    UpsertBatch,
    UpsertJob,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media_in_tmp(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def add_batches(job: UpsertJob, count: int, *, rows: int = 10) -> None:
    UpsertBatch.objects.bulk_create(
        UpsertBatch(
            job=job,
            sequence=n,
            first_row=(n - 1) * rows + 1,
            last_row=n * rows,
            row_count=rows,
            status=BatchStatus.SUCCEEDED,
            upsert_count=rows,
            milvus_code=200,
        )
        for n in range(1, count + 1)
    )


def add_failed_rows(job: UpsertJob, count: int) -> None:
    FailedRow.objects.bulk_create(
        FailedRow(job=job, row_number=n, reason=f"row {n}: bad", entity={"book_id": n})
        for n in range(1, count + 1)
    )


def running_job(**fields) -> UpsertJob:
    started = timezone.now() - timedelta(seconds=10)
    defaults = dict(
        status=JobStatus.RUNNING,
        estimated_rows=1000,
        rows_read=250,
        rows_upserted=240,
        rows_failed=10,
        batches_done=5,
        started_at=started,
    )
    return make_job(**{**defaults, **fields})


# --- detail -------------------------------------------------------------------------------


def test_detail_shows_status_counters_progress_timestamps_and_error(api_as):
    job = running_job(error_message="")

    body = api_as("viewer").get(f"/api/v1/jobs/{job.pk}/").json()

    assert body["id"] == job.pk
    assert body["url"] == f"http://testserver/api/v1/jobs/{job.pk}/"
    assert body["status"] == "running"
    assert (body["rows_read"], body["rows_upserted"], body["rows_failed"]) == (250, 240, 10)
    assert body["batches_done"] == 5 and body["estimated_rows"] == 1000
    assert body["progress"]["percent"] == pytest.approx(25.0)
    assert body["progress"]["rows_per_second"] == pytest.approx(25.0, rel=0.2)
    assert body["progress"]["eta_seconds"] == pytest.approx(30.0, rel=0.2)
    assert body["started_at"] and body["finished_at"] is None and body["created_at"]
    assert body["error_message"] == ""
    assert body["cluster_name"] == "local" and body["collection"] == "books"
    assert body["failed_rows_url"].endswith(f"/api/v1/jobs/{job.pk}/failed-rows/")


def test_detail_of_a_failed_job_carries_its_error(api_as):
    job = make_job(status=JobStatus.FAILED, error_message="The collection does not exist")

    body = api_as("viewer").get(f"/api/v1/jobs/{job.pk}/").json()

    assert body["status"] == "failed"
    assert body["error_message"] == "The collection does not exist"
    assert body["progress"]["eta_seconds"] is None


def test_detail_of_a_missing_job_is_a_404_in_the_error_shape(api_as):
    response = api_as("viewer").get("/api/v1/jobs/999999/")

    assert response.status_code == 404
    assert response.json() == {
        "code": "not_found",
        "message": "There is no job 999999.",
        "details": {},
    }


def test_detail_costs_two_queries_however_big_the_job(api_as, django_assert_num_queries):
    client = api_as("viewer")
    cluster = make_cluster("east")
    small = running_job(cluster=cluster, created_by=make_user("uploader"))
    big = running_job(cluster=cluster, created_by=make_user("uploader-2"))
    add_batches(big, 200)
    add_failed_rows(big, 200)
    client.get(f"/api/v1/jobs/{small.pk}/")  # the token's use and permissions are now known

    for job in (small, big):
        # The token with its user, then the job joined to its cluster and creator.
        with django_assert_num_queries(2) as captured:
            response = client.get(f"/api/v1/jobs/{job.pk}/")
        assert response.status_code == 200
        [token_query, job_query] = [q["sql"] for q in captured.captured_queries]
        assert "upserts_apitoken" in token_query and "upserts_upsertjob" not in token_query
        assert "upserts_upsertjob" in job_query
        assert "upserts_clusterendpoint" in job_query and "auth_user" in job_query


def test_a_tokens_permissions_are_read_once_then_kept_for_a_few_seconds(
    api_as, django_assert_num_queries
):
    client = api_as("viewer")
    job = running_job()

    # The token, its first use recorded, the user's and the groups' permissions, the job.
    with django_assert_num_queries(1 + 1 + 2 + 1):
        client.get(f"/api/v1/jobs/{job.pk}/")
    with django_assert_num_queries(1 + 1):
        client.get(f"/api/v1/jobs/{job.pk}/")


def test_a_session_poll_also_costs_the_same_few_queries_however_big_the_job(
    client, django_assert_num_queries
):
    client.force_login(make_user_with_role("browser", roles.VIEWERS))
    small, big = running_job(), running_job(cluster=make_cluster("east"))
    add_batches(big, 200)

    for job in (small, big):
        # Session, user, user and group permissions, job.
        with django_assert_num_queries(5):
            assert client.get(f"/api/v1/jobs/{job.pk}/").status_code == 200


def test_unchanged_job_answers_304_to_its_etag_and_200_once_it_moves(api_as):
    client = api_as("viewer")
    job = running_job()
    first = client.get(f"/api/v1/jobs/{job.pk}/")
    etag = first["ETag"]

    again = client.get(f"/api/v1/jobs/{job.pk}/", HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304
    assert again.content == b"" and again["ETag"] == etag
    assert "no-cache" in again["Cache-Control"]

    UpsertJob.objects.filter(pk=job.pk).update(rows_read=300, rows_upserted=290)
    moved = client.get(f"/api/v1/jobs/{job.pk}/", HTTP_IF_NONE_MATCH=etag)
    assert moved.status_code == 200
    assert moved["ETag"] != etag and moved.json()["rows_read"] == 300

    finished = client.get(f"/api/v1/jobs/{job.pk}/", HTTP_IF_NONE_MATCH=f'"x", {moved["ETag"]}')
    assert finished.status_code == 304


@pytest.mark.parametrize(
    "change",
    [{"max_in_flight": 4}, {"batch_size": 7}, {"sha256": "cd" * 32}, {"is_gzipped": True}],
)
def test_the_etag_changes_with_every_field_of_the_answer(api_as, change):
    """Derived from the answer itself: a field the serializer writes cannot be left out."""
    client = api_as("viewer")
    job = running_job()
    etag = client.get(f"/api/v1/jobs/{job.pk}/")["ETag"]

    UpsertJob.objects.filter(pk=job.pk).update(**change)
    answer = client.get(f"/api/v1/jobs/{job.pk}/", HTTP_IF_NONE_MATCH=etag)

    assert answer.status_code == 200 and answer["ETag"] != etag


def test_a_304_costs_the_same_two_queries_as_a_200(api_as, django_assert_num_queries):
    client = api_as("viewer")
    job = running_job()
    etag = client.get(f"/api/v1/jobs/{job.pk}/")["ETag"]

    with django_assert_num_queries(2):
        assert client.get(f"/api/v1/jobs/{job.pk}/", HTTP_IF_NONE_MATCH=etag).status_code == 304


# --- list ---------------------------------------------------------------------------------


def test_list_filters_by_status_cluster_collection_creator_and_time(api_as):
    client = api_as("viewer")
    alice, bob = make_user("alice"), make_user("bob")
    east, west = make_cluster("east"), make_cluster("west")
    done = make_job(east, status=JobStatus.SUCCEEDED, created_by=alice)
    running = make_job(east, status=JobStatus.RUNNING, created_by=bob)
    other_collection = make_job(west, collection_name="films", created_by=alice)
    old = make_job(west, created_by=bob)
    UpsertJob.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=3))

    def ids(query: str) -> set[int]:
        response = client.get(f"/api/v1/jobs/?{query}")
        assert response.status_code == 200, response.content
        return {job["id"] for job in response.json()["results"]}

    assert ids("status=succeeded&status=running") == {done.pk, running.pk}
    assert ids(f"cluster={west.pk}") == {other_collection.pk, old.pk}
    assert ids("collection=films") == {other_collection.pk}
    assert ids("created_by=alice") == {done.pk, other_collection.pk}
    cutoff = (timezone.now() - timedelta(days=1)).isoformat().replace("+00:00", "Z")
    assert ids(f"created_before={cutoff}") == {old.pk}
    assert ids(f"created_after={cutoff}&created_by=bob") == {running.pk}


def test_list_is_ordered_and_paginated(api_as, django_assert_max_num_queries):
    client = api_as("viewer")
    jobs = [make_job(make_cluster(f"c{n}"), rows_upserted=n * 10) for n in range(5)]

    newest_first = client.get("/api/v1/jobs/?page_size=2").json()
    assert newest_first["count"] == 5
    assert [j["id"] for j in newest_first["results"]] == [jobs[4].pk, jobs[3].pk]
    assert newest_first["next"].endswith("page=2&page_size=2")

    by_rows = client.get("/api/v1/jobs/?ordering=rows_upserted&page=3&page_size=2").json()
    assert [j["id"] for j in by_rows["results"]] == [jobs[4].pk]
    # A page of jobs is a count and one joined query, whatever the page holds.
    with django_assert_max_num_queries(6):
        client.get("/api/v1/jobs/?page_size=500")


def test_list_refuses_unknown_filter_values_naming_the_parameter(api_as):
    response = api_as("viewer").get("/api/v1/jobs/?status=done&created_after=yesterday")

    body = response.json()
    assert response.status_code == 400
    assert body["code"] == "validation_error"
    assert set(body["details"]) == {"status", "created_after"}
    assert "status" in body["message"] and "created_after" in body["message"]


def test_a_page_past_the_last_is_a_404(api_as):
    response = api_as("viewer").get("/api/v1/jobs/?page=9")

    assert response.status_code == 404 and response.json()["code"] == "not_found"


# --- batches and failed rows --------------------------------------------------------------


def test_batches_are_listed_in_order_page_by_page(api_as):
    job = running_job()
    add_batches(job, 3)

    body = api_as("viewer").get(f"/api/v1/jobs/{job.pk}/batches/?page_size=2").json()

    assert body["count"] == 3
    assert [b["sequence"] for b in body["results"]] == [1, 2]
    assert body["results"][0] == {
        **body["results"][0],
        "first_row": 1,
        "last_row": 10,
        "status": "succeeded",
        "upsert_count": 10,
        "milvus_code": 200,
    }


def test_failed_rows_download_as_json_lines(api_as):
    job = make_job(status=JobStatus.PARTIALLY_FAILED)
    FailedRow.objects.create(
        job=job, row_number=3, reason="emb: expected 4 floats", entity={"a": 1}
    )
    FailedRow.objects.create(job=job, row_number=7, reason="not JSON", raw="{broken")

    response = api_as("viewer").get(f"/api/v1/jobs/{job.pk}/failed-rows/")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/x-ndjson"
    assert f'filename="job-{job.pk}-failed-rows.jsonl"' in response["Content-Disposition"]
    lines = [orjson.loads(line) for line in b"".join(response.streaming_content).splitlines()]
    assert lines == [
        {"row_number": 3, "reason": "emb: expected 4 floats", "entity": {"a": 1}},
        {"row_number": 7, "reason": "not JSON", "raw": "{broken"},
    ]


def test_failed_rows_of_a_missing_job_is_a_json_404_even_when_json_lines_are_asked_for(api_as):
    response = api_as("viewer").get(
        "/api/v1/jobs/424242/failed-rows/", HTTP_ACCEPT="application/x-ndjson"
    )

    assert response.status_code == 404
    assert orjson.loads(response.content)["code"] == "not_found"


# --- actions: each audited ----------------------------------------------------------------


def _events(action: str, job: UpsertJob) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action, target_id=str(job.pk)))


def test_cancel_cancels_a_pending_job_and_audits_who_did_it(api_as):
    job = make_job()

    response = api_as("operator").post(f"/api/v1/jobs/{job.pk}/cancel/", REMOTE_ADDR="10.1.2.3")

    assert response.status_code == 200
    assert response.json()["status"] == "cancelled" and response.json()["cancel_requested"]
    [event] = _events(AuditAction.JOB_CANCELLED, job)
    assert event.actor_username == "operator" and event.client_ip == "10.1.2.3"


def test_cancel_asks_a_running_job_to_stop_after_its_batch(api_as):
    job = running_job()

    body = api_as("operator").post(f"/api/v1/jobs/{job.pk}/cancel/").json()

    assert body["status"] == "running" and body["cancel_requested"] is True


def test_cancelling_a_finished_job_is_a_409_conflict(api_as):
    job = make_job(status=JobStatus.SUCCEEDED)

    response = api_as("operator").post(f"/api/v1/jobs/{job.pk}/cancel/")

    assert response.status_code == 409
    assert response.json()["code"] == "job_action_refused"
    assert f"Job {job.pk}" in response.json()["message"]
    assert _events(AuditAction.JOB_CANCELLED, job) == []


def test_resume_puts_a_failed_job_back_in_the_queue(api_as):
    job = make_job(status=JobStatus.FAILED, error_message="cluster gone", checkpoint_row=500)

    response = api_as("operator").post(f"/api/v1/jobs/{job.pk}/resume/")

    assert response.status_code == 202
    assert response["Location"] == f"http://testserver/api/v1/jobs/{job.pk}/"
    assert response.json()["status"] == "pending"
    [event] = _events(AuditAction.JOB_RESUMED, job)
    assert event.details == {"from_row": 501}


def test_resuming_a_job_that_did_not_fail_is_a_409(api_as):
    job = running_job()

    response = api_as("operator").post(f"/api/v1/jobs/{job.pk}/resume/")

    assert response.status_code == 409 and response.json()["code"] == "job_action_refused"


def test_retry_failed_starts_a_new_job_from_the_failed_rows(api_as, books_cluster):
    job = make_job(books_cluster, status=JobStatus.PARTIALLY_FAILED, rows_failed=2)
    add_failed_rows(job, 2)

    response = api_as("operator").post(f"/api/v1/jobs/{job.pk}/retry-failed/")

    assert response.status_code == 202
    body = response.json()
    retry = UpsertJob.objects.get(pk=body["id"])
    assert response["Location"] == body["url"] == f"http://testserver/api/v1/jobs/{retry.pk}/"
    assert body["retry_of"] == job.pk and body["status"] == "pending"
    assert body["created_by"] == "operator"
    assert retry.estimated_rows == 2 and retry.collection_name == job.collection_name
    [event] = _events(AuditAction.JOB_RETRIED, retry)
    assert event.details == {"retry_of": job.pk, "rows": 2}
    assert _events(AuditAction.JOB_STARTED, retry)


def test_retrying_a_job_without_failed_rows_is_a_409(api_as):
    job = make_job(status=JobStatus.SUCCEEDED)

    response = api_as("operator").post(f"/api/v1/jobs/{job.pk}/retry-failed/")

    assert response.status_code == 409
    assert "no failed rows" in response.json()["message"]


# --- create -------------------------------------------------------------------------------

BOOKS = b'{"book_id": 1, "title": "A"}\n{"book_id": 2, "title": "B"}\n'


def upload(client, **fields):
    data = {"collection": "books", **fields}
    if "file" not in data:
        data["file"] = io.BytesIO(BOOKS)
        data["file"].name = "books.jsonl"
    return client.post("/api/v1/jobs/", data, format="multipart", REMOTE_ADDR="10.9.8.7")


def test_create_answers_202_with_the_job_and_its_address_and_audits_it(api_as, books_cluster):
    cluster = books_cluster

    response = upload(api_as("operator"), cluster=cluster.pk, batch_size=100)

    assert response.status_code == 202
    body = response.json()
    job = UpsertJob.objects.get(pk=body["id"])
    assert response["Location"] == body["url"] == f"http://testserver/api/v1/jobs/{job.pk}/"
    assert body["status"] == "pending" and body["filename"] == "books.jsonl"
    assert body["file_format"] == "jsonl" and body["estimated_rows"] == 2
    assert body["database"] == "default" and body["batch_size"] == 100
    assert job.source_file.read() == BOOKS
    for action in (AuditAction.FILE_UPLOADED, AuditAction.JOB_STARTED):
        [event] = _events(action, job)
        assert event.actor_username == "operator" and event.client_ip == "10.9.8.7"


def test_a_job_may_update_only_the_fields_in_its_file(api_as, fake_cluster):
    from tests.milvus.fake_collection import FakeCollection

    FakeCollection().serve(fake_cluster, api="v2")
    cluster = make_cluster(
        "modern", base_url=fake_cluster.url, api_version="v2", server_version="v2.6.4"
    )

    response = upload(api_as("operator"), cluster=cluster.pk, partial_update=True)

    assert response.status_code == 202, response.content
    assert response.json()["partial_update"] is True
    job = UpsertJob.objects.get(pk=response.json()["id"])
    assert job.partial_update
    [started] = _events(AuditAction.JOB_STARTED, job)
    assert started.details["partial_update"] is True


def test_a_partial_update_on_a_v1_cluster_is_refused_with_the_reason(api_as, books_cluster):
    response = upload(api_as("operator"), cluster=books_cluster.pk, partial_update=True)

    assert response.status_code == 400, response.content
    assert "needs REST v2 or gRPC" in response.json()["message"]
    assert not UpsertJob.objects.exists()


def test_create_names_each_invalid_field(api_as):
    response = api_as("operator").post(
        "/api/v1/jobs/", {"cluster": 999, "batch_size": 0}, format="multipart"
    )

    body = response.json()
    assert response.status_code == 400 and body["code"] == "validation_error"
    assert set(body["details"]) == {"file", "cluster", "collection", "batch_size"}
    assert body["details"]["cluster"] == ['Invalid pk "999" - object does not exist.']
    for field in ("file", "cluster", "collection", "batch_size"):
        assert f"{field}:" in body["message"]


@pytest.mark.parametrize(
    ("content", "cluster_fields", "message"),
    [
        (b"", {}, "is empty"),
        (BOOKS, {"is_enabled": False}, "is disabled"),
        (b"\x00\x01 not a format", {}, ""),
    ],
)
def test_create_refuses_files_that_cannot_become_a_job(api_as, content, cluster_fields, message):
    cluster = make_cluster("east", **cluster_fields)
    file = io.BytesIO(content)
    file.name = "rows.bin"

    response = upload(api_as("operator"), cluster=cluster.pk, file=file)

    assert response.status_code == 400
    assert response.json()["code"] in ("upload_rejected", "validation_error")
    assert message in response.json()["message"]
    assert not UpsertJob.objects.exists()


def test_create_takes_multipart_only(api_as):
    response = api_as("operator").post("/api/v1/jobs/", {"collection": "books"}, format="json")

    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"
