"""Parquet, read one record batch at a time; row groups before a checkpoint are not even read."""

import re
from collections.abc import Iterator, Mapping
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa

from upserts.readers.base import (
    FileFormatError,
    NumberVector,
    SourceRow,
    no_rows_error,
)
from upserts.readers.limits import DEFAULT_LIMITS, ReadLimits
from upserts.readers.parquet_decoder import (
    DecodeFailed,
    bytes_per_row,
    decoded_batches,
    open_parquet,
)

# Rows converted to Python at a time: a 768-float vector column costs about 6 MB per batch.
BATCH_ROWS = 1024


def read_parquet(
    source: BinaryIO,
    *,
    filename: str,
    start_after: int = 0,
    batch_rows: int = BATCH_ROWS,
    number_vector_columns: frozenset[str] = frozenset(),
    half_float_columns: Mapping[str, str] | None = None,
    limits: ReadLimits = DEFAULT_LIMITS,
) -> Iterator[SourceRow]:
    """``source`` must be seekable: Parquet keeps its table of contents at the end of the file.

    Float-list cells of the columns in ``number_vector_columns`` come as NumberVector rather
    than lists, for a caller that checks and encodes them as arrays (the pipeline).
    ``half_float_columns`` names the columns that fill a Float16Vector or BFloat16Vector
    field (column: type): where such a column holds lists of bytes, as BulkWriter writes
    them, each cell comes as the floats those bytes encode.
    """
    try:
        # Thrift bounds keep a hostile footer from costing more than the file is worth.
        parquet = open_parquet(source)
    except (pa.ArrowException, OSError) as exc:
        raise FileFormatError(
            f"{filename}: not a readable Parquet file ({exc}). Export it again as Parquet, or "
            "upload it as JSON Lines or CSV."
        ) from None
    metadata = parquet.metadata
    if metadata.num_rows == 0:
        raise no_rows_error(filename, "the Parquet file has no rows")

    number = 0
    first_group = 0
    while (
        first_group < metadata.num_row_groups
        and number + metadata.row_group(first_group).num_rows <= start_after
    ):
        number += metadata.row_group(first_group).num_rows
        first_group += 1
    if first_group == metadata.num_row_groups:
        return
    skip = start_after - number

    _check_nesting(parquet.schema_arrow, filename, limits)
    casts, binary_columns = _json_conversions(parquet.schema_arrow)
    index_columns = pandas_index_columns(parquet.schema_arrow)
    range_index = pandas_range_index(parquet.schema_arrow)
    batches = decoded_batches(
        source, first_group=first_group, batch_rows=batch_rows, filename=filename, limits=limits
    )
    try:
        for batch, oversized in batches:
            if skip:
                if skip >= batch.num_rows:
                    skip -= batch.num_rows
                    number += batch.num_rows
                    continue
                number += skip
                batch = batch.slice(skip)
                skip = 0
            if oversized is not None:
                number += 1
                yield SourceRow(
                    number=number,
                    error=f"row {number:,} decodes to {oversized:,} bytes; it "
                    f"{limits.too_big()}, and was not read",
                )
                continue
            for index, target in casts.items():
                batch = batch.set_column(
                    index, batch.schema.field(index).name, batch.column(index).cast(target)
                )
            if index_columns:
                batch = batch.drop_columns(index_columns)
            if range_index is not None:
                name, first, step = range_index
                labels = first + step * (number + np.arange(batch.num_rows, dtype=np.int64))
                batch = batch.append_column(name, pa.array(labels))
            for name, vector_type in (half_float_columns or {}).items():
                index = batch.schema.get_field_index(name)
                if index >= 0:
                    decoded = half_floats(batch.column(index), vector_type)
                    if decoded is not None:
                        batch = batch.set_column(index, name, decoded)
            for entity in _entities(batch, number_vector_columns):
                number += 1
                for name in binary_columns:
                    value = entity[name]
                    if value is not None:
                        entity[name] = list(value)
                yield SourceRow(number=number, entity=entity)
    except DecodeFailed as exc:
        raise FileFormatError(_decode_failure(exc, filename, number, limits)) from None
    except (pa.ArrowException, OSError) as exc:
        raise FileFormatError(_damaged(filename, number, exc)) from None
    finally:
        batches.close()


def _decode_failure(exc: DecodeFailed, filename: str, number: int, limits: ReadLimits) -> str:
    if exc.kind == "file":
        return str(exc)
    if exc.kind == "memory":
        where = f"after row {number:,}" if number else "from its first row"
        return (
            f"{filename}: the Parquet data {where} needs more than "
            f"{limits.max_decode_bytes:,} bytes to decode, the limit for a batch of rows: a "
            f"cell there holds more than a row may ({limits.max_row_bytes:,} bytes). Write the "
            "file with smaller cells, or ask an administrator to raise the limit."
        )
    return _damaged(filename, number, exc)


