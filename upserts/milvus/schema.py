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
    # What Milvus stores when a row leaves the field out or sends null (2.5 and later).
    has_default: bool = False
    default_value: Any = None

    @property
    def is_vector(self) -> bool:
        return self.data_type.endswith("Vector")

    @property
    def may_be_left_out(self) -> bool:
        """Whether a row may leave the field out or send null: Milvus then stores the
        field's default, or null."""
        return self.nullable or self.has_default


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


def _param_int(params: Any, key: str) -> int | None:
    """v2 describes type parameters as ``[{"key": "dim", "value": "768"}, ...]``."""
    if not isinstance(params, list):
        return None
    for pair in params:
        if isinstance(pair, dict) and pair.get("key") == key:
            try:
                return int(pair["value"])
            except (KeyError, TypeError, ValueError):
                return None
    return None


def parse_field(data: dict[str, Any]) -> FieldSchema:
    """One field of a describe answer, v1 (``"FloatVector(4)"``) or v2 (``params``) shaped."""
    data_type, bracketed = parse_type(str(data.get("type", "")))
    dim: int | None = None
    max_length: int | None = None
    if data_type.endswith("Vector"):
        dim = _param_int(data.get("params"), "dim") or bracketed or None
    elif data_type == "VarChar":
        max_length = _param_int(data.get("params"), "max_length") or bracketed
    element_type = data.get("elementType")
    has_default, default_value = _default_of(data)
    return FieldSchema(
        name=str(data["name"]),
        data_type=data_type,
        is_primary=bool(data.get("primaryKey", False)),
        auto_id=bool(data.get("autoId", False)),
        max_length=max_length,
        dim=dim,
        element_type=str(element_type) if element_type else None,
        nullable=bool(data.get("nullable", False)),
        has_default=has_default,
        default_value=default_value,
    )


def _default_of(data: dict[str, Any]) -> tuple[bool, Any]:
    """(whether the field has a default, the default) from a v2 describe's ``defaultValue``.

    Milvus writes the protobuf ValueField as Go encodes a oneof, ``{"Data": {"LongData": 5}}``;
    a plain value is taken as it is, should a server or proxy write one.
    """
    if "defaultValue" not in data or data["defaultValue"] is None:
        return False, None
    value = data["defaultValue"]
    if isinstance(value, dict):
        inner = value.get("Data", value)
        if isinstance(inner, dict) and len(inner) == 1:
            value = next(iter(inner.values()))
        elif isinstance(inner, dict) and not inner:
            return False, None
    if isinstance(value, dict | list):
        # Not a value a scalar field can hold; the cluster decides what it stores.
        return True, None
    return True, value


def parse_collection(data: dict[str, Any]) -> CollectionSchema:
    """The ``data`` of a v1 or v2 describe answer; what is not parsed is kept in ``extra``."""
    fields = tuple(parse_field(item) for item in data.get("fields") or ())
    parsed_keys = {"collectionName", "fields", "enableDynamicField", "load"}
    return CollectionSchema(
        name=str(data.get("collectionName", "")),
        fields=fields,
        enable_dynamic_field=bool(data.get("enableDynamicField", False)),
        load_state=str(data.get("load", "")),
        extra={key: value for key, value in data.items() if key not in parsed_keys},
    )
