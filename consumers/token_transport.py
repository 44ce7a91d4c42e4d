"""HF tokens travel only over TLS, unless the Space is on this machine or a network the operator named.

gradio_client sends the token with every request to GHIBLI_SPACE. A Space id and an https:// URL
are TLS; a plain http:// URL would hand real tokens to anyone on the path. So with tokens
configured, a consumer refuses to start unless the http:// Space's host is loopback, or is named
in GHIBLI_SPACE_PLAINTEXT_HOSTS (a host name such as the compose service `space`, or addresses
and CIDRs every address of the host must fall in: a private network the operator trusts).
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from consumers.tokens import TokenConfigError, TokenSet

__all__ = ["check_token_transport"]

SETTING = "GHIBLI_SPACE_PLAINTEXT_HOSTS"


def _allowed(entries: str) -> tuple[set[str], list[ipaddress.IPv4Network | ipaddress.IPv6Network]]:
    names: set[str] = set()
    networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for entry in (e.strip() for e in entries.split(",")):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            names.add(entry.lower().rstrip("."))
    return names, networks


def _addresses(host: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return []
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


def check_token_transport(space: str, tokens: TokenSet, plaintext_hosts: str) -> None:
    """Raise TokenConfigError when real tokens would go to `space` in clear text."""
    if tokens.anonymous or not space.lower().startswith("http://"):
        return  # no token to leak, or a Space id / https:// URL (TLS)
    host = (urlsplit(space).hostname or "").lower().rstrip(".")
    names, networks = _allowed(plaintext_hosts)
    if host in names:
        return
    addresses = _addresses(host)
    if addresses and all(a.is_loopback or any(a in net for net in networks) for a in addresses):
        return
    raise TokenConfigError(
        f"refusing to send Hugging Face tokens in clear text to GHIBLI_SPACE={space}: use an https:// "
        f"URL, remove the tokens (the offline Space needs none), or, if {host!r} is on a network you "
        f"trust (e.g. the compose network), name it in {SETTING} (host names, addresses or CIDRs)."
    )
