"""Re-encrypt every stored secret with the first FIELD_ENCRYPTION_KEY.

Rotation: put the new key first in FIELD_ENCRYPTION_KEY (``new,old``), deploy, run this
command, then drop the old key. Until the command has run, the old key must stay listed.
"""

from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction

from upserts.models import ClusterEndpoint


class Command(BaseCommand):
    help = "Re-encrypt cluster tokens with the first key of FIELD_ENCRYPTION_KEY."

    def handle(self, *args: Any, **options: Any) -> None:
        rotated = 0
        with transaction.atomic():
            # Loading decrypts with whichever listed key fits; saving encrypts with the first.
            for cluster in ClusterEndpoint.objects.select_for_update().exclude(token=""):
                cluster.save(update_fields=["token"])
                rotated += 1
        self.stdout.write(self.style.SUCCESS(f"Re-encrypted {rotated} cluster token(s)."))
