"""Create the bucket of uploaded files when the storage is S3 and the bucket is missing."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from upserts.services.stored_files import ensure_bucket


class Command(BaseCommand):
    help = "Create the S3 bucket of uploaded files (UPLOAD_STORAGE=s3) if it does not exist."

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            outcome = ensure_bucket()
        except Exception as exc:  # the store's own error says what is wrong (address, keys)
            raise CommandError(f"The bucket could not be checked or created: {exc}") from exc
        self.stdout.write(outcome)
