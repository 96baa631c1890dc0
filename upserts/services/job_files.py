"""A job's file wherever it lies: in the upload storage, as an object in a bucket that a
cluster admin allowed (``SourceBucket``), or at an https:// address under a prefix one
allowed (``SourceAddress``), read in place with what that source holds to reach it.

A file already in object storage, or served by another system, need not be downloaded and
uploaded again: a job may name ``s3://bucket/key`` or ``https://…`` instead of sending the
file. Only what an admin opened is reachable.
"""

from dataclasses import dataclass
from typing import BinaryIO, cast

from upserts.errors import ConsoleError
from upserts.http_source import HttpLocation, open_address
from upserts.http_source import head as head_address
from upserts.models import SourceAddress, SourceBucket, UpsertJob, cluster_url_network_problem
from upserts.object_store import ObjectLocation, open_object
from upserts.services.stored_files import open_stored

SCHEME = "s3://"


class SourceRefused(ConsoleError):
    """The reference names nothing a job may read; the message says why."""

    code = "source_refused"


@dataclass(frozen=True)
class ObjectReference:
    bucket: str
    key: str

    @classmethod
    def parse(cls, text: str) -> "ObjectReference":
        text = text.strip()
        bucket, _, key = text.removeprefix(SCHEME).partition("/")
        if not text.startswith(SCHEME) or not bucket or not key or key.endswith("/"):
            raise SourceRefused(
                f"{text!r} is not a file a job can read where it lies: name one as "
                "s3://bucket/path/to/file.parquet or https://host/path/to/file.parquet."
            )
        return cls(bucket, key)

    def __str__(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.key}"


@dataclass(frozen=True)
class ObjectFacts:
    """What the source says of the file when the job is made: the audit records it."""

    size: int
    etag: str


@dataclass(frozen=True)
class FileInPlace:
    """A file a job reads where it lies, and the allowed source that reaches it."""

    reference: str
    bucket: SourceBucket | None = None
    address: SourceAddress | None = None

    @property
    def filename(self) -> str:
        return self.reference.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1] or "download"

    def facts(self) -> ObjectFacts:
        try:
            if self.address is not None:
                found = head_address(
                    _http(self.address, self.reference), self.address.authorization
                )
                return ObjectFacts(found.size, found.etag)
            assert self.bucket is not None
            location, credentials = _location(self.bucket, ObjectReference.parse(self.reference))
            head = location.client(credentials).head_object(
                Bucket=location.bucket, Key=location.key
            )
            return ObjectFacts(int(head["ContentLength"]), str(head.get("ETag", "")).strip('"'))
        except Exception as exc:  # the source's own words say what is wrong
            raise SourceRefused(f"{self.reference} cannot be read: {exc}") from exc

    def open(self, size: int | None = None) -> BinaryIO:
        if self.address is not None:
            if size is None:
                size = self.facts().size
            return cast(
                BinaryIO,
                open_address(
                    _http(self.address, self.reference),
                    size=size,
                    authorization=self.address.authorization,
                ),
            )
        assert self.bucket is not None
        location, credentials = _location(self.bucket, ObjectReference.parse(self.reference))
        return cast(BinaryIO, open_object(location, credentials=credentials, size=size))


def find_source(reference: str) -> FileInPlace:
    """The allowed source of ``s3://bucket/key`` or an https:// address; SourceRefused if none."""
    text = reference.strip()
    if text.startswith("https://"):
        return FileInPlace(text, address=_allowed_address(text))
    parsed = ObjectReference.parse(text)
    return FileInPlace(str(parsed), bucket=_allowed_bucket(parsed))


# The most files one prefix may become jobs of, at once.
MAX_FILES_UNDER_PREFIX = 1000


def files_under(reference: str) -> list[FileInPlace]:
    """Each object under ``s3://bucket/prefix/`` (the reference ends with "/"), in key order,
    within an allowed bucket's prefix."""
    text = reference.strip()
    bucket, _, prefix = text.removeprefix(SCHEME).partition("/")
    if not text.startswith(SCHEME) or not bucket or not text.endswith("/"):
        raise SourceRefused(f"{text!r} is not a prefix: name one as s3://bucket/path/.")
    source = _allowed_bucket(ObjectReference(bucket, prefix))
    location, credentials = _location(source, ObjectReference(bucket, prefix))
    client = location.client(credentials)
    keys: list[str] = []
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys += [item["Key"] for item in page.get("Contents", [])]
            if len(keys) > MAX_FILES_UNDER_PREFIX:
                raise SourceRefused(
                    f"{text} holds more than {MAX_FILES_UNDER_PREFIX:,} files; name a narrower "
                    "prefix."
                )
    except SourceRefused:
        raise
    except Exception as exc:  # the store's own words say what is wrong
        raise SourceRefused(f"{text} cannot be listed: {exc}") from exc
    files = [key for key in sorted(keys) if not key.endswith("/")]
    if not files:
        raise SourceRefused(f"{text} holds no files.")
    return [FileInPlace(f"{SCHEME}{bucket}/{key}", bucket=source) for key in files]


def _allowed_bucket(reference: ObjectReference) -> SourceBucket:
    """The enabled source bucket whose prefix holds the key (the longest prefix wins)."""
    candidates = SourceBucket.objects.filter(bucket=reference.bucket, is_enabled=True)
    matching = [c for c in candidates if reference.key.startswith(c.prefix)]
    if not matching:
        raise SourceRefused(
            f"{reference} is not in a bucket a cluster admin has allowed jobs to read; ask one "
            "to add it under Source buckets in the admin, or upload the file."
        )
    return max(matching, key=lambda source: len(source.prefix))


def _allowed_address(url: str) -> SourceAddress:
    candidates = SourceAddress.objects.filter(is_enabled=True)
    matching = [c for c in candidates if url.startswith(c.url_prefix)]
    if not matching:
        raise SourceRefused(
            f"{url} is not under an address a cluster admin has allowed jobs to read; ask one "
            "to add it under Source addresses in the admin, or upload the file."
        )
    problem = cluster_url_network_problem(url)
    if problem:
        raise SourceRefused(problem)
    return max(matching, key=lambda source: len(source.url_prefix))


def _location(
    source: SourceBucket, reference: ObjectReference
) -> tuple[ObjectLocation, dict[str, str]]:
    location = ObjectLocation(
        bucket=source.bucket,
        key=reference.key,
        endpoint_url=source.endpoint_url or None,
        region=source.region or None,
        addressing_style="path" if source.path_style else None,
    )
    credentials = {}
    if source.access_key_id:
        credentials = {
            "AWS_ACCESS_KEY_ID": source.access_key_id,
            "AWS_SECRET_ACCESS_KEY": source.secret_access_key,
        }
    return location, credentials


def _http(source: SourceAddress, url: str) -> HttpLocation:
    return HttpLocation(url=url, verify=source.verify_tls)


def open_job_file(job: UpsertJob) -> BinaryIO:
    """The job's file as a seekable stream, from where it lies."""
    if job.source_file.name:
        return open_stored(job.source_file.name)
    if not job.source_reference or (job.source_bucket is None and job.source_address is None):
        raise SourceRefused(f"Job {job.pk} has no file.")
    place = FileInPlace(job.source_reference, job.source_bucket, job.source_address)
    return place.open(size=job.size_bytes or None)
