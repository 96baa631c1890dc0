"""Reading costs the memory of a few rows, not of the file."""

import gzip
import json
import tracemalloc
from pathlib import Path

import pytest

from upserts.readers import read_rows

ROWS = 200_000


@pytest.fixture(scope="module")
def jsonl_lines() -> list[bytes]:
    vectors = [
        json.dumps([round((n * 7 + i) % 13 / 13 - 0.5, 6) for i in range(8)]) for n in range(50)
    ]
    return [
        b'{"book_id": %d, "title": "Book %d", "emb": %s}' % (n, n, vectors[n % 50].encode())
        for n in range(1, ROWS + 1)
    ]


@pytest.fixture(scope="module")
def books_files(tmp_path_factory, jsonl_lines) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("books")
    jsonl = b"\n".join(jsonl_lines) + b"\n"
    files = {
        "books.jsonl": jsonl,
        "books.jsonl.gz": gzip.compress(jsonl, compresslevel=1),
        "books.json": b"[\n" + b",\n".join(jsonl_lines) + b"\n]\n",
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return {name: folder / name for name in files}


def peak_memory_of_reading(path: Path, file_format: str, *, gzipped: bool) -> tuple[int, int]:
    """(rows read, peak bytes allocated while reading)."""
    count = 0
    last = None
    tracemalloc.start()
    try:
        with open(path, "rb") as file:
            for row in read_rows(
                file, file_format=file_format, gzipped=gzipped, filename=path.name
            ):
                count += 1
                last = row
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert last is not None and last.entity is not None
    assert last.entity["book_id"] == ROWS
    return count, peak


@pytest.mark.parametrize(
    ("name", "file_format"),
    [("books.jsonl", "jsonl"), ("books.jsonl.gz", "jsonl"), ("books.json", "json")],
)
def test_a_200k_row_file_is_read_with_memory_far_below_its_size(books_files, name, file_format):
    path = books_files["books.jsonl"]
    file_size = path.stat().st_size
    assert file_size > 20 * 1024 * 1024

    count, peak = peak_memory_of_reading(
        books_files[name], file_format, gzipped=name.endswith(".gz")
    )

    assert count == ROWS
    assert peak < file_size / 20, f"peak {peak:,} bytes for a {file_size:,}-byte file"
