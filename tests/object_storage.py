"""A real S3-compatible server process for the object-storage tests: moto's ``moto_server``,
started once per test session on a free local port, with one bucket."""

import subprocess
import sys
from pathlib import Path
from typing import Any

from console.localservices import free_port, stop_process, wait_for_port
from tests.helpers import CeleryWorkerProcess

BUCKET = "upserts-test"
PREFIX = "uploads-test"
# moto takes any credentials; these are the ones every client of the tests uses.
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
REGION = "us-east-1"


class LocalS3:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "LocalS3":
        log = open(self.workdir / "moto.log", "ab")  # noqa: SIM115 - handed to the child
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
        )
        log.close()
        wait_for_port(self.port, timeout=60, process=self.process)
        self.client().create_bucket(Bucket=BUCKET)
        return self

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )

    def stop(self) -> None:
        stop_process(self.process, timeout=10)

    def storage_settings(self) -> dict[str, Any]:
        """``STORAGES["default"]`` for the tests' own process, as ``UPLOAD_STORAGE=s3`` gives."""
        return {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": BUCKET,
                "location": PREFIX,
                "endpoint_url": self.url,
                "region_name": REGION,
                "addressing_style": "path",
                "file_overwrite": False,
                "default_acl": None,
                "access_key": CREDENTIALS["AWS_ACCESS_KEY_ID"],
                "secret_key": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            },
        }

    def worker_environment(self) -> dict[str, str]:
        """What a worker host gets: the settings from the environment, and no shared disk."""
        return {
            "UPLOAD_STORAGE": "s3",
            "S3_BUCKET": BUCKET,
            "S3_PREFIX": PREFIX,
            "S3_ENDPOINT_URL": self.url,
            "S3_REGION": REGION,
            "S3_PATH_STYLE": "true",
            **CREDENTIALS,
        }


def start_s3_worker(
    worker_environment: dict[str, str],
    s3_server: "LocalS3",
    queue: str,
    home: Path,
    *,
    beat: bool = True,
) -> CeleryWorkerProcess:
    """A worker as a host of its own would run it: its own empty working directory and media
    root, sharing only PostgreSQL, Redis and the object store with the tests."""
    home.mkdir(parents=True, exist_ok=True)
    return CeleryWorkerProcess(
        env={
            **worker_environment,
            **s3_server.worker_environment(),
            "CELERY_QUEUE": queue,
            "MEDIA_ROOT": str(home / "no-shared-disk"),
        },
        log_path=home / "worker.log",
        queue=queue,
        cwd=home,
        beat=beat,
    ).start()
