"""Every format, plain or gzip, yields the same entities, and resuming skips exactly."""

import csv
import datetime
import decimal
import gzip
import io
import json
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from upserts.milvus.schema import CollectionSchema, FieldSchema
from upserts.readers import HEAD_BYTES, SourceRow, detect_format, read_rows
from upserts.validation.text_cells import coerce_text_values

SCHEMA = CollectionSchema(
    name="books",
    fields=(
        FieldSchema("book_id", "Int64", is_primary=True),
        FieldSchema("title", "VarChar", max_length=64),
        FieldSchema("emb", "FloatVector", dim=4),
        FieldSchema("year", "Int32"),
        FieldSchema("available", "Bool"),
    ),
)

# Vector values exact in float32, so a Parquet float32 column reads back equal.
BOOKS = [
    {"book_id": 1, "title": "Clock Meadow", "emb": [0.5, -0.25, 1.0, 0.0], "year": 2007,
     "available": True},
    {"book_id": 2, "title": 'Éire, "quoted", and a comma', "emb": [0.125, 2.0, -1.5, 3.0],
     "year": 1999, "available": False},
    {"book_id": 3, "title": "雪国\nwith a line break", "emb": [1.0, 1.0, 1.0, 1.0], "year": 1948,
     "available": True},
    {"book_id": 4, "title": "", "emb": [-0.5, 0.75, 0.0, 8.0], "year": 1, "available": False},
]  # fmt: skip

FORMATS = ["json", "jsonl", "csv", "parquet"]


def json_bytes(entities: list[dict]) -> bytes:
    return json.dumps(entities, ensure_ascii=False, indent=2).encode()


def jsonl_bytes(entities: list[dict]) -> bytes:
    return b"".join(json.dumps(entity).encode() + b"\n" for entity in entities)


def csv_bytes(entities: list[dict]) -> bytes:
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(list(entities[0]))
    for entity in entities:
        writer.writerow(
            [
                json.dumps(value) if isinstance(value, list | bool) else value
                for value in entity.values()
            ]
        )
    return text.getvalue().encode()


def parquet_bytes(entities: list[dict], *, row_group_size: int | None = None) -> bytes:
    table = pa.Table.from_pylist(
        entities,
        schema=pa.schema(
            [
                ("book_id", pa.int64()),
                ("title", pa.string()),
                ("emb", pa.list_(pa.float32())),
                ("year", pa.int32()),
                ("available", pa.bool_()),
            ]
        ),
    )
    sink = io.BytesIO()
    pq.write_table(table, sink, row_group_size=row_group_size)
    return sink.getvalue()


WRITERS = {"json": json_bytes, "jsonl": jsonl_bytes, "csv": csv_bytes, "parquet": parquet_bytes}


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def read_path(path: Path, **options) -> list[SourceRow]:
    """Detect the format from the file itself, then read every row, as the worker does."""
    with open(path, "rb") as file:
        detected = detect_format(path.name, file.read(HEAD_BYTES))
        file.seek(0)
        return list(
            read_rows(
                file,
                file_format=detected.file_format,
                gzipped=detected.gzipped,
                filename=path.name,
                **options,
            )
        )


def typed_entities(rows: list[SourceRow], file_format: str) -> list[dict]:
    assert all(row.error is None for row in rows), [row.error for row in rows]
    entities = [row.entity for row in rows]
    if file_format == "csv":
        return [coerce_text_values(entity, SCHEMA) for entity in entities]
    return entities


@pytest.mark.parametrize("file_format", FORMATS)
def test_every_format_yields_the_same_entities_numbered_from_one(tmp_path, file_format):
    path = write(tmp_path, f"books.{file_format}", WRITERS[file_format](BOOKS))

    rows = read_path(path)

    assert typed_entities(rows, file_format) == BOOKS
    assert [row.number for row in rows] == [1, 2, 3, 4]


