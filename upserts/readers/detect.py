"""Which reader a file needs, from its name and, above all, its first bytes.

Names lie more often than content: a JSON Lines export saved as ``.json``, a ``.gz`` that was
already decompressed by the browser. So the content decides whenever it can, and the name
only settles what the first bytes leave open.
"""

import zlib
from dataclasses import dataclass
from typing import Literal

import orjson

from upserts.readers.base import UTF8_BOM, FileFormatError

FileFormatName = Literal["json", "jsonl", "csv", "parquet"]

# How much of the start of a file detect_format wants: enough for the first JSON Lines entity
# with a large vector and the line after it.
HEAD_BYTES = 64 * 1024

GZIP_MAGIC = b"\x1f\x8b"
PARQUET_MAGIC = b"PAR1"

_SUFFIX_FORMATS: dict[str, FileFormatName] = {
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".parquet": "parquet",
}

_OTHER_COMPRESSIONS = {
    b"PK\x03\x04": "a ZIP archive: unzip it and upload the file inside",
    b"BZh": "bzip2-compressed: decompress it, or compress it with gzip instead",
    b"\xfd7zXZ\x00": "xz-compressed: decompress it, or compress it with gzip instead",
    b"\x28\xb5\x2f\xfd": "zstd-compressed: decompress it, or compress it with gzip instead",
}

_BLANKS = b" \t\r\n"
# Control characters that never occur in JSON or CSV text (tab, line breaks and form feed may).
_BINARY_BYTES = bytes(set(range(32)) - {9, 10, 12, 13})


@dataclass(frozen=True)
class DetectedFormat:
    file_format: FileFormatName
    gzipped: bool


def format_from_name(filename: str) -> tuple[FileFormatName | None, bool]:
    """The format and compression the name claims, e.g. ``books.jsonl.gz`` → ("jsonl", True)."""
    name = filename.strip().lower()
    gzipped = name.endswith(".gz")
    if gzipped:
        name = name[:-3]
    dot = name.rfind(".")
    suffix = name[dot:] if dot != -1 else ""
    return _SUFFIX_FORMATS.get(suffix), gzipped


def detect_format(filename: str, head: bytes) -> DetectedFormat:
    """Decide from the name and the first ``HEAD_BYTES`` of the file (fewer if it is shorter)."""
    named_format, _ = format_from_name(filename)
    gzipped = head.startswith(GZIP_MAGIC)
    content = _decompressed_head(head, filename) if gzipped else head
    return DetectedFormat(_format_of_content(content, named_format, filename), gzipped)


def _decompressed_head(head: bytes, filename: str) -> bytes:
    try:
        return zlib.decompressobj(wbits=16 + zlib.MAX_WBITS).decompress(head, HEAD_BYTES)
    except zlib.error as exc:
        raise FileFormatError(
            f"{filename}: starts like a gzip file but its data is damaged ({exc}). Compress the "
            "file again, or upload it uncompressed."
        ) from None


def _format_of_content(
    content: bytes, named_format: FileFormatName | None, filename: str
) -> FileFormatName:
    if content.startswith(PARQUET_MAGIC):
        return "parquet"
    for magic, advice in _OTHER_COMPRESSIONS.items():
        if content.startswith(magic):
            raise FileFormatError(f"{filename}: the file is {advice}.")
    body = content[len(UTF8_BOM) :] if content.startswith(UTF8_BOM) else content
    text = body.lstrip(_BLANKS)
    if not text:
        what = "is empty" if not content else "holds nothing but blank space"
        raise FileFormatError(
            f"{filename}: the file {what}. Upload a file with at least one entity."
        )
    _refuse_binary(body, named_format, filename)

    first = text[:1]
    if first == b"[":
        return "json"
    if first == b"{":
        return _json_or_jsonl(text, named_format)
    if named_format == "csv" or _looks_like_csv(text):
        return "csv"
    if named_format in ("json", "jsonl") and _first_line_is_json(text):
        # A JSON scalar: the JSON reader explains why that is not an entity.
        return named_format
    named = f"named like {named_format.upper()}, but it" if named_format else "it"
    start = text[:40].decode(errors="replace")
    raise FileFormatError(
        f"{filename}: cannot tell the format: {named} starts with {start!r}, which is "
        "neither JSON (an object or an array of objects), JSON Lines, CSV with a header row, "
        "nor Parquet. Upload one of those, named .json, .jsonl, .csv or .parquet."
    )


def _refuse_binary(body: bytes, named_format: FileFormatName | None, filename: str) -> None:
    if len(body.translate(None, _BINARY_BYTES)) != len(body):
        position = next(i for i, byte in enumerate(body) if byte in _BINARY_BYTES)
        hint = (
            " It is named .parquet, but Parquet files start with PAR1: it is damaged or not "
            "Parquet at all."
            if named_format == "parquet"
            else ""
        )
        raise FileFormatError(
            f"{filename}: byte {position:,} is binary data, so this is not a JSON, JSON Lines "
            f"or CSV text file, nor Parquet, nor gzip.{hint} Upload the file in one of those "
            "formats."
        )
    try:
        body.decode()
    except UnicodeDecodeError as exc:
        # The head may end in the middle of a character; that is not the file's fault.
        if exc.reason == "unexpected end of data" and exc.end == len(body):
            return
        raise FileFormatError(
            f"{filename}: the text is not UTF-8 (byte {exc.start:,}). Save or export the file "
            "as UTF-8 and upload it again."
        ) from None


def _json_or_jsonl(text: bytes, named_format: FileFormatName | None) -> FileFormatName:
    """One object followed by another on a later line is JSON Lines; anything else is JSON.

    The JSON reader also takes objects one after another, so "json" is the safe answer when the
    head cannot tell; JSON Lines is preferred when it can, for its line numbers and for
    reading on past a broken line.
    """
    end_of_line = text.find(b"\n")
    if end_of_line == -1:
        return "jsonl" if named_format == "jsonl" else "json"
    first_line = text[:end_of_line]
    next_starts_object = text[end_of_line + 1 :].lstrip(_BLANKS)[:1] == b"{"
    try:
        first_is_object = isinstance(orjson.loads(first_line), dict)
    except orjson.JSONDecodeError:
        first_is_object = False
    if first_is_object and (next_starts_object or named_format == "jsonl"):
        return "jsonl"
    if (
        not first_is_object
        and named_format == "jsonl"
        and next_starts_object
        and first_line.strip() != b"{"
    ):
        # A broken first line in a JSON Lines file: a row error, not an unreadable file.
        return "jsonl"
    return "json"


def _looks_like_csv(text: bytes) -> bool:
    first_line = text.split(b"\n", 1)[0]
    return b"," in first_line and not _first_line_is_json(text)


def _first_line_is_json(text: bytes) -> bool:
    try:
        orjson.loads(text.split(b"\n", 1)[0])
    except orjson.JSONDecodeError:
        return False
    return True
