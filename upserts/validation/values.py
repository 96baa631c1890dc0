"""The check of one value against its field's type.

The checks run on every row of multi-gigabyte files, so each field's check is built once per
schema and the common case, a valid value, costs a type test and a comparison or two.
"""

import math
import sys
from collections.abc import Callable, Iterable
from functools import lru_cache, wraps
from typing import Any, TypeVar

import orjson

from upserts.milvus.schema import CollectionSchema, FieldSchema
from upserts.readers import FLOAT32_MAX, NumberVector

Check = Callable[[Any], str | None]
Built = TypeVar("Built")

INT_RANGES = {
    "Int8": (-(2**7), 2**7 - 1),
    "Int16": (-(2**15), 2**15 - 1),
    "Int32": (-(2**31), 2**31 - 1),
    "Int64": (-(2**63), 2**63 - 1),
}
FLOAT_LIMITS = {"Float": FLOAT32_MAX, "Double": sys.float_info.max}
VECTOR_LIMITS = {
    "FloatVector": FLOAT32_MAX,
    "Float16Vector": 65504.0,
    "BFloat16Vector": 3.3895313892515355e38,
}
STRING_TYPES = frozenset({"VarChar", "String"})
# Columns a CSV file can only hold as JSON text.
JSON_TEXT_TYPES = frozenset(
    {
        "JSON",
        "Array",
        "FloatVector",
        "Float16Vector",
        "BFloat16Vector",
        "BinaryVector",
        "Int8Vector",
        "SparseFloatVector",
    }
)
_NUMBER_TYPES = frozenset({float, int})
_SHOWN_CHARACTERS = 40


class UnparsedText(str):
    """A CSV cell that could not be read as its field's type; it keeps the reason for the check.

    It is still the original text, so the failed row can be written back out unchanged.
    """

    reason: str

    def __new__(cls, text: str, reason: str) -> "UnparsedText":
        cell = super().__new__(cls, text)
        cell.reason = reason
        return cell


def _show(value: Any) -> str:
    """A value as it would look in the file (JSON), cut short: vectors are long."""
    if type(value) is float and not math.isfinite(value):
        return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")
    try:
        text = orjson.dumps(value).decode()
    except TypeError:
        text = repr(value)
    if len(text) > _SHOWN_CHARACTERS:
        return text[: _SHOWN_CHARACTERS - 3] + "..."
    return text


def _wrong_type(expected: str, value: Any) -> str:
    if value is None:
        return f"null, but the field is not nullable; it needs {expected}"
    if isinstance(value, UnparsedText):
        return f"expected {expected}, got {_show(str(value))}: {value.reason}"
    if isinstance(value, str) and not value.strip():
        return f"empty; it needs {expected}"
    if type(value) is bool:
        return f"expected {expected}, got {_show(value)} (a boolean)"
    return f"expected {expected}, got {_show(value)}"


def _int_check(type_name: str) -> Check:
    low, high = INT_RANGES[type_name]

    def check(value: Any) -> str | None:
        if type(value) is int:
            if low <= value <= high:
                return None
            return f"{value} is outside the {type_name} range, {low} to {high}"
        return _wrong_type("an integer", value)

    return check


def _number_problem(value: Any, type_name: str, limit: float) -> str | None:
    kind = type(value)
    if kind is not float and kind is not int:
        return _wrong_type("a number", value)
    if kind is float and not math.isfinite(value):
        return f"{_show(value)} is refused: Milvus takes finite numbers only"
    if -limit <= value <= limit:
        return None
    return f"{_show(value)} is beyond the {type_name} range"


def _float_check(type_name: str) -> Check:
    limit = FLOAT_LIMITS[type_name]

    def check(value: Any) -> str | None:
        kind = type(value)
        # NaN fails both comparisons, and infinity the second, so they take the slow path.
        if (kind is float or kind is int) and -limit <= value <= limit:
            return None
        return _number_problem(value, type_name, limit)

    return check


def _bool_check(value: Any) -> str | None:
    if type(value) is bool:
        return None
    return _wrong_type("true or false", value)


