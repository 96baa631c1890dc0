"""New upload: the target pickers, the file checks on the form, the preview, start and cancel."""

import io
import json
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings
from django.urls import reverse

from tests.factories import book, make_cluster, make_job
from tests.helpers import log_in, page_text
from upserts.models import AuditAction, AuditEvent, JobStatus, UpsertJob

pytestmark = pytest.mark.django_db


def jsonl(rows) -> bytes:
    return b"".join(json.dumps(row).encode() + b"\n" for row in rows)


def _post_upload(client, cluster, collection, filename, content, **fields):
    data = {
        "cluster": cluster.pk,
        "database_name": "",
        "collection_name": collection,
        "partition_name": "",
        "batch_size": 100,
        "max_in_flight": 2,
        "file": SimpleUploadedFile(filename, content),
        **fields,
    }
    return client.post(reverse("upload_new"), data, REMOTE_ADDR="192.0.2.9", **{})


@pytest.mark.milvus
def test_a_good_file_becomes_a_pending_job_and_its_preview_checks_each_row(
    client, milvus_cluster, books
):
    log_in(client, "operator")
    rows = [book(1), book(2, emb=[0.1, 0.2]), book(3, title="x" * 80), book(4)]

    response = _post_upload(client, milvus_cluster, books, "books.jsonl", jsonl(rows))

    job = UpsertJob.objects.get()
    assert response.status_code == 302
    assert response.url == reverse("upload_preview", args=[job.pk])
    assert job.status == JobStatus.PENDING and job.file_format == "jsonl"
    assert job.batch_size == 100 and job.created_by.username == "operator"
    uploaded = AuditEvent.objects.get(action=AuditAction.FILE_UPLOADED)
    assert uploaded.client_ip == "192.0.2.9"

    page = page_text(client.get(response.url))
    assert "JSON Lines" in page and "about 4" in page
    assert "2 of 4 rows would fail" in page
    assert "field `emb`: expected 4 floats, got 2" in page
    assert "field `title`" in page
    assert "Start job" in page and "Cancel upload" in page


@pytest.mark.milvus
def test_an_htmx_upload_is_redirected_to_the_preview_by_header(client, milvus_cluster, books):
    log_in(client, "operator")

    response = client.post(
        reverse("upload_new"),
        {
            "cluster": milvus_cluster.pk,
            "collection_name": books,
            "batch_size": 500,
            "max_in_flight": 2,
            "file": SimpleUploadedFile("books.jsonl", jsonl([book(1)])),
        },
        headers={"HX-Request": "true"},
    )

    job = UpsertJob.objects.get()
    assert response["HX-Redirect"] == reverse("upload_preview", args=[job.pk])


@pytest.mark.milvus
@pytest.mark.parametrize(
    ("filename", "content", "message"),
    [
        ("empty.jsonl", b"", "empty.jsonl is empty."),
        ("blank.jsonl", b"\n\n  \n", "holds nothing but blank space"),
        ("photo.jpg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01" * 10, "is binary data"),
        ("books.csv", b"\x00\x01\x02 not csv", "is binary data"),
        ("notes.txt", b"Dear team\nplease find the books attached\n", "cannot tell the format"),
    ],
)
def test_a_file_the_console_cannot_read_is_refused_on_the_form(
    client, milvus_cluster, books, filename, content, message
):
    log_in(client, "operator")

    response = _post_upload(client, milvus_cluster, books, filename, content)

    assert response.status_code == 200
    assert message in page_text(response)
    assert not UpsertJob.objects.exists()


@pytest.mark.milvus
def test_a_zip_archive_is_refused_with_advice(client, milvus_cluster, books):
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("books.jsonl", jsonl([book(1)]))
    log_in(client, "operator")

    response = _post_upload(client, milvus_cluster, books, "books.zip", archive.getvalue())

    assert "a ZIP archive: unzip it and upload the file inside" in page_text(response)
    assert not UpsertJob.objects.exists()


@pytest.mark.milvus
def test_an_autoid_collection_is_refused_before_anything_is_stored(
    client, milvus_cluster, make_collection
):
    auto = make_collection(
        [
            {"name": "id", "type": "INT64", "is_primary": True, "auto_id": True},
            {"name": "emb", "type": "FLOAT_VECTOR", "dim": 4},
        ]
    )
    log_in(client, "operator")

    response = _post_upload(client, milvus_cluster, auto, "rows.jsonl", b'{"emb": [1,2,3,4]}\n')

    page = page_text(response)
    assert "(autoID), and an autoID collection cannot take upserts" in page
    assert not UpsertJob.objects.exists()
    assert not AuditEvent.objects.filter(action=AuditAction.FILE_UPLOADED).exists()


