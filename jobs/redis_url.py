"""What a REDIS_URL names: one server, a Sentinel-watched primary, or a Redis Cluster.

- `redis://`, `rediss://`, `unix://`: one server (or a managed endpoint that follows its primary).
- `redis+sentinel://[user:password@]host:26379[,host:26379...]/service[/db][?sentinel_password=...]`:
  the primary that the sentinels name for `service`. The user and password are the data nodes'; the
  sentinels' own password (if they have one) is a query parameter, put there from
  REDIS_SENTINEL_PASSWORD_FILE by the settings.
- `redis+cluster://[user:password@]host:6379[,host:6379...][/0]`: a cluster, found from any of these
  nodes (they need not own the jobs' slot).

Parsing is strict: an unknown option or a database other than 0 on a cluster is an error at start-up,
never a silent default.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["SENTINEL_OPTIONS", "RedisTarget", "parse_redis_url", "redacted_url"]

Topology = Literal["standalone", "sentinel", "cluster"]

SENTINEL_OPTIONS = ("sentinel_username", "sentinel_password")
_DEFAULT_PORT = {"sentinel": 26379, "cluster": 6379}
_SCHEMES: dict[str, Topology] = {
    "redis": "standalone",
    "rediss": "standalone",
    "unix": "standalone",
    "redis+sentinel": "sentinel",
    "redis+cluster": "cluster",
}


@dataclass(frozen=True, slots=True)
class RedisTarget:
    topology: Topology
    url: str  # as given; a standalone server is opened from it directly
    nodes: tuple[tuple[str, int], ...] = ()  # sentinels, or cluster start-up nodes
    service: str = ""  # the sentinels' name of the primary
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_username: str | None = None
    sentinel_password: str | None = None


def redacted_url(url: str) -> str:
    """The URL without its passwords (the data nodes' in the user info, the sentinels' in the query)."""
    url = re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)
    return re.sub(r"([?&]sentinel_password=)[^&#]*", r"\1***", url)


def parse_redis_url(url: str) -> RedisTarget:
    """The target named by `url`; ValueError (saying what is wrong) for a URL it cannot be."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    topology = _SCHEMES.get(scheme)
    if topology is None:
        raise ValueError(
            "must be redis://, rediss://, unix://, redis+sentinel:// or redis+cluster:// (docs/redis-ha.md)"
        )
    if topology == "standalone":
        if len(url) <= len(scheme) + 3:
            raise ValueError("names no server")
        return RedisTarget("standalone", url)
    parts = urlsplit(url)
    userinfo, _, hostlist = parts.netloc.rpartition("@")
    username, password = _credentials(userinfo)
    nodes = tuple(_node(item, _DEFAULT_PORT[topology]) for item in hostlist.split(","))
    options = _options(parts.query, allowed=SENTINEL_OPTIONS if topology == "sentinel" else ())
    path = [unquote(p) for p in parts.path.split("/") if p]
    if topology == "sentinel":
        if not path or len(path) > 2:
            raise ValueError(
                "a Sentinel URL names the primary's service: redis+sentinel://host:26379/mymaster/0"
            )
        return RedisTarget(
            "sentinel",
            url,
            nodes,
            service=path[0],
            db=_db(path[1]) if len(path) == 2 else 0,
            username=username,
            password=password,
            sentinel_username=options.get("sentinel_username"),
            sentinel_password=options.get("sentinel_password"),
        )
    if len(path) > 1 or (path and _db(path[0]) != 0):
        raise ValueError("Redis Cluster has only database 0: redis+cluster://host:6379")
    return RedisTarget("cluster", url, nodes, username=username, password=password)


def _credentials(userinfo: str) -> tuple[str | None, str | None]:
    if not userinfo:
        return None, None
    user, sep, password = userinfo.partition(":")
    return (unquote(user) or None), (unquote(password) if sep else None)


def _node(text: str, default_port: int) -> tuple[str, int]:
    match = re.fullmatch(r"(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[^\[\]:/]+))(?::(?P<port>\d{1,5}))?", text)
    if match is None:
        raise ValueError(f"{text!r} is not host or host:port")
    port = int(match["port"]) if match["port"] else default_port
    if not 0 < port < 65536:
        raise ValueError(f"{text!r}: port out of range")
    return match["v6"] or match["host"], port


def _db(text: str) -> int:
    if not text.isdigit():
        raise ValueError(f"database {text!r} is not a number")
    return int(text)


def _options(query: str, allowed: tuple[str, ...]) -> dict[str, str]:
    found = parse_qs(query, keep_blank_values=True, strict_parsing=False)
    unknown = sorted(set(found) - set(allowed))
    if unknown:
        known = f" (known: {', '.join(allowed)})" if allowed else ""
        raise ValueError(f"unknown option {', '.join(unknown)}{known}")
    return {name: values[-1] for name, values in found.items()}
