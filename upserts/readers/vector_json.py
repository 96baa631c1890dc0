"""JSON text whose float vectors become arrays as they are parsed: no Python float per value.

orjson turns a 768-float vector into 768 Python floats, and packing those into an array costs
about as much again: together most of what a JSON Lines or CSV row costs a worker. simdjson
copies a homogeneous number array into a buffer of doubles in C, which numpy takes as it is.

simdjson is used only where it agrees with orjson: whatever it refuses (malformed text, an
integer beyond 64 bits, which orjson reads as a float) is parsed again by orjson, so the rows
and the error messages are orjson's. A vector that is not a flat list of numbers, or whose
peak reaches the float32 limit, stays a list, for the checks to report as they always have; so
does every vector of a row with a "[" anywhere but at the start of its arrays (in a string, a
nested array), since simdjson would flatten a nested array into the vector's numbers.
"""

import threading
from typing import Any

import numpy as np
import simdjson

from upserts.readers.base import FLOAT32_MAX, NumberVector

# What simdjson raises on text it will not parse (UnicodeDecodeError is a ValueError).
_REFUSED = (ValueError, RuntimeError, TypeError, KeyError, IndexError)
# An entity of more top-level keys is parsed by orjson: a lookup by key walks the keys.
_MOST_KEYS = 64

_parsers = threading.local()


def _parser() -> simdjson.Parser:
    """One parser per thread: a parser is reused for every document, never shared."""
    parser = getattr(_parsers, "parser", None)
    if parser is None:
        parser = _parsers.parser = simdjson.Parser()
    return parser


def parse_object(text: bytes, vector_keys: frozenset[str]) -> dict[str, Any] | None:
    """The JSON object in ``text``, the values of ``vector_keys`` as NumberVector where they are
    flat float32 vectors; None when the text is not an object simdjson parses (ask orjson)."""
    try:
        return _object(_parser(), text, vector_keys)
    except _REFUSED:
        return None


def parse_vector(text: str) -> NumberVector | None:
    """The JSON array of numbers in ``text`` as a NumberVector, or None (ask orjson)."""
    if text.count("[") != 1:
        return None
    try:
        return _vector(_parser(), text)
    except _REFUSED:
        return None


def _object(parser: simdjson.Parser, text: bytes, vector_keys: frozenset[str]) -> Any:
    # The document's proxies must be gone before the parser parses again: they live only in
    # this frame, which ends before the caller reads the next line.
    document = parser.parse(text)
    if type(document) is not simdjson.Object or len(document) > _MOST_KEYS:
        return None
    keys = list(document.keys())
    if len(set(keys)) != len(keys):
        # A value is looked up by its key, which finds the first of a repeated key; orjson
        # keeps the last, as Python's json does.
        return None
    # Each lookup walks the keys: a row with more than _MOST_KEYS went to orjson.
    values = [document[key] for key in keys]
    # When each array at the top holds the only "[" it starts with, none holds another array
    # (which simdjson would flatten into a vector's numbers).
    arrays = sum(type(value) is simdjson.Array for value in values)
    flat = arrays == text.count(b"[")
    entity: dict[str, Any] = {}
    for key, value in zip(keys, values, strict=True):
        if type(value) is simdjson.Array:
            vector = _number_vector(value) if flat and key in vector_keys else None
            entity[key] = vector or value.as_list()
        elif type(value) is simdjson.Object:
            entity[key] = value.as_dict()
        else:
            entity[key] = value
    return entity


def _vector(parser: simdjson.Parser, text: str) -> NumberVector | None:
    document = parser.parse(text)
    if type(document) is not simdjson.Array:
        return None
    return _number_vector(document)


def _number_vector(array: simdjson.Array) -> NumberVector | None:
    try:
        values = np.frombuffer(array.as_buffer(of_type="d"), dtype=np.float64)
    except TypeError:
        # Not every element is a number (true, null, a string): the check reports which.
        return None
    peak = float(np.abs(values).max()) if values.size else 0.0
    # Beyond float32 a value would become infinity: left as a list, the check names it.
    if not peak < FLOAT32_MAX:
        return None
    return NumberVector(values.astype(np.float32), peak)