@pytest.mark.parametrize("file_format", FORMATS)
def test_gzip_files_yield_the_same_entities_as_plain_ones(tmp_path, file_format):
    path = write(tmp_path, f"books.{file_format}.gz", gzip.compress(WRITERS[file_format](BOOKS)))

    assert detect_format(path.name, path.read_bytes()[:HEAD_BYTES]).gzipped
    assert typed_entities(read_path(path), file_format) == BOOKS


def test_csv_values_come_out_as_text_until_typed_by_the_schema(tmp_path):
    path = write(tmp_path, "books.csv", csv_bytes(BOOKS))

    first = read_path(path)[0]

    assert first.entity == {
        "book_id": "1",
        "title": "Clock Meadow",
        "emb": "[0.5, -0.25, 1.0, 0.0]",
        "year": "2007",
        "available": "true",
    }
    assert first.line == 2


def test_jsonl_and_csv_rows_carry_their_physical_line(tmp_path):
    jsonl = write(tmp_path, "books.jsonl", b"\n" + jsonl_bytes(BOOKS[:2]).replace(b"\n", b"\n\n"))
    # The third book's title holds a line break, so the fourth starts two lines later.
    csv_path = write(tmp_path, "books.csv", csv_bytes(BOOKS))

    assert [row.line for row in read_path(jsonl)] == [2, 4]
    assert [row.line for row in read_path(csv_path)] == [2, 3, 4, 6]


@pytest.mark.parametrize("file_format", FORMATS)
def test_start_after_skips_exactly_that_many_rows(tmp_path, file_format):
    path = write(tmp_path, f"books.{file_format}", WRITERS[file_format](BOOKS))

    rows = read_path(path, start_after=3)

    assert [row.number for row in rows] == [4]
    assert typed_entities(rows, file_format) == BOOKS[3:]


@pytest.mark.parametrize("file_format", FORMATS)
def test_start_after_the_last_row_yields_nothing_and_is_not_an_error(tmp_path, file_format):
    path = write(tmp_path, f"books.{file_format}", WRITERS[file_format](BOOKS))

    assert read_path(path, start_after=len(BOOKS)) == []
    assert read_path(path, start_after=len(BOOKS) + 10) == []


def test_start_after_counts_bad_rows_like_good_ones(tmp_path):
    path = write(tmp_path, "books.jsonl", b'{"book_id": 1}\n{broken\n\n{"book_id": 3}\n')

    rows = read_path(path, start_after=2)

    assert [(row.number, row.line, row.entity) for row in rows] == [(3, 4, {"book_id": 3})]


@pytest.mark.parametrize("start_after", [0, 1, 5, 6, 7, 13, 24, 25])
def test_parquet_resumes_across_row_groups_and_batches(tmp_path, start_after):
    books = [dict(BOOKS[0], book_id=number) for number in range(1, 26)]
    path = write(tmp_path, "many.parquet", parquet_bytes(books, row_group_size=6))
    assert pq.ParquetFile(path).metadata.num_row_groups == 5

    rows = read_path(path, start_after=start_after)

    assert [row.number for row in rows] == list(range(start_after + 1, 26))
    assert [row.entity["book_id"] for row in rows] == list(range(start_after + 1, 26))


def test_parquet_rows_are_converted_a_batch_at_a_time(tmp_path):
    books = [dict(BOOKS[0], book_id=number) for number in range(1, 2501)]
    path = write(tmp_path, "many.parquet", parquet_bytes(books))

    rows = read_path(path, start_after=1500)

    assert [row.number for row in rows] == list(range(1501, 2501))
    assert rows[0].entity == dict(BOOKS[0], book_id=1501)


@pytest.mark.parametrize("file_format", ["json", "jsonl", "csv"])
def test_a_utf8_byte_order_mark_is_tolerated(tmp_path, file_format):
    path = write(tmp_path, f"books.{file_format}", b"\xef\xbb\xbf" + WRITERS[file_format](BOOKS))

    rows = read_path(path)

    assert typed_entities(rows, file_format) == BOOKS
    if file_format == "csv":
        assert "book_id" in rows[0].entity


