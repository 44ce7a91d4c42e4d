"""Who a request comes from, for rate limits: the socket peer, or X-Forwarded-For behind trusted proxies.

X-Forwarded-For is believed only when the peer is a configured proxy (GHIBLI_TRUSTED_PROXIES), and
then read from the right: each trusted proxy appends the address it saw, so the first address from
the right that is not a trusted proxy is the client. Anything to its left is whatever the client
chose to send and is ignored. (uvicorn's own proxy-header rewriting is turned off by `ghibli
ingest`, so this is the one place that decides.)
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from litestar.types import Scope

__all__ = ["ClientAddress", "client_bucket", "parse_origins"]

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def client_bucket(address: str, ipv6_prefix: int = 64) -> str:
    """Who counts as one client for limits: an IPv4 address, or the IPv6 network it belongs to.

    One IPv6 subscriber usually gets a whole /64 (often a /56), so counting single IPv6 addresses
    would hand one person 2**64 separate allowances. IPv4-mapped IPv6 addresses count as IPv4.
    """
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address  # not an address (a test client, a unix socket): itself
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, ipv6_prefix), strict=False))
    return str(ip)


class ClientAddress:
    def __init__(self, trusted_proxies: str = "", ipv6_prefix: int = 64) -> None:
        self._trusted: tuple[_Network, ...] = tuple(
            ipaddress.ip_network(p.strip(), strict=False) for p in trusted_proxies.split(",") if p.strip()
        )
        self.ipv6_prefix = ipv6_prefix

    def is_trusted_proxy(self, address: str) -> bool:
        return bool(self._trusted) and self._is_trusted(address)

    def bucket(self, scope: Scope) -> str:
        """The client as every per-client limit counts it (client_bucket of its address)."""
        return client_bucket(self(scope), self.ipv6_prefix)

    def _is_trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self._trusted)

    def __call__(self, scope: Scope) -> str:
        client = scope.get("client")
        peer = client[0] if client else "unknown"
        if not self._trusted or not self._is_trusted(peer):
            return peer
        hops = [
            hop.strip()
            for name, value in scope.get("headers", ())
            if name.lower() == b"x-forwarded-for"
            for hop in value.decode("latin-1").split(",")
            if hop.strip()
        ]
        for hop in reversed(hops):
            if not self._is_trusted(hop):
                return hop
        return hops[0] if hops else peer


def parse_origins(raw: str) -> frozenset[str]:
    """'https://a.example, https://b.example:8443' -> normalized origins (scheme://host[:port])."""
    found: set[str] = set()
    for item in (part.strip() for part in raw.split(",")):
        if item:
            parts = urlsplit(item)
            found.add(f"{parts.scheme.lower()}://{(parts.netloc or parts.path).lower()}")
    return frozenset(found)
