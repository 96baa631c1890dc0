"""Stored upload files: opened for reading wherever they are stored, and, when no job names
them, removed, so a crash cannot fill the disk.

``create_job`` stores the file and creates its job in one transaction and removes the file when
that transaction fails. What it cannot clean is a process killed in between (or a caller's
outer transaction rolled back later): the file is stored, the job never committed. Such a file
belongs to nobody; once older than a grace period, longer than any upload takes from storing
its file to committing its job, it is removed.
"""

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, BinaryIO, cast

from django.core.files.storage import Storage
from django.utils import timezone

from upserts.models import UPLOAD_DIRECTORY, UpsertJob
from upserts.object_store import ObjectLocation, open_object

logger = logging.getLogger(__name__)

_LOOKUP_CHUNK = 500


def upload_storage() -> Storage:
    return UpsertJob._meta.get_field("source_file").storage  # type: ignore[attr-defined,no-any-return]


@dataclass(frozen=True)
class StoredObject:
    """Where a stored name lies in the S3 storage, for what django-storages does not do
    itself (ranged reads, multipart uploads)."""

    client: Any
    bucket: str
    key: str


def stored_object(name: str) -> StoredObject | None:
    """The object a stored name is, when the storage is S3; None on the local disk."""
    storage = upload_storage()
    if not is_s3(storage):
        return None
    s3 = cast(Any, storage)
    # The key of a name, prefix and all, as django-storages makes it.
    key = s3._normalize_name(name)  # noqa: SLF001
    return StoredObject(s3.connection.meta.client, s3.bucket_name, key)


def open_stored(name: str) -> BinaryIO:
    """A stored file as a seekable binary stream, read from the object store as it goes
    when the storage is S3 (django-storages' own files download the whole object first)."""
    storage = upload_storage()
    if is_s3(storage):
        s3 = cast(Any, storage)
        location = ObjectLocation(
            bucket=s3.bucket_name,
            key=s3._normalize_name(name),  # noqa: SLF001 - the key of a name, prefix and all
            endpoint_url=s3.endpoint_url,
            region=s3.region_name,
            addressing_style=s3.addressing_style,
            verify=s3.verify,
        )
        return cast(BinaryIO, open_object(location, credentials=_credentials(s3)))
    return cast(BinaryIO, storage.open(name, "rb"))


def ensure_bucket() -> str:
    """The S3 bucket of uploads created when missing (a fresh MinIO, say); what was done."""
    storage = upload_storage()
    if not is_s3(storage):
        return "Uploads are stored on the local filesystem; there is no bucket to create."
    s3 = cast(Any, storage)
    client = s3.connection.meta.client
    from botocore.exceptions import ClientError

    try:
        client.head_bucket(Bucket=s3.bucket_name)
        return f"Bucket {s3.bucket_name} exists."
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket"):
            raise
    client.create_bucket(Bucket=s3.bucket_name)
    return f"Bucket {s3.bucket_name} created."


def is_s3(storage: Storage) -> bool:
    try:
        from storages.backends.s3 import S3Storage
    except ImportError:  # django-storages is only needed when the storage is S3
        return False
    return isinstance(storage, S3Storage)


def _credentials(storage: Any) -> dict[str, str]:
    """The storage's credentials, as the environment variables a child process reads."""
    import boto3

    if storage.session_profile:
        session = boto3.Session(profile_name=storage.session_profile)
    else:
        session = boto3.Session(
            aws_access_key_id=storage.access_key,
            aws_secret_access_key=storage.secret_key,
            aws_session_token=storage.security_token,
        )
    found = session.get_credentials()
    if found is None:
        return {}
    frozen = found.get_frozen_credentials()
    values = {
        "AWS_ACCESS_KEY_ID": frozen.access_key,
        "AWS_SECRET_ACCESS_KEY": frozen.secret_key,
        "AWS_SESSION_TOKEN": frozen.token,
    }
    return {name: value for name, value in values.items() if value}


def remove_orphan_uploads(*, grace_seconds: float) -> list[str]:
    """Remove stored uploads older than ``grace_seconds`` that no job names; their names."""
    storage = upload_storage()
    if not storage.exists(UPLOAD_DIRECTORY):
        return []
    _, files = storage.listdir(UPLOAD_DIRECTORY)
    names = [f"{UPLOAD_DIRECTORY}/{file}" for file in files]
    cutoff = timezone.now() - timedelta(seconds=grace_seconds)
    removed = []
    for start in range(0, len(names), _LOOKUP_CHUNK):
        chunk = names[start : start + _LOOKUP_CHUNK]
        named = set(
            UpsertJob.objects.filter(source_file__in=chunk).values_list("source_file", flat=True)
        )
        for name in chunk:
            if name not in named and storage.get_modified_time(name) < cutoff:
                storage.delete(name)
                removed.append(name)
    if removed:
        logger.warning("Removed %d stored upload(s) that no job names: %s", len(removed), removed)
    return removed
