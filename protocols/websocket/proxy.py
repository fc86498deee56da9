"""Who the client really is, behind trusted reverse proxies (pure functions).

``X-Forwarded-For`` is a list each proxy appends its peer to, so only the entries
added by proxies we trust can be believed. We walk it from the right, skipping
trusted proxies, and take the first address we do not trust: the rightmost
untrusted hop. (Daphne takes the leftmost entry, which any client can forge.)
Headers from a peer that is not itself trusted are ignored entirely.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field

from gateway.web.events import Address

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class TrustedProxies:
    """A set of proxy addresses and networks; ``"*"`` trusts every peer.

    >>> TrustedProxies.parse("127.0.0.1, 10.0.0.0/8").trusts("10.1.2.3")
    True
    """

    networks: tuple[Network, ...] = (
        ipaddress.ip_network("127.0.0.1/32"),
        ipaddress.ip_network("::1/128"),
    )
    trust_all: bool = False
    names: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def parse(cls, spec: str | Iterable[str]) -> TrustedProxies:
        """From ``"127.0.0.1,10.0.0.0/8"`` or a list; non-IP entries (e.g. a Unix
        socket path) must match the peer literally."""
        items = spec.split(",") if isinstance(spec, str) else list(spec)
        networks: list[Network] = []
        names: set[str] = set()
        trust_all = False
        for raw in items:
            item = raw.strip()
            if not item:
                continue
            if item == "*":
                trust_all = True
                continue
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                names.add(item)
        return cls(tuple(networks), trust_all, frozenset(names))

    def trusts(self, host: str | None) -> bool:
        """Whether ``host`` (None for a Unix-socket peer) is a trusted proxy.

        A Unix-socket peer is a local process, which is trusted like localhost.
        """
        if self.trust_all or host is None:
            return True
        if host in self.names:
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.networks)


@dataclass(frozen=True)
class Forwarded:
    """What the proxy headers changed: the client address, scheme and server port."""

    client: Address | None
    scheme: str | None
    server_port: int | None


def header_values(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> list[str]:
    """Comma-separated values of every ``name`` header, in order."""
    values: list[str] = []
    for key, value in headers:
        if key == name:
            values.extend(v.strip() for v in value.decode("latin-1").split(","))
    return [v for v in values if v]


def resolve_forwarded(
    peer: Address | None,
    headers: Iterable[tuple[bytes, bytes]],
    trusted: TrustedProxies,
) -> Forwarded | None:
    """The forwarded client, scheme and port, or None when nothing is to be believed.

    ``headers`` are ASGI headers (lower-case names). The scheme and port values are
    taken at the same hop as the client when the lists line up, else from the
    rightmost value (the one our trusted proxy wrote).
    """
    if not trusted.trusts(peer[0] if peer else None):
        return None
    headers = list(headers)
    hops = header_values(headers, b"x-forwarded-for")
    protos = header_values(headers, b"x-forwarded-proto")
    ports = header_values(headers, b"x-forwarded-port")
    if not (hops or protos or ports):
        return None
    index = len(hops) - 1
    while index > 0 and trusted.trusts(hops[index]):
        index -= 1
    client: Address | None = (hops[index], 0) if hops else None

    def at_hop(values: list[str]) -> str | None:
        if not values:
            return None
        return values[index] if len(values) == len(hops) else values[-1]

    proto = at_hop(protos)
    scheme = proto.lower() if proto and proto.lower() in ("http", "https", "ws", "wss") else None
    return Forwarded(client, scheme, _port(at_hop(ports)))


def _port(text: str | None) -> int | None:
    """A TCP port (RFC 6335: 0-65535) in ASCII digits, else None (``"²"`` is a digit
    to ``str.isdigit`` and 5,000 digits are too long for ``int``)."""
    if text is None or not (0 < len(text) <= 5 and text.isascii() and text.isdigit()):
        return None
    port = int(text)
    return port if port <= 65535 else None
