"""Running an upsert job: stream the file, check each row, send batches, commit each result.

One call works on a job for at most ``UPSERT_TASK_SLICE_SECONDS`` and says whether more is
left, so a Celery task stays well inside the broker's visibility timeout. Each batch's result,
its failed rows, the ids it wrote, the job's counters and the checkpoint are committed in one
transaction, in file order; a task that dies at any point is redelivered and carries on from
the checkpoint, re-sending at most the batches that were in flight (upsert is idempotent per
primary key, and nothing of those batches was recorded).
"""

import enum
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F
from django.utils import timezone

from upserts.column_mapping import ColumnMapping
from upserts.milvus.errors import (
    ClusterError,
    DataRejectedError,
    FatalTargetError,
    RetryableClusterError,
)
from upserts.milvus.schema import CollectionSchema
from upserts.milvus.transport import UpsertEncoder
from upserts.models import (
    AuditAction,
    BatchStatus,
    EntityWrite,
    FailedRow,
    JobStatus,
    UpsertBatch,
    UpsertJob,
)
from upserts.preparation import RefusedRow, RowPreparer
from upserts.readers import FileFormatError, SourceRow, read_rows
from upserts.services import jobs
from upserts.services.audit import record_event
from upserts.services.clusters import client_for, partial_update_problem
from upserts.services.entity_writes import record_entity_writes
from upserts.services.failed_rows import failed_row, stored_size
from upserts.services.job_files import open_job_file
from upserts.services.jobs import LeaseLost
from upserts.services.rate_budgets import budget_for_job
from upserts.services.read_limits import read_limits
from upserts.services.sending import (
    BatchOutcome,
    RetryPolicy,
    SendingStopped,
    send_batch,
)
from upserts.validation.collections import blocking_schema_problems

logger = logging.getLogger(__name__)


class SliceOutcome(enum.Enum):
    FINISHED = "finished"  # the job reached a final status (or was already in one)
    CONTINUE = "continue"  # the slice's time is up; queue the job again
    BUSY = "busy"  # another task holds the job's lease; try again later


class StopReason(enum.Enum):
    """Why a slice stopped sending before the end of the file."""

    CANCEL = "cancel"  # a person asked; the job ends cancelled
    SLICE_OVER = "slice over"  # the slice's time is up; the job continues in the next task


@dataclass
class PendingBatch:
    """A contiguous range of file rows: those to send, and those that already failed."""

    sequence: int
    first_row: int
    last_row: int = 0
    # The rows to send, in the form the transport asks for (JSON text or checked entities).
    rows: list[Any] = field(default_factory=list)
    row_numbers: list[int] = field(default_factory=list)
    failures: list[FailedRow] = field(default_factory=list)
    # What the failed rows hold in memory: past the byte budget, the batch closes early.
    failure_bytes: int = 0
    size_bytes: int = 0
    # Where the file resumes after the batch's last row (JSON Lines and CSV), or None.
    position_after: tuple[int, int] | None = None
    # Primary keys in the batch: a key seen again starts a new batch, and a batch waits for
    # any batch in flight that shares a key, so the file's last row for a key always wins.
    keys: set[Any] = field(default_factory=set)
    # In a partial update, the fields every row of the batch gives.
    field_names: frozenset[str] | None = None

    def add(self, number: int, key: Any, row: Any, size: int) -> None:
        self.keys.add(key)
        self.rows.append(row)
        self.row_numbers.append(number)
        self.size_bytes += size

    @property
    def rows_in_range(self) -> int:
        return self.last_row - self.first_row + 1


def retry_policy() -> RetryPolicy:
    return RetryPolicy(
        max_attempts=settings.UPSERT_RETRY_ATTEMPTS,
        base_delay=settings.UPSERT_RETRY_BASE_SECONDS,
        max_delay=settings.UPSERT_RETRY_MAX_SECONDS,
    )


