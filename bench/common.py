"""What every benchmark here needs: printing as it goes, the machine's load, a scratch
Django, and one percentile, so that figures of different scripts mean the same thing."""

import math
import os
from collections.abc import Sequence
from pathlib import Path


def say(message: str) -> None:
    print(message, flush=True)


def load_average() -> tuple[float, float, float]:
    one, five, fifteen = os.getloadavg()
    return (round(one, 2), round(five, 2), round(fifteen, 2))


def setup_django(
    workdir: Path, *, database_url: str = "", migrate: bool = True, **env: str
) -> dict[str, str]:
    """Point Django at a scratch database (SQLite in ``workdir`` unless ``database_url``) and
    media folder before it reads its settings, then migrate; the environment it set, for the
    processes a benchmark starts."""
    settings_env = {
        "DATABASE_URL": database_url or f"sqlite:///{workdir / 'bench.sqlite3'}",
        "MEDIA_ROOT": str(workdir / "media"),
        "DJANGO_SETTINGS_MODULE": "console.settings",
        **env,
    }
    os.environ.update(settings_env)
    import django
    from django.core.management import call_command

    django.setup()
    if migrate:
        call_command("migrate", verbosity=0)
    return settings_env


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest rank: with 200 samples, p99 is the second slowest, a real sample; NaN for none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]
