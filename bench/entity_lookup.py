"""How fast "which job wrote entity X?" answers once the write log holds millions of rows.

Every upserted id becomes an ``EntityWrite`` row, so the table grows by a file's row count
with every job; the lookup page must stay instant however big it gets. This fills a scratch
database with N rows spread over a few jobs (ids written more than once, and the same id in
two collections, as re-uploads make them), then times ``selectors.entity_writes`` for ids
that exist and ids that do not, and, for context, one pipeline-sized insert of 500 rows by
``record_entity_writes``, as the pipeline writes them. With ``--prune`` it then ages the
jobs (each a hundred days older than the next) and applies the retention policy to the
entity writes (``upserts.services.retention``, the last ``--keep`` writes of each id or
``--keep-days`` days), timing it, and says what it removed and what VACUUM FULL frees.

PostgreSQL when ``DATABASE_URL`` names one: a scratch database ``bench_lookup_<random>`` is
created on that server and dropped at the end, so the database in the URL is never touched.
SQLite in a temporary folder otherwise.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/python bench/entity_lookup.py
    DATABASE_URL=... .venv/bin/python bench/entity_lookup.py --rows 10000000 --prune
    .venv/bin/python bench/entity_lookup.py --rows 200000           # SQLite
"""

import argparse
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from bench.common import load_average, percentile, say, setup_django  # noqa: E402
from bench.scratch_postgres import ScratchPostgres  # noqa: E402

BATCH_ROWS = 500
SQLITE_CHUNK_ROWS = 50_000
COPY_CHUNK_ROWS = 50_000
MAIN_COLLECTION = "books"
OTHER_COLLECTION = "films"
WARM_UP_LOOKUPS = 10
INSERT_REPEATS = 20

Result = TypeVar("Result")


# --- the scratch database -------------------------------------------------------------------


def is_postgres() -> bool:
    from django.db import connection

    return connection.vendor == "postgresql"


