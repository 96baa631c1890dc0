"""Resumable uploads (tus 1.0.0), on the local disk and on the S3 server: the protocol as the
console speaks it, a real independent tus client (tuspy) resuming a few hundred megabytes
after the web process is killed mid-part, and the finished upload made a job."""

import hashlib
import io
import threading

import pytest
from django.conf import settings

from tests.factories import make_user_with_role
from tests.helpers import WebServer, token_client, wait_until
from tests.object_storage import BUCKET, PREFIX
from upserts import roles
from upserts.models import AuditAction, AuditEvent, ResumableUpload, UpsertJob
from upserts.services import resumable_uploads
from upserts.services.api_tokens import create_api_token
from upserts.services.stored_files import open_stored

TUS = {"HTTP_TUS_RESUMABLE": "1.0.0"}
MiB = 1024 * 1024


def book_lines(size: int) -> bytes:
    line = b'{"book_id": %d, "title": "Book", "emb": [0.5, 0.5, 0.5, 0.5]}\n'
    out = io.BytesIO()
    number = 0
    while out.tell() < size:
        number += 1
        out.write(line % number)
    return out.getvalue()


def begin(client, length: int, filename: str = "books.jsonl") -> str:
    import base64

    answer = client.post(
        "/api/v1/uploads/",
        HTTP_UPLOAD_LENGTH=str(length),
        HTTP_UPLOAD_METADATA=f"filename {base64.b64encode(filename.encode()).decode()}",
        **TUS,
    )
    assert answer.status_code == 201, answer.content
    assert answer["Tus-Resumable"] == "1.0.0" and answer["Upload-Expires"]
    return answer["Location"]


def patch(client, url: str, offset: int, body: bytes, **headers):
    return client.generic(
        "PATCH",
        url,
        data=body,
        content_type="application/offset+octet-stream",
        HTTP_UPLOAD_OFFSET=str(offset),
        **{**TUS, **headers},
    )


def request_s3(settings):
    """A client of the S3 server the test's storage points at."""
    import boto3

    options = settings.STORAGES["default"]["OPTIONS"]
    return boto3.client(
        "s3",
        endpoint_url=options["endpoint_url"],
        region_name=options["region_name"],
        aws_access_key_id=options["access_key"],
        aws_secret_access_key=options["secret_key"],
    )


def stored_bytes(upload: ResumableUpload) -> bytes:
    with open_stored(upload.storage_name) as source:
        return source.read()


@pytest.fixture
def script(db):
    return token_client(make_user_with_role("script", roles.OPERATORS))


@pytest.fixture(params=["local", "s3"])
def storage(request, monkeypatch):
    """Each test runs on the local disk and on the S3 server; S3 parts of S3's smallest size."""
    monkeypatch.setattr(resumable_uploads, "PART_BYTES", 5 * MiB)
    if request.param == "s3":
        request.getfixturevalue("s3_storage")
    return request.param


