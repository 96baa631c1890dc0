"""The limits on one row that every read of an uploaded file applies, from the settings."""

from django.conf import settings

from upserts.readers import ReadLimits


def read_limits() -> ReadLimits:
    return ReadLimits(
        max_row_bytes=settings.UPLOAD_MAX_ROW_BYTES,
        max_depth=settings.UPLOAD_MAX_NESTING_DEPTH,
        max_batch_bytes=settings.UPLOAD_MAX_PARQUET_BATCH_BYTES,
        max_decode_bytes=settings.UPLOAD_MAX_PARQUET_DECODE_BYTES,
    )
