"""Write a job's failed rows as JSON Lines (row number, reason, entity), fit to re-upload."""

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from upserts.exports import failed_rows_jsonl
from upserts.models import UpsertJob


class Command(BaseCommand):
    help = "Print a job's failed rows as JSON Lines."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("job_id", type=int)

    def handle(self, *args: Any, **options: Any) -> None:
        job = UpsertJob.objects.filter(pk=options["job_id"]).first()
        if job is None:
            raise CommandError(f"No job {options['job_id']}.")
        for line in failed_rows_jsonl(job):
            sys.stdout.buffer.write(line)
        sys.stdout.flush()
