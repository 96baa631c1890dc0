"""A collection's schema as the cluster describes it, in one shape for v1 and v2."""

import re
from dataclasses import dataclass, field
from typing import Any

_TYPE_WITH_PARAM = re.compile(r"^(?P<base>\w+)\((?P<param>\d+)\)$")


@dataclass(frozen=True)
class FieldSchema:
    name: str
    # Milvus' own type name without parameters: Int64, VarChar, FloatVector, JSON, Array, ...
    data_type: str
    is_primary: bool = False
    auto_id: bool = False
    # VarChar(max_length) or FloatVector(dim) / BinaryVector(dim): the number in brackets.
    max_length: int | None = None
    dim: int | None = None
    element_type: str | None = None
    nullable: bool = False

    @property
    def is_vector(self) -> bool:
        return self.data_type.endswith("Vector")


@dataclass(frozen=True)
class CollectionSchema:
    name: str
    fields: tuple[FieldSchema, ...]
    enable_dynamic_field: bool = False
    load_state: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def primary_field(self) -> FieldSchema:
        for item in self.fields:
            if item.is_primary:
                return item
        raise ValueError(f"collection {self.name!r} has no primary key field")

    @property
    def auto_id(self) -> bool:
        return self.primary_field.auto_id

    def field_named(self, name: str) -> FieldSchema | None:
        for item in self.fields:
            if item.name == name:
                return item
        return None


def parse_type(type_text: str) -> tuple[str, int | None]:
    """``"VarChar(64)"`` → ``("VarChar", 64)``; ``"Int64"`` → ``("Int64", None)``."""
    match = _TYPE_WITH_PARAM.match(type_text.strip())
    if match:
        return match.group("base"), int(match.group("param"))
    return type_text.strip(), None
