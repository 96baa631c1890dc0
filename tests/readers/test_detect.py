"""The format comes from the first bytes when they tell, and from the name when they do not."""

import gzip
import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from upserts.readers import DetectedFormat, FileFormatError, detect_format, format_from_name

JSONL = b'{"id": 1, "emb": [0.1, 0.2]}\n{"id": 2, "emb": [0.3, 0.4]}\n'
JSON_ARRAY = json.dumps([{"id": 1}, {"id": 2}], indent=2).encode()
JSON_OBJECT = json.dumps({"id": 1, "tags": ["a", "b"]}, indent=2).encode()
CSV = b"id,title\n1,Clock Meadow\n"


def parquet() -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.table({"id": [1, 2]}), sink)
    return sink.getvalue()


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("books.json", ("json", False)),
        ("books.JSONL", ("jsonl", False)),
        ("books.ndjson.gz", ("jsonl", True)),
        ("books.csv.gz", ("csv", True)),
        ("books.parquet", ("parquet", False)),
        ("books.tar.gz", (None, True)),
        ("books", (None, False)),
    ],
)
def test_the_name_claims_a_format_and_compression(filename, expected):
    assert format_from_name(filename) == expected


@pytest.mark.parametrize(
    ("filename", "head", "file_format"),
    [
        ("books.json", JSON_ARRAY, "json"),
        ("books.json", JSON_OBJECT, "json"),
        ("books.jsonl", JSONL, "jsonl"),
        ("books.csv", CSV, "csv"),
        ("books.parquet", parquet(), "parquet"),
    ],
)
def test_honest_names_and_content_agree(filename, head, file_format):
    assert detect_format(filename, head) == DetectedFormat(file_format, gzipped=False)


@pytest.mark.parametrize(
    ("filename", "head", "file_format"),
    [
        ("export.json", JSONL, "jsonl"),
        ("books.jsonl", JSON_ARRAY, "json"),
        ("books.jsonl", JSON_OBJECT, "json"),
        ("books.csv", JSONL, "jsonl"),
        ("books.json", CSV, "csv"),
        ("books.csv", parquet(), "parquet"),
        ("books.parquet", JSONL, "jsonl"),
        ("upload", JSONL, "jsonl"),
        ("upload.txt", CSV, "csv"),
        ("upload.bin", parquet(), "parquet"),
    ],
)
def test_content_wins_when_the_name_lies(filename, head, file_format):
    assert detect_format(filename, head).file_format == file_format


def test_gzip_is_told_by_its_magic_bytes_and_the_format_by_what_is_inside():
    head = gzip.compress(JSONL)[:1000]

    assert detect_format("data.json.gz", head) == DetectedFormat("jsonl", gzipped=True)
    assert detect_format("data.json", head) == DetectedFormat("jsonl", gzipped=True)


def test_a_gz_name_on_a_file_already_decompressed_reads_it_plain():
    assert detect_format("books.jsonl.gz", JSONL) == DetectedFormat("jsonl", gzipped=False)


def test_a_gzip_head_cut_short_still_tells_the_format():
    big = b"".join(json.dumps({"id": n, "emb": [n / 7] * 768}).encode() + b"\n" for n in range(100))

    assert detect_format("x.gz", gzip.compress(big)[:4096]).file_format == "jsonl"


def test_one_object_per_line_is_jsonl_even_with_a_vector_as_long_as_the_head():
    line = json.dumps({"id": 1, "emb": [0.123456789] * 768}).encode() + b"\n"

    assert detect_format("x.json", (line * 10)[:65536]).file_format == "jsonl"


def test_a_single_line_object_follows_the_name():
    one = b'{"id": 1}\n'

    assert detect_format("one.jsonl", one).file_format == "jsonl"
    assert detect_format("one.json", one).file_format == "json"


def test_a_broken_first_line_keeps_a_jsonl_file_jsonl():
    head = b'{"id": 1, "title": "unterminated}\n{"id": 2}\n'

    assert detect_format("books.jsonl", head).file_format == "jsonl"


def test_a_byte_order_mark_and_leading_blanks_are_looked_past():
    assert detect_format("x", b"\xef\xbb\xbf \n\t" + JSON_ARRAY).file_format == "json"


def test_a_json_scalar_in_a_json_file_is_left_to_the_reader_to_explain():
    assert detect_format("x.json", b'"hello"').file_format == "json"


def test_an_empty_file_is_refused():
    with pytest.raises(FileFormatError, match=r"^books\.csv: the file is empty"):
        detect_format("books.csv", b"")


def test_a_gzip_file_holding_nothing_is_refused():
    with pytest.raises(FileFormatError, match="is empty"):
        detect_format("books.csv.gz", gzip.compress(b""))


def test_a_blank_file_is_refused():
    with pytest.raises(FileFormatError, match="nothing but blank space"):
        detect_format("books.jsonl", b"\n \n\t\n")


def test_binary_garbage_is_refused_naming_the_byte():
    with pytest.raises(FileFormatError, match=r"byte 3 is binary data"):
        detect_format("books.csv", b"id,\x00\x01\x02 garbage")


def test_a_parquet_name_on_damaged_data_says_so():
    with pytest.raises(FileFormatError, match="Parquet files start with PAR1"):
        detect_format("books.parquet", bytes(range(256)))


def test_text_that_is_not_utf8_is_refused():
    with pytest.raises(FileFormatError, match=r"not UTF-8 \(byte 13\)"):
        detect_format("books.csv", "id,title\n1,Zoë\n".encode("latin-1"))


def test_a_head_cut_in_the_middle_of_a_character_is_fine():
    head = "id,title\n1,雪国\n".encode()[:-3]

    assert detect_format("books.csv", head).file_format == "csv"


def test_damaged_gzip_is_refused():
    head = gzip.compress(JSONL)
    damaged = head[:10] + b"\xff" * 20 + head[30:]

    with pytest.raises(FileFormatError, match="gzip file but its data is damaged"):
        detect_format("books.jsonl.gz", damaged)


@pytest.mark.parametrize(
    ("head", "advice"),
    [(b"PK\x03\x04rest", "ZIP archive"), (b"BZh91AY&SY", "bzip2"), (b"\xfd7zXZ\x00\x00", "xz")],
)
def test_other_compressions_are_named(head, advice):
    with pytest.raises(FileFormatError, match=advice):
        detect_format("books.jsonl", head)


def test_text_that_is_no_known_format_is_refused_when_the_name_does_not_help():
    with pytest.raises(FileFormatError, match=r"^notes\.txt: cannot tell the format"):
        detect_format("notes.txt", b"Dear reader\nthis is a letter\n")


def test_a_json_name_on_plain_text_is_refused():
    with pytest.raises(FileFormatError, match="named like JSON, but it starts with 'hello"):
        detect_format("books.json", b"hello world\n")
