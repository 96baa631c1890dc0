"""Which field each column of a file fills, when the file's names are not the collection's.

A mapping names only the columns that differ: a column renamed to a field, or left out.
Every other column keeps its name, so it fills the field of that name or, in a collection
with a dynamic field, goes there. A job keeps its mapping (as JSON) for as long as it runs
and for its retries, and the failed rows keep the file's own names, so a person fixes a row
in the file they know and a retry maps it again.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from upserts.milvus.schema import CollectionSchema
from upserts.validation.entities import ProblemCode, RowProblem

MAX_COLUMNS = 1000
MAX_NAME_LENGTH = 255


class InvalidMapping(ValueError):
    """The mapping is not one the console can apply; the message says why."""


@dataclass(frozen=True)
class ColumnMapping:
    # File column -> the field it fills, or None to leave the column out.
    columns: Mapping[str, str | None] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Any) -> "ColumnMapping":
        """A mapping from what a job, a form or a request holds: {column: field or null}."""
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise InvalidMapping("A column mapping is an object of column: field (or null).")
        if len(data) > MAX_COLUMNS:
            raise InvalidMapping(f"A column mapping names at most {MAX_COLUMNS:,} columns.")
        columns: dict[str, str | None] = {}
        for column, target in data.items():
            if not isinstance(column, str) or not column or len(column) > MAX_NAME_LENGTH:
                raise InvalidMapping(f"Column {column!r} is not a column name.")
            if target is not None and (
                not isinstance(target, str) or not target or len(target) > MAX_NAME_LENGTH
            ):
                raise InvalidMapping(
                    f"Column `{column}` maps to {target!r}: give a field name, or null to "
                    "leave the column out."
                )
            if target != column:  # a column mapped to its own name needs no mapping
                columns[column] = target
        targets = [target for target in columns.values() if target is not None]
        repeated = sorted({target for target in targets if targets.count(target) > 1})
        if repeated:
            raise InvalidMapping(
                f"Several columns map to `{repeated[0]}`; a field takes one column."
            )
        return cls(columns)

    def to_json(self) -> dict[str, str | None]:
        return dict(self.columns)

    def __bool__(self) -> bool:
        return bool(self.columns)

    @property
    def renamed(self) -> dict[str, str]:
        return {column: target for column, target in self.columns.items() if target is not None}

    @property
    def ignored(self) -> list[str]:
        return [column for column, target in self.columns.items() if target is None]

    def problems_with(self, schema: CollectionSchema) -> list[str]:
        """Why the mapping cannot apply to the collection: it may only rename to its fields."""
        fields = {schema_field.name for schema_field in schema.fields}
        return [
            f"Column `{column}` maps to `{target}`, which is not a field of {schema.name}."
            for column, target in self.renamed.items()
            if target not in fields
        ]

    def column_for(self, field_name: str) -> str:
        """The file column that fills a field."""
        for column, target in self.columns.items():
            if target == field_name:
                return column
        return field_name

    def apply(self, entity: dict[str, Any]) -> tuple[dict[str, Any], list[RowProblem]]:
        """The row in the collection's names; a problem when two columns give one field."""
        mapped: dict[str, Any] = {}
        problems: list[RowProblem] = []
        for name, value in entity.items():
            target = self.columns.get(name, name)
            if target is None:
                continue
            if target in mapped:
                given_by = self.column_for(target)
                problems.append(
                    RowProblem(
                        target,
                        ProblemCode.INVALID_VALUE,
                        f"field `{target}` is given by column `{given_by}` (mapped to it) and "
                        f"by a column of its own name; map or leave out one of them",
                    )
                )
                continue
            mapped[target] = value
        return mapped, problems

    def restore(self, original: dict[str, Any], checked: dict[str, Any]) -> dict[str, Any]:
        """A checked row in the file's own names again, the columns left out included, for
        the failed-rows download and a retry that maps it anew."""
        columns = {target: column for column, target in self.renamed.items()}
        restored = {columns.get(name, name): value for name, value in checked.items()}
        for column in self.ignored:
            if column in original:
                restored[column] = original[column]
        return restored

    def described(self) -> list[str]:
        """Each rule in words, for the job page and the command's output."""
        return [
            f"{column} → {target}" if target is not None else f"{column}: left out"
            for column, target in self.columns.items()
        ]
