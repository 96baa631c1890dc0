"""Each format's fast road to the request body gives the same verdict and the same values as
checking and encoding the plain entity."""

import csv
import io
import math

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from upserts.milvus.schema import CollectionSchema, FieldSchema
from upserts.preparation import RefusedRow, RowPreparer, may_hold_booleans
from upserts.readers import NumberVector, read_rows
from upserts.validation.entities import EntityValidator
from upserts.validation.text_cells import coerce_text_values

SCHEMA = CollectionSchema(
    name="books",
    fields=(
        FieldSchema("book_id", "Int64", is_primary=True),
        FieldSchema("title", "VarChar", max_length=64),
        FieldSchema("emb", "FloatVector", dim=4),
        FieldSchema("meta", "JSON", nullable=True),
    ),
)
FINE = [0.25, -1.5, 3, 0.0]


def book(**changes):
    entity = {"book_id": 7, "title": "Clock Meadow", "emb": list(FINE), "meta": {"shelf": 2}}
    entity.update(changes)
    return entity


# Rows the plain check refuses or takes, each as JSON Lines would hold it.
ENTITIES = [
    book(),
    book(title="true story, false start"),
    book(emb=[True, 0.5, 0.5, 0.5]),
    book(emb=[0.5, 0.5, 0.5, False]),
    book(emb=[1.0, 0.0, 1, 0]),
    book(emb=[0.5, "0.5", 0.5, 0.5]),
    book(emb=[0.5, None, 0.5, 0.5]),
    book(emb=[0.5, [0.5], 0.5, 0.5]),
    book(emb=[0.5, 1e39, 0.5, 0.5]),
    # Beyond the float32 limit, though float32 rounds it to the limit itself.
    book(emb=[0.5, 3.4028235e38, 0.5, 0.5]),
    book(emb=[0.5, -3.4028234663852886e38, 0.5, 0.5]),
    book(emb=[0.5, 2**64 - 1, 0.5, 0.5]),
    book(emb=[0.5, 0.5, 0.5]),
    book(emb={"0": 0.5}),
    book(meta=True, emb=[0.5, 0.5, 0.5, 0.5]),
    book(book_id=True),
    book(unknown="x"),
]


@pytest.mark.parametrize("file_format", ["json", "jsonl"])
def test_a_vector_given_as_json_text_goes_out_as_an_array(file_format):
    entity = book(emb="[0.5, 0.25, 0.5, 0.5]")

    prepared = RowPreparer(SCHEMA, file_format=file_format).prepare(entity, orjson.dumps(entity))

    assert not isinstance(prepared, RefusedRow)
    assert orjson.loads(prepared[1])["emb"] == [0.5, 0.25, 0.5, 0.5]


def test_a_vector_given_as_broken_json_text_says_so():
    prepared = RowPreparer(SCHEMA, file_format="jsonl").prepare(book(emb="[0.5, 0.25"), None)

    assert isinstance(prepared, RefusedRow)
    assert "field `emb`" in prepared.reason and "not valid JSON" in prepared.reason


def read_as_jsonl(entity: dict, preparer: RowPreparer) -> tuple[dict, bytes]:
    """The row as the pipeline's JSON Lines reader hands it to the preparer: its float
    vectors parsed into arrays where they are flat lists of numbers, and its text."""
    (row,) = read_rows(
        io.BytesIO(orjson.dumps(entity) + b"\n"),
        file_format="jsonl",
        gzipped=False,
        filename="books.jsonl",
        number_vector_columns=preparer.number_vector_columns,
    )
    assert row.entity is not None and row.encoded is not None
    return row.entity, row.encoded


@pytest.mark.parametrize("entity", ENTITIES, ids=range(len(ENTITIES)))
def test_json_lines_rows_get_the_plain_check_verdict_and_go_out_as_read(entity):
    expected = EntityValidator(SCHEMA).check(entity)
    preparer = RowPreparer(SCHEMA, file_format="jsonl")
    row, line = read_as_jsonl(entity, preparer)

    prepared = preparer.prepare(row, line)

    if expected:
        assert isinstance(prepared, RefusedRow) and prepared.problems == expected
    else:
        assert prepared == (entity["book_id"], line)


@pytest.mark.parametrize(
    ("text", "holds"),
    [
        (b'{"a":[1,2]}', False),
        (b'{"a":[true]}', True),
        (b'{"a":false}', True),
        (b'{"url":"u","fine":1}', False),
        (b'{"title":"truest"}', True),
        (b'{"a":1e-5}', False),
    ],
)
def test_booleans_are_looked_for_only_where_they_can_be(text, holds):
    assert may_hold_booleans(text) is holds


