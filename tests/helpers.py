"""What tests share that is not a fixture: the project's place, polling, a real Celery worker
process, logging a test client in as a role, and reading a page's text."""

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
from django.conf import settings
from django.db import connection
from django.test import Client
from rest_framework.test import APIClient

from console.localservices import free_port, stop_process, wait_for_port
from tests.factories import make_user, make_user_with_role
from upserts import roles
from upserts.services.api_tokens import create_api_token

PROJECT_DIR = Path(__file__).resolve().parent.parent


def wait_until(condition: Callable[[], Any], *, timeout: float, interval: float = 0.1) -> Any:
    """Poll ``condition`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


def database_url_of_test_database() -> str:
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{Path(db['NAME']).resolve()}"
    user = quote(db.get("USER") or "", safe="")
    password = quote(db.get("PASSWORD") or "", safe="")
    credentials = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = db.get("HOST") or "127.0.0.1"
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{credentials}{host}{port}/{db['NAME']}"


class MilvusLiteServer:
    """milvus-lite's gRPC server (3.2.2, from .venv-lite), a process of its own on a free port.

    It speaks a newer Milvus API than the embedded 2.3.5 (nullable fields, partial updates) and
    no REST at all, so it is the second real target of the gRPC transport.
    """

    PROGRAM = PROJECT_DIR / ".venv-lite" / "bin" / "milvus-lite"

    def __init__(self, data_dir: Path, log_path: Path) -> None:
        self.data_dir = data_dir
        self.log_path = log_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> "MilvusLiteServer":
        if not self.PROGRAM.exists():
            raise RuntimeError(f"{self.PROGRAM} is missing; `make install` creates it")
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                [
                    str(self.PROGRAM),
                    "server",
                    "--data-dir",
                    str(self.data_dir),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for_port(self.port, timeout=90, process=self._process)
        return self

    def stop(self) -> None:
        stop_process(self._process, timeout=20)


class CeleryWorkerProcess:
    """A real ``celery worker`` subprocess bound to the test database and queue."""

    def __init__(
        self,
        *,
        env: dict[str, str],
        log_path: Path,
        queue: str,
        beat: bool = True,
        cwd: Path = PROJECT_DIR,
    ) -> None:
        # A worker started elsewhere than the project (a host of its own) still imports it.
        self.env = {**env, "PYTHONPATH": str(PROJECT_DIR)} if cwd != PROJECT_DIR else env
        self.cwd = cwd
        self.log_path = log_path
        self.queue = queue
        # The sweeper runs on Celery beat, embedded in one worker (-B).
        self.beat = beat
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> "CeleryWorkerProcess":
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "console",
                "worker",
                "--loglevel=INFO",
                "--pool=prefork",
                "--concurrency=2",
                "--without-gossip",
                "--without-mingle",
                "-Q",
                self.queue,
                "-n",
                f"test-{uuid.uuid4().hex[:8]}@%h",
                *(["-B", "-s", str(self.log_path.with_suffix(".beat"))] if self.beat else []),
            ],
            cwd=self.cwd,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        wait_until(self._ready, timeout=60, interval=0.2)
        return self

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"celery worker exited:\n{self.log_path.read_text()[-3000:]}")
        return " ready." in self.log_path.read_text(errors="replace")

    def _process_tree(self) -> list[int]:
        assert self.process is not None
        children = subprocess.run(
            ["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True
        ).stdout.split()
        return [self.process.pid, *map(int, children)]

    def pause(self) -> None:
        """Stop the worker, its pool and its beat (SIGSTOP) without ending them."""
        if self.process and self.process.poll() is None:
            for pid in self._process_tree():
                os.kill(pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.process and self.process.poll() is None:
            for pid in self._process_tree():
                os.kill(pid, signal.SIGCONT)

    def stop(self) -> None:
        stop_process(self.process, timeout=30)
        self.process = None


# The session's keys in Redis (the clusters' rate budgets) sit under a prefix of its own, so a
# shared Redis never mixes runs.
REDIS_KEY_PREFIX = f"upserts-test-{uuid.uuid4().hex[:12]}"

WORKER_TEST_SETTINGS = {
    "UPSERT_RETRY_ATTEMPTS": "4",
    "UPSERT_RETRY_BASE_SECONDS": "0.05",
    "UPSERT_RETRY_MAX_SECONDS": "0.2",
    "UPSERT_LEASE_SECONDS": "8",
    "UPSERT_SWEEP_SECONDS": "1",
    "UPSERT_STALE_GRACE_SECONDS": "3",
}


ROLE_GROUPS = {
    "viewer": roles.VIEWERS,
    "operator": roles.OPERATORS,
    "cluster_admin": roles.CLUSTER_ADMINS,
}
# Nothing listens on the discard port, so a request to it is refused at once.
UNREACHABLE_URL = "http://127.0.0.1:9"


def log_in(client: Client, role: str) -> None:
    """Log the client in as a fresh user of ``role`` (``anonymous`` stays logged out)."""
    if role == "anonymous":
        return
    if role == "non_staff":
        user = make_user("outsider", staff=False)
    elif role == "staff":
        user = make_user("staff-no-role")
    elif role == "superuser":
        user = make_user("root", superuser=True)
    else:
        user = make_user_with_role(role, ROLE_GROUPS[role])
    client.force_login(user)


def token_client(user: Any) -> APIClient:
    """A client that sends a fresh API token of ``user``, as a script would."""
    client = APIClient()
    key = create_api_token(user=user, name="tests").key
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def page_text(response) -> str:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content).decode()
    return response.content.decode()


def query(
    milvus, collection: str, filter_: str, fields: list[str], *, count: int
) -> list[dict[str, Any]]:
    """Rows matching ``filter_``, once ``count`` of them are visible.

    Milvus' default consistency is bounded staleness: a query right after an upsert may not
    see it yet, so poll until the expected number of rows is visible (or fail the test).
    """
    rows: list[dict[str, Any]] = []

    def visible() -> bool:
        nonlocal rows
        rows = _query_once(milvus, collection, filter_, fields)
        return len(rows) >= count

    wait_until(visible, timeout=30, interval=0.25)
    return rows


def _query_once(milvus, collection: str, filter_: str, fields: list[str]) -> list[dict[str, Any]]:
    answer = requests.post(
        f"{milvus.url}/v1/vector/query",
        json={
            "collectionName": collection,
            "filter": filter_,
            "outputFields": fields,
            "limit": 16384,
        },
        timeout=30,
    ).json()
    assert answer["code"] == 200, answer
    return sorted(answer["data"], key=lambda row: int(row["book_id"]))


class WebServer:
    """gunicorn serving the console on the test database, as in production."""

    def __init__(self, media_root: Path, broker_url: str, queue: str | None = None) -> None:
        self.port = free_port()
        self.media_root = media_root
        self.broker_url = broker_url
        # Without a queue of a running worker, jobs are only stored, never run.
        self.queue = queue or f"web-restart-{uuid.uuid4().hex[:8]}"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "WebServer":
        env = {
            **os.environ,
            "DATABASE_URL": database_url_of_test_database(),
            "MEDIA_ROOT": str(self.media_root),
            "CELERY_BROKER_URL": self.broker_url,
            "CELERY_QUEUE": self.queue,
            "SECRET_KEY": settings.SECRET_KEY,
            "FIELD_ENCRYPTION_KEY": ",".join(settings.FIELD_ENCRYPTION_KEYS),
        }
        env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        self.log = self.media_root.parent / f"gunicorn-{self.port}.log"
        log = open(self.log, "ab")  # noqa: SIM115 - handed to the child
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "console.wsgi:application",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                "1",
                "--threads",
                "2",
            ],
            cwd=PROJECT_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        wait_for_port(self.port, timeout=30, process=self.process)
        wait_until(self._healthy, timeout=30, interval=0.2)
        return self

    def _healthy(self) -> bool:
        try:
            return requests.get(f"{self.url}/healthz", timeout=5).status_code == 200
        except requests.ConnectionError:
            return False

    def kill(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self.process = None


def self_signed_certificate(directory: Path, host: str) -> tuple[Path, Path]:
    """(certificate, key) PEM files of a self-signed certificate for ``host`` (a name or an
    IP address), valid from a little before now for a day: for test servers that speak TLS."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    try:
        alternative: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        alternative = x509.DNSName(host)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([alternative]), critical=False)
        .sign(key, hashes.SHA256())
    )
    certificate_path, key_path = directory / "cert.pem", directory / "key.pem"
    certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return certificate_path, key_path


# Runs a test once over REST v1 and once over gRPC, both against the embedded Milvus (the
# ``cluster`` fixture of tests/conftest.py takes the API as its parameter).
BOTH_TRANSPORTS = pytest.mark.parametrize("cluster", ["v1", "grpc"], indirect=True)
