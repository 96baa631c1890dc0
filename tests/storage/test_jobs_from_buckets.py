"""Jobs of files that already lie in a bucket (s3://bucket/key in a bucket a cluster admin
allowed), read where they lie: never downloaded and uploaded again."""

import hashlib
import io
import json

import pytest
from django.core.management import call_command

from tests.e2e.test_pipeline import as_parquet
from tests.factories import book, make_user_with_role
from tests.helpers import log_in, query, token_client, wait_until
from upserts import roles
from upserts.models import AuditAction, AuditEvent, JobStatus, SourceBucket, UpsertJob
from upserts.preview import preview_job

BUCKET = "datasets"
ROWS = [book(i) for i in range(1, 121)]
JSONL = b"".join(json.dumps(row).encode() + b"\n" for row in ROWS)


@pytest.fixture
def datasets(s3_server):
    client = s3_server.client()
    if BUCKET not in [b["Name"] for b in client.list_buckets()["Buckets"]]:
        client.create_bucket(Bucket=BUCKET)
    client.put_object(Bucket=BUCKET, Key="books/books.jsonl", Body=JSONL)
    client.put_object(Bucket=BUCKET, Key="books/books.parquet", Body=as_parquet(ROWS))
    client.put_object(Bucket=BUCKET, Key="private/secret.jsonl", Body=JSONL)
    return SourceBucket.objects.create(
        name="datasets",
        bucket=BUCKET,
        prefix="books/",
        endpoint_url=s3_server.url,
        region="us-east-1",
        path_style=True,
        access_key_id="testing",
        secret_access_key="testing",
    )


def submit(client, cluster, collection, source):
    return client.post(
        "/api/v1/jobs/",
        {"cluster": cluster.pk, "collection": collection, "source": source},
        format="multipart",
    )


@pytest.mark.django_db
def test_an_object_outside_what_an_admin_allowed_is_refused(datasets, books_cluster):
    client = token_client(make_user_with_role("script", roles.OPERATORS))

    elsewhere = submit(client, books_cluster, "books", "s3://datasets/private/secret.jsonl")
    other_bucket = submit(client, books_cluster, "books", "s3://other/books/books.jsonl")
    missing = submit(client, books_cluster, "books", "s3://datasets/books/none.jsonl")
    not_an_object = submit(client, books_cluster, "books", "https://example.com/books.jsonl")
    datasets.is_enabled = False
    datasets.save()
    disabled = submit(client, books_cluster, "books", "s3://datasets/books/books.jsonl")

    for answer in (elsewhere, other_bucket, disabled):
        assert answer.status_code == 400, answer.content
        assert answer.json()["code"] == "source_refused"
        assert "not in a bucket a cluster admin has allowed" in answer.json()["message"]
    assert missing.status_code == 400 and "cannot be read" in missing.json()["message"]
    assert not_an_object.json()["code"] == "source_refused"  # no allowed address
    assert not UpsertJob.objects.exists()


@pytest.mark.django_db
def test_the_upload_form_takes_an_object_and_previews_it_from_the_bucket(
    client, datasets, books_cluster, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    log_in(client, "operator")

    response = client.post(
        "/uploads/new/",
        {
            "cluster": books_cluster.pk,
            "collection_name": "books",
            "batch_size": 100,
            "max_in_flight": 2,
            "source": "s3://datasets/books/books.parquet",
        },
    )

    job = UpsertJob.objects.get()
    assert response.status_code == 302, response.content
    assert (
        job.source_file.name == "" and job.source_reference == "s3://datasets/books/books.parquet"
    )
    assert job.file_format == "parquet" and job.estimated_rows == 120
    assert not any(tmp_path.rglob("*.*"))  # nothing copied into the upload storage
    assert [row.number for row in preview_job(job).rows][:3] == [1, 2, 3]


@pytest.mark.milvus
@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_job_of_an_object_lands_every_row_and_the_audit_says_which_object(
    datasets, books, cluster, celery_worker, milvus
):
    client = token_client(make_user_with_role("script", roles.OPERATORS))

    answer = submit(client, cluster, books, "s3://datasets/books/books.jsonl")
    job = UpsertJob.objects.get(pk=answer.json()["id"])
    job = wait_until(lambda: (j := UpsertJob.objects.get(pk=job.pk)).is_final and j, timeout=90)

    assert job.status == JobStatus.SUCCEEDED, job.error_message
    assert job.rows_upserted == 120 and job.size_bytes == len(JSONL)
    assert job.sha256 == hashlib.sha256(JSONL).hexdigest()
    assert job.source_etag == hashlib.md5(JSONL).hexdigest()  # noqa: S324 - S3's ETag
    uploaded = AuditEvent.objects.get(action=AuditAction.FILE_UPLOADED, target_id=str(job.pk))
    assert uploaded.details["source"] == "s3://datasets/books/books.jsonl"
    assert uploaded.details["etag"] == job.source_etag
    assert len(query(milvus, books, "book_id > 0", ["book_id"], count=120)) == 120


@pytest.mark.milvus
@pytest.mark.django_db(transaction=True)
def test_the_upsert_command_takes_an_object(datasets, books, cluster, milvus):
    out = io.StringIO()

    call_command(
        "upsert", "s3://datasets/books/books.parquet", "--cluster", cluster.name,
        "--collection", books, "--here", stdout=out,
    )  # fmt: skip

    assert "s3://datasets/books/books.parquet (parquet" in out.getvalue()
    assert "succeeded: 120 rows read, 120 upserted" in out.getvalue()


@pytest.mark.django_db
def test_a_prefix_becomes_a_queued_job_a_file_of_one_format(
    client, datasets, books_cluster, s3_server
):
    s3 = s3_server.client()
    for name in ("b.jsonl", "a.jsonl"):
        s3.put_object(Bucket=BUCKET, Key=f"books/daily/{name}", Body=JSONL)
    log_in(client, "operator")
    fields = {"cluster": books_cluster.pk, "collection_name": "books", "batch_size": 100,
              "max_in_flight": 2}  # fmt: skip

    mixed = client.post("/uploads/new/", {**fields, "source": "s3://datasets/books/"})
    daily = client.post("/uploads/new/", {**fields, "source": "s3://datasets/books/daily/"})
    out = io.StringIO()
    call_command("upsert", "s3://datasets/books/daily/", "--cluster", books_cluster.name,
                 "--collection", "books", stdout=out)  # fmt: skip

    assert mixed.status_code == 200
    assert "holds files of several formats (jsonl, parquet)" in mixed.content.decode()
    assert daily.status_code == 302 and daily.url == "/jobs/"
    references = list(UpsertJob.objects.order_by("pk").values_list("source_reference", flat=True))
    assert (
        references
        == [
            "s3://datasets/books/daily/a.jsonl",
            "s3://datasets/books/daily/b.jsonl",
        ]
        * 2
    )
    assert all(job.queued_at for job in UpsertJob.objects.all())
    assert "2 jobs queued" in out.getvalue()
