"""Real services for the suite: Redis, a Celery worker process and an embedded Milvus.

Each starts once per test session, and only when a test asks for it. ``REDIS_URL`` in the
environment reuses that Redis (CI points it at the machine's); otherwise a throw-away server is
started on a free port. ``DATABASE_URL`` selects PostgreSQL; without it the test database is a
SQLite file, so that the worker process can open the same database as the tests.
"""

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
    WORKER_TEST_SETTINGS,
    CeleryWorkerProcess,
    database_url_of_test_database,
)
from tests.milvus.fake_cluster import FakeCluster

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
    given = os.environ.get("REDIS_URL")
    if given:
        yield given
        return
    server = LocalRedis(tmp_path_factory.mktemp("redis")).start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def celery_queue(redis_url: str) -> str:
    """A queue of this test session's own, so a shared Redis never mixes runs."""
    queue = f"upserts-test-{uuid.uuid4().hex[:12]}"
    # The app reads Django's settings under the CELERY_ namespace, so override those keys.
    celery_app.conf.update(CELERY_BROKER_URL=redis_url, CELERY_TASK_DEFAULT_QUEUE=queue)
    return queue


@pytest.fixture(scope="session")
def celery_worker(
    django_db_setup: None,
    django_db_blocker: Any,
    redis_url: str,
    celery_queue: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[CeleryWorkerProcess]:
    with django_db_blocker.unblock():
        database_url = database_url_of_test_database()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "console.settings",
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": redis_url,
        "CELERY_QUEUE": celery_queue,
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "FIELD_ENCRYPTION_KEY": ",".join(settings.FIELD_ENCRYPTION_KEYS),
        "SECRET_KEY": settings.SECRET_KEY,
        # Retries and leases on a test's time scale, not a production cluster's.
        **WORKER_TEST_SETTINGS,
    }
    worker = CeleryWorkerProcess(
        env=env, log_path=tmp_path_factory.mktemp("worker") / "worker.log", queue=celery_queue
    ).start()
    try:
        yield worker
    finally:
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
