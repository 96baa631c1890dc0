"""A row that did not land, made fit to store: bounded in size and storable in any database.

A batch keeps its failed rows in memory until it commits, and a hostile file can make every
row fail with megabytes of text each; so a long row is kept cut short (the reason says so),
and a batch is closed early once its failed rows hold ``max_batch_bytes``. PostgreSQL text
and jsonb cannot hold NUL, so a row holding one is kept as its escaped JSON text instead.
"""

import json
from typing import Any

import orjson
from django.conf import settings

from upserts.models import FailedRow, UpsertJob
from upserts.readers import NumberVector

_NUL_ESCAPE = b"\\u0000"
# A reason may quote the cluster's own answer, which the console does not control.
_REASON_CHARACTERS = 4000


def failed_row(
    job: UpsertJob,
    *,
    row_number: int,
    reason: str,
    entity: dict[str, Any] | None = None,
    raw: str = "",
) -> FailedRow:
    """The FailedRow for a row, from its entity as checked or, failing that, its raw text."""
    limit = settings.UPSERT_FAILED_ROW_MAX_BYTES
    stored_entity: Any = None
    if entity is not None:
        try:
            encoded = orjson.dumps(entity, option=orjson.OPT_NON_STR_KEYS, default=_as_json)
        except TypeError:
            # Integers beyond 64 bits, or nesting deeper than orjson writes: kept as text.
            raw = _written_by_the_standard_library(entity)
            if not raw:
                reason = f"{reason} (the row cannot be written back as JSON)"
        else:
            if len(encoded) <= limit and _NUL_ESCAPE not in encoded:
                stored_entity = orjson.loads(encoded)
            else:
                raw = encoded.decode()
    reason = reason[:_REASON_CHARACTERS]
    text = raw.replace("\x00", "\ufffd")
    size = len(text.encode())
    if size > limit:
        text = text.encode()[:limit].decode(errors="ignore")
        reason = f"{reason} (the row is {size:,} bytes; only its first {limit:,} are kept)"
    return FailedRow(job=job, row_number=row_number, reason=reason, entity=stored_entity, raw=text)


def stored_size(row: FailedRow) -> int:
    """About what the failed row holds in memory until its batch commits."""
    held = len(row.raw) + len(row.reason)
    if row.entity is not None:
        held += len(orjson.dumps(row.entity))
    return held


def _written_by_the_standard_library(entity: dict[str, Any]) -> str:
    try:
        return json.dumps(entity, default=_as_json, ensure_ascii=False)
    except (RecursionError, TypeError, ValueError):
        return ""


def _as_json(value: Any) -> Any:
    if isinstance(value, NumberVector):
        return value.tolist()
    return str(value)
