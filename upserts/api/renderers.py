"""JSON Lines, for downloads of rows: one JSON document a line."""

from typing import Any

import orjson
from rest_framework.renderers import BaseRenderer


class JsonLinesRenderer(BaseRenderer):
    media_type = "application/x-ndjson"
    format = "jsonl"
    charset = None

    def render(
        self,
        data: Any,
        accepted_media_type: str | None = None,
        renderer_context: dict[str, Any] | None = None,
    ) -> bytes:
        # Rows are streamed by the view; what is rendered here is an error, as one line.
        if data is None:
            return b""
        return orjson.dumps(data) + b"\n"
