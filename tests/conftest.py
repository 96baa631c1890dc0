"""Real services for the suite: Redis, a Celery worker process and an embedded Milvus.

Each starts once per test session, and only when a test asks for it. ``REDIS_URL`` in the
environment reuses that Redis (CI points it at the machine's); otherwise a throw-away server is
started on a free port. ``DATABASE_URL`` selects PostgreSQL; without it the test database is a
SQLite file, so that the worker process can open the same database as the tests.
"""

import io
import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.conf import settings

from console import celery_app
from console.localservices import LocalMilvus, LocalRedis, create_collection
from tests.helpers import (
    PROJECT_DIR,
    REDIS_KEY_PREFIX,
    WORKER_TEST_SETTINGS,
    CeleryWorkerProcess,
    MilvusLiteServer,
    database_url_of_test_database,
)
from tests.milvus.fake_cluster import FakeCluster
from tests.object_storage import LocalS3, start_s3_worker

(PROJECT_DIR / "var").mkdir(exist_ok=True)


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix: None) -> None:
    """A test database of this session's own, so two test runs on one machine never share one."""
    database = settings.DATABASES["default"]
    test = database.setdefault("TEST", {})
    if database["ENGINE"] == "django.db.backends.sqlite3":
        test["NAME"] = str(PROJECT_DIR / "var" / f"test-db-{os.getpid()}.sqlite3")
    else:
        test["NAME"] = f"test_{database['NAME']}_{os.getpid()}"


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The session's Redis, which the tests' own process uses too (the clusters' rate budgets),
    its keys under a prefix of the session's own so a shared Redis never mixes runs."""
    server = None
    url = os.environ.get("REDIS_URL")
    if not url:
        server = LocalRedis(tmp_path_factory.mktemp("redis")).start()
        url = server.url
    before = settings.REDIS_URL, settings.REDIS_KEY_PREFIX
    settings.REDIS_URL, settings.REDIS_KEY_PREFIX = url, REDIS_KEY_PREFIX
    try:
        yield url
    finally:
        settings.REDIS_URL, settings.REDIS_KEY_PREFIX = before
        if server is not None:
            server.stop()


@pytest.fixture(scope="session")
def celery_queue(redis_url: str) -> str:
    """A queue of this test session's own, so a shared Redis never mixes runs."""
    queue = f"upserts-test-{uuid.uuid4().hex[:12]}"
    # The app reads Django's settings under the CELERY_ namespace, so override those keys.
    celery_app.conf.update(CELERY_BROKER_URL=redis_url, CELERY_TASK_DEFAULT_QUEUE=queue)
    return queue


@pytest.fixture(scope="session")
def worker_environment(
    django_db_setup: None, django_db_blocker: Any, redis_url: str
) -> dict[str, str]:
    """What every worker process of the tests is started with, but its queue."""
    with django_db_blocker.unblock():
        database_url = database_url_of_test_database()
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "console.settings",
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": redis_url,
        "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": REDIS_KEY_PREFIX,
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "FIELD_ENCRYPTION_KEY": ",".join(settings.FIELD_ENCRYPTION_KEYS),
        "SECRET_KEY": settings.SECRET_KEY,
        # Retries and leases on a test's time scale, not a production cluster's.
        **WORKER_TEST_SETTINGS,
    }


