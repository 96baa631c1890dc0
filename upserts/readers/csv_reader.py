"""CSV with a header row; every value comes out as text, typed later against the schema."""

import csv
from collections.abc import Iterator

from upserts.readers.base import (
    UTF8_BOM,
    ByteStream,
    FileFormatError,
    SourceRow,
    no_rows_error,
    not_utf8_error,
)
from upserts.readers.limits import DEFAULT_LIMITS, SAMPLE_BYTES, ReadLimits, nesting_exceeds

_SKIP_CHUNK = 1024 * 1024

# A vector column holds its values as JSON text: 4 096 floats take some 80 000 characters,
# near the csv module's default limit of 131 072. The limit is process-wide, so it is only
# ever raised, never lowered.
_FIELD_SIZE_LIMIT = 16 * 1024 * 1024


class _RowRefused(Exception):
    """The line being read is past a limit of one row; it was passed over, never held."""

    def __init__(self, reason: str, sample: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.sample = sample


class _Lines:
    """Decoded lines for csv.reader, keeping the text of the record being read.

    Decoding line by line (rather than through a TextIOWrapper) lets a non-UTF-8 byte be named
    by its line and offset, and keeping each record's lines gives a bad row's original text.
    A line past the limits of one row is refused (_RowRefused) before it is decoded.
    """

    def __init__(self, stream: ByteStream, filename: str, limits: ReadLimits) -> None:
        self._readline = stream.readline
        self._stream = stream
        self._filename = filename
        self._limits = limits
        self.line_number = 0
        self.offset = 0
        self.record_lines: list[str] = []
        self.record_bytes = 0
        self._returned: str | None = None

    def __iter__(self) -> "_Lines":
        return self

    def give_back(self, text: str) -> None:
        """The line just read is read again next, by the csv module: counted once, kept once."""
        self._returned = text

    def start_record(self) -> None:
        self.record_lines.clear()
        self.record_bytes = 0

    def __next__(self) -> str:
        if self._returned is not None:
            text, self._returned = self._returned, None
            return text
        max_bytes = self._limits.max_row_bytes
        line = self._readline(max_bytes + 1)
        if not line:
            raise StopIteration
        self.line_number += 1
        line_start = self.offset
        self.offset += len(line)
        if line == b"\n" and not self.record_lines:
            self._skip_blank_lines()
        self.record_bytes += len(line)
        if self.record_bytes > max_bytes:
            self._refuse_long(line)
        if self.line_number == 1 and line.startswith(UTF8_BOM):
            line = line[3:]
            line_start += 3
        if nesting_exceeds(line, self._limits.max_depth, json_strings=False):
            raise _RowRefused(
                f"{self._limits.too_deep()}; it was not read",
                line[:SAMPLE_BYTES].decode(errors="replace"),
            )
        try:
            text = line.decode()
        except UnicodeDecodeError as exc:
            raise not_utf8_error(
                self._filename, f"line {self.line_number:,}, byte {line_start + exc.start:,}"
            ) from None
        self.record_lines.append(text)
        return text

    def _skip_blank_lines(self) -> None:
        """Passes over the line breaks that follow a blank line between records, a buffer at
        a time: read one line at a time, the 200 MB of them in a 200 KB gzip took the web
        process three minutes. They are blank lines, which csv.reader would skip anyway."""
        while True:
            ahead = self._stream.peek(_SKIP_CHUNK)
            blank = len(ahead) - len(ahead.lstrip(b"\n"))
            if not blank:
                return
            self._stream.read(blank)
            self.line_number += blank
            self.offset += blank
            if blank < len(ahead):
                return

    def _refuse_long(self, line: bytes) -> None:
        if self.record_lines:
            # A quoted value running on over lines past the limit: an unclosed quote, most
            # likely, after which no line can be trusted to be the row it looks like.
            raise FileFormatError(
                f"{self._filename}: the record that starts on line "
                f"{self.line_number - len(self.record_lines):,} runs on for more than "
                f"{self._limits.max_row_bytes:,} bytes, the limit for one row; a quote is "
                "probably left open there. Fix the file and upload it again."
            )
        sample = line[:SAMPLE_BYTES].decode(errors="replace")
        while not line.endswith(b"\n"):
            line = self._readline(_SKIP_CHUNK)
            if not line:
                break
            self.offset += len(line)
        raise _RowRefused(f"{self._limits.too_big()}; it was not read", sample)


def read_csv(
    stream: ByteStream,
    *,
    filename: str,
    start_after: int = 0,
    resume_at: tuple[int, int] | None = None,
    limits: ReadLimits = DEFAULT_LIMITS,
) -> Iterator[SourceRow]:
    """``resume_at`` is the ``position_after`` of row ``start_after``: once the header is
    read, reading goes on from there."""
    if csv.field_size_limit() < _FIELD_SIZE_LIMIT:
        csv.field_size_limit(_FIELD_SIZE_LIMIT)
    lines = _Lines(stream, filename, limits)
    # strict: a stray quote is reported as that row's problem instead of being guessed at.
    reader = csv.reader(lines, strict=True)
    header = _read_header(reader, lines, filename)
    width = len(header)
    record_lines = lines.record_lines
    number = 0
    if resume_at is not None:
        lines.offset, lines.line_number = resume_at
        stream.seek(lines.offset)
        number = start_after
    while True:
        lines.start_record()
        first_line = lines.line_number + 1
        try:
            text = next(lines)
            record = split_plain_record(text)
            if record is None:
                lines.give_back(text)
                record = next(reader)
        except StopIteration:
            break
        except _RowRefused as refused:
            number += 1
            if number > start_after:
                yield SourceRow(
                    number=number,
                    error=f"line {first_line:,} {refused.reason}",
                    raw=refused.sample,
                    line=first_line,
                    position_after=(lines.offset, lines.line_number),
                )
            continue
        except csv.Error as exc:
            number += 1
            if number > start_after:
                row = _bad_row(number, first_line, f"unreadable CSV ({exc})", record_lines)
                row.position_after = (lines.offset, lines.line_number)
                yield row
            continue
        if not record:
            continue
        number += 1
        if number <= start_after:
            continue
        position = (lines.offset, lines.line_number)
        if len(record) == width:
            yield SourceRow(
                number=number,
                entity=dict(zip(header, record, strict=True)),
                line=first_line,
                position_after=position,
            )
        else:
            values = "1 value" if len(record) == 1 else f"{len(record):,} values"
            problem = f"{values}, but the header has {width} columns"
            row = _bad_row(number, first_line, problem, record_lines)
            row.position_after = position
            yield row
    if number == 0:
        raise no_rows_error(filename, "the CSV has a header row but no data rows")


def split_plain_record(line: str) -> list[str] | None:
    """The fields of a one-line record whose quotes only wrap whole fields, as csv.reader
    would give them; None for anything else (escaped quotes, a quoted line break, stray
    quotes, a carriage return or NUL inside), which is left to csv.reader.

    csv.reader looks at every character in Python's C code one by one; a 768-d vector cell is
    some 7 000 of them, which made it the largest cost of a CSV row. str.split runs at memory
    speed.
    """
    if line.endswith("\r\n"):
        body = line[:-2]
    elif line.endswith("\n"):
        body = line[:-1]
    else:
        body = line
    if not body:
        return []
    if "\r" in body or "\x00" in body:
        return None
    if '"' not in body:
        return body.split(",")
    parts = body.split('"')
    if len(parts) % 2 == 0:
        return None
    fields: list[str] = []
    before = parts[0]
    if before:
        if not before.endswith(","):
            return None
        fields += before[:-1].split(",")
    last = len(parts) - 1
    for index in range(1, last, 2):
        fields.append(parts[index])
        after = parts[index + 1]
        if index + 1 == last:
            if after:
                if not after.startswith(","):
                    return None
                fields += after[1:].split(",")
        else:
            # Between two quoted fields: "," alone, or ",x,y," with unquoted fields inside.
            if not (after.startswith(",") and after.endswith(",")):
                return None
            if after != ",":
                fields += after[1:-1].split(",")
    return fields


def _read_header(reader: Iterator[list[str]], lines: _Lines, filename: str) -> list[str]:
    try:
        header: list[str] = []
        while not header:
            header = next(reader)
    except StopIteration:
        raise no_rows_error(filename, "the file is empty") from None
    except _RowRefused as refused:
        raise FileFormatError(
            f"{filename}: the header row (line {lines.line_number:,}) {refused.reason}. Check "
            "that this is a CSV file with a header row."
        ) from None
    except csv.Error as exc:
        raise FileFormatError(
            f"{filename}: the header row (line {lines.line_number:,}) is not readable CSV "
            f"({exc}). Fix it and upload the file again."
        ) from None
    names = [name.strip() for name in header]
    if "" in names:
        position = names.index("") + 1
        raise FileFormatError(
            f"{filename}: column {position} of the header row has no name. Every column needs "
            "the name of the field it fills."
        )
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        listed = ", ".join(f"`{name}`" for name in repeated)
        raise FileFormatError(
            f"{filename}: the header row names {listed} more than once. Each field may have "
            "only one column."
        )
    return names


def _bad_row(number: int, line: int, problem: str, record_lines: list[str]) -> SourceRow:
    raw = "".join(record_lines).rstrip("\r\n")
    return SourceRow(number=number, error=f"line {line:,}: {problem}", raw=raw, line=line)
