from django.apps import AppConfig


class UpsertsConfig(AppConfig):
    name = "upserts"
    verbose_name = "Upserts"
