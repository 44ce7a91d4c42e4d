"""Taking over the work of consumers that died, and forgetting consumers that are gone.

Two ways to take work over (consumers/lease.py says why there are two clocks):
- by heartbeat (`Takeover`), every heartbeat interval (1 s): consumers whose liveness key has
  expired lose every entry they own at once, whatever its idle time. One range query on the
  heartbeat set finds them, so the scan stays cheap with many consumers and a long PEL.
- by lease (`Reclaimer`), every lease/3 (at most 2 s): XAUTOCLAIM takes entries idle for a lease.

Every consumer runs both (no leader to elect): each take-over is one script, so an entry goes to
exactly one claimer, and the reaper's check-and-delete is one script too.

Downtime counts as idle time in Redis, and liveness keys expire while it is down: after a restart
every in-flight entry looks expired and every consumer dead; after a fail-over every entry looks
idle for as long as the switch took. So nothing is taken over by heartbeat until the server has
served for a heartbeat timeout plus the longest reconnect back-off (2 s), nor by lease until it has
served for two renewal periods (`restart_guard_s`); live consumers retry every <= 2 s while Redis is
away, so by then they have beaten and renewed. "Served" is its uptime, or the time since this
consumer first saw it when it replaced another server (a fail-over promotes a replica that has been
up for long; its run id tells it apart: `ServerClock`). And a consumer that saw Redis unavailable
itself waits as long again after the outage before it declares anyone dead, and reclaims by lease
only after renewing its own leases. Entries handed back on purpose (consumers.lease.RELEASE_IDLE_MS:
an hour idle) are the exception: they are taken at once, also right after a restart, so a job a
stopping consumer handed back (`ghibli up` stopped with a second Ctrl-C) runs again as soon as the
stack is back.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from consumers.lease import RELEASE_IDLE_MS
from jobs.logs import get_logger
from jobs.redis_conn import as_text
from jobs.redis_topology import server_info
from jobs.script_defs_infra import (
    DEAD_CONSUMERS,
    REAP_CONSUMER,
    RECLAIM,
    TAKEOVER,
    DeadConsumersArgs,
    DeadConsumersKeys,
    ReapArgs,
    ReapKeys,
    ReapVerdict,
    ReclaimArgs,
    StreamKeys,
    TakeoverArgs,
    TakeoverKeys,
    TakeoverVerdict,
)

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from jobs.keys import Keys

__all__ = [
    "HEARTBEAT_EXPIRED",
    "LEASE_EXPIRED",
    "Reaper",
    "Reclaimed",
    "Reclaimer",
    "Recovery",
    "ServerClock",
    "Takeover",
    "redis_identity",
    "redis_version",
    "restart_guard_s",
    "takeover_guard_s",
]

log = get_logger("consumers.recovery")

MIN_VERSION = (6, 2)
RECLAIM_SCAN_MAX_S = 2.0  # longest pause between lease scans
RECONNECT_MAX_S = 2.0  # jobs.backoff.Backoff's cap: how soon a live consumer retries Redis
DEAD_PER_SCAN = 32  # dead consumers looked at per heartbeat scan; drained ones leave the set

# Why an entry changed hands: the `reason` label of ghibli_jobs_reclaimed_total.
HEARTBEAT_EXPIRED = "heartbeat_expired"
LEASE_EXPIRED = "lease_expired"


def restart_guard_s(lease_s: float) -> float:
    """How long Redis must have been up before anything is reclaimed by lease (see above)."""
    return max(2 * lease_s / 3, 5.0)


def takeover_guard_s(heartbeat_timeout_s: float) -> float:
    """How long Redis must have been up, or this consumer must have seen it up, before consumers
    are declared dead: the others need that long to beat again after an outage."""
    return heartbeat_timeout_s + RECONNECT_MAX_S


def _fields(flat: list[Any]) -> dict[bytes, bytes]:
    return {
        k if isinstance(k, bytes) else str(k).encode(): v if isinstance(v, bytes) else str(v).encode()
        for k, v in zip(flat[::2], flat[1::2], strict=True)
    }


@dataclass(slots=True)
class Reclaimed:
    """Entries taken over (id, fields, deliveries) and entries found deleted under the PEL;
    `removed`: dead consumers left owning nothing, which left the group."""

    reason: str = LEASE_EXPIRED
    entries: list[tuple[str, dict[bytes, bytes], int]] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    def add(self, claimed: list[Any], deleted: list[Any]) -> None:
        for entry_id, flat, deliveries in claimed:
            self.entries.append((as_text(entry_id), _fields(flat), int(deliveries)))
        self.deleted.extend(as_text(entry_id) for entry_id in deleted)


async def redis_version(redis: Redis, key: str) -> tuple[int, ...]:
    """The version of the server holding `key` (on a cluster: its slot's owner)."""
    info = await server_info(redis, key)
    return tuple(int(part) for part in str(info["redis_version"]).split(".")[:3])


async def redis_identity(redis: Redis, key: str) -> tuple[str, float, bool]:
    """(run id, uptime in seconds, is it a primary) of the server holding `key`: a restart or a
    fail-over changes the id; a connection still on a demoted primary answers as a replica."""
    info = await server_info(redis, key, "default")
    return str(info["run_id"]), float(info["uptime_in_seconds"]), info.get("role") == "master"


class ServerClock:
    """How long the Redis holding the jobs has served this consumer: its uptime, or less when it
    replaced the server this consumer talked to before (a restart, or a fail-over promoting a
    replica that has been up for long)."""

    def __init__(self, redis: Redis, key: str) -> None:
        self.redis = redis
        self.key = key
        self._server_id = ""  # run id of the Redis holding the jobs
        self._server_since = -math.inf  # monotonic time this consumer first saw that server

    async def served_s(self) -> float:
        run_id, uptime_s, primary = await redis_identity(self.redis, self.key)
        if not primary:  # an answer from a demoted primary (a switch in progress): not serving
            return 0.0
        now = time.monotonic()
        if run_id != self._server_id:
            if self._server_id:
                log.warning("redis server changed: recovery waits for beats and renewals", run_id=run_id)
                self._server_since = now
            self._server_id = run_id
        return min(uptime_s, now - self._server_since)


class Reclaimer:
    """XAUTOCLAIM with min-idle = lease, resuming its scan where the last pass stopped."""

    def __init__(self, redis: Redis, keys: Keys, consumer: str, lease_s: float) -> None:
        self.redis = redis
        self.keys = keys
        self.consumer = consumer
        self.min_idle_ms = int(lease_s * 1000)
        self._cursor = "0-0"
        self._script = RECLAIM.load(redis)

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
                StreamKeys(stream=self.keys.stream),
                ReclaimArgs(
                    group=self.keys.group,
                    consumer=self.consumer,
                    min_idle_ms=min_idle_ms or self.min_idle_ms,
                    cursor=self._cursor,
                    max_entries=want,
                ),
            )
            self._cursor = as_text(cursor)
            found.add(claimed, deleted)
            if self._cursor == "0-0":
                break
        return found


