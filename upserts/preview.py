"""What a person sees before starting a job: the first rows checked against the live schema.

Also the row estimate that progress bars and ETAs rest on, measured from the first rows.
"""

import io
from dataclasses import dataclass, field
from typing import IO, Any, BinaryIO, cast

from django.conf import settings

from upserts.column_mapping import ColumnMapping
from upserts.milvus.errors import ClusterError
from upserts.milvus.schema import CollectionSchema
from upserts.models import UpsertJob
from upserts.preparation import RowPreparer
from upserts.readers import (
    DecompressedTooLarge,
    FileFormatError,
    count_parquet_rows,
    read_rows,
)
from upserts.services.clusters import client_for
from upserts.services.job_files import open_job_file
from upserts.services.read_limits import read_limits
from upserts.templatetags.console import cell
from upserts.validation.collections import schema_warnings
from upserts.validation.entities import RowProblem

# Read-ahead (up to 256 KiB) counts as consumed, so the sample must be much larger than that.
_ESTIMATE_SAMPLE_ROWS = 100_000
_ESTIMATE_SAMPLE_BYTES = 4 * 1024 * 1024


@dataclass
class PreviewRow:
    number: int
    # Each value as the preview shows it (the ``cell`` text).
    values: dict[str, str] = field(default_factory=dict)
    # Problems by field name; problems of the row as a whole under "".
    problems: dict[str, list[str]] = field(default_factory=dict)

    @property
    def is_valid(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class ColumnChoice:
    """One column of the file and the field it fills, for the mapping the preview offers."""

    column: str
    target: str  # a field name, IGNORE, or NO_FIELD (the dynamic field, if there is one)

    IGNORE = "-"
    NO_FIELD = ""


@dataclass
class Preview:
    job: UpsertJob
    rows: list[PreviewRow] = field(default_factory=list)
    # The collection's fields and then what else the rows hold, in the names sent.
    columns: list[str] = field(default_factory=list)
    # The columns of the file as it is, before the mapping.
    file_columns: list[str] = field(default_factory=list)
    mapping: ColumnMapping = field(default_factory=ColumnMapping)
    schema: CollectionSchema | None = None
    warnings: list[str] = field(default_factory=list)
    target_error: str = ""
    file_error: str = ""

    @property
    def column_choices(self) -> list[ColumnChoice]:
        fields = {f.name for f in self.schema.fields} if self.schema else set()
        choices = []
        for column in self.file_columns:
            if column in self.mapping.columns:
                target = self.mapping.columns[column] or ColumnChoice.IGNORE
            else:
                target = column if column in fields else ColumnChoice.NO_FIELD
            choices.append(ColumnChoice(column, target))
        return choices

    @property
    def unfilled_fields(self) -> list[str]:
        """Fields of the collection that no column fills, but for an autoID key."""
        if self.schema is None:
            return []
        filled = {choice.target for choice in self.column_choices}
        return [f.name for f in self.schema.fields if f.name not in filled and not f.auto_id]

    @property
    def partial_fields(self) -> tuple[list[str], list[str]]:
        """In a partial update, (the fields the file's rows change, the fields they keep):
        the fields its columns fill, and the others; the primary key is in neither."""
        if self.schema is None or not self.job.partial_update:
            return [], []
        filled = {choice.target for choice in self.column_choices}
        fields = [f.name for f in self.schema.fields if not f.is_primary]
        return [n for n in fields if n in filled], [n for n in fields if n not in filled]

    @property
    def optional_fields(self) -> list[tuple[str, str]]:
        """(field, what Milvus stores for a row that leaves it out or sends null), for the
        fields the collection lets a row leave out."""
        if self.schema is None:
            return []
        stored = []
        for f in self.schema.fields:
            if f.has_default:
                default = "a default" if f.default_value is None else repr(f.default_value)
                stored.append((f.name, f"its default, {default}"))
            elif f.nullable:
                stored.append((f.name, "null"))
        return stored

    @property
    def can_start(self) -> bool:
        blocking = self.schema is not None and (
            self.schema.auto_id or not any(f.is_primary for f in self.schema.fields)
        )
        return not (self.target_error or self.file_error or blocking)

    @property
    def invalid_rows(self) -> int:
        return sum(not row.is_valid for row in self.rows)


def preview_job(job: UpsertJob, *, limit: int = 20) -> Preview:
    """The first ``limit`` rows of the job's file, each checked against the collection."""
    preview = Preview(job=job)
    try:
        preview.schema = client_for(job.cluster).describe_collection(
            job.database_name, job.collection_name
        )
    except ClusterError as exc:
        preview.target_error = str(exc)
    preview.mapping = ColumnMapping.from_json(job.column_mapping)
    preparer = (
        RowPreparer(
            preview.schema,
            file_format=job.file_format,
            mapping=preview.mapping,
            partial_update=job.partial_update,
        )
        if preview.schema is not None
        else None
    )
    if preview.schema is not None:
        preview.warnings = schema_warnings(preview.schema, api_version=job.cluster.api_version)
        preview.columns = [f.name for f in preview.schema.fields]
    # Like the upload step, the preview reads a bounded prefix of a text file, however far
    # into it the first rows are (Parquet is read by its footer, and needs to seek).
    prefix = settings.UPLOAD_ESTIMATE_READ_BYTES
    try:
        with open_job_file(job) as source:
            readable = (
                source
                if job.file_format == "parquet"
                else cast(BinaryIO, _CountingReader(source, prefix))
            )
            for row in read_rows(
                readable,
                file_format=job.file_format,
                gzipped=job.is_gzipped,
                filename=job.original_filename,
                max_decompressed_bytes=min(settings.UPLOAD_MAX_DECOMPRESSED_BYTES, prefix),
                half_float_columns=preparer.half_float_columns if preparer else None,
                limits=read_limits(),
            ):
                for name in row.entity or ():
                    if name not in preview.file_columns:
                        preview.file_columns.append(name)
                preview.rows.append(_preview_row(row.number, row.entity, row.error, preparer))
                if len(preview.rows) >= limit:
                    break
    except (_PrefixSpent, DecompressedTooLarge):
        preview.warnings.append(
            f"Only the first {prefix:,} bytes of the file were read for this preview, and they "
            f"hold {len(preview.rows)} row(s); the job reads the whole file."
        )
    except FileFormatError as exc:
        preview.file_error = str(exc)
    for checked in preview.rows:
        for name in checked.values:
            if name not in preview.columns:
                preview.columns.append(name)
    return preview


def _preview_row(
    number: int,
    entity: dict[str, Any] | None,
    error: str | None,
    preparer: RowPreparer | None,
) -> PreviewRow:
    if error is not None or entity is None:
        return PreviewRow(number=number, problems={"": [error or "unreadable row"]})
    row = PreviewRow(number=number)
    problems: list[RowProblem] = []
    if preparer is not None:
        entity, problems = preparer.checked(entity)
    for problem in problems:
        row.problems.setdefault(problem.field, []).append(problem.message)
    # Kept as the page shows them, cut short: twenty rows of 4 MiB vectors would otherwise
    # stay in the web process as some 600 MB of Python floats.
    row.values = {name: cell(value) for name, value in entity.items()}
    return row


class _PrefixSpent(Exception):
    """The estimate read as much of the file as it may."""


class _CountingReader(io.RawIOBase):
    """Counts the bytes the readers take from the stored (maybe compressed) file, and stops
    them once they have taken ``limit``: the upload step reads a prefix, never the whole."""

    def __init__(self, inner: IO[bytes], limit: int) -> None:
        self.inner = inner
        self.limit = limit
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.bytes_read >= self.limit:
            raise _PrefixSpent()
        data = self.inner.read(len(buffer))
        buffer[: len(data)] = data
        self.bytes_read += len(data)
        return len(data)


def _consumed(counter: BinaryIO) -> int:
    return cast(_CountingReader, counter).bytes_read


def estimate_rows(
    source: IO[bytes], *, file_format: str, gzipped: bool, size_bytes: int, filename: str
) -> int | None:
    """Rows in the file: exact for Parquet and for small files, else scaled from a sample.

    Raises FileFormatError when not even the first row can be read within the first
    ``UPLOAD_ESTIMATE_READ_BYTES`` (of the file, and of what it decompresses to), so such a
    file is refused at upload; a problem further in is left for the job to meet after the rows
    before it.
    """
    source.seek(0)
    sampled = 0
    limits = read_limits()
    prefix = settings.UPLOAD_ESTIMATE_READ_BYTES
    try:
        if file_format == "parquet" and not gzipped:
            return count_parquet_rows(cast(BinaryIO, source), filename=filename, limits=limits)
        counter = cast(BinaryIO, _CountingReader(source, prefix))
        reached_end = True
        rows = read_rows(
            counter,
            file_format=file_format,
            gzipped=gzipped,
            filename=filename,
            max_decompressed_bytes=min(settings.UPLOAD_MAX_DECOMPRESSED_BYTES, prefix),
            limits=limits,
        )
        try:
            for _ in rows:
                sampled += 1
                if sampled >= _ESTIMATE_SAMPLE_ROWS or _consumed(counter) >= _ESTIMATE_SAMPLE_BYTES:
                    reached_end = False
                    break
        except (_PrefixSpent, DecompressedTooLarge):
            if not sampled:
                raise FileFormatError(
                    f"{filename}: the first {prefix:,} bytes hold no entity (blank lines or "
                    "space, most likely), so this is not a file of entities. Check the file."
                ) from None
            reached_end = False
        if reached_end or not _consumed(counter):
            return sampled
        return max(sampled, round(sampled * size_bytes / _consumed(counter)))
    except FileFormatError:
        if sampled:
            return None
        raise
    finally:
        source.seek(0)
