"""JSON files: one object, an array of objects, objects one after another, or the layout
Milvus' bulk import reads and BulkWriter writes, ``{"rows": [...]}``.

The file is parsed incrementally with ijson, so a multi-gigabyte array costs the memory of one
element at a time.
"""

import json
import re
from collections.abc import Iterator
from typing import Any

import ijson
import orjson

from upserts.readers.base import (
    UTF8_BOM,
    ByteStream,
    FileFormatError,
    SourceRow,
    kind_of_value,
    no_rows_error,
    not_utf8_error,
)
from upserts.readers.limits import DEFAULT_LIMITS, JsonRowGuard, ReadLimits

_WHITESPACE = b" \t\r\n"
# The start of Milvus' bulk-import layout: an object whose first key "rows" holds an array of
# objects (or nothing). An entity whose first field is an array named rows reads as an entity.
_ROWS_LAYOUT = re.compile(rb'\{[ \t\r\n]*"rows"[ \t\r\n]*:[ \t\r\n]*\[[ \t\r\n]*[{\]]')


def read_json(
    stream: ByteStream,
    *,
    filename: str,
    start_after: int = 0,
    limits: ReadLimits = DEFAULT_LIMITS,
) -> Iterator[SourceRow]:
    first = _first_significant_byte(stream)
    guard: JsonRowGuard | None = None
    rows_layout = first == b"{" and _ROWS_LAYOUT.match(stream.peek(256)) is not None
    if first in (b"[", b"{"):
        depth = 2 if rows_layout else (1 if first == b"[" else 0)
        guard = JsonRowGuard(stream, filename=filename, limits=limits, row_depth=depth)
    if first == b"[":
        values = ijson.items(guard, "item", use_float=True)
    elif rows_layout:
        values = ijson.items(guard, "rows.item", use_float=True)
    elif first == b"{":
        # Objects one after another (a JSON Lines file saved as .json) are entities too.
        values = ijson.items(guard, "", use_float=True, multiple_values=True)
    elif not first:
        raise no_rows_error(filename, "the file is empty")
    elif _kind_of_text(first) is None:
        start = stream.peek(40)[:40].decode(errors="replace")
        raise FileFormatError(
            f"{filename}: this is not JSON: it starts with {start!r}. Upload JSON (an object "
            "or an array of objects), JSON Lines, CSV or Parquet."
        )
    else:
        raise FileFormatError(
            f"{filename}: the JSON holds a single {_kind_of_text(first)} at the top level, not "
            "an object or an array of objects. Put the entities in an array, "
            '[{"id": 1, ...}, ...], or one object per line (JSON Lines).'
        )

    number = 0
    try:
        for value in values:
            number += 1
            if type(value) is dict:
                if number > start_after:
                    yield SourceRow(number=number, entity=value)
            elif guard is not None and value == guard.marker:
                reason, sample = guard.dropped.popleft()
                if number > start_after:
                    yield SourceRow(
                        number=number, error=f"row {number:,} {reason}; it was not read", raw=sample
                    )
            elif number > start_after:
                yield SourceRow(
                    number=number,
                    error=f"row {number} is {kind_of_value(value)}, not an object",
                    raw=_dump(value),
                )
    except ijson.JSONError as exc:
        raise _broken_json_error(filename, exc, rows_read=number, end=stream.bytes_read) from None
    if number == 0:
        where = 'the "rows" array' if rows_layout else "the JSON array"
        raise no_rows_error(filename, f"{where} is empty")


def _first_significant_byte(stream: ByteStream) -> bytes:
    """Skip a byte-order mark (ijson refuses it) and leading blanks; the rest stays unread."""
    if stream.peek(3)[:3] == UTF8_BOM:
        stream.read(3)
    while True:
        chunk = stream.peek(1)
        if not chunk:
            return b""
        stripped = chunk.lstrip(_WHITESPACE)
        if stripped:
            stream.read(len(chunk) - len(stripped))
            return stripped[:1]
        stream.read(len(chunk))


def _broken_json_error(
    filename: str, exc: Exception, *, rows_read: int, end: int
) -> FileFormatError:
    # yajl reports "<what went wrong>\n<a snippet of the text>\n(right here) ---^": keep the
    # first two. Its position counts within the parser's current buffer, so the byte offset in
    # the file is known only as "before the end of what was read so far".
    text = str(exc)
    if text.startswith(("b'", 'b"')):
        # Some messages arrive as the repr of bytes, with their line breaks escaped.
        text = text[2:-1].replace("\\n", "\n")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    reason = lines[0] if lines else "unreadable JSON"
    if "invalid bytes in UTF8" in reason:
        after = f"after row {rows_read:,}, " if rows_read else ""
        return not_utf8_error(filename, f"{after}before byte {end:,}")
    good = f"{rows_read:,} rows were read before it" if rows_read else "no row could be read"
    if "premature EOF" in reason:
        return FileFormatError(
            f"{filename}: the JSON ends in the middle of row {rows_read + 1:,} (at byte "
            f"{end:,}); {good}. The file looks truncated: upload the complete file."
        )
    near = f" near {lines[1][:60]!r}" if len(lines) > 1 and "right here" not in lines[1] else ""
    return FileFormatError(
        f"{filename}: the JSON breaks after row {rows_read:,}, before byte {end:,}: "
        f"{reason}{near}; {good}. Fix the JSON there and upload the file again."
    )


def _kind_of_text(first: bytes) -> str | None:
    if first == b'"':
        return "string"
    if first in b"tf":
        return "boolean"
    if first == b"n":
        return "null"
    if first in b"-0123456789":
        return "number"
    return None


def _dump(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        # orjson refuses integers beyond 64 bits; the standard library takes any.
        return json.dumps(value)
