from django.apps import AppConfig
from django.db.models.signals import post_migrate


class UpsertsConfig(AppConfig):
    name = "upserts"
    verbose_name = "Upserts"

    def ready(self) -> None:
        from upserts.roles import ensure_role_groups

        # Permissions exist only after migrate has run, so the groups are kept in step then.
        post_migrate.connect(ensure_role_groups, sender=self, dispatch_uid="upserts-role-groups")
