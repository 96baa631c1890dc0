"""Files sent in parts (tus 1.0.0) written straight into the upload storage as they arrive.

The web process holds at most one part buffer (``PART_BYTES``) of any upload: a local file is
appended to at the offset the client sends from; on S3 each full part becomes a part of a
multipart upload, and what is left of a part cut short (a dropped connection, a closed lid)
waits in a tail object in the bucket, so any web host can take the next part. ``offset`` is
saved as the bytes are safe, so a web process killed mid-part loses only what it had not
stored, and the client resends from there. Once every byte is in, the upload is one stored
file, and ``submit_resumable_upload`` makes it a job through the one submit service.
"""

import os
import tempfile
from collections.abc import Callable
from datetime import timedelta
from typing import IO, Any

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from upserts.errors import ConsoleError
from upserts.models import (
    RESUMABLE_DIRECTORY,
    AuditAction,
    ResumableUpload,
    ResumableUploadStatus,
    safe_suffix,
)
from upserts.services.audit import record_event
from upserts.services.stored_files import StoredObject, stored_object, upload_storage

# S3 takes parts of at least 5 MiB but for the last; the browser client sends parts this size.
PART_BYTES = 8 * 1024 * 1024
_READ_BYTES = 1024 * 1024
# A local upload saves its offset at least this often while a part streams in.
_SAVE_EVERY_BYTES = 16 * 1024 * 1024

Actor = Any


class UploadRefused(ConsoleError):
    """The part or the upload cannot be taken; the message says why."""

    code = "upload_refused"
    http_status = 400


class UploadTooLarge(UploadRefused):
    """Past the upload limit, or past the length the upload said it has (tus answers 413)."""

    code = "request_too_large"
    http_status = 413


class OffsetMismatch(UploadRefused):
    """The client sent from another offset than the one stored (tus answers 409)."""

    code = "offset_mismatch"
    http_status = 409


class UploadGone(UploadRefused):
    """Cancelled, expired or already made a job (tus answers 410)."""

    code = "upload_gone"
    http_status = 410


def _expiry() -> Any:
    return timezone.now() + timedelta(hours=settings.RESUMABLE_UPLOAD_EXPIRY_HOURS)


def create_upload(
    *, length: int, metadata: dict[str, str], actor: Actor, client_ip: str | None
) -> ResumableUpload:
    """A new upload of ``length`` bytes, refused at once past the upload limit."""
    if length <= 0:
        raise UploadRefused("An upload needs its length (Upload-Length), more than 0 bytes.")
    if length > settings.UPLOAD_MAX_BYTES:
        raise UploadTooLarge(
            f"The file is {length:,} bytes; the largest file accepted is "
            f"{settings.UPLOAD_MAX_BYTES:,} bytes. Split the file, or compress it with gzip."
        )
    filename = (metadata.get("filename") or "upload").strip()[:255] or "upload"
    upload = ResumableUpload(
        filename=filename,
        length=length,
        metadata=metadata,
        created_by=actor if isinstance(actor, AbstractBaseUser) else None,  # type: ignore[misc]
        expires_at=_expiry(),
    )
    upload.storage_name = f"{RESUMABLE_DIRECTORY}/{upload.id.hex}{safe_suffix(filename)}"
    with transaction.atomic():
        upload.save()
        record_event(
            action=AuditAction.UPLOAD_CREATED,
            actor=actor,
            target=upload,
            client_ip=client_ip,
            details={"file": filename, "length": length},
        )
    return upload


