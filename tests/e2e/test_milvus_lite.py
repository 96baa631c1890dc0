"""Jobs over gRPC into milvus-lite 3.2.2, a second real server with a newer Milvus API than the
embedded 2.3.5: the same requests land there too, read back through pymilvus."""

import io
import json
import subprocess
import uuid

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pymilvus import DataType, MilvusClient

from tests.helpers import PROJECT_DIR
from upserts.models import AuditAction, AuditEvent, ClusterEndpoint, FailedRow, JobStatus
from upserts.selectors import entity_writes

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def lite_client(milvus_lite):
    client = MilvusClient(uri=milvus_lite.url)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def lite_books(lite_client) -> str:
    """A books collection with a JSON field and the dynamic field on."""
    name = f"lite_{uuid.uuid4().hex[:12]}"
    schema = lite_client.create_schema(auto_id=False, enable_dynamic_field=True)
    schema.add_field("book_id", DataType.INT64, is_primary=True)
    schema.add_field("title", DataType.VARCHAR, max_length=64)
    schema.add_field("meta", DataType.JSON)
    schema.add_field("emb", DataType.FLOAT_VECTOR, dim=4)
    index = lite_client.prepare_index_params()
    index.add_index("emb", index_type="FLAT", metric_type="L2")
    lite_client.create_collection(name, schema=schema, index_params=index)
    return name


@pytest.fixture
def lite_cluster(milvus_lite) -> ClusterEndpoint:
    return ClusterEndpoint.objects.create(
        name="milvus-lite", base_url=milvus_lite.url, api_version="grpc"
    )


def stored(client: MilvusClient, collection: str) -> dict[int, dict]:
    rows = client.query(collection, filter="book_id >= 0", output_fields=["*"])
    return {int(row["book_id"]): row for row in rows}


def test_a_json_lines_job_lands_with_its_json_and_dynamic_fields(
    lite_client, lite_books, lite_cluster, upload, run_in_worker
):
    rows = [
        {"book_id": i, "title": f"Book {i}", "meta": {"shelf": i}, "emb": [0.5, 0.25, 0.0, i],
         "year": 2000 + i}
        for i in range(1, 41)
    ]  # fmt: skip
    rows[9]["emb"] = [1.0]  # refused by the checks before anything is sent
    big = 2**63 - 1
    rows.append({**rows[0], "book_id": big, "title": "Largest key"})
    content = b"".join(json.dumps(row).encode() + b"\n" for row in rows)

    job = run_in_worker(upload(content, "books.jsonl", lite_books, cluster=lite_cluster))

    assert job.status == JobStatus.PARTIALLY_FAILED, job.error_message
    assert (job.rows_read, job.rows_upserted, job.rows_failed) == (41, 40, 1)
    assert FailedRow.objects.get(job=job).row_number == 10
    ended = AuditEvent.objects.get(action=AuditAction.JOB_FINISHED, target_id=str(job.pk))
    assert ended.details["api"] == "grpc" and ended.details["rows_upserted"] == 40
    entities = stored(lite_client, lite_books)
    assert len(entities) == 40
    assert entities[7]["meta"] == {"shelf": 7} and entities[7]["year"] == 2007
    assert entities[7]["emb"] == pytest.approx([0.5, 0.25, 0.0, 7.0])
    assert entities[big]["title"] == "Largest key"
    # The ids the batch saved are the server's, exact beyond 2**53.
    assert [w.job_id for w in entity_writes(entity_id=str(big), collection_name=lite_books)] == [
        job.pk
    ]


def test_parquet_vectors_land_bit_for_bit(
    lite_client, lite_books, lite_cluster, upload, run_in_worker
):
    vectors = np.random.default_rng(7).standard_normal((300, 4)).astype(np.float32)
    table = pa.table(
        {
            "book_id": pa.array(range(300), pa.int64()),
            "title": pa.array([f"Book {i}" for i in range(300)]),
            "meta": pa.array([json.dumps({"n": i}) for i in range(300)]),
            "emb": pa.array(list(vectors), pa.list_(pa.float32())),
        }
    )
    out = io.BytesIO()
    pq.write_table(table, out, row_group_size=128)

    job = run_in_worker(
        upload(out.getvalue(), "books.parquet", lite_books, cluster=lite_cluster, batch_size=100)
    )

    assert job.status == JobStatus.SUCCEEDED, job.error_message
    assert job.rows_upserted == 300 and job.batches_done == 3
    entities = stored(lite_client, lite_books)
    back = np.array([entities[i]["emb"] for i in range(300)], dtype=np.float32)
    assert np.array_equal(back, vectors)
    assert entities[299]["meta"] == {"n": 299}