def csv_cells(entity: dict) -> dict[str, str]:
    """A row as the CSV reader gives it: every cell text, JSON columns as JSON text."""
    out = io.StringIO()
    csv.writer(out).writerow(
        orjson.dumps(value).decode() if not isinstance(value, str | int) else value
        for value in entity.values()
    )
    return dict(zip(entity, next(csv.reader([out.getvalue()])), strict=True))


@pytest.mark.parametrize("entity", ENTITIES, ids=range(len(ENTITIES)))
def test_csv_rows_get_the_plain_check_verdict(entity):
    cells = csv_cells(entity)
    typed = coerce_text_values(cells, SCHEMA)
    expected = EntityValidator(SCHEMA).check(typed)

    prepared = RowPreparer(SCHEMA, file_format="csv").prepare(cells, None)

    if expected:
        assert isinstance(prepared, RefusedRow)
        assert (prepared.problems, prepared.entity) == (expected, typed)
    else:
        key, body = prepared
        assert key == typed["book_id"] and orjson.loads(body) == typed


def test_csv_json_cells_are_sent_as_the_text_they_hold():
    cells = {
        "book_id": "7",
        "title": "Clock Meadow",
        "emb": "[0.250, -1.5e0, 3, 0.0]",
        "meta": ' {"shelf": 2} ',
    }

    key, body = RowPreparer(SCHEMA, file_format="csv").prepare(cells, None)

    assert key == 7
    assert body == (
        b'{"book_id":7,"title":"Clock Meadow","emb":[0.250, -1.5e0, 3, 0.0],"meta": {"shelf": 2} }'
    )
    assert orjson.loads(body)["emb"] == [0.25, -1.5, 3, 0.0]


def test_an_empty_csv_cell_of_a_nullable_json_field_is_sent_as_null():
    cells = {"book_id": "7", "title": "t", "emb": "[1, 2, 3, 4]", "meta": ""}

    _, body = RowPreparer(SCHEMA, file_format="csv").prepare(cells, None)

    assert orjson.loads(body)["meta"] is None


# --- Parquet: vectors as arrays -----------------------------------------------------------------


def parquet_rows(tmp_path, table: pa.Table, *, start_after: int = 0, batch_rows: int = 1024):
    path = tmp_path / "rows.parquet"
    pq.write_table(table, path, row_group_size=batch_rows)
    with path.open("rb") as file:
        return list(
            read_rows(
                file,
                file_format="parquet",
                gzipped=False,
                filename=path.name,
                start_after=start_after,
                number_vector_columns=frozenset({"emb"}),
            )
        )


@pytest.mark.parametrize(
    "vector_type",
    [pa.list_(pa.float32()), pa.large_list(pa.float64()), pa.list_(pa.float32(), 4)],
    ids=str,
)
@pytest.mark.parametrize("start_after", [0, 5, 1030])
def test_parquet_vectors_come_as_arrays_with_the_peak_of_each_row(
    tmp_path, vector_type, start_after
):
    fixed = pa.types.is_fixed_size_list(vector_type)
    vectors = []
    for n in range(1500):
        if not fixed and n % 13 == 4:
            vectors.append(None)
        elif not fixed and n % 17 == 6:
            vectors.append([])
        else:
            vectors.append([n / 8, -n / 4 - 0.5, 0.125, float(n % 3)])
    table = pa.table({"book_id": range(1500), "emb": pa.array(vectors, vector_type)})
    expected = table.slice(start_after).to_pylist()

    rows = parquet_rows(tmp_path, table, start_after=start_after)

    assert len(rows) == len(expected)
    for row, plain in zip(rows, expected, strict=True):
        value = row.entity["emb"]
        if plain["emb"] is None:
            assert value is None
            continue
        assert type(value) is NumberVector
        assert value.tolist() == plain["emb"]
        assert value.peak == max(map(abs, plain["emb"]), default=0.0)


def test_parquet_vectors_with_nulls_inside_stay_lists(tmp_path):
    table = pa.table({"book_id": [1, 2], "emb": pa.array([[0.5, None], [1.0, 2.0]])})

    assert [row.entity for row in parquet_rows(tmp_path, table)] == table.to_pylist()


