"""What every reader yields and raises, and the byte stream they all read from."""

import gzip
import io
import shutil
import tempfile
import zlib
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np

UTF8_BOM = b"\xef\xbb\xbf"

# A JSON Lines or CSV line longer than this is not a row of entities but a file without line
# breaks (binary data, a minified JSON array): reading it whole would exhaust memory. Milvus
# refuses requests over 64 MiB, so no row it could take is this long.
MAX_LINE_BYTES = 64 * 1024 * 1024

_READ_CHUNK = 256 * 1024


class FileFormatError(Exception):
    """The rest of the file cannot be read; the message names the file and says what to do."""


class DecompressedTooLarge(FileFormatError):
    """A gzip file expanded past the bytes its reader was allowed."""


# Not frozen: a frozen dataclass sets each field through object.__setattr__, and a reader makes
# one of these per row of files with millions of rows.
@dataclass(slots=True)
class SourceRow:
    """One entity of a file, or the reason it could not be read.

    ``number`` counts entities from 1 in file order, good and bad alike, so it is stable across
    reads and serves as the checkpoint for resuming. ``raw`` keeps the original text of a bad
    row so failed rows can be handed back ready to fix and upload again.
    """

    number: int
    entity: dict[str, Any] | None = None
    error: str | None = None
    raw: str | None = None
    line: int | None = None
    # The entity's own JSON text when the file holds it as is (JSON Lines), so that a row can
    # be sent without encoding it again: the largest per-row cost of the pipeline otherwise.
    encoded: bytes | None = None
    # (byte offset just past the row, lines read up to it) in a JSON Lines or CSV file: where
    # reading resumes after this row without reading the file from its start again.
    position_after: tuple[int, int] | None = None


# The largest float32 number: a vector's peak must stay within it (and below it, before
# a value is rounded to float32, which would hide one beyond).
FLOAT32_MAX = 3.4028234663852886e38


class NumberVector:
    """One row's cell of a typed float-list column (Parquet), kept as the column's own numbers.

    Turning 768 floats into Python objects, checking each and writing each back out as JSON is
    most of what a Parquet row costs; a NumberVector is checked by its ``size`` and ``peak``
    (the largest magnitude, worked out for a whole record batch at once; NaN or infinite when
    an element is), and orjson writes ``values`` into the request straight from the array.
    Not a dataclass, which orjson would write out as an object of its fields.
    """

    __slots__ = ("_peak", "values")

    def __init__(self, values: Any, peak: float | None = None) -> None:
        """``peak`` may be left for the vector to work out if it is ever asked for: a vector
        packed after its check (a list from JSON) never is."""
        self.values = values  # a one-dimensional numpy array of float32 or float64
        self._peak = peak

    def __repr__(self) -> str:
        return f"NumberVector(size={self.size}, peak={self.peak})"

    @property
    def peak(self) -> float:
        if self._peak is None:
            self._peak = float(np.abs(self.values).max()) if self.size else 0.0
        return self._peak

    @property
    def size(self) -> int:
        return int(self.values.shape[0])

    def tolist(self) -> list[float]:
        return list(self.values.tolist())


class _GuardedRaw(io.RawIOBase):
    """Counts the bytes read and turns gzip corruption into a FileFormatError.

    Counting decompressed bytes is what stops a gzip bomb: the compressed size says nothing
    about how much a file expands to.
    """

    def __init__(
        self,
        inner: BinaryIO,
        *,
        filename: str,
        owns_inner: bool,
        max_bytes: int | None,
    ) -> None:
        super().__init__()
        self._inner = inner
        self._filename = filename
        self._owns_inner = owns_inner
        self._max_bytes = max_bytes
        # readinto1 hands over what one decompression step gives, so the rows before a damaged
        # spot are read before the damage is reported, rather than lost with a whole buffer.
        self._inner_readinto = getattr(inner, "readinto1", None) or getattr(inner, "readinto", None)
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        # A gzip stream cannot be entered part-way; the stored file itself can.
        return not self._owns_inner and bool(self._inner.seekable())

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if not self.seekable():
            raise io.UnsupportedOperation("a gzip stream is read from its start")
        position = int(self._inner.seek(offset, whence))
        self.bytes_read = position
        return position

    def tell(self) -> int:
        return self.bytes_read if self._owns_inner else int(self._inner.tell())

    def readinto(self, buffer: Any) -> int:
        try:
            if self._inner_readinto is not None:
                count = self._inner_readinto(buffer) or 0
            else:
                data = self._inner.read(len(buffer))
                count = len(data)
                buffer[:count] = data
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise FileFormatError(
                f"{self._filename}: the gzip data is damaged or cut short after "
                f"{self.bytes_read:,} decompressed bytes ({exc}). Compress the file again "
                "and upload it once more."
            ) from None
        self.bytes_read += count
        if self._max_bytes is not None and self.bytes_read > self._max_bytes:
            raise DecompressedTooLarge(
                f"{self._filename}: decompresses to more than {self._max_bytes:,} bytes, the "
                "limit for one upload; reading stopped. Split the file into smaller ones, or "
                "ask an administrator to raise the limit."
            )
        return count

    def close(self) -> None:
        if self._owns_inner and not self.closed:
            self._inner.close()
        super().close()


class ByteStream(io.BufferedReader):
    """A buffered view of the upload, decompressed when it is gzip, that knows how far it got."""

    def __init__(self, raw: _GuardedRaw) -> None:
        super().__init__(raw, buffer_size=_READ_CHUNK)
        self._guarded = raw

    @property
    def bytes_read(self) -> int:
        """Bytes taken from the (decompressed) file so far, including those still buffered."""
        return self._guarded.bytes_read


def open_byte_stream(
    fileobj: BinaryIO,
    *,
    gzipped: bool,
    filename: str,
    max_decompressed_bytes: int | None = None,
) -> ByteStream:
    """Wrap the upload for streaming; closing the result never closes ``fileobj``."""
    if gzipped:
        inner: BinaryIO = gzip.GzipFile(fileobj=fileobj, mode="rb")  # type: ignore[assignment]
        raw = _GuardedRaw(
            inner, filename=filename, owns_inner=True, max_bytes=max_decompressed_bytes
        )
    else:
        raw = _GuardedRaw(fileobj, filename=filename, owns_inner=False, max_bytes=None)
    return ByteStream(raw)


def kind_of_value(value: Any) -> str:
    """A JSON value's kind as a person would name it, for "row 3 is an array, not an object"."""
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"


def no_rows_error(filename: str, what: str) -> FileFormatError:
    return FileFormatError(
        f"{filename}: {what}, so there is nothing to upsert. Check that you chose the right "
        "file, then upload one with at least one entity."
    )


def not_utf8_error(filename: str, where: str) -> FileFormatError:
    return FileFormatError(
        f"{filename}: the text is not UTF-8 ({where}). Save or export the file as UTF-8 and "
        "upload it again."
    )


def spool_to_temporary_file(stream: BinaryIO) -> BinaryIO:
    """A seekable copy on disk, for Parquet that arrives gzip-compressed, as a stream, or
    without a file descriptor to hand to its decoder.

    Memory stays at one copy buffer; the disk holds the decompressed file until it is closed.
    """
    spooled = tempfile.TemporaryFile()  # noqa: SIM115 - the caller closes it
    try:
        shutil.copyfileobj(stream, spooled, 1024 * 1024)
    except BaseException:
        spooled.close()
        raise
    spooled.seek(0)
    return spooled