def _damaged(filename: str, number: int, detail: Exception) -> str:
    return (
        f"{filename}: the Parquet data is damaged after row {number:,} ({detail}). Export the "
        "file again and upload it."
    )


def count_parquet_rows(source: BinaryIO, *, filename: str, limits: ReadLimits) -> int:
    """The rows of a Parquet file, once its footer shows that every row group can be read
    within the limits: what the upload checks without decoding a single row."""
    try:
        parquet = open_parquet(source)
        _check_nesting(parquet.schema_arrow, filename, limits)
        metadata = parquet.metadata
        for group in range(metadata.num_row_groups):
            row_group = metadata.row_group(group)
            if row_group.num_rows:
                bytes_per_row(row_group, group, filename, limits)
        return int(metadata.num_rows)
    except (pa.ArrowException, OSError) as exc:
        raise FileFormatError(
            f"{filename}: not a readable Parquet file ({exc}). Export it again as Parquet, or "
            "upload it as JSON Lines or CSV."
        ) from None


def _check_nesting(schema: pa.Schema, filename: str, limits: ReadLimits) -> None:
    for column in schema:
        if _type_depth(column.type) > limits.max_depth:
            raise FileFormatError(
                f"{filename}: column `{column.name}` {limits.too_deep()}. Flatten it, or "
                "upload the data as JSON Lines."
            )


def _type_depth(data_type: pa.DataType) -> int:
    children = [data_type.field(i).type for i in range(data_type.num_fields)]
    return 1 + max((_type_depth(child) for child in children), default=0)


def _entities(batch: pa.RecordBatch, number_vector_columns: frozenset[str]) -> list[dict[str, Any]]:
    names = batch.schema.names
    columns = []
    for name, column in zip(names, batch.columns, strict=True):
        vectors = _number_vectors(column) if name in number_vector_columns else None
        if vectors is None:
            vectors = _float_lists(column)
        columns.append(column.to_pylist() if vectors is None else vectors)
    return [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]


def _number_vectors(column: pa.Array) -> list[Any] | None:
    """A float-list column's rows as NumberVector (None for a null row), peaks worked out for
    the whole batch in a few numpy calls; None when the column is not a list of float32 /
    float64 without nulls inside."""
    layout = _float_list_layout(column)
    if layout is None:
        return None
    values, starts, ends = layout
    flat = values.to_numpy(zero_copy_only=True)
    magnitudes = np.abs(flat)
    peaks = np.zeros(len(starts), dtype=np.float64)
    filled = ends > starts
    if filled.any():
        # reduceat takes the largest magnitude from each index to the next, and from the last
        # one to the end of the array. Rows lie end to start, so stopping the array at the
        # last row's end gives each filled row its own values; an empty row would get its
        # neighbour's value instead, so it keeps the zero set above.
        used = magnitudes[: int(ends[-1])]
        peaks[filled] = np.maximum.reduceat(used, starts[filled])
    rows: list[Any] = [
        NumberVector(values=flat[start:end], peak=float(peak))
        for start, end, peak in zip(starts.tolist(), ends.tolist(), peaks.tolist(), strict=True)
    ]
    _blank_null_rows(column, rows)
    return rows


def _blank_null_rows(column: pa.Array, rows: list[Any]) -> None:
    if column.null_count:
        for row, valid in enumerate(column.is_valid().to_pylist()):
            if not valid:
                rows[row] = None


def _float_list_layout(column: pa.Array) -> tuple[pa.Array, Any, Any] | None:
    """The child array of float values and each row's start and end in it; None for any
    column that is not a list of float32 / float64."""
    list_type = column.type
    fixed = pa.types.is_fixed_size_list(list_type)
    if not (fixed or pa.types.is_list(list_type) or pa.types.is_large_list(list_type)):
        return None
    value_type = list_type.value_type
    if not (pa.types.is_float32(value_type) or pa.types.is_float64(value_type)):
        return None
    # .values is the whole child array, ignoring the list array's own slice offset; .offsets
    # of a variable-size list take that offset into account.
    values = column.values
    if fixed:
        size = list_type.list_size
        starts = (np.arange(len(column), dtype=np.int64) + column.offset) * size
        ends = starts + size
    else:
        offsets = column.offsets.to_numpy().astype(np.int64)
        starts, ends = offsets[:-1], offsets[1:]
    if values.null_count:
        return None
    return values, starts, ends


