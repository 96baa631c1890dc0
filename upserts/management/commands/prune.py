"""Apply the retention policy now, as the beat task does every RETENTION_PRUNE_SECONDS."""

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from upserts.services.retention import RetentionPolicy, prune


class Command(BaseCommand):
    help = (
        "Remove what the retention policy no longer keeps: stored files of finished jobs, "
        "their failed rows, and old entity writes beyond the last ones of each id."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="Say what would be removed; remove nothing."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        policy = RetentionPolicy.from_settings()
        report = prune(policy, dry_run=options["dry_run"])
        verb = "Would remove" if report.dry_run else "Removed"
        self.stdout.write(
            f"{verb} {report.files:,} stored files ({report.file_bytes:,} bytes), "
            f"{report.failed_rows:,} failed rows and {report.entity_writes:,} entity writes."
        )
        self.stdout.write(
            f"Policy: files {policy.file_days} days after a job ends, failed rows "
            f"{policy.failed_row_days} days, entity writes the last {policy.writes_per_id} of "
            f"each id or {policy.write_days} days, whichever keeps more."
        )
