"""Fields of Milvus' gRPC protocol newer than the messages of pymilvus 2.4.15, read and written
by their field numbers.

pymilvus 2.4.15 is the newest client whose handshake the embedded Milvus 2.3.5 takes, and its
generated messages stop before Milvus 2.5: no ``nullable`` in a field's schema, no
``valid_data`` beside a column. Protocol buffers keep the fields a message does not know
("unknown fields") when they parse it and write them out again unchanged, so the few newer
fields the console needs are read from, and merged into, the wire form; a server that does not
know them ignores them, as it ignores any field it does not know. The numbers are those of
Milvus' own ``schema.proto`` and ``milvus.proto`` (and of pymilvus 3's messages).
"""

from collections.abc import Sequence

from google.protobuf.message import Message
from google.protobuf.unknown_fields import UnknownFieldSet
from pymilvus.grpc_gen import schema_pb2

# FieldSchema.nullable (bool), Milvus 2.5.
_FIELD_SCHEMA_NULLABLE = 15
# FieldData.valid_data (repeated bool): which rows of a column hold a value, Milvus 2.5.
_FIELD_DATA_VALID_DATA = 7
# UpsertRequest.partial_update (bool), Milvus 2.6.2.
_UPSERT_PARTIAL_UPDATE = 9
# VectorField.int8_vector (bytes) and DataType Int8Vector, Milvus 2.6.
_VECTOR_FIELD_INT8_VECTOR = 7
INT8_VECTOR_TYPE = 105
_VARINT = 0
_LENGTH_DELIMITED = 2


def varint(value: int) -> bytes:
    """A number as protocol buffers write it: seven bits a byte, low bits first."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _key(number: int, wire_type: int) -> bytes:
    return varint(number << 3 | wire_type)


def _flag(message: Message, name: str, number: int) -> bool:
    """A bool field of ``message``: its own, where the message knows it, else as read."""
    known = getattr(message, name, None)
    if known is not None:
        return bool(known)
    return any(entry.field_number == number and entry.data for entry in UnknownFieldSet(message))


def field_is_nullable(field_schema: Message) -> bool:
    """Whether a described field is nullable, from a schema message of any pymilvus."""
    return _flag(field_schema, "nullable", _FIELD_SCHEMA_NULLABLE)


def set_valid_data(field_data: Message, valid: Sequence[bool]) -> None:
    """Mark which rows of a column hold a value; Milvus stores null, or the field's default,
    for the others, whose values the column leaves out."""
    packed = bytes(1 if flag else 0 for flag in valid)
    field_data.MergeFromString(
        _key(_FIELD_DATA_VALID_DATA, _LENGTH_DELIMITED) + varint(len(packed)) + packed
    )


def valid_data_of(field_data: Message) -> list[bool]:
    """What ``set_valid_data`` wrote: for tests and for a fake server."""
    flags: list[bool] = []
    for entry in UnknownFieldSet(field_data):
        if entry.field_number == _FIELD_DATA_VALID_DATA:
            data = entry.data
            if isinstance(data, bytes):
                flags.extend(bool(byte) for byte in data)
            else:
                flags.append(bool(data))
    return flags


def data_type_name(number: int) -> str:
    """A DataType's name, Int8Vector included, which the enum of pymilvus 2.4.15 lacks."""
    if number == INT8_VECTOR_TYPE:
        return "Int8Vector"
    return str(schema_pb2.DataType.Name(number))


def data_type_number(name: str) -> int:
    if name == "Int8Vector":
        return INT8_VECTOR_TYPE
    return int(schema_pb2.DataType.Value(name))


def set_int8_vector(vectors: Message, raw: bytes) -> None:
    """An Int8Vector column: one signed byte per value, rows end to end."""
    vectors.MergeFromString(
        _key(_VECTOR_FIELD_INT8_VECTOR, _LENGTH_DELIMITED) + varint(len(raw)) + raw
    )


def set_partial_update(request: Message) -> None:
    """Have the upsert change only the fields its columns give (Milvus 2.6.2 and later)."""
    request.MergeFromString(_key(_UPSERT_PARTIAL_UPDATE, _VARINT) + b"\x01")


def is_partial_update(request: Message) -> bool:
    return _flag(request, "partial_update", _UPSERT_PARTIAL_UPDATE)