def _float_lists(column: pa.Array) -> list[Any] | None:
    """A vector column's rows as lists of floats, read from the Arrow buffer in one go.

    pyarrow's to_pylist makes a scalar object per float, which holds a 768-float column to some
    5 000 rows a second; one tolist of the whole buffer is about six times faster. None when
    the column is not a list of float32 / float64 without nulls inside.
    """
    layout = _float_list_layout(column)
    if layout is None:
        return None
    values, starts, ends = layout
    flat = values.to_numpy(zero_copy_only=True).tolist()
    rows: list[Any] = [
        flat[start:end] for start, end in zip(starts.tolist(), ends.tolist(), strict=True)
    ]
    _blank_null_rows(column, rows)
    return rows


def half_floats(column: pa.Array, vector_type: str) -> pa.Array | None:
    """A column of 16-bit vectors stored as their little-endian bytes (lists of uint8) as
    lists of float32; None when the column is not such bytes, for the checks to describe.

    Decoded for the whole batch in a few numpy calls. A bfloat16 is the upper half of a
    float32, so it needs no library of its own.
    """
    list_type = column.type
    fixed = pa.types.is_fixed_size_list(list_type)
    if not (fixed or pa.types.is_list(list_type) or pa.types.is_large_list(list_type)):
        return None
    if not pa.types.is_uint8(list_type.value_type):
        return None
    # flatten() keeps to the batch's slice and leaves out what null rows point at.
    flat = column.flatten()
    lengths = column.value_lengths().fill_null(0).to_numpy().astype(np.int64)
    if flat.null_count or (lengths % 2).any():
        return None
    raw = flat.to_numpy(zero_copy_only=False)
    if vector_type == "BFloat16Vector":
        values = (raw.view("<u2").astype(np.uint32) << 16).view(np.float32)
    else:
        values = raw.view("<f2").astype(np.float32)
    offsets = np.zeros(len(column) + 1, dtype=np.int64)
    np.cumsum(lengths // 2, out=offsets[1:])
    mask = column.is_null() if column.null_count else None
    return pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(values), mask=mask)


_PANDAS_INDEX_NAME = re.compile(r"__index_level_\d+__")


def pandas_index_columns(schema: pa.Schema) -> list[str]:
    """Columns that hold a pandas DataFrame's unnamed index, not entity fields.

    pandas lists its index columns in the file's ``pandas`` metadata; one it named itself
    (``__index_level_0__``, the row labels left by filtering a DataFrame) holds no field. An
    index the user named (``df.set_index("id")``) is data, so it stays a column, and a
    RangeIndex is stored in the metadata, not as a column.
    """
    try:
        metadata = schema.pandas_metadata or {}
    except (ValueError, TypeError):  # metadata that is not JSON: not pandas' own
        return []
    named = metadata.get("index_columns", []) if isinstance(metadata, dict) else []
    return [
        name
        for name in named
        if isinstance(name, str) and _PANDAS_INDEX_NAME.fullmatch(name) and name in schema.names
    ]


def pandas_range_index(schema: pa.Schema) -> tuple[str, int, int] | None:
    """(name, start, step) of a named, evenly spaced pandas index, which pandas keeps in its
    metadata alone: ``df.set_index("id")`` of ids 1, 2, 3 writes no ``id`` column at all."""
    try:
        metadata = schema.pandas_metadata or {}
    except (ValueError, TypeError):
        return None
    indexes = metadata.get("index_columns", []) if isinstance(metadata, dict) else []
    for index in indexes:
        if (
            isinstance(index, dict)
            and index.get("kind") == "range"
            and isinstance(index.get("name"), str)
            and index["name"] not in schema.names
            and all(type(index.get(key)) is int for key in ("start", "step"))
        ):
            return index["name"], index["start"], index["step"]
    return None


def _json_conversions(schema: pa.Schema) -> tuple[dict[int, pa.DataType], list[str]]:
    """Columns whose Python values JSON cannot hold, and what they become.

    Entities go to the cluster as JSON: decimals become floats, and binary values become lists
    of byte values, which is also how the REST API takes a BinaryVector. Dates and timestamps
    stay as they are; orjson writes them as RFC 3339 text.
    """
    casts: dict[int, pa.DataType] = {}
    binary_columns: list[str] = []
    for index, column in enumerate(schema):
        column_type = column.type
        if pa.types.is_dictionary(column_type):
            # Binary read as a dictionary (open_parquet) is still binary once decoded.
            column_type = column_type.value_type
        if pa.types.is_decimal(column_type):
            casts[index] = pa.float64()
        elif (
            pa.types.is_binary(column_type)
            or pa.types.is_large_binary(column_type)
            or pa.types.is_fixed_size_binary(column_type)
        ):
            binary_columns.append(column.name)
    return casts, binary_columns
