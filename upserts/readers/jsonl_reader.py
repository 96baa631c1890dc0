"""JSON Lines: one object per line, so one broken line spoils only itself."""

from collections.abc import Iterator

import orjson

from upserts.readers.base import (
    UTF8_BOM,
    ByteStream,
    SourceRow,
    kind_of_value,
    no_rows_error,
    not_utf8_error,
)
from upserts.readers.limits import DEFAULT_LIMITS, SAMPLE_BYTES, ReadLimits, nesting_exceeds
from upserts.readers.vector_json import parse_object

_SKIP_CHUNK = 1024 * 1024


def read_jsonl(
    stream: ByteStream,
    *,
    filename: str,
    start_after: int = 0,
    resume_at: tuple[int, int] | None = None,
    limits: ReadLimits = DEFAULT_LIMITS,
    number_vector_keys: frozenset[str] = frozenset(),
) -> Iterator[SourceRow]:
    """``resume_at`` is the ``position_after`` of row ``start_after``: reading starts there.

    Float vectors under ``number_vector_keys`` come as NumberVector (see vector_json).
    """
    readline = stream.readline
    loads = orjson.loads
    max_bytes = limits.max_row_bytes
    max_depth = limits.max_depth
    number = 0
    line_number = 0
    offset = 0
    if resume_at is not None:
        offset, line_number = resume_at
        stream.seek(offset)
        number = start_after
    while True:
        line = readline(max_bytes + 1)
        if not line:
            break
        line_number += 1
        line_start = offset
        offset += len(line)
        if len(line) > max_bytes:
            # Too long to parse: the rest of the line is passed over, never held.
            sample = line[:SAMPLE_BYTES].decode(errors="replace")
            while not line.endswith(b"\n"):
                line = readline(_SKIP_CHUNK)
                if not line:
                    break
                offset += len(line)
            number += 1
            if number > start_after:
                yield SourceRow(
                    number=number,
                    error=f"line {line_number:,} {limits.too_big()}; it was not read",
                    raw=sample,
                    line=line_number,
                    position_after=(offset, line_number),
                )
            continue
        if line_number == 1 and line.startswith(UTF8_BOM):
            line = line[3:]
            line_start += 3
        if line.isspace() or not line:
            continue
        number += 1
        if number <= start_after:
            continue
        if nesting_exceeds(line, max_depth):
            yield SourceRow(
                number=number,
                error=f"line {line_number:,} {limits.too_deep()}; it was not read",
                raw=line[:SAMPLE_BYTES].decode(errors="replace"),
                line=line_number,
                position_after=(offset, line_number),
            )
            continue
        value = parse_object(line, number_vector_keys) if number_vector_keys else None
        try:
            if value is None:
                value = loads(line)
        except orjson.JSONDecodeError as exc:
            text = _decode(line, filename, line_number, line_start)
            yield SourceRow(
                number=number,
                error=f"line {line_number:,}, column {exc.colno}: not valid JSON ({exc.msg})",
                raw=text.rstrip("\r\n"),
                line=line_number,
                position_after=(offset, line_number),
            )
            continue
        if type(value) is dict:
            yield SourceRow(
                number=number,
                entity=value,
                line=line_number,
                encoded=line.strip(),
                position_after=(offset, line_number),
            )
        else:
            yield SourceRow(
                number=number,
                error=f"line {line_number:,} holds {kind_of_value(value)}, not an object",
                raw=line.decode().rstrip("\r\n"),
                line=line_number,
                position_after=(offset, line_number),
            )
    if number == 0 and resume_at is None:
        raise no_rows_error(filename, "the file has no lines with entities")


def _decode(line: bytes, filename: str, line_number: int, line_start: int) -> str:
    """Text of a line that failed to parse; bytes that are not UTF-8 spoil the whole file."""
    try:
        return line.decode()
    except UnicodeDecodeError as exc:
        raise not_utf8_error(
            filename, f"line {line_number:,}, byte {line_start + exc.start:,}"
        ) from None
