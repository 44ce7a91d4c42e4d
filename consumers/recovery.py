"""Taking over the work of consumers that died, and forgetting consumers that are gone.

Every consumer runs both (no leader to elect): XAUTOCLAIM hands each idle entry to exactly one
claimer, and the reaper's check-and-delete is one script.

Downtime counts as idle time in Redis: after a restart every in-flight entry looks expired, and
after a fail-over every entry looks idle for as long as the switch took. So nothing is reclaimed
until the server has served for two renewal periods (`restart_guard_s`: live consumers renew every
lease/3 and retry every <= 2 s while Redis is away, so by then they have renewed what they run) and
until this consumer has renewed its own leases since it last lost the connection. "Served" is its
uptime, or the time since this consumer first saw it when it replaced another server (a fail-over
promotes a replica that has been up for long; its run id tells it apart). Entries handed back on
purpose (consumers.lease.RELEASE_IDLE_MS: an hour idle) are the exception: they are taken at once,
also right after a restart, so a job a stopping consumer handed back (`ghibli up` stopped with a
second Ctrl-C) runs again as soon as the stack is back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jobs.redis_topology import server_info
from jobs.scripts import load_script

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from jobs.keys import Keys

__all__ = ["Reaper", "Reclaimed", "Reclaimer", "redis_identity", "redis_version", "restart_guard_s"]

MIN_VERSION = (6, 2)


def restart_guard_s(lease_s: float) -> float:
    """How long Redis must have been up before anything is reclaimed (see the module's docstring)."""
    return max(2 * lease_s / 3, 5.0)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _fields(flat: list[Any]) -> dict[bytes, bytes]:
    return {
        k if isinstance(k, bytes) else str(k).encode(): v if isinstance(v, bytes) else str(v).encode()
        for k, v in zip(flat[::2], flat[1::2], strict=True)
    }


@dataclass(slots=True)
class Reclaimed:
    """Entries taken over (id, fields, deliveries) and entries found deleted under the PEL."""

    entries: list[tuple[str, dict[bytes, bytes], int]] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)


async def redis_version(redis: Redis, key: str) -> tuple[int, ...]:
    """The version of the server holding `key` (on a cluster: its slot's owner)."""
    info = await server_info(redis, key)
    return tuple(int(part) for part in str(info["redis_version"]).split(".")[:3])


async def redis_identity(redis: Redis, key: str) -> tuple[str, float, bool]:
    """(run id, uptime in seconds, is it a primary) of the server holding `key`: a restart or a
    fail-over changes the id; a connection still on a demoted primary answers as a replica."""
    info = await server_info(redis, key, "default")
    return str(info["run_id"]), float(info["uptime_in_seconds"]), info.get("role") == "master"


class Reclaimer:
    """XAUTOCLAIM with min-idle = lease, resuming its scan where the last pass stopped."""

    def __init__(self, redis: Redis, keys: Keys, consumer: str, lease_s: float) -> None:
        self.redis = redis
        self.keys = keys
        self.consumer = consumer
        self.min_idle_ms = int(lease_s * 1000)
        self._cursor = "0-0"
        self._script = load_script(redis, "reclaim")

    async def reclaim(
        self, count: int, max_passes: int = 100, *, min_idle_ms: int | None = None
    ) -> Reclaimed:
        """Take over up to `count` idle entries, scanning the PEL once round at most.

        `min_idle_ms` replaces the lease for this call (the restart guard asks for handed-back
        entries only).

        Each pass scans at most 10 x count PEL entries: with few free slots and many running jobs,
        one pass would see only a corner of the PEL, so passes continue until the scan wraps.
        """
        found = Reclaimed()
        for _ in range(max_passes):
            want = count - len(found.entries)
            if want <= 0:
                break
            cursor, claimed, deleted = await self._script(
                keys=[self.keys.stream],
                args=[self.keys.group, self.consumer, min_idle_ms or self.min_idle_ms, self._cursor, want],
            )
            self._cursor = _text(cursor)
            for entry_id, flat, deliveries in claimed:
                found.entries.append((_text(entry_id), _fields(flat), int(deliveries)))
            found.deleted.extend(_text(entry_id) for entry_id in deleted)
            if self._cursor == "0-0":
                break
        return found


class Reaper:
    """Removes consumers whose liveness key expired and that own no pending entry."""

    def __init__(self, redis: Redis, keys: Keys, consumer: str) -> None:
        self.redis = redis
        self.keys = keys
        self.consumer = consumer
        self._script = load_script(redis, "reap_consumer")

    async def candidates(self) -> list[str]:
        """Consumers of the group (and heartbeat entries) that own nothing right now."""
        names: set[str] = set()
        for info in await self.redis.xinfo_consumers(self.keys.stream, self.keys.group):
            if int(info["pending"]) == 0:
                names.add(_text(info["name"]))
        # Heartbeat entries of consumers the group no longer knows (deleted elsewhere).
        names.update(_text(name) for name in await self.redis.zrange(self.keys.consumers, 0, -1))
        names.discard(self.consumer)
        return sorted(names)

    async def reap_one(self, name: str) -> str:
        """'deleted', or why not: 'alive' (liveness key present) or 'pending' (owns entries)."""
        verdict = await self._script(
            keys=[self.keys.stream, self.keys.alive(name), self.keys.consumers],
            args=[self.keys.group, name],
        )
        return _text(verdict)

    async def reap(self) -> list[str]:
        """Delete every consumer that is gone and owns nothing; returns their names."""
        return [name for name in await self.candidates() if await self.reap_one(name) == "deleted"]
