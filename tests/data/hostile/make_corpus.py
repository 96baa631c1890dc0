"""Writes the hostile corpus beside this script (run it again after changing it).

Files an attacker or a careless tool would send: small on disk, and built to cost the console
as much as they can once read (nesting, rows that expand, floods of nothing, dictionary and
run-length bombs). Every file targets the collection of tests/faults/test_hostile_input.py
(HOSTILE_FIELDS: Int64 primary key `id`, VarChar(64) `title`, 4-d FloatVector `emb`, dynamic
field on); each file's expected outcome is listed in that test, next to its name.
"""

import gzip
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
MB = 1024 * 1024


def good(i: int) -> dict[str, Any]:
    return {"id": i, "title": f"Book {i}", "emb": [0.1 * i, 0.2, 0.3, 0.4]}


def good_text(i: int) -> bytes:
    return json.dumps(good(i)).encode()


def gz(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=9, mtime=0)


def deep(levels: int) -> bytes:
    return b'{"a":' * levels + b"1" + b"}" * levels


def row3(extra: bytes) -> bytes:
    """Row 3 of a file: a good row with one more field holding ``extra``."""
    return good_text(3)[:-1] + b', "extra": ' + extra + b"}"


def json_array(rows: list[bytes]) -> bytes:
    return b"[" + b",\n".join(rows) + b"]"


def jsonl(rows: list[bytes]) -> bytes:
    return b"\n".join(rows) + b"\n"


def around(bad: bytes, joiner: Any = jsonl) -> bytes:
    """Rows 1-2 and 4-5 good, row 3 ``bad``: the good ones must land."""
    return joiner([good_text(1), good_text(2), bad, good_text(4), good_text(5)])


def csv_around(bad_line: str) -> bytes:
    def line(i: int) -> str:
        return f'{i},Book {i},"[{0.1 * i}, 0.2, 0.3, 0.4]"'

    return (
        "\n".join(["id,title,emb", line(1), line(2), bad_line, line(4), line(5)]) + "\n"
    ).encode()


def parquet(table: pa.Table, **options: Any) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, **options)
    return sink.getvalue()


def deep_list_type(levels: int) -> pa.DataType:
    data_type: pa.DataType = pa.int64()
    for _ in range(levels):
        data_type = pa.list_(data_type)
    return data_type


def deep_list_value(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


def files() -> dict[str, bytes]:
    zeros_vector = b"[" + b"0," * (20 * MB) + b"0]"  # 40 MB of JSON
    return {
        # JSON: one array, elements streamed one at a time.
        "deep_element.json.gz": gz(around(row3(deep(15_000)), json_array)),
        "deep_only.json.gz": gz(b"[" + deep(15_000) + b"]"),
        "huge_element.json.gz": gz(around(row3(zeros_vector), json_array)),
        "giant_number.json.gz": gz(b"[" + good_text(1) + b", " + b"1" * (5 * MB) + b"]"),
        "giant_string.json.gz": gz(around(b'"' + b"x" * (10 * MB) + b'"', json_array)),
        "space_flood.json.gz": gz(
            b"[" + good_text(1) + b"," + b" " * (100 * MB) + good_text(2) + b"]"
        ),
        "big_integer.json": around(row3(str(2**70).encode()), json_array),
        "scalars.json.gz": gz(b"[" + b",".join([b"1"] * 20_000) + b"]"),
        # JSON Lines: one line a row.
        "deep_line.jsonl.gz": gz(around(row3(deep(15_000)))),
        "nested_300.jsonl": around(row3(json.dumps(deep_list_value(300)).encode())),
        "long_line.jsonl.gz": gz(around(row3(zeros_vector))),
        "no_newlines.jsonl.gz": gz(good_text(1) * 300_000),
        "nul_in_text.jsonl": around(json.dumps({**good(3), "title": "a\u0000" * 40}).encode()),
        "lone_surrogate.jsonl": around(b'{"id": 3, "title": "\\ud800", "emb": [1, 2, 3, 4]}'),
        "long_failures.jsonl.gz": gz(
            jsonl([b'{"id": %d, "title": "' % i + b"y" * (3 * MB) for i in range(1, 21)])
        ),
        # CSV: a header row, then one record a line.
        "long_cell.csv.gz": gz(csv_around('3,Book 3,"[' + "0," * (20 * MB) + '0]"')),
        "unclosed_quote.csv.gz": gz(csv_around('3,"Book 3' + "\nmore text" * (600_000) + "\n")),
        "deep_cell.csv": csv_around('3,Book 3,"' + "[" * 15_000 + "]" * 15_000 + '"'),
        "wide_header.csv.gz": gz(b"c," * (3 * MB) + b"c\n1\n"),
        "blank_flood.csv.gz": gz(b"id,title,emb\n" + b"\n" * (200 * MB) + b'1,a,"[1,2,3,4]"\n'),
        "wide_row.csv.gz": gz(csv_around("3,Book 3," + "," * 1_000_000)),
        # Parquet: typed columns, a footer that says what the row groups hold.
        "deep_list.parquet": parquet(
            pa.table(
                {
                    "id": [1],
                    "doc": pa.array([deep_list_value(100)], type=deep_list_type(100)),
                }
            )
        ),
        "huge_cell.parquet": parquet(
            pa.table({"id": [1, 2, 3], "blob": [b"", b"z" * (30 * MB), b""]}),
            compression="gzip",
        ),
        "run_length_bomb.parquet": parquet(
            pa.table(
                {
                    "id": [1],
                    "emb": pa.array(
                        [np.zeros(50_000_000, dtype=np.float32)], type=pa.list_(pa.float32())
                    ),
                }
            )
        ),
        "dictionary_bomb.parquet": parquet(
            pa.table(
                {
                    "id": list(range(1, 1001)),
                    "title": pa.DictionaryArray.from_arrays(
                        pa.array([0] * 999 + [1], pa.int32()),
                        pa.array(["x" * MB, "y" * (5 * MB)]),
                    ),
                }
            )
        ),
        # A footer cannot tell where a row group's values are: 100 million zeros (400 MB once
        # decoded, 40 KB in the file) in the second of 2 000 rows average 400 KB a row.
        "hidden_cell.parquet": parquet(
            pa.table(
                {
                    "id": list(range(1, 2001)),
                    "emb": pa.array(
                        [np.ones(4, dtype=np.float32)]
                        + [np.zeros(100_000_000, dtype=np.float32)]
                        + [np.ones(4, dtype=np.float32)] * 1998,
                        type=pa.list_(pa.float32()),
                    ),
                }
            )
        ),
        # gzip itself.
        "zeros.jsonl.gz": gz(b"\x00" * (200 * MB)),
        "gzip_in_gzip.jsonl.gz": gz(gz(jsonl([good_text(1), good_text(2)]))),
    }


def main() -> None:
    for old in HERE.iterdir():
        if old.suffix != ".py":
            old.unlink()
    for name, data in files().items():
        (HERE / name).write_bytes(data)
        print(f"{name}: {len(data):,} bytes")


if __name__ == "__main__":
    main()
