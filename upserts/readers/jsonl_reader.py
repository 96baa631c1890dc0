"""JSON Lines: one object per line, so one broken line spoils only itself."""

from collections.abc import Iterator

import orjson

from upserts.readers.base import (
    MAX_LINE_BYTES,
    UTF8_BOM,
    ByteStream,
    FileFormatError,
    SourceRow,
    kind_of_value,
    no_rows_error,
    not_utf8_error,
)


def read_jsonl(stream: ByteStream, *, filename: str, start_after: int = 0) -> Iterator[SourceRow]:
    readline = stream.readline
    loads = orjson.loads
    number = 0
    line_number = 0
    offset = 0
    while True:
        line = readline(MAX_LINE_BYTES + 1)
        if not line:
            break
        line_number += 1
        line_start = offset
        offset += len(line)
        if len(line) > MAX_LINE_BYTES:
            raise FileFormatError(
                f"{filename}: line {line_number:,} is longer than {MAX_LINE_BYTES:,} bytes "
                f"(from byte {line_start:,}), so this is not JSON Lines with one entity per "
                "line. Check the file's format, or split the entity data."
            )
        if line_number == 1 and line.startswith(UTF8_BOM):
            line = line[3:]
            line_start += 3
        if line.isspace() or not line:
            continue
        number += 1
        if number <= start_after:
            continue
        try:
            value = loads(line)
        except orjson.JSONDecodeError as exc:
            text = _decode(line, filename, line_number, line_start)
            yield SourceRow(
                number=number,
                error=f"line {line_number:,}, column {exc.colno}: not valid JSON ({exc.msg})",
                raw=text.rstrip("\r\n"),
                line=line_number,
            )
            continue
        if type(value) is dict:
            yield SourceRow(number=number, entity=value, line=line_number, encoded=line.strip())
        else:
            yield SourceRow(
                number=number,
                error=f"line {line_number:,} holds {kind_of_value(value)}, not an object",
                raw=line.decode().rstrip("\r\n"),
                line=line_number,
            )
    if number == 0:
        raise no_rows_error(filename, "the file has no lines with entities")


def _decode(line: bytes, filename: str, line_number: int, line_start: int) -> str:
    """Text of a line that failed to parse; bytes that are not UTF-8 spoil the whole file."""
    try:
        return line.decode()
    except UnicodeDecodeError as exc:
        raise not_utf8_error(
            filename, f"line {line_number:,}, byte {line_start + exc.start:,}"
        ) from None
