"""Files written by the tools users already have load as they are: pymilvus' BulkWriter (the
layouts Milvus' bulk import reads) and pandas. Each file is made by the tool itself."""

import io
import json
from pathlib import Path

import pandas as pd
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
