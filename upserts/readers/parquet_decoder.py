"""Parquet decoded in a child process whose address space is capped.

What one Parquet cell decodes to cannot be known before it is decoded: the footer gives each
row group's totals, and pyarrow shows neither page headers nor the page index, so a row group
of a thousand small rows may hide one list cell of half a billion values that run-length
encoding packs into a few kilobytes. Decoding happens where such a cell can only make the
decoder fail: a process of its own under ``RLIMIT_AS``. It sends record batches of at most the
batch budget to its parent as an Arrow IPC stream, a row over the row limit as a one-row
placeholder that says so, and its last word on stderr.
"""

import json
import os
import resource
import subprocess
import sys
import tempfile
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any, BinaryIO, cast

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from upserts.http_source import (
    AUTHORIZATION_VARIABLE,
    HttpLocation,
    credentials_environment,
    http_reader_of,
    open_address,
)
from upserts.object_store import ObjectLocation, object_reader_of, open_object
from upserts.readers.base import FileFormatError, spool_to_temporary_file
from upserts.readers.limits import ReadLimits

_THRIFT_STRING_BYTES = 16 * 1024 * 1024
_THRIFT_CONTAINER_ITEMS = 1_000_000
# Column chunks are read through a buffer of this size. Without one, pyarrow reads a whole
# column chunk before decoding its first page: 480 MB for a row group of 100 000 768-float
# vectors, and some 3 GB for the million rows pandas puts in one row group.
_READ_BUFFER_BYTES = 1024 * 1024
# The metadata key of a placeholder batch: the bytes the row it stands for decodes to.
OVERSIZED_KEY = b"oversized"
_PROJECT_ROOT = Path(__file__).resolve().parents[2]
# Not ``-m``: the package imports this module first, which would then run a second time as
# __main__ (and say so on stderr).
_DECODER_MAIN = "from upserts.readers.parquet_decoder import main; main()"


