"""Files written by the tools users already have load as they are: pymilvus' BulkWriter (the
layouts Milvus' bulk import reads) and pandas. Each file is made by the tool itself."""

import io
import json
from pathlib import Path

import ml_dtypes
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from upserts.milvus.schema import CollectionSchema, FieldSchema
from upserts.preparation import RefusedRow, RowPreparer
from upserts.readers import FileFormatError, detect_format, read_rows
from upserts.readers.detect import HEAD_BYTES

ROWS = [
    {"book_id": 1, "title": "Book 1", "emb": [0.5, 0.5, -0.25, 1.0]},
    {"book_id": 2, "title": "Book 2", "emb": [0.25, 0.5, -0.25, 1.0], "colour": "red"},
    {"book_id": 3, "title": "Book 3", "emb": [1.0, 0.5, -0.25, 1.0], "shelf": {"row": 4}},
]


def schema(*, dynamic: bool) -> CollectionSchema:
    return CollectionSchema(
        name="books",
        fields=(
            FieldSchema("book_id", "Int64", is_primary=True),
            FieldSchema("title", "VarChar", max_length=64),
            FieldSchema("emb", "FloatVector", dim=4),
        ),
        enable_dynamic_field=dynamic,
    )


def bulk_writer_file(tmp_path: Path, file_type: str) -> Path:
    from pymilvus import CollectionSchema as MilvusSchema
    from pymilvus import DataType
    from pymilvus import FieldSchema as MilvusField
    from pymilvus.bulk_writer import BulkFileType, LocalBulkWriter

    milvus_schema = MilvusSchema(
        [
            MilvusField("book_id", DataType.INT64, is_primary=True),
            MilvusField("title", DataType.VARCHAR, max_length=64),
            MilvusField("emb", DataType.FLOAT_VECTOR, dim=4),
        ],
        enable_dynamic_field=True,
    )
    writer = LocalBulkWriter(
        schema=milvus_schema,
        local_path=str(tmp_path / file_type),
        file_type=getattr(BulkFileType, file_type.upper()),
    )
    for row in ROWS:
        writer.append_row(dict(row))
    writer.commit()
    return Path(writer.batch_files[0][0])


def read_as_milvus_would(path: Path, collection: CollectionSchema) -> list:
    """Each row as the pipeline sends it (the JSON it posts) or refuses it (its reason)."""
    with path.open("rb") as source:
        detected = detect_format(path.name, source.read(HEAD_BYTES))
        source.seek(0)
        preparer = RowPreparer(collection, file_format=detected.file_format)
        outcomes = []
        for row in read_rows(
            source,
            file_format=detected.file_format,
            gzipped=detected.gzipped,
            filename=path.name,
            number_vector_columns=preparer.number_vector_columns,
            half_float_columns=preparer.half_float_columns,
        ):
            assert row.error is None, row.error
            prepared = preparer.prepare(row.entity, row.encoded)
            outcomes.append(
                prepared.reason if isinstance(prepared, RefusedRow) else json.loads(prepared[1])
            )
    return outcomes


@pytest.mark.parametrize("file_type", ["json", "parquet"])
def test_a_bulk_writer_file_loads_with_its_dynamic_fields_unpacked(tmp_path, file_type):
    path = bulk_writer_file(tmp_path, file_type)

    sent = read_as_milvus_would(path, schema(dynamic=True))

    assert sent == ROWS
    if file_type == "json":
        assert path.read_text().lstrip().startswith('{\n  "rows": [')


@pytest.mark.parametrize("file_type", ["json", "parquet"])
def test_dynamic_fields_for_a_collection_without_a_dynamic_field_fail_their_rows_alone(
    tmp_path, file_type
):
    path = bulk_writer_file(tmp_path, file_type)

    first, second, third = read_as_milvus_would(path, schema(dynamic=False))

    assert first == ROWS[0]
    assert second == (
        "field `$meta` holds dynamic fields (`colour`), but the collection has no dynamic "
        "field: enable it on the collection, or leave them out"
    )
    assert "(`shelf`)" in third


def test_a_dynamic_field_that_repeats_a_column_is_refused():
    preparer = RowPreparer(schema(dynamic=True), file_format="jsonl")

    refused = preparer.prepare({**ROWS[0], "$meta": '{"title": "Other"}'}, None)

    assert isinstance(refused, RefusedRow)
    assert refused.reason.startswith("field `$meta` holds `title`, which the row or the")
    assert [(p.field, p.code) for p in refused.problems] == [("$meta", "invalid_value")]


