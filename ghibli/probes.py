"""Container health probes: is the ingest, consumer, offline-Space or exporter process here well?

They run as Docker HEALTHCHECK commands (`ghibli doctor --probe ROLE`), every few seconds, so they
are cheap: one HTTP GET on loopback, or one Redis SCAN for the consumer's liveness key. The consumer
probe asks Redis rather than the process because a consumer whose Redis connection is broken is
not healthy even though its process is up.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from ghibli.findings import Finding, fail, ok

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from jobs.settings import Settings

__all__ = ["ROLES", "container_role", "probe_consumer", "probe_http"]

# The `ghibli` subcommand that names each role, as it appears in PID 1's command line.
ROLES = {"ingest": "ingest", "consume": "consumer", "space": "space", "metrics-exporter": "exporter"}


def probe_http(role: str, url: str, timeout_s: float) -> Finding:
    try:
        response = httpx.get(url, timeout=timeout_s)
    except httpx.HTTPError as exc:
        return fail(role, f"{url}: {type(exc).__name__}: {exc}", f"Read the {role} container's log.")
    if response.status_code != 200:
        return fail(role, f"{url} answered {response.status_code}.", f"Read the {role} container's log.")
    return ok(role, f"{url} answered 200")


async def probe_consumer(settings: Settings, timeout_s: float) -> list[Finding]:
    """A liveness key of this machine's consumer exists (the consumer refreshes it while it runs).

    Without GHIBLI_CONSUMER_NAME the name is `<hostname>-<pid>`; a container's hostname is its own.
    """
    from ghibli.doctor import glob_literal, with_redis
    from jobs.keys import Keys

    keys = Keys(settings.key_prefix, settings.stream_name, settings.group_name)
    if settings.consumer_name:
        wanted = re.compile(re.escape(settings.consumer_name))
        pattern = settings.consumer_name
    else:
        host = socket.gethostname()
        wanted = re.compile(re.escape(host) + r"-\d+")
        pattern = f"{host}-*"

    async def look(redis: Redis) -> list[Finding]:
        prefix = keys.alive("")
        match = glob_literal(prefix) + (pattern if not settings.consumer_name else glob_literal(pattern))
        async for key in redis.scan_iter(match=match, count=1000):
            name = (key.decode() if isinstance(key, bytes) else str(key))[len(prefix) :]
            if wanted.fullmatch(name):
                return [ok("consumer", f"consumer {name} is alive")]
        return [
            fail(
                "consumer",
                f"no liveness key {prefix}{pattern} in Redis: the consumer here is not working the queue.",
                "Read the consumer container's log (Redis reachable? Space reachable?).",
            )
        ]

    return await with_redis(settings, timeout_s, look)


def container_role(cmdline: Path = Path("/proc/1/cmdline")) -> str | None:
    """The role of this container, from its main process: `[tini --] ghibli ingest|consume|space`
    or `python -m ghibli ...`."""
    try:
        words = [Path(arg).name for arg in cmdline.read_bytes().decode(errors="replace").split("\0") if arg]
    except OSError:
        return None
    if "ghibli" not in words:
        return None
    after = words[words.index("ghibli") + 1 :]
    return next((ROLES[word] for word in after if word in ROLES), None)
