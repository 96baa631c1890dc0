"""Throughput and memory of the upsert pipeline against an embedded Milvus.

Three questions, answered in one run so that every figure comes from the same server under
the same load:

(a) How many rows a second this machine's Milvus takes over REST at all: pre-encoded 500-row
    bodies posted in a tight loop at 1, 2 and 4 requests in flight. The best of those is the
    limit no pipeline can beat, so the pipeline is judged against it rather than in isolation.
(b) How close the real pipeline (``create_job`` + ``run_job_slice``) gets to that limit from a
    JSON Lines, a CSV and a Parquet file holding the same rows, at the best count or a job's
    default (2 in flight), whichever is more. Raw REST at the best count and
    the three files are measured in turn, for several rounds, and the medians are compared:
    Milvus' own CPU per row swings by a tenth or more between phases (a segment sealed, a
    compaction), and one measurement of each would mostly show where those landed.
(c) Whether the process running a job keeps its memory flat as the file grows: a worker that
    holds a file in memory dies on the first big upload.

(a) and (b) are measured over REST v1 and over gRPC alike (``--transports``): raw gRPC sends
upsert requests built before the clock starts, and the gRPC pipeline is judged against it and
against the REST pipeline on the same file.

Every pipeline run is checked to have upserted every row: a fast broken run proves nothing.

Where Milvus runs matters. A cluster has machines of its own, so by default Milvus gets one CPU
of its own and the benchmark (client and worker alike) the rest: the ratio then says whether
the pipeline keeps the cluster as busy as pre-encoded bodies do. With ``--milvus-cpus 0`` both
share every CPU, and every microsecond the pipeline spends on a row is taken from Milvus too:
the ratio then also prices the client's CPU against the server's.

    .venv/bin/python bench/pipeline.py         # 20 000 rows, 4 rounds, RSS at 100 and 1000 MB
    .venv/bin/python bench/pipeline.py --milvus-cpus 0 --skip-rss        # Milvus shares CPUs
    .venv/bin/python bench/pipeline.py --rows 5000 --rss-sizes 20,60 --json-out /tmp/p.json
    .venv/bin/python bench/pipeline.py --transports grpc --skip-rss       # gRPC only
"""

import argparse
import contextlib
import csv
import functools
import itertools
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

import numpy as np  # noqa: E402
import orjson  # noqa: E402

from bench.common import load_average, say, setup_django  # noqa: E402

COLLECTION = "bench_vectors"
CLUSTER_NAME = "bench-milvus"
DIMENSION = 768
BATCH_ROWS = 500
IN_FLIGHT_LEVELS = (1, 2, 4)
FIELDS: list[dict[str, Any]] = [
    {"name": "id", "type": "INT64", "is_primary": True},
    {"name": "title", "type": "VARCHAR", "max_length": 64},
    {"name": "emb", "type": "FLOAT_VECTOR", "dim": DIMENSION},
]
# Distinct vectors the rows cycle through: enough that bodies are not trivially alike, few
# enough that generating a gigabyte of rows costs seconds, not minutes.
VECTOR_POOL_SIZE = 1000
PARQUET_GROUP_ROWS = 10_000
MIN_PHASE_SECONDS = 10.0
TARGET_RATIO = 0.9
# The gRPC pipeline against the REST pipeline on the same file.
TARGET_GRPC_SPEEDUP = 3.0
TRANSPORTS = {"rest": "v1", "grpc": "grpc"}
TARGET_RSS_MB = 250.0
# Peak RSS may wobble by allocator noise; more than this much growth from the smallest to the
# largest file means memory follows the file size.
RSS_GROWTH_TOLERANCE = 0.10
MIB = 1024 * 1024


class BenchmarkError(RuntimeError):
    """A measured run did not do what it was meant to; its figure would be meaningless."""


