"""Which of Milvus' APIs an endpoint answers, and the server's version where it says.

A cluster registered as v1 may answer v2 (Milvus 2.4 and later, Zilliz Cloud) or gRPC, which
its users would rather use; a test of the connection asks each API for the database's
collections and says so. REST has no version endpoint; gRPC's ``GetVersion`` gives it.
"""

import re
from dataclasses import dataclass, replace

from .client import ApiVersion, ClusterClient, ClusterConfig
from .errors import AuthenticationError, ClusterError
from .grpc_client import GrpcClusterClient

# A probe of an API the endpoint may not serve waits no longer than this for its answer.
PROBE_TIMEOUT_SECONDS = 5.0
APIS: tuple[ApiVersion, ...] = ("v1", "v2", "grpc")


@dataclass(frozen=True)
class ApiProbe:
    api: ApiVersion
    answers: bool
    # Why it does not answer, or what it said when it refused the token.
    detail: str = ""


@dataclass(frozen=True)
class EndpointProbe:
    apis: tuple[ApiProbe, ...]
    server_version: str = ""

    @property
    def answering(self) -> list[ApiVersion]:
        return [probe.api for probe in self.apis if probe.answers]


def probe_api(config: ClusterConfig, api: ApiVersion, database: str) -> tuple[ApiProbe, str]:
    """Whether the endpoint answers ``api``, and the server version it gave (gRPC only).

    A refused token still proves the API is served there.
    """
    probe_config = replace(
        config,
        api_version=api,
        timeout_seconds=min(config.timeout_seconds, PROBE_TIMEOUT_SECONDS),
    )
    client: ClusterClient | GrpcClusterClient | None = None
    try:
        # A gRPC channel checks the address against the network policy as it is made.
        client = GrpcClusterClient(probe_config) if api == "grpc" else ClusterClient(probe_config)
        client.list_collections(database)
        version = client.server_version() if isinstance(client, GrpcClusterClient) else ""
        return ApiProbe(api, True), version
    except AuthenticationError as exc:
        return ApiProbe(api, True, str(exc)), ""
    except ClusterError as exc:
        return ApiProbe(api, False, str(exc)), ""
    finally:
        if client is not None:
            client.close()


def probe_endpoint(
    config: ClusterConfig, database: str, *, known: ApiProbe | None = None
) -> EndpointProbe:
    """Every API of the endpoint; ``known`` is the outcome of one already asked."""
    probes = []
    version = ""
    for api in APIS:
        if known is not None and known.api == api and api != "grpc":
            probes.append(known)
            continue
        probe, said = probe_api(config, api, database)
        probes.append(probe)
        version = version or said
    return EndpointProbe(tuple(probes), version)


# The first Milvus whose upsert takes partial_update / partialUpdate.
PARTIAL_UPDATE_SINCE = (2, 6, 2)
# milvus-lite merges the given fields into the stored entity on every upsert; 3.2.2 is the
# release it was seen to, and reports itself as "milvus_lite-3.2.2".
_LITE_MERGING_SINCE = (3, 2, 2)
_VERSION = re.compile(r"(\d+)\.(\d+)\.(\d+)")


def _parsed(text: str) -> tuple[int, int, int] | None:
    found = _VERSION.search(text)
    if found is None:
        return None
    major, minor, patch = (int(part) for part in found.groups())
    return major, minor, patch


def takes_partial_updates(server_version: str) -> bool:
    """Whether a server that names itself so changes only the fields an upsert gives.

    A version that cannot be read counts as no: an older server ignores the option and
    replaces the whole entity, leaving the fields a row does not give null or default.
    """
    text = server_version.strip()
    if text.startswith("milvus_lite-"):
        lite = _parsed(text)
        return lite is not None and lite >= _LITE_MERGING_SINCE
    parsed = _parsed(text)
    return parsed is not None and parsed >= PARTIAL_UPDATE_SINCE
