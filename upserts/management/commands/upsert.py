"""Upsert an entity file from a shell, through the same pipeline as the web console."""

import threading
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import close_old_connections, connection
from tqdm import tqdm

from upserts.column_mapping import ColumnMapping, InvalidMapping
from upserts.errors import ConsoleError
from upserts.job_limits import BATCH_SIZE, MAX_IN_FLIGHT, JobLimits
from upserts.models import ClusterEndpoint, JobStatus, UpsertJob
from upserts.selectors import failure_reasons, job_waits_for_budget
from upserts.services.pipeline import SliceOutcome, run_job_slice
from upserts.services.submissions import (
    Start,
    UploadTarget,
    submit_object,
    submit_objects_under,
    submit_upload,
)

_POLL_SECONDS = 0.5


class Command(BaseCommand):
    help = (
        "Upsert an entity file (JSON, JSON Lines, CSV, Parquet, optionally gzip) into a collection."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "file",
            help="The file, or a file where it lies: s3://bucket/key in an allowed bucket, or "
            "an https:// address under an allowed prefix.",
        )
        parser.add_argument("--cluster", required=True, help="Name of a registered cluster.")
        parser.add_argument("--collection", required=True)
        parser.add_argument("--db", default="", help="Database (default: the cluster's).")
        parser.add_argument("--partition", default="", help="Partition (v2 API only).")
        parser.add_argument(
            "--batch-size", type=int, default=BATCH_SIZE.default, help=BATCH_SIZE.help_text
        )
        parser.add_argument(
            "--in-flight", type=int, default=MAX_IN_FLIGHT.default, help=MAX_IN_FLIGHT.help_text
        )
        parser.add_argument(
            "--map",
            action="append",
            default=[],
            metavar="COLUMN=FIELD",
            help="Fill FIELD from the file's COLUMN (repeat for several columns).",
        )
        parser.add_argument(
            "--ignore",
            action="append",
            default=[],
            metavar="COLUMN",
            help="Leave the file's COLUMN out (repeat for several columns).",
        )
        parser.add_argument(
            "--check",
            action="store_true",
            help="Read and check every row and send none: a dry run that reports the failures.",
        )
        parser.add_argument(
            "--partial",
            action="store_true",
            help="Update only the fields in the file: each row gives its primary key and the "
            "fields it changes; the entities keep the others (REST v2 or gRPC, Milvus 2.6.2+).",
        )
        parser.add_argument("--user", help="Username recorded as the job's creator.")
        parser.add_argument(
            "--wait", action="store_true", help="Queue the job, then follow it to the end."
        )
        parser.add_argument(
            "--here",
            action="store_true",
            help="Run the job in this process instead of a Celery worker (implies --wait).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        given = options["file"]
        reference = given if given.startswith(("s3://", "https://")) else None
        path = Path(options["file"])
        if reference is None and not path.is_file():
            raise CommandError(f"{path} is not a file.")
        try:
            cluster = ClusterEndpoint.objects.get(name=options["cluster"])
        except ClusterEndpoint.DoesNotExist:
            names = ", ".join(ClusterEndpoint.objects.values_list("name", flat=True)) or "none"
            raise CommandError(
                f"No cluster named {options['cluster']!r} (registered: {names})."
            ) from None
        actor = None
        if options["user"]:
            actor = get_user_model().objects.filter(username=options["user"]).first()
            if actor is None:
                raise CommandError(f"No user named {options['user']!r}.")
        start = Start.HERE if options["here"] else Start.QUEUED
        mapping = _mapping(options["map"], options["ignore"])
        submission: dict[str, Any] = {
            "target": UploadTarget(
                cluster=cluster,
                collection_name=options["collection"],
                database_name=options["db"],
                partition_name=options["partition"],
                partial_update=options["partial"],
            ),
            "start": start,
            "limits": JobLimits(
                batch_size=options["batch_size"], max_in_flight=options["in_flight"]
            ),
            "mapping": mapping,
            "dry_run": options["check"],
            "actor": actor,
        }
        if reference is not None and reference.endswith("/"):
            self._queue_under(reference, submission, options)
            return
        try:
            if reference is not None:
                job = submit_object(reference, **submission)
            else:
                with path.open("rb") as source:
                    job = submit_upload(source=source, filename=path.name, **submission)
        except ConsoleError as exc:
            raise CommandError(str(exc)) from exc
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        self.stdout.write(
            f"Job {job.pk}: {job.source_reference or path.name} "
            f"({job.file_format}{'.gz' if job.is_gzipped else ''}, "
            f"{job.size_bytes:,} bytes) → {cluster.name}/{job.database_name}/{job.collection_name}"
        )
        for rule in mapping.described():
            self.stdout.write(f"  column {rule}")
        if job.dry_run:
            self.stdout.write("A check: every row is read and checked, and nothing is sent.")
        worker: threading.Thread | None = None
        if start is Start.HERE:
            worker = threading.Thread(target=_run_here, args=(job.pk,), daemon=True)
            worker.start()
        else:
            if not options["wait"]:
                self.stdout.write("Queued; a Celery worker will send it.")
                return
        job = self._follow(job, worker)
        self._report(job)

    def _queue_under(
        self, prefix: str, submission: dict[str, Any], options: dict[str, Any]
    ) -> None:
        """Each file under a bucket prefix as a job of its own, queued for the workers."""
        if options["here"] or options["wait"]:
            raise CommandError("A prefix becomes one job a file, queued; --here and --wait "
                               "take one file.")  # fmt: skip
        del submission["start"]
        try:
            jobs = submit_objects_under(prefix, **submission)
        except ConsoleError as exc:
            raise CommandError(str(exc)) from exc
        for job in jobs:
            self.stdout.write(f"Job {job.pk}: {job.source_reference} ({job.size_bytes:,} bytes)")
        self.stdout.write(f"{len(jobs)} jobs queued; Celery workers will send them.")

    def _follow(self, job: UpsertJob, worker: threading.Thread | None) -> UpsertJob:
        with tqdm(unit=" rows", desc=f"job {job.pk}", dynamic_ncols=True) as bar:
            while True:
                job.refresh_from_db()
                waiting = " · waiting for the rate budget" if job_waits_for_budget(job) else ""
                bar.set_postfix_str(
                    f"{job.status} · upserted {job.rows_upserted:,} · failed "
                    f"{job.rows_failed:,}{waiting}"
                )
                bar.update(job.rows_read - bar.n)
                if job.is_final:
                    return job
                if worker is not None and not worker.is_alive():
                    raise CommandError(
                        f"Job {job.pk} stopped while {job.status}; see the log above."
                    )
                time.sleep(_POLL_SECONDS)

    def _report(self, job: UpsertJob) -> None:
        summary = (
            f"Job {job.pk} {job.get_status_display().lower()}: {job.rows_read:,} rows read, "
            f"{job.rows_upserted:,} upserted, {job.rows_failed:,} failed in "
            f"{job.batches_done:,} batches."
        )
        if job.duplicate_ids:
            summary += (
                f" {job.duplicate_ids:,} primary keys appeared more than once (the last row wins)."
            )
        if job.budget_wait_seconds >= 1:
            summary += (
                f" Its requests waited {job.budget_wait_seconds:,.0f} s for the cluster's rate "
                "budget."
            )
        reasons = failure_reasons(job)
        if reasons:
            self.stdout.write("Failures by reason (rows, reason, first row):")
            for group in reasons:
                self.stdout.write(f"  {group.rows:>9,}  {group.reason}  (row {group.first_row:,})")
        if job.status == JobStatus.FAILED:
            raise CommandError(f"{summary}\n{job.error_message}")
        style = self.style.SUCCESS if job.status == JobStatus.SUCCEEDED else self.style.WARNING
        self.stdout.write(style(summary))
        if job.rows_failed:
            self.stdout.write(
                f"Failed rows: manage.py failed_rows {job.pk} > failed-{job.pk}.jsonl"
            )


def _mapping(maps: list[str], ignored: list[str]) -> ColumnMapping:
    chosen: dict[str, str | None] = {}
    for rule in maps:
        column, equals, target = rule.partition("=")
        if not equals or not column or not target:
            raise CommandError(f"--map {rule!r}: write it as COLUMN=FIELD.")
        chosen[column] = target
    for column in ignored:
        if column in chosen:
            raise CommandError(f"Column {column!r} is both mapped and left out.")
        chosen[column] = None
    try:
        return ColumnMapping.from_json(chosen)
    except InvalidMapping as exc:
        raise CommandError(str(exc)) from None


def _run_here(job_id: int) -> None:
    try:
        while (outcome := run_job_slice(job_id)) is not SliceOutcome.FINISHED:
            if outcome is SliceOutcome.BUSY:
                time.sleep(max(1, settings.UPSERT_LEASE_SECONDS // 4))
            close_old_connections()
    finally:
        connection.close()