# --- where the time and the cores went ----------------------------------------------------------


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def process_cpu_seconds(pid: int) -> float:
    """CPU time of another process (Milvus), to tell a busy server from an idle client."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 of the line; 12 and 13 after the ")".
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU time every process on the machine has spent, from the first line of /proc/stat."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


@dataclass
class Measurement:
    """One timed phase, with what both processes spent on it and the load around it."""

    name: str
    rows: int = 0
    seconds: float = 0.0
    client_cpu_seconds: float = 0.0
    milvus_cpu_seconds: float = 0.0
    # CPU that other processes (other test runs on a shared machine) took during the phase.
    others_cpu_seconds: float = 0.0
    load_start: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_end: tuple[float, float, float] = (0.0, 0.0, 0.0)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


class Stopwatch:
    """Wall time, this process's CPU and Milvus' CPU, summed over the stretches it ran.

    A phase may be several runs with untimed set-up between them (a pipeline job is created,
    file copy and all, before its run starts), so the clock is started and stopped per run.
    """

    def __init__(self, name: str, milvus_pid: int) -> None:
        self.measurement = Measurement(name=name, load_start=load_average())
        self.milvus_pid = milvus_pid
        say(f"  {name}: start, load {self.measurement.load_start}")

    @contextlib.contextmanager
    def running(self) -> Iterator[Measurement]:
        measurement = self.measurement
        client_before = own_cpu_seconds()
        milvus_before = process_cpu_seconds(self.milvus_pid)
        machine_before = machine_busy_seconds()
        started = time.perf_counter()
        try:
            yield measurement
        finally:
            measurement.seconds += time.perf_counter() - started
            client = own_cpu_seconds() - client_before
            milvus = process_cpu_seconds(self.milvus_pid) - milvus_before
            others = machine_busy_seconds() - machine_before - client - milvus
            measurement.client_cpu_seconds += client
            measurement.milvus_cpu_seconds += milvus
            measurement.others_cpu_seconds += max(0.0, others)

    def finish(self) -> Measurement:
        measurement = self.measurement
        measurement.load_end = load_average()
        say(
            f"  {measurement.name}: {measurement.rows:,} rows in {measurement.seconds:.1f} s = "
            f"{measurement.rows_per_second:,.0f} rows/s (client CPU "
            f"{measurement.client_cpu_seconds:.1f} s, Milvus CPU "
            f"{measurement.milvus_cpu_seconds:.1f} s, other processes "
            f"{measurement.others_cpu_seconds:.1f} s), load {measurement.load_end}"
        )
        return measurement


def wait_for_quiet_milvus(pid: int, *, idle_cores: float = 0.15, timeout: float = 30) -> None:
    """Let Milvus finish what an earlier phase left behind (flushes, dropping a collection),
    so that background work is not billed to the next phase."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = process_cpu_seconds(pid)
        time.sleep(1)
        if process_cpu_seconds(pid) - before < idle_cores:
            return
    say(f"  note: Milvus still busy after {timeout:.0f} s; measuring anyway")


# --- the rows -----------------------------------------------------------------------------------


class RowSource:
    """Row ``n`` is always the same, whatever file format carries it.

    Vectors are unit-length float32 embeddings, as a model gives them: about 9.5 KB of JSON a
    row. Every file and every raw body writes them with ``encode_row``, the way orjson writes a
    float32 array, which is also how the pipeline writes a Parquet file's float32 cells; so
    every format sends the very same request bytes.
    """

    def __init__(self, seed: int = 20240501) -> None:
        generator = np.random.default_rng(seed)
        vectors = generator.standard_normal((VECTOR_POOL_SIZE, DIMENSION)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        self.vectors32 = vectors

    def row(self, number: int) -> dict[str, Any]:
        return {
            "id": number,
            "title": f"Book {number}",
            "emb": self.vectors32[number % VECTOR_POOL_SIZE],
        }

    def rows(self, count: int) -> Iterator[dict[str, Any]]:
        return (self.row(number) for number in range(1, count + 1))


def encode_row(row: dict[str, Any]) -> bytes:
    return orjson.dumps(row, option=orjson.OPT_SERIALIZE_NUMPY)


def write_jsonl(path: Path, source: RowSource, count: int) -> int:
    with path.open("wb") as out:
        for row in source.rows(count):
            out.write(encode_row(row) + b"\n")
    return count


def write_jsonl_of_size(path: Path, source: RowSource, target_bytes: int) -> int:
    """Rows until the file reaches ``target_bytes``, streamed: the file never sits in memory."""
    written = 0
    number = 0
    with path.open("wb") as out:
        while written < target_bytes:
            number += 1
            line = encode_row(source.row(number)) + b"\n"
            out.write(line)
            written += len(line)
    return number


def write_csv(path: Path, source: RowSource, count: int) -> int:
    """A header row, then one row per entity; the vector column holds its values as JSON text."""
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["id", "title", "emb"])
        for row in source.rows(count):
            writer.writerow([row["id"], row["title"], encode_row(row["emb"]).decode()])
    return count