def run_job_slice(job_id: int) -> SliceOutcome:
    """Work on one job until it ends or the slice's time is up."""
    token = uuid.uuid4().hex
    lease_seconds = settings.UPSERT_LEASE_SECONDS
    if not jobs.acquire_lease(job_id, token=token, seconds=lease_seconds):
        return SliceOutcome.BUSY
    try:
        job = UpsertJob.objects.select_related("cluster").get(pk=job_id)
        if job.is_final:
            return SliceOutcome.FINISHED
        if job.cancel_requested:
            _cancel(job, token)
            return SliceOutcome.FINISHED
        stops = jobs.count_delivery(job, token=token)
        if stops >= settings.UPSERT_MAX_WORKER_STOPS:
            _fail(job, _worker_stopped_message(job, stops), token)
            return SliceOutcome.FINISHED
        try:
            schema = _prepare(job, token)
            if schema is None:
                return SliceOutcome.FINISHED
            return _send_rows(job, schema, token)
        except FatalTargetError as exc:
            _fail(job, str(exc), token)
        except RetryableClusterError as exc:
            _fail(
                job,
                f"{exc} The rows before row {job.checkpoint_row + 1} are saved; resume the "
                "job once the cluster answers again.",
                token,
            )
        except FileFormatError as exc:
            _fail(job, str(exc), token)
        except LeaseLost:
            raise
        except Exception as exc:
            # Whatever else escapes (a bug, a database refusing a value) must end the job
            # rather than leave it running for the sweeper to queue again every round.
            logger.exception("job %s stopped on an unexpected error", job_id)
            _fail(job, _unexpected_error_message(job, exc), token)
        return SliceOutcome.FINISHED
    except LeaseLost:
        logger.warning("job %s: lease lost to another task; stopping this one", job_id)
        return SliceOutcome.FINISHED
    finally:
        jobs.release_lease(job_id, token=token)


def _worker_stopped_message(job: UpsertJob, stops: int) -> str:
    row = job.checkpoint_row + 1
    return (
        f"The worker stopped {stops} times at row {row:,} without finishing (killed, perhaps "
        "for using too much memory), so the job was not handed out again. The rows before "
        f"row {row:,} are saved; find what stops the worker (its log says), then resume the "
        "job to carry on from there."
    )


def _unexpected_error_message(job: UpsertJob, exc: Exception) -> str:
    job.refresh_from_db(fields=["checkpoint_row"])
    row = job.checkpoint_row + 1
    detail = str(exc)[:500] or "no message"
    token = job.cluster.token
    if token:
        detail = detail.replace(token, "***")
    return (
        f"The job stopped on an unexpected error while working from row {row:,}: "
        f"{type(exc).__name__}: {detail}. The rows before row {row:,} are saved; resume the "
        "job once the cause is fixed."
    )


def _prepare(job: UpsertJob, token: str) -> CollectionSchema | None:
    """Describe the target and move the job to running; None when the job cannot go on."""
    if job.status == JobStatus.PENDING:
        jobs.mark_validating(job, lease_token=token)
    schema = _describe_with_retries(job, token)
    if job.status == JobStatus.VALIDATING:
        problems = blocking_schema_problems(schema)
        if job.partial_update:
            # The cluster may have been changed, or its server downgraded, since the upload.
            problems += [problem] if (problem := partial_update_problem(job.cluster)) else []
        if problems:
            _fail(job, " ".join(problems), token)
            return None
        jobs.mark_running(job, lease_token=token)
    return schema


def _describe_with_retries(job: UpsertJob, token: str) -> CollectionSchema:
    """The target's schema, retried as batches are; the lease is renewed while it waits, or
    the sweeper would hand the job to a second task while this one still retries."""
    policy = retry_policy()
    client = client_for(job.cluster)
    attempt = 0
    while True:
        attempt += 1
        try:
            return client.describe_collection(job.database_name, job.collection_name)
        except RetryableClusterError:
            if attempt >= policy.max_attempts:
                raise
            _sleep_holding_lease(job.pk, token, policy.delay(attempt))


def _sleep_holding_lease(job_id: int, token: str, seconds: float) -> None:
    seconds_of_lease = settings.UPSERT_LEASE_SECONDS
    wake_at = time.monotonic() + seconds
    while (left := wake_at - time.monotonic()) > 0:
        time.sleep(min(left, seconds_of_lease / 3))
        if not jobs.renew_lease(job_id, token=token, seconds=seconds_of_lease):
            raise LeaseLost()


def _send_rows(job: UpsertJob, schema: CollectionSchema, token: str) -> SliceOutcome:
    run = _SliceRun(job, schema, token)
    with open_job_file(job) as source:
        rows = read_rows(
            source,
            file_format=job.file_format,
            gzipped=job.is_gzipped,
            filename=job.original_filename,
            start_after=job.checkpoint_row,
            resume_at=(
                (job.checkpoint_offset, job.checkpoint_line) if job.checkpoint_offset else None
            ),
            max_decompressed_bytes=settings.UPLOAD_MAX_DECOMPRESSED_BYTES,
            number_vector_columns=run.preparer.number_vector_columns,
            half_float_columns=run.preparer.half_float_columns,
            limits=read_limits(),
        )
        stop_reason = run.send(rows)
    if stop_reason is StopReason.CANCEL:
        _cancel(job, token)
        return SliceOutcome.FINISHED
    if stop_reason is StopReason.SLICE_OVER:
        return SliceOutcome.CONTINUE
    _finish(job, token)
    return SliceOutcome.FINISHED