class DecodeFailed(Exception):
    """The decoder stopped; ``kind`` is "memory", "file" (a message for the user) or "damaged"."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def open_parquet(source: BinaryIO | str) -> pq.ParquetFile:
    """The file with its text columns left dictionary-encoded when they are stored that way.

    A dictionary holds each distinct value once: a thousand rows sharing one 1 MB string take
    1 MB in the file and in the footer's sizes, but a gigabyte once decoded. Kept as a
    dictionary, each row's decoded size is known before it is decoded (_within_budget). The
    Thrift bounds keep a hostile footer from costing more than the file is worth.
    """
    schema = pq.ParquetFile(
        source,
        thrift_string_size_limit=_THRIFT_STRING_BYTES,
        thrift_container_size_limit=_THRIFT_CONTAINER_ITEMS,
    ).schema_arrow
    if not isinstance(source, str):
        source.seek(0)
    text_columns = [
        field.name
        for field in schema
        if pa.types.is_string(field.type)
        or pa.types.is_large_string(field.type)
        or pa.types.is_binary(field.type)
        or pa.types.is_large_binary(field.type)
    ]
    return pq.ParquetFile(
        source,
        read_dictionary=text_columns,
        buffer_size=_READ_BUFFER_BYTES,
        thrift_string_size_limit=_THRIFT_STRING_BYTES,
        thrift_container_size_limit=_THRIFT_CONTAINER_ITEMS,
    )


def decoded_batches(
    source: BinaryIO, *, first_group: int, batch_rows: int, filename: str, limits: ReadLimits
) -> Generator[tuple[pa.RecordBatch, int | None]]:
    """The row groups from ``first_group`` on, each piece with None, or a one-row placeholder
    with the bytes of the row it stands for, decoded under ``limits.max_decode_bytes``.

    Raises DecodeFailed when the decoder stops. Leaving the iteration early stops the decoder.
    The decoder reads a file by its descriptor, and an object in a store (``open_object``)
    from the store itself, with the same credentials; anything else is copied to a temporary
    file first.
    """
    address = http_reader_of(source)
    if address is not None:
        yield from _from_decoder(
            {"http": address.location.as_dict(), "size": address.size},
            first_group,
            batch_rows,
            filename,
            limits,
            extra_env=dict(credentials_environment(address)),
        )
        return
    stored = object_reader_of(source)
    if stored is not None:
        source_spec: dict[str, Any] = {"object": stored.location.as_dict(), "size": stored.size}
        yield from _from_decoder(
            source_spec, first_group, batch_rows, filename, limits, extra_env=stored.credentials
        )
        return
    spooled = None
    try:
        fileno = source.fileno()
    except (AttributeError, OSError, ValueError):
        source.seek(0)
        spooled = spool_to_temporary_file(source)
        fileno = spooled.fileno()
    try:
        yield from _from_decoder({"fd": fileno}, first_group, batch_rows, filename, limits)
    finally:
        if spooled is not None:
            spooled.close()


def _from_decoder(
    source_spec: dict[str, Any],
    first_group: int,
    batch_rows: int,
    filename: str,
    limits: ReadLimits,
    *,
    extra_env: dict[str, str] | None = None,
) -> Iterator[tuple[pa.RecordBatch, int | None]]:
    request = {
        **source_spec,
        "first_group": first_group,
        "batch_rows": batch_rows,
        "filename": filename,
        "max_row_bytes": limits.max_row_bytes,
        "max_depth": limits.max_depth,
        "max_batch_bytes": limits.max_batch_bytes,
        "max_decode_bytes": limits.max_decode_bytes,
    }
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(_PROJECT_ROOT), os.environ.get("PYTHONPATH")])
        ),
        # One malloc arena: each further one reserves 64 MB of address space.
        "MALLOC_ARENA_MAX": "1",
        **(extra_env or {}),
    }
    with tempfile.TemporaryFile() as last_word:
        process = subprocess.Popen(  # noqa: S603 - our own module, arguments as JSON
            [sys.executable, "-c", _DECODER_MAIN, json.dumps(request)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=last_word,
            pass_fds=(source_spec["fd"],) if "fd" in source_spec else (),
            env=environment,
        )
        assert process.stdout is not None
        try:
            cut_short = False
            try:
                reader = ipc.open_stream(process.stdout)
            except (pa.ArrowInvalid, OSError):
                reader, cut_short = None, True  # the decoder stopped before its first batch
            while reader is not None:
                try:
                    batch, metadata = reader.read_next_batch_with_custom_metadata()
                except StopIteration:
                    break
                except (pa.ArrowInvalid, OSError):
                    cut_short = True  # the decoder's last word says why
                    break
                oversized = metadata.get(OVERSIZED_KEY) if metadata else None
                yield batch, None if oversized is None else int(oversized)
            # Closed first, so that a decoder still writing stops on a broken pipe.
            process.stdout.close()
            if process.wait() != 0:
                last_word.seek(0)
                raise _failure(process.returncode, last_word.read()[-65536:])
            if cut_short:
                # Never taken for the end of the file: rows would go missing unseen.
                raise DecodeFailed("damaged", "the decoder's stream of rows was cut short")
        finally:
            if process.poll() is None:
                process.kill()
            process.wait()
            process.stdout.close()


def _failure(returncode: int, stderr: bytes) -> DecodeFailed:
    lines = stderr.decode("utf-8", "replace").strip().splitlines()
    try:
        word = json.loads(lines[-1])
        return DecodeFailed(str(word["kind"]), str(word["message"]))
    except (IndexError, ValueError, KeyError, TypeError):
        # Killed, or out of memory before it could say so.
        return DecodeFailed("memory", f"the Parquet decoder stopped (exit status {returncode})")


def _decode(request: dict[str, Any]) -> None:
    limits = ReadLimits(
        max_row_bytes=request["max_row_bytes"],
        max_depth=request["max_depth"],
        max_batch_bytes=request["max_batch_bytes"],
        max_decode_bytes=request["max_decode_bytes"],
    )
    source: BinaryIO | str
    if "http" in request:
        source = cast(
            BinaryIO,
            open_address(
                HttpLocation(**request["http"]),
                size=request["size"],
                authorization=os.environ.get(AUTHORIZATION_VARIABLE, ""),
            ),
        )
    elif "object" in request:
        # Credentials come in the environment, as the worker's own boto3 chain reads them.
        source = cast(
            BinaryIO, open_object(ObjectLocation(**request["object"]), size=request["size"])
        )
    else:
        # A path of its own rather than the inherited descriptor, whose offset the parent
        # shares.
        source = f"/proc/self/fd/{request['fd']}"
    parquet = open_parquet(source)
    _cap_address_space(limits.max_decode_bytes)
    sink = pa.PythonFile(sys.stdout.buffer, mode="w")
    writer = ipc.new_stream(sink, parquet.schema_arrow)
    for batch in _record_batches(
        parquet, request["first_group"], request["batch_rows"], request["filename"], limits
    ):
        for piece, oversized in _within_budget(batch, limits):
            if oversized is None:
                writer.write_batch(piece)
            else:
                nulls = [pa.nulls(1, field.type) for field in piece.schema]
                writer.write_batch(
                    pa.RecordBatch.from_arrays(nulls, schema=piece.schema),
                    custom_metadata={OVERSIZED_KEY: str(oversized).encode()},
                )
    writer.close()
    sink.close()


def _cap_address_space(allowance: int) -> None:
    """What the process maps now, plus ``allowance``: past that, an allocation fails (pyarrow
    raises ArrowMemoryError) instead of the host running out of memory."""
    with open("/proc/self/status") as status:
        mapped = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
    limit = mapped + allowance
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _record_batches(
    parquet: pq.ParquetFile, first_group: int, batch_rows: int, filename: str, limits: ReadLimits
) -> Iterator[pa.RecordBatch]:
    """The row groups from ``first_group`` on, in record batches of at most about
    ``limits.max_batch_bytes`` once decoded.

    The footer says what each row group's columns hold once decompressed, and how many values
    they have; a row group whose rows average more than a row may hold is refused before any
    of it is decoded, and the others are read in as many rows at a time as the budget allows.
    """
    metadata = parquet.metadata
    for group in range(first_group, metadata.num_row_groups):
        row_group = metadata.row_group(group)
        if not row_group.num_rows:
            continue
        per_row = bytes_per_row(row_group, group, filename, limits)
        rows = max(1, min(batch_rows, int(limits.max_batch_bytes // max(per_row, 1))))
        yield from parquet.iter_batches(batch_size=rows, row_groups=[group], use_threads=False)


def bytes_per_row(
    row_group: pq.RowGroupMetaData, group: int, filename: str, limits: ReadLimits
) -> float:
    """What the rows of a row group decode to on average; FileFormatError when that is more
    than one row may hold."""
    per_row = _decoded_bytes(row_group) / row_group.num_rows
    if per_row > limits.max_row_bytes:
        raise FileFormatError(
            f"{filename}: the rows of row group {group + 1:,} decode to about {per_row:,.0f} "
            f"bytes each, more than {limits.max_row_bytes:,}, the limit for one row. Write the "
            "file with smaller rows, or ask an administrator to raise the limit."
        )
    return per_row


def _decoded_bytes(row_group: pq.RowGroupMetaData) -> float:
    """What a row group's columns hold once decompressed: the larger of what the footer says
    and eight bytes a value, since run-length encoding packs a million values into a few."""
    total = 0.0
    for index in range(row_group.num_columns):
        column = row_group.column(index)
        total += max(column.total_uncompressed_size, column.num_values * 8)
    return total


def _within_budget(
    batch: pa.RecordBatch, limits: ReadLimits
) -> Iterator[tuple[pa.RecordBatch, int | None]]:
    """The batch in slices that decode to at most the row limit (or ``max_batch_bytes``, if
    less), and each row over the row limit alone, with its bytes.

    Halved until it fits: a slice's own bytes are exact for every type, so a large cell
    anywhere (a list, a struct, text) is found without knowing where to look, and no row in
    a slice within the row limit can be over it. The parent turns a slice into Python objects
    at once, which take several times the bytes they decode to while the conversion runs.
    """
    budget = min(limits.max_batch_bytes, limits.max_row_bytes)
    pending = [batch]
    while pending:
        piece = pending.pop()
        size = _decoded_size(piece)
        if piece.num_rows == 1:
            yield piece, size if size > limits.max_row_bytes else None
        elif size <= budget or not piece.num_rows:
            yield piece, None
        else:
            half = piece.num_rows // 2
            pending += [piece.slice(half), piece.slice(0, half)]


def _decoded_size(piece: pa.RecordBatch) -> int:
    """The bytes a slice's values decode to: dictionary-encoded text as the text it expands
    to, and no column's validity bitmap (which says which cells are null, not what they hold)."""
    size = 0
    for column in piece.columns:
        if pa.types.is_dictionary(column.type):
            size += int(_decoded_lengths(column).sum())
        else:
            size += column.nbytes
            if column.buffers()[0] is not None:
                size -= (len(column) + 7) // 8
    return size