def write_parquet(path: Path, source: RowSource, count: int) -> int:
    """The vector as list<float32>, written in row groups of PARQUET_GROUP_ROWS rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema(
        [("id", pa.int64()), ("title", pa.string()), ("emb", pa.list_(pa.float32()))]
    )
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(1, count + 1, PARQUET_GROUP_ROWS):
            ids = np.arange(start, min(start + PARQUET_GROUP_ROWS, count + 1), dtype=np.int64)
            vectors = source.vectors32[ids % VECTOR_POOL_SIZE]
            offsets = np.arange(0, (len(ids) + 1) * DIMENSION, DIMENSION, dtype=np.int32)
            emb = pa.ListArray.from_arrays(pa.array(offsets), pa.array(vectors.ravel()))
            titles = pa.array([f"Book {number}" for number in ids.tolist()], type=pa.string())
            writer.write_table(pa.table([pa.array(ids), titles, emb], schema=schema))
    return count


FILE_WRITERS: dict[str, tuple[str, Callable[[Path, RowSource, int], int]]] = {
    "JSONL": ("rows.jsonl", write_jsonl),
    "CSV": ("rows.csv", write_csv),
    "Parquet": ("rows.parquet", write_parquet),
}


# --- services -----------------------------------------------------------------------------------


def pin_this_process(cpus: set[int]) -> None:
    """Every thread of this process onto ``cpus``; threads and children started later inherit."""
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(int(task.name), cpus)


def split_cpus(milvus_cpus: int) -> tuple[set[int], set[int]]:
    """(Milvus' CPUs, this process's CPUs): the last ``milvus_cpus`` of them for Milvus."""
    available = sorted(os.sched_getaffinity(0))
    if not 0 < milvus_cpus < len(available):
        raise BenchmarkError(
            f"--milvus-cpus must leave this process at least one of the {len(available)} CPUs"
        )
    return set(available[-milvus_cpus:]), set(available[:-milvus_cpus])


@contextlib.contextmanager
def embedded_milvus(
    workdir: Path, cpus: set[int] | None = None, *, listen_port: int | None = None
) -> Iterator[Any]:
    """A Milvus of its own; on ``cpus`` only, when given (it starts with this process's CPU
    set, so the Go runtime sizes itself to them, and this process then moves off them)."""
    from console.localservices import LocalMilvus, free_port

    server = LocalMilvus(workdir)
    server.server.show_startup_banner = False
    # The package would take the first free port from 19530 up, the same one another session
    # starting a Milvus at the same moment would take; a random free port makes that unlikely.
    server.server.listen_port = listen_port or free_port()
    own_cpus = os.sched_getaffinity(0)
    try:
        if cpus is not None:
            pin_this_process(cpus)
        try:
            server.start()
        finally:
            pin_this_process(own_cpus)
        yield server
    finally:
        server.stop()


class RestartedMilvus:
    """An embedded Milvus started anew on an empty folder, on the same port, before each phase.

    One Milvus kept for a whole run slows as the run goes on: the same raw requests sent twice
    in a row on a fresh collection cost it 86 and then 139 µs a row. A server of its own per
    phase takes that drift out of the comparison, at about 15 s a phase.
    """

    def __init__(self, workdir: Path, cpus: set[int] | None) -> None:
        from console.localservices import free_port

        self.workdir = workdir
        self.cpus = cpus
        self.listen_port = free_port()
        self.starts = 0
        self.current: Any = None
        self._stack = contextlib.ExitStack()

    def restart(self) -> None:
        self._stack.close()
        shutil.rmtree(self.workdir / f"milvus-{self.starts}", ignore_errors=True)
        self.starts += 1
        folder = self.workdir / f"milvus-{self.starts}"
        self.current = self._stack.enter_context(
            embedded_milvus(folder, self.cpus, listen_port=self.listen_port)
        )

    def stop(self) -> None:
        self._stack.close()

    @property
    def url(self) -> str:
        return str(self.current.url)

    @property
    def port(self) -> int:
        return int(self.current.port)

    @property
    def server(self) -> Any:
        return self.current.server


def fresh_collection(milvus: Any) -> None:
    """A new empty collection per phase, so no phase pays for the deletes an earlier one left;
    in a new Milvus when the run restarts it per phase."""
    from console.localservices import create_collection

    if isinstance(milvus, RestartedMilvus):
        milvus.restart()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        create_collection(host="127.0.0.1", port=milvus.port, name=COLLECTION, fields=FIELDS)
    wait_for_quiet_milvus(milvus_pid(milvus))


def milvus_pid(milvus: Any) -> int:
    return int(milvus.server.server_proc.pid)


# --- (a) the raw REST limit ---------------------------------------------------------------------


def encode_bodies(client: Any, source: RowSource, count: int) -> tuple[list[Any], list[int]]:
    """Requests of BATCH_ROWS rows each, built before the clock starts: REST bodies, or gRPC
    upsert messages built by the console's own column encoder."""
    schema = client.describe_collection("", COLLECTION)
    encoder = client.upsert_encoder(database="", collection=COLLECTION, schema=schema)
    requests: list[Any] = []
    sizes: list[int] = []
    rows = source.rows(count)
    while chunk := list(itertools.islice(rows, BATCH_ROWS)):
        if client.row_form == "json":
            requests.append(encoder.request([encode_row(row) for row in chunk]))
        else:
            requests.append(encoder.request(chunk))
        sizes.append(len(chunk))
    return requests, sizes


def request_bytes(request: Any) -> int:
    return len(request) if isinstance(request, bytes) else int(request.ByteSize())


