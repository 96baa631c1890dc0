"""The limits on one row: checked on the text before it is parsed, and a row past them fails
alone while every other row reads exactly as it would without them."""

import io
import json
import random

import ijson
import pytest

from upserts.readers import FileFormatError, ReadLimits, read_rows
from upserts.readers.limits import JsonRowGuard, nesting_exceeds


class Trickle(io.RawIOBase):
    """Hands out a text in pieces of random length, so rows straddle every kind of boundary."""

    def __init__(self, data: bytes, seed: int) -> None:
        self._data = data
        self._position = 0
        self._random = random.Random(seed)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        step = min(len(buffer), self._random.choice([1, 2, 3, 7, 64, 4096]))
        piece = self._data[self._position : self._position + step]
        self._position += len(piece)
        buffer[: len(piece)] = piece
        return len(piece)


def random_value(rng: random.Random, depth: int = 0):
    kind = rng.choice(["int", "float", "text", "list", "object", "null", "bool"])
    if depth > 4 or kind in ("int", "float", "null", "bool"):
        return rng.choice([rng.randint(-9, 10**6), rng.random(), None, True, False])
    if kind == "text":
        return "".join(
            rng.choice(["a", '"', "\\", "[", "]", "{", "}", "é", "\n", " "])
            for _ in range(rng.randint(0, 12))
        )
    if kind == "list":
        return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {f"k{i}\\{i}": random_value(rng, depth + 1) for i in range(rng.randint(0, 4))}


@pytest.mark.parametrize("seed", range(40))
def test_the_row_guard_hands_the_parser_exactly_the_rows_it_would_read_without_it(seed):
    rng = random.Random(seed)
    rows = [random_value(rng) for _ in range(rng.randint(1, 30))]
    layout = rng.choice(["array", "array", "rows", "objects"])
    if layout == "array":
        text = json.dumps(rows, ensure_ascii=rng.random() < 0.5).encode()
    elif layout == "rows":
        text = json.dumps({"rows": rows}, ensure_ascii=rng.random() < 0.5).encode()
    else:
        rows = [{"row": row} for row in rows]
        text = b"\n".join(json.dumps(row).encode() for row in rows)
    prefix, depth = {"array": ("item", 1), "rows": ("rows.item", 2), "objects": ("", 0)}[layout]
    guard = JsonRowGuard(
        Trickle(text, seed), filename="f.json", limits=ReadLimits(), row_depth=depth
    )
    several = layout == "objects"

    guarded = list(ijson.items(guard, prefix, use_float=True, multiple_values=several))

    assert guarded == list(
        ijson.items(io.BytesIO(text), prefix, use_float=True, multiple_values=several)
    )
    assert not guard.dropped


def deep(levels: int) -> bytes:
    return b'{"a":' * levels + b"1" + b"}" * levels


@pytest.mark.parametrize("file_format", ["json", "jsonl"])
def test_a_row_nested_too_deep_fails_alone_without_being_parsed(file_format):
    rows = [b'{"id": 1}', b'{"id": 2, "doc": ' + deep(15_000) + b"}", b'{"id": 3}']
    text = b"[" + b",".join(rows) + b"]" if file_format == "json" else b"\n".join(rows)

    read = list(
        read_rows(io.BytesIO(text), file_format=file_format, gzipped=False, filename="deep")
    )

    assert [row.entity for row in read] == [{"id": 1}, None, {"id": 3}]
    assert "nested more than 64 levels deep, the limit for one row" in read[1].error
    assert read[1].raw.startswith('{"id": 2, "doc": {"a":')


@pytest.mark.parametrize("file_format", ["json", "jsonl", "csv"])
def test_a_row_over_the_byte_limit_fails_alone_and_is_kept_only_as_its_start(file_format):
    vector = "[" + ",".join(["0.5"] * 400_000) + "]"
    if file_format == "csv":
        text = f'id,emb\n1,"[1]"\n2,"{vector}"\n3,"[3]"\n'.encode()
    else:
        rows = [{"id": 1, "emb": [1]}, {"id": 2, "emb": json.loads(vector)}, {"id": 3, "emb": [3]}]
        lines = [json.dumps(row).encode() for row in rows]
        text = b"[" + b",".join(lines) + b"]" if file_format == "json" else b"\n".join(lines)

    read = list(
        read_rows(
            Trickle(text, 1) if file_format == "json" else io.BytesIO(text),
            file_format=file_format,
            gzipped=False,
            filename="big",
            limits=ReadLimits(max_row_bytes=1024 * 1024),
        )
    )

    assert [row.number for row in read] == [1, 2, 3]
    assert read[0].entity is not None and read[2].entity is not None
    assert read[1].entity is None
    assert "is more than 1,048,576 bytes, the limit for one row; it was not read" in read[1].error
    assert len(read[1].raw) <= 1024


def test_a_csv_line_nested_too_deep_fails_alone():
    doc = "[" * 100 + "]" * 100
    text = f'id,doc\n1,"[]"\n2,"{doc}"\n3,"[]"\n'.encode()

    read = list(read_rows(io.BytesIO(text), file_format="csv", gzipped=False, filename="d.csv"))

    assert [row.entity is None for row in read] == [False, True, False]
    assert "nested more than 64 levels deep" in read[1].error