def _decoded_lengths(column: pa.DictionaryArray) -> Any:
    """Each row's bytes of a dictionary-encoded text column, from the Arrow buffers.

    Read with numpy rather than pyarrow.compute, whose first call sets up its kernels (40 MB).
    """
    dictionary = column.dictionary
    wide = pa.types.is_large_string(dictionary.type) or pa.types.is_large_binary(dictionary.type)
    offsets = np.frombuffer(dictionary.buffers()[1], dtype=np.int64 if wide else np.int32)
    offsets = offsets[dictionary.offset : dictionary.offset + len(dictionary) + 1]
    lengths = np.diff(offsets).astype(np.int64)
    indices = column.indices
    # Not DataType.to_pandas_dtype(), which imports pandas: another 40 MB.
    signed = "int" if pa.types.is_signed_integer(indices.type) else "uint"
    index_type = np.dtype(f"{signed}{indices.type.bit_width}")
    positions = np.frombuffer(indices.buffers()[1], dtype=index_type)
    positions = positions[indices.offset : indices.offset + len(indices)].astype(np.int64)
    if indices.null_count:
        bits = np.unpackbits(np.frombuffer(indices.buffers()[0], dtype=np.uint8), bitorder="little")
        valid = bits[indices.offset : indices.offset + len(indices)].astype(bool)
        positions = np.where(valid, positions, 0)
        return np.where(valid, lengths[positions] if len(lengths) else 0, 0)
    return lengths[positions]


def _say(kind: str, message: str) -> None:
    sys.stderr.write("\n" + json.dumps({"kind": kind, "message": message}) + "\n")
    sys.stderr.flush()


def main() -> None:
    try:
        _decode(json.loads(sys.argv[1]))
    except BrokenPipeError:
        # The parent has read what it wanted and closed the stream.
        os._exit(0)
    except MemoryError:
        _say("memory", "decoding needed more memory than the decoder may use")
        sys.exit(1)
    except FileFormatError as exc:
        _say("file", str(exc))
        sys.exit(1)
    except (pa.ArrowException, OSError) as exc:
        _say("damaged", str(exc))
        sys.exit(1)