def receive_part(
    upload: ResumableUpload,
    *,
    offset: int,
    read: Callable[[int], bytes],
    content_length: int | None,
    actor: Actor,
    client_ip: str | None,
) -> ResumableUpload:
    """Store the bytes of one PATCH from ``offset`` on; the upload with its new offset.

    ``read(n)`` gives at most n more bytes of the request body, b"" at its end; a body cut
    short keeps what arrived.
    """
    upload = _locked_for_part(upload.pk, offset)
    remaining = upload.length - upload.offset
    if content_length is not None and content_length > remaining:
        raise UploadTooLarge(
            f"The part is {content_length:,} bytes, but only {remaining:,} of the file's "
            f"{upload.length:,} are still to come."
        )
    start = upload.offset
    try:
        stored = stored_object(upload.storage_name)
        if stored is not None:
            _receive_into_s3(upload, stored, read, remaining)
        else:
            _receive_into_file(upload, read, remaining)
    finally:
        received = upload.offset - start
        if received:
            record_event(
                action=AuditAction.UPLOAD_PART_RECEIVED,
                actor=actor,
                target=upload,
                client_ip=client_ip,
                details={"from": start, "to": upload.offset, "bytes": received},
            )
    if upload.offset == upload.length:
        _complete(upload, actor=actor, client_ip=client_ip)
    return upload


def _locked_for_part(pk: Any, offset: int) -> ResumableUpload:
    upload = ResumableUpload.objects.get(pk=pk)
    if upload.status != ResumableUploadStatus.RECEIVING:
        raise UploadGone(f"The upload of {upload.filename} is {upload.get_status_display()}.")
    if upload.expires_at <= timezone.now():
        raise UploadGone(f"The upload of {upload.filename} has expired.")
    if offset != upload.offset:
        raise OffsetMismatch(
            f"This part starts at byte {offset:,}, but {upload.offset:,} bytes are stored; "
            "ask for the offset (HEAD) and send from there."
        )
    return upload


def _save_progress(upload: ResumableUpload, **fields: Any) -> None:
    fields["offset"] = upload.offset
    fields["expires_at"] = upload.expires_at = _expiry()
    ResumableUpload.objects.filter(pk=upload.pk).update(updated_at=timezone.now(), **fields)


def _receive_into_file(
    upload: ResumableUpload, read: Callable[[int], bytes], remaining: int
) -> None:
    path = upload_storage().path(upload.storage_name)  # type: ignore[attr-defined]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    mode = "r+b" if os.path.exists(path) else "wb"
    unsaved = 0
    with open(path, mode) as target:
        target.seek(upload.offset)
        target.truncate()
        while remaining > 0:
            data = read(min(_READ_BYTES, remaining))
            if not data:
                break
            target.write(data)
            remaining -= len(data)
            upload.offset += len(data)
            unsaved += len(data)
            if unsaved >= _SAVE_EVERY_BYTES:
                target.flush()
                os.fsync(target.fileno())
                _save_progress(upload)
                unsaved = 0
        target.flush()
        os.fsync(target.fileno())
    _save_progress(upload)


def _receive_into_s3(
    upload: ResumableUpload,
    stored: StoredObject,
    read: Callable[[int], bytes],
    remaining: int,
) -> None:
    """Full parts go to the multipart upload as they fill; the rest of the body, and the tail
    an earlier part left, wait in the tail object. ``offset`` counts the tail's bytes: they are
    stored."""
    client, bucket, key = stored.client, stored.bucket, stored.key
    tail_key = f"{key}.tail"
    if not upload.multipart_id:
        upload.multipart_id = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
        _save_progress(upload, multipart_id=upload.multipart_id)
    with tempfile.SpooledTemporaryFile(max_size=PART_BYTES + _READ_BYTES) as part:
        buffered = upload.tail_bytes
        if buffered:
            # Only the bytes the offset counts: a process killed after writing a longer tail
            # but before saving its offset left more in the object.
            tail = client.get_object(Bucket=bucket, Key=tail_key, Range=f"bytes=0-{buffered - 1}")
            part.write(tail["Body"].read())
        pending = 0
        while remaining > 0:
            data = read(min(_READ_BYTES, remaining, PART_BYTES - buffered))
            if not data:
                break
            part.write(data)
            buffered += len(data)
            pending += len(data)
            remaining -= len(data)
            if buffered == PART_BYTES or upload.offset + pending == upload.length:
                _upload_part(client, bucket, key, upload, part)
                upload.offset += pending
                upload.tail_bytes = buffered = pending = 0
                _save_progress(upload, parts=upload.parts, tail_bytes=0)
        if pending:
            part.seek(0)
            client.put_object(Bucket=bucket, Key=tail_key, Body=part.read())
            upload.offset += pending
            upload.tail_bytes = buffered
            _save_progress(upload, tail_bytes=buffered)


