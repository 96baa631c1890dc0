"""Entity files read as a stream of rows, whatever their format and size.

Every reader keeps memory to about one batch of rows, reports a row it cannot read as a failed
row and goes on, and raises FileFormatError only when the rest of the file cannot be read.
Nothing here knows about Django, so workers, commands and tests share it as it is.
"""

from collections.abc import Callable, Iterator, Mapping
from typing import Any, BinaryIO

from upserts.readers.base import FLOAT32_MAX as FLOAT32_MAX
from upserts.readers.base import ByteStream
from upserts.readers.base import DecompressedTooLarge as DecompressedTooLarge
from upserts.readers.base import FileFormatError as FileFormatError
from upserts.readers.base import NumberVector as NumberVector
from upserts.readers.base import SourceRow as SourceRow
from upserts.readers.base import open_byte_stream as open_byte_stream
from upserts.readers.base import spool_to_temporary_file as spool_to_temporary_file
from upserts.readers.csv_reader import read_csv
from upserts.readers.detect import HEAD_BYTES as HEAD_BYTES
from upserts.readers.detect import DetectedFormat as DetectedFormat
from upserts.readers.detect import FileFormatName as FileFormatName
from upserts.readers.detect import detect_format as detect_format
from upserts.readers.detect import format_from_name as format_from_name
from upserts.readers.json_reader import read_json
from upserts.readers.jsonl_reader import read_jsonl
from upserts.readers.limits import DEFAULT_LIMITS as DEFAULT_LIMITS
from upserts.readers.limits import ReadLimits as ReadLimits
from upserts.readers.parquet_reader import count_parquet_rows as count_parquet_rows
from upserts.readers.parquet_reader import read_parquet

_TEXT_READERS: dict[str, Callable[..., Iterator[SourceRow]]] = {
    "json": read_json,
    "jsonl": read_jsonl,
    "csv": read_csv,
}


def read_rows(
    fileobj: BinaryIO,
    *,
    file_format: str,
    gzipped: bool,
    filename: str,
    start_after: int = 0,
    resume_at: tuple[int, int] | None = None,
    max_decompressed_bytes: int | None = None,
    number_vector_columns: frozenset[str] = frozenset(),
    half_float_columns: Mapping[str, str] | None = None,
    limits: ReadLimits = DEFAULT_LIMITS,
) -> Iterator[SourceRow]:
    """Rows of the file in order, numbered from 1; the first ``start_after`` are skipped.

    ``filename`` is the name the person uploaded, used only in messages. ``fileobj`` is left
    open, and its position is where reading starts. ``max_decompressed_bytes`` bounds what a
    gzip file may expand to. Problems with the file as a whole surface as FileFormatError
    while iterating, after the rows that could be read before them. Parquet float-list cells
    and JSON Lines float vectors of ``number_vector_columns`` come as NumberVector instead of
    lists, and Parquet byte lists of ``half_float_columns`` as the 16-bit floats they encode.
    A row past ``limits`` fails alone, with its reason, without being parsed.
    """
    if file_format not in _TEXT_READERS and file_format != "parquet":
        raise ValueError(f"unknown file format {file_format!r}")
    if start_after < 0:
        raise ValueError("start_after cannot be negative")
    return _rows(
        fileobj,
        file_format=file_format,
        gzipped=gzipped,
        filename=filename,
        start_after=start_after,
        resume_at=resume_at if file_format in ("jsonl", "csv") and not gzipped else None,
        max_decompressed_bytes=max_decompressed_bytes,
        number_vector_columns=number_vector_columns,
        half_float_columns=half_float_columns,
        limits=limits,
    )


def _rows(
    fileobj: BinaryIO,
    *,
    file_format: str,
    gzipped: bool,
    filename: str,
    start_after: int,
    resume_at: tuple[int, int] | None,
    max_decompressed_bytes: int | None,
    number_vector_columns: frozenset[str],
    half_float_columns: Mapping[str, str] | None,
    limits: ReadLimits,
) -> Iterator[SourceRow]:
    stream: ByteStream | None = None
    spooled: BinaryIO | None = None
    try:
        if file_format == "parquet":
            source = fileobj
            if gzipped or not _seekable(fileobj):
                stream = open_byte_stream(
                    fileobj,
                    gzipped=gzipped,
                    filename=filename,
                    max_decompressed_bytes=max_decompressed_bytes,
                )
                source = spooled = spool_to_temporary_file(stream)
            yield from read_parquet(
                source,
                filename=filename,
                start_after=start_after,
                number_vector_columns=number_vector_columns,
                half_float_columns=half_float_columns,
                limits=limits,
            )
        else:
            stream = open_byte_stream(
                fileobj,
                gzipped=gzipped,
                filename=filename,
                max_decompressed_bytes=max_decompressed_bytes,
            )
            read = _TEXT_READERS[file_format]
            # Only JSON Lines and CSV readers take resume_at (read_rows leaves it out of others).
            entry: dict[str, Any] = {"resume_at": resume_at} if resume_at is not None else {}
            if file_format == "jsonl" and number_vector_columns:
                entry["number_vector_keys"] = number_vector_columns
            yield from read(
                stream, filename=filename, start_after=start_after, limits=limits, **entry
            )
    finally:
        if spooled is not None:
            spooled.close()
        if stream is not None:
            stream.close()


def _seekable(fileobj: BinaryIO) -> bool:
    try:
        return bool(fileobj.seekable())
    except (AttributeError, ValueError):
        return False
