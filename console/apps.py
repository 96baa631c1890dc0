from django.contrib.admin.apps import AdminConfig


class ConsoleAdminConfig(AdminConfig):
    """django.contrib.admin with the project's admin site as ``admin.site``."""

    default_site = "console.admin.ConsoleAdminSite"