def post_bodies(
    client: Any, bodies: list[Any], sizes: list[int], in_flight: int, min_seconds: float
) -> int:
    """Send every request at least once, and keep cycling through them until ``min_seconds``.

    Each thread takes the next request as soon as its last answer came back, so exactly
    ``in_flight`` requests are outstanding; returns the rows Milvus said it upserted.
    """
    order = itertools.count()  # next() on a count is atomic under the GIL
    deadline = time.perf_counter() + min_seconds
    stop = threading.Event()

    def worker() -> int:
        upserted = 0
        while not stop.is_set():
            index = next(order)
            if index >= len(bodies) and time.perf_counter() >= deadline:
                break
            body_index = index % len(bodies)
            result = client.send_upsert(bodies[body_index])
            if result.upsert_count != sizes[body_index]:
                raise BenchmarkError(
                    f"Milvus upserted {result.upsert_count} of {sizes[body_index]} rows"
                )
            upserted += result.upsert_count
        return upserted

    with ThreadPoolExecutor(max_workers=in_flight) as pool:
        futures = [pool.submit(worker) for _ in range(in_flight)]
        try:
            return sum(future.result() for future in futures)
        finally:
            stop.set()


def measure_raw(
    milvus: Any,
    client: Any,
    bodies: list[Any],
    sizes: list[int],
    in_flight: int,
    min_seconds: float,
    transport: str,
) -> Measurement:
    """The requests sent at ``in_flight`` requests in flight, into a fresh collection."""
    fresh_collection(milvus)
    wait_for_answers(client)
    watch = Stopwatch(
        f"raw {transport_label(transport)}, {in_flight} in flight", milvus_pid(milvus)
    )
    with watch.running() as measurement:
        measurement.rows = post_bodies(client, bodies, sizes, in_flight, min_seconds)
    watch.finish()
    measurement.extra = {"in_flight": in_flight, "transport": transport}
    return measurement


def wait_for_answers(client: Any, timeout: float = 60) -> None:
    """Until the client's connection answers: after a restart, a gRPC channel reconnects."""
    from upserts.milvus.errors import RetryableClusterError

    deadline = time.monotonic() + timeout
    while True:
        try:
            client.list_collections("")
            return
        except RetryableClusterError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.5)


def transport_label(transport: str) -> str:
    return "REST" if transport == "rest" else "gRPC"


# --- (b) the pipeline ---------------------------------------------------------------------------


def bench_cluster(milvus: Any, transport: str = "rest") -> Any:
    from upserts.models import ClusterEndpoint

    cluster, _ = ClusterEndpoint.objects.update_or_create(
        name=f"{CLUSTER_NAME}-{transport}",
        defaults={"base_url": milvus.url, "api_version": TRANSPORTS[transport]},
    )
    return cluster


def run_job_to_end(job_id: int) -> None:
    """What a worker does, slice after slice, in this process."""
    from upserts.services.pipeline import SliceOutcome, run_job_slice

    while (outcome := run_job_slice(job_id)) is not SliceOutcome.FINISHED:
        if outcome is SliceOutcome.BUSY:
            time.sleep(1)


def check_job_upserted_all(job_id: int, rows: int) -> None:
    from upserts.models import JobStatus, UpsertJob

    job = UpsertJob.objects.get(pk=job_id)
    if job.status != JobStatus.SUCCEEDED or job.rows_upserted != rows or job.rows_failed:
        raise BenchmarkError(
            f"job {job_id} ended {job.status} with {job.rows_upserted:,} of {rows:,} rows "
            f"upserted and {job.rows_failed:,} failed: {job.error_message[:300]}"
        )


def retried_requests(job_id: int) -> int:
    """Requests beyond one per batch: each is a retry that slept, and slows the figure."""
    from django.db.models import Count, Sum

    from upserts.models import UpsertBatch

    totals = UpsertBatch.objects.filter(job_id=job_id).aggregate(
        requests=Sum("attempts"), batches=Count("id")
    )
    return (totals["requests"] or 0) - totals["batches"]


def measure_pipeline(
    milvus: Any,
    path: Path,
    label: str,
    rows: int,
    in_flight: int,
    min_seconds: float,
    transport: str = "rest",
) -> Measurement:
    """Jobs on the file through create_job and run_job_slice until ``min_seconds`` of running.

    Only the runs are timed: create_job (copying and fingerprinting the upload) is the web
    request's work, not the worker's. Every job must have upserted every row.
    """
    from upserts.services.clusters import client_for
    from upserts.services.uploads import create_job

    fresh_collection(milvus)
    cluster = bench_cluster(milvus, transport)
    # The process's connections to a restarted Milvus reconnect here, not in the timed run.
    wait_for_answers(client_for(cluster))
    watch = Stopwatch(f"pipeline {transport_label(transport)}, {label}", milvus_pid(milvus))
    jobs: list[int] = []
    while watch.measurement.seconds < min_seconds:
        with path.open("rb") as source:
            job = create_job(
                source=source,
                filename=path.name,
                cluster=cluster,
                collection_name=COLLECTION,
                batch_size=BATCH_ROWS,
                max_in_flight=in_flight,
            )
        with watch.running():
            run_job_to_end(job.pk)
        check_job_upserted_all(job.pk, rows)
        retries = retried_requests(job.pk)
        if retries:
            say(f"  note: job {job.pk} retried {retries} requests; its time includes backoff")
        watch.measurement.rows += rows
        jobs.append(job.pk)
        job.source_file.storage.delete(job.source_file.name)
    measurement = watch.finish()
    measurement.extra = {
        "in_flight": in_flight,
        "file_bytes": path.stat().st_size,
        "jobs": jobs,
        "transport": transport,
    }
    return measurement


