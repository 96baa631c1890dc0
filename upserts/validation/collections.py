"""What is wrong with the target collection itself, before any row is read."""

from upserts.milvus.schema import CollectionSchema


def blocking_schema_problems(schema: CollectionSchema) -> list[str]:
    """Problems of the target that no cluster version gets past: a job stops before sending."""
    problems = []
    primary = next((field for field in schema.fields if field.is_primary), None)
    if primary is None:
        problems.append(
            f"The collection `{schema.name}` has no primary key field, so entities cannot be "
            "upserted into it."
        )
    elif primary.auto_id:
        problems.append(
            f"The collection `{schema.name}` generates its primary key `{primary.name}` "
            "(autoID), and an autoID collection cannot take upserts: Milvus refuses every "
            "batch. Choose a collection whose primary key is given by the data."
        )
    return problems


def schema_warnings(schema: CollectionSchema, *, api_version: str = "v1") -> list[str]:
    """Problems of the target collection that every row would hit, for a person to read first.

    JSON and Array fields are refused by Milvus 2.3.5's v1 REST API but not by newer servers
    nor over gRPC, so they are a warning for the preview of a REST cluster; a job lets the
    cluster itself decide.
    """
    warnings = blocking_schema_problems(schema)
    awkward = [field.name for field in schema.fields if field.data_type in ("JSON", "Array")]
    if awkward and api_version != "grpc":
        names = ", ".join(f"`{name}`" for name in awkward)
        warnings.append(
            f"The collection `{schema.name}` has JSON or Array fields ({names}). Milvus 2.3.5's "
            "v1 REST API refuses collections with JSON or Array fields; every batch would "
            "fail. Milvus over gRPC takes them, and newer Milvus versions and Zilliz Cloud "
            "take them through the v2 REST API too."
        )
    return warnings
