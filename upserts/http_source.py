"""A file read from an https:// address as a seekable stream, never downloaded whole.

Like ``upserts.object_store`` for S3: one ranged GET streams the file from where reading is,
and a seek moves where the next GET starts, so the Parquet decoder fetches the footer and the
row groups it reads. Redirects are never followed (an allowed address cannot send the
console elsewhere). Nothing here knows about Django.
"""

import io
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import requests

BUFFER_BYTES = 1024 * 1024
_TIMEOUT_SECONDS = 60
_REOPENS = 4
# The decoder process reads the header this way, never on its command line.
AUTHORIZATION_VARIABLE = "UPSERTS_SOURCE_AUTHORIZATION"


@dataclass(frozen=True)
class HttpLocation:
    url: str
    verify: bool = True

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class RangesRefused(OSError):
    """The server does not serve byte ranges, which reading from an offset needs."""


class HttpFacts:
    def __init__(self, size: int, etag: str) -> None:
        self.size = size
        self.etag = etag


def head(location: HttpLocation, authorization: str = "") -> HttpFacts:
    answer = requests.head(
        location.url,
        headers=_headers(authorization),
        timeout=_TIMEOUT_SECONDS,
        verify=location.verify,
        allow_redirects=False,
    )
    if answer.status_code != 200:
        raise OSError(f"{location.url} answered HTTP {answer.status_code}")
    length = answer.headers.get("Content-Length")
    if length is None or not length.isdigit():
        raise OSError(f"{location.url} does not say its size (Content-Length)")
    return HttpFacts(int(length), answer.headers.get("ETag", "").strip('"'))


def _headers(authorization: str, **more: str) -> dict[str, str]:
    headers = {"Accept-Encoding": "identity", **more}
    if authorization:
        headers["Authorization"] = authorization
    return headers


class HttpReader(io.RawIOBase):
    """The file at an address as a seekable, readable raw stream of ranged GETs."""

    def __init__(self, location: HttpLocation, *, size: int, authorization: str = "") -> None:
        super().__init__()
        self.location = location
        self.size = size
        self.authorization = authorization
        self._position = 0
        self._body: Any = None
        self._session = requests.Session()

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

    def _open(self) -> Any:
        answer = self._session.get(
            self.location.url,
            headers=_headers(self.authorization, Range=f"bytes={self._position}-"),
            stream=True,
            timeout=_TIMEOUT_SECONDS,
            verify=self.location.verify,
            allow_redirects=False,
        )
        if answer.status_code != 206 and not (answer.status_code == 200 and not self._position):
            answer.close()
            raise RangesRefused(
                f"{self.location.url} answered HTTP {answer.status_code} to a range request; "
                "the server must serve byte ranges (Accept-Ranges: bytes)"
            )
        return answer.raw

    def readinto(self, buffer: Any) -> int:
        if self._position >= self.size or not len(buffer):
            return 0
        for attempt in range(_REOPENS + 1):
            try:
                if self._body is None:
                    self._body = self._open()
                data = self._body.read(len(buffer))
                break
            except RangesRefused:
                raise
            except (requests.ConnectionError, requests.Timeout, OSError) as exc:
                self._close_body()
                if attempt == _REOPENS:
                    raise OSError(
                        f"reading {self.location.url} at byte {self._position:,}: {exc}"
                    ) from exc
        if not data:
            raise OSError(f"{self.location.url} ended at byte {self._position:,} of {self.size:,}")
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
        self._session.close()
        super().close()


def open_address(
    location: HttpLocation, *, size: int, authorization: str = ""
) -> io.BufferedReader:
    return io.BufferedReader(
        HttpReader(location, size=size, authorization=authorization), buffer_size=BUFFER_BYTES
    )


def http_reader_of(source: Any) -> HttpReader | None:
    raw = getattr(source, "raw", None)
    return raw if isinstance(raw, HttpReader) else None


def credentials_environment(reader: HttpReader) -> Mapping[str, str]:
    return {AUTHORIZATION_VARIABLE: reader.authorization} if reader.authorization else {}
