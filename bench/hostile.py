"""Peak memory of the upload step and of the worker for each file of the hostile corpus.

Each file of ``tests/data/hostile/`` is put through the console as a person would send it, in
two fresh processes so that one file's peak never hides another's:

- the upload step: ``create_job`` (fingerprint, format detection, the row estimate, storing)
  and the preview a person looks at next (``preview_job``);
- the worker: ``run_job_slice`` until the job is final, against an embedded Milvus.

Each process reports its own peak resident memory (VmHWM); a process that only sets
Django up is measured too, so what a file adds can be told from what Python, Django, pyarrow
and numpy cost anyway. The targets are 300 MB for the web process and 400 MB for the worker.

    .venv/bin/python bench/hostile.py
    .venv/bin/python bench/hostile.py --only deep_only.json.gz,dictionary_bomb.parquet
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from bench.common import setup_django  # noqa: E402

CORPUS = PROJECT_ROOT / "tests" / "data" / "hostile"
FIELDS = [
    {"name": "id", "type": "INT64", "is_primary": True},
    {"name": "title", "type": "VARCHAR", "max_length": 64},
    {"name": "emb", "type": "FLOAT_VECTOR", "dim": 4},
]
WEB_TARGET_MB = 300
WORKER_TARGET_MB = 400
CHILD_TIMEOUT_SECONDS = 300


def peak_mb() -> float:
    """This process's peak resident memory since it started (VmHWM). Not ru_maxrss: Linux
    carries that over from the parent a child was forked from, through exec."""
    status = Path("/proc/self/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def child_baseline() -> dict[str, Any]:
    from upserts import preview  # noqa: F401 - what they import
    from upserts.services import pipeline, uploads  # noqa: F401

    return {"peak_mb": peak_mb()}


def child_upload(path: Path, cluster_id: int, collection: str) -> dict[str, Any]:
    from upserts.models import ClusterEndpoint
    from upserts.preview import preview_job
    from upserts.services.uploads import UploadRejected, create_job

    cluster = ClusterEndpoint.objects.get(pk=cluster_id)
    try:
        with path.open("rb") as source:
            job = create_job(
                source=source, filename=path.name, cluster=cluster, collection_name=collection
            )
    except UploadRejected as exc:
        return {"refused": str(exc)[:120], "peak_mb": peak_mb()}
    shown = preview_job(job)
    return {"job": job.pk, "preview_rows": len(shown.rows), "peak_mb": peak_mb()}


def child_work(job_id: int) -> dict[str, Any]:
    from upserts.models import UpsertJob
    from upserts.services.pipeline import SliceOutcome, run_job_slice

    while run_job_slice(job_id) is not SliceOutcome.FINISHED:
        pass
    job = UpsertJob.objects.get(pk=job_id)
    return {
        "status": job.status,
        "upserted": job.rows_upserted,
        "failed": job.rows_failed,
        "peak_mb": peak_mb(),
    }


def watched_peak_mb(pid: int) -> float | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


def run_child(workdir: Path, *arguments: str) -> dict[str, Any]:
    """Run one step in a process of its own; its peak is also watched from outside, so a step
    that dies (or is stopped for taking too long) still has one."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        child = subprocess.Popen(
            [sys.executable, __file__, "--workdir", str(workdir), *arguments],
            stdout=out,
            stderr=err,
        )
        peak = 0.0
        started = time.monotonic()
        while child.poll() is None:
            peak = max(peak, watched_peak_mb(child.pid) or 0.0)
            if time.monotonic() - started > CHILD_TIMEOUT_SECONDS:
                child.kill()
                child.wait()
                return {"crashed": "timeout", "log": "still running", "peak_mb": peak}
            time.sleep(0.05)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode(errors="replace")
    if child.returncode != 0:
        return {"crashed": child.returncode, "log": stderr[-500:], "peak_mb": peak}
    result = dict(json.loads(stdout.strip().splitlines()[-1]))
    result["peak_mb"] = max(result["peak_mb"], peak)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", help="comma-separated file names of the corpus")
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        setup_django(Path(args.workdir), migrate=False)
        kind, *rest = args.child
        if kind == "baseline":
            result = child_baseline()
        elif kind == "upload":
            result = child_upload(Path(rest[0]), int(rest[1]), rest[2])
        else:
            result = child_work(int(rest[0]))
        print(json.dumps(result))
        return

    names = sorted(p.name for p in CORPUS.iterdir() if p.suffix != ".py")
    if args.only:
        names = [name for name in names if name in set(args.only.split(","))]
    with tempfile.TemporaryDirectory(prefix="hostile-bench-") as folder:
        workdir = Path(folder)
        setup_django(workdir)
        from console.localservices import LocalMilvus, create_collection
        from upserts.models import ClusterEndpoint

        milvus = LocalMilvus(workdir / "milvus").start()
        try:
            collection = f"hostile_{uuid.uuid4().hex[:8]}"
            assert milvus.port is not None
            create_collection(host="127.0.0.1", port=milvus.port, name=collection, fields=FIELDS)
            cluster = ClusterEndpoint.objects.create(name="bench", base_url=milvus.url)
            baseline = run_child(workdir, "--child", "baseline")["peak_mb"]
            rows = []
            for name in names:
                upload = run_child(
                    workdir, "--child", "upload", str(CORPUS / name), str(cluster.pk), collection
                )
                work = (
                    run_child(workdir, "--child", "work", str(upload["job"]))
                    if "job" in upload
                    else {}
                )
                rows.append((name, (CORPUS / name).stat().st_size, upload, work))
        finally:
            milvus.stop()

    print(f"\nA process that only sets Django up: {baseline:.0f} MB peak RSS.\n")
    print("| file | bytes | outcome | upload + preview, MB | worker, MB |")
    print("|---|---|---|---|---|")
    for name, size, upload, work in rows:
        if "crashed" in upload or "crashed" in work:
            log = str(upload.get("log") or work.get("log")).strip().splitlines()[-1:]
            outcome = f"stopped: {log[0][:80] if log else ''}"
        elif "refused" in upload:
            outcome = "refused at upload"
        else:
            outcome = f"{work['status']}: {work['upserted']} landed, {work['failed']} failed"
        worker = f"{work['peak_mb']:.0f}" if work else "-"
        print(f"| {name} | {size:,} | {outcome} | {upload['peak_mb']:.0f} | {worker} |")
    web_peak = max(upload["peak_mb"] for _, _, upload, _ in rows)
    worker_peak = max((work["peak_mb"] for _, _, _, work in rows if work), default=0.0)
    print(
        f"\nHighest: upload + preview {web_peak:.0f} MB (target {WEB_TARGET_MB}), worker "
        f"{worker_peak:.0f} MB (target {WORKER_TARGET_MB}); {len(rows)} files."
    )


if __name__ == "__main__":
    main()
