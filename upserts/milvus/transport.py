"""What a job needs of a cluster, whichever wire carries it: REST (``client``) or gRPC
(``grpc_client``).

The pipeline reads rows, checks them and hands them to the transport's encoder in the form the
transport asks for: REST sends each row's JSON text as it was read or written once, gRPC builds
columns from the checked entities, so a Parquet vector never becomes a Python float. Sending,
retrying and bisecting a rejected batch are the same for both (``services.sending``).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from .schema import CollectionSchema

# "json": a row is its entity's JSON text (bytes); "entity": a row is the checked entity itself.
RowForm = Literal["json", "entity"]


@dataclass
class UpsertResult:
    upsert_count: int
    # Exactly as the cluster sent them: Int64 ids arrive as strings and stay strings, exact.
    upsert_ids: list[str | int]
    # None over gRPC, which has no HTTP status.
    http_status: int | None
    elapsed_ms: float
    # The cluster's success code: 200 from REST v1, 0 from v2 and gRPC.
    code: int = 200


class UpsertEncoder(Protocol):
    """Builds the requests of one target (database, collection, partition) from rows."""

    def row_size(self, row: Any) -> int:
        """About how many bytes the row adds to a request: batches are capped by bytes."""

    def request(self, rows: Sequence[Any]) -> Any:
        """The request for these rows, built once and sent again unchanged on a retry.

        Raises DataRejectedError when the rows cannot make one request (a column the cluster
        could not read), so the batch is split as if the cluster had refused it.
        """

    def request_size(self, request: Any) -> int:
        """The request's bytes on the wire, as a cluster's rate budget counts them."""

    def entity(self, row: Any) -> dict[str, Any]:
        """The row as an entity, for storing a row the cluster refused."""


class ClusterTransport(Protocol):
    """One cluster: its collections, their schemas, and upserts into them."""

    row_form: RowForm

    def list_collections(self, database: str) -> list[str]: ...

    def describe_collection(self, database: str, collection: str) -> CollectionSchema: ...

    def upsert_encoder(
        self,
        *,
        database: str,
        collection: str,
        schema: CollectionSchema,
        partition: str = "",
        partial_update: bool = False,
    ) -> UpsertEncoder:
        """``partial_update``: each row changes only the fields it gives (Milvus 2.6.2 and
        later); every row of a request must then give the same fields."""

    def send_upsert(self, request: Any) -> UpsertResult:
        """Send one request an encoder built; every failure is a ``ClusterError``."""

    def close(self) -> None: ...