@pytest.mark.django_db
def test_parts_cut_short_are_kept_and_the_rest_sent_from_the_stored_offset(script, storage):
    content = book_lines(12 * MiB + 12345)
    url = begin(script, len(content))
    options = script.options("/api/v1/uploads/")
    assert options["Tus-Version"] == "1.0.0" and "termination" in options["Tus-Extension"]
    assert options["Tus-Max-Size"] == str(settings.UPLOAD_MAX_BYTES)

    # Parts of awkward sizes: S3 parts fill across them, tails wait in the bucket.
    offset = 0
    for size in (3 * MiB, 1, 4 * MiB + 7, 3 * MiB):
        answer = patch(script, url, offset, content[offset : offset + size])
        assert answer.status_code == 204, answer.content
        offset += size
        assert int(answer["Upload-Offset"]) == offset
        assert int(script.head(url, **TUS)["Upload-Offset"]) == offset
    assert patch(script, url, 5, b"x").status_code == 409  # not where the stored bytes end
    assert script.generic("PATCH", url, b"x", "text/plain", HTTP_UPLOAD_OFFSET=str(offset),
                          **TUS).status_code == 415  # fmt: skip
    assert script.generic("PATCH", url, b"x", "application/offset+octet-stream",
                          HTTP_UPLOAD_OFFSET=str(offset)).status_code == 412  # fmt: skip
    too_long = patch(script, url, offset, content[offset:] + b"more")
    assert too_long.status_code == 413

    last = patch(script, url, offset, content[offset:])

    assert last.status_code == 204 and int(last["Upload-Offset"]) == len(content)
    upload = ResumableUpload.objects.get()
    assert upload.status == "complete" and stored_bytes(upload) == content
    parts = AuditEvent.objects.filter(action=AuditAction.UPLOAD_PART_RECEIVED)
    assert parts.count() == 5 and all(event.actor_username == "script" for event in parts)
    if storage == "s3":
        sizes = [part["Size"] for part in upload.parts]
        assert sizes == [5 * MiB, 5 * MiB, len(content) - 10 * MiB]


@pytest.mark.django_db
def test_uploads_are_their_senders_own_refused_past_the_limit_and_removed_on_cancel(
    script, storage
):
    url = begin(script, 10)
    other = token_client(make_user_with_role("other", roles.OPERATORS))
    viewer = token_client(make_user_with_role("viewer", roles.VIEWERS))

    assert other.head(url, **TUS).status_code == 404
    assert patch(other, url, 0, b"0123456789").status_code == 404
    assert viewer.post("/api/v1/uploads/", HTTP_UPLOAD_LENGTH="10", **TUS).status_code == 403
    big = script.post(
        "/api/v1/uploads/", HTTP_UPLOAD_LENGTH=str(settings.UPLOAD_MAX_BYTES + 1), **TUS
    )
    assert big.status_code == 413 and b"largest file accepted" in big.content
    assert patch(script, url, 0, b"01234").status_code == 204
    upload = ResumableUpload.objects.get()

    assert script.delete(url, **TUS).status_code == 204

    assert script.head(url, **TUS).status_code == 410
    assert patch(script, url, 5, b"56789").status_code == 410
    assert AuditEvent.objects.filter(action=AuditAction.UPLOAD_CANCELLED).count() == 1
    if storage == "local":
        assert not (settings.MEDIA_ROOT / upload.storage_name).exists()


@pytest.mark.django_db
def test_a_finished_upload_becomes_a_job_where_it_lies_and_once(script, storage, books_cluster):
    content = book_lines(64 * 1024)
    url = begin(script, len(content))
    upload_id = url.rstrip("/").rsplit("/", 1)[1]
    fields = {"cluster": books_cluster.pk, "collection": "books", "upload": upload_id}
    early = script.post("/api/v1/jobs/", fields, format="multipart")
    assert early.status_code == 409 and b"only a finished upload becomes a job" in early.content
    patch(script, url, 0, content)

    answer = script.post("/api/v1/jobs/", fields, format="multipart")
    again = script.post("/api/v1/jobs/", fields, format="multipart")

    assert answer.status_code == 202, answer.content
    job = UpsertJob.objects.get()
    upload = ResumableUpload.objects.get()
    assert job.source_file.name == upload.storage_name and upload.job == job
    assert job.sha256 == hashlib.sha256(content).hexdigest() and job.size_bytes == len(content)
    assert job.original_filename == "books.jsonl" and job.file_format == "jsonl"
    assert again.status_code == 409
    both = script.post("/api/v1/jobs/", {**fields, "file": io.BytesIO(b"{}")}, format="multipart")
    assert both.status_code == 400


