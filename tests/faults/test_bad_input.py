"""Every file of the bad-input corpus gets a clear error; good rows of a mixed file still land.

The corpus is tests/data/bad/ (made by make_corpus.py). Each file runs through the real
upload service and pipeline into a real Milvus collection; a few also go through the real
worker, which must survive them all.
"""

import uuid
from pathlib import Path

import pytest
from django.test import override_settings

from tests.helpers import wait_until
from upserts.models import ClusterEndpoint, FailedRow, JobStatus, UpsertJob
from upserts.services.job_control import start_job
from upserts.services.pipeline import run_job_slice
from upserts.services.uploads import UploadRejected, create_job

pytestmark = [pytest.mark.milvus, pytest.mark.django_db(transaction=True)]

CORPUS = Path(__file__).resolve().parent.parent / "data" / "bad"
CORPUS_FIELDS = [
    {"name": "id", "type": "INT64", "is_primary": True},
    {"name": "title", "type": "VARCHAR", "max_length": 16},
    {"name": "rank", "type": "INT8"},
    {"name": "price", "type": "DOUBLE"},
    {"name": "in_print", "type": "BOOL"},
    {"name": "emb", "type": "FLOAT_VECTOR", "dim": 4},
]


def refused(message: str) -> dict:
    """Refused at upload: nothing stored, nothing started."""
    return {"refused": message}


def breaks(message: str, landed: int) -> dict:
    """The job fails on the file itself, after the rows before the break landed."""
    return {"status": JobStatus.FAILED, "error": message, "upserted": landed, "failed": {}}


def row_fails(row: int, message: str, *, rows: int = 5) -> dict:
    """One row fails with a message naming its problem; every other row lands."""
    return {"status": JobStatus.PARTIALLY_FAILED, "upserted": rows - 1, "failed": {row: message}}


def lands(rows: int, duplicates: int = 0) -> dict:
    return {"status": JobStatus.SUCCEEDED, "upserted": rows, "failed": {}, "dupes": duplicates}


EXPECTED = {
    "empty.jsonl": refused("empty.jsonl is empty"),
    "whitespace_only.jsonl": refused("nothing but blank space"),
    "binary_garbage.jsonl": refused("is binary data"),
    "image.png": refused("is binary data"),
    "archive.zip": refused("is a ZIP archive: unzip it"),
    "utf16.jsonl": refused("is binary data"),
    "scalar.json": refused("holds a single number at the top level"),
    "string.json": refused("holds a single string at the top level"),
    "header_only.csv": refused("header row but no data rows"),
    "truncated.parquet": refused("not a readable Parquet file"),
    "over_limit.jsonl": refused("the largest file accepted is 10,000 bytes"),
    "non_utf8.jsonl": refused("is not UTF-8"),
    "truncated_array.json": breaks("ends in the middle of row 5", landed=4),
    "corrupt_gzip.jsonl.gz": breaks("gzip data is damaged or cut short", landed=33),
    "gzip_bomb.jsonl.gz": breaks("decompresses to more than 1,048,576 bytes", landed=1),
    "broken_line.jsonl": row_fails(3, "line 3, column 1: not valid JSON"),
    "array_line.jsonl": row_fails(3, "line 3 holds an array, not an object"),
    "array_of_arrays.json": row_fails(2, "row 2 is an array, not an object", rows=3),
    "wrong_dimension.jsonl": row_fails(3, "field `emb`: expected 4 floats, got 3"),
    "nan_in_vector.jsonl": row_fails(3, "line 3, column 76: not valid JSON"),
    "infinity_in_vector.jsonl": row_fails(3, "number is infinity"),
    "null_in_vector.jsonl": row_fails(3, "field `emb`: value 1 of 4 is null"),
    "empty_vector.jsonl": row_fails(3, "field `emb`: expected 4 floats, got 0"),
    "vector_as_text.jsonl": row_fails(3, 'field `emb`: expected a list of 4 floats, got "[0.1'),
    "string_in_int.jsonl": row_fails(3, 'field `rank`: expected an integer, got "high"'),
    "string_in_double.jsonl": row_fails(3, 'field `price`: expected a number, got "cheap"'),
    "int64_overflow.jsonl": row_fails(3, "outside the Int64 range"),
    "int8_overflow.jsonl": row_fails(3, "field `rank`: 300 is outside the Int8 range"),
    "varchar_too_long.jsonl": row_fails(3, "field `title`: 20 bytes of UTF-8 text"),
    "varchar_too_many_bytes.jsonl": row_fails(3, "field `title`: 19 bytes of UTF-8 text"),
    "missing_primary_key.jsonl": row_fails(3, "field `id` (the primary key) is missing"),
    "missing_field.jsonl": row_fails(3, "field `price` is missing"),
    "float_primary_key.jsonl": row_fails(3, "expected an integer, got 3.5"),
    "bool_primary_key.jsonl": row_fails(3, "expected an integer, got true (a boolean)"),
    "string_primary_key.jsonl": row_fails(3, 'expected an integer, got "three"'),
    "bool_as_text.jsonl": row_fails(3, 'field `in_print`: expected true or false, got "yes"'),
    "object_in_varchar.jsonl": row_fails(3, "field `title`: expected a string"),
    "unknown_field.jsonl": row_fails(3, "field `colour` is not in the collection"),
    "short_row.csv": row_fails(3, "line 4: 3 values, but the header has 6 columns", rows=4),
    "long_row.csv": row_fails(3, "line 4: 7 values, but the header has 6 columns", rows=4),
    "bad_vector_text.csv": row_fails(3, "field `emb`: expected a list of 4 floats", rows=4),
    "text_in_int.csv": row_fails(3, 'field `rank`: expected an integer, got "high"', rows=4),
    "wrong_column_types.parquet": {
        "status": JobStatus.FAILED,
        "error": "No row landed: all 2 rows failed",
        "upserted": 0,
        "failed": {
            1: 'field `id` (the primary key): expected an integer, got "1"',
            2: 'field `id` (the primary key): expected an integer, got "2"',
        },
    },
    "duplicate_primary_keys.jsonl": lands(3, duplicates=1),
    "utf8_bom.jsonl": lands(2),
    "utf8_bom.csv": lands(2),
    "crlf.csv": lands(2),
    "jsonl_named.txt": lands(2),
    "plain_named.jsonl.gz": lands(2),
}


