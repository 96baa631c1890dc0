"""Settings come from the environment; production mode is hardened and refuses weak secrets."""

import os
import subprocess
import sys
from pathlib import Path

from cryptography.fernet import Fernet
from django.conf import settings

from console import celery_app

PROJECT_DIR = Path(__file__).resolve().parent.parent


def manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    unset = {
        "DEBUG",
        "SECRET_KEY",
        "FIELD_ENCRYPTION_KEY",
        "PRODUCTION",
        "DJANGO_ALLOW_ASYNC_UNSAFE",
    }
    clean = {k: v for k, v in os.environ.items() if k not in unset}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT_DIR,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def production_env() -> dict[str, str]:
    return {
        "PRODUCTION": "true",
        "SECRET_KEY": Fernet.generate_key().decode() + Fernet.generate_key().decode(),
        "FIELD_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "ALLOWED_HOSTS": "console.example.com",
    }


def test_production_settings_pass_the_deployment_checklist_without_warnings():
    result = manage("check", "--deploy", "--fail-level", "WARNING", **production_env())

    assert result.returncode == 0, result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_production_refuses_to_start_without_a_secret_key():
    env = production_env()
    del env["SECRET_KEY"]

    result = manage("check", **env)

    assert result.returncode != 0
    assert "give SECRET_KEY a long random value" in result.stderr


def test_production_refuses_to_start_without_a_field_encryption_key():
    env = production_env()
    del env["FIELD_ENCRYPTION_KEY"]

    result = manage("check", **env)

    assert result.returncode != 0
    assert "give FIELD_ENCRYPTION_KEY a Fernet key" in result.stderr


def test_local_sqlite_database_runs_in_wal_mode(tmp_path):
    database = tmp_path / "console.sqlite3"
    code = (
        "from django.db import connection; c = connection.cursor(); "
        "c.execute('PRAGMA journal_mode'); print(c.fetchone()[0])"
    )

    result = manage("shell", "-c", code, DATABASE_URL=f"sqlite:///{database}")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "wal"


def test_celery_never_loses_a_task_to_a_dying_worker():
    conf = celery_app.conf

    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.accept_content == ["json"] and conf.task_serializer == "json"
    assert (
        conf.broker_transport_options["visibility_timeout"]
        >= 3 * settings.UPSERT_TASK_SLICE_SECONDS
    )


def test_visibility_timeout_shorter_than_a_task_slice_is_refused():
    result = manage("check", CELERY_VISIBILITY_TIMEOUT="60", UPSERT_TASK_SLICE_SECONDS="300")

    assert result.returncode != 0
    assert "CELERY_VISIBILITY_TIMEOUT must be at least three times" in result.stderr