def test_a_filtered_pandas_frame_loads_without_its_index(tmp_path):
    frame = pd.DataFrame(
        {"book_id": [1, 2, 3, 4], "title": list("abcd"), "emb": [[0.5, 0.5, -0.25, 1.0]] * 4}
    )
    path = tmp_path / "filtered.parquet"
    # Labels 0, 2, 3 are not evenly spaced, so pandas stores them as a column.
    frame[frame.book_id != 2].to_parquet(path)
    assert "__index_level_0__" in pq.read_schema(path).names

    sent = read_as_milvus_would(path, schema(dynamic=False))

    assert [row["book_id"] for row in sent] == [1, 3, 4]
    assert all(set(row) == {"book_id", "emb", "title"} for row in sent)


def test_a_named_pandas_index_is_data_and_stays_a_field(tmp_path):
    # Ids not evenly spaced: pandas keeps an evenly spaced index in its metadata only.
    frame = pd.DataFrame({"book_id": [5, 9, 11], "title": list("abc"), "emb": [[0.5] * 4] * 3})
    path = tmp_path / "indexed.parquet"
    frame.set_index("book_id").to_parquet(path)

    sent = read_as_milvus_would(path, schema(dynamic=False))

    assert [row["book_id"] for row in sent] == [5, 9, 11]


def test_an_empty_rows_array_says_so():
    with pytest.raises(FileFormatError, match='the "rows" array is empty'):
        list(read_rows(io.BytesIO(b'{"rows": []}'), file_format="json", gzipped=False,
                       filename="empty.json"))  # fmt: skip


def test_an_entity_whose_first_field_is_an_array_called_rows_is_still_one_entity():
    text = b'{"rows": [1, 2], "book_id": 7}'

    rows = list(read_rows(io.BytesIO(text), file_format="json", gzipped=False, filename="e.json"))

    assert [row.entity for row in rows] == [{"rows": [1, 2], "book_id": 7}]


def every_vector_type_file(tmp_path: Path) -> Path:
    """A BulkWriter Parquet file with each field type that it encodes in a way of its own."""
    from pymilvus import CollectionSchema as MilvusSchema
    from pymilvus import DataType
    from pymilvus import FieldSchema as MilvusField
    from pymilvus.bulk_writer import BulkFileType, LocalBulkWriter

    milvus_schema = MilvusSchema(
        [
            MilvusField("book_id", DataType.INT64, is_primary=True),
            MilvusField("emb", DataType.FLOAT_VECTOR, dim=4),
            MilvusField("half", DataType.FLOAT16_VECTOR, dim=4),
            MilvusField("brain", DataType.BFLOAT16_VECTOR, dim=4),
            MilvusField("bits", DataType.BINARY_VECTOR, dim=16),
            MilvusField("sparse", DataType.SPARSE_FLOAT_VECTOR),
            MilvusField("info", DataType.JSON),
            MilvusField(
                "tags", DataType.ARRAY, element_type=DataType.VARCHAR, max_capacity=4, max_length=8
            ),
        ],
        enable_dynamic_field=True,
    )
    writer = LocalBulkWriter(
        schema=milvus_schema, local_path=str(tmp_path / "types"), file_type=BulkFileType.PARQUET
    )
    for row in EVERY_TYPE_ROWS:
        writer.append_row(
            {
                **row,
                "half": np.array(row["half"], dtype=np.float16),
                "brain": np.array(row["brain"], dtype=ml_dtypes.bfloat16),
                "bits": bytes(row["bits"]),
            }
        )
    writer.commit()
    return Path(writer.batch_files[0][0])


EVERY_TYPE_ROWS = [
    {
        "book_id": book_id,
        "emb": [0.5, -0.25, 1.0, float(book_id)],
        "half": [0.5, -0.25, 1.0, 1024.0 + book_id],
        "brain": [0.5, -0.25, 1.0, 2.0**20],
        "bits": [book_id, 255],
        "sparse": {3: 0.5, 17: 1.25},
        "info": {"shelf": book_id, "tags": ["old"]},
        "tags": ["a", "b"],
        "colour": "red",
    }
    for book_id in (1, 2, 3)
]