@pytest.fixture(scope="module")
def corpus_collection(milvus) -> str:
    from console.localservices import create_collection

    name = f"corpus_{uuid.uuid4().hex[:8]}"
    create_collection(
        host="127.0.0.1",
        port=milvus.port,
        name=name,
        fields=CORPUS_FIELDS,
        enable_dynamic_field=False,
    )
    return name


@pytest.fixture
def corpus_cluster(milvus) -> ClusterEndpoint:
    return ClusterEndpoint.objects.create(name="corpus", base_url=milvus.url)


def test_the_corpus_has_forty_bad_files_each_with_an_expectation():
    files = {path.name for path in CORPUS.iterdir() if path.suffix != ".py"}

    assert files == set(EXPECTED)
    assert (
        sum(1 for e in EXPECTED.values() if e.get("refused") or e.get("error") or e.get("failed"))
        >= 40
    )


def upload(name: str, cluster: ClusterEndpoint, collection: str) -> UpsertJob:
    limit = 10_000 if name == "over_limit.jsonl" else 2**31
    with override_settings(UPLOAD_MAX_BYTES=limit), (CORPUS / name).open("rb") as source:
        return create_job(source=source, filename=name, cluster=cluster, collection_name=collection)


def assert_outcome(job: UpsertJob, expected: dict) -> None:
    assert job.status == expected["status"], job.error_message
    assert expected.get("error", "") in job.error_message
    assert job.rows_upserted == expected["upserted"]
    failures = dict(FailedRow.objects.filter(job=job).values_list("row_number", "reason"))
    assert sorted(failures) == sorted(expected["failed"])
    for row, message in expected["failed"].items():
        assert message in failures[row]
    assert job.duplicate_ids == expected.get("dupes", 0)
    # Nothing silently dropped: every row read is either upserted or failed.
    assert job.rows_read == job.rows_upserted + job.rows_failed


@pytest.mark.parametrize("name", sorted(EXPECTED))
@override_settings(UPLOAD_MAX_DECOMPRESSED_BYTES=1024 * 1024)
def test_bad_file_gets_a_clear_error_and_loses_nothing(name, corpus_cluster, corpus_collection):
    expected = EXPECTED[name]

    if "refused" in expected:
        with pytest.raises(UploadRejected, match=expected["refused"].replace("(", r"\(")):
            upload(name, corpus_cluster, corpus_collection)
        assert not UpsertJob.objects.exists()
        return
    job = upload(name, corpus_cluster, corpus_collection)
    run_job_slice(job.pk)
    job.refresh_from_db()

    assert_outcome(job, expected)


WORKER_SAMPLE = [
    "truncated_array.json",
    "nan_in_vector.jsonl",
    "wrong_column_types.parquet",
    "short_row.csv",
    "corrupt_gzip.jsonl.gz",
    "utf8_bom.csv",
]


@pytest.mark.worker
def test_the_worker_survives_bad_files_and_goes_on_working(
    corpus_cluster, corpus_collection, celery_worker
):
    jobs = [upload(name, corpus_cluster, corpus_collection) for name in WORKER_SAMPLE]

    for job in jobs:
        start_job(job)
    for job, name in zip(jobs, WORKER_SAMPLE, strict=True):
        wait_until(lambda j=job: UpsertJob.objects.get(pk=j.pk).is_final, timeout=60)
        job.refresh_from_db()
        assert_outcome(job, EXPECTED[name])
    assert celery_worker.process.poll() is None