def _string_check(max_length: int | None) -> Check:
    # Milvus counts max_length in bytes of UTF-8, not characters: its docs define it as "the
    # maximum number of bytes", and Milvus 2.3.5 takes "éé" (4 bytes) into a VarChar(4) but
    # refuses "雪国雪" (3 characters, 9 bytes) with "the length (9) ... exceeds max length (4)".
    if max_length is None:

        def check_type(value: Any) -> str | None:
            return None if type(value) is str else _wrong_type("a string", value)

        return check_type
    # A character takes at most 4 bytes, so a short string is settled by len() alone.
    surely_fits = max_length // 4

    def check(value: Any) -> str | None:
        if type(value) is not str:
            return _wrong_type("a string", value)
        if len(value) <= surely_fits:
            return None
        # isascii() reads a flag CPython keeps on every string: no scan, no copy.
        size = len(value) if value.isascii() else len(value.encode("utf-8", "surrogatepass"))
        if size <= max_length:
            return None
        return (
            f"{size:,} bytes of UTF-8 text, more than its max_length of {max_length:,} "
            "(Milvus counts bytes, not characters)"
        )

    return check


def _float_vector_check(type_name: str, dim: int | None, *, may_hold_booleans: bool) -> Check:
    limit = VECTOR_LIMITS[type_name]
    numbers = _NUMBER_TYPES
    hypot = math.hypot

    def check(value: Any) -> str | None:
        # The common case in C: element types in one pass, then hypot, which is NaN or infinite
        # when any element is, and at least the largest element's size otherwise.
        if (
            type(value) is list
            and (dim is None or len(value) == dim)
            and set(map(type, value)) <= numbers
        ):
            try:
                if hypot(*value) <= limit:
                    return None
            except OverflowError:
                pass
        return _other_vector_problem(value)

    def check_without_booleans(value: Any) -> str | None:
        # With no true or false in the row, hypot alone settles the element types: it refuses
        # anything but numbers (TypeError), and the type scan above is the costliest step of
        # checking a row of a 768-d collection.
        if type(value) is list and (dim is None or len(value) == dim):
            try:
                if hypot(*value) <= limit:
                    return None
            except (TypeError, OverflowError):
                pass
        return _other_vector_problem(value)

    def _other_vector_problem(value: Any) -> str | None:
        if type(value) is NumberVector:
            # A typed column's numbers, with their peak worked out by the reader: NaN and
            # infinity fail the comparison.
            if (dim is None or value.size == dim) and value.peak <= limit:
                return None
            value = value.tolist()
        return _vector_problem(value, type_name, dim, limit)

    return check if may_hold_booleans else check_without_booleans


def _vector_problem(value: Any, type_name: str, dim: int | None, limit: float) -> str | None:
    expected = f"{dim} floats" if dim is not None else "floats"
    if not isinstance(value, list | tuple):
        return _wrong_type(f"a list of {expected}", value)
    if dim is not None and len(value) != dim:
        return f"expected {expected}, got {len(value)}"
    size = len(value)
    for index, element in enumerate(value, start=1):
        kind = type(element)
        if kind is not float and kind is not int:
            return f"value {index} of {size} is {_show(element)}, not a number"
        if kind is float and not math.isfinite(element):
            return f"value {index} of {size} is {_show(element)}: Milvus refuses NaN and infinity"
        if not -limit <= element <= limit:
            return f"value {index} of {size}, {_show(element)}, is beyond the {type_name} range"
    return None


def _int8_vector_check(dim: int | None) -> Check:
    # Milvus 2.6: dim integers from -128 to 127, as a JSON list (never base64).
    expected = f"{dim} integers from -128 to 127" if dim else "integers from -128 to 127"
    return _integer_vector_check(dim, -128, 127, expected)


def _binary_vector_check(dim: int | None) -> Check:
    # The REST API takes a binary vector as its bytes, dim / 8 integers from 0 to 255.
    size = dim // 8 if dim is not None else None
    expected = f"{size} integers from 0 to 255 ({dim} bits)" if size else "integers 0 to 255"
    return _integer_vector_check(size, 0, 255, expected)