# --- the data -------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobPlan:
    """One job's share of the rows: which collection, and which run of ids it wrote."""

    job_id: int
    collection: str
    first_entity: int
    rows: int
    batch_ids: tuple[int, ...]

    def entity_ids(self) -> Iterator[tuple[int, int]]:
        """(batch id, entity id) in the order the pipeline would write them."""
        for offset in range(self.rows):
            yield self.batch_ids[offset // BATCH_ROWS], self.first_entity + offset


def plan_jobs(total_rows: int, job_count: int) -> list[JobPlan]:
    """Jobs into ``books`` whose id ranges overlap by half (re-uploads), and one into ``films``
    with the same ids as the first (one id, two collections): the lookup must tell them apart.
    """
    from upserts.models import BatchStatus, ClusterEndpoint, JobStatus, UpsertBatch, UpsertJob

    cluster = ClusterEndpoint.objects.create(name="bench-lookup", base_url="http://127.0.0.1:1")
    per_job = total_rows // job_count
    plans = []
    for index in range(job_count):
        rows = per_job if index < job_count - 1 else total_rows - per_job * (job_count - 1)
        last = index == job_count - 1 and job_count > 1
        collection = OTHER_COLLECTION if last else MAIN_COLLECTION
        first_entity = 0 if last else index * per_job // 2
        job = UpsertJob.objects.create(
            cluster=cluster,
            collection_name=collection,
            source_file=f"uploads/bench-{index}.jsonl",
            original_filename=f"bench-{index}.jsonl",
            file_format="jsonl",
            status=JobStatus.SUCCEEDED,
            rows_read=rows,
            rows_upserted=rows,
        )
        batches = UpsertBatch.objects.bulk_create(
            UpsertBatch(
                job=job,
                sequence=sequence + 1,
                first_row=start + 1,
                last_row=min(start + BATCH_ROWS, rows),
                row_count=min(BATCH_ROWS, rows - start),
                status=BatchStatus.SUCCEEDED,
                upsert_count=min(BATCH_ROWS, rows - start),
            )
            for sequence, start in enumerate(range(0, rows, BATCH_ROWS))
        )
        plans.append(JobPlan(job.pk, collection, first_entity, rows, tuple(b.pk for b in batches)))
    return plans


def copy_entity_writes(database_url: str, plans: list[JobPlan]) -> None:
    """PostgreSQL COPY, the way millions of rows get in within seconds."""
    import psycopg

    from upserts.models import EntityWrite

    table = EntityWrite._meta.db_table
    statement = f"COPY {table} (job_id, batch_id, entity_id) FROM STDIN"
    with (
        psycopg.connect(database_url) as conn,
        conn.cursor() as cursor,
        cursor.copy(statement) as copy,
    ):
        for plan in plans:
            lines: list[str] = []
            for batch_id, entity in plan.entity_ids():
                lines.append(f"{plan.job_id}\t{batch_id}\t{entity}\n")
                if len(lines) >= COPY_CHUNK_ROWS:
                    copy.write("".join(lines))
                    lines.clear()
            if lines:
                copy.write("".join(lines))


def bulk_create_entity_writes(plans: list[JobPlan]) -> None:
    from django.db import transaction

    from upserts.models import EntityWrite

    for plan in plans:
        chunk: list[EntityWrite] = []
        for batch_id, entity in plan.entity_ids():
            chunk.append(EntityWrite(job_id=plan.job_id, batch_id=batch_id, entity_id=str(entity)))
            if len(chunk) >= SQLITE_CHUNK_ROWS:
                with transaction.atomic():
                    EntityWrite.objects.bulk_create(chunk)
                chunk = []
        if chunk:
            with transaction.atomic():
                EntityWrite.objects.bulk_create(chunk)


def analyze() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def table_size_mb(workdir: Path) -> float:
    """The write log's size on disk, indexes included."""
    from django.db import connection

    from upserts.models import EntityWrite

    if is_postgres():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_total_relation_size(%s)", [EntityWrite._meta.db_table])
            return cursor.fetchone()[0] / 1024 / 1024
    return sum(path.stat().st_size for path in workdir.glob("lookup.sqlite3*")) / 1024 / 1024


def bytes_per_write(size_mb: float, rows: int) -> float:
    return size_mb * 1024 * 1024 / rows if rows else float("nan")


def age_jobs(plans: list[JobPlan]) -> None:
    """The first job's batches oldest: each job a hundred days older than the next."""
    from datetime import timedelta

    from django.utils import timezone

    from upserts.models import UpsertBatch

    now = timezone.now()
    for index, plan in enumerate(plans):
        days = 100 * (len(plans) - index)
        UpsertBatch.objects.filter(job_id=plan.job_id).update(created_at=now - timedelta(days=days))


def prune_writes(keep: int, keep_days: int) -> int:
    from upserts.services.retention import RetentionPolicy, prune

    forever = 100 * 365  # days: files and failed rows are not what is timed here
    policy = RetentionPolicy(
        file_days=forever, failed_row_days=forever, writes_per_id=keep, write_days=keep_days
    )
    return prune(policy).entity_writes


def vacuum_full() -> None:
    from django.db import connection

    from upserts.models import EntityWrite

    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM FULL {EntityWrite._meta.db_table}")


def count_writes() -> int:
    from upserts.models import EntityWrite

    return EntityWrite.objects.count()


# --- the measurements -----------------------------------------------------------------------


@dataclass
class Timings:
    name: str
    milliseconds: list[float]

    def row(self) -> str:
        values = self.milliseconds
        return (
            f"{self.name:<44}{len(values):>5}{percentile(values, 0.5):>10.2f}"
            f"{percentile(values, 0.99):>10.2f}{max(values):>10.2f}"
        )

    def as_dict(self) -> dict[str, Any]:
        values = self.milliseconds
        return {
            "n": len(values),
            "p50_ms": percentile(values, 0.5),
            "p99_ms": percentile(values, 0.99),
            "max_ms": max(values),
        }


def pick_lookups(
    plans: list[JobPlan], existing: int, missing: int, rng: random.Random
) -> list[tuple[str, str, bool]]:
    """(entity id, collection, whether it exists), shuffled so caches favour neither kind."""
    lookups = []
    for _ in range(existing):
        plan = rng.choice(plans)
        lookups.append((str(plan.first_entity + rng.randrange(plan.rows)), plan.collection, True))
    highest = max(plan.first_entity + plan.rows for plan in plans)
    for entity in rng.sample(range(highest + 1, 2 * highest + 2), missing):
        lookups.append((str(entity), MAIN_COLLECTION, False))
    rng.shuffle(lookups)
    return lookups


def time_lookups(lookups: list[tuple[str, str, bool]]) -> tuple[Timings, Timings]:
    """Each lookup evaluated in full (list()), as the page renders it, and its answer checked."""
    from upserts.selectors import entity_writes

    for entity, collection, _ in lookups[:WARM_UP_LOOKUPS]:
        list(entity_writes(entity_id=entity, collection_name=collection))
    found: list[float] = []
    absent: list[float] = []
    for entity, collection, exists in lookups:
        started = time.perf_counter()
        writes = list(entity_writes(entity_id=entity, collection_name=collection))
        elapsed = (time.perf_counter() - started) * 1000
        if exists != bool(writes) or any(w.job.collection_name != collection for w in writes):
            raise RuntimeError(f"lookup of {entity} in {collection} answered {writes!r}")
        (found if exists else absent).append(elapsed)
    return Timings("existing id", found), Timings("missing id", absent)


def query_plan(entity: str, collection: str) -> str:
    from upserts.selectors import entity_writes

    writes = entity_writes(entity_id=entity, collection_name=collection)
    return writes.explain(analyze=True) if is_postgres() else writes.explain()


def time_inserts(plans: list[JobPlan], rng: random.Random) -> Timings:
    """One batch's EntityWrite rows in one transaction, by the function the pipeline calls
    when it commits a batch."""
    from django.db import transaction

    from upserts.models import BatchStatus, EntityWrite, UpsertBatch
    from upserts.services.entity_writes import record_entity_writes

    plan = plans[0]
    highest = max(p.first_entity + p.rows for p in plans)
    timings: list[float] = []
    for repeat in range(INSERT_REPEATS):
        batch = UpsertBatch.objects.create(
            job_id=plan.job_id,
            sequence=len(plan.batch_ids) + repeat + 1,
            first_row=1,
            last_row=BATCH_ROWS,
            row_count=BATCH_ROWS,
            status=BatchStatus.SUCCEEDED,
        )
        ids = rng.sample(range(highest), BATCH_ROWS)
        started = time.perf_counter()
        with transaction.atomic():
            record_entity_writes(job_id=plan.job_id, batch_id=batch.pk, entity_ids=ids)
        timings.append((time.perf_counter() - started) * 1000)
        if EntityWrite.objects.filter(batch=batch).count() != BATCH_ROWS:
            raise RuntimeError(f"batch {batch.pk} did not get its {BATCH_ROWS} writes")
    return Timings(f"insert {BATCH_ROWS} rows (record_entity_writes)", timings)


def timed_step(label: str, step: Callable[[], Result]) -> tuple[Result, float]:
    started = time.perf_counter()
    result = step()
    seconds = time.perf_counter() - started
    say(f"  {label}: {seconds:.1f} s")
    return result, seconds


# --- the run --------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000, help="EntityWrite rows to load")
    parser.add_argument("--jobs", type=int, default=4, help="jobs the rows are spread over")
    parser.add_argument("--lookups", type=int, default=200, help="lookups of existing ids")
    parser.add_argument("--misses", type=int, default=50, help="lookups of ids never written")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--prune", action="store_true", help="then time the retention prune")
    parser.add_argument("--keep", type=int, default=1, help="writes kept per id by --prune")
    parser.add_argument("--keep-days", type=int, default=30, help="days kept by --prune")
    parser.add_argument("--json-out", type=Path, help="also write the figures as JSON here")
    return parser.parse_args(argv)


def raise_on_sigterm() -> None:
    """Let a SIGTERM unwind through the finally block that drops the scratch database."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    raise_on_sigterm()
    loads = {"start": load_average()}
    say(f"load average at start: {loads['start']} on {os.cpu_count()} CPUs")
    rng = random.Random(args.seed)
    workdir = Path(tempfile.mkdtemp(prefix="bench-lookup-"))
    given = os.environ.get("DATABASE_URL", "")
    scratch = (
        ScratchPostgres(given, prefix="bench_lookup")
        if given.startswith(("postgres", "pgsql"))
        else None
    )
    try:
        if scratch is not None:
            scratch.create()
            database_url = scratch.url
            say(f"scratch PostgreSQL database {scratch.name}")
        else:
            database_url = f"sqlite:///{workdir / 'lookup.sqlite3'}"
            say(f"scratch SQLite database {workdir / 'lookup.sqlite3'}")
        setup_django(workdir, database_url=database_url)
        say(f"loading {args.rows:,} EntityWrite rows over {args.jobs} jobs")
        seconds: dict[str, float] = {}
        plans, seconds["plan"] = timed_step(
            "jobs and batches", lambda: plan_jobs(args.rows, args.jobs)
        )
        if scratch is not None:
            _, seconds["load"] = timed_step("COPY", lambda: copy_entity_writes(database_url, plans))
        else:
            _, seconds["load"] = timed_step("bulk_create", lambda: bulk_create_entity_writes(plans))
        _, seconds["analyze"] = timed_step("ANALYZE", analyze)
        size_mb = table_size_mb(workdir)
        say(f"  EntityWrite table with indexes: {size_mb:,.0f} MB")
        lookups = pick_lookups(plans, args.lookups, args.misses, rng)
        say(f"timing lookups, load {load_average()}")
        found, absent = time_lookups(lookups)
        both = Timings("all lookups", found.milliseconds + absent.milliseconds)
        example = next(lookup for lookup in lookups if lookup[2])
        plan_text = query_plan(example[0], example[1])
        inserts = time_inserts(plans, rng)
        pruned: dict[str, Any] = {}
        if args.prune:
            say(f"pruning: the last {args.keep} writes per id or {args.keep_days} days")
            age_jobs(plans)
            before = count_writes()
            removed, seconds["prune"] = timed_step(
                "prune", lambda: prune_writes(args.keep, args.keep_days)
            )
            after = count_writes()
            if before - after != removed:
                raise RuntimeError(f"prune said {removed:,} but {before - after:,} went")
            if scratch is not None:
                _, seconds["vacuum_full"] = timed_step("VACUUM FULL", vacuum_full)
            pruned = {
                "rows_before": before,
                "rows_removed": removed,
                "rows_per_second": removed / seconds["prune"] if seconds["prune"] else None,
                "table_mb_after_vacuum_full": table_size_mb(workdir) if scratch else None,
            }
        loads["end"] = load_average()

        say("")
        say(f"query plan of entity_writes(entity_id={example[0]!r}, collection={example[1]!r}):")
        say("  " + plan_text.replace("\n", "\n  "))
        say("")
        say(
            f"{'database':<12}{'PostgreSQL' if scratch else 'SQLite'}; {args.rows:,} EntityWrite "
            f"rows, {size_mb:,.0f} MB with indexes; loaded in {seconds['load']:.0f} s"
        )
        say(f"  {bytes_per_write(size_mb, args.rows):.0f} bytes per stored write, indexes included")
        say(f"{'':<44}{'n':>5}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}")
        for timings in (found, absent, both, inserts):
            say(timings.row())
        if pruned:
            rate = pruned["rows_per_second"]
            say(
                f"prune: {pruned['rows_removed']:,} of {pruned['rows_before']:,} writes removed "
                f"in {seconds['prune']:.1f} s ({rate:,.0f} rows/s)"
            )
            if pruned["table_mb_after_vacuum_full"] is not None:
                freed = size_mb - pruned["table_mb_after_vacuum_full"]
                say(
                    f"  table {size_mb:,.0f} MB -> {pruned['table_mb_after_vacuum_full']:,.0f} MB "
                    f"after VACUUM FULL ({freed:,.0f} MB freed, {seconds['vacuum_full']:.0f} s); "
                    "a plain VACUUM (autovacuum) makes the space reusable in place"
                )
        say(f"load average: start {loads['start']}, end {loads['end']}")
        if args.json_out:
            figures = {
                "database": "postgresql" if scratch else "sqlite",
                "options": {**vars(args), "json_out": str(args.json_out)},
                "table_mb": size_mb,
                "bytes_per_write": bytes_per_write(size_mb, args.rows),
                "prune": pruned,
                "seconds": seconds,
                "lookups": {
                    "existing": found.as_dict(),
                    "missing": absent.as_dict(),
                    "all": both.as_dict(),
                },
                "insert_batch": inserts.as_dict(),
                "query_plan": plan_text,
                "load_average": loads,
            }
            args.json_out.write_text(json.dumps(figures, indent=2))
            say(f"figures written to {args.json_out}")
        return 0
    finally:
        if "django" in sys.modules:
            from django.db import connections

            connections.close_all()
        if scratch is not None:
            scratch.drop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