# --- (c) peak memory of a job's process ---------------------------------------------------------


@dataclass
class RssMeasurement:
    target_mb: int
    in_flight: int
    file_mb: float
    rows: int
    peak_rss_mb: float
    seconds: float
    cpu_seconds: float
    load_start: tuple[float, float, float]
    load_end: tuple[float, float, float]

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


def peak_rss_kb(pid: int) -> int | None:
    """VmHWM of a live process; None once it is gone or a zombie (no address space left)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return None


def run_and_watch(command: list[str], log: IO[bytes]) -> tuple[int, float, float]:
    """Run a child to its end: (exit code, its peak RSS in MiB, its CPU seconds).

    Not ru_maxrss from wait4 or RUSAGE_CHILDREN: Linux carries the parent's high-water mark
    into a child across (v)fork + exec, so under this benchmark's parent (hundreds of MB) even
    ``python -c pass`` reports the parent's size. VmHWM belongs to the child's own address
    space; it only ever rises, so the last reading before exit, polled every 0.1 s, is the peak.
    """
    process = subprocess.Popen(
        command, cwd=PROJECT_ROOT, env=os.environ.copy(), stdout=log, stderr=subprocess.STDOUT
    )
    peak_kb = 0
    cpu_seconds = 0.0
    try:
        while process.poll() is None:
            with contextlib.suppress(FileNotFoundError, ProcessLookupError, IndexError):
                peak_kb = max(peak_kb, peak_rss_kb(process.pid) or 0)
                cpu_seconds = process_cpu_seconds(process.pid)
            time.sleep(0.1)
        return process.returncode, peak_kb / 1024, cpu_seconds
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def measure_rss(
    milvus: Any, source: RowSource, workdir: Path, target_mb: int, in_flight: int
) -> RssMeasurement:
    """``manage.py upsert --here`` on a generated JSON Lines file, in a process of its own."""
    from django.db import connections

    from upserts.models import UpsertJob

    path = workdir / f"rss-{target_mb}mb.jsonl"
    log_path = workdir / f"rss-{target_mb}mb.log"
    try:
        rows = write_jsonl_of_size(path, source, target_mb * MIB)
        file_mb = path.stat().st_size / MIB
        say(f"  {path.name}: {rows:,} rows, {file_mb:,.0f} MiB")
        fresh_collection(milvus)
        bench_cluster(milvus)
        connections.close_all()
        command = [
            sys.executable, "manage.py", "upsert", str(path), "--cluster", f"{CLUSTER_NAME}-rest",
            "--collection", COLLECTION, "--here", "--batch-size", str(BATCH_ROWS),
            "--in-flight", str(in_flight),
        ]  # fmt: skip
        load_start = load_average()
        say(f"  RSS {target_mb} MB: start, load {load_start}")
        started = time.perf_counter()
        with log_path.open("wb") as log:
            code, peak_mb, cpu_seconds = run_and_watch(command, log)
        seconds = time.perf_counter() - started
        load_end = load_average()
        if code != 0:
            tail = log_path.read_text(errors="replace")[-2000:]
            raise BenchmarkError(f"manage.py upsert exited with {code}:\n{tail}")
        job = UpsertJob.objects.order_by("-pk").first()
        assert job is not None
        check_job_upserted_all(job.pk, rows)
        measurement = RssMeasurement(
            target_mb=target_mb,
            in_flight=in_flight,
            file_mb=file_mb,
            rows=rows,
            peak_rss_mb=peak_mb,
            seconds=seconds,
            cpu_seconds=cpu_seconds,
            load_start=load_start,
            load_end=load_end,
        )
        say(
            f"  RSS {target_mb} MB: peak {measurement.peak_rss_mb:,.0f} MB, {rows:,} rows in "
            f"{seconds:.0f} s ({measurement.rows_per_second:,.0f} rows/s incl. upload copy and "
            f"process start), load {load_end}"
        )
        job.source_file.storage.delete(job.source_file.name)
        return measurement
    finally:
        path.unlink(missing_ok=True)


# --- report -------------------------------------------------------------------------------------


@dataclass
class Phase:
    """One phase (raw requests or a file format, over one transport) measured once per round."""

    name: str
    transport: str = "rest"
    label: str = ""  # the file format of a pipeline phase; "" for raw requests
    runs: list[Measurement] = field(default_factory=list)

    @property
    def rows_per_second(self) -> float:
        return statistics.median(run.rows_per_second for run in self.runs)

    def per_row_us(self, seconds_of: Callable[[Measurement], float]) -> float:
        return statistics.median(seconds_of(run) / run.rows * 1e6 for run in self.runs)

    def milvus_busy(self, milvus_cores: int) -> float:
        """Median share of Milvus' cores it kept busy while the phase ran."""
        return statistics.median(
            run.milvus_cpu_seconds / (run.seconds * milvus_cores) for run in self.runs
        )


