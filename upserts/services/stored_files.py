"""Stored upload files that no job names: removed, so a crash cannot fill the disk.

``create_job`` stores the file and creates its job in one transaction and removes the file when
that transaction fails. What it cannot clean is a process killed in between (or a caller's
outer transaction rolled back later): the file is stored, the job never committed. Such a file
belongs to nobody; once older than a grace period, longer than any upload takes from storing
its file to committing its job, it is removed.
"""

import logging
from datetime import timedelta

from django.core.files.storage import Storage
from django.utils import timezone

from upserts.models import UPLOAD_DIRECTORY, UpsertJob

logger = logging.getLogger(__name__)

_LOOKUP_CHUNK = 500


def upload_storage() -> Storage:
    return UpsertJob._meta.get_field("source_file").storage  # type: ignore[attr-defined,no-any-return]


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
