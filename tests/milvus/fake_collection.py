"""A v1 collection with state, served by a ``FakeCluster``: it keeps what it is sent, so a test
can compare the cluster's contents with the file, and it refuses, delays or holds the requests
a test chooses, which a real Milvus 2.3.5 does not do on demand.

It answers as Milvus 2.3.5 does (``shared/reference/milvus-2.3.5-notes.md``): describe with
``VarChar(64)`` and ``FloatVector(4)`` types; an upsert answered ``code`` 200 with the ids as
strings; one refused row fails the whole request with ``code`` 1804 and writes nothing of it.
"""

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.milvus.fake_cluster import FakeCluster, RecordedRequest, ScriptedAnswer

BOOKS_DESCRIBE = {
    "collectionName": "books",
    "enableDynamicField": True,
    "fields": [
        {"name": "book_id", "type": "Int64", "primaryKey": True, "autoId": False},
        {"name": "title", "type": "VarChar(64)", "primaryKey": False, "autoId": False},
        {"name": "emb", "type": "FloatVector(4)", "primaryKey": False, "autoId": False},
    ],
}


def _json(body: Any) -> ScriptedAnswer:
    return ScriptedAnswer(body=json.dumps(body).encode())


@dataclass
class FakeCollection:
    """The books collection of ``tests.e2e.conftest``, in memory.

    ``refuse[key]`` is the reason a request holding that key is refused (a callable of the
    request may put what it saw in it, as a cluster echoing a header would). A request holding
    a key of ``delays`` waits that many seconds before it is applied and answered (by key, not
    by order of arrival: two requests sent at once may arrive either way round). The n-th
    upsert request (from 1, in order of arrival) waits, when ``n`` is in ``holds``, until
    ``release`` is called: then it is dropped unapplied (a request the cluster never got to,
    its client gone) or applied.
    """

    name: str = "books"
    primary: str = "book_id"
    entities: dict[Any, dict[str, Any]] = field(default_factory=dict)
    refuse: dict[Any, str | Callable[[RecordedRequest], str]] = field(default_factory=dict)
    delays: dict[Any, float] = field(default_factory=dict)
    holds: set[int] = field(default_factory=set)
    # The keys of each upsert request, in order of arrival, and of each applied, in order.
    arrived: list[list[Any]] = field(default_factory=list)
    applied: list[list[Any]] = field(default_factory=list)
    _held: dict[int, threading.Event] = field(default_factory=dict)
    _apply_held: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def serve(self, cluster: FakeCluster) -> "FakeCollection":
        cluster.respond("/v1/vector/collections/describe", self._describe, method="GET")
        cluster.respond("/v1/vector/upsert", self._upsert)
        return self

    def held(self) -> list[int]:
        """The numbers of the upsert requests waiting for ``release``."""
        return sorted(n for n, event in self._held.items() if not event.is_set())

    def release(self, *, apply: bool) -> None:
        self._apply_held = apply
        for event in self._held.values():
            event.set()

    def _describe(self, request: RecordedRequest) -> ScriptedAnswer:
        asked = request.query.get("collectionName", [""])[0]
        if asked != self.name:
            return _json({"code": 100, "message": f"can't find collection: {asked}"})
        return _json({"code": 200, "data": {**BOOKS_DESCRIBE, "collectionName": self.name}})

    def _upsert(self, request: RecordedRequest) -> ScriptedAnswer:
        rows = request.json()["data"]
        keys = [row[self.primary] for row in rows]
        with self._lock:
            self.arrived.append(keys)
            number = len(self.arrived)
        if number in self.holds:
            self._held[number] = threading.Event()
            self._held[number].wait()
            if not self._apply_held:
                return ScriptedAnswer(status=503, body=b"dropped", content_type="text/plain")
        time.sleep(max((self.delays.get(key, 0.0) for key in keys), default=0.0))
        for key in keys:
            if key in self.refuse:
                reason = self.refuse[key]
                message = reason(request) if callable(reason) else reason
                return _json({"code": 1804, "message": f"fail to deal the insert data, {message}"})
        with self._lock:
            for row in rows:
                self.entities[row[self.primary]] = row
            self.applied.append(keys)
        return _json(
            {"code": 200, "data": {"upsertCount": len(rows), "upsertIds": [str(k) for k in keys]}}
        )
