"""Writes the corpus of bad entity files beside this script (run it again after changing it).

Every file targets the collection in tests/faults/test_bad_input.py (CORPUS_FIELDS): an Int64
primary key `id`, VarChar(16) `title`, Int8 `rank`, Double `price`, Bool `in_print` and a
4-d FloatVector `emb`, without a dynamic field. Each file's expected outcome is listed in that
test, next to its name.
"""

import gzip
import io
import json
import random
import zipfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent


def good(i: int, **changes: Any) -> dict[str, Any]:
    row = {
        "id": i,
        "title": f"Book {i}",
        "rank": i % 100,
        "price": i + 0.5,
        "in_print": i % 2 == 0,
        "emb": [0.1 * i, 0.2, 0.3, 0.4],
    }
    row.update(changes)
    return row


def gzip_fixed(data: bytes) -> bytes:
    """gzip with a fixed timestamp, so the corpus is the same bytes every time it is made."""
    return gzip.compress(data, mtime=0)


def jsonl(rows: list[Any]) -> bytes:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows).encode()


def with_bad_row(bad: Any, *, at: int = 3, rows: int = 5) -> bytes:
    """Good rows 1..rows with row ``at`` replaced: the good ones must still land."""
    return jsonl([bad if i == at else good(i) for i in range(1, rows + 1)])