def _integer_vector_check(size: int | None, low: int, high: int, expected: str) -> Check:
    """A list of ``size`` integers from ``low`` to ``high``; ``expected`` says so in words."""

    def check(value: Any) -> str | None:
        if type(value) is not list:
            return _wrong_type(f"a list of {expected}", value)
        if size is not None and len(value) != size:
            return f"expected {expected}, got {len(value)} values"
        for index, element in enumerate(value, start=1):
            if type(element) is not int or not low <= element <= high:
                return f"value {index} is {_show(element)}; expected {expected}"
        return None

    return check


def _sparse_vector_check(value: Any) -> str | None:
    # {index: value, ...}, where JSON makes the indexes strings, or {"indices": [...], "values":
    # [...]}.
    if type(value) is not dict:
        return _wrong_type("an object of index: value pairs", value)
    if set(value) == {"indices", "values"}:
        indices, values = value["indices"], value["values"]
        if type(indices) is not list or type(values) is not list or len(indices) != len(values):
            return "expected lists `indices` and `values` of the same length"
        pairs: Iterable[tuple[Any, Any]] = zip(indices, values, strict=True)
    else:
        pairs = value.items()
    for index, number in pairs:
        position = int(index) if isinstance(index, str) and index.isdigit() else index
        if type(position) is not int or not 0 <= position < 2**32:
            return f"index {_show(index)} is not an integer from 0 to 4294967295"
        problem = _number_problem(number, "Float", FLOAT32_MAX)
        if problem is not None:
            return f"at index {position}: {problem}"
    return None


def _json_check(value: Any) -> str | None:
    if isinstance(value, UnparsedText):
        return _wrong_type("JSON", value)
    return None


def _any_value(value: Any) -> str | None:
    return None


def _array_check(element_type: str | None, max_length: int | None) -> Check:
    # An Array of VarChar keeps its elements' max_length on the field itself.
    element_check = _scalar_check(element_type, max_length) if element_type else None

    def check(value: Any) -> str | None:
        if type(value) is not list:
            return _wrong_type("an array", value)
        if element_check is not None:
            for index, element in enumerate(value, start=1):
                problem = element_check(element)
                if problem is not None:
                    return f"value {index} of {len(value)}: {problem}"
        return None

    return check


def _scalar_check(data_type: str, max_length: int | None = None) -> Check | None:
    if data_type in INT_RANGES:
        return _int_check(data_type)
    if data_type in FLOAT_LIMITS:
        return _float_check(data_type)
    if data_type == "Bool":
        return _bool_check
    if data_type in STRING_TYPES:
        return _string_check(max_length)
    return None


def check_for(field: FieldSchema, *, may_hold_booleans: bool = True) -> Check:
    data_type = field.data_type
    check: Check
    if data_type in STRING_TYPES:
        check = _string_check(field.max_length)
    elif data_type in VECTOR_LIMITS:
        check = _float_vector_check(data_type, field.dim, may_hold_booleans=may_hold_booleans)
    elif data_type == "BinaryVector":
        check = _binary_vector_check(field.dim)
    elif data_type == "Int8Vector":
        check = _int8_vector_check(field.dim)
    elif data_type == "SparseFloatVector":
        check = _sparse_vector_check
    elif data_type == "JSON":
        check = _json_check
    elif data_type == "Array":
        check = _array_check(field.element_type, field.max_length)
    else:
        # Numbers and Bool; a type this console does not know yet is left to the cluster.
        check = _scalar_check(data_type) or _any_value
    if field.may_be_left_out:
        inner = check

        def check(value: Any) -> str | None:
            return None if value is None else inner(value)

    return check


def built_once_per_schema(
    build: Callable[[CollectionSchema], Built],
) -> Callable[[CollectionSchema], Built]:
    """Memoise by schema: by identity first, since hashing a schema costs more than a check.

    A file's rows all come with the same schema object, so the identity test answers nearly
    every call; equal schemas described anew fall back to an LRU cache.
    """
    cached = lru_cache(maxsize=16)(build)
    last: list[tuple[CollectionSchema, Built]] = []

    @wraps(build)
    def built(schema: CollectionSchema) -> Built:
        if last and last[0][0] is schema:
            return last[0][1]
        value = cached(schema)
        last[:] = [(schema, value)]
        return value

    return built