class _SliceRun:
    """One slice's batches: built in file order, sent with a bounded window, committed in order."""

    def __init__(self, job: UpsertJob, schema: CollectionSchema, token: str) -> None:
        self.job = job
        self.token = token
        self.deadline = time.monotonic() + settings.UPSERT_TASK_SLICE_SECONDS
        self.transport = client_for(job.cluster)
        self.policy = retry_policy()
        # Set when the job stops for good (a cancel, an error): a batch still waiting for its
        # turn in the cluster's budget then stops waiting and is not sent.
        self.stopping = threading.Event()
        # A cancel was seen: batches may have been left unsent, so the job ends cancelled
        # (never finished, never continued past them) however the slice ends.
        self.cancelled = False
        self.budget = budget_for_job(job, sleep=self.stopping.wait)
        self.preparer = RowPreparer(
            schema,
            file_format=job.file_format,
            mapping=ColumnMapping.from_json(job.column_mapping),
            row_form=self.transport.row_form,
            partial_update=job.partial_update,
        )
        self.encoder = self.transport.upsert_encoder(
            database=job.database_name,
            collection=job.collection_name,
            schema=schema,
            partition=job.partition_name,
            partial_update=job.partial_update,
        )
        # The job's byte budget, within what the cluster takes in one request (less what the
        # request adds around its rows).
        self.max_batch_bytes = min(
            job.max_batch_bytes, job.cluster.max_request_mb * 1024 * 1024 - _REQUEST_OVERHEAD
        )
        self.in_flight: deque[tuple[PendingBatch, Future[BatchOutcome]]] = deque()
        self.batch = PendingBatch(sequence=job.batches_done + 1, first_row=job.checkpoint_row + 1)

    def send(self, rows: Iterator[SourceRow]) -> StopReason | None:
        """Send every row (or until a cancel or the slice's end); the reason it stopped early.

        When the file breaks part-way (FileFormatError), the rows before the break are still
        sent and committed before the error goes up.
        """
        self._executor = ThreadPoolExecutor(
            max_workers=self.job.max_in_flight, thread_name_prefix="upsert"
        )
        stop_reason: StopReason | None = None
        try:
            try:
                for row in rows:
                    if self._add(row):
                        stop_reason = _reason_to_stop(self.job, self.deadline)
                        if stop_reason:
                            break
            except FileFormatError:
                self._close_batch()
                self._drain()
                if self.cancelled:
                    return StopReason.CANCEL
                raise
            if stop_reason is StopReason.CANCEL:
                self._stop_for_cancel()
            if not stop_reason:
                self._close_batch()
            self._drain()
            if self.cancelled:
                stop_reason = StopReason.CANCEL
        finally:
            # Whatever is still waiting to be sent now never will be committed.
            self.stopping.set()
            self._executor.shutdown(wait=True, cancel_futures=True)
        return stop_reason

    def _add(self, row: SourceRow) -> bool:
        """Put the row in the current batch; True when a batch was closed and sent."""
        closed = False
        batch = self.batch
        prepared = _prepare_row(self.job, row, self.preparer)
        if isinstance(prepared, FailedRow):
            batch.failures.append(prepared)
            batch.failure_bytes += stored_size(prepared)
        else:
            key, outgoing = prepared
            size = self.encoder.row_size(outgoing)
            too_big = batch.rows and batch.size_bytes + size > self.max_batch_bytes
            # A partial update's request carries the same fields for every row.
            names = self.preparer.field_names
            other_fields = bool(batch.rows) and names != batch.field_names
            if key in batch.keys or too_big or other_fields:
                # A repeated key, a row that would push the batch over its byte budget, or
                # one that gives other fields than the batch's rows, opens the next batch.
                self._submit(batch)
                closed = True
                batch = self.batch = PendingBatch(sequence=batch.sequence + 1, first_row=row.number)
            batch.field_names = names
            batch.add(row.number, key, outgoing, size)
        batch.last_row = row.number
        batch.position_after = row.position_after
        if (
            len(batch.rows) >= self.job.batch_size
            or batch.rows_in_range >= 4 * self.job.batch_size
            or batch.failure_bytes >= self.max_batch_bytes
        ):
            self._submit(batch)
            closed = True
            self.batch = PendingBatch(sequence=batch.sequence + 1, first_row=row.number + 1)
        return closed

    def _close_batch(self) -> None:
        if self.batch.last_row:
            self._submit(self.batch)

    def _submit(self, batch: PendingBatch) -> None:
        """Send the batch; while the window is full, or a batch in flight shares a key with
        this one, first commit the oldest result.

        The window holds one batch more than the requests in flight: it waits, built, in the
        executor's queue, and a sender whose answer came back starts it at once rather than
        wait for this thread to commit and build. The cluster never idles between requests.
        """
        while len(self.in_flight) > self.job.max_in_flight or any(
            batch.keys & earlier.keys for earlier, _ in self.in_flight
        ):
            self._commit_oldest()
        future: Future[BatchOutcome]
        if batch.rows and not self.job.dry_run:
            future = self._executor.submit(
                send_batch,
                self.transport,
                encoder=self.encoder,
                rows=batch.rows,
                policy=self.policy,
                request=self._request(batch),
                budget=self.budget,
                stopping=self.stopping.is_set,
            )
        else:
            future = Future()
            future.set_result(BatchOutcome())
        self.in_flight.append((batch, future))

    def _request(self, batch: PendingBatch) -> Any:
        """The batch's request, built here rather than by the sender: a sender's thread
        building one holds the GIL while the cluster waits for it. None when the rows cannot
        make one request; the sender then splits the batch to find the rows that cannot."""
        try:
            return self.encoder.request(batch.rows)
        except DataRejectedError:
            return None

    def _commit_oldest(self) -> None:
        batch, future = self.in_flight.popleft()
        try:
            outcome = self._outcome(future)
        except SendingStopped:
            # Cancelled while waiting for the cluster's budget: never sent, so not recorded
            # (a cancelled job is not resumed; its counters say what was done).
            return
        _commit_batch(self.job, batch, outcome, self.token, self.encoder)

    def _stop_for_cancel(self) -> None:
        self.cancelled = True
        self.stopping.set()

    def _outcome(self, future: Future[BatchOutcome]) -> BatchOutcome:
        """The batch's outcome. While it is not back (a slow cluster, a long wait for the
        rate budget) the lease is renewed, or the sweeper would hand the job to a second task
        that sends the same rows again; and a cancel is looked for every second, so batches
        waiting for the budget stop waiting."""
        seconds = settings.UPSERT_LEASE_SECONDS
        renewed = time.monotonic()
        while not wait([future], timeout=min(1.0, seconds / 3)).done:
            if not self.cancelled and _cancel_requested(self.job):
                self._stop_for_cancel()
            if time.monotonic() - renewed >= seconds / 3:
                if not jobs.renew_lease(self.job.pk, token=self.token, seconds=seconds):
                    raise LeaseLost()
                renewed = time.monotonic()
        return future.result()

    def _drain(self) -> None:
        while self.in_flight:
            self._commit_oldest()


