"""`make demo` on a fresh machine: everything starts, a person can log in, and it all stops."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_DIR = Path(__file__).resolve().parent.parent


@pytest.mark.milvus
def test_demo_starts_every_service_lets_the_demo_user_in_and_stops_cleanly(tmp_path):
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}"}
    env.pop("REDIS_URL", None)

    result = subprocess.run(
        [sys.executable, "manage.py", "rundemo", "--check", "--workdir", str(tmp_path / "demo")],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "Upsert Console is running at http://127.0.0.1:" in result.stdout
    assert "login:      demo / " in result.stdout
    assert "Demo check passed" in result.stdout