def test_parquet_rows_get_the_plain_check_verdict_and_the_same_numbers(tmp_path):
    vectors = [
        [0.25, -1.5, 3.0, 0.0],
        [0.5, math.nan, 0.5, 0.5],
        [0.5, math.inf, 0.5, 0.5],
        [0.5, 0.5, 0.5],
        [3.4028234663852886e38, -1.0, 0.1, 1e-45],
    ]
    table = pa.table(
        {
            "book_id": pa.array(range(len(vectors)), pa.int64()),
            "title": ["t"] * len(vectors),
            "emb": pa.array(vectors, pa.list_(pa.float32())),
            "meta": [None] * len(vectors),
        }
    )
    preparer = RowPreparer(SCHEMA, file_format="parquet")
    plain = table.to_pylist()

    for row, entity in zip(parquet_rows(tmp_path, table), plain, strict=True):
        expected = EntityValidator(SCHEMA).check(entity)
        prepared = preparer.prepare(row.entity, row.encoded)
        if expected:
            assert isinstance(prepared, RefusedRow) and prepared.problems == expected
            continue
        key, body = prepared
        sent = orjson.loads(body)
        assert key == entity["book_id"]
        # The cluster reads the numbers back as float32: exactly the file's own.
        assert np.array_equal(np.array(sent["emb"], dtype=np.float32), entity["emb"])
        assert {**sent, "emb": None} == {**entity, "emb": None}


@pytest.mark.parametrize("file_format", ["jsonl", "csv"])
def test_over_grpc_a_checked_vector_list_goes_on_as_its_float32_array(file_format):
    entity = book(emb=[0.1, -1.5, 3, 1e-3])
    preparer = RowPreparer(SCHEMA, file_format=file_format, row_form="entity")
    row, line = csv_cells(entity), None
    if file_format == "jsonl":
        row, line = read_as_jsonl(entity, preparer)

    key, outgoing = preparer.prepare(row, line)

    assert key == 7
    vector = outgoing["emb"]
    assert type(vector) is NumberVector
    assert vector.values.dtype == np.dtype("<f4")
    assert vector.values.tolist() == np.array([0.1, -1.5, 3, 1e-3], dtype=np.float32).tolist()
    assert vector.peak == 3.0
    assert outgoing["title"] == "Clock Meadow"
    assert entity["emb"] == [0.1, -1.5, 3, 1e-3]  # the row as read is left as it was


def test_over_grpc_a_refused_vector_is_kept_as_read():
    entity = book(emb=[0.5, 1e39, 0.5, 0.5])
    preparer = RowPreparer(SCHEMA, file_format="jsonl", row_form="entity")

    refused = preparer.prepare(*read_as_jsonl(entity, preparer))

    assert isinstance(refused, RefusedRow)
    assert refused.entity["emb"] == [0.5, 1e39, 0.5, 0.5]


@pytest.mark.parametrize("row_form", ["json", "entity"])
@pytest.mark.parametrize("file_format", ["jsonl", "csv"])
def test_a_row_refused_for_another_field_keeps_the_files_own_numbers(file_format, row_form):
    # 0.1 is not a float32 number: parsed into the request's array it becomes
    # 0.10000000149011612, which the failed-rows download must not show.
    entity = book(emb=[0.1, 0.2, 0.3, 1e-7], book_id="seven")
    preparer = RowPreparer(SCHEMA, file_format=file_format, row_form=row_form)
    row, line = csv_cells(entity), None
    if file_format == "jsonl":
        row, line = read_as_jsonl(entity, preparer)
        assert type(row["emb"]) is NumberVector

    refused = preparer.prepare(row, line)

    assert isinstance(refused, RefusedRow)
    assert refused.entity["emb"] == [0.1, 0.2, 0.3, 1e-7]


@pytest.mark.parametrize("file_format", ["jsonl", "csv"])
@pytest.mark.parametrize("entity", ENTITIES, ids=range(len(ENTITIES)))
def test_over_grpc_rows_get_the_plain_check_verdict_and_their_vectors_as_float32(
    entity, file_format
):
    preparer = RowPreparer(SCHEMA, file_format=file_format, row_form="entity")
    if file_format == "csv":
        row, line = csv_cells(entity), None
        typed = coerce_text_values(row, SCHEMA)
    else:
        (row, line), typed = read_as_jsonl(entity, preparer), entity
    expected = EntityValidator(SCHEMA).check(typed)

    prepared = preparer.prepare(row, line)

    if expected:
        assert isinstance(prepared, RefusedRow)
        assert (prepared.problems, prepared.entity) == (expected, typed)
    else:
        key, outgoing = prepared
        assert key == typed["book_id"]
        assert outgoing["emb"].values.tolist() == np.float32(typed["emb"]).tolist()
        assert {k: v for k, v in outgoing.items() if k != "emb"} == {
            k: v for k, v in typed.items() if k != "emb"
        }
