"""A scripted Milvus gRPC server, for what the embedded Milvus 2.3.5 never does: TLS, tokens,
rate limits and a server that goes away. It serves pymilvus' own generated service, so the
bytes on the wire are those of a real Milvus; only the answers are scripted."""

from collections import deque
from collections.abc import Callable
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from pymilvus.grpc_gen import common_pb2, milvus_pb2, milvus_pb2_grpc, schema_pb2

from console.localservices import free_port

# What a scripted answer may be: a response message, or a (status code, details) pair the
# call is aborted with.
Answer = Any


class _Servicer(milvus_pb2_grpc.MilvusServiceServicer):
    def __init__(self, cluster: "FakeGrpcCluster") -> None:
        self.cluster = cluster

    def _answer(self, method: str, request: Any, context: grpc.ServicerContext) -> Any:
        self.cluster.calls.append((method, request, dict(context.invocation_metadata())))
        scripted = self.cluster.scripted.get(method)
        answer = scripted.popleft() if scripted else self.cluster.defaults[method](request)
        if isinstance(answer, tuple):
            context.abort(*answer)
        return answer

    def ShowCollections(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return self._answer("ShowCollections", request, context)

    def DescribeCollection(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return self._answer("DescribeCollection", request, context)

    def GetLoadState(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return self._answer("GetLoadState", request, context)

    def Upsert(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return self._answer("Upsert", request, context)


def upserted(request: milvus_pb2.UpsertRequest) -> milvus_pb2.MutationResult:
    """What Milvus answers an upsert it took: every row, its Int64 ids."""
    ids = next(
        (
            column.scalars.long_data.data
            for column in request.fields_data
            if column.field_name == "id"
        ),
        [],
    )
    return milvus_pb2.MutationResult(
        status=common_pb2.Status(),
        upsert_cnt=request.num_rows,
        IDs=schema_pb2.IDs(int_id=schema_pb2.LongArray(data=list(ids))),
    )


def refused(code: int, reason: str) -> milvus_pb2.MutationResult:
    return milvus_pb2.MutationResult(status=common_pb2.Status(code=code, reason=reason))


class FakeGrpcCluster:
    """``answer(method, ...)`` queues answers; unscripted calls get the defaults below."""

    def __init__(self, *, certificate: tuple[Path, Path] | None = None) -> None:
        self.port = free_port()
        self.calls: list[tuple[str, Any, dict[str, str]]] = []
        self.scripted: dict[str, deque[Answer]] = {}
        self.defaults: dict[str, Callable[[Any], Any]] = {
            "ShowCollections": lambda request: milvus_pb2.ShowCollectionsResponse(
                status=common_pb2.Status(), collection_names=["books"]
            ),
            "Upsert": upserted,
        }
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        milvus_pb2_grpc.add_MilvusServiceServicer_to_server(_Servicer(self), self._server)
        address = f"127.0.0.1:{self.port}"
        if certificate is None:
            self._server.add_insecure_port(address)
            self.url = f"http://{address}"
        else:
            cert, key = certificate
            credentials = grpc.ssl_server_credentials([(key.read_bytes(), cert.read_bytes())])
            self._server.add_secure_port(address, credentials)
            self.url = f"https://{address}"

    def start(self) -> "FakeGrpcCluster":
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop(grace=None)

    def answer(self, method: str, *answers: Answer) -> None:
        self.scripted.setdefault(method, deque()).extend(answers)

    def metadata_of(self, method: str) -> list[dict[str, str]]:
        return [metadata for name, _, metadata in self.calls if name == method]
