"""Parquet, read one record batch at a time; row groups before a checkpoint are not even read."""

import shutil
import tempfile
from collections.abc import Iterator
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from upserts.readers.base import (
    ByteStream,
    FileFormatError,
    NumberVector,
    SourceRow,
    no_rows_error,
)
from upserts.readers.limits import DEFAULT_LIMITS, ReadLimits

_THRIFT_STRING_BYTES = 16 * 1024 * 1024
_THRIFT_CONTAINER_ITEMS = 1_000_000

# Rows converted to Python at a time: a 768-float vector column costs about 6 MB per batch.
BATCH_ROWS = 1024


def read_parquet(
    source: BinaryIO,
    *,
    filename: str,
    start_after: int = 0,
    batch_rows: int = BATCH_ROWS,
    number_vector_columns: frozenset[str] = frozenset(),
    limits: ReadLimits = DEFAULT_LIMITS,
) -> Iterator[SourceRow]:
    """``source`` must be seekable: Parquet keeps its table of contents at the end of the file.

    Float-list cells of the columns in ``number_vector_columns`` come as NumberVector rather
    than lists, for a caller that checks and encodes them as arrays (the pipeline).
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
    try:
        for batch in _record_batches(parquet, first_group, batch_rows, filename, limits):
            if skip:
                if skip >= batch.num_rows:
                    skip -= batch.num_rows
                    number += batch.num_rows
                    continue
                number += skip
                batch = batch.slice(skip)
                skip = 0
            for index, target in casts.items():
                batch = batch.set_column(
                    index, batch.schema.field(index).name, batch.column(index).cast(target)
                )
            for piece, oversized in _within_budget(batch, limits):
                kept = piece
                if oversized:
                    keep = np.ones(piece.num_rows, dtype=bool)
                    keep[list(oversized)] = False
                    kept = piece.filter(pa.array(keep))
                entities = iter(_entities(kept, number_vector_columns))
                for index in range(piece.num_rows):
                    number += 1
                    if index in oversized:
                        yield SourceRow(
                            number=number,
                            error=f"row {number:,} decodes to {oversized[index]:,} bytes; it "
                            f"{limits.too_big()}, and was not read",
                        )
                        continue
                    entity = next(entities)
                    for name in binary_columns:
                        value = entity[name]
                        if value is not None:
                            entity[name] = list(value)
                    yield SourceRow(number=number, entity=entity)
    except (pa.ArrowException, OSError) as exc:
        raise FileFormatError(
            f"{filename}: the Parquet data is damaged after row {number:,} ({exc}). Export the "
            "file again and upload it."
        ) from None


def open_parquet(source: BinaryIO) -> pq.ParquetFile:
    """The file with its text columns left dictionary-encoded when they are stored that way.

    A dictionary holds each distinct value once: a thousand rows sharing one 1 MB string take
    1 MB in the file and in the footer's sizes, but a gigabyte once decoded. Kept as a
    dictionary, each row's decoded size is known before it is decoded (_within_budget). The
    Thrift bounds keep a hostile footer from costing more than the file is worth.
    """
    schema = pq.ParquetFile(
        source,
        thrift_string_size_limit=_THRIFT_STRING_BYTES,
        thrift_container_size_limit=_THRIFT_CONTAINER_ITEMS,
    ).schema_arrow
    source.seek(0)
    text_columns = [
        field.name
        for field in schema
        if pa.types.is_string(field.type)
        or pa.types.is_large_string(field.type)
        or pa.types.is_binary(field.type)
        or pa.types.is_large_binary(field.type)
    ]
    return pq.ParquetFile(
        source,
        read_dictionary=text_columns,
        thrift_string_size_limit=_THRIFT_STRING_BYTES,
        thrift_container_size_limit=_THRIFT_CONTAINER_ITEMS,
    )


def _within_budget(
    batch: pa.RecordBatch, limits: ReadLimits
) -> Iterator[tuple[pa.RecordBatch, dict[int, int]]]:
    """The batch in slices of dictionary-encoded text that decode to at most two rows' worth
    of the row limit (or ``max_batch_bytes``, if less), each with its rows that would decode
    to more than one row may (index in the slice → bytes).

    A slice is turned into Python objects at once, which take several times the bytes they
    decode to while the conversion runs; rows of plain numbers and vectors are not sliced.
    """
    sizes = _row_sizes(batch)
    if sizes is None:
        yield batch, {}
        return
    budget = min(limits.max_batch_bytes, 2 * limits.max_row_bytes)
    rows = batch.num_rows
    start = 0
    while start < rows:
        end = start + 1
        total = int(sizes[start])
        while end < rows and total + int(sizes[end]) <= budget:
            total += int(sizes[end])
            end += 1
        oversized = {
            index - start: int(sizes[index])
            for index in range(start, end)
            if sizes[index] > limits.max_row_bytes
        }
        yield batch.slice(start, end - start), oversized
        start = end


def _row_sizes(batch: pa.RecordBatch) -> Any:
    """Each row's bytes once its dictionary-encoded cells are decoded (numpy), or None when
    the batch has no such column and its own size is all it will take."""
    dictionary_columns = [column for column in batch.columns if pa.types.is_dictionary(column.type)]
    if not dictionary_columns or not batch.num_rows:
        return None
    other_bytes = sum(
        column.nbytes for column in batch.columns if not pa.types.is_dictionary(column.type)
    )
    sizes = np.full(batch.num_rows, other_bytes // batch.num_rows, dtype=np.int64)
    for column in dictionary_columns:
        sizes += _decoded_lengths(column)
    return sizes


def _decoded_lengths(column: pa.DictionaryArray) -> Any:
    """Each row's bytes of a dictionary-encoded text column, from the Arrow buffers.

    Read with numpy rather than pyarrow.compute: the first compute call of a process sets up
    its kernels, some 40 MB that a web process would carry from then on.
    """
    dictionary = column.dictionary
    wide = pa.types.is_large_string(dictionary.type) or pa.types.is_large_binary(dictionary.type)
    offsets = np.frombuffer(dictionary.buffers()[1], dtype=np.int64 if wide else np.int32)
    offsets = offsets[dictionary.offset : dictionary.offset + len(dictionary) + 1]
    lengths = np.diff(offsets).astype(np.int64)
    indices = column.indices
    # Not DataType.to_pandas_dtype(), which imports pandas: another 40 MB.
    signed = "int" if pa.types.is_signed_integer(indices.type) else "uint"
    index_type = np.dtype(f"{signed}{indices.type.bit_width}")
    positions = np.frombuffer(indices.buffers()[1], dtype=index_type)
    positions = positions[indices.offset : indices.offset + len(indices)].astype(np.int64)
    if indices.null_count:
        bits = np.unpackbits(np.frombuffer(indices.buffers()[0], dtype=np.uint8), bitorder="little")
        valid = bits[indices.offset : indices.offset + len(indices)].astype(bool)
        positions = np.where(valid, positions, 0)
        return np.where(valid, lengths[positions] if len(lengths) else 0, 0)
    return lengths[positions]


def _record_batches(
    parquet: pq.ParquetFile, first_group: int, batch_rows: int, filename: str, limits: ReadLimits
) -> Iterator[pa.RecordBatch]:
    """The row groups from ``first_group`` on, in record batches of at most about
    ``limits.max_batch_bytes`` once decoded.

    The footer says what each row group's columns hold once decompressed, and how many values
    they have; a row group whose rows average more than a row may hold is refused before any
    of it is decoded, and the others are read in as many rows at a time as the budget allows.
    """
    metadata = parquet.metadata
    for group in range(first_group, metadata.num_row_groups):
        row_group = metadata.row_group(group)
        if not row_group.num_rows:
            continue
        per_row = _bytes_per_row(row_group, group, filename, limits)
        rows = max(1, min(batch_rows, int(limits.max_batch_bytes // max(per_row, 1))))
        yield from parquet.iter_batches(batch_size=rows, row_groups=[group])


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
                _bytes_per_row(row_group, group, filename, limits)
        return int(metadata.num_rows)
    except (pa.ArrowException, OSError) as exc:
        raise FileFormatError(
            f"{filename}: not a readable Parquet file ({exc}). Export it again as Parquet, or "
            "upload it as JSON Lines or CSV."
        ) from None


def _bytes_per_row(
    row_group: pq.RowGroupMetaData, group: int, filename: str, limits: ReadLimits
) -> float:
    per_row = _decoded_bytes(row_group) / row_group.num_rows
    if per_row > limits.max_row_bytes:
        raise FileFormatError(
            f"{filename}: the rows of row group {group + 1:,} decode to about {per_row:,.0f} "
            f"bytes each, more than {limits.max_row_bytes:,}, the limit for one row. Write the "
            "file with smaller rows, or ask an administrator to raise the limit."
        )
    return per_row


def _decoded_bytes(row_group: pq.RowGroupMetaData) -> float:
    """What a row group's columns hold once decompressed: the larger of what the footer says
    and eight bytes a value, since run-length encoding packs a million values into a few."""
    total = 0.0
    for index in range(row_group.num_columns):
        column = row_group.column(index)
        total += max(column.total_uncompressed_size, column.num_values * 8)
    return total


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
        if pa.types.is_decimal(column_type):
            casts[index] = pa.float64()
        elif (
            pa.types.is_binary(column_type)
            or pa.types.is_large_binary(column_type)
            or pa.types.is_fixed_size_binary(column_type)
        ):
            binary_columns.append(column.name)
    return casts, binary_columns


def spool_to_temporary_file(stream: ByteStream) -> BinaryIO:
    """A seekable copy on disk, for Parquet that arrives gzip-compressed or as a stream.

    Memory stays at one copy buffer; the disk holds the decompressed file until it is closed.
    """
    spooled = tempfile.TemporaryFile()  # noqa: SIM115 - the caller closes it
    try:
        shutil.copyfileobj(stream, spooled, 1024 * 1024)
    except BaseException:
        spooled.close()
        raise
    spooled.seek(0)
    return spooled