def csv_text(lines: list[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode()


CSV_HEADER = "id,title,rank,price,in_print,emb"


def csv_row(i: int) -> str:
    return (
        f'{i},Book {i},{i % 100},{i + 0.5},{str(i % 2 == 0).lower()},"[{0.1 * i}, 0.2, 0.3, 0.4]"'
    )


def parquet(columns: dict[str, pa.Array]) -> bytes:
    out = io.BytesIO()
    pq.write_table(pa.table(columns), out)
    return out.getvalue()


def files() -> dict[str, bytes]:
    rng = random.Random(7)
    corpus: dict[str, bytes] = {}
    # Refused at upload: nothing stored, nothing started.
    corpus["empty.jsonl"] = b""
    corpus["binary_garbage.jsonl"] = bytes(rng.randrange(256) for _ in range(4096))
    corpus["image.png"] = b"\x89PNG\r\n\x1a\n" + bytes(rng.randrange(256) for _ in range(512))
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr(zipfile.ZipInfo("rows.jsonl", (2026, 1, 1, 0, 0, 0)), jsonl([good(1)]))
    corpus["archive.zip"] = zipped.getvalue()
    corpus["scalar.json"] = b"42\n"
    corpus["string.json"] = b'"just a string"\n'
    corpus["whitespace_only.jsonl"] = b"  \n\n \t\n"
    corpus["header_only.csv"] = csv_text([CSV_HEADER])
    corpus["utf16.jsonl"] = jsonl([good(1), good(2)]).decode().encode("utf-16")
    corpus["over_limit.jsonl"] = jsonl([good(i) for i in range(1, 200)])
    # The file breaks part-way: rows before the break land, then the job fails and says where.
    corpus["truncated_array.json"] = json.dumps([good(i) for i in range(1, 6)]).encode()[:-40]
    corpus["non_utf8.jsonl"] = jsonl([good(1), good(2)]) + b'{"id": 3, "title": "caf\xe9"}\n'
    corpus["gzip_bomb.jsonl.gz"] = gzip_fixed(jsonl([good(1)]) + b" " * (8 * 1024 * 1024))
    corpus["corrupt_gzip.jsonl.gz"] = gzip_fixed(jsonl([good(i) for i in range(1, 400)]))[:600]
    corpus["truncated.parquet"] = parquet({"id": pa.array([1, 2, 3], pa.int64())})[:-30]
    # Rows that fail alone, each with its row number and field; the good rows land.
    corpus["broken_line.jsonl"] = with_bad_row('{"id": 3, "title": "Book 3", ')
    corpus["array_line.jsonl"] = with_bad_row("[1, 2, 3]")
    corpus["array_of_arrays.json"] = json.dumps([good(1), [1, 2], good(3)]).encode()
    corpus["wrong_dimension.jsonl"] = with_bad_row(good(3, emb=[0.1, 0.2, 0.3]))
    corpus["nan_in_vector.jsonl"] = with_bad_row(
        '{"id": 3, "title": "t", "rank": 1, "price": 1.0, "in_print": true, "emb": [NaN, 0.2, 0.3, 0.4]}'
    )
    corpus["infinity_in_vector.jsonl"] = with_bad_row(
        '{"id": 3, "title": "t", "rank": 1, "price": 1.0, "in_print": true, "emb": [1e999, 0.2, 0.3, 0.4]}'
    )
    corpus["null_in_vector.jsonl"] = with_bad_row(good(3, emb=[None, 0.2, 0.3, 0.4]))
    corpus["empty_vector.jsonl"] = with_bad_row(good(3, emb=[]))
    # A vector given as JSON text is read like CSV's; text that is not JSON fails its row.
    corpus["vector_as_text.jsonl"] = with_bad_row(good(3, emb="[0.1, 0.2, 0.3"))
    corpus["string_in_int.jsonl"] = with_bad_row(good(3, rank="high"))
    corpus["string_in_double.jsonl"] = with_bad_row(good(3, price="cheap"))
    corpus["int64_overflow.jsonl"] = with_bad_row(good(3, id=2**63))
    corpus["int8_overflow.jsonl"] = with_bad_row(good(3, rank=300))
    corpus["varchar_too_long.jsonl"] = with_bad_row(good(3, title="A title far too long"))
    corpus["varchar_too_many_bytes.jsonl"] = with_bad_row(good(3, title="éééééééé漢"))
    corpus["missing_primary_key.jsonl"] = with_bad_row(
        {k: v for k, v in good(3).items() if k != "id"}
    )
    corpus["missing_field.jsonl"] = with_bad_row({k: v for k, v in good(3).items() if k != "price"})
    corpus["float_primary_key.jsonl"] = with_bad_row(good(3, id=3.5))
    corpus["bool_primary_key.jsonl"] = with_bad_row(good(3, id=True))
    corpus["string_primary_key.jsonl"] = with_bad_row(good(3, id="three"))
    corpus["bool_as_text.jsonl"] = with_bad_row(good(3, in_print="yes"))
    corpus["object_in_varchar.jsonl"] = with_bad_row(good(3, title={"en": "Three"}))
    corpus["unknown_field.jsonl"] = with_bad_row(good(3, colour="red"))
    corpus["short_row.csv"] = csv_text(
        [CSV_HEADER, csv_row(1), csv_row(2), "3,Book 3,3", csv_row(4)]
    )
    corpus["long_row.csv"] = csv_text(
        [CSV_HEADER, csv_row(1), csv_row(2), csv_row(3) + ",extra", csv_row(4)]
    )
    corpus["bad_vector_text.csv"] = csv_text(
        [CSV_HEADER, csv_row(1), csv_row(2), '3,Book 3,3,3.5,false,"[0.1, 0.2,"', csv_row(4)]
    )
    corpus["text_in_int.csv"] = csv_text(
        [
            CSV_HEADER,
            csv_row(1),
            csv_row(2),
            '3,Book 3,high,3.5,false,"[0.3, 0.2, 0.3, 0.4]"',
            csv_row(4),
        ]
    )
    corpus["wrong_column_types.parquet"] = parquet(
        {
            "id": pa.array(["1", "2"], pa.string()),
            "title": pa.array(["a", "b"], pa.string()),
            "rank": pa.array([1, 2], pa.int8()),
            "price": pa.array([1.0, 2.0], pa.float64()),
            "in_print": pa.array([True, False], pa.bool_()),
            "emb": pa.array([[0.1, 0.2, 0.3, 0.4]] * 2, pa.list_(pa.float32())),
        }
    )
    corpus["duplicate_primary_keys.jsonl"] = jsonl(
        [good(1), good(2, title="first"), good(2, title="last")]
    )
    # Awkward but fine: these land whole.
    corpus["utf8_bom.jsonl"] = b"\xef\xbb\xbf" + jsonl([good(1), good(2)])
    corpus["utf8_bom.csv"] = b"\xef\xbb\xbf" + csv_text([CSV_HEADER, csv_row(1), csv_row(2)])
    corpus["crlf.csv"] = "\r\n".join([CSV_HEADER, csv_row(1), csv_row(2), ""]).encode()
    corpus["jsonl_named.txt"] = jsonl([good(1), good(2)])
    corpus["plain_named.jsonl.gz"] = jsonl([good(1), good(2)])
    return corpus


def main() -> None:
    for name, content in files().items():
        (HERE / name).write_bytes(content)
    print(f"wrote {len(files())} files to {HERE}")


if __name__ == "__main__":
    main()
