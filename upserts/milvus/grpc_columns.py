"""Upsert requests of Milvus' gRPC protocol, built column by column from checked rows.

A float vector column goes into the request as the bytes of one numpy array per batch, parsed
into the message in place: never a Python float per value where the row holds an array (a
Parquet cell, or a list the row preparer packed as soon as it was checked), and one conversion
per batch where it holds lists.
"""

from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson
from pymilvus.grpc_gen import milvus_pb2, schema_pb2

from .errors import DataRejectedError, FatalTargetError
from .grpc_wire import (
    data_type_number,
    set_int8_vector,
    set_partial_update,
    set_valid_data,
    varint,
)
from .schema import CollectionSchema, FieldSchema

# Where the keys of a row beyond the schema go when the collection's dynamic field is on.
DYNAMIC_FIELD = "$meta"
_SCALAR_TYPES = {
    "Bool": ("bool_data", schema_pb2.BoolArray),
    "Int8": ("int_data", schema_pb2.IntArray),
    "Int16": ("int_data", schema_pb2.IntArray),
    "Int32": ("int_data", schema_pb2.IntArray),
    "Int64": ("long_data", schema_pb2.LongArray),
    "Float": ("float_data", schema_pb2.FloatArray),
    "Double": ("double_data", schema_pb2.DoubleArray),
    "VarChar": ("string_data", schema_pb2.StringArray),
    "String": ("string_data", schema_pb2.StringArray),
}
_VECTOR_TYPES = frozenset(
    {
        "FloatVector",
        "BinaryVector",
        "Float16Vector",
        "BFloat16Vector",
        "Int8Vector",
        "SparseFloatVector",
    }
)


def _vector_values(value: Any) -> Any:
    """A row's vector as a numpy array or list, whichever the reader gave."""
    values = getattr(value, "values", None)
    return value if values is None else values


def _row_major(values: list[Any], dtype: Any, dim: int) -> np.ndarray:
    """The rows' vectors end to end, one array for the column.

    A column of the wrong size is refused here (ValueError): Milvus 2.3.5 answers one with an
    error code of "unexpected error" (65535), which would stop the job rather than split the
    batch down to the row of the wrong dimension.
    """
    arrays = [_vector_values(value) for value in values]
    # From Python floats, numpy fills a float64 array about seven times faster than a float32
    # one (one C double per element, no rounding), and the cast after costs little.
    through = np.float64 if arrays and isinstance(arrays[0], list) else dtype
    try:
        flat = np.asarray(arrays, dtype=through).ravel().astype(dtype, copy=False)
    except ValueError:
        flat = np.concatenate([np.asarray(array, dtype=dtype).ravel() for array in arrays])
    if flat.size != len(values) * dim:
        if len(values) == 1:
            raise ValueError(f"the vector has {flat.size} values; the field's dimension is {dim}")
        raise ValueError(
            f"{len(values)} vectors hold {flat.size} values, not {len(values)} × {dim}"
        )
    return flat


def _bfloat16_bytes(values: list[Any], dim: int) -> bytes:
    bits = _row_major(values, np.float32, dim).view(np.uint32)
    # Round to nearest even, as numpy and torch do when they cast to bfloat16.
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype("<u2").tobytes()


def _int8_bytes(values: list[Any], dim: int) -> bytes:
    flat = _row_major(values, np.int64, dim)
    if flat.size and (flat.min() < -128 or flat.max() > 127):
        raise ValueError("an Int8Vector value is outside -128 to 127")
    return flat.astype(np.int8).tobytes()


def _sparse_row(value: Any) -> bytes:
    """A sparse vector ({index: value}) as Milvus stores it: (uint32 index, float32 value)
    pairs in index order."""
    pairs = sorted((int(index), float(number)) for index, number in dict(value).items())
    packed = np.empty(len(pairs), dtype=[("index", "<u4"), ("value", "<f4")])
    for position, (index, number) in enumerate(pairs):
        packed[position] = (index, number)
    return packed.tobytes()


def _json_default(value: Any) -> Any:
    values = getattr(value, "values", None)
    if values is not None:
        return values
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


_JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


