"""One row checked against the collection: each value, the fields it lacks, the fields the
collection does not have."""

import enum
from dataclasses import dataclass
from typing import Any

from upserts.milvus.schema import CollectionSchema
from upserts.validation.values import Check, built_once_per_schema, check_for


class ProblemCode(enum.StrEnum):
    """What kind of problem a row has: stable, for code that sorts or counts them."""

    INVALID_VALUE = "invalid_value"  # a value its field's type does not take
    MISSING_FIELD = "missing_field"  # a field that is not nullable is left out
    UNKNOWN_FIELD = "unknown_field"  # the collection has no such field and no dynamic field
    GENERATED_KEY = "generated_key"  # the row gives the primary key Milvus assigns (autoID)


@dataclass(frozen=True, slots=True)
class RowProblem:
    """One thing wrong with a row: which field, what kind, and a sentence naming both."""

    field: str
    code: ProblemCode
    message: str

    def __str__(self) -> str:
        return self.message


class EntityValidator:
    """The checks of one collection, built once and applied to every row of a file."""

    def __init__(self, schema: CollectionSchema, *, partial_update: bool = False) -> None:
        """With ``partial_update`` a row gives its primary key and the fields it changes;
        the others keep their stored values, so none of them is missing."""
        self.schema = schema
        self._dynamic = schema.enable_dynamic_field
        self._checks: dict[str, Check] = {}
        self._checks_without_booleans: dict[str, Check] = {}
        self._labels: dict[str, str] = {}
        self._auto_id_key: str | None = None
        required: list[str] = []
        for field in schema.fields:
            label = f"field `{field.name}` (the primary key)" if field.is_primary else None
            if field.is_primary and field.auto_id:
                self._auto_id_key = field.name
                continue
            self._checks[field.name] = check_for(field)
            self._checks_without_booleans[field.name] = check_for(field, may_hold_booleans=False)
            self._labels[field.name] = label or f"field `{field.name}`"
            if field.is_primary or not (partial_update or field.may_be_left_out):
                required.append(field.name)
        self._required = tuple(required)

    def check(self, entity: dict[str, Any], *, may_hold_booleans: bool = True) -> list[RowProblem]:
        """Every problem of the entity, one per field at most; empty when it is fine.

        A caller that knows the entity holds no true or false (its JSON text has neither word)
        passes ``may_hold_booleans=False``, and vectors are checked without a type test per
        element; the result is the same.
        """
        problems: list[RowProblem] = []
        checks = self._checks if may_hold_booleans else self._checks_without_booleans
        for name, value in entity.items():
            check = checks.get(name)
            if check is not None:
                problem = check(value)
                if problem is not None:
                    message = f"{self._labels[name]}: {problem}"
                    problems.append(RowProblem(name, ProblemCode.INVALID_VALUE, message))
            elif name == self._auto_id_key:
                message = (
                    f"field `{name}` is the collection's autoID primary key: Milvus assigns it, "
                    "so leave it out of the file"
                )
                problems.append(RowProblem(name, ProblemCode.GENERATED_KEY, message))
            elif not self._dynamic:
                message = f"field `{name}` is not in the collection and it has no dynamic field"
                problems.append(RowProblem(name, ProblemCode.UNKNOWN_FIELD, message))
        for name in self._required:
            if name not in entity:
                message = f"{self._labels[name]} is missing"
                problems.append(RowProblem(name, ProblemCode.MISSING_FIELD, message))
        return problems


@built_once_per_schema
def _validator_for(schema: CollectionSchema) -> EntityValidator:
    return EntityValidator(schema)


def check_entity(entity: dict[str, Any], schema: CollectionSchema) -> list[RowProblem]:
    """Every problem of the entity against the schema; empty when Milvus should take it.

    The checks are built once per schema and reused; a loop over many rows saves a little more
    by holding an EntityValidator itself.
    """
    return _validator_for(schema).check(entity)
