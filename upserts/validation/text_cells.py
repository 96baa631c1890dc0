"""CSV cells typed by the schema, so the value checks see numbers, lists and objects."""

from collections.abc import Callable
from typing import Any

import orjson

from upserts.milvus.schema import CollectionSchema, FieldSchema
from upserts.readers.vector_json import parse_vector
from upserts.validation.values import (
    FLOAT_LIMITS,
    INT_RANGES,
    JSON_TEXT_TYPES,
    STRING_TYPES,
    VECTOR_LIMITS,
    UnparsedText,
    built_once_per_schema,
)


def _text_to_int(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        return text


def _text_to_float(text: str) -> Any:
    try:
        return float(text)
    except ValueError:
        return text


_BOOL_WORDS = {"true": True, "1": True, "false": False, "0": False}


def _text_to_bool(text: str) -> Any:
    return _BOOL_WORDS.get(text.strip().lower(), text)


def _text_to_json(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        return UnparsedText(text, f"not valid JSON ({exc.msg} at column {exc.colno})")


def _text_to_number_vector(text: str) -> Any:
    return parse_vector(text) or _text_to_json(text)


def _text_conversion(field: FieldSchema, *, number_vectors: bool) -> Callable[[str], Any] | None:
    data_type = field.data_type
    convert: Callable[[str], Any]
    if data_type in STRING_TYPES:
        return None
    if data_type in INT_RANGES:
        convert = _text_to_int
    elif data_type in FLOAT_LIMITS:
        convert = _text_to_float
    elif data_type == "Bool":
        convert = _text_to_bool
    elif data_type == "FloatVector" and number_vectors:
        convert = _text_to_number_vector
    elif data_type in JSON_TEXT_TYPES:
        convert = _text_to_json
    else:
        return None
    # A CSV cell cannot say null: an empty cell is null where the field allows it, and stays
    # empty (and is reported) where it does not.
    empty: Any = None if field.may_be_left_out else ""

    def convert_cell(text: str) -> Any:
        if not text or text.isspace():
            return empty
        return convert(text)

    return convert_cell


def json_text_fields(schema: CollectionSchema) -> frozenset[str]:
    """Fields whose CSV cells hold JSON text (vectors, JSON, Array)."""
    return frozenset(field.name for field in schema.fields if field.data_type in JSON_TEXT_TYPES)


def float_vector_fields(schema: CollectionSchema) -> frozenset[str]:
    """Fields that a typed column of floats fills (FloatVector and its 16-bit kinds)."""
    return frozenset(field.name for field in schema.fields if field.data_type in VECTOR_LIMITS)


def _conversions(schema: CollectionSchema, *, number_vectors: bool) -> dict[str, Any]:
    conversions = {}
    for field in schema.fields:
        convert = _text_conversion(field, number_vectors=number_vectors)
        if convert is not None:
            conversions[field.name] = convert
    return conversions


@built_once_per_schema
def _text_conversions(schema: CollectionSchema) -> dict[str, Callable[[str], Any]]:
    return _conversions(schema, number_vectors=False)


@built_once_per_schema
def _number_vector_conversions(schema: CollectionSchema) -> dict[str, Callable[[str], Any]]:
    return _conversions(schema, number_vectors=True)


def coerce_text_values(
    entity: dict[str, str], schema: CollectionSchema, *, number_vectors: bool = False
) -> dict[str, Any]:
    """A CSV row's text typed by the schema, ready for check_entity.

    Text that does not parse is kept as it is (JSON columns as UnparsedText, which says why),
    so check_entity names the field and the value instead of this function failing the row on
    its first problem. Columns the schema does not name stay text, as do VarChar columns.
    With ``number_vectors``, FloatVector cells that are flat lists of numbers become
    NumberVector (see readers.vector_json): what the pipeline checks and sends; the preview
    shows lists.
    """
    conversions = (
        _number_vector_conversions(schema) if number_vectors else _text_conversions(schema)
    )
    typed: dict[str, Any] = {}
    for name, text in entity.items():
        convert = conversions.get(name)
        typed[name] = convert(text) if convert is not None else text
    return typed