# Room a request needs beyond its rows' own bytes: the body's fields, separators, framing.
_REQUEST_OVERHEAD = 64 * 1024


def _prepare_row(
    job: UpsertJob, row: SourceRow, preparer: RowPreparer
) -> FailedRow | tuple[Any, Any]:
    """(primary key, row to send) for the row, or the failed row to record instead."""
    if row.error is not None or row.entity is None:
        return failed_row(
            job, row_number=row.number, reason=row.error or "unreadable row", raw=row.raw or ""
        )
    try:
        prepared = preparer.prepare(row.entity, row.encoded)
    except (TypeError, ValueError, OverflowError, RecursionError) as exc:
        # A value the checks let through that cannot be encoded (an integer beyond 64 bits
        # inside a JSON field, nesting deeper than orjson writes): this row's problem alone.
        return failed_row(
            job,
            row_number=row.number,
            reason=f"row {row.number:,}: cannot be sent as JSON ({exc})",
            raw=row.raw or "",
            entity=row.entity,
        )
    if isinstance(prepared, RefusedRow):
        # Stored as checked (CSV text already turned into numbers, lists...), so the failed
        # rows download is JSON Lines that can be fixed and uploaded again as it is.
        return failed_row(
            job,
            row_number=row.number,
            reason=prepared.reason,
            entity=prepared.entity,
        )
    return prepared


def _cancel_requested(job: UpsertJob) -> bool:
    return UpsertJob.objects.filter(pk=job.pk, cancel_requested=True).exists()


def _reason_to_stop(job: UpsertJob, deadline: float) -> StopReason | None:
    if _cancel_requested(job):
        return StopReason.CANCEL
    if time.monotonic() >= deadline:
        return StopReason.SLICE_OVER
    return None