class Takeover:
    """Takes over what consumers whose heartbeat expired own, at once (jobs/lua/takeover.lua)."""

    def __init__(self, redis: Redis, keys: Keys, consumer: str) -> None:
        self.redis = redis
        self.keys = keys
        self.consumer = consumer
        self._dead = DEAD_CONSUMERS.load(redis)
        self._take = TAKEOVER.load(redis)

    async def dead_owners(self, limit: int = DEAD_PER_SCAN) -> list[str]:
        """Consumers whose liveness key should have expired (Redis's clock), this one excepted."""
        names = await self._dead(
            DeadConsumersKeys(consumers=self.keys.consumers), DeadConsumersArgs(limit=limit)
        )
        return [name for name in map(as_text, names) if name != self.consumer]

    async def take_over(self, count: int, owners: list[str]) -> Reclaimed:
        """Up to `count` entries of these consumers, each checked dead in the same step as its claims."""
        found = Reclaimed(reason=HEARTBEAT_EXPIRED)
        for owner in owners:
            want = count - len(found.entries)
            if want <= 0:
                break
            reply = await self._take(
                TakeoverKeys(
                    stream=self.keys.stream, alive=self.keys.alive(owner), consumers=self.keys.consumers
                ),
                TakeoverArgs(group=self.keys.group, consumer=self.consumer, owner=owner, max_entries=want),
            )
            _verdict, claimed, deleted = reply
            found.add(claimed, deleted)
            if TakeoverVerdict.of(reply) is TakeoverVerdict.REMOVED:
                found.removed.append(owner)
        return found


