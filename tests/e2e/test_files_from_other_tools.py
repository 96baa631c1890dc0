"""Files as other tools and other people's column names have them, through the real worker
into the real Milvus: BulkWriter and pandas files, a column mapping kept for the retry, and
a check of the whole file that sends nothing."""

import io
import json

import numpy as np
import pandas as pd
import pytest
from django.core.management import call_command

from tests.factories import book
from tests.helpers import query
from tests.readers.test_other_tools import ROWS, bulk_writer_file
from upserts.column_mapping import ColumnMapping
from upserts.exports import failed_rows_jsonl
from upserts.models import AuditAction, AuditEvent, JobStatus
from upserts.services.submissions import retry_failed_rows, send_checked_file
from upserts.services.uploads import set_column_mapping

pytestmark = [pytest.mark.milvus, pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("file_type", ["json", "parquet"])
def test_a_bulk_writer_file_lands_with_its_dynamic_fields(
    file_type, tmp_path, books, upload, run_in_worker, milvus
):
    path = bulk_writer_file(tmp_path, file_type)

    job = run_in_worker(upload(path.read_bytes(), path.name, books))

    assert job.status == JobStatus.SUCCEEDED, job.error_message
    stored = query(milvus, books, "book_id > 0", ["book_id", "title", "emb", "$meta"], count=3)
    assert [(int(row["book_id"]), row.get("colour"), row.get("shelf")) for row in stored] == [
        (1, None, None),
        (2, "red", None),
        (3, None, {"row": 4}),
    ]
    assert stored[2]["emb"] == pytest.approx(ROWS[2]["emb"])


def test_a_filtered_pandas_frame_lands_without_its_index(books, upload, run_in_worker, milvus):
    frame = pd.DataFrame([book(i) for i in range(1, 11)])
    frame["emb"] = [np.asarray(vector) for vector in frame["emb"]]  # float64 arrays
    content = io.BytesIO()
    frame[frame.book_id % 3 != 0].to_parquet(content)

    job = run_in_worker(upload(content.getvalue(), "filtered.parquet", books))

    assert job.status == JobStatus.SUCCEEDED, job.error_message
    stored = query(milvus, books, "book_id > 0", ["book_id", "emb", "$meta"], count=7)
    assert [int(row["book_id"]) for row in stored] == [1, 2, 4, 5, 7, 8, 10]
    assert not any("__index_level_0__" in row for row in stored)
    assert stored[2]["emb"] == pytest.approx(book(4)["emb"])


def renamed_csv(rows) -> bytes:
    lines = ["id,name,emb,notes"]
    for row in rows:
        lines.append(f'{row["book_id"]},{row["title"]},"{json.dumps(row["emb"])}",scanned')
    return ("\n".join(lines) + "\n").encode()


def test_a_mapped_job_lands_its_rows_and_its_retry_maps_the_failed_rows_again(
    books, upload, run_in_worker, milvus
):
    rows = [book(i) for i in range(1, 6)]
    rows[2]["emb"] = [1.0, 2.0]  # row 3 fails the checks
    job = upload(renamed_csv(rows), "export.csv", books)
    mapping = ColumnMapping.from_json({"id": "book_id", "name": "title", "notes": None})
    set_column_mapping(job, mapping)

    job = run_in_worker(job)

    assert job.status == JobStatus.PARTIALLY_FAILED, job.error_message
    stored = query(milvus, books, "book_id > 0", ["book_id", "title", "$meta"], count=4)
    assert [(int(row["book_id"]), row["title"]) for row in stored] == [
        (1, "Book 1"),
        (2, "Book 2"),
        (4, "Book 4"),
        (5, "Book 5"),
    ]
    assert not any("notes" in row or "name" in row for row in stored)
    started = AuditEvent.objects.get(action=AuditAction.JOB_STARTED, target_id=str(job.pk))
    assert started.details["mapping"] == {"id": "book_id", "name": "title", "notes": None}
    # The failed row keeps the file's own names (and typed values), to be fixed in the file.
    (failed,) = [json.loads(line) for line in b"".join(failed_rows_jsonl(job)).splitlines()]
    assert failed["entity"] == {"id": 3, "name": "Book 3", "emb": [1.0, 2.0], "notes": "scanned"}

    retry = run_in_worker(retry_failed_rows(job))

    assert retry.column_mapping == job.column_mapping
    assert retry.status == JobStatus.FAILED
    assert list(retry.failed_rows.values_list("reason", flat=True)) == [
        "field `emb`: expected 4 floats, got 2"
    ]


def test_a_check_of_the_whole_file_sends_nothing_then_the_file_is_sent_as_it_is(
    books, upload, run_in_worker, milvus
):
    rows = [book(i) for i in range(1, 41)]
    rows[9]["title"] = 42
    rows[29]["emb"] = "not a vector"
    content = b"".join(json.dumps(row).encode() + b"\n" for row in rows)
    job = upload(content, "books.jsonl", books, batch_size=10)

    checked = run_in_worker(job, dry_run=True)

    assert checked.status == JobStatus.PARTIALLY_FAILED
    assert (checked.rows_read, checked.rows_upserted, checked.rows_failed) == (40, 0, 2)
    assert sorted(checked.failed_rows.values_list("row_number", flat=True)) == [10, 30]
    assert set(checked.batches.values_list("attempts", flat=True)) == {0}
    assert not checked.entity_writes.exists()

    sent = run_in_worker(send_checked_file(checked))

    assert (sent.rows_upserted, sent.rows_failed, sent.sha256) == (38, 2, checked.sha256)
    assert len(query(milvus, books, "book_id > 0", ["book_id"], count=38)) == 38


def test_the_upsert_command_maps_columns_and_checks_without_sending(
    books, cluster, milvus, tmp_path
):
    path = tmp_path / "export.csv"
    path.write_bytes(renamed_csv([book(1), book(2)]))
    common = [str(path), "--cluster", cluster.name, "--collection", books, "--here"]
    mapping = ["--map", "id=book_id", "--map", "name=title", "--ignore", "notes"]

    checked, sent = io.StringIO(), io.StringIO()
    call_command("upsert", *common, *mapping, "--check", stdout=checked)
    call_command("upsert", *common, *mapping, stdout=sent)

    assert "column id → book_id" in checked.getvalue()
    assert "column notes: left out" in checked.getvalue()
    assert "succeeded: 2 rows read, 0 upserted, 0 failed" in checked.getvalue()
    assert "succeeded: 2 rows read, 2 upserted, 0 failed" in sent.getvalue()
    assert len(query(milvus, books, "book_id > 0", ["book_id"], count=2)) == 2
