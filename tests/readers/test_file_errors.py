"""Files that cannot be read on raise FileFormatError naming the file, the place and the fix."""

import gzip
import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from upserts.readers import FileFormatError, ReadLimits, SourceRow, read_rows

FORMATS = ["json", "jsonl", "csv", "parquet"]


def read_until_error(
    path: Path, file_format: str, *, gzipped: bool = False, **options
) -> tuple[list[SourceRow], FileFormatError]:
    """The rows yielded before the error, and the error."""
    rows: list[SourceRow] = []
    with open(path, "rb") as file, pytest.raises(FileFormatError) as caught:
        for row in read_rows(
            file, file_format=file_format, gzipped=gzipped, filename=path.name, **options
        ):
            rows.append(row)
    return rows, caught.value


def test_a_truncated_json_array_yields_the_good_rows_then_names_where_it_ends(tmp_path):
    data = b'[{"id": 1}, {"id": 2}, {"id": 3}, {"id": 4, "title": "cut he'
    path = tmp_path / "books.json"
    path.write_bytes(data)

    rows, error = read_until_error(path, "json")

    assert [row.entity for row in rows] == [{"id": 1}, {"id": 2}, {"id": 3}]
    message = str(error)
    assert message.startswith("books.json: ")
    assert f"row 4 (at byte {len(data)})" in message
    assert "3 rows were read" in message
    assert "upload the complete file" in message


def test_a_syntax_error_in_a_json_array_names_the_row_after_which_it_breaks(tmp_path):
    path = tmp_path / "books.json"
    path.write_bytes(b'[{"id": 1}, {"id": 2} {"id": 3}]')

    rows, error = read_until_error(path, "json")

    assert [row.number for row in rows] == [1, 2]
    assert "breaks after row 2" in str(error)
    assert "Fix the JSON there" in str(error)


def test_text_after_a_json_array_is_an_error(tmp_path):
    path = tmp_path / "books.json"
    path.write_bytes(b'[{"id": 1}]\nnot json')

    rows, error = read_until_error(path, "json")

    assert [row.number for row in rows] == [1]
    assert "breaks after row 1" in str(error)


@pytest.mark.parametrize(
    ("content", "kind"),
    [(b'"just text"', "string"), (b"42", "number"), (b"true", "boolean"), (b"null", "null")],
)
def test_a_json_scalar_at_the_top_level_is_refused(tmp_path, content, kind):
    path = tmp_path / "books.json"
    path.write_bytes(b"  \n" + content)

    rows, error = read_until_error(path, "json")

    assert rows == []
    assert f"single {kind} at the top level" in str(error)
    assert "array" in str(error)


def test_text_that_is_not_json_at_all_is_refused_showing_its_start(tmp_path):
    path = tmp_path / "books.json"
    path.write_bytes(b"id,title\n1,Clock Meadow\n")

    _, error = read_until_error(path, "json")

    assert "this is not JSON: it starts with 'id,title" in str(error)


def test_a_gzip_bomb_is_stopped_at_the_decompressed_limit(tmp_path):
    # One real row, then 200 MB of line breaks that compress to about 200 KB.
    path = tmp_path / "bomb.jsonl.gz"
    with gzip.open(path, "wb", compresslevel=9) as file:
        file.write(b'{"id": 1}\n')
        block = b"\n" * (1024 * 1024)
        for _ in range(200):
            file.write(block)
    assert path.stat().st_size < 1024 * 1024

    rows, error = read_until_error(
        path, "jsonl", gzipped=True, max_decompressed_bytes=5 * 1024 * 1024
    )

    assert [row.entity for row in rows] == [{"id": 1}]
    assert "more than 5,242,880 bytes" in str(error)
    assert str(error).startswith("bomb.jsonl.gz: ")


def test_the_decompressed_limit_also_guards_gzip_parquet(tmp_path):
    table = pa.table({"id": list(range(50_000)), "text": ["x" * 50] * 50_000})
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="none")
    path = tmp_path / "big.parquet.gz"
    path.write_bytes(gzip.compress(sink.getvalue()))

    rows, error = read_until_error(path, "parquet", gzipped=True, max_decompressed_bytes=100_000)

    assert rows == []
    assert "more than 100,000 bytes" in str(error)


def test_a_file_under_the_decompressed_limit_reads_in_full(tmp_path):
    path = tmp_path / "books.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"id": 1}\n{"id": 2}\n'))

    with open(path, "rb") as file:
        rows = list(
            read_rows(
                file,
                file_format="jsonl",
                gzipped=True,
                filename=path.name,
                max_decompressed_bytes=20,
            )
        )

    assert [row.number for row in rows] == [1, 2]


