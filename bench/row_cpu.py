"""What a row costs the worker's CPU before the cluster sees it, per file format and road.

The pipeline's own steps for each row, with no cluster and no database: the reader, the
preparer's checks, the encoder's row size, and per batch the request built and serialised as
gRPC sends it (or the REST body joined). Process CPU time per row, so the figure is what the
worker spends, whatever else the machine runs (Parquet's decoder process reported beside it);
each case is timed ``--rounds`` times in turn and the median kept.

JSON Lines is read twice, with its FloatVector lists parsed into float32 arrays by the vector
parser (the pipeline's road) and without (orjson's lists, packed to float32 once checked): the
ratio of the two, measured in one run, is what the parser saves.

    .venv/bin/python bench/row_cpu.py                      # 20 000 rows, 5 rounds
    .venv/bin/python bench/row_cpu.py --rows 5000 --rounds 3 --json-out /tmp/rows.json
"""

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from bench.common import say  # noqa: E402
from bench.pipeline import (  # noqa: E402
    BATCH_ROWS,
    DIMENSION,
    RowSource,
    write_csv,
    write_jsonl,
    write_parquet,
)
from upserts.milvus.grpc_columns import ColumnEncoder  # noqa: E402
from upserts.milvus.schema import CollectionSchema, FieldSchema  # noqa: E402
from upserts.milvus.transport import RowForm  # noqa: E402
from upserts.preparation import RowPreparer  # noqa: E402
from upserts.readers import read_rows  # noqa: E402

SCHEMA = CollectionSchema(
    name="bench_vectors",
    fields=(
        FieldSchema("id", "Int64", is_primary=True),
        FieldSchema("title", "VarChar", max_length=200),
        FieldSchema("emb", "FloatVector", dim=DIMENSION),
    ),
)
WRITERS: dict[str, Callable[[Path, RowSource, int], int]] = {
    "jsonl": write_jsonl,
    "csv": write_csv,
    "parquet": write_parquet,
}


def cpu_per_row(
    path: Path, file_format: str, row_form: RowForm, *, vector_arrays: bool
) -> tuple[float, float]:
    """Microseconds of CPU per row for the pipeline's steps on the whole file: the worker's
    own, and that of the processes it started and waited for (Parquet's decoder)."""
    preparer = RowPreparer(SCHEMA, file_format=file_format, row_form=row_form)
    encoder = ColumnEncoder(SCHEMA, database="default", collection=SCHEMA.name)
    vector_columns = preparer.number_vector_columns if vector_arrays else frozenset()
    rows = 0
    started = time.process_time()
    children = _children_cpu()
    with path.open("rb") as source:
        batch: list[Any] = []
        for row in read_rows(
            source,
            file_format=file_format,
            gzipped=False,
            filename=path.name,
            number_vector_columns=vector_columns,
            half_float_columns=preparer.half_float_columns,
        ):
            prepared = preparer.prepare(row.entity or {}, row.encoded)
            if not isinstance(prepared, tuple):
                raise SystemExit(f"row {row.number} was refused: {prepared.reason}")
            outgoing = prepared[1]
            if row_form == "entity":
                encoder.row_size(outgoing)
            batch.append(outgoing)
            if len(batch) == BATCH_ROWS:
                rows += _send(batch, row_form, encoder)
                batch = []
        if batch:
            rows += _send(batch, row_form, encoder)
    own = (time.process_time() - started) / rows * 1e6
    return own, (_children_cpu() - children) / rows * 1e6


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _send(batch: list[Any], row_form: RowForm, encoder: ColumnEncoder) -> int:
    if row_form == "entity":
        encoder.request(batch).SerializeToString()
    else:
        b"[" + b",".join(batch) + b"]"
    return len(batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()

    cases: list[tuple[str, str, RowForm, bool]] = [
        ("JSON Lines, gRPC, vectors parsed into arrays", "jsonl", "entity", True),
        ("JSON Lines, gRPC, vectors as orjson lists", "jsonl", "entity", False),
        ("JSON Lines, REST, vectors parsed into arrays", "jsonl", "json", True),
        ("JSON Lines, REST, vectors as orjson lists", "jsonl", "json", False),
        ("CSV, gRPC", "csv", "entity", True),
        ("CSV, REST", "csv", "json", True),
        ("Parquet, gRPC", "parquet", "entity", True),
        ("Parquet, REST", "parquet", "json", True),
    ]
    source = RowSource()
    timings: dict[str, list[float]] = {name: [] for name, *_ in cases}
    started: dict[str, list[float]] = {name: [] for name, *_ in cases}
    with tempfile.TemporaryDirectory() as folder:
        files = {}
        for file_format, write in WRITERS.items():
            files[file_format] = Path(folder) / f"rows.{file_format}"
            write(files[file_format], source, args.rows)
        say(f"{args.rows:,} rows of {DIMENSION} dimensions, {args.rounds} rounds")
        for _ in range(args.rounds):
            for name, file_format, row_form, arrays in cases:
                own, children = cpu_per_row(
                    files[file_format], file_format, row_form, vector_arrays=arrays
                )
                timings[name].append(own)
                started[name].append(children)
    medians = {name: statistics.median(values) for name, values in timings.items()}
    for name, value in medians.items():
        spread = f"{min(timings[name]):.1f}–{max(timings[name]):.1f}"
        helper = statistics.median(started[name])
        beside = f", {helper:.1f} µs/row in the decoder process" if helper else ""
        say(f"{name:46} {value:6.1f} µs/row (rounds {spread}){beside}")
    for road in ("gRPC", "REST"):
        with_arrays = medians[f"JSON Lines, {road}, vectors parsed into arrays"]
        with_lists = medians[f"JSON Lines, {road}, vectors as orjson lists"]
        say(f"JSON Lines over {road}: arrays cost {with_arrays / with_lists:.2f} × what lists cost")
    if args.json_out:
        report = {"rows": args.rows, "worker": timings, "started_processes": started}
        args.json_out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
