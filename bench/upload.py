"""Upload throughput and the web process' memory: a file sent in one POST, and in parts (tus).

Starts gunicorn (one worker, two threads) against a scratch database, with a cluster whose
describe answers from a small HTTP server in this process (so a job can be made), then for
each size sends the same JSON Lines file twice: as one multipart ``POST /api/v1/jobs/`` (the
old single request) and as a resumable upload through ``tuspy`` (64 MiB parts to
``/api/v1/uploads/``) followed by ``POST /api/v1/jobs/`` with ``upload``. For each it prints
the rows/s of bytes (MB/s, the job's creation included) and the peak growth of the gunicorn
worker's RSS over its RSS before the upload, sampled every 20 ms.

    .venv/bin/python bench/upload.py                    # 100 MB and 2 GB
    .venv/bin/python bench/upload.py --sizes-mb 100     # a quick run
"""

import argparse
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

import requests  # noqa: E402

from bench.api_poll import Gunicorn  # noqa: E402
from bench.common import load_average, say, setup_django  # noqa: E402

MB = 1_000_000
PART_BYTES = 64 * 1024 * 1024
DESCRIBE = {
    "code": 200,
    "data": {
        "collectionName": "books",
        "enableDynamicField": True,
        "fields": [
            {"name": "book_id", "type": "Int64", "primaryKey": True, "autoId": False},
            {"name": "title", "type": "VarChar(64)", "primaryKey": False, "autoId": False},
            {"name": "emb", "type": "FloatVector(4)", "primaryKey": False, "autoId": False},
        ],
    },
}


class _Describe(http.server.BaseHTTPRequestHandler):
    """Answers every request as Milvus 2.3.5 answers describe (v1 asks with a GET)."""

    def do_GET(self) -> None:  # noqa: N802 - the http.server name
        self._answer()

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._answer()

    def _answer(self) -> None:
        body = json.dumps(DESCRIBE).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        return


def write_file(path: Path, size: int) -> None:
    line = b'{"book_id": %d, "title": "Book", "emb": [0.5, 0.5, -0.25, 1.0]}\n'
    block = b"".join(line % i for i in range(1, 20_001))
    with path.open("wb") as out:
        while out.tell() < size:
            out.write(block[: size - out.tell()])


def worker_pid(master: int) -> int:
    children = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True)
    return int(children.stdout.split()[0])


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


class PeakRss:
    """The largest RSS of a process while the block runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.before = rss_bytes(pid)
        self.peak = self.before
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes(self.pid))
            time.sleep(0.02)

    def __enter__(self) -> "PeakRss":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.before) / MB


def single_post(url: str, token: str, cluster: int, path: Path) -> None:
    with path.open("rb") as file:
        answer = requests.post(
            f"{url}/api/v1/jobs/",
            data={"cluster": cluster, "collection": "books"},
            files={"file": (path.name, file)},
            headers={"Authorization": f"Bearer {token}"},
            timeout=3600,
        )
    if answer.status_code != 202:
        raise RuntimeError(f"single POST answered {answer.status_code}: {answer.text[:300]}")


def resumable(url: str, token: str, cluster: int, path: Path) -> None:
    from tusclient.client import TusClient

    headers = {"Authorization": f"Bearer {token}"}
    uploader = TusClient(f"{url}/api/v1/uploads/", headers=headers).uploader(
        str(path), chunk_size=PART_BYTES, metadata={"filename": path.name}
    )
    uploader.upload()
    assert uploader.url is not None
    upload = uploader.url.rstrip("/").rsplit("/", 1)[1]
    answer = requests.post(
        f"{url}/api/v1/jobs/",
        data={"cluster": cluster, "collection": "books", "upload": upload},
        headers=headers,
        timeout=3600,
    )
    if answer.status_code != 202:
        raise RuntimeError(f"job of the upload answered {answer.status_code}: {answer.text}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes-mb", type=int, nargs="+", default=[100, 2000])
    args = parser.parse_args(argv)
    say(f"load average at start: {load_average()} on {os.cpu_count()} CPUs")
    workdir = Path(tempfile.mkdtemp(prefix="bench-upload-"))
    describe = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Describe)
    threading.Thread(target=describe.serve_forever, daemon=True).start()
    server = None
    try:
        env = setup_django(workdir, LOG_LEVEL="ERROR", DJANGO_LOG_LEVEL="ERROR")
        from upserts import roles
        from upserts.models import ClusterEndpoint
        from upserts.roles import ensure_role_groups
        from upserts.services.api_tokens import create_api_token

        ensure_role_groups()
        from django.contrib.auth.models import Group, User

        user = User.objects.create_user("bench", password="x", is_staff=True)
        user.groups.add(Group.objects.get(name=roles.OPERATORS))
        token = create_api_token(user=user, name="bench").key
        cluster = ClusterEndpoint.objects.create(
            name="describe-only", base_url=f"http://127.0.0.1:{describe.server_port}"
        )
        server = Gunicorn(env, workdir, workers=1, threads=2).start()
        time.sleep(1)
        assert server.process is not None
        pid = worker_pid(server.process.pid)
        results = []
        for size_mb in args.sizes_mb:
            path = workdir / f"books-{size_mb}mb.jsonl"
            write_file(path, size_mb * MB)
            for name, send in (("single POST", single_post), ("resumable (tus)", resumable)):
                with PeakRss(pid) as rss:
                    started = time.perf_counter()
                    send(server.url, token, cluster.pk, path)
                    seconds = time.perf_counter() - started
                results.append((size_mb, name, size_mb / seconds, rss.growth_mb, rss.before / MB))
                say(
                    f"  {size_mb:,} MB {name}: {size_mb / seconds:,.0f} MB/s, worker RSS "
                    f"{rss.before / MB:,.0f} MB before, +{rss.growth_mb:,.1f} MB at its peak"
                )
                shutil.rmtree(workdir / "media", ignore_errors=True)
            path.unlink()
        say("")
        say(f"{'size':>8}  {'how':<18}{'MB/s':>8}{'RSS growth MB':>16}{'RSS before MB':>16}")
        for size_mb, name, speed, growth, before in results:
            say(f"{size_mb:>6,} MB  {name:<18}{speed:>8,.0f}{growth:>16,.1f}{before:>16,.0f}")
        say(f"load average at end: {load_average()}")
        return 0
    finally:
        if server is not None:
            server.stop()
        describe.shutdown()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
