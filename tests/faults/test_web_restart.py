"""The web process killed in the middle of an upload leaves no half-created job behind."""

import contextlib
import socket
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from django.db import connection, connections

from tests.factories import make_user_with_role
from tests.helpers import WebServer, wait_until
from upserts import roles
from upserts.models import ApiToken, AuditAction, AuditEvent, UpsertJob
from upserts.services.api_tokens import create_api_token
from upserts.services.stored_files import remove_orphan_uploads

pytestmark = pytest.mark.django_db(transaction=True)

ROW = b'{"book_id": 1, "title": "Book", "emb": [0.1, 0.2, 0.3, 0.4]}\n'


@pytest.fixture
def web(tmp_path, redis_url) -> Iterator[WebServer]:
    server = WebServer(tmp_path / "media", redis_url).start()
    try:
        yield server
    finally:
        if server.process is not None:
            server.kill()


def multipart_head(boundary: str, cluster_pk: int) -> bytes:
    """The form fields of an API upload, up to where the file's bytes begin."""
    return (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="cluster"\r\n\r\n'
        f"{cluster_pk}\r\n"
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="collection"\r\n\r\nbooks\r\n'
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="file"; filename="big.jsonl"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()


def request_head(port: int, key: str, boundary: str, body_size: int) -> bytes:
    return (
        "POST /api/v1/jobs/ HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\n"
        f"Authorization: Token {key}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {body_size}\r\n\r\n"
    ).encode()


def stored_files(web: WebServer) -> list[Path]:
    folder = web.media_root / "uploads"
    return sorted(folder.iterdir()) if folder.exists() else []


def test_killing_the_web_process_mid_upload_leaves_no_job_file_or_event(web, books_cluster):
    cluster = books_cluster
    user = make_user_with_role("operator", roles.OPERATORS)
    key = create_api_token(user=user, name="upload").key
    boundary = uuid.uuid4().hex
    head = multipart_head(boundary, cluster.pk)
    body_size = len(head) + 40 * 1024 * 1024
    upload = socket.create_connection(("127.0.0.1", web.port))
    upload.sendall(request_head(web.port, key, boundary, body_size) + head)
    for _ in range(8 * 1024 * 1024 // len(ROW)):  # about a fifth of the file, then the crash
        upload.sendall(ROW)

    web.kill()
    upload.close()
    web.start()

    assert not UpsertJob.objects.exists()
    assert not AuditEvent.objects.filter(action=AuditAction.FILE_UPLOADED).exists()
    assert stored_files(web) == []
    # The restarted process takes the same upload whole.
    assert web.process is not None and web.process.poll() is None, web.log.read_text()[-3000:]
    answer = requests.post(
        f"{web.url}/api/v1/jobs/",
        headers={"Authorization": f"Token {key}"},
        data={"cluster": cluster.pk, "collection": "books"},
        files={"file": ("small.jsonl", ROW * 10)},
        timeout=30,
    )
    assert answer.status_code == 202, answer.text
    assert UpsertJob.objects.count() == 1


@contextlib.contextmanager
def job_table_locked() -> Iterator[None]:
    """Another connection holds the job table, so a job INSERT waits until it lets go."""
    if connection.vendor == "postgresql":
        other = connections.create_connection("default")
        other.set_autocommit(False)
        with other.cursor() as cursor:
            cursor.execute("LOCK TABLE upserts_upsertjob IN SHARE ROW EXCLUSIVE MODE")
        try:
            yield
        finally:
            other.rollback()
            other.close()
    else:
        other_sqlite = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None)
        other_sqlite.execute("BEGIN IMMEDIATE")  # SQLite locks the whole database for writes
        try:
            yield
        finally:
            other_sqlite.execute("ROLLBACK")
            other_sqlite.close()


def test_killing_the_web_process_after_the_file_is_stored_and_before_its_job_commits(
    web, settings, books_cluster
):
    """The window that matters: the file is in storage, its job's transaction not committed."""
    cluster = books_cluster
    user = make_user_with_role("operator", roles.OPERATORS)
    issued = create_api_token(user=user, name="upload")
    boundary = uuid.uuid4().hex
    head = multipart_head(boundary, cluster.pk)
    tail = f"\r\n--{boundary}--\r\n".encode()
    rows = ROW * 1000
    upload = socket.create_connection(("127.0.0.1", web.port))
    upload.sendall(request_head(web.port, issued.key, boundary, len(head) + len(rows) + len(tail)))
    upload.sendall(head)
    # The token is checked (and its use written) before the body is read; then the lock.
    wait_until(lambda: ApiToken.objects.get(pk=issued.token.pk).last_used_at, timeout=30)

    with job_table_locked():
        upload.sendall(rows + tail)
        stored = wait_until(lambda: stored_files(web), timeout=30, interval=0.05)
        time.sleep(0.5)  # the INSERT of its job is waiting on the lock
        assert not UpsertJob.objects.exists()
        web.kill()
    upload.close()

    assert not UpsertJob.objects.exists()
    assert not AuditEvent.objects.filter(action=AuditAction.FILE_UPLOADED).exists()
    assert [p.read_bytes() for p in stored] == [rows]  # the orphan the crash left behind
    settings.MEDIA_ROOT = web.media_root
    assert remove_orphan_uploads(grace_seconds=3600) == []  # too fresh: it may be committing
    assert remove_orphan_uploads(grace_seconds=0) == [f"uploads/{stored[0].name}"]
    assert stored_files(web) == []
