"""A script's whole errand: upload through the API, poll the job to its end through the real
worker and the real Milvus, then read what landed and what did not."""

import io

import orjson
import pytest

from tests.factories import book, make_user_with_role
from tests.helpers import query, token_client, wait_until
from upserts import roles
from upserts.models import AuditAction, AuditEvent

pytestmark = [pytest.mark.worker, pytest.mark.milvus]


def jsonl(rows) -> bytes:
    return b"".join(orjson.dumps(row) + b"\n" for row in rows)


def submit(client, cluster, collection: str, content: bytes):
    file = io.BytesIO(content)
    file.name = "books.jsonl"
    response = client.post(
        "/api/v1/jobs/",
        {"file": file, "cluster": cluster.pk, "collection": collection, "batch_size": 20},
        format="multipart",
    )
    assert response.status_code == 202, response.content
    return response


def poll_until_final(client, url: str) -> dict:
    """Poll like a well-behaved script: send the last ETag; a 304 means nothing moved yet."""
    state = {"etag": "", "body": {}}

    def final() -> bool:
        response = client.get(url, HTTP_IF_NONE_MATCH=state["etag"])
        if response.status_code == 304:
            return False
        assert response.status_code == 200, response.content
        state["etag"], state["body"] = response["ETag"], response.json()
        return state["body"]["status"] in ("succeeded", "partially_failed", "failed", "cancelled")

    wait_until(final, timeout=90, interval=0.1)
    return state["body"]


@pytest.mark.django_db(transaction=True)
def test_a_file_submitted_through_the_api_lands_in_milvus(celery_worker, milvus, books, cluster):
    client = token_client(make_user_with_role("script", roles.OPERATORS))
    rows = [book(n) for n in range(1, 101)]

    response = submit(client, cluster, books, jsonl(rows))
    body = poll_until_final(client, response["Location"])

    assert body["status"] == "succeeded", body
    assert (body["rows_read"], body["rows_upserted"], body["rows_failed"]) == (100, 100, 0)
    assert body["progress"]["percent"] == 100.0 and body["finished_at"]
    landed = query(milvus, books, "book_id >= 0", ["book_id", "title"], count=100)
    assert [row["title"] for row in landed] == [f"Book {n}" for n in range(1, 101)]
    batches = client.get(f"{response['Location']}batches/?page_size=100").json()
    assert batches["count"] == 5 and {b["status"] for b in batches["results"]} == {"succeeded"}
    lookup = client.get(f"/api/v1/entities/lookup/?collection={books}&id=42").json()
    assert [write["job"] for write in lookup["results"]] == [body["id"]]
    assert lookup["results"][0]["batch"] == 3
    actions = set(
        AuditEvent.objects.filter(target_id=str(body["id"])).values_list("action", flat=True)
    )
    assert {AuditAction.FILE_UPLOADED, AuditAction.JOB_STARTED, AuditAction.JOB_FINISHED} <= actions


@pytest.mark.django_db(transaction=True)
def test_bad_rows_are_downloadable_and_retried_through_the_api(
    celery_worker, milvus, books, cluster
):
    client = token_client(make_user_with_role("script", roles.OPERATORS))
    rows = [book(1), book(2, title="x" * 100), book(3)]  # title is VarChar(64)

    response = submit(client, cluster, books, jsonl(rows))
    body = poll_until_final(client, response["Location"])

    assert body["status"] == "partially_failed", body
    assert (body["rows_upserted"], body["rows_failed"]) == (2, 1)
    download = client.get(body["failed_rows_url"])
    [failed] = [orjson.loads(line) for line in b"".join(download.streaming_content).splitlines()]
    assert failed["row_number"] == 2 and failed["entity"]["book_id"] == 2
    assert "title" in failed["reason"]

    retry = client.post(f"{response['Location']}retry-failed/")
    assert retry.status_code == 202 and retry.json()["retry_of"] == body["id"]
    retried = poll_until_final(client, retry["Location"])
    # The row is as bad as before: the retry fails it again, and says so.
    assert retried["status"] == "failed" and retried["rows_failed"] == 1
    assert "No row landed" in retried["error_message"]
