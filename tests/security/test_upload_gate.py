"""Nothing of a request body is read before it is allowed: too big is refused from its
Content-Length, and file parts are taken only where uploads are, from those allowed to upload."""

import io
import socket
import time

import pytest
from django.core.files.uploadhandler import TemporaryFileUploadHandler
from django.urls import reverse

from tests.factories import make_cluster, make_user_with_role
from tests.faults.test_web_restart import web  # noqa: F401 - the gunicorn fixture
from upserts import roles
from upserts.models import UpsertJob
from upserts.services.api_tokens import create_api_token

pytestmark = pytest.mark.django_db(transaction=True)

BOUNDARY = "gate"


def send_headers_only(port: int, path: str, length: int, extra: str = "") -> tuple[int, float]:
    """Announce a multipart body of ``length`` bytes, send only its first line, and read the
    answer: (HTTP status, seconds it took). An answer at all proves the body was not read."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            (
                f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}"
                f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
                f"Content-Length: {length}\r\n\r\n--{BOUNDARY}\r\n"
            ).encode()
        )
        answer = sock.recv(4096)
    return int(answer.split(b" ", 2)[1]), time.monotonic() - started


def test_a_big_body_to_the_login_page_is_refused_before_it_is_read(web):  # noqa: F811
    status, seconds = send_headers_only(web.port, "/login/", 100 * 1024 * 1024)

    assert status == 413
    assert seconds < 5


def test_an_upload_over_the_limit_is_refused_before_it_is_read(web, settings):  # noqa: F811
    cluster = make_cluster("target", base_url="http://127.0.0.1:9")
    user = make_user_with_role("operator", roles.OPERATORS)
    key = create_api_token(user=user, name="upload").key
    too_big = 3 * 1024**3  # past the 2 GiB default

    page = send_headers_only(web.port, "/uploads/new/", too_big)
    api = send_headers_only(web.port, "/api/v1/jobs/", too_big, f"Authorization: Bearer {key}\r\n")

    assert page[0] == api[0] == 413
    assert max(page[1], api[1]) < 5
    assert not UpsertJob.objects.filter(cluster=cluster).exists()


def test_an_api_json_body_over_the_limit_is_refused(client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024
    make_user_with_role("admin", roles.CLUSTER_ADMINS)
    client.login(username="admin", password="correct-horse-battery-staple")

    response = client.post(
        "/api/v1/clusters/",
        data=b'{"name": "' + b"x" * (2 * 1024 * 1024) + b'"}',
        content_type="application/json",
    )

    assert response.status_code == 413
    assert response.json()["code"] == "request_too_large"


def file_post(client, path: str, size: int, **fields: str):
    upload = io.BytesIO(b"{}\n" * (size // 3))
    upload.name = "rows.jsonl"
    return client.post(path, {**fields, "file": upload})


@pytest.mark.parametrize("role", [None, roles.VIEWERS])
def test_file_parts_from_someone_not_allowed_to_upload_are_never_stored(
    client, settings, tmp_path, monkeypatch, role
):
    """Django writes a file part bigger than FILE_UPLOAD_MAX_MEMORY_SIZE to a temporary file as
    it parses; the gate stops the parse at the first file part instead. Every write of such a
    file goes through TemporaryFileUploadHandler.receive_data_chunk, which is counted."""
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 0
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path)
    if role:
        make_user_with_role("someone", role)
        client.login(username="someone", password="correct-horse-battery-staple")
    stored: list[int] = []
    write = TemporaryFileUploadHandler.receive_data_chunk

    def counting_write(self, raw_data, start):
        stored.append(len(raw_data))
        return write(self, raw_data, start)

    monkeypatch.setattr(TemporaryFileUploadHandler, "receive_data_chunk", counting_write)
    for path in ["/login/", reverse("upload_new"), "/admin/login/"]:
        file_post(client, path, 1024 * 1024, username="x", password="y")

    assert stored == []
    assert list(tmp_path.iterdir()) == []
    assert not UpsertJob.objects.exists()


def test_an_operator_upload_is_still_taken(client, settings, tmp_path):
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 0
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path)
    cluster = make_cluster("target", base_url="http://127.0.0.1:9")
    make_user_with_role("operator", roles.OPERATORS)
    client.login(username="operator", password="correct-horse-battery-staple")

    response = file_post(
        client,
        reverse("upload_new"),
        30_000,
        cluster=str(cluster.pk),
        collection_name="books",
        batch_size="500",
        max_in_flight="2",
    )

    # The target cannot be reached, so no job: but the form got the file and said why.
    assert response.status_code == 200
    assert "Cannot use collection books" in response.content.decode()
