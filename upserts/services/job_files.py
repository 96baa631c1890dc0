"""A job's file wherever it lies: in the upload storage, or as an object in a bucket that a
cluster admin has allowed (``SourceBucket``), read in place with that bucket's credentials.

A file already in object storage need not be downloaded and uploaded again: a job may name
``s3://bucket/key`` instead of sending the file. The key must lie under an allowed bucket's
prefix, so a job can reach only what an admin opened to it.
"""

from dataclasses import dataclass
from typing import BinaryIO, cast

from upserts.errors import ConsoleError
from upserts.models import SourceBucket, UpsertJob
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
                f"{text!r} is not an object: name one as s3://bucket/path/to/file.parquet."
            )
        return cls(bucket, key)

    def __str__(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.key}"

    @property
    def filename(self) -> str:
        return self.key.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class ObjectFacts:
    """What the store says of an object when the job is made: the audit records it."""

    size: int
    etag: str


def allowed_bucket(reference: ObjectReference) -> SourceBucket:
    """The enabled source bucket whose prefix holds the key (the longest prefix wins)."""
    candidates = SourceBucket.objects.filter(bucket=reference.bucket, is_enabled=True)
    matching = [c for c in candidates if reference.key.startswith(c.prefix)]
    if not matching:
        raise SourceRefused(
            f"{reference} is not in a bucket a cluster admin has allowed jobs to read; ask one "
            "to add it under Source buckets in the admin, or upload the file."
        )
    return max(matching, key=lambda source: len(source.prefix))


def _location(source: SourceBucket, key: str) -> tuple[ObjectLocation, dict[str, str]]:
    location = ObjectLocation(
        bucket=source.bucket,
        key=key,
        endpoint_url=source.endpoint_url or None,
        region=source.region or None,
        addressing_style="path" if source.path_style else None,
    )
    credentials = (
        {
            "AWS_ACCESS_KEY_ID": source.access_key_id,
            "AWS_SECRET_ACCESS_KEY": source.secret_access_key,
        }
        if source.access_key_id
        else {}
    )
    return location, credentials


def object_facts(source: SourceBucket, reference: ObjectReference) -> ObjectFacts:
    location, credentials = _location(source, reference.key)
    client = location.client(credentials)
    try:
        head = client.head_object(Bucket=location.bucket, Key=location.key)
    except Exception as exc:  # botocore's errors: the store's own words say what is wrong
        raise SourceRefused(f"{reference} cannot be read: {exc}") from exc
    return ObjectFacts(size=int(head["ContentLength"]), etag=str(head.get("ETag", "")).strip('"'))


def open_object_of(source: SourceBucket, reference: ObjectReference) -> BinaryIO:
    location, credentials = _location(source, reference.key)
    return cast(BinaryIO, open_object(location, credentials=credentials))


def open_job_file(job: UpsertJob) -> BinaryIO:
    """The job's file as a seekable stream, from where it lies."""
    if job.source_file.name:
        return open_stored(job.source_file.name)
    if not job.source_reference or job.source_bucket is None:
        raise SourceRefused(f"Job {job.pk} has no file.")
    return open_object_of(job.source_bucket, ObjectReference.parse(job.source_reference))