class Recovery:
    """Both ways of taking work over, each at its own pace and behind its own guard (see above)."""

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        consumer: str,
        *,
        lease_s: float,
        heartbeat_s: float,
        heartbeat_timeout_s: float,
    ) -> None:
        self.redis = redis
        self.server = ServerClock(redis, keys.stream)
        self.takeover = Takeover(redis, keys, consumer)
        self.reclaimer = Reclaimer(redis, keys, consumer, lease_s)
        self.lease_s = lease_s
        self.heartbeat_s = heartbeat_s
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self._takeover_at = 0.0
        self._reclaim_at = 0.0

    async def scan(self, free: int, *, outage_at: float, renewed_at: float) -> list[Reclaimed]:
        """Take over up to `free` entries: first those of dead consumers, then those idle for a lease.

        `outage_at`: monotonic time this consumer last saw Redis unavailable; `renewed_at`: when it
        last renewed its own leases.
        """
        found: list[Reclaimed] = []
        now = time.monotonic()
        guard_s = takeover_guard_s(self.heartbeat_timeout_s)
        if now >= self._takeover_at and now - outage_at >= guard_s:
            self._takeover_at = now + self.heartbeat_s
            owners = await self.takeover.dead_owners()
            # INFO only when someone looks dead: a scan is one round trip while all are alive.
            if owners and await self.server.served_s() >= guard_s:
                found.append(await self.takeover.take_over(free, owners))
                free -= len(found[-1].entries)
        if free > 0 and now >= self._reclaim_at and renewed_at > outage_at:
            # Scanning often is cheap (one XAUTOCLAIM) and bounds it at about lease + 2 s.
            self._reclaim_at = now + min(self.lease_s / 3, RECLAIM_SCAN_MAX_S)
            # After a restart or a fail-over, only entries handed back on purpose until live
            # consumers renewed.
            guarded = await self.server.served_s() < restart_guard_s(self.lease_s)
            found.append(await self.reclaimer.reclaim(free, min_idle_ms=RELEASE_IDLE_MS if guarded else None))
        return found


class Reaper:
    """Removes consumers whose liveness key expired and that own no pending entry."""

    def __init__(self, redis: Redis, keys: Keys, consumer: str) -> None:
        self.redis = redis
        self.keys = keys
        self.consumer = consumer
        self._script = REAP_CONSUMER.load(redis)

    async def candidates(self) -> list[str]:
        """Consumers of the group (and heartbeat entries) that own nothing right now."""
        names: set[str] = set()
        for info in await self.redis.xinfo_consumers(self.keys.stream, self.keys.group):
            if int(info["pending"]) == 0:
                names.add(as_text(info["name"]))
        # Heartbeat entries of consumers the group no longer knows (deleted elsewhere).
        names.update(as_text(name) for name in await self.redis.zrange(self.keys.consumers, 0, -1))
        names.discard(self.consumer)
        return sorted(names)

    async def reap_one(self, name: str) -> ReapVerdict:
        """'deleted', or why not: 'alive' (liveness key present) or 'pending' (owns entries)."""
        reply = await self._script(
            ReapKeys(stream=self.keys.stream, alive=self.keys.alive(name), consumers=self.keys.consumers),
            ReapArgs(group=self.keys.group, consumer=name),
        )
        return ReapVerdict.of(reply)

    async def reap(self) -> list[str]:
        """Delete every consumer that is gone and owns nothing; returns their names."""
        return [name for name in await self.candidates() if await self.reap_one(name) is ReapVerdict.DELETED]
