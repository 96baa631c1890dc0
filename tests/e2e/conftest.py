"""A books collection in the real Milvus, a cluster pointing at it, and a way to run jobs."""

import io
from collections.abc import Callable
from typing import Any

import pytest
import requests

from tests.conftest import wait_until
from upserts.models import ClusterEndpoint, UpsertJob
from upserts.services.job_control import start_job
from upserts.services.uploads import create_job

BOOK_FIELDS = [
    {"name": "book_id", "type": "INT64", "is_primary": True},
    {"name": "title", "type": "VARCHAR", "max_length": 64},
    {"name": "emb", "type": "FLOAT_VECTOR", "dim": 4},
]


def book(book_id: int, title: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "book_id": book_id,
        "title": title if title is not None else f"Book {book_id}",
        "emb": [book_id / 10, 0.5, -0.25, 1.0],
        **extra,
    }


@pytest.fixture
def books(make_collection) -> str:
    return make_collection(BOOK_FIELDS)


@pytest.fixture
def cluster(milvus, db) -> ClusterEndpoint:
    return ClusterEndpoint.objects.create(name="embedded-milvus", base_url=milvus.url)


@pytest.fixture
def upload(cluster) -> Callable[..., UpsertJob]:
    def make(content: bytes, filename: str, collection: str, **options: Any) -> UpsertJob:
        return create_job(
            source=io.BytesIO(content),
            filename=filename,
            cluster=options.pop("cluster", cluster),
            collection_name=collection,
            **options,
        )

    return make


@pytest.fixture
def run_in_worker(celery_worker) -> Callable[[UpsertJob], UpsertJob]:
    """Queue the job through Redis to the real worker and wait for a final status."""

    def run(job: UpsertJob, timeout: float = 90) -> UpsertJob:
        start_job(job)

        def finished() -> UpsertJob | None:
            job.refresh_from_db()
            return job if job.is_final else None

        return wait_until(finished, timeout=timeout, interval=0.2)

    return run


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
