"""This consumer's hold on its name (a heartbeat) and on the entries it runs (leases).

Two clocks, as Sidekiq Pro and Temporal keep them apart. The heartbeat answers "is this process
alive?": every `heartbeat` seconds (1 s) it refreshes its liveness key, whose TTL is the heartbeat
timeout (5 s); once the key has expired, other consumers take over everything it owns at once
(consumers/recovery.py). Redis expires the key by its own clock, so hosts' clocks never meet.

The lease answers "is this entry still worked on?": every lease/3 the consumer renews the entries
it is running with a fenced `XCLAIM <id> 0 JUSTID` (only entries it still owns; the others were
taken over and their calls must stop). An entry idle for a whole lease (three missed renewals) is
taken over even from a consumer whose heartbeat is fine: a run that crashed or was abandoned
leaves its entry pending under a live consumer, and consumers of older versions send no heartbeat.
A job may run for many minutes; the lease stays long, the heartbeat short.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import anyio
from redis.exceptions import ResponseError

from jobs.backoff import Backoff
from jobs.logs import get_logger
from jobs.redis_conn import REDIS_DOWN, as_text
from jobs.script_defs_infra import (
    HEARTBEAT,
    RELEASE,
    RENEW,
    HeartbeatArgs,
    HeartbeatKeys,
    ReleaseArgs,
    RenewArgs,
    StreamKeys,
)
from metrics.definitions import CONSUMER_HEARTBEAT_GAP

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from jobs.keys import Keys

__all__ = ["RELEASE_IDLE_MS", "Leases"]

log = get_logger("consumers.lease")

# Released entries look idle this long: longer than any sane lease, so every reclaimer takes them
# on its next pass, whatever its own lease setting.
RELEASE_IDLE_MS = 3_600_000


class Leases:
    def __init__(
        self, redis: Redis, keys: Keys, consumer: str, lease_s: float, heartbeat_timeout_s: float = 5.0
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.consumer = consumer
        self.lease_ms = int(lease_s * 1000)
        self.heartbeat_timeout_ms = int(heartbeat_timeout_s * 1000)
        self.instance = secrets.token_hex(8)
        self._beat = HEARTBEAT.load(redis)
        self._renew = RENEW.load(redis)
        self._release = RELEASE.load(redis)

    @property
    def alive_key(self) -> str:
        return self.keys.alive(self.consumer)

    async def take_name(self) -> bool:
        """Claim the consumer name: False while another live process holds it (True again if this
        process took it before a start-up step failed and was retried)."""
        taken = await self.redis.set(self.alive_key, self.instance, nx=True, px=self.heartbeat_timeout_ms)
        return bool(taken) or await self.redis.get(self.alive_key) == self.instance.encode()

    async def beat(self) -> bool:
        """Refresh the liveness key; False if another process holds this name now (stop, then)."""
        kept = await self._beat(
            HeartbeatKeys(alive=self.alive_key, consumers=self.keys.consumers),
            HeartbeatArgs(
                consumer=self.consumer, instance=self.instance, timeout_ms=self.heartbeat_timeout_ms
            ),
        )
        return bool(int(kept))

    async def keep_beating(self, interval_s: float, on_outage: Callable[[BaseException], None]) -> None:
        """Beat every `interval_s` while Redis answers; returns only when the name is lost.

        Records the time between beats that Redis answered at the first try
        (ghibli_consumer_heartbeat_gap_seconds), and warns when one comes later than half the
        timeout: a blocked event loop or a starved process risks having its jobs taken over while
        it lives.
        """
        backoff = Backoff()
        timeout_s = self.heartbeat_timeout_ms / 1000
        last = -math.inf
        while True:
            try:
                kept = await self.beat()
            except REDIS_DOWN as exc:
                on_outage(exc)
                await anyio.sleep(backoff.next_delay())
                continue
            except ResponseError as exc:  # e.g. OOM under maxmemory: keep trying, never crash
                log.error("heartbeat refused", error=str(exc))
                await anyio.sleep(backoff.next_delay())
                continue
            now = time.monotonic()
            if last > -math.inf and not backoff.failing:  # an outage is Redis's gap, not ours
                CONSUMER_HEARTBEAT_GAP.observe(now - last)
                if now - last > timeout_s / 2:
                    log.warning("heartbeat late", gap_s=round(now - last, 2), heartbeat_timeout_s=timeout_s)
            backoff.reset()
            last = now
            if not kept:
                return
            await anyio.sleep(interval_s)

    async def renew(self, entry_ids: list[str]) -> list[str]:
        """Renew the leases of the entries still owned; returns the ids no longer owned."""
        lost = await self._renew(
            StreamKeys(stream=self.keys.stream),
            RenewArgs(group=self.keys.group, consumer=self.consumer, entry_ids=entry_ids),
        )
        return [as_text(entry) for entry in lost]

    async def release(self, entry_ids: list[str]) -> int:
        """Make entries this consumer still owns claimable by others at once; returns how many."""
        if not entry_ids:
            return 0
        released = await self._release(
            StreamKeys(stream=self.keys.stream),
            ReleaseArgs(
                group=self.keys.group, consumer=self.consumer, idle_ms=RELEASE_IDLE_MS, entry_ids=entry_ids
            ),
        )
        return int(released)

    async def owned(self, limit: int = 10_000) -> list[str]:
        """Entries pending under this consumer's name (left by a previous process of the same name)."""
        rows = await self.redis.xpending_range(
            self.keys.stream, self.keys.group, min="-", max="+", count=limit, consumername=self.consumer
        )
        return [as_text(row["message_id"]) for row in rows]

    async def goodbye(self) -> None:
        """Drop the liveness key and mark the heartbeat expired: whatever this consumer still owns
        (a hand-back that failed) is taken over at once, and it is removed once it owns nothing."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(self.alive_key)
            pipe.zadd(self.keys.consumers, {self.consumer: 0})
            await pipe.execute()