@pytest.fixture(scope="session")
def celery_worker(
    worker_environment: dict[str, str],
    celery_queue: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[CeleryWorkerProcess]:
    worker = CeleryWorkerProcess(
        env={**worker_environment, "CELERY_QUEUE": celery_queue},
        log_path=tmp_path_factory.mktemp("worker") / "worker.log",
        queue=celery_queue,
    ).start()
    SESSION_WORKERS.append(worker)
    try:
        yield worker
    finally:
        SESSION_WORKERS.remove(worker)
        worker.stop()


# The session's workers, for a test that must be the only one running workers (its sweeper
# must not hand the test's stale jobs to a worker of another storage).
SESSION_WORKERS: list[CeleryWorkerProcess] = []


@pytest.fixture
def other_workers_paused() -> Iterator[None]:
    """The session's workers paused (SIGSTOP) for the test, as if on another deployment."""
    paused = list(SESSION_WORKERS)
    for worker in paused:
        worker.pause()
    try:
        yield
    finally:
        for worker in paused:
            worker.resume()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalS3]:
    """moto's S3-compatible server, a process of its own, with the tests' bucket."""
    server = LocalS3(tmp_path_factory.mktemp("s3")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_storage(settings: Any, s3_server: LocalS3) -> LocalS3:
    """Uploaded files go to the S3 server for this test, as ``UPLOAD_STORAGE=s3`` sends them."""
    settings.STORAGES = {**settings.STORAGES, "default": s3_server.storage_settings()}
    return s3_server


@pytest.fixture(scope="session")
def s3_queue_name(celery_queue: str) -> str:
    return f"{celery_queue}-s3"


@pytest.fixture
def s3_queue(celery_queue: str, s3_queue_name: str) -> Iterator[str]:
    """Jobs started in the test go to the workers of the S3 storage, on their own queue."""
    celery_app.conf.update(CELERY_TASK_DEFAULT_QUEUE=s3_queue_name)
    try:
        yield s3_queue_name
    finally:
        celery_app.conf.update(CELERY_TASK_DEFAULT_QUEUE=celery_queue)


@pytest.fixture(scope="session")
def s3_worker(
    worker_environment: dict[str, str],
    s3_server: LocalS3,
    s3_queue_name: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[CeleryWorkerProcess]:
    """One worker host on the S3 storage for the session; a test also asks for ``s3_storage``
    and ``s3_queue`` to send it jobs."""
    home = tmp_path_factory.mktemp("s3-worker-host")
    # Without beat: the session's local worker has the sweeper, and two deployments' sweepers
    # would hand each other's stale jobs to workers that cannot read their files.
    worker = start_s3_worker(worker_environment, s3_server, s3_queue_name, home, beat=False)
    SESSION_WORKERS.append(worker)
    try:
        yield worker
    finally:
        SESSION_WORKERS.remove(worker)
        worker.stop()


@pytest.fixture
def fast_password_hashing(settings: Any) -> None:
    """For tests that make users by the hundred: the production hasher takes a third of a
    second each. Only for in-process clients; a server process would not read the hashes."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def fake_cluster() -> Iterator[FakeCluster]:
    """A scripted HTTP cluster for what a real Milvus 2.3.5 never answers (tests/milvus)."""
    cluster = FakeCluster().start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def books_cluster(fake_cluster: FakeCluster, db: None) -> Any:
    """A cluster whose books collection (``tests.milvus.fake_collection``) answers describe
    and keeps what it is sent: a target the submit checks accept, without Milvus."""
    from tests.milvus.fake_collection import FakeCollection
    from upserts.models import ClusterEndpoint

    FakeCollection().serve(fake_cluster)
    return ClusterEndpoint.objects.create(name="books-fake", base_url=fake_cluster.url)


@pytest.fixture(scope="session")
def milvus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMilvus]:
    server = LocalMilvus(tmp_path_factory.mktemp("milvus")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def milvus_lite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MilvusLiteServer]:
    """milvus-lite 3.2.2's gRPC server: a newer Milvus API than the embedded one, no REST."""
    home = tmp_path_factory.mktemp("milvus-lite")
    server = MilvusLiteServer(home / "data", home / "server.log").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def make_collection(milvus: LocalMilvus) -> Callable[..., str]:
    """Create a fresh non-autoID collection in the embedded Milvus; returns its name."""

    def make(fields: list[dict[str, Any]], *, enable_dynamic_field: bool = True) -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        assert milvus.port is not None
        create_collection(
            host="127.0.0.1",
            port=milvus.port,
            name=name,
            fields=fields,
            enable_dynamic_field=enable_dynamic_field,
        )
        return name

    return make


@pytest.fixture
def books(make_collection: Callable[..., str]) -> str:
    """A books collection (book_id, title, emb) in the embedded Milvus."""
    from tests.factories import BOOK_FIELDS

    return make_collection(BOOK_FIELDS)


@pytest.fixture
def cluster(request: pytest.FixtureRequest, milvus: LocalMilvus, db: None) -> Any:
    """A cluster pointing at the embedded Milvus, over REST v1 unless a test parametrizes it
    (``BOTH_TRANSPORTS``) with another ``api_version``: Milvus serves REST and gRPC on one port."""
    from upserts.models import ClusterEndpoint

    api_version = getattr(request, "param", "v1")
    name = "embedded-milvus" if api_version == "v1" else f"embedded-milvus-{api_version}"
    return ClusterEndpoint.objects.create(name=name, base_url=milvus.url, api_version=api_version)


@pytest.fixture
def upload(cluster: Any) -> Callable[..., Any]:
    """A pending job of the given file, stored as the upload form stores it."""
    from upserts.services.uploads import create_job

    def make(content: bytes, filename: str, collection: str, **options: Any) -> Any:
        return create_job(
            source=io.BytesIO(content),
            filename=filename,
            cluster=options.pop("cluster", cluster),
            collection_name=collection,
            **options,
        )

    return make
