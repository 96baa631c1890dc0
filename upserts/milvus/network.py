"""Which addresses the client may connect to, checked where its sockets are opened.

A cluster's base URL is typed by a person, so without a policy the console would send requests
(with a token) to any address it can reach on their behalf: a cloud's metadata service hands
out the machine's own credentials at 169.254.169.254. The policy is checked when a cluster is
saved, against what its host name resolves to then, and again on every new connection, against
the address the socket actually reached: a name may resolve elsewhere later (DNS rebinding), and
only the second check sees the address that is used.
"""

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool
from urllib3.poolmanager import PoolManager

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Link-local networks, where the metadata services of AWS, GCP, Azure, Oracle and DigitalOcean
# (169.254.169.254) and AWS' container credentials (169.254.170.2) answer, and the metadata
# addresses outside them: AWS' over IPv6, inside the private fd00::/8, and Alibaba Cloud's,
# inside 100.64.0.0/10, the shared address space that VPNs such as Tailscale use too, so only
# the one address of each is denied. Private and loopback networks stay open by default: that
# is where self-hosted clusters live.
DEFAULT_DENIED_NETWORKS = (
    "169.254.0.0/16",
    "fe80::/10",
    "fd00:ec2::254/128",
    "100.100.100.200/32",
)


def parse_networks(networks: Iterable[str]) -> tuple[Network, ...]:
    """CIDRs (or single addresses) as networks; ValueError names the first unreadable one."""
    parsed = []
    for text in networks:
        try:
            parsed.append(ipaddress.ip_network(text.strip(), strict=False))
        except ValueError as exc:
            raise ValueError(f"{text!r} is not a network such as 10.0.0.0/8 or fe80::/10") from exc
    return tuple(parsed)


class AddressRefused(Exception):
    """A connection reached an address the network policy refuses.

    Deliberately not an OSError: urllib3 and requests would turn one into a connection error,
    which reads as "retry later"; this must stop at once, so it passes through them unchanged.
    """


@dataclass(frozen=True)
class NetworkPolicy:
    """The networks a cluster may not be in, and (when not empty) the only ones it may be in."""

    denied: tuple[Network, ...] = field(
        default_factory=lambda: parse_networks(DEFAULT_DENIED_NETWORKS)
    )
    allowed: tuple[Network, ...] = ()

    @classmethod
    def from_strings(cls, denied: Iterable[str], allowed: Iterable[str] = ()) -> "NetworkPolicy":
        return cls(denied=parse_networks(denied), allowed=parse_networks(allowed))

    def refusal(self, address: str) -> str | None:
        """Why ``address`` may not be connected to (to follow "<address> "), or None."""
        ip = ipaddress.ip_address(address.partition("%")[0])
        # An IPv4-mapped IPv6 address (::ffff:169.254.169.254) reaches the IPv4 address.
        seen_as = [ip] if ip.version == 4 or ip.ipv4_mapped is None else [ip, ip.ipv4_mapped]
        for network in self.denied:
            if any(one.version == network.version and one in network for one in seen_as):
                return f"is in {network}, a network the console does not connect to"
        if self.allowed and not any(
            one.version == network.version and one in network
            for network in self.allowed
            for one in seen_as
        ):
            allowed = ", ".join(str(network) for network in self.allowed)
            return f"is outside the networks the console connects to ({allowed})"
        return None

    def connection_refusal(self, host: str, addresses: Iterable[str]) -> str | None:
        """Why ``host``, reached at one of ``addresses``, may not be connected to, or None."""
        for address in addresses:
            reason = self.refusal(address)
            if reason:
                shown = address if address == host else f"{host} is at {address}, which"
                return f"{shown} {reason}"
        return None

    def host_refusal(self, host: str, port: int) -> str | None:
        """Why ``host`` may not be connected to, judged by every address it resolves to now.

        A name that does not resolve is not refused: it may resolve only where the worker runs,
        and every connection is checked anyway.
        """
        try:
            found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            return None
        for address in sorted({str(info[4][0]) for info in found}):
            reason = self.refusal(address)
            if reason:
                if address == host:
                    return f"{address} {reason}"
                return f"{host} resolves to {address}, which {reason}"
        return None


def _checked(sock: socket.socket, policy: NetworkPolicy, host: str) -> socket.socket:
    """The socket, once its peer is known to be allowed. Checking the peer after the TCP
    handshake, rather than resolving beforehand, sees the very address used, and a refused
    peer has received no byte of the request."""
    refused = policy.connection_refusal(host, [str(sock.getpeername()[0])])
    if refused:
        sock.close()
        raise AddressRefused(refused)
    return sock


class _CheckedHTTPConnection(HTTPConnection):
    def __init__(self, *args: Any, network_policy: NetworkPolicy, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.network_policy = network_policy

    def _new_conn(self) -> socket.socket:
        return _checked(super()._new_conn(), self.network_policy, self.host)


class _CheckedHTTPSConnection(HTTPSConnection):
    """The peer is checked before the TLS handshake; the handshake still sends the host name
    (SNI) and verifies the certificate against it, since the host itself is left unchanged."""

    def __init__(self, *args: Any, network_policy: NetworkPolicy, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.network_policy = network_policy

    def _new_conn(self) -> socket.socket:
        return _checked(super()._new_conn(), self.network_policy, self.host)


class _CheckedPoolManager(PoolManager):
    """Pools whose connections check their peer. The policy cannot travel in the pool keyword
    arguments (urllib3 turns every one of them into a field of its fixed pool key), so it is
    handed to each pool as it is made."""

    def __init__(self, *args: Any, network_policy: NetworkPolicy, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.network_policy = network_policy

    def _new_pool(
        self,
        scheme: str,
        host: str,
        port: int,
        request_context: dict[str, Any] | None = None,
    ) -> HTTPConnectionPool:
        pool = super()._new_pool(scheme, host, port, request_context)
        pool.ConnectionCls = (
            _CheckedHTTPSConnection if scheme == "https" else _CheckedHTTPConnection
        )
        pool.conn_kw["network_policy"] = self.network_policy
        return pool


class CheckedHTTPAdapter(HTTPAdapter):
    """A requests adapter whose every new connection is checked against ``network_policy``.

    Only direct connections are checked: through a proxy (HTTPS_PROXY) the socket reaches the
    proxy, and the proxy decides where the request goes.
    """

    __attrs__ = [*HTTPAdapter.__attrs__, "network_policy"]

    def __init__(self, network_policy: NetworkPolicy, **kwargs: Any) -> None:
        # Set first: HTTPAdapter.__init__ calls init_poolmanager.
        self.network_policy = network_policy
        super().__init__(**kwargs)

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        self.poolmanager = _CheckedPoolManager(
            num_pools=connections,
            maxsize=maxsize,
            block=block,
            network_policy=self.network_policy,
            **pool_kwargs,
        )
