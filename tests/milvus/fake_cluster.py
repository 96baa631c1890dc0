"""A scriptable HTTP server standing in for a cluster, for answers a real Milvus 2.3.5 never
gives: the v2 API, rate limits, proxy error pages, slow answers, refused credentials, redirects
and answers too large to read.

Each scripted answer is used once, in order, per (method, path); a request with no answer left
goes to the path's responder when one is set (``respond``: a function of the request, for a
cluster with state, such as ``tests.milvus.fake_collection``), else gets Milvus' own plain-text
404. Every request is recorded with its headers and body.
"""

import json
import ssl
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class ScriptedAnswer:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json; charset=utf-8"
    delay_seconds: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    # The body is sent this many times over, so a huge answer needs no huge bytes object.
    repeat: int = 1
    # Without a Content-Length the answer runs until the server closes the connection.
    declare_length: bool = True


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    # The client's port: requests sharing one are on one kept-alive connection.
    client_port: int = 0

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class FakeCluster:
    answers: dict[tuple[str, str], deque[ScriptedAnswer]] = field(
        default_factory=lambda: defaultdict(deque)
    )
    requests: list[RecordedRequest] = field(default_factory=list)
    responders: dict[tuple[str, str], Callable[[RecordedRequest], ScriptedAnswer]] = field(
        default_factory=dict
    )
    # The most requests that were being answered at one time.
    most_at_once: int = 0
    # Bytes of answer bodies written, counted as they are written.
    body_bytes_sent: int = 0
    _answering: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _scheme: str = "http"
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the fake cluster first"
        host, port = self._server.server_address[:2]
        return f"{self._scheme}://{host!s}:{port}"

    def answer(
        self,
        path: str,
        *,
        json_body: Any = None,
        body: bytes | None = None,
        status: int = 200,
        content_type: str = "application/json; charset=utf-8",
        delay_seconds: float = 0.0,
        method: str = "POST",
        headers: dict[str, str] | None = None,
        repeat: int = 1,
        declare_length: bool = True,
    ) -> None:
        """Queue one answer for the next request to ``method path``."""
        raw = body if body is not None else json.dumps(json_body).encode()
        self.answers[(method, path)].append(
            ScriptedAnswer(
                status=status,
                body=raw,
                content_type=content_type,
                delay_seconds=delay_seconds,
                headers=headers or {},
                repeat=repeat,
                declare_length=declare_length,
            )
        )

    def respond(
        self,
        path: str,
        responder: Callable[[RecordedRequest], ScriptedAnswer],
        *,
        method: str = "POST",
    ) -> None:
        """Answer ``method path`` by calling ``responder`` (in the server's thread) once no
        scripted answer is left."""
        self.responders[(method, path)] = responder

    def start(self, *, tls: ssl.SSLContext | None = None) -> "FakeCluster":
        """Serve on a free port of 127.0.0.1; over TLS with ``tls``, a server-side context."""
        cluster = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def _serve(self, method: str) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                request = RecordedRequest(
                    method=method,
                    path=parts.path,
                    query=parse_qs(parts.query, keep_blank_values=True),
                    headers=dict(self.headers.items()),
                    body=self.rfile.read(length),
                    client_port=self.client_address[1],
                )
                cluster.requests.append(request)
                queue = cluster.answers.get((method, parts.path))
                responder = cluster.responders.get((method, parts.path))
                if queue:
                    scripted = queue.popleft()
                elif responder is not None:
                    scripted = responder(request)
                else:
                    scripted = ScriptedAnswer(
                        status=404, body=b"404 page not found", content_type="text/plain"
                    )
                with cluster._lock:
                    cluster._answering += 1
                    cluster.most_at_once = max(cluster.most_at_once, cluster._answering)
                try:
                    time.sleep(scripted.delay_seconds)
                finally:
                    with cluster._lock:
                        cluster._answering -= 1
                try:
                    self.send_response(scripted.status)
                    self.send_header("Content-Type", scripted.content_type)
                    for name, value in scripted.headers.items():
                        self.send_header(name, value)
                    if scripted.declare_length:
                        total = len(scripted.body) * scripted.repeat
                        self.send_header("Content-Length", str(total))
                    else:
                        self.send_header("Connection", "close")
                        self.close_connection = True
                    self.end_headers()
                    for _ in range(scripted.repeat):
                        self.wfile.write(scripted.body)
                        with cluster._lock:
                            cluster.body_bytes_sent += len(scripted.body)
                except (BrokenPipeError, ConnectionResetError):
                    # The client gave up waiting or reading, which is what slow and huge
                    # answers test.
                    self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:
                """Keep the test output quiet."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
            self._scheme = "https"
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
