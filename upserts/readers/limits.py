"""What one row may cost to read, checked on the text before any value is built.

Parsed JSON takes up to some 30 times the memory of its text (a list of empty objects), and
parsers and checks recurse once per level of nesting; a few hundred bytes of gzip can hold a
row nested 15 000 levels deep or one 40 MB array. So every reader bounds the bytes of one row
and its nesting while it streams, and a row past either bound fails alone, with its reason.
"""

import io
import re
import secrets
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from upserts.readers.base import FileFormatError

# How much of a row that is too big to read is kept to show what it was.
SAMPLE_BYTES = 1024


@dataclass(frozen=True)
class ReadLimits:
    """Bounds on one row; the defaults are what a reader uses when its caller names none."""

    max_row_bytes: int = 4 * 1024 * 1024
    max_depth: int = 64
    # Rows a Parquet record batch may decode to, in bytes of Arrow data.
    max_batch_bytes: int = 32 * 1024 * 1024
    # Address space a Parquet decoder process may map beyond what it maps at start.
    max_decode_bytes: int = 256 * 1024 * 1024

    def too_big(self) -> str:
        return f"is more than {self.max_row_bytes:,} bytes, the limit for one row"

    def too_deep(self) -> str:
        return f"is nested more than {self.max_depth} levels deep, the limit for one row"


DEFAULT_LIMITS = ReadLimits()

# Below this many bytes two bytes.count beat numpy's one call.
_NUMPY_COUNT_FROM = 4096
_CHARS = (b"[", b"]", b"{", b"}", b'"', b"\\")
_BRACKETS = re.compile(rb"[\[\]{}]")
_STRUCTURE = re.compile(rb'[\[\]{}"]')
_STRING_END = re.compile(rb'["\\]')


def nesting_exceeds(text: bytes, limit: int, *, json_strings: bool = True) -> bool:
    """Whether brackets in ``text`` nest deeper than ``limit``.

    Brackets inside JSON strings do not count when ``json_strings`` is set; for CSV, whose
    quotes are not JSON's, every bracket counts (an over-estimate only for brackets in text).
    A text with fewer brackets than the limit cannot exceed it, which one count settles for
    nearly every row: numpy's, over a long text, is vectorized ("[" and "{" differ only in the
    bit 0x20), a third of what two ``bytes.count`` cost on a row of 768 floats.
    """
    if len(text) <= limit:
        return False
    if len(text) < _NUMPY_COUNT_FROM:
        brackets = text.count(b"[") + text.count(b"{")
    else:
        brackets = int(np.count_nonzero((np.frombuffer(text, dtype=np.uint8) | 0x20) == 0x7B))
    if brackets <= limit:
        return False
    depth = 0
    position = 0
    pattern = _STRUCTURE if json_strings else _BRACKETS
    while True:
        found = pattern.search(text, position)
        if found is None:
            return False
        char = text[found.start()]
        position = found.end()
        if char == 0x22:  # a string: skip to its closing quote
            while True:
                end = _STRING_END.search(text, position)
                if end is None:
                    return False
                position = end.end() + (1 if text[end.start()] == 0x5C else 0)
                if text[end.start()] == 0x22:
                    break
        elif char in b"[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth = max(0, depth - 1)


def _found(position: int, size: int) -> int:
    return size if position == -1 else position


