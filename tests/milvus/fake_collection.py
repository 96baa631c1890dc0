"""A collection with state, served by a ``FakeCluster``: it keeps what it is sent, so a test
can compare the cluster's contents with the file, and it refuses, delays or holds the requests
a test chooses, which a real Milvus does not do on demand.

On v1 it answers as Milvus 2.3.5 does (``shared/reference/milvus-2.3.5-notes.md``): describe
with ``VarChar(64)`` and ``FloatVector(4)`` types; an upsert answered ``code`` 200 with the ids
as strings; one refused row fails the whole request with ``code`` 1804 and writes nothing of
it.

On v2 it answers as ``shared/reference/milvus-modern-notes.md`` says Milvus 2.5 to 3.0 do:
``code`` 0; Int64 ids as JSON strings unless the request sends ``Accept-Type-Allow-Int64:
true``; a field that is nullable or has a default may be left out or sent as null (the
default is stored); a required one left out fails the request with 1804; ``partialUpdate``
merges the given fields into the stored entity; a request that runs past its
``Request-Timeout`` is answered HTTP 408 (code 10001), though the cluster goes on to apply it.
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


# The same collection as v2 describes it: bare type names, type parameters as key-value
# pairs, ``nullable`` on every field.
BOOKS_FIELDS_V2: list[dict[str, Any]] = [
    {"name": "book_id", "type": "Int64", "primaryKey": True, "autoId": False, "nullable": False},
    {
        "name": "title",
        "type": "VarChar",
        "primaryKey": False,
        "autoId": False,
        "nullable": False,
        "params": [{"key": "max_length", "value": "64"}],
    },
    {
        "name": "emb",
        "type": "FloatVector",
        "primaryKey": False,
        "autoId": False,
        "nullable": False,
        "params": [{"key": "dim", "value": "4"}],
    },
]
V2_DESCRIBE = "/v2/vectordb/collections/describe"
V2_LIST = "/v2/vectordb/collections/list"
V2_UPSERT = "/v2/vectordb/entities/upsert"


def _json(body: Any, status: int = 200) -> ScriptedAnswer:
    return ScriptedAnswer(status=status, body=json.dumps(body).encode())


def default_of(field: dict[str, Any]) -> Any:
    """A v2 field's default value: describe writes the protobuf ValueField as Go encodes it,
    ``{"Data": {"LongData": 5}}``."""
    wrapped = field.get("defaultValue")
    if not isinstance(wrapped, dict):
        return None
    return next(iter(wrapped.get("Data", {}).values()), None)


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
    # The fields as v2 describes them (v1 always describes the books collection).
    fields_v2: list[dict[str, Any]] = field(default_factory=lambda: list(BOOKS_FIELDS_V2))
    entities: dict[Any, dict[str, Any]] = field(default_factory=dict)
    refuse: dict[Any, str | Callable[[RecordedRequest], str]] = field(default_factory=dict)
    delays: dict[Any, float] = field(default_factory=dict)
    holds: set[int] = field(default_factory=set)
    # The keys of each upsert request, in order of arrival, and of each applied, in order.
    arrived: list[list[Any]] = field(default_factory=list)
    applied: list[list[Any]] = field(default_factory=list)
    # When each upsert request arrived (time.monotonic()) and its body's size in bytes.
    arrivals: list[tuple[float, int]] = field(default_factory=list)
    _held: dict[int, threading.Event] = field(default_factory=dict)
    _apply_held: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def serve(self, cluster: FakeCluster, *, api: str = "v1") -> "FakeCollection":
        if api == "v2":
            cluster.respond(V2_DESCRIBE, self._describe_v2)
            cluster.respond(V2_LIST, lambda request: _json({"code": 0, "data": [self.name]}))
            cluster.respond(V2_UPSERT, self._upsert_v2)
        else:
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

    def _describe_v2(self, request: RecordedRequest) -> ScriptedAnswer:
        asked = request.json().get("collectionName", "")
        if asked != self.name:
            return _json({"code": 100, "message": f"collection not found[collection={asked}]"})
        data = {
            "collectionName": self.name,
            "enableDynamicField": True,
            "fields": self.fields_v2,
            "load": "LoadStateLoaded",
        }
        return _json({"code": 0, "data": data, "message": ""})

    def _upsert_v2(self, request: RecordedRequest) -> ScriptedAnswer:
        started = time.monotonic()
        body = request.json()
        partial = bool(body.get("partialUpdate", False))
        rows = body["data"] if isinstance(body["data"], list) else [body["data"]]
        answer = self._upsert(request, rows=rows, merge=partial, success_code=0)
        timeout = request.headers.get("Request-Timeout")
        if timeout is not None and time.monotonic() - started > int(timeout):
            return _json({"code": 10001, "message": "request timeout"}, status=408)
        if answer.status == 200 and request.headers.get("Accept-Type-Allow-Int64") == "true":
            sent = json.loads(answer.body)
            if "data" in sent:
                sent["data"]["upsertIds"] = [int(i) for i in sent["data"]["upsertIds"]]
                answer = _json(sent)
        return answer

    def _stored_v2(self, row: dict[str, Any], *, merge: bool) -> dict[str, Any] | str:
        """The entity the row leaves stored, or why the request fails."""
        stored = self.entities.get(row.get(self.primary)) if merge else None
        entity = {**stored, **row} if stored is not None else dict(row)
        for spec in self.fields_v2:
            name = spec["name"]
            if entity.get(name) is not None:
                continue
            if (
                merge
                and stored is None
                and name not in row
                and not (spec.get("nullable") or "defaultValue" in spec)
            ):
                return f"field {name} is required"
            if "defaultValue" in spec:
                entity[name] = default_of(spec)
            elif spec.get("nullable"):
                entity[name] = None
            elif name in row:
                return f"field {name} is not nullable"
            else:
                return f"field {name} is required"
        return entity

    def _upsert(
        self,
        request: RecordedRequest,
        *,
        rows: list[dict[str, Any]] | None = None,
        merge: bool = False,
        success_code: int = 200,
    ) -> ScriptedAnswer:
        rows = request.json()["data"] if rows is None else rows
        keys = [row[self.primary] for row in rows]
        with self._lock:
            self.arrived.append(keys)
            self.arrivals.append((time.monotonic(), len(request.body)))
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
            stored = rows
            if success_code == 0:
                outcomes = [self._stored_v2(row, merge=merge) for row in rows]
                problem = next((o for o in outcomes if isinstance(o, str)), None)
                if problem is not None:
                    message = f"fail to deal the insert data, error: {problem}"
                    return _json({"code": 1804, "message": message})
                stored = [o for o in outcomes if isinstance(o, dict)]
            for row in stored:
                self.entities[row[self.primary]] = row
            self.applied.append(keys)
        ids = [str(k) for k in keys]
        return _json({"code": success_code, "data": {"upsertCount": len(rows), "upsertIds": ids}})
