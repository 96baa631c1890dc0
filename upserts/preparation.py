"""A row as read, checked against the collection and turned into the JSON text sent for it.

For a 768-d collection this is most of a worker's CPU per row, and where the cluster shares
the machine every microsecond of it is taken from the cluster. So each format takes the
cheapest road to the same request:

- JSON Lines: the line goes out as it was read, never encoded again. Its FloatVector lists
  come from the reader as float32 arrays (NumberVector, parsed by simdjson without a Python
  float per value) wherever they are flat lists of numbers, checked by their peak and size.
- CSV: vector, JSON and Array cells go out as the JSON text they hold (an orjson Fragment),
  once parsed for the check (FloatVector cells into arrays, as for JSON Lines); only the
  other cells are encoded.
- Parquet: float-list cells stay arrays (NumberVector), checked by their peak and size and
  written by orjson straight from the array.
- A JSON file (one object or an array): the entity is checked and encoded.

Over gRPC (``row_form="entity"``) nothing is encoded here: the checked entity goes to the
transport, which builds the request's columns from it (an array stays an array). A float
vector that still comes as a list (a JSON file, or a JSON Lines or CSV vector the array parser
left alone) becomes its float32 array as soon as it is checked, while its floats are still in
the CPU's cache: packed one row at a time it costs a third of what one conversion per batch
costs, and the row then holds 3 KB, not 24 KB, of Python floats until its batch is sent.

A refused row is kept with the numbers its file holds, not the float32 ones parsed for the
request: the failed-rows download is fixed and uploaded again.

Checking a vector without a type test per element needs to know that no true or false is in
it; the JSON text tells, for JSON Lines and CSV.
"""

import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from upserts.column_mapping import ColumnMapping
from upserts.milvus.schema import CollectionSchema
from upserts.milvus.transport import RowForm
from upserts.readers import NumberVector
from upserts.validation.entities import EntityValidator, RowProblem
from upserts.validation.file_shapes import RowUnpacker
from upserts.validation.text_cells import (
    coerce_text_values,
    float_vector_fields,
    json_text_fields,
)
from upserts.validation.values import VECTOR_LIMITS

_ENCODE_OPTIONS = orjson.OPT_SERIALIZE_NUMPY
_FLOAT32_MAX = VECTOR_LIMITS["FloatVector"]


@dataclass(slots=True)
class RefusedRow:
    """A row the checks refused, kept as checked (CSV text already typed) in the file's own
    column names, for the failed-rows download and a retry."""

    problems: list[RowProblem]
    entity: dict[str, Any]

    @property
    def reason(self) -> str:
        return "; ".join(problem.message for problem in self.problems)