class JsonRowGuard(io.RawIOBase):
    """The JSON text of a file, handed to the parser one whole top-level element at a time.

    An element (a row) is held back until it closes; one that grows past ``max_row_bytes`` or
    nests past ``max_depth`` is dropped and the parser is given a marker string in its place,
    so that row fails with its reason and the rows after it are read as usual. Memory stays at
    one row's text, and the parser never builds what it was not allowed to.
    """

    def __init__(self, inner: Any, *, filename: str, limits: ReadLimits, row_depth: int) -> None:
        """``row_depth`` is how deep the rows lie: 0 for values one after another, 1 in a
        top-level array, 2 in the array of Milvus' ``{"rows": [...]}`` layout."""
        super().__init__()
        self._inner = inner
        self._filename = filename
        self._limits = limits
        self._base = row_depth
        self.marker = "\x00dropped row " + secrets.token_hex(8)
        self._marker_json = b'"\\u0000dropped row ' + self.marker[-16:].encode() + b'"'
        # Why each dropped row was dropped, with the start of its text, in file order.
        self.dropped: deque[tuple[str, str]] = deque()
        self._out = bytearray()
        self._released = 0  # bytes of _out the parser may have
        self._depth = 0
        self._in_string = False
        self._escaped = False
        self._element_start: int | None = None  # where the open element starts in _out
        self._dropping: str | None = None  # the reason, while the open element is dropped
        self._since_structure = 0
        self._eof = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while self._released == 0 and not self._eof:
            chunk = self._inner.read(256 * 1024)
            if not chunk:
                self._eof = True
                self._released = len(self._out)  # an open element is cut short: let it fail
                break
            self._scan(chunk)
        count = min(len(buffer), self._released)
        buffer[:count] = self._out[:count]
        del self._out[:count]
        self._released -= count
        if self._element_start is not None:
            self._element_start -= count
        return count

    def _scan(self, chunk: bytes) -> None:
        copy_from: int | None = 0 if self._dropping is None else None
        size = len(chunk)
        find = chunk.find
        # The next of each of [ ] { } " \ at or after where the scan is: bytes.find runs at
        # memory speed, and only the one consumed (or passed over) is looked for again.
        upcoming = [_found(find(char), size) for char in _CHARS]
        position = 0
        base = self._base
        while True:
            if self._escaped:
                self._escaped = False
                position += 1
            if self._in_string:
                for index in (4, 5):
                    if upcoming[index] < position:
                        upcoming[index] = _found(find(_CHARS[index], position), size)
                quote, backslash = upcoming[4], upcoming[5]
                if backslash < quote:
                    position = backslash + 1
                    self._escaped = True
                    if position >= size:
                        break
                    continue
                if quote >= size:
                    break
                position = quote + 1
                self._in_string = False
                if self._depth == base:
                    copy_from = self._end_element(chunk, copy_from, position)
                continue
            start = min(upcoming[0], upcoming[1], upcoming[2], upcoming[3], upcoming[4])
            if start < position:
                index = upcoming.index(start)
                upcoming[index] = _found(find(_CHARS[index], position), size)
                continue
            if start >= size:
                break
            char = chunk[start]
            position = start + 1
            self._since_structure = 0
            if char == 0x22 or char == 0x5B or char == 0x7B:
                if self._depth == base and self._element_start is None:
                    assert copy_from is not None
                    self._element_start = len(self._out) + start - copy_from
                if char == 0x22:
                    self._in_string = True
                    continue
                self._depth += 1
                if self._dropping is None and self._depth - base > self._limits.max_depth:
                    self._drop(chunk, copy_from, position, self._limits.too_deep())
                    copy_from = None
            else:
                self._depth = max(0, self._depth - 1)
                if self._depth == base:
                    copy_from = self._end_element(chunk, copy_from, position)
        position = min(position, size)
        if copy_from is not None:
            self._out += memoryview(chunk)[copy_from:]
        if self._element_start is None:
            self._released = len(self._out)
            # Text between rows that is no row at all (a number of a billion digits) would be
            # buffered whole by the parser.
            self._since_structure += max(0, size - position)
            if self._since_structure > self._limits.max_row_bytes:
                raise FileFormatError(
                    f"{self._filename}: more than {self._limits.max_row_bytes:,} bytes of JSON "
                    "in a row hold no object or array, so this is not a file of entities."
                )
        elif self._dropping is None:
            held = len(self._out) - self._element_start
            if held > self._limits.max_row_bytes:
                self._drop(b"", None, 0, self._limits.too_big())

    def _drop(self, chunk: bytes, copy_from: int | None, position: int, reason: str) -> None:
        """Stop holding the open element: keep its start as a sample, forget the rest."""
        assert self._element_start is not None
        if copy_from is not None:
            self._out += memoryview(chunk)[copy_from:position]
        sample = bytes(self._out[self._element_start : self._element_start + SAMPLE_BYTES])
        del self._out[self._element_start :]
        self.dropped.append((reason, sample.decode(errors="replace")))
        self._dropping = reason

    def _end_element(self, chunk: bytes, copy_from: int | None, position: int) -> int:
        if self._dropping is not None:
            self._out += self._marker_json
            self._dropping = None
        else:
            assert copy_from is not None
            self._out += memoryview(chunk)[copy_from:position]
        self._element_start = None
        self._released = len(self._out)
        return position