@pytest.mark.django_db
def test_an_unfinished_upload_past_its_expiry_is_removed_with_its_parts(script, storage, settings):
    url = begin(script, 20 * MiB)
    patch(script, url, 0, book_lines(7 * MiB)[: 7 * MiB])
    upload = ResumableUpload.objects.get()
    ResumableUpload.objects.update(expires_at=upload.created_at)

    assert resumable_uploads.expire_uploads() == 1

    upload.refresh_from_db()
    assert upload.status == "expired" and script.head(url, **TUS).status_code == 410
    if storage == "s3":
        s3 = request_s3(settings)
        key = f"{PREFIX}/{upload.storage_name}"
        assert not s3.list_multipart_uploads(Bucket=BUCKET, Prefix=key).get("Uploads")
        assert not s3.list_objects_v2(Bucket=BUCKET, Prefix=key).get("Contents")
    else:
        assert not (settings.MEDIA_ROOT / upload.storage_name).exists()


@pytest.mark.django_db(transaction=True)
def test_a_tus_client_resumes_after_the_web_process_is_killed_mid_part(tmp_path, redis_url):
    from tusclient.client import TusClient

    content = book_lines(300 * MiB)
    path = tmp_path / "big.jsonl"
    path.write_bytes(content)
    user = make_user_with_role("script", roles.OPERATORS)
    headers = {"Authorization": f"Bearer {create_api_token(user=user, name='tus').key}"}
    media = tmp_path / "media"
    first = WebServer(media, redis_url).start()
    chunk = 128 * MiB
    uploader = TusClient(f"{first.url}/api/v1/uploads/", headers=headers).uploader(
        str(path), chunk_size=chunk, metadata={"filename": "big.jsonl"}
    )
    failure: list[BaseException] = []

    def send() -> None:
        try:
            uploader.upload()
        except BaseException as exc:  # the connection goes when the web process does
            failure.append(exc)

    sender = threading.Thread(target=send)
    sender.start()
    # Mid-way through the second part: its first 16 MiB steps are stored, the rest in flight.
    wait_until(
        lambda: (u := ResumableUpload.objects.first()) is not None and u.offset >= chunk + 32 * MiB,
        timeout=120,
        interval=0.01,
    )
    first.kill()
    sender.join(timeout=60)
    upload = ResumableUpload.objects.get()
    assert failure and chunk < upload.offset < 2 * chunk and upload.status == "receiving"

    second = WebServer(media, redis_url).start()
    try:
        address = uploader.url.replace(first.url, second.url)
        resumed = TusClient(f"{second.url}/api/v1/uploads/", headers=headers).uploader(
            str(path), url=address, chunk_size=chunk
        )
        assert resumed.offset == upload.offset  # asked the server (HEAD), not started over
        resumed.upload()
    finally:
        second.kill()

    upload.refresh_from_db()
    assert upload.status == "complete" and upload.offset == len(content)
    stored = media / upload.storage_name
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == hashlib.sha256(content).hexdigest()


@pytest.mark.django_db
def test_the_pages_uploads_need_the_csrf_token_of_the_signed_in_session(storage):
    from django.test import Client

    from tests.helpers import log_in

    browser = Client(enforce_csrf_checks=True)
    log_in(browser, "operator")
    browser.get("/uploads/new/")
    token = browser.cookies["csrftoken"].value
    begin_on_page = {"HTTP_UPLOAD_LENGTH": "5", **TUS}

    refused = browser.post("/uploads/tus/", **begin_on_page)
    created = browser.post("/uploads/tus/", HTTP_X_CSRFTOKEN=token, **begin_on_page)
    url = created["Location"]
    part = {"content_type": "application/offset+octet-stream", "HTTP_UPLOAD_OFFSET": "0", **TUS}
    patch_refused = browser.generic("PATCH", url, b"12345", **part)
    patched = browser.generic("PATCH", url, b"12345", HTTP_X_CSRFTOKEN=token, **part)

    assert refused.status_code == 403 and patch_refused.status_code == 403
    assert created.status_code == 201 and patched.status_code == 204
    assert ResumableUpload.objects.get().status == "complete"