def _upload_part(
    client: Any, bucket: str, key: str, upload: ResumableUpload, part: IO[bytes]
) -> None:
    # Numbered from what is saved: a part sent again after a crash replaces its first copy.
    number = len(upload.parts) + 1
    part.seek(0)
    body = part.read()
    answer = client.upload_part(
        Bucket=bucket, Key=key, UploadId=upload.multipart_id, PartNumber=number, Body=body
    )
    part.seek(0)
    part.truncate()
    upload.parts = [
        *upload.parts,
        {"PartNumber": number, "ETag": answer["ETag"], "Size": len(body)},
    ]


def _complete(upload: ResumableUpload, *, actor: Actor, client_ip: str | None) -> None:
    stored = stored_object(upload.storage_name)
    if stored is not None:
        parts = [{"PartNumber": p["PartNumber"], "ETag": p["ETag"]} for p in upload.parts]
        stored.client.complete_multipart_upload(
            Bucket=stored.bucket,
            Key=stored.key,
            UploadId=upload.multipart_id,
            MultipartUpload={"Parts": parts},
        )
        stored.client.delete_object(Bucket=stored.bucket, Key=f"{stored.key}.tail")
    with transaction.atomic():
        ResumableUpload.objects.filter(pk=upload.pk).update(status=ResumableUploadStatus.COMPLETE)
        upload.status = ResumableUploadStatus.COMPLETE
        record_event(
            action=AuditAction.UPLOAD_COMPLETED,
            actor=actor,
            target=upload,
            client_ip=client_ip,
            details={"file": upload.filename, "length": upload.length},
        )


def cancel_upload(upload: ResumableUpload, *, actor: Actor, client_ip: str | None) -> None:
    """tus termination: the stored bytes are removed."""
    if upload.status == ResumableUploadStatus.SUBMITTED:
        raise UploadGone(f"The upload of {upload.filename} is a job now; cancel the job instead.")
    _remove_stored(upload)
    ResumableUpload.objects.filter(pk=upload.pk).update(status=ResumableUploadStatus.CANCELLED)
    record_event(
        action=AuditAction.UPLOAD_CANCELLED,
        actor=actor,
        target=upload,
        client_ip=client_ip,
        details={"file": upload.filename, "offset": upload.offset, "length": upload.length},
    )


def _remove_stored(upload: ResumableUpload) -> None:
    stored = stored_object(upload.storage_name)
    if (
        stored is not None
        and upload.multipart_id
        and upload.status == ResumableUploadStatus.RECEIVING
    ):
        stored.client.abort_multipart_upload(
            Bucket=stored.bucket, Key=stored.key, UploadId=upload.multipart_id
        )
        stored.client.delete_object(Bucket=stored.bucket, Key=f"{stored.key}.tail")
    upload_storage().delete(upload.storage_name)


def expire_uploads() -> int:
    """Uploads left unfinished past their expiry: their parts removed; how many."""
    expired = 0
    stale = ResumableUpload.objects.filter(
        status__in=[ResumableUploadStatus.RECEIVING, ResumableUploadStatus.COMPLETE],
        expires_at__lte=timezone.now(),
    )
    for upload in stale.iterator(chunk_size=200):
        _remove_stored(upload)
        ResumableUpload.objects.filter(pk=upload.pk).update(status=ResumableUploadStatus.EXPIRED)
        record_event(
            action=AuditAction.UPLOAD_EXPIRED,
            target=upload,
            details={"file": upload.filename, "offset": upload.offset, "length": upload.length},
        )
        expired += 1
    return expired
