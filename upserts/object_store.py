"""A stored file read straight from an S3-compatible object store, never downloaded whole.

A worker on any host reads a job's file from the bucket as it goes: one ranged GET streams it
from the position asked for, and a seek only moves where the next GET starts, so JSON Lines
and CSV are read in one request from their checkpoint on, and Parquet fetches its footer and
then only the row groups it reads. Nothing here knows about Django: the storage settings are
turned into an ``ObjectLocation`` by ``upserts.services.stored_files``, and the Parquet
decoder process opens the object again from it.
"""

import io
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from upserts.ranged_reader import RangedReader

# What a reader asks of the stream at a time; the object arrives as fast as it is read.
BUFFER_BYTES = 1024 * 1024
# How boto3 reads credentials from the environment: the decoder process gets them this way,
# never on its command line.
CREDENTIAL_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


@dataclass(frozen=True)
class ObjectLocation:
    """Where an object is, and how to reach its store; the credentials are not part of it."""

    bucket: str
    key: str
    endpoint_url: str | None = None
    region: str | None = None
    addressing_style: str | None = None  # "path" for MinIO and other self-hosted stores
    verify: bool | str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def client(self, credentials: Mapping[str, str] | None = None) -> Any:
        """A boto3 client for the store: with ``credentials`` (as CREDENTIAL_VARIABLES name
        them), or else from boto3's usual chain (environment, profile, instance role)."""
        import boto3
        from botocore.config import Config

        given = credentials or {}
        session = boto3.session.Session(
            aws_access_key_id=given.get("AWS_ACCESS_KEY_ID"),
            aws_secret_access_key=given.get("AWS_SECRET_ACCESS_KEY"),
            aws_session_token=given.get("AWS_SESSION_TOKEN"),
        )

        config = Config(
            s3={"addressing_style": self.addressing_style} if self.addressing_style else {},
            retries={"max_attempts": 5, "mode": "standard"},
        )
        return session.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            verify=self.verify,
            config=config,
        )


class ObjectReader(RangedReader):
    """The object as a seekable, readable raw stream of ranged GETs."""

    def __init__(
        self,
        location: ObjectLocation,
        *,
        credentials: Mapping[str, str] | None = None,
        size: int | None = None,
    ) -> None:
        super().__init__()
        self.location = location
        self.name = f"s3://{location.bucket}/{location.key}"
        self.credentials = dict(credentials or {})
        self._client = location.client(self.credentials)
        if size is None:
            head = self._client.head_object(Bucket=location.bucket, Key=location.key)
            size = int(head["ContentLength"])
        self.size = size

    def _open(self, position: int) -> Any:
        answer = self._client.get_object(
            Bucket=self.location.bucket, Key=self.location.key, Range=f"bytes={position}-"
        )
        return answer["Body"]

    def _cut_off(self, exc: Exception) -> bool:
        return _cut_off(exc)


def _cut_off(exc: Exception) -> bool:
    from botocore.exceptions import ConnectionError as BotoConnectionError
    from botocore.exceptions import IncompleteReadError, ReadTimeoutError, ResponseStreamingError
    from urllib3.exceptions import ProtocolError

    return isinstance(
        exc,
        BotoConnectionError
        | IncompleteReadError
        | ReadTimeoutError
        | ResponseStreamingError
        | ProtocolError,
    )


def open_object(
    location: ObjectLocation,
    *,
    credentials: Mapping[str, str] | None = None,
    size: int | None = None,
) -> io.BufferedReader:
    """The object as a buffered binary file: read, seek, tell, peek."""
    return io.BufferedReader(
        ObjectReader(location, credentials=credentials, size=size), buffer_size=BUFFER_BYTES
    )


def object_reader_of(source: Any) -> ObjectReader | None:
    """The object reader under a stream from ``open_object``; None for any other stream."""
    raw = getattr(source, "raw", None)
    return raw if isinstance(raw, ObjectReader) else None