class ColumnEncoder:
    """Builds upsert requests for one collection from checked entities, column by column."""

    def __init__(
        self,
        schema: CollectionSchema,
        *,
        database: str,
        collection: str,
        partition: str = "",
        partial_update: bool = False,
    ) -> None:
        unsupported = [
            f"`{field.name}` ({field.data_type})"
            for field in schema.fields
            if field.data_type not in _SCALAR_TYPES
            and field.data_type not in _VECTOR_TYPES
            and field.data_type not in ("JSON", "Array")
        ]
        if unsupported:
            raise FatalTargetError(
                f"The console cannot write {', '.join(unsupported)} over gRPC; choose the v2 "
                "REST API for this cluster"
            )
        self.schema = schema
        self.database = database
        self.collection = collection
        self.partition = partition
        self.partial_update = partial_update
        self._fields = tuple(schema.fields)
        self._names = frozenset(field.name for field in schema.fields)
        self._dynamic = schema.enable_dynamic_field
        # What every row's vectors add to a request, whatever their values.
        self._fixed_bytes = sum(_vector_bytes(field) for field in schema.fields)
        self._vector_names = frozenset(f.name for f in schema.fields if f.is_vector)

    def row_size(self, row: dict[str, Any]) -> int:
        size = self._fixed_bytes
        for name, value in row.items():
            if name in self._vector_names:
                continue
            if isinstance(value, str | bytes):
                size += len(value) + 2
            elif isinstance(value, int | float | bool) or value is None:
                size += 9
            else:
                try:
                    size += len(orjson.dumps(value, default=_json_default, option=_JSON_OPTIONS))
                except (TypeError, RecursionError):
                    # Refused when its request is built; the bisection reports the row.
                    size += 64
        return size

    def entity(self, row: dict[str, Any]) -> dict[str, Any]:
        return row

    def request_size(self, request: milvus_pb2.UpsertRequest) -> int:
        return int(request.ByteSize())

    def request(self, rows: Sequence[dict[str, Any]]) -> milvus_pb2.UpsertRequest:
        fields = self._fields
        if self.partial_update:
            # Only the fields the rows give (every row of the batch gives the same ones).
            fields = tuple(field for field in fields if rows and field.name in rows[0])
        columns = [self._column(field, rows) for field in fields]
        names = self._names
        # A partial update without keys beyond the schema leaves the dynamic field as stored.
        if self._dynamic and not (
            self.partial_update and rows and all(key in names for key in rows[0])
        ):
            columns.append(self._dynamic_column(rows))
        request = milvus_pb2.UpsertRequest(
            db_name=self.database,
            collection_name=self.collection,
            partition_name=self.partition,
            fields_data=columns,
            num_rows=len(rows),
        )
        if self.partial_update:
            set_partial_update(request)
        return request

    def _column(self, field: FieldSchema, rows: Sequence[dict[str, Any]]) -> schema_pb2.FieldData:
        name = field.name
        valid: list[bool] | None = None
        if field.may_be_left_out:
            # Milvus 2.5 and later take the values present and a flag per row; it stores null,
            # or the field's default, where the flag is off.
            present = [row.get(name) for row in rows]
            valid = [value is not None for value in present]
            values = [value for value in present if value is not None]
        else:
            try:
                values = [row[name] for row in rows]
            except KeyError:
                index = next(i for i, row in enumerate(rows) if name not in row)
                raise DataRejectedError(
                    f"row {index} of the batch has no field `{name}`",
                    cluster_message=f"the row has no field `{name}`",
                ) from None
        data = schema_pb2.FieldData(type=data_type_number(field.data_type), field_name=name)
        try:
            self._fill(data, field, values)
        except (TypeError, ValueError, OverflowError) as exc:
            raise DataRejectedError(
                f"The field `{name}` of the batch cannot be sent over gRPC: {exc}",
                cluster_message=f"field `{name}`: {exc}",
            ) from None
        if valid is not None:
            set_valid_data(data, valid)
        return data

    def _fill(self, data: schema_pb2.FieldData, field: FieldSchema, values: list[Any]) -> None:
        kind = field.data_type
        if kind in _SCALAR_TYPES:
            slot, array = _SCALAR_TYPES[kind]
            getattr(data.scalars, slot).CopyFrom(array(data=values))
        elif kind == "JSON":
            data.scalars.json_data.data.extend(
                orjson.dumps(value, default=_json_default, option=_JSON_OPTIONS) for value in values
            )
        elif kind == "Array":
            self._fill_array(data, field, values)
        elif kind == "FloatVector":
            data.vectors.dim = field.dim or 0
            raw = _row_major(values, "<f4", data.vectors.dim).tobytes()
            # Parsed in place from its wire form: no float passes through Python, and the
            # bytes are copied once.
            data.vectors.float_vector.MergeFromString(b"\x0a" + varint(len(raw)) + raw)
        elif kind == "BinaryVector":
            data.vectors.dim = field.dim or 0
            data.vectors.binary_vector = b"".join(
                bytes(value) if isinstance(value, bytes | bytearray) else bytes(list(value))
                for value in values
            )
        elif kind == "Float16Vector":
            data.vectors.dim = field.dim or 0
            data.vectors.float16_vector = _row_major(values, "<f2", data.vectors.dim).tobytes()
        elif kind == "BFloat16Vector":
            data.vectors.dim = field.dim or 0
            data.vectors.bfloat16_vector = _bfloat16_bytes(values, data.vectors.dim)
        elif kind == "Int8Vector":
            data.vectors.dim = field.dim or 0
            set_int8_vector(data.vectors, _int8_bytes(values, data.vectors.dim))
        elif kind == "SparseFloatVector":
            contents = [_sparse_row(value) for value in values]
            top = max((max(map(int, dict(v)), default=-1) for v in values), default=-1)
            data.vectors.sparse_float_vector.CopyFrom(
                schema_pb2.SparseFloatArray(contents=contents, dim=top + 1)
            )

    def _fill_array(
        self, data: schema_pb2.FieldData, field: FieldSchema, values: list[Any]
    ) -> None:
        element = field.element_type or ""
        if element not in _SCALAR_TYPES:
            raise ValueError(f"arrays of {element or 'unknown elements'} are not supported")
        slot, array = _SCALAR_TYPES[element]
        column = data.scalars.array_data
        column.element_type = schema_pb2.DataType.Value(element)
        for value in values:
            cell = schema_pb2.ScalarField()
            getattr(cell, slot).CopyFrom(array(data=list(value)))
            column.data.append(cell)

    def _dynamic_column(self, rows: Sequence[dict[str, Any]]) -> schema_pb2.FieldData:
        names = self._names
        data = schema_pb2.FieldData(
            type=schema_pb2.DataType.JSON, field_name=DYNAMIC_FIELD, is_dynamic=True
        )
        data.scalars.json_data.data.extend(
            orjson.dumps(
                {key: value for key, value in row.items() if key not in names},
                default=_json_default,
                option=_JSON_OPTIONS,
            )
            for row in rows
        )
        return data


def _vector_bytes(field: FieldSchema) -> int:
    dim = field.dim or 0
    return {
        "FloatVector": 4 * dim,
        "Float16Vector": 2 * dim,
        "BFloat16Vector": 2 * dim,
        "BinaryVector": dim // 8,
        "Int8Vector": dim,
    }.get(field.data_type, 0)