def reference_depth(value) -> int:
    if isinstance(value, list):
        return 1 + max((reference_depth(item) for item in value), default=0)
    if isinstance(value, dict):
        return 1 + max((reference_depth(item) for item in value.values()), default=0)
    return 0


@pytest.mark.parametrize("padding", [0, 5000], ids=["short", "long"])
@pytest.mark.parametrize("seed", range(30))
def test_nesting_is_measured_as_the_parsed_value_would_have_it(seed, padding):
    rng = random.Random(seed)
    value = random_value(rng)
    for _ in range(rng.randint(0, 8)):
        value = rng.choice([[value], {"x]": value, "y": "[[["}])
    if padding:
        # A long text's brackets are counted another way.
        value = {"pad": "x" * padding, "value": value}
    text = json.dumps(value).encode()
    depth = reference_depth(value)

    assert nesting_exceeds(text, depth) is False
    assert nesting_exceeds(text, depth - 1) is (depth > 0)


def test_a_parquet_row_whose_dictionary_text_decodes_past_the_limit_fails_alone(tmp_path):
    """A dictionary holds a value once however many rows share it: each row's decoded size is
    worked out from the dictionary before any row is decoded."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "shared.parquet"
    titles = pa.DictionaryArray.from_arrays(
        pa.array([0, 0, 1, None, 0, 0], pa.int32()), pa.array(["short", "x" * 2_000_000])
    )
    pq.write_table(pa.table({"id": list(range(1, 7)), "title": titles}), path)

    read = list(
        read_rows(
            path.open("rb"),
            file_format="parquet",
            gzipped=False,
            filename=path.name,
            limits=ReadLimits(max_row_bytes=1_000_000),
        )
    )

    assert [row.number for row in read] == [1, 2, 3, 4, 5, 6]
    assert [row.entity["title"] if row.entity else None for row in read] == [
        "short",
        "short",
        None,
        None,
        "short",
        "short",
    ]
    assert "row 3 decodes to 2,000,0" in read[2].error
    assert read[3].entity == {"id": 4, "title": None}


def hidden_cell_parquet(path, values: int, rows: int = 2000):
    """A row group of small rows with one list cell of ``values`` zeros at row 1,001: the
    footer's average per row stays small, and run-length encoding keeps the file tiny."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    cells = [np.ones(4, dtype=np.float32)] * rows
    cells[1000] = np.zeros(values, dtype=np.float32)
    pq.write_table(
        pa.table({"id": list(range(1, rows + 1)), "emb": pa.array(cells, pa.list_(pa.float32()))}),
        path,
    )
    return path


def read_parquet_path(path, limits: ReadLimits) -> list:
    with path.open("rb") as file:
        return list(
            read_rows(file, file_format="parquet", gzipped=False, filename=path.name, limits=limits)
        )


def test_a_parquet_list_cell_past_the_row_limit_fails_alone(tmp_path):
    path = hidden_cell_parquet(tmp_path / "long.parquet", values=3_000_000)

    read = read_parquet_path(path, ReadLimits())

    assert [row.number for row in read] == list(range(1, 2001))
    assert read[1000].error.startswith("row 1,001 decodes to 12,")
    assert "the limit for one row" in read[1000].error
    assert all(row.entity is not None for row in read if row.number != 1001)


def test_a_parquet_cell_that_decodes_past_the_decoders_memory_stops_the_decoder_alone(tmp_path):
    """120 MB of zeros in a 12 KB file: the decoder process runs out of the address space it
    may map and says so; the reading process goes on to report it."""
    path = hidden_cell_parquet(tmp_path / "hidden.parquet", values=30_000_000)

    with pytest.raises(FileFormatError, match=r"needs more than 67,108,864 bytes to decode"):
        read_parquet_path(path, ReadLimits(max_decode_bytes=64 * 1024 * 1024))


def test_a_row_group_larger_than_the_decoders_memory_is_read_a_page_at_a_time(tmp_path):
    """92 MB of vectors in one row group, read by a decoder that may map 48 MB more than at
    its start: column chunks are streamed, not read whole."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = 30_000
    flat = np.random.default_rng(0).random(rows * 768, dtype=np.float32)
    vectors = pa.FixedSizeListArray.from_arrays(pa.array(flat), 768)
    path = tmp_path / "wide.parquet"
    pq.write_table(
        pa.table({"id": np.arange(rows), "emb": vectors}),
        path,
        row_group_size=rows,
        compression="none",
    )
    assert path.stat().st_size > 88 * 1024 * 1024

    read = read_parquet_path(path, ReadLimits(max_decode_bytes=48 * 1024 * 1024))

    assert len(read) == rows and read[-1].entity["id"] == rows - 1


def test_a_parquet_row_past_the_limit_fails_even_beside_a_row_that_fits_with_it(tmp_path):
    """Two rows that together stay within two rows' worth of the limit: the larger one is
    still over the limit for one row, and fails alone."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "pair.parquet"
    pq.write_table(pa.table({"id": [1, 2], "title": ["a" * 600_000, "b" * 1_200_000]}), path)

    read = read_parquet_path(path, ReadLimits(max_row_bytes=1_000_000))

    assert read[0].entity == {"id": 1, "title": "a" * 600_000}
    assert read[1].entity is None
    assert read[1].error.startswith("row 2 decodes to 1,200,0")