@pytest.mark.milvus
def test_a_collection_that_does_not_exist_is_refused(client, milvus_cluster):
    log_in(client, "operator")

    response = _post_upload(client, milvus_cluster, "nope", "rows.jsonl", jsonl([book(1)]))

    assert "Cannot use collection nope on embedded-milvus" in page_text(response)
    assert not UpsertJob.objects.exists()


@override_settings(UPLOAD_MAX_BYTES=16)
@pytest.mark.milvus
def test_a_file_over_the_size_limit_is_refused(client, milvus_cluster, books):
    log_in(client, "operator")

    response = _post_upload(client, milvus_cluster, books, "big.jsonl", jsonl([book(1)]))

    assert "the largest file accepted is 16 bytes" in page_text(response)
    assert not UpsertJob.objects.exists()


def test_form_fields_are_checked_before_the_cluster_is_asked(client, unreachable_cluster):
    log_in(client, "operator")

    response = _post_upload(
        client, unreachable_cluster, "", "rows.jsonl", b"{}", batch_size=0, max_in_flight=99
    )

    page = page_text(response)
    assert "This field is required." in page
    assert "Ensure this value is greater than or equal to 1." in page
    assert "Ensure this value is less than or equal to 16." in page


def test_a_disabled_cluster_is_not_offered(client):
    make_cluster("retired", is_enabled=False)
    live = make_cluster("live")
    log_in(client, "operator")

    page = page_text(client.get(reverse("upload_new")))

    assert f'<option value="{live.pk}" selected>live</option>' in page
    assert "retired" not in page


def test_the_upload_page_without_clusters_says_what_to_do(client):
    log_in(client, "operator")

    page = page_text(client.get(reverse("upload_new")))

    assert "No enabled cluster is registered yet." in page


@pytest.mark.milvus
def test_the_collection_picker_lists_the_clusters_collections(client, milvus_cluster, books):
    log_in(client, "operator")

    response = client.get(
        reverse("upload_collections"),
        {"cluster": milvus_cluster.pk, "collection_name": books},
        headers={"HX-Request": "true"},
    )

    page = page_text(response)
    assert f'<option value="{books}" selected>{books}</option>' in page
    assert "in <code>default</code> on embedded-milvus" in page


def test_the_collection_picker_falls_back_to_typing_when_the_cluster_cannot_answer(
    client, unreachable_cluster
):
    log_in(client, "operator")

    page = page_text(
        client.get(
            reverse("upload_collections"),
            {"cluster": unreachable_cluster.pk, "collection_name": "books"},
        )
    )

    assert 'type="text" name="collection_name"' in page and 'value="books"' in page
    assert "Could not list the collections" in page


def test_starting_a_pending_job_checks_the_target_first(client, unreachable_cluster):
    job = make_job(unreachable_cluster, file_format="jsonl")
    log_in(client, "operator")

    response = client.post(reverse("upload_start", args=[job.pk]), follow=True)

    job.refresh_from_db()
    assert job.status == JobStatus.PENDING
    assert "cannot be sent to that collection" in page_text(response)
    assert not AuditEvent.objects.filter(action=AuditAction.JOB_STARTED).exists()


@pytest.mark.milvus
def test_start_queues_the_job_and_opens_its_page(
    client, milvus_cluster, books, django_capture_on_commit_callbacks, monkeypatch
):
    queued = []
    monkeypatch.setattr("upserts.tasks.run_upsert_job.delay", queued.append)
    job = make_job(milvus_cluster, collection_name=books, file_format="jsonl")
    log_in(client, "operator")

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("upload_start", args=[job.pk]))

    assert response.url == reverse("job_detail", args=[job.pk])
    assert queued == [job.pk]
    assert AuditEvent.objects.get(action=AuditAction.JOB_STARTED).actor_username == "operator"


def test_cancelling_the_preview_cancels_the_pending_job(client, unreachable_cluster):
    job = make_job(unreachable_cluster, file_format="jsonl", original_filename="mistake.jsonl")
    log_in(client, "operator")

    response = client.post(reverse("upload_cancel", args=[job.pk]), follow=True)

    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED
    assert response.redirect_chain[-1][0] == reverse("upload_new")
    assert "Upload of mistake.jsonl cancelled; nothing was sent." in page_text(response)


def test_the_preview_of_a_job_that_already_started_opens_the_job(client, unreachable_cluster):
    job = make_job(unreachable_cluster, file_format="jsonl", status=JobStatus.RUNNING)
    log_in(client, "viewer")

    response = client.get(reverse("upload_preview", args=[job.pk]))

    assert response.url == reverse("job_detail", args=[job.pk])


def test_the_preview_shows_the_clusters_error_and_offers_no_start(client, unreachable_cluster):
    job = make_job(unreachable_cluster, file_format="jsonl", content=b'{"id": 1}\n')
    log_in(client, "operator")

    page = page_text(client.get(reverse("upload_preview", args=[job.pk])))

    assert "The collection cannot be read: Could not reach" in page
    assert "Start job" not in page and "Cancel upload" in page
