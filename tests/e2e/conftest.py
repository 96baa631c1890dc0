"""A books collection in the real Milvus, a cluster pointing at it, and a way to run jobs."""

from collections.abc import Callable
from typing import Any

import pytest

from tests.helpers import wait_until
from upserts.models import UpsertJob
from upserts.services.job_control import start_job


@pytest.fixture
def run_in_worker(celery_worker) -> Callable[[UpsertJob], UpsertJob]:
    """Queue the job through Redis to the real worker and wait for a final status."""

    def run(job: UpsertJob, timeout: float = 90, **start_options: Any) -> UpsertJob:
        start_job(job, **start_options)

        def finished() -> UpsertJob | None:
            job.refresh_from_db()
            return job if job.is_final else None

        return wait_until(finished, timeout=timeout, interval=0.2)

    return run
