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

from upserts.ranged_reader import RangedReader

BUFFER_BYTES = 1024 * 1024
_TIMEOUT_SECONDS = 60
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


class HttpReader(RangedReader):
    """The file at an address as a seekable, readable raw stream of ranged GETs."""

    def __init__(self, location: HttpLocation, *, size: int, authorization: str = "") -> None:
        super().__init__()
        self.location = location
        self.name = location.url
        self.size = size
        self.authorization = authorization
        self._session = requests.Session()

    def _open(self, position: int) -> Any:
        answer = self._session.get(
            self.location.url,
            headers=_headers(self.authorization, Range=f"bytes={position}-"),
            stream=True,
            timeout=_TIMEOUT_SECONDS,
            verify=self.location.verify,
            allow_redirects=False,
        )
        if answer.status_code != 206 and not (answer.status_code == 200 and not position):
            answer.close()
            raise RangesRefused(
                f"{self.location.url} answered HTTP {answer.status_code} to a range request; "
                "the server must serve byte ranges (Accept-Ranges: bytes)"
            )
        return answer.raw

    def _cut_off(self, exc: Exception) -> bool:
        # A body read straight from urllib3 raises urllib3's errors, not requests'.
        from urllib3.exceptions import HTTPError as Urllib3Error

        return not isinstance(exc, RangesRefused) and isinstance(
            exc, requests.ConnectionError | requests.Timeout | Urllib3Error | OSError
        )

    def close(self) -> None:
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
