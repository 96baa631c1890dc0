"""Keeping the disk bounded: stored files, failed rows and the entity-write history pruned by
the retention policy, in bounded chunks, each chunk its own transaction, and audited.

A job, its sha256, its batches and its audit events are never pruned: the trail still says
who sent which file where, with what outcome. What goes is what grows with the data: the
file itself once its job has ended, the failed rows some time after, and of the entity-write
history (about 130 bytes a write) all but the last writes of each id, once they are old.
"""

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from upserts.models import (
    FINAL_JOB_STATUSES,
    AuditAction,
    EntityWrite,
    FailedRow,
    UpsertBatch,
    UpsertJob,
)
from upserts.services.audit import record_event
from upserts.services.stored_files import upload_storage

# Rows removed by one statement: small enough that a statement holds its locks briefly.
CHUNK_ROWS = 10_000
_FILE_CHUNK = 200


@dataclass(frozen=True)
class RetentionPolicy:
    file_days: int
    failed_row_days: int
    writes_per_id: int
    write_days: int

    @classmethod
    def from_settings(cls) -> "RetentionPolicy":
        return cls(
            file_days=settings.RETAIN_FILES_DAYS,
            failed_row_days=settings.RETAIN_FAILED_ROWS_DAYS,
            writes_per_id=settings.RETAIN_ENTITY_WRITES_PER_ID,
            write_days=settings.RETAIN_ENTITY_WRITES_DAYS,
        )


@dataclass
class PruneReport:
    """What a prune removed, or with ``dry_run`` would remove."""

    dry_run: bool
    files: int = 0
    file_bytes: int = 0
    failed_rows: int = 0
    entity_writes: int = 0
    jobs: list[int] = field(default_factory=list)

    @property
    def removed_anything(self) -> bool:
        return bool(self.files or self.failed_rows or self.entity_writes)


def prune(
    policy: RetentionPolicy | None = None,
    *,
    now: datetime | None = None,
    dry_run: bool = False,
    chunk_rows: int = CHUNK_ROWS,
) -> PruneReport:
    """Apply the retention policy once; audited as ``retention.pruned`` when it removed any."""
    policy = policy or RetentionPolicy.from_settings()
    now = now or timezone.now()
    report = PruneReport(dry_run=dry_run)
    _prune_files(report, now - timedelta(days=policy.file_days), now)
    _prune_failed_rows(report, now - timedelta(days=policy.failed_row_days), now, chunk_rows)
    _prune_entity_writes(
        report, now - timedelta(days=policy.write_days), policy.writes_per_id, chunk_rows
    )
    if report.removed_anything and not dry_run:
        details = {**asdict(report), "policy": asdict(policy)}
        details["jobs"] = report.jobs[:100]
        record_event(action=AuditAction.RETENTION_PRUNED, details=details)
    return report


def _ended_before(cutoff: datetime) -> Q:
    return Q(finished_at__lt=cutoff, status__in=FINAL_JOB_STATUSES)


def _prune_files(report: PruneReport, cutoff: datetime, now: datetime) -> None:
    storage = upload_storage()
    jobs = (
        UpsertJob.objects.filter(_ended_before(cutoff), file_removed_at__isnull=True)
        .exclude(source_file="")
        .order_by("pk")
    )
    last = 0
    while True:
        batch = list(jobs.filter(pk__gt=last).values_list("pk", "source_file", "size_bytes")[
            :_FILE_CHUNK
        ])  # fmt: skip
        if not batch:
            return
        last = batch[-1][0]
        for pk, name, size in batch:
            report.files += 1
            report.file_bytes += size
            report.jobs.append(pk)
            if not report.dry_run:
                # Deleted first: a job marked but still holding its file would hold it for ever.
                storage.delete(name)
                UpsertJob.objects.filter(pk=pk).update(file_removed_at=now)


def _prune_failed_rows(report: PruneReport, cutoff: datetime, now: datetime, chunk: int) -> None:
    jobs = UpsertJob.objects.filter(
        _ended_before(cutoff), failed_rows_removed_at__isnull=True, rows_failed__gt=0
    ).order_by("pk")
    for pk in jobs.values_list("pk", flat=True).iterator(chunk_size=500):
        rows = FailedRow.objects.filter(job_id=pk)
        if report.dry_run:
            report.failed_rows += rows.count()
            continue
        while True:
            ids = list(rows.values_list("pk", flat=True)[:chunk])
            if not ids:
                break
            with transaction.atomic():
                report.failed_rows += FailedRow.objects.filter(pk__in=ids).delete()[0]
        UpsertJob.objects.filter(pk=pk).update(failed_rows_removed_at=now)


def _prune_entity_writes(report: PruneReport, cutoff: datetime, keep: int, chunk: int) -> None:
    """Writes older than ``cutoff`` that are not among the last ``keep`` writes of their id in
    their collection, taken a range of ids at a time."""
    ends = EntityWrite.objects.filter(batch__created_at__lt=cutoff).order_by("pk")
    first = ends.values_list("pk", flat=True).first()
    if first is None:
        return
    last = ends.order_by("-pk").values_list("pk", flat=True).first()
    assert last is not None
    quote = connection.ops.quote_name
    writes = quote(EntityWrite._meta.db_table)
    batches = quote(UpsertBatch._meta.db_table)
    jobs = quote(UpsertJob._meta.db_table)
    # The same id in another collection is another entity: writes are counted per target.
    # The chunk is taken by its ids first (a materialized CTE), so that no plan can start from
    # the batches instead and scan the whole table for each of them.
    doomed = f"""
        WITH chunk AS MATERIALIZED (
            SELECT id, entity_id, job_id, batch_id FROM {writes} WHERE id >= %s AND id < %s
        )
        SELECT c.id FROM chunk c
        JOIN {batches} b ON b.id = c.batch_id
        JOIN {jobs} j ON j.id = c.job_id
        WHERE b.created_at < %s
          AND (
            SELECT COUNT(*) FROM {writes} later
            JOIN {jobs} lj ON lj.id = later.job_id
            WHERE later.entity_id = c.entity_id AND later.id > c.id
              AND lj.cluster_id = j.cluster_id AND lj.database_name = j.database_name
              AND lj.collection_name = j.collection_name
          ) >= %s
    """
    for start in range(first, last + 1, chunk):
        arguments: list[int | datetime] = [start, start + chunk, cutoff, keep]
        with connection.cursor() as cursor:
            if report.dry_run:
                cursor.execute(f"SELECT COUNT(*) FROM ({doomed}) doomed", arguments)
                report.entity_writes += int(cursor.fetchone()[0])
            else:
                with transaction.atomic():
                    cursor.execute(f"DELETE FROM {writes} WHERE id IN ({doomed})", arguments)
                    report.entity_writes += max(cursor.rowcount, 0)
