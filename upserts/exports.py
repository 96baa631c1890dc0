"""The downloads: a job's failed rows as JSON Lines and the audit trail as CSV, written line
by line as they stream (a job may have millions of failed rows; the trail only grows)."""

import csv
import io
import unicodedata
from collections.abc import Iterator
from typing import Any

import orjson
from django.db.models import QuerySet

from upserts.models import AuditEvent, FailedRow, UpsertJob


def failed_rows_jsonl(job: UpsertJob, *, chunk_size: int = 2000) -> Iterator[bytes]:
    """The job's failed rows as JSON Lines, fit to fix and upload again.

    Each line holds the row number, the reason, and the entity as read (or, for a row that
    could not be parsed, its raw text). Streamed in chunks: a job may have millions.
    """
    rows = (
        FailedRow.objects.filter(job=job)
        .order_by("row_number")
        .values_list("row_number", "reason", "entity", "raw")
    )
    for row_number, reason, entity, raw in rows.iterator(chunk_size=chunk_size):
        line: dict[str, Any] = {"row_number": row_number, "reason": reason}
        if entity is not None:
            line["entity"] = entity
        else:
            line["raw"] = raw
        yield orjson.dumps(line) + b"\n"


AUDIT_CSV_COLUMNS = [
    "time",
    "actor",
    "action",
    "target_type",
    "target_id",
    "target",
    "ip",
    "details",
]
# A spreadsheet runs a cell that starts with one of these as a formula (OWASP's CSV injection
# list), some after stripping leading spaces. Their look-alikes count too: the first character
# is NFKC-normalised, which turns the full-width (＝ ＋ － ＠), small (﹦ ﹢ ﹣ ﹫) and other
# compatibility forms into these; U+2212 MINUS SIGN, which NFKC keeps, is listed itself.
_FORMULA_STARTS = ("=", "+", "-", "@", "\u2212")
_CONTROL_STARTS = ("\t", "\r", "\n")


def audit_events_csv(events: QuerySet[AuditEvent], *, chunk_size: int = 2000) -> Iterator[str]:
    """The events as CSV lines, header first; streamed, as the trail only ever grows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def line(cells: list[Any]) -> str:
        writer.writerow(cells)
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    yield line(AUDIT_CSV_COLUMNS)
    for event in events.iterator(chunk_size=chunk_size):
        yield line(
            [
                event.created_at.isoformat(),
                _csv_text(event.actor_username),
                event.action,
                event.target_type.model if event.target_type else "",
                _csv_text(event.target_id),
                _csv_text(event.target_repr),
                _csv_text(event.client_ip or ""),
                _csv_text(orjson.dumps(event.details, option=orjson.OPT_SORT_KEYS).decode()),
            ]
        )


def _csv_text(value: str) -> str:
    """The cell as text a spreadsheet shows, never runs: a leading ``'`` defuses a formula.

    Every cell that text from outside can reach goes through here; the IP too, as the column
    does not check its values on every database.
    """
    first = unicodedata.normalize("NFKC", value.lstrip()[:1])
    if value.startswith(_CONTROL_STARTS) or first.startswith(_FORMULA_STARTS):
        return f"'{value}"
    return value
