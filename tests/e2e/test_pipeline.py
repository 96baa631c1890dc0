"""Upload → job → batches → the real Milvus holds every entity, sent by a real Celery worker."""

import base64
import csv
import gzip
import hashlib
import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.factories import book
from tests.helpers import BOTH_TRANSPORTS, query, wait_until
from upserts.exports import failed_rows_jsonl
from upserts.models import AuditAction, AuditEvent, BatchStatus, FailedRow, JobStatus
from upserts.selectors import entity_writes

pytestmark = [pytest.mark.milvus, pytest.mark.worker, pytest.mark.django_db(transaction=True)]

BOOKS = [book(i) for i in range(1, 251)]


def as_jsonl(rows) -> bytes:
    return b"".join(json.dumps(row).encode() + b"\n" for row in rows)


def as_csv(rows) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["book_id", "title", "emb"])
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, "emb": json.dumps(row["emb"])})
    return out.getvalue().encode()


def as_parquet(rows) -> bytes:
    table = pa.table(
        {
            "book_id": pa.array([r["book_id"] for r in rows], pa.int64()),
            "title": pa.array([r["title"] for r in rows], pa.string()),
            "emb": pa.array([r["emb"] for r in rows], pa.list_(pa.float32())),
        }
    )
    out = io.BytesIO()
    pq.write_table(table, out, row_group_size=64)
    return out.getvalue()


FILES = {
    "books.json": lambda rows: json.dumps(rows).encode(),
    "books.jsonl": as_jsonl,
    "books.csv": as_csv,
    "books.parquet": as_parquet,
    "books.jsonl.gz": lambda rows: gzip.compress(as_jsonl(rows)),
    "books.csv.gz": lambda rows: gzip.compress(as_csv(rows)),
    "books.json.gz": lambda rows: gzip.compress(json.dumps(rows).encode()),
    "books.parquet.gz": lambda rows: gzip.compress(as_parquet(rows)),
}


@BOTH_TRANSPORTS
@pytest.mark.parametrize("filename", FILES)
def test_every_format_lands_every_entity_with_its_values(
    filename, books, upload, run_in_worker, milvus
):
    job = upload(FILES[filename](BOOKS), filename, books, batch_size=64)

    job = run_in_worker(job)

    assert job.status == JobStatus.SUCCEEDED, job.error_message
    assert (job.rows_read, job.rows_upserted, job.rows_failed) == (250, 250, 0)
    assert job.batches_done == 4 and job.checkpoint_row == 250
    assert list(job.batches.values_list("sequence", flat=True)) == [1, 2, 3, 4]
    stored = query(milvus, books, "book_id > 0", ["book_id", "title", "emb"], count=250)
    assert [int(row["book_id"]) for row in stored] == list(range(1, 251))
    assert stored[41]["title"] == "Book 42"
    assert stored[41]["emb"] == pytest.approx([4.2, 0.5, -0.25, 1.0], rel=1e-6)


def test_gzipped_parquet_is_kept_decompressed_so_nothing_copies_it_again(books, upload):
    sent = gzip.compress(as_parquet(BOOKS))
    job = upload(sent, "books.parquet.gz", books)

    assert job.file_format == "parquet" and not job.is_gzipped
    assert job.estimated_rows == 250  # read from the footer, exactly
    # The trail keeps the fingerprint of the file as it was sent.
    assert (job.size_bytes, job.sha256) == (len(sent), hashlib.sha256(sent).hexdigest())
    with job.source_file.open("rb") as stored:
        assert stored.read(4) == b"PAR1"
    assert job.source_file.name.endswith(".parquet")
    event = AuditEvent.objects.get(action=AuditAction.FILE_UPLOADED, target_id=str(job.pk))
    assert event.details["decompressed_at_upload"] is True


def test_a_single_json_object_is_one_entity(books, upload, run_in_worker, milvus):
    job = run_in_worker(upload(json.dumps(book(7)).encode(), "one.json", books))

    assert job.status == JobStatus.SUCCEEDED and job.rows_upserted == 1
    assert (
        query(milvus, books, "book_id == 7", ["book_id", "title"], count=1)[0]["title"] == "Book 7"
    )


