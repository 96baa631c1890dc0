"""Uploads through the form and the API land in the S3-compatible store (a real moto_server
process), never on the web host's disk, and the preview reads them from there."""

import io

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from tests.factories import make_user_with_role
from tests.helpers import log_in, token_client
from tests.object_storage import BUCKET, PREFIX
from upserts import roles
from upserts.models import UpsertJob
from upserts.preview import preview_job

pytestmark = pytest.mark.django_db

CONTENT = b"".join(b'{"book_id": %d, "title": "t", "emb": [0.5, 0.5, 0.5, 0.5]}\n' % i
                   for i in range(1, 51))  # fmt: skip


def stored_size(s3, job: UpsertJob) -> int:
    head = s3.client().head_object(Bucket=BUCKET, Key=f"{PREFIX}/{job.source_file.name}")
    return int(head["ContentLength"])


def test_an_upload_through_the_form_lands_in_the_bucket_and_previews_from_there(
    client, s3_storage, books_cluster
):
    log_in(client, "operator")

    response = client.post(
        reverse("upload_new"),
        {
            "cluster": books_cluster.pk,
            "collection_name": "books",
            "batch_size": 100,
            "max_in_flight": 2,
            "file": SimpleUploadedFile("books.jsonl", CONTENT),
        },
    )

    job = UpsertJob.objects.get()
    assert response.status_code == 302, response.content
    assert stored_size(s3_storage, job) == len(CONTENT) == job.size_bytes
    assert not (settings.MEDIA_ROOT / job.source_file.name).exists()
    preview = preview_job(job)
    assert [row.number for row in preview.rows] == list(range(1, 21))
    assert all(row.is_valid for row in preview.rows) and job.estimated_rows == 50


def test_an_upload_through_the_api_lands_in_the_bucket(s3_storage, books_cluster):
    client = token_client(make_user_with_role("script", roles.OPERATORS))
    file = io.BytesIO(CONTENT)
    file.name = "books.jsonl"

    response = client.post(
        "/api/v1/jobs/",
        {"file": file, "cluster": books_cluster.pk, "collection": "books"},
        format="multipart",
    )

    assert response.status_code == 202, response.content
    job = UpsertJob.objects.get()
    assert stored_size(s3_storage, job) == len(CONTENT)
    assert not (settings.MEDIA_ROOT / job.source_file.name).exists()


def test_a_stored_object_is_read_in_ranges_from_where_it_is_asked(s3_storage):
    from upserts.object_store import ObjectLocation, open_object

    client = s3_storage.client()
    content = bytes(range(256)) * 20_000  # 5 MB, past one read buffer
    client.put_object(Bucket=BUCKET, Key="ranges/blob", Body=content)
    location = ObjectLocation(BUCKET, "ranges/blob", endpoint_url=s3_storage.url,
                              region="us-east-1", addressing_style="path")  # fmt: skip
    credentials = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}

    with open_object(location, credentials=credentials) as stream:
        assert stream.read(10) == content[:10]
        stream.seek(3_000_000)
        assert stream.read(2_000_000) == content[3_000_000:5_000_000]
        stream.seek(-5, io.SEEK_END)
        assert stream.read() == content[-5:] and stream.tell() == len(content)
        stream.seek(1_234_567)
        assert stream.read() == content[1_234_567:]


def test_parquet_in_the_bucket_is_decoded_from_the_store_itself_never_copied_to_disk(
    s3_storage, monkeypatch
):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from upserts.readers import parquet_decoder, read_rows
    from upserts.services.stored_files import open_stored, upload_storage

    table = pa.table({"book_id": pa.array(range(1, 1001), pa.int64()), "title": ["t"] * 1000})
    content = io.BytesIO()
    pq.write_table(table, content, row_group_size=100)
    name = upload_storage().save("uploads/books.parquet", io.BytesIO(content.getvalue()))

    def no_copies(stream):
        raise AssertionError("the object was copied to a local file")

    monkeypatch.setattr(parquet_decoder, "spool_to_temporary_file", no_copies)
    with open_stored(name) as source:
        rows = list(read_rows(source, file_format="parquet", gzipped=False,
                              filename="books.parquet", start_after=950))  # fmt: skip

    assert [row.entity["book_id"] for row in rows] == list(range(951, 1001))