def round_ratios(phase: Phase, raw: Phase) -> list[float]:
    """Each round's run against the same round's run of ``raw``."""
    return [
        run.rows_per_second / limit.rows_per_second
        for run, limit in zip(phase.runs, raw.runs, strict=True)
    ]


def summary_table(
    levels: list[Measurement],
    raws: dict[str, Phase],
    pipeline: list[Phase],
    milvus_cores: int,
) -> str:
    """The in-flight searches, then one line per phase: medians over the rounds.

    Milvus' own CPU per row moves by a tenth or more from one phase to the next (a segment
    sealed and flushed, a compaction), whatever the client does; the same phase measured in
    several rounds, interleaved with the others, and its median, is what a reader can trust.
    CPU is per row upserted: with Milvus on the same cores, the client's CPU per row is what it
    takes away from Milvus. "Milvus busy" is the share of its cores Milvus kept busy: near 100%
    the cluster, not the client, set the pace, whatever its own cost per row did. "vs limit" is
    against raw requests of the same transport.
    """
    lines = [f"{'in-flight search':<30}{'rows':>8}{'s':>7}{'rows/s':>8}{'Milvus µs/row':>15}"]
    for run in levels:
        lines.append(
            f"{run.name:<30}{run.rows:>8,}{run.seconds:>7.1f}{run.rows_per_second:>8,.0f}"
            f"{run.milvus_cpu_seconds / run.rows * 1e6:>15,.0f}"
        )
    lines.append("")
    rounds = len(next(iter(raws.values())).runs)
    lines.append(
        f"{f'median of {rounds} rounds':<30}{'rows/s':>8}{'min–max':>15}{'vs limit':>10}"
        f"{'per round':>13}{'client µs/row':>15}{'Milvus µs/row':>15}{'Milvus busy':>13}"
    )
    for transport, raw in raws.items():
        for phase in [raw, *(p for p in pipeline if p.transport == transport)]:
            speeds = [run.rows_per_second for run in phase.runs]
            ratios = round_ratios(phase, raw)
            lines.append(
                f"{phase.name:<30}{phase.rows_per_second:>8,.0f}"
                f"{f'{min(speeds):,.0f}–{max(speeds):,.0f}':>15}"
                f"{phase.rows_per_second / raw.rows_per_second:>10.2f}"
                f"{f'{min(ratios):.2f}–{max(ratios):.2f}':>13}"
                f"{phase.per_row_us(lambda run: run.client_cpu_seconds):>15,.0f}"
                f"{phase.per_row_us(lambda run: run.milvus_cpu_seconds):>15,.0f}"
                f"{phase.milvus_busy(milvus_cores):>13.0%}"
            )
    for transport, raw in raws.items():
        limit = raw.rows_per_second
        lines.append(
            f"{transport_label(transport)} limit: {limit:,.0f} rows/s at "
            f"{raw.runs[0].extra['in_flight']} in flight (median); target for its pipeline "
            f"≥ {TARGET_RATIO:.2f} × limit = {TARGET_RATIO * limit:,.0f} rows/s"
        )
    speedups = grpc_speedups(pipeline)
    if speedups:
        lines.append(
            f"gRPC pipeline ÷ REST pipeline, same file (target ≥ {TARGET_GRPC_SPEEDUP:.0f}×): "
            + ", ".join(f"{label} {ratio:.2f}×" for label, ratio in speedups.items())
        )
    return "\n".join(lines)


def grpc_speedups(pipeline: list[Phase]) -> dict[str, float]:
    """The gRPC pipeline's median rows/s over the REST pipeline's, per file format."""
    by_key = {(phase.transport, phase.label): phase for phase in pipeline}
    return {
        label: by_key[("grpc", label)].rows_per_second / by_key[("rest", label)].rows_per_second
        for transport, label in by_key
        if transport == "grpc" and ("rest", label) in by_key
    }


def rss_table(rss: list[RssMeasurement]) -> str:
    lines = [
        f"{'manage.py upsert --here':<26}{'rows':>8}{'s':>7}{'rows/s':>8}{'peak RSS':>10}"
        f"{'CPU s':>8}{'in flight':>11}  load 1-min start → end"
    ]
    for item in rss:
        lines.append(
            f"{f'{item.file_mb:,.0f} MiB JSONL':<26}{item.rows:>8,}{item.seconds:>7.0f}"
            f"{item.rows_per_second:>8,.0f}{item.peak_rss_mb:>7,.0f} MB{item.cpu_seconds:>8.0f}"
            f"{item.in_flight:>11}  {item.load_start[0]:.2f} → {item.load_end[0]:.2f}"
        )
    lines.append("(s and rows/s of these runs include process start, upload copy and hash)")
    lines.append(rss_verdict(rss))
    return "\n".join(lines)


