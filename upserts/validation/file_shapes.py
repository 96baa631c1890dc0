"""Rows as other tools write them, made into entities before they are checked.

Milvus' BulkWriter packs the fields a collection's schema does not name (its dynamic field) into
one ``$meta`` object, as JSON text in Parquet and CSV, as an object in JSON, and writes JSON
fields and sparse vectors in Parquet as JSON text; scripts often write a vector as JSON text
(``"[0.1, 0.2]"``) in JSON and JSON Lines as CSV must; and a file's columns may need the
person's column mapping. All of it is undone here, once per row, so the checks and the
request see the entity Milvus would.
"""

from typing import Any

import orjson

from upserts.column_mapping import ColumnMapping
from upserts.milvus.schema import CollectionSchema
from upserts.validation.entities import ProblemCode, RowProblem
from upserts.validation.values import JSON_TEXT_TYPES, UnparsedText

META = "$meta"
_VECTOR_TYPES = frozenset(kind for kind in JSON_TEXT_TYPES if kind.endswith("Vector"))
_SHOWN_NAMES = 5


class RowUnpacker:
    """The unpacking of one file for one collection, built once per file."""

    def __init__(
        self,
        schema: CollectionSchema,
        *,
        file_format: str,
        mapping: ColumnMapping | None = None,
    ) -> None:
        self._dynamic = schema.enable_dynamic_field
        self._fields = frozenset(field.name for field in schema.fields)
        self.mapping = mapping or ColumnMapping()
        # CSV types its own text cells. In the JSON formats a vector given as text is parsed;
        # in Parquet also a JSON field's text, which a JSON file would hold as a string.
        text_types = {
            "json": _VECTOR_TYPES,
            "jsonl": _VECTOR_TYPES,
            "parquet": _VECTOR_TYPES | {"JSON"},
        }.get(file_format, frozenset())
        self._text_fields = tuple(f.name for f in schema.fields if f.data_type in text_types)

    def unpack(self, entity: dict[str, Any]) -> tuple[dict[str, Any] | None, list[RowProblem]]:
        """(the entity unpacked, or ``None`` when nothing needed it; the problems found).

        A row with problems keeps its values as they were, for the failed-rows download.
        """
        row, changed = entity, False
        problems: list[RowProblem] = []
        if self.mapping:
            row, problems = self.mapping.apply(entity)
            if problems:
                return None, problems
            changed = True
        for name in self._text_fields:
            value = row.get(name)
            if type(value) is str:
                if not changed:
                    row, changed = dict(row), True
                row[name] = _parsed(value)
        if META in row:
            if not changed:
                row, changed = dict(row), True
            problems = self._unpack_meta(row, row.pop(META))
        return (row if changed and not problems else None), problems

    def restore(self, original: dict[str, Any], checked: dict[str, Any]) -> dict[str, Any]:
        """A row refused after unpacking, in the file's own column names."""
        return self.mapping.restore(original, checked) if self.mapping else checked

    def _unpack_meta(self, entity: dict[str, Any], packed: Any) -> list[RowProblem]:
        if isinstance(packed, str):
            if not packed.strip():
                return []
            try:
                packed = orjson.loads(packed)
            except orjson.JSONDecodeError as exc:
                return [_meta_problem(f"is not valid JSON ({exc.msg} at column {exc.colno})")]
        if packed is None:
            return []
        if type(packed) is not dict:
            return [_meta_problem(f"holds {type(packed).__name__}, not a JSON object of fields")]
        if not packed:
            return []
        if not self._dynamic:
            return [
                RowProblem(
                    META,
                    ProblemCode.UNKNOWN_FIELD,
                    f"field `{META}` holds dynamic fields ({_names(packed)}), but the collection "
                    "has no dynamic field: enable it on the collection, or leave them out",
                )
            ]
        clashes = [name for name in packed if name in entity or name in self._fields]
        if clashes:
            return [
                _meta_problem(
                    f"holds {_names(clashes)}, which the row or the collection has as a field "
                    "of its own; a field may be given once"
                )
            ]
        entity.update(packed)
        return []


def _parsed(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        return UnparsedText(text, f"not valid JSON ({exc.msg} at column {exc.colno})")


def _meta_problem(what: str) -> RowProblem:
    return RowProblem(META, ProblemCode.INVALID_VALUE, f"field `{META}` {what}")


def _names(names: Any) -> str:
    listed = [f"`{name}`" for name in list(names)[:_SHOWN_NAMES]]
    more = len(names) - len(listed)
    return ", ".join(listed) + (f" and {more} more" if more > 0 else "")