# pymilvus 2.4.15 (the console's) cannot declare a nullable field nor read a null back; the
# pymilvus 3.0.2 beside milvus-lite in .venv-lite can.
_LITE_SCRIPT = """
import json, sys
from pymilvus import DataType, MilvusClient
url, action, name = sys.argv[1:4]
client = MilvusClient(uri=url)
if action == "create":
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("book_id", DataType.INT64, is_primary=True)
    schema.add_field("title", DataType.VARCHAR, max_length=64)
    schema.add_field("year", DataType.INT64, nullable=True)
    schema.add_field("shelf", DataType.VARCHAR, max_length=8, default_value="A")
    schema.add_field("emb", DataType.FLOAT_VECTOR, dim=4)
    index = client.prepare_index_params()
    index.add_index("emb", index_type="FLAT", metric_type="L2")
    client.create_collection(name, schema=schema, index_params=index)
else:
    fields = ["book_id", "title", "year", "shelf"]
    print(json.dumps(client.query(name, filter="book_id >= 0", output_fields=fields)))
"""


def lite_pymilvus3(url: str, action: str, name: str) -> list[dict]:
    done = subprocess.run(
        [str(PROJECT_DIR / ".venv-lite" / "bin" / "python"), "-c", _LITE_SCRIPT, url, action, name],
        capture_output=True,
        check=True,
        timeout=60,
    )
    return json.loads(done.stdout) if action == "query" else []


def test_rows_may_leave_out_or_null_a_nullable_field_and_one_with_a_default(
    milvus_lite, lite_cluster, upload, run_in_worker
):
    name = f"lite_{uuid.uuid4().hex[:12]}"
    lite_pymilvus3(milvus_lite.url, "create", name)
    rows = [
        {"book_id": 1, "title": "Dated", "year": 2001, "shelf": "B", "emb": [0.5, 0.25, 0.0, 1]},
        {"book_id": 2, "title": "Left out", "emb": [0.5, 0.25, 0.0, 2]},
        {"book_id": 3, "title": "Nulls", "year": None, "shelf": None, "emb": [0.5, 0.25, 0.0, 3]},
        {"book_id": 4, "year": 1990, "emb": [0.5, 0.25, 0.0, 4]},  # no title: refused
    ]
    content = b"".join(json.dumps(row).encode() + b"\n" for row in rows)

    job = run_in_worker(upload(content, "books.jsonl", name, cluster=lite_cluster))

    assert job.status == JobStatus.PARTIALLY_FAILED, job.error_message
    assert (job.rows_upserted, job.rows_failed) == (3, 1)
    assert "field `title` is missing" in FailedRow.objects.get(job=job).reason
    stored = {row["book_id"]: row for row in lite_pymilvus3(milvus_lite.url, "query", name)}
    assert stored == {
        1: {"book_id": 1, "title": "Dated", "year": 2001, "shelf": "B"},
        2: {"book_id": 2, "title": "Left out", "year": None, "shelf": "A"},
        3: {"book_id": 3, "title": "Nulls", "year": None, "shelf": "A"},
    }


def test_a_partial_update_over_grpc_keeps_the_fields_a_row_leaves_out(
    lite_client, lite_books, lite_cluster, upload, run_in_worker
):
    full = [
        {"book_id": i, "title": f"Book {i}", "meta": {"shelf": i}, "emb": [0.5, 0.25, 0.0, i]}
        for i in range(1, 6)
    ]
    content = b"".join(json.dumps(r).encode() + b"\n" for r in full)
    first = run_in_worker(upload(content, "a.jsonl", lite_books, cluster=lite_cluster))
    assert first.status == JobStatus.SUCCEEDED, first.error_message
    changes = b"".join(
        json.dumps({"book_id": i, "title": f"Retitled {i}"}).encode() + b"\n" for i in (2, 4)
    )

    job = run_in_worker(
        upload(changes, "titles.jsonl", lite_books, cluster=lite_cluster, partial_update=True)
    )

    assert job.status == JobStatus.SUCCEEDED, job.error_message
    entities = stored(lite_client, lite_books)
    assert [entities[i]["title"] for i in range(1, 6)] == [
        "Book 1", "Retitled 2", "Book 3", "Retitled 4", "Book 5"
    ]  # fmt: skip
    assert entities[4]["meta"] == {"shelf": 4}
    assert entities[4]["emb"] == pytest.approx([0.5, 0.25, 0.0, 4.0])
    ended = AuditEvent.objects.get(action=AuditAction.JOB_FINISHED, target_id=str(job.pk))
    assert ended.details["rows_upserted"] == 2