def rss_verdict(rss: list[RssMeasurement]) -> str:
    smallest = min(rss, key=lambda item: item.file_mb)
    largest = max(rss, key=lambda item: item.file_mb)
    growth = largest.peak_rss_mb - smallest.peak_rss_mb
    grows = growth > RSS_GROWTH_TOLERANCE * smallest.peak_rss_mb
    under = all(item.peak_rss_mb < TARGET_RSS_MB for item in rss)
    return (
        f"peak RSS {'GROWS' if grows else 'does not grow'} with file size "
        f"({smallest.peak_rss_mb:,.0f} → {largest.peak_rss_mb:,.0f} MB, {growth:+,.0f} MB for "
        f"{largest.file_mb / smallest.file_mb:.0f}× the file); "
        f"{'under' if under else 'OVER'} the {TARGET_RSS_MB:.0f} MB target"
    )


def figures(
    args: argparse.Namespace,
    levels: list[Measurement],
    raws: dict[str, Phase],
    pipeline: list[Phase],
    rss: list[RssMeasurement],
    loads: dict[str, tuple[float, float, float]],
    milvus_cores: int,
) -> dict[str, Any]:
    def entry(phase: Phase) -> dict[str, Any]:
        raw = raws[phase.transport]
        return {
            "name": phase.name,
            "transport": phase.transport,
            "median_rows_per_second": phase.rows_per_second,
            "ratio_to_limit": phase.rows_per_second / raw.rows_per_second,
            "milvus_busy": phase.milvus_busy(milvus_cores),
            "round_ratios": round_ratios(phase, raw),
            "runs": [{**asdict(run), "rows_per_second": run.rows_per_second} for run in phase.runs],
        }

    return {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "milvus_cores": milvus_cores,
        "options": {key: str(value) for key, value in vars(args).items()},
        "load_average": loads,
        "in_flight_search": [
            {**asdict(run), "rows_per_second": run.rows_per_second} for run in levels
        ],
        "limits": {
            transport: {
                "rows_per_second": raw.rows_per_second,
                "in_flight": raw.runs[0].extra["in_flight"],
            }
            for transport, raw in raws.items()
        },
        "raw": [entry(raw) for raw in raws.values()],
        "pipeline": [entry(phase) for phase in pipeline],
        "grpc_over_rest_pipeline": grpc_speedups(pipeline),
        "rss": [{**asdict(item), "rows_per_second": item.rows_per_second} for item in rss],
        "rss_verdict": rss_verdict(rss) if rss else None,
    }


