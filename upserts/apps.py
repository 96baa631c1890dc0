from django.apps import AppConfig
from django.db.models.signals import post_migrate


class UpsertsConfig(AppConfig):
    name = "upserts"
    verbose_name = "Upserts"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_login_failed

        from upserts import checks  # noqa: F401  (registers the system checks)
        from upserts.roles import ensure_role_groups
        from upserts.services.logins import record_failed_login

        # Permissions exist only after migrate has run, so the groups are kept in step then.
        post_migrate.connect(ensure_role_groups, sender=self, dispatch_uid="upserts-role-groups")
        user_login_failed.connect(record_failed_login, dispatch_uid="upserts-failed-logins")
