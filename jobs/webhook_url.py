"""Where webhooks may go: https URLs whose every address is public, or on the operator's allowlist.

Checked twice: when the job is submitted (a clear 422 for the caller) and before every delivery
attempt, because DNS can change in between (a name that resolved to a public address may later
resolve to 127.0.0.1: DNS rebinding). The delivery then connects to the very address that was
checked, keeping the URL's host in the Host header and in TLS (SNI and the certificate check), so
no second resolution can swap the address under it.

"Public" is Python's `is_global` minus multicast, applied to the IPv4 address hidden in IPv6 forms
(IPv4-mapped, NAT64 64:ff9b::/96, 6to4, Teredo) too, so ::ffff:10.0.0.1 is as private as 10.0.0.1.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import anyio

if TYPE_CHECKING:
    from jobs.settings import Settings

__all__ = [
    "Address",
    "UrlPolicy",
    "UrlRefused",
    "WebhookTarget",
    "address_allowed",
    "parse_webhook_url",
    "resolve_target",
]

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
URL_MAX = 2048
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# Not public although Python's is_global says so: site-local IPv6 (deprecated, still routed inside
# some networks) and the IPv6 documentation range of RFC 9637.
_NOT_PUBLIC = (ipaddress.ip_network("fec0::/10"), ipaddress.ip_network("3fff::/20"))


class UrlRefused(Exception):
    """A webhook URL that may not be called; `code` is the problem code ingest answers with."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class UrlPolicy:
    allow_http: bool = False
    allowed: tuple[_Network, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> UrlPolicy:
        networks = (n.strip() for n in settings.webhook_allow_networks.split(","))
        return cls(
            allow_http=settings.webhook_allow_http,
            allowed=tuple(ipaddress.ip_network(n, strict=False) for n in networks if n),
        )


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """A checked URL, split into what a pinned request needs."""

    url: str
    scheme: str
    host: str  # IDNA-encoded, lower case; an IP literal without brackets
    port: int
    target: str  # path and query

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return shown if self.port == default else f"{shown}:{self.port}"

    def pinned_url(self, address: Address) -> str:
        """The URL with the host replaced by the checked address."""
        literal = f"[{address}]" if address.version == 6 else str(address)
        return f"{self.scheme}://{literal}:{self.port}{self.target}"


def parse_webhook_url(raw: str, policy: UrlPolicy) -> WebhookTarget:
    """Syntax and scheme only (no DNS); raises UrlRefused('invalid_webhook_url')."""

    def refuse(why: str) -> UrlRefused:
        return UrlRefused("invalid_webhook_url", f"webhook_url {why}.")

    if len(raw) > URL_MAX:
        raise refuse(f"must be at most {URL_MAX} characters")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in raw):
        raise refuse("must not contain spaces or control characters")
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError:
        raise refuse("is not a valid URL") from None
    scheme = parts.scheme.lower()
    allowed_schemes = ("https", "http") if policy.allow_http else ("https",)
    if scheme not in allowed_schemes:
        raise refuse("must be an https:// URL" if not policy.allow_http else "must be an http(s):// URL")
    if parts.username is not None or parts.password is not None:
        raise refuse("must not carry credentials (user:password@); put a token in the path or query")
    host = parts.hostname or ""
    if not host:
        raise refuse("has no host")
    try:
        host = str(ipaddress.ip_address(host))
    except ValueError:
        try:
            host = host.encode("idna").decode("ascii").lower()
        except UnicodeError:
            raise refuse("has a host name that cannot be encoded (IDNA)") from None
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return WebhookTarget(
        url=raw,
        scheme=scheme,
        host=host,
        port=port or (443 if scheme == "https" else 80),
        target=target,
    )


def _embedded_v4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    return None


def _public(address: Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        inner = _embedded_v4(address)
        if inner is not None:
            return _public(inner)
    if any(address in network for network in _NOT_PUBLIC if network.version == address.version):
        return False
    return address.is_global and not (
        address.is_multicast
        or address.is_loopback
        or address.is_link_local
        or address.is_private
        or address.is_reserved
        or address.is_unspecified
    )


def address_allowed(address: Address, policy: UrlPolicy) -> bool:
    candidates: list[Address] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        inner = _embedded_v4(address)
        if inner is not None:
            candidates.append(inner)
    if any(c in net for c in candidates for net in policy.allowed if c.version == net.version):
        return True
    return _public(address)


async def resolve_target(target: WebhookTarget, policy: UrlPolicy, timeout_s: float = 5.0) -> list[Address]:
    """Every address the host resolves to, all of them allowed, in resolver order.

    Raises UrlRefused: 'webhook_host_unresolvable' when DNS gives nothing (in time), and
    'webhook_url_forbidden' when any address is loopback, private, link-local or otherwise not
    public and not on the allowlist (one bad record among good ones is enough to refuse).
    """
    try:
        with anyio.fail_after(timeout_s):
            infos = await anyio.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (OSError, TimeoutError):
        raise UrlRefused(
            "webhook_host_unresolvable", f"webhook_url: the host {target.host!r} does not resolve."
        ) from None
    addresses: list[Address] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    refused = [a for a in addresses if not address_allowed(a, policy)]
    if refused or not addresses:
        # Never which address: that would let callers map this network's internal DNS.
        raise UrlRefused(
            "webhook_url_forbidden",
            f"webhook_url: {target.host!r} resolves to a loopback, private, link-local or reserved "
            "address; webhooks go to public addresses only.",
        )
    return addresses