def _commit_batch(
    job: UpsertJob,
    batch: PendingBatch,
    outcome: BatchOutcome,
    token: str,
    encoder: UpsertEncoder,
) -> None:
    rejected = {rejection.index: rejection.reason for rejection in outcome.rejections}
    failures = list(batch.failures)
    for index, reason in rejected.items():
        failures.append(
            failed_row(
                job,
                row_number=batch.row_numbers[index],
                reason=reason,
                entity=encoder.entity(batch.rows[index]),
            )
        )
    # A check sends nothing: its rows that passed count as landed would.
    landed = outcome.upsert_count or (job.dry_run and batch.rows)
    if not batch.rows:
        status = BatchStatus.FAILED
    elif failures:
        status = BatchStatus.PARTIALLY_FAILED if landed else BatchStatus.FAILED
    else:
        status = BatchStatus.SUCCEEDED
    with transaction.atomic():
        updated = UpsertJob.objects.filter(pk=job.pk, lease_token=token).update(
            rows_read=F("rows_read") + batch.rows_in_range,
            rows_upserted=F("rows_upserted") + outcome.upsert_count,
            rows_failed=F("rows_failed") + len(failures),
            batches_done=F("batches_done") + 1,
            budget_wait_seconds=F("budget_wait_seconds") + outcome.budget_wait_ms / 1000,
            checkpoint_row=batch.last_row,
            checkpoint_offset=batch.position_after[0] if batch.position_after else 0,
            checkpoint_line=batch.position_after[1] if batch.position_after else 0,
            lease_expires_at=timezone.now() + _lease_delta(),
        )
        if not updated:
            raise LeaseLost()
        saved = UpsertBatch.objects.create(
            job=job,
            sequence=batch.sequence,
            first_row=batch.first_row,
            last_row=batch.last_row,
            row_count=len(batch.rows),
            status=status,
            attempts=max(outcome.requests, 1) if batch.rows and not job.dry_run else 0,
            upsert_count=outcome.upsert_count,
            milvus_code=outcome.code,
            milvus_message=outcome.message[:2000],
            http_status=outcome.http_status,
            duration_ms=round(outcome.elapsed_ms),
            budget_wait_ms=round(outcome.budget_wait_ms),
        )
        for failure in failures:
            failure.batch = saved
        FailedRow.objects.bulk_create(failures)
        record_entity_writes(job_id=job.pk, batch_id=saved.pk, entity_ids=outcome.upsert_ids)
    job.checkpoint_row = batch.last_row
    if batch.position_after:
        job.checkpoint_offset, job.checkpoint_line = batch.position_after


def _lease_delta() -> timedelta:
    return timedelta(seconds=settings.UPSERT_LEASE_SECONDS)


def _finish(job: UpsertJob, token: str) -> None:
    duplicates = (
        EntityWrite.objects.filter(job=job)
        .values("entity_id")
        .annotate(writes=Count("id"))
        .filter(writes__gt=1)
        .count()
    )
    with transaction.atomic():
        UpsertJob.objects.filter(pk=job.pk).update(duplicate_ids=duplicates)
        jobs.mark_finished(job, lease_token=token)
        _audit_end(job, AuditAction.JOB_FINISHED)


def _cancel(job: UpsertJob, token: str) -> None:
    with transaction.atomic():
        jobs.mark_cancelled(job, lease_token=token)
        _audit_end(job, AuditAction.JOB_CANCELLED)


def _fail(job: UpsertJob, message: str, token: str) -> None:
    job.refresh_from_db()
    with transaction.atomic():
        jobs.mark_failed(job, message, lease_token=token)
        _audit_end(job, AuditAction.JOB_FINISHED)


def _audit_end(job: UpsertJob, action: str) -> None:
    """The event of the job's end, in the transaction that ends it: whoever sees the job
    final finds its outcome in the audit trail too."""
    job.refresh_from_db()
    record_event(
        action=action,
        target=job,
        details={
            "status": job.status,
            # The transport that carried the rows: a cluster's API may be changed later.
            "api": job.cluster.api_version,
            "rows_read": job.rows_read,
            "rows_upserted": job.rows_upserted,
            "rows_failed": job.rows_failed,
            "duplicate_ids": job.duplicate_ids,
            "batches": job.batches_done,
            # Time held back by the cluster's rate budget (its cap on all jobs together).
            "budget_wait_seconds": round(job.budget_wait_seconds, 1),
            "error": job.error_message,
        },
    )


__all__ = ["ClusterError", "SliceOutcome", "run_job_slice"]
