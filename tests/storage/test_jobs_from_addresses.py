"""Jobs of files served at https:// addresses under a prefix a cluster admin allowed, read
where they lie in ranges (a real local HTTPS server, its certificate made here)."""

import hashlib
import http.server
import io
import json
import ssl
import threading
from collections.abc import Iterator

import pytest
from django.core.management import call_command

from tests.e2e.test_pipeline import as_parquet
from tests.factories import book, make_user_with_role
from tests.helpers import self_signed_certificate, token_client
from upserts import roles
from upserts.models import AuditEvent, SourceAddress, UpsertJob

ROWS = [book(i) for i in range(1, 121)]
FILES = {
    "/exports/flaky.jsonl": bytes(range(256)) * 4096,
    "/exports/books.jsonl": b"".join(json.dumps(row).encode() + b"\n" for row in ROWS),
    "/exports/books.parquet": as_parquet(ROWS),
    "/private/books.jsonl": b"{}\n",
}
AUTHORIZATION = "Bearer exports-3f9a"


class Files(http.server.BaseHTTPRequestHandler):
    """Serves FILES with byte ranges, to the right Authorization header only."""

    seen: list[tuple[str, str, str]] = []

    def _file(self) -> bytes | None:
        Files.seen.append((self.command, self.path, self.headers.get("Range", "")))
        if self.path == "/exports/moved.jsonl":
            self.send_response(302)
            self.send_header("Location", "https://example.com/elsewhere.jsonl")
            self.end_headers()
            return None
        if self.headers.get("Authorization") != AUTHORIZATION:
            self.send_error(401)
            return None
        if self.path not in FILES:
            self.send_error(404)
            return None
        return FILES[self.path]

    def do_HEAD(self) -> None:  # noqa: N802
        content = self._file()
        if content is not None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(content)))
            self.send_header("ETag", f'"{hashlib.md5(content).hexdigest()}"')  # noqa: S324
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()

    def do_GET(self) -> None:  # noqa: N802
        content = self._file()
        if content is None:
            return
        start = int(self.headers.get("Range", "bytes=0-").removeprefix("bytes=").split("-")[0])
        self.send_response(206)
        self.send_header("Content-Range", f"bytes {start}-{len(content) - 1}/{len(content)}")
        self.send_header("Content-Length", str(len(content) - start))
        self.end_headers()
        if self.path == "/exports/flaky.jsonl" and start == 0:
            # Half the file, then the connection drops, as a flaky network does.
            self.wfile.write(content[: len(content) // 2])
            self.close_connection = True
            return
        self.wfile.write(content[start:])

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def https_server(tmp_path, monkeypatch) -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Files)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert, key = self_signed_certificate(tmp_path, "127.0.0.1")
    context.load_cert_chain(cert, key)
    # Trusted as a CA would be (requests reads it; the decoder process inherits it).
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Files.seen.clear()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


@pytest.fixture
def exports(https_server) -> SourceAddress:
    return SourceAddress.objects.create(
        name="exports",
        url_prefix=f"{https_server}/exports/",
        authorization=AUTHORIZATION,
    )


def submit(client, cluster, source):
    return client.post(
        "/api/v1/jobs/",
        {"cluster": cluster.pk, "collection": "books", "source": source},
        format="multipart",
    )


@pytest.mark.django_db
def test_an_address_is_read_in_ranges_with_its_header_and_only_under_its_prefix(
    exports, https_server, books_cluster
):
    client = token_client(make_user_with_role("script", roles.OPERATORS))

    made = submit(client, books_cluster, f"{https_server}/exports/books.jsonl")
    outside = submit(client, books_cluster, f"{https_server}/private/books.jsonl")
    moved = submit(client, books_cluster, f"{https_server}/exports/moved.jsonl")
    plain = submit(client, books_cluster, "http://127.0.0.1:1/exports/books.jsonl")

    assert made.status_code == 202, made.content
    job = UpsertJob.objects.get()
    content = FILES["/exports/books.jsonl"]
    assert job.source_address == exports and job.source_file.name == ""
    assert (job.size_bytes, job.sha256) == (len(content), hashlib.sha256(content).hexdigest())
    assert job.source_etag == hashlib.md5(content).hexdigest()  # noqa: S324
    assert ("GET", "/exports/books.jsonl", "bytes=0-") in Files.seen
    assert outside.status_code == 400 and "not under an address" in outside.json()["message"]
    assert moved.status_code == 400 and "HTTP 302" in moved.json()["message"]
    assert plain.status_code == 400 and plain.json()["code"] == "source_refused"
    assert not any(AUTHORIZATION in str(event.details) for event in AuditEvent.objects.all())


@pytest.mark.milvus
@pytest.mark.django_db(transaction=True)
def test_the_upsert_command_loads_parquet_from_an_address(
    exports, https_server, books, cluster, milvus
):
    out = io.StringIO()

    call_command(
        "upsert", f"{https_server}/exports/books.parquet", "--cluster", cluster.name,
        "--collection", books, "--here", stdout=out,
    )  # fmt: skip

    assert "succeeded: 120 rows read, 120 upserted" in out.getvalue()
    # The decoder process read the footer and the rows in ranges, not the file from its start.
    ranges = [r for method, path, r in Files.seen if method == "GET" and path.endswith("parquet")]
    assert any(r != "bytes=0-" for r in ranges)


def test_a_stream_cut_off_mid_way_is_opened_again_where_it_stopped(https_server):
    from upserts.http_source import HttpLocation, open_address

    content = FILES["/exports/flaky.jsonl"]
    location = HttpLocation(f"{https_server}/exports/flaky.jsonl")

    with open_address(location, size=len(content), authorization=AUTHORIZATION) as stream:
        read = stream.read()

    assert read == content
    ranges = [r for method, path, r in Files.seen if path == "/exports/flaky.jsonl"]
    assert ranges[0] == "bytes=0-" and ranges[1] == f"bytes={len(content) // 2}-"