def test_a_truncated_gzip_file_yields_what_it_holds_then_says_it_is_cut_short(tmp_path):
    whole = gzip.compress(b"".join(b'{"id": %d}\n' % n for n in range(1, 200_001)))
    path = tmp_path / "books.jsonl.gz"
    path.write_bytes(whole[: len(whole) // 2])

    rows, error = read_until_error(path, "jsonl", gzipped=True)

    assert 10_000 < len(rows) < 200_000
    assert [row.number for row in rows] == list(range(1, len(rows) + 1))
    assert "damaged or cut short" in str(error)


def test_a_file_declared_gzip_that_is_not_is_refused(tmp_path):
    path = tmp_path / "books.jsonl.gz"
    path.write_bytes(b'{"id": 1}\n')

    rows, error = read_until_error(path, "jsonl", gzipped=True)

    assert rows == []
    assert "gzip" in str(error)


@pytest.mark.parametrize("file_format", FORMATS)
def test_an_empty_file_is_refused(tmp_path, file_format):
    path = tmp_path / f"empty.{file_format}"
    path.write_bytes(b"")

    rows, error = read_until_error(path, file_format)

    assert rows == []
    assert str(error).startswith(f"empty.{file_format}: ")
    assert "nothing to upsert" in str(error) or "Parquet" in str(error)


@pytest.mark.parametrize(
    ("file_format", "content"),
    [("json", b"[]"), ("json", b" [ ] "), ("jsonl", b"\n\n  \n"), ("csv", b"\n")],
)
def test_a_file_without_entities_is_refused(tmp_path, file_format, content):
    path = tmp_path / f"nothing.{file_format}"
    path.write_bytes(content)

    rows, error = read_until_error(path, file_format)

    assert rows == []
    assert "nothing to upsert" in str(error)


def test_a_parquet_file_without_rows_is_refused(tmp_path):
    path = tmp_path / "empty.parquet"
    pq.write_table(pa.table({"id": pa.array([], pa.int64())}), path)

    rows, error = read_until_error(path, "parquet")

    assert rows == []
    assert "no rows" in str(error)


def test_a_header_only_csv_is_refused(tmp_path):
    path = tmp_path / "books.csv"
    path.write_bytes(b"id,title,emb\r\n")

    rows, error = read_until_error(path, "csv")

    assert rows == []
    assert "header row but no data rows" in str(error)


@pytest.mark.parametrize(
    ("header", "complaint"),
    [(b"id,,title", "column 2 of the header row has no name"), (b"id,title,id", "`id`")],
)
def test_a_csv_header_must_name_each_column_once(tmp_path, header, complaint):
    path = tmp_path / "books.csv"
    path.write_bytes(header + b"\n1,2,3\n")

    _, error = read_until_error(path, "csv")

    assert complaint in str(error)


@pytest.mark.parametrize(
    ("file_format", "content", "where"),
    [
        ("csv", "id,title\n1,Zoë\n".encode("latin-1"), "line 2, byte 13"),
        ("jsonl", '{"id": 1}\n{"title": "Zoë"}\n'.encode("latin-1"), "line 2, byte 23"),
        ("json", '[{"title": "Zoë"}]'.encode("latin-1"), "before byte 18"),
    ],
)
def test_text_that_is_not_utf8_is_refused_with_its_place(tmp_path, file_format, content, where):
    path = tmp_path / f"latin1.{file_format}"
    path.write_bytes(content)

    _, error = read_until_error(path, file_format)

    assert "not UTF-8" in str(error)
    assert where in str(error)
    assert "Save or export the file as UTF-8" in str(error)


@pytest.mark.parametrize("file_format", ["json", "jsonl", "csv"])
def test_binary_garbage_is_refused(tmp_path, file_format):
    path = tmp_path / f"garbage.{file_format}"
    path.write_bytes(bytes(range(256)) * 64)

    _, error = read_until_error(path, file_format)

    assert str(error).startswith(f"garbage.{file_format}: ")


def test_a_file_that_is_not_parquet_is_refused(tmp_path):
    path = tmp_path / "books.parquet"
    path.write_bytes(json.dumps([{"id": 1}]).encode())

    rows, error = read_until_error(path, "parquet")

    assert rows == []
    assert "not a readable Parquet file" in str(error)


def test_a_truncated_parquet_file_is_refused(tmp_path):
    sink = io.BytesIO()
    pq.write_table(pa.table({"id": list(range(1000))}), sink)
    path = tmp_path / "books.parquet"
    path.write_bytes(sink.getvalue()[:-100])

    _, error = read_until_error(path, "parquet")

    assert "not a readable Parquet file" in str(error)


def test_a_line_longer_than_a_row_may_be_fails_alone_and_the_next_lines_are_read(tmp_path):
    path = tmp_path / "minified.jsonl"
    long_line = json.dumps([{"id": n} for n in range(500)]).encode()
    path.write_bytes(b'{"id": 1}\n' + long_line + b'\n{"id": 3}\n')

    rows = list(
        read_rows(
            path.open("rb"),
            file_format="jsonl",
            gzipped=False,
            filename=path.name,
            limits=ReadLimits(max_row_bytes=1000),
        )
    )

    assert [row.entity for row in rows] == [{"id": 1}, None, {"id": 3}]
    assert rows[1].error == (
        "line 2 is more than 1,000 bytes, the limit for one row; it was not read"
    )
    # Only the start of the line is kept, to show what it was.
    assert 1000 <= len(rows[1].raw) <= 1024 and long_line.decode().startswith(rows[1].raw)


def test_an_unknown_format_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown file format"):
        read_rows(io.BytesIO(b""), file_format="xml", gzipped=False, filename="x.xml")