@BOTH_TRANSPORTS
def test_upserting_again_overwrites_the_stored_entities(books, upload, run_in_worker, milvus):
    run_in_worker(upload(as_jsonl(BOOKS[:10]), "first.jsonl", books))

    job = run_in_worker(
        upload(
            as_jsonl([book(i, f"Second edition {i}") for i in range(1, 11)]), "again.jsonl", books
        )
    )

    assert job.status == JobStatus.SUCCEEDED
    expected = [f"Second edition {i}" for i in range(1, 11)]
    wait_until(
        lambda: [
            r["title"]
            for r in query(milvus, books, "book_id <= 10", ["book_id", "title"], count=10)
        ]
        == expected,
        timeout=30,
    )


@BOTH_TRANSPORTS
def test_bad_rows_are_reported_at_their_row_numbers_and_good_rows_land(
    books, upload, run_in_worker, milvus
):
    lines = [json.dumps(book(i)) for i in range(1, 21)]
    lines[3] = json.dumps({**book(4), "emb": [0.1, 0.2, 0.3]})  # row 4: wrong dimension
    lines[7] = json.dumps({**book(8), "book_id": "eight"})  # row 8: string primary key
    lines[11] = '{"book_id": 12, "title": "broken'  # row 12: not JSON
    lines[15] = json.dumps({k: v for k, v in book(16).items() if k != "book_id"})  # row 16
    content = ("\n".join(lines) + "\n").encode()

    job = run_in_worker(upload(content, "mixed.jsonl", books, batch_size=5))

    assert job.status == JobStatus.PARTIALLY_FAILED
    assert (job.rows_read, job.rows_upserted, job.rows_failed) == (20, 16, 4)
    failures = dict(FailedRow.objects.filter(job=job).values_list("row_number", "reason"))
    assert sorted(failures) == [4, 8, 12, 16]
    assert "emb" in failures[4] and "4" in failures[4] and "3" in failures[4]
    assert "book_id" in failures[8]
    assert "line 12" in failures[12]
    assert "book_id" in failures[16]
    landed = [int(r["book_id"]) for r in query(milvus, books, "book_id > 0", ["book_id"], count=16)]
    assert landed == [i for i in range(1, 21) if i not in (4, 8, 12, 16)]
    for failure in FailedRow.objects.filter(job=job).select_related("batch"):
        assert failure.batch.first_row <= failure.row_number <= failure.batch.last_row
        assert failure.batch.status == BatchStatus.PARTIALLY_FAILED


def test_failed_rows_download_is_json_lines_fit_to_fix_and_upload_again(
    books, upload, run_in_worker
):
    content = as_jsonl([book(1), {**book(2), "emb": [1.0]}, book(3)]) + b"{not json}\n"
    job = run_in_worker(upload(content, "two-bad.jsonl", books))

    lines = [json.loads(line) for line in b"".join(failed_rows_jsonl(job)).splitlines()]

    assert [line["row_number"] for line in lines] == [2, 4]
    assert lines[0]["entity"] == {**book(2), "emb": [1.0]} and "expected 4" in lines[0]["reason"]
    assert lines[1]["raw"] == "{not json}"


def test_duplicate_primary_keys_are_counted_and_the_last_row_wins(
    books, upload, run_in_worker, milvus
):
    rows = [book(1, "first"), book(2), book(1, "last")]

    job = run_in_worker(upload(as_jsonl(rows), "dupes.jsonl", books, batch_size=2))

    assert job.status == JobStatus.SUCCEEDED and job.duplicate_ids == 1
    wait_until(
        lambda: query(milvus, books, "book_id == 1", ["book_id", "title"], count=1)[0]["title"]
        == "last",
        timeout=30,
    )


