"""JSON Lines and CSV vectors parsed into float32 arrays give the rows orjson gives, always."""

import io
import threading

import numpy as np
import orjson
import pytest

from upserts.readers import NumberVector, SourceRow, read_rows
from upserts.readers.vector_json import parse_vector

VECTOR_KEYS = frozenset({"emb"})
FLOAT32_MAX = float(np.finfo(np.float32).max)


def read(text: bytes, vector_keys: frozenset[str] = VECTOR_KEYS) -> list[SourceRow]:
    return list(
        read_rows(
            io.BytesIO(text),
            file_format="jsonl",
            gzipped=False,
            filename="rows.jsonl",
            number_vector_columns=vector_keys,
        )
    )


def as_lists(entity: dict | None) -> dict | None:
    """The entity with its arrays as the lists of float32 numbers they hold."""
    if entity is None:
        return None
    return {k: v.values.tolist() if type(v) is NumberVector else v for k, v in entity.items()}


def float32(entity: dict | None, key: str = "emb") -> dict | None:
    """orjson's row with its vector as float32 numbers where it is a flat list of numbers
    within float32's range, as the reader is meant to give it."""
    if entity is None or type(entity.get(key)) is not list:
        return entity
    values = entity[key]
    if not all(type(value) in (int, float) for value in values):
        return entity
    if not max((abs(float(value)) for value in values), default=0.0) < FLOAT32_MAX:
        return entity
    return {**entity, key: np.array(values, dtype=np.float32).tolist()}


LINES = [
    b'{"id":1,"emb":[0.1,-0.25,3,1e-7],"title":"plain"}',
    b'{"id":2,"emb":[]}',
    b'{"id":3,"emb":[0.5,[0.5],0.5]}',
    b'{"id":4,"emb":[0.5,[],0.5,0.5]}',
    b'{"id":5,"emb":[true,0.5]}',
    b'{"id":6,"emb":[null,0.5]}',
    b'{"id":7,"emb":["0.5",0.5]}',
    b'{"id":8,"emb":[0.5,1e39]}',
    b'{"id":9,"emb":[0.5,3.4028235e38]}',
    b'{"id":10,"emb":[18446744073709551615,1]}',
    b'{"id":11,"emb":[18446744073709551616,1]}',
    b'{"id":12,"emb":[0.5,0.5],"emb":[0.25,0.25]}',
    b'{"id":13,"emb":[0.5],"title":"brackets [in] a string"}',
    b'{"id":14,"emb":{"0":0.5}}',
    b'{"id":15,"emb":"[0.5, 0.5]"}',
    b'{"id":16,"emb":[0.5],"meta":{"a":[1,{"b":[2]}]},"tags":["x","y"]}',
    b'{"id":-9223372036854775809,"emb":[0.5]}',
    b'{"id":17,"emb":[0.5],"big":123456789012345678901234567890}',
    b'{"id":18,"emb":[-0,-0.0,1E2,1e-400]}',
    '{"id":19,"emb":[0.5],"title":"雪国 \\u00e9 \\ud83d\\ude00"}'.encode(),
    b'{"id":20,"emb":[1e400]}',
    b'{"id":21,"emb":[NaN]}',
    b'{"id":22,"emb":[0.5,]}',
    b'{"id":23,"emb":[0.5]} trailing',
    b'{"id":24,"title":"\\ud800"}',
    b'[{"id":25,"emb":[0.5]}]',
    b'"a string"',
    b'{"id":26,' + b",".join(b'"k%d":%d' % (n, n) for n in range(100)) + b',"emb":[0.5]}',
    b'{"id":27,"emb":[' + b",".join(b"%d.%d" % (n, n) for n in range(768)) + b"]}",
]


@pytest.mark.parametrize("line", LINES, ids=range(len(LINES)))
def test_a_line_reads_as_orjson_reads_it_with_flat_vectors_as_float32_arrays(line):
    (plain,) = read(line + b"\n", frozenset())

    (row,) = read(line + b"\n")

    assert (row.error, row.raw, row.encoded, row.position_after) == (
        plain.error,
        plain.raw,
        plain.encoded,
        plain.position_after,
    )
    assert as_lists(row.entity) == float32(plain.entity)


def test_only_a_flat_list_of_numbers_within_float32_becomes_an_array():
    rows = read(b"\n".join(LINES[:10]) + b"\n")

    kinds = [type(row.entity["emb"]).__name__ for row in rows if row.entity]
    assert kinds == [
        "NumberVector",  # a vector
        "NumberVector",  # an empty one (the check says it has no values)
        "list",  # a nested array: as_buffer would flatten it into 3 numbers
        "list",  # an empty array inside
        "list",  # a boolean
        "list",  # a null
        "list",  # a string
        "list",  # beyond float32
        "list",  # rounds to float32's limit: the check must see the value itself
        "NumberVector",
    ]
    vector = rows[0].entity["emb"]
    assert vector.values.dtype == np.float32 and vector.peak == 3.0


def test_vectors_of_a_row_with_a_bracket_elsewhere_stay_lists():
    (row,) = read(LINES[12] + b"\n")

    assert row.entity == {"id": 13, "emb": [0.5], "title": "brackets [in] a string"}


def test_rows_from_many_threads_keep_their_own_numbers():
    lines = [
        orjson.dumps({"id": n, "emb": [float(n)] * 64}, option=orjson.OPT_SERIALIZE_NUMPY)
        for n in range(300)
    ]
    text = b"\n".join(lines) + b"\n"
    results: list[list[SourceRow]] = []

    def read_all() -> None:
        results.append(read(text))

    threads = [threading.Thread(target=read_all) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(results) == 4
    for rows in results:
        assert [row.entity["id"] for row in rows] == list(range(300))
        assert all(row.entity["emb"].values.tolist() == [row.number - 1.0] * 64 for row in rows)


@pytest.mark.parametrize(
    ("text", "vector"),
    [
        ("[0.1, -2, 1e-7]", [0.1, -2.0, 1e-7]),
        (" [] ", []),
        ("[0.5, [0.5]]", None),
        ("[0.5, true]", None),
        ("[1e39]", None),
        ("[0.5,", None),
        ("0.5", None),
        ('{"0": 0.5}', None),
    ],
)
def test_a_csv_cell_becomes_an_array_only_when_it_is_a_flat_list_of_numbers(text, vector):
    parsed = parse_vector(text)

    if vector is None:
        assert parsed is None
    else:
        assert parsed is not None
        assert parsed.values.tolist() == np.array(vector, dtype=np.float32).tolist()
