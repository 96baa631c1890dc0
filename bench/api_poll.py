"""What 50 scripts polling a job once a second cost: the job detail beside a health check.

Starts gunicorn on a free port against a scratch database, makes a staff user of the Viewers
role, an API token and a running job, then runs the same load against ``/healthz`` (one
``SELECT 1``, no authentication) and against the job's detail (token, role and job lookups,
serialization), in the same run so that both figures come from the same server on the same
machine. The endpoints take turns in slices of two seconds, so that whatever else the machine
does meanwhile weighs on each alike:

  paced   50 pollers, each with its own keep-alive session, one request a second
          (the detail also with ``If-None-Match``, as a script that keeps the ETag polls)
  flood   the same 50 pollers with no pause: what the server does at its limit

and prints p50 / p99 latency of each, and the ratio of the detail's p99 to the health check's
(target: under 3).

The pollers are Python threads in this process and cost CPU too. Where they run is part of
the figure, so the load runs twice, each time against a fresh gunicorn: ``shared`` (pollers
and gunicorn on every CPU, as a test on one machine would) and ``split`` (gunicorn pinned to
the first half of the CPUs, the pollers to the other half, with ``sched_setaffinity``), and
the run prints how much CPU each side used. The database server is not pinned: it shares
the machine in both. PostgreSQL when ``DATABASE_URL`` names one: a scratch database
``bench_api_poll_<random>`` is created on that server and dropped at the end, so the database in
the URL is never touched. SQLite in a temporary folder otherwise. Everything started is stopped,
and the scratch files removed, however the run ends.

    .venv/bin/python bench/api_poll.py                       # SQLite, 20 s on each
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/python bench/api_poll.py
    .venv/bin/python bench/api_poll.py --seconds 5 --pollers 20 --json-out /tmp/poll.json
"""

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

import requests  # noqa: E402

from bench.common import percentile, say, setup_django  # noqa: E402
from bench.scratch_postgres import ScratchPostgres  # noqa: E402
from console.localservices import free_port, wait_for_port  # noqa: E402

TARGET_RATIO = 3.0
WARM_UP_SECONDS = 2.0
REQUEST_TIMEOUT_SECONDS = 30.0


# --- the scratch database -------------------------------------------------------------------


@dataclass(frozen=True)
class Fixture:
    job_id: int
    key: str