def test_a_single_json_object_is_one_entity(tmp_path):
    path = write(tmp_path, "one.json", json.dumps(BOOKS[0], indent=2).encode())

    rows = read_path(path)

    assert [(row.number, row.entity) for row in rows] == [(1, BOOKS[0])]


def test_json_floats_are_floats_and_big_integers_stay_exact(tmp_path):
    path = write(tmp_path, "n.json", b'[{"id": 9223372036854775807, "x": 0.1, "y": 1e2}]')

    entity = read_path(path)[0].entity

    assert entity == {"id": 9223372036854775807, "x": 0.1, "y": 100.0}
    assert type(entity["x"]) is float


def test_crlf_line_endings_read_like_lf(tmp_path):
    jsonl = write(tmp_path, "books.jsonl", jsonl_bytes(BOOKS).replace(b"\n", b"\r\n"))
    csv_path = write(tmp_path, "books.csv", csv_bytes(BOOKS[:2]))  # csv.writer writes \r\n

    assert typed_entities(read_path(jsonl), "jsonl") == BOOKS
    assert typed_entities(read_path(csv_path), "csv") == BOOKS[:2]


def test_reading_leaves_the_callers_file_open(tmp_path):
    path = write(tmp_path, "books.jsonl.gz", gzip.compress(jsonl_bytes(BOOKS)))

    with open(path, "rb") as file:
        rows = list(read_rows(file, file_format="jsonl", gzipped=True, filename="books.jsonl.gz"))
        assert not file.closed
    assert len(rows) == len(BOOKS)


def test_parquet_values_json_cannot_hold_are_made_json_ready(tmp_path):
    table = pa.table(
        {
            "id": [1],
            "price": pa.array([decimal.Decimal("12.50")], pa.decimal128(6, 2)),
            "bits": pa.array([b"\x00\xff"], pa.binary(2)),
            "blob": pa.array([None], pa.binary()),
            "bytes": pa.array([b"\x01\x02"], pa.binary()),
            "seen": pa.array([datetime.datetime(2024, 5, 6, 7, 8, 9)], pa.timestamp("s")),
        }
    )
    path = tmp_path / "typed.parquet"
    pq.write_table(table, path)

    entity = read_path(path)[0].entity

    assert entity["price"] == 12.5
    assert entity["bits"] == [0, 255]
    assert entity["blob"] is None
    assert entity["bytes"] == [1, 2]
    assert orjson.loads(orjson.dumps(entity))["seen"] == "2024-05-06T07:08:09"


@pytest.mark.parametrize(
    "vector_type",
    [
        pa.list_(pa.float32()),
        pa.list_(pa.float64()),
        pa.large_list(pa.float32()),
        pa.list_(pa.float32(), 3),
        pa.list_(pa.float64(), 3),
    ],
    ids=str,
)
@pytest.mark.parametrize("start_after", [0, 7, 1030])
def test_parquet_vectors_read_as_lists_of_floats_whatever_the_list_type(
    tmp_path, vector_type, start_after
):
    # Null rows too, except in fixed-size lists, which pyarrow cannot write with nulls.
    nulls = not pa.types.is_fixed_size_list(vector_type)
    vectors = [None if nulls and n % 11 == 3 else [n + 0.5, -n / 4, 0.1] for n in range(1500)]
    table = pa.table({"id": range(1500), "emb": pa.array(vectors, vector_type)})
    path = tmp_path / "vectors.parquet"
    pq.write_table(table, path, row_group_size=1000)
    expected = table.slice(start_after).to_pylist()

    rows = read_path(path, start_after=start_after)

    assert [row.entity for row in rows] == expected
    assert all(type(value) is float for value in rows[0].entity["emb"])


def test_parquet_vectors_with_null_values_inside_read_like_pyarrow(tmp_path):
    table = pa.table({"id": [1, 2], "emb": pa.array([[0.5, None], [1.0, 2.0]])})
    path = tmp_path / "vectors.parquet"
    pq.write_table(table, path)

    assert [row.entity for row in read_path(path)] == table.to_pylist()