class RowPreparer:
    """Checks and encodes the rows of one file for one collection."""

    def __init__(
        self,
        schema: CollectionSchema,
        *,
        file_format: str,
        mapping: ColumnMapping | None = None,
        row_form: RowForm = "json",
        partial_update: bool = False,
    ) -> None:
        self.validator = EntityValidator(schema, partial_update=partial_update)
        self._partial_update = partial_update
        # In a partial update, the fields the last row prepared gives, in the names sent.
        self.field_names: frozenset[str] | None = None
        self._as_entity = row_form == "entity"
        self._schema = schema
        self._primary = schema.primary_field.name
        self._from_text = file_format == "csv"
        self._json_text_fields = json_text_fields(schema) if self._from_text else frozenset()
        self.unpacker = RowUnpacker(schema, file_format=file_format, mapping=mapping)
        columns = self.unpacker.mapping.column_for
        parquet = file_format == "parquet"
        # What the Parquet and JSON Lines readers are told, in the file's own column names.
        # JSON Lines only for FloatVector: a 16-bit vector rounded through float32 could land
        # one step away from where rounding its decimal text lands.
        if parquet:
            self.number_vector_columns = frozenset(
                columns(name) for name in float_vector_fields(schema)
            )
        elif file_format == "jsonl":
            self.number_vector_columns = frozenset(
                columns(f.name) for f in schema.fields if f.data_type == "FloatVector"
            )
        else:
            self.number_vector_columns = frozenset()
        self.half_float_columns = {
            columns(f.name): f.data_type
            for f in schema.fields
            if parquet and f.data_type in ("Float16Vector", "BFloat16Vector")
        }
        self._packers = (
            tuple(
                (f.name, struct.Struct(f"<{f.dim}f"))
                for f in schema.fields
                if f.data_type == "FloatVector" and f.dim
            )
            if self._as_entity
            else ()
        )

    def checked(self, entity: dict[str, Any]) -> tuple[dict[str, Any], list[RowProblem]]:
        """The entity as it would be sent and what is wrong with it: what the preview shows."""
        unpacked, problems = self.unpacker.unpack(entity)
        if problems:
            return entity, problems
        if unpacked is not None:
            entity = unpacked
        if self._from_text:
            entity = coerce_text_values(entity, self._schema)
        return entity, self.validator.check(entity)

    def prepare(
        self, entity: dict[str, Any], encoded: bytes | None
    ) -> tuple[Any, Any] | RefusedRow:
        """(primary key, JSON text to send, or the checked entity), or what is wrong with the row.

        ``encoded`` is the entity's own JSON text when the file holds it as is (JSON Lines).
        """
        original, line = entity, encoded
        unpacked, problems = self.unpacker.unpack(entity)
        if problems:
            return RefusedRow(problems, _as_read(entity, line))
        if unpacked is not None:
            # The file's own text no longer says what is sent.
            entity, encoded = unpacked, None
        if self._partial_update:
            self.field_names = frozenset(entity)
        if self._from_text:
            return self._prepare_text(original, entity)
        if encoded is not None and not may_hold_booleans(encoded):
            packed = self._packed(entity, unchecked=True)
            problems = self.validator.check(packed, may_hold_booleans=False)
        else:
            packed = entity
            problems = self.validator.check(entity)
        if problems:
            return self._refused(problems, original, entity, line)
        if self._as_entity:
            return entity[self._primary], self._packed(packed)
        if encoded is None:
            encoded = orjson.dumps(entity, default=_array_values, option=_ENCODE_OPTIONS)
        return entity[self._primary], encoded

    def _prepare_text(
        self, original: dict[str, str], cells: dict[str, str]
    ) -> tuple[Any, Any] | RefusedRow:
        entity = coerce_text_values(cells, self._schema, number_vectors=True)
        json_cells = [
            (name, cells[name])
            for name in self._json_text_fields
            if name in cells and entity[name] is not None
        ]
        booleans = any(may_hold_booleans_text(text) for _, text in json_cells)
        packed = entity if booleans else self._packed(entity, unchecked=True)
        problems = self.validator.check(packed, may_hold_booleans=booleans)
        if problems:
            # Kept with the file's own numbers, not the float32 ones parsed for the request.
            as_read = coerce_text_values(cells, self._schema)
            return RefusedRow(problems, self.unpacker.restore(original, as_read))
        if self._as_entity:
            return entity[self._primary], self._packed(packed)
        # The cells parsed as JSON for the check, so their text is JSON fit to send as it is.
        outgoing = dict(entity)
        for name, text in json_cells:
            outgoing[name] = orjson.Fragment(text)
        return entity[self._primary], orjson.dumps(outgoing)

    def _refused(
        self,
        problems: list[RowProblem],
        original: dict[str, Any],
        checked: dict[str, Any],
        line: bytes | None,
    ) -> RefusedRow:
        """The refused row in the file's own column names and with the file's own numbers."""
        as_read = _as_read(original, line)
        if as_read is not original:
            unpacked, _ = self.unpacker.unpack(as_read)
            checked = as_read if unpacked is None else unpacked
        return RefusedRow(problems, self.unpacker.restore(as_read, checked))

    def _packed(self, entity: dict[str, Any], *, unchecked: bool = False) -> dict[str, Any]:
        """The entity with its float vector lists as float32 arrays (over gRPC only).

        An ``unchecked`` entity, from text that holds no true or false, is packed before its
        check, which then reads the array's size and peak instead of 768 floats: the pack
        itself refuses what is not a number, and a list it refuses, or whose peak reaches the
        float32 limit (where rounding could hide a value beyond it), is left for the check to
        report as usual.
        """
        for name, packer in self._packers:
            value = entity.get(name)
            if type(value) is not list:
                continue
            if unchecked:
                if len(value) != packer.size // 4:
                    continue
                try:
                    values = np.frombuffer(packer.pack(*value), dtype="<f4")
                except (struct.error, OverflowError):
                    continue
                peak = float(np.abs(values).max())
                if not peak < _FLOAT32_MAX:
                    continue
                vector = NumberVector(values, peak)
            else:
                vector = NumberVector(np.frombuffer(packer.pack(*value), dtype="<f4"))
            entity = {**entity, name: vector}
        return entity


def _as_read(entity: dict[str, Any], line: bytes | None) -> dict[str, Any]:
    """A JSON Lines row as orjson reads its text where the reader gave vectors as float32
    arrays: a refused row is kept, and downloaded for fixing, with the numbers the file holds."""
    if line is None or not any(type(value) is NumberVector for value in entity.values()):
        return entity
    return dict(orjson.loads(line))


def _array_values(value: Any) -> Any:
    """orjson's hook for what it cannot write itself: a NumberVector becomes its array."""
    if isinstance(value, NumberVector):
        return value.values
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def may_hold_booleans(text: bytes) -> bool:
    """False when JSON text has no true or false anywhere.

    A search for one byte runs at memory speed, several times faster than one for a word, so
    the words are only looked for in a text that has a "u" or an "f" at all.
    """
    return (b"u" in text and b"true" in text) or (b"f" in text and b"false" in text)


def may_hold_booleans_text(text: str) -> bool:
    """may_hold_booleans for decoded text."""
    return ("u" in text and "true" in text) or ("f" in text and "false" in text)