def make_fixture() -> Fixture:
    """A viewer with a token, and a running job with batches behind it, as a poller sees one."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.core.files.base import ContentFile
    from django.db import connection
    from django.utils import timezone

    from upserts import roles
    from upserts.models import BatchStatus, ClusterEndpoint, JobStatus, UpsertBatch, UpsertJob
    from upserts.services.api_tokens import create_api_token

    user = get_user_model().objects.create_user("poller", is_staff=True)
    user.groups.add(Group.objects.get(name=roles.VIEWERS))
    cluster = ClusterEndpoint.objects.create(name="bench", base_url="http://127.0.0.1:9")
    job = UpsertJob(
        cluster=cluster,
        collection_name="books",
        original_filename="books.jsonl",
        file_format="jsonl",
        status=JobStatus.RUNNING,
        estimated_rows=1_000_000,
        rows_read=250_000,
        rows_upserted=249_000,
        rows_failed=1_000,
        batches_done=500,
        started_at=timezone.now() - timedelta(minutes=5),
        created_by=user,
    )
    job.source_file.save("books.jsonl", ContentFile(b"{}\n"), save=False)
    job.save()
    UpsertBatch.objects.bulk_create(
        UpsertBatch(
            job=job,
            sequence=n,
            first_row=(n - 1) * 500 + 1,
            last_row=n * 500,
            row_count=500,
            status=BatchStatus.SUCCEEDED,
            upsert_count=498,
        )
        for n in range(1, 501)
    )
    key = create_api_token(user=user, name="bench").key
    connection.close()
    return Fixture(job_id=job.pk, key=key)


# --- the server -----------------------------------------------------------------------------


class Gunicorn:
    def __init__(
        self,
        env: dict[str, str],
        workdir: Path,
        workers: int,
        threads: int,
        cpus: set[int] | None = None,
    ) -> None:
        self.port = free_port()
        self.env = {**os.environ, **env}
        self.log_path = workdir / "gunicorn.log"
        self.workers = workers
        self.threads = threads
        self.cpus = cpus
        self.process: subprocess.Popen[bytes] | None = None

    def cpu_seconds(self) -> float:
        """User and system CPU of the master and its workers so far."""
        assert self.process is not None
        children = subprocess.run(
            ["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True
        ).stdout.split()
        tick = os.sysconf("SC_CLK_TCK")
        total = 0.0
        for pid in [str(self.process.pid), *children]:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / tick
        return total

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "Gunicorn":
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "console.wsgi:application",
                    f"--bind=127.0.0.1:{self.port}",
                    f"--workers={self.workers}",
                    f"--threads={self.threads}",
                    "--worker-class=gthread",
                    "--keep-alive=30",
                    "--backlog=2048",
                    "--log-level=warning",
                ],
                cwd=PROJECT_ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                # Inherited by every worker the master forks.
                preexec_fn=(lambda: os.sched_setaffinity(0, self.cpus)) if self.cpus else None,
            )
        wait_for_port(self.port, timeout=60, process=self.process)
        return self

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        # Gunicorn's master stops its own workers on SIGTERM.
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


# --- the load -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    name: str
    url: str
    headers: dict[str, str]
    expected_status: int


@dataclass
class PhaseResult:
    name: str
    placement: str
    mode: str
    requests: int
    errors: int
    requests_per_second: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    statuses: dict[str, int]


def run_mode(
    targets: list[Target],
    *,
    placement: str,
    pollers: int,
    seconds: float,
    interval: float | None,
    slice_seconds: float,
) -> list[PhaseResult]:
    """``pollers`` threads, each its own keep-alive session, ``seconds`` on each target.

    The targets take turns in slices of ``slice_seconds`` (health, detail, detail 304, health,
    ...), so that whatever else the machine does while the run lasts weighs on each alike.
    With ``interval`` each poller sends one request per interval, starting at a random offset
    so that they spread over the second as independent scripts would; without, as fast as it
    gets answers. The first round of slices warms up and is not recorded.
    """
    rounds = max(1, round(seconds / slice_seconds))
    start_at = time.monotonic() + 0.5
    record_from = start_at + slice_seconds * len(targets)  # one warm-up round
    stop_at = record_from + rounds * slice_seconds * len(targets)
    # latencies[target][poller], statuses[target][poller]: each poller writes only its own.
    latencies: list[list[list[float]]] = [[[] for _ in range(pollers)] for _ in targets]
    statuses: list[list[dict[str, int]]] = [[{} for _ in range(pollers)] for _ in targets]

    def target_at(moment: float) -> int:
        return int((moment - start_at) // slice_seconds) % len(targets)

    def poll(index: int) -> None:
        session = requests.Session()
        rng = random.Random(index)
        next_at = start_at + (rng.uniform(0, interval) if interval else 0.0)
        while True:
            now = time.monotonic()
            if now >= stop_at:
                break
            if next_at > now:
                time.sleep(next_at - now)
            sent = time.monotonic()
            which = target_at(sent)
            target = targets[which]
            try:
                response = session.get(
                    target.url, headers=target.headers, timeout=REQUEST_TIMEOUT_SECONDS
                )
                outcome = str(response.status_code)
                ok = response.status_code == target.expected_status
            except requests.RequestException as exc:
                outcome, ok = type(exc).__name__, False
            took = time.monotonic() - sent
            if sent >= record_from:
                counts = statuses[which][index]
                counts[outcome] = counts.get(outcome, 0) + 1
                if ok:
                    latencies[which][index].append(took * 1000)
            next_at = (next_at + interval) if interval else time.monotonic()
        session.close()

    threads = [threading.Thread(target=poll, args=(i,), daemon=True) for i in range(pollers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    measured = rounds * slice_seconds
    results = []
    for which, target in enumerate(targets):
        merged = sorted(value for per_poller in latencies[which] for value in per_poller)
        counts: dict[str, int] = {}
        for per_poller in statuses[which]:
            for outcome, count in per_poller.items():
                counts[outcome] = counts.get(outcome, 0) + count
        total = sum(counts.values())
        results.append(
            PhaseResult(
                name=target.name,
                placement=placement,
                mode="paced" if interval else "flood",
                requests=total,
                errors=total - len(merged),
                requests_per_second=round(total / measured, 1),
                p50_ms=round(percentile(merged, 0.50), 2),
                p90_ms=round(percentile(merged, 0.90), 2),
                p99_ms=round(percentile(merged, 0.99), 2),
                max_ms=round(merged[-1], 2) if merged else float("nan"),
                statuses=counts,
            )
        )
    return results


def print_table(results: list[PhaseResult]) -> None:
    say("")
    say(
        f"{'endpoint':<24} {'where':<7} {'mode':<6} {'requests':>9} {'req/s':>8} {'errors':>7} "
        f"{'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8}"
    )
    for r in results:
        say(
            f"{r.name:<24} {r.placement:<7} {r.mode:<6} {r.requests:>9} "
            f"{r.requests_per_second:>8} {r.errors:>7} {r.p50_ms:>8} {r.p90_ms:>8} "
            f"{r.p99_ms:>8} {r.max_ms:>8}"
        )


def ratios(results: list[PhaseResult]) -> dict[str, float]:
    by_key = {(r.name, r.placement, r.mode): r for r in results}
    found = {}
    for placement in PLACEMENTS:
        for mode in ("paced", "flood"):
            health = by_key.get(("health", placement, mode))
            for name in ("job detail", "job detail (304)"):
                detail = by_key.get((name, placement, mode))
                if health and detail and health.p99_ms > 0:
                    label = f"{name} / health p99, {placement}, {mode}"
                    found[label] = round(detail.p99_ms / health.p99_ms, 2)
    return found


PLACEMENTS = ("shared", "split")


def cpu_sets(placement: str) -> tuple[set[int] | None, set[int] | None]:
    """(gunicorn's CPUs, the pollers' CPUs) for a placement; None is every CPU."""
    if placement == "shared":
        return None, None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise SystemExit("the split placement needs two CPUs or more")
    half = len(cpus) // 2
    return set(cpus[:half]), set(cpus[half:])


# --- the run --------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pollers", type=int, default=50, help="concurrent pollers (50)")
    parser.add_argument(
        "--seconds", type=float, default=20.0, help="measured seconds on each endpoint and mode"
    )
    parser.add_argument(
        "--slice-seconds", type=float, default=2.0, help="how long each endpoint's turn lasts"
    )
    parser.add_argument("--workers", type=int, default=3, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker")
    parser.add_argument(
        "--no-flood", action="store_true", help="skip the as-fast-as-possible phases"
    )
    parser.add_argument(
        "--placements",
        nargs="+",
        choices=PLACEMENTS,
        default=list(PLACEMENTS),
        help="where the pollers run beside gunicorn (both, one after the other)",
    )
    parser.add_argument("--json-out", type=Path, help="also write the figures here as JSON")
    return parser.parse_args(argv)


def run_placement(
    args: argparse.Namespace, server: Gunicorn, fixture: Fixture, placement: str
) -> tuple[list[PhaseResult], dict[str, float]]:
    """Every mode against one server; the results and the CPU each side used meanwhile."""
    detail_url = f"{server.url}/api/v1/jobs/{fixture.job_id}/"
    token = {"Authorization": f"Bearer {fixture.key}"}
    etag = requests.get(detail_url, headers=token, timeout=10).headers["ETag"]
    say(
        f"{placement}: gunicorn {args.workers} workers x {args.threads} threads on "
        f"{server.url}, {args.pollers} pollers, {args.seconds:.0f} s on each endpoint, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} before"
    )
    targets = [
        Target("health", f"{server.url}/healthz", {}, 200),
        Target("job detail", detail_url, token, 200),
        Target("job detail (304)", detail_url, {**token, "If-None-Match": etag}, 304),
    ]
    modes: list[float | None] = [1.0] if args.no_flood else [1.0, None]
    server_before, pollers_before = server.cpu_seconds(), time.process_time()
    results = []
    for interval in modes:
        for result in run_mode(
            targets,
            placement=placement,
            pollers=args.pollers,
            seconds=args.seconds,
            interval=interval,
            slice_seconds=args.slice_seconds,
        ):
            say(
                f"  {result.mode:<5} {result.name:<18} p50 {result.p50_ms} ms, "
                f"p99 {result.p99_ms} ms"
            )
            results.append(result)
    cpu = {
        "server_cpu_s": round(server.cpu_seconds() - server_before, 2),
        "pollers_cpu_s": round(time.process_time() - pollers_before, 2),
    }
    return results, cpu


def stop_on_sigterm() -> None:
    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stop_on_sigterm()
    workdir = Path(tempfile.mkdtemp(prefix="bench-api-poll-"))
    server_url = os.environ.get("DATABASE_URL", "")
    scratch = (
        ScratchPostgres(server_url, prefix="bench_api_poll")
        if server_url.startswith("postgres")
        else None
    )
    server: Gunicorn | None = None
    try:
        if scratch is not None:
            scratch.create()
            database_url = scratch.url
        else:
            database_url = f"sqlite:///{workdir / 'bench.sqlite3'}"
        env = setup_django(workdir, database_url=database_url, LOG_LEVEL="ERROR")
        fixture = make_fixture()
        every_cpu = os.sched_getaffinity(0)
        results: list[PhaseResult] = []
        cpu_use: dict[str, dict[str, float]] = {}
        for placement in args.placements:
            server_cpus, poller_cpus = cpu_sets(placement)
            server = Gunicorn(env, workdir, args.workers, args.threads, server_cpus).start()
            os.sched_setaffinity(0, poller_cpus or every_cpu)
            try:
                placed, cpu_use[placement] = run_placement(args, server, fixture, placement)
                results.extend(placed)
            finally:
                os.sched_setaffinity(0, every_cpu)
                server.stop()
                server = None
            say(
                f"  {placement}: gunicorn on CPUs {sorted(server_cpus or every_cpu)}, pollers "
                f"on {sorted(poller_cpus or every_cpu)}; CPU used: gunicorn "
                f"{cpu_use[placement]['server_cpu_s']:.1f} s, pollers "
                f"{cpu_use[placement]['pollers_cpu_s']:.1f} s"
            )
        print_table(results)
        found = ratios(results)
        say(
            f"\nload average {os.getloadavg()[0]:.2f} after the run (other work on the machine "
            "shows in every figure alike)"
        )
        for label, ratio in found.items():
            verdict = "ok" if ratio < TARGET_RATIO else "over target"
            say(f"{label}: {ratio}x (target < {TARGET_RATIO:g}x: {verdict})")
        if args.json_out:
            args.json_out.write_text(
                json.dumps(
                    {
                        "phases": [asdict(r) for r in results],
                        "ratios": found,
                        "cpu_seconds": cpu_use,
                    },
                    indent=2,
                )
            )
        failed = [r for r in results if r.errors]
        if failed:
            say(f"\nrequests that failed: {[(r.name, r.mode, r.statuses) for r in failed]}")
            say(f"gunicorn log: {(workdir / 'gunicorn.log').read_text()[-2000:]}")
            return 1
        return 0
    finally:
        if server is not None:
            server.stop()
        if scratch is not None:
            from django.db import connections

            connections.close_all()
            scratch.drop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