def test_entity_lookup_finds_the_job_and_batch_that_wrote_an_id(books, upload, run_in_worker):
    first = run_in_worker(upload(as_jsonl(BOOKS[:100]), "a.jsonl", books, batch_size=50))
    second = run_in_worker(upload(as_jsonl(BOOKS[40:60]), "b.jsonl", books))

    writes = list(entity_writes(entity_id="42", collection_name=books))

    assert [write.job_id for write in writes] == [second.pk, first.pk]
    assert writes[1].batch.sequence == 1 and writes[1].batch.first_row <= 42
    assert not entity_writes(entity_id="420", collection_name=books).exists()


@BOTH_TRANSPORTS
@pytest.mark.parametrize(
    ("collection", "database", "messages"),
    [
        (
            "no_such_collection",
            "",
            {"v1": "can't find collection", "grpc": "can't find collection"},
        ),
        # Milvus 2.3.5 answers a gRPC describe in a missing database as a missing collection.
        (None, "no_such_db", {"v1": "database not found", "grpc": "[database=no_such_db]"}),
    ],
)
def test_a_missing_target_fails_the_job_at_once_with_the_clusters_message(
    collection, database, messages, books, upload, run_in_worker, cluster
):
    job = upload(as_jsonl(BOOKS[:5]), "rows.jsonl", collection or books, database_name=database)

    job = run_in_worker(job)

    assert job.status == JobStatus.FAILED
    assert messages[cluster.api_version] in job.error_message
    assert job.batches_done == 0 and job.rows_upserted == 0


def test_an_autoid_collection_is_refused_before_anything_is_sent(
    make_collection, upload, run_in_worker
):
    auto = make_collection(
        [
            {"name": "book_id", "type": "INT64", "is_primary": True, "auto_id": True},
            {"name": "emb", "type": "FLOAT_VECTOR", "dim": 4},
        ]
    )

    job = run_in_worker(upload(as_jsonl(BOOKS[:5]), "rows.jsonl", auto))

    assert job.status == JobStatus.FAILED
    assert "autoID" in job.error_message
    assert job.batches_done == 0


def test_a_collection_with_a_json_field_is_refused_with_an_explanation(
    make_collection, upload, run_in_worker
):
    with_json = make_collection(
        [
            {"name": "book_id", "type": "INT64", "is_primary": True},
            {"name": "meta", "type": "JSON"},
            {"name": "emb", "type": "FLOAT_VECTOR", "dim": 4},
        ]
    )

    job = run_in_worker(upload(as_jsonl([{**book(1), "meta": {}}]), "rows.jsonl", with_json))

    assert job.status == JobStatus.FAILED
    assert "json field 'meta'" in job.error_message and "v2 API" in job.error_message
    assert job.batches_done == 0


@pytest.mark.parametrize("cluster", ["grpc"], indirect=True)
def test_over_grpc_a_collection_with_json_and_array_fields_takes_them(
    make_collection, upload, run_in_worker, milvus
):
    fields = [
        {"name": "book_id", "type": "INT64", "is_primary": True},
        {"name": "meta", "type": "JSON"},
        {
            "name": "tags",
            "type": "ARRAY",
            "element_type": "VARCHAR",
            "max_capacity": 4,
            "max_length": 16,
        },
        {"name": "emb", "type": "FLOAT_VECTOR", "dim": 4},
    ]
    target = make_collection(fields)
    rows = [
        {
            **book(i),
            "meta": {"shelf": i, "new": i % 2 == 0},
            "tags": ["a", f"t{i}"],
            "note": f"n{i}",
        }
        for i in range(1, 6)
    ]
    rows = [{k: v for k, v in row.items() if k != "title"} for row in rows]

    job = run_in_worker(upload(as_jsonl(rows), "rows.jsonl", target))

    assert job.status == JobStatus.SUCCEEDED, job.error_message
    stored = query(milvus, target, "book_id > 0", ["book_id", "meta", "tags", "note"], count=5)
    # Milvus 2.3.5's v1 query answers a JSON field as the base64 of its text.
    assert json.loads(base64.b64decode(stored[1]["meta"])) == {"shelf": 2, "new": True}
    # ... and an Array field as the ScalarField message it stores.
    assert stored[1]["tags"] == {"Data": {"StringData": {"data": ["a", "t2"]}}}
    assert stored[1]["note"] == "n2"
