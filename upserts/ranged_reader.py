"""A remote file as a seekable raw stream: one streaming request from the position asked
for, a seek only moving where the next one starts, and a stream cut off mid-way reopened
where it stopped. ``upserts.object_store`` (S3) and ``upserts.http_source`` (https) say how
to open the stream; nothing here knows about either, or about Django.
"""

import io
from typing import Any

# A stream cut off mid-way (a dropped connection, a server restarting) is opened again where
# it stopped, this many times in a row before the error goes up.
REOPENS = 4


class RangedReader(io.RawIOBase):
    """Subclasses give ``name``, ``size`` and ``_open(position)``, and say which errors of a
    stream mean it was cut off (``_cut_off``)."""

    name: str
    size: int

    def __init__(self) -> None:
        super().__init__()
        self._position = 0
        self._body: Any = None

    def _open(self, position: int) -> Any:
        """A file-like body that reads the file from ``position`` on."""
        raise NotImplementedError

    def _cut_off(self, exc: Exception) -> bool:
        raise NotImplementedError

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self.size}[whence]
        position = max(0, base + offset)
        if position != self._position:
            self._close_body()
            self._position = position
        return position

    def readinto(self, buffer: Any) -> int:
        if self._position >= self.size or not len(buffer):
            return 0
        for attempt in range(REOPENS + 1):
            try:
                if self._body is None:
                    self._body = self._open(self._position)
                data = self._body.read(len(buffer))
                break
            except Exception as exc:  # each client's stream errors share no base of their own
                self._close_body()
                if attempt == REOPENS or not self._cut_off(exc):
                    raise OSError(f"reading {self.name} at byte {self._position:,}: {exc}") from exc
        if not data:
            # The source says the file ends before its size: it changed under the reader.
            raise OSError(f"{self.name} ended at byte {self._position:,} of {self.size:,}")
        count = len(data)
        buffer[:count] = data
        self._position += count
        return count

    def _close_body(self) -> None:
        if self._body is not None:
            try:
                self._body.close()
            finally:
                self._body = None

    def close(self) -> None:
        self._close_body()
        super().close()