# --- the run ------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000, help="rows per phase (default 20000)")
    parser.add_argument(
        "--min-seconds",
        type=float,
        default=MIN_PHASE_SECONDS,
        help="each phase runs at least this long: raw REST cycles through its bodies again, "
        "the pipeline runs another job on the same file (default 10)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=4,
        help="times each phase is measured, in turn, each round starting one phase later; the "
        "figures are medians (default 4: every phase once in every position)",
    )
    parser.add_argument(
        "--rss-sizes",
        default="100,1000",
        help="JSON Lines file sizes in MiB for the peak-RSS runs (default 100,1000)",
    )
    parser.add_argument(
        "--rss-in-flight",
        type=int,
        help="requests in flight for the peak-RSS runs (default: the best count from (a)); "
        "memory rises with it, since every batch in flight is held",
    )
    parser.add_argument(
        "--milvus-cpus",
        type=int,
        default=1,
        help="CPUs of Milvus' own, this process taking the rest, as when the cluster runs on "
        "machines of its own (default 1); 0 shares every CPU between them",
    )
    parser.add_argument(
        "--transports",
        default="rest,grpc",
        help="the transports measured in (a) and (b), of rest and grpc (default rest,grpc)",
    )
    parser.add_argument(
        "--restart-milvus",
        action="store_true",
        help="start Milvus anew on an empty folder before every phase, so that its slowing "
        "over a run does not favour the phases that come first (about 15 s a phase)",
    )
    parser.add_argument("--skip-rss", action="store_true", help="leave out the peak-RSS runs")
    parser.add_argument("--json-out", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    args.rss_sizes = [int(size) for size in args.rss_sizes.split(",") if size.strip()]
    args.transports = [name.strip() for name in args.transports.split(",") if name.strip()]
    if not args.transports or set(args.transports) - set(TRANSPORTS):
        parser.error(f"--transports takes names of {', '.join(TRANSPORTS)}")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return args


def raise_on_sigterm() -> None:
    """Let a SIGTERM unwind through the finally blocks that stop Milvus and delete files."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    raise_on_sigterm()
    loads = {"start": load_average()}
    say(f"load average at start: {loads['start']} on {os.cpu_count()} CPUs")
    workdir = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    try:
        setup_django(workdir)
        from upserts.job_limits import MAX_IN_FLIGHT
        from upserts.milvus.client import ClusterClient, ClusterConfig, make_session
        from upserts.milvus.grpc_client import GrpcClusterClient

        source = RowSource()
        paths = {label: workdir / filename for label, (filename, _) in FILE_WRITERS.items()}
        for label, (_, write) in FILE_WRITERS.items():
            write(paths[label], source, args.rows)
        milvus_cpus: set[int] | None = None
        milvus_cores = len(os.sched_getaffinity(0))
        if args.milvus_cpus:
            milvus_cpus, own_cpus = split_cpus(args.milvus_cpus)
            milvus_cores = len(milvus_cpus)
            pin_this_process(own_cpus)
            say(f"CPUs: Milvus on {sorted(milvus_cpus)}, this process on {sorted(own_cpus)}")
        else:
            say(f"CPUs: Milvus and this process share all {milvus_cores}")
        with contextlib.ExitStack() as stack:
            session = stack.enter_context(make_session())
            milvus: Any
            if args.restart_milvus:
                milvus = RestartedMilvus(workdir, milvus_cpus)
                stack.callback(milvus.stop)
            else:
                milvus = stack.enter_context(embedded_milvus(workdir / "milvus", milvus_cpus))
            fresh_collection(milvus)
            say(f"Milvus at {milvus.url} (pid {milvus_pid(milvus)})")
            levels: list[Measurement] = []
            raws: dict[str, Phase] = {}
            pipeline: list[Phase] = []
            measures: dict[str, Callable[[], Measurement]] = {}
            phases: dict[str, Phase] = {}
            for transport in args.transports:
                client = (
                    GrpcClusterClient(ClusterConfig(base_url=milvus.url, api_version="grpc"))
                    if transport == "grpc"
                    else ClusterClient(ClusterConfig(base_url=milvus.url), session=session)
                )
                bodies, sizes = encode_bodies(client, source, args.rows)
                total_bytes = sum(map(request_bytes, bodies))
                name = transport_label(transport)
                say(
                    f"{name}: {len(bodies)} requests of up to {BATCH_ROWS} rows, "
                    f"{total_bytes / MIB:,.1f} MiB, {total_bytes / sum(sizes):,.0f} bytes a row"
                )
                say(f"(a) raw {name}: the best in-flight count")
                searched = [
                    measure_raw(milvus, client, bodies, sizes, level, args.min_seconds, transport)
                    for level in IN_FLIGHT_LEVELS
                ]
                levels += searched
                in_flight = max(searched, key=lambda run: run.rows_per_second).extra["in_flight"]
                raws[transport] = phases[f"raw {transport}"] = Phase(
                    f"raw {name}, {in_flight} in flight", transport
                )
                measures[f"raw {transport}"] = functools.partial(
                    measure_raw,
                    milvus,
                    client,
                    bodies,
                    sizes,
                    in_flight,
                    args.min_seconds,
                    transport,
                )
                for label in FILE_WRITERS:
                    phase = Phase(f"pipeline {name}, {label}", transport, label)
                    pipeline.append(phase)
                    phases[f"{transport} {label}"] = phase
                    measures[f"{transport} {label}"] = functools.partial(
                        measure_pipeline,
                        milvus,
                        paths[label],
                        label,
                        args.rows,
                        max(in_flight, MAX_IN_FLIGHT.default),
                        args.min_seconds,
                        transport,
                    )
            labels = list(phases)
            for number in range(args.rounds):
                # Each round starts one phase later: Milvus' periodic background work, which
                # would otherwise land on the same phase round after round, is spread over all.
                order = labels[number % len(labels) :] + labels[: number % len(labels)]
                say(
                    f"(b) round {number + 1} of {args.rounds}: {', '.join(order)}; "
                    f"batch {BATCH_ROWS}"
                )
                for label in order:
                    phases[label].runs.append(measures[label]())
            for path in paths.values():
                path.unlink()
            rss: list[RssMeasurement] = []
            if not args.skip_rss:
                rss_in_flight = (
                    args.rss_in_flight or next(iter(raws.values())).runs[0].extra["in_flight"]
                )
                say(f"(c) peak RSS of manage.py upsert --here, {rss_in_flight} in flight")
                for size in args.rss_sizes:
                    rss.append(measure_rss(milvus, source, workdir, size, rss_in_flight))
        loads["end"] = load_average()
        say("")
        say(summary_table(levels, raws, pipeline, milvus_cores))
        if rss:
            say("")
            say(rss_table(rss))
        say(f"load average: start {loads['start']}, end {loads['end']}")
        if args.json_out:
            args.json_out.write_text(
                json.dumps(
                    figures(args, levels, raws, pipeline, rss, loads, milvus_cores),
                    indent=2,
                    default=str,
                )
            )
            say(f"figures written to {args.json_out}")
        return 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