def every_type_schema() -> CollectionSchema:
    return CollectionSchema(
        name="types",
        fields=(
            FieldSchema("book_id", "Int64", is_primary=True),
            FieldSchema("emb", "FloatVector", dim=4),
            FieldSchema("half", "Float16Vector", dim=4),
            FieldSchema("brain", "BFloat16Vector", dim=4),
            FieldSchema("bits", "BinaryVector", dim=16),
            FieldSchema("sparse", "SparseFloatVector"),
            FieldSchema("info", "JSON"),
            FieldSchema("tags", "Array", element_type="VarChar", max_length=8),
        ),
        enable_dynamic_field=True,
    )


def test_each_bulk_writer_parquet_encoding_is_read_as_the_value_it_encodes(tmp_path):
    path = every_vector_type_file(tmp_path)
    # The layout the reader meets, as BulkWriter wrote it.
    types = {field.name: str(field.type) for field in pq.read_schema(path)}
    assert types["half"] == types["brain"] == types["bits"] == "list<element: uint8>"
    assert types["emb"] == "list<element: float>"
    assert types["sparse"] == types["info"] == types["$meta"] == "large_string"  # pandas 3

    sent = read_as_milvus_would(path, every_type_schema())

    expected = [{**row, "sparse": {"3": 0.5, "17": 1.25}} for row in EVERY_TYPE_ROWS]
    assert sent == expected


def test_16_bit_vector_bytes_that_are_not_whole_values_fail_their_row(tmp_path):
    path = tmp_path / "odd.parquet"
    pq.write_table(
        pa.table(
            {
                "book_id": pa.array([1], pa.int64()),
                "emb": pa.array([[0.5] * 4], pa.list_(pa.float32())),
                "half": pa.array([[0, 60, 0, 56, 0, 188, 0]], pa.list_(pa.uint8())),
                "brain": pa.array([None], pa.list_(pa.uint8())),
            }
        ),
        path,
    )
    collection = CollectionSchema(
        name="halves",
        fields=(
            FieldSchema("book_id", "Int64", is_primary=True),
            FieldSchema("emb", "FloatVector", dim=4),
            FieldSchema("half", "Float16Vector", dim=4),
            FieldSchema("brain", "BFloat16Vector", dim=4, nullable=True),
        ),
    )

    (refused,) = read_as_milvus_would(path, collection)

    assert refused == "field `half`: expected 4 floats, got 7"


def test_pandas_numpy_vectors_and_repeated_text_load_as_they_are(tmp_path):
    # numpy float64 vectors (list<double>) and text that Parquet stores dictionary-encoded.
    frame = pd.DataFrame(
        {
            "book_id": np.arange(1, 201, dtype=np.int64),
            "title": ["Same title"] * 200,
            "emb": [np.array([0.5, 0.5, -0.25, float(i)]) for i in range(200)],
        }
    )
    path = tmp_path / "numpy.parquet"
    frame.to_parquet(path)
    column = pq.ParquetFile(path).metadata.row_group(0).column(1)
    assert "RLE_DICTIONARY" in column.encodings
    assert str(pq.read_schema(path).field("emb").type) == "list<element: double>"

    sent = read_as_milvus_would(path, schema(dynamic=False))

    assert len(sent) == 200 and sent[199] == {
        "book_id": 200,
        "title": "Same title",
        "emb": [0.5, 0.5, -0.25, 199.0],
    }


def test_a_named_evenly_spaced_pandas_index_kept_only_in_metadata_is_rebuilt(tmp_path):
    frame = pd.DataFrame({"book_id": [10, 20, 30, 40], "title": list("abcd")})
    frame["emb"] = [[0.5] * 4] * 4
    path = tmp_path / "range.parquet"
    frame.set_index("book_id").to_parquet(path, row_group_size=3)
    assert "book_id" not in pq.read_schema(path).names  # only in the pandas metadata

    sent = read_as_milvus_would(path, schema(dynamic=False))
    with path.open("rb") as source:
        resumed = list(read_rows(source, file_format="parquet", gzipped=False,
                                 filename="range.parquet", start_after=2))  # fmt: skip

    assert [row["book_id"] for row in sent] == [10, 20, 30, 40]
    assert [(row.number, row.entity["book_id"]) for row in resumed] == [(3, 30), (4, 40)]
