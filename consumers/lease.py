"""This consumer's hold on its name and on the entries it runs.

A lease instead of a fixed idle timeout: every lease/3 the consumer renews the entries it is
running with a fenced `XCLAIM <id> 0 JUSTID` (only entries it still owns; the others were taken
over and their calls must stop), and refreshes its liveness key. Other consumers take an entry
over only when it has been idle for a whole lease, i.e. after three missed renewals: the job may
run for many minutes, yet a dead consumer's jobs move on within one lease.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from jobs.scripts import load_script
from jobs.store import now_ms

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from jobs.keys import Keys

__all__ = ["RELEASE_IDLE_MS", "Leases"]

# Released entries look idle this long: longer than any sane lease, so every reclaimer takes them
# on its next pass, whatever its own lease setting.
RELEASE_IDLE_MS = 3_600_000


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Leases:
    def __init__(self, redis: Redis, keys: Keys, consumer: str, lease_s: float) -> None:
        self.redis = redis
        self.keys = keys
        self.consumer = consumer
        self.lease_ms = int(lease_s * 1000)
        self.instance = secrets.token_hex(8)
        self._renew = load_script(redis, "renew")
        self._release = load_script(redis, "release")

    @property
    def alive_key(self) -> str:
        return self.keys.alive(self.consumer)

    async def take_name(self) -> bool:
        """Claim the consumer name: False while another live process holds it."""
        taken = await self.redis.set(self.alive_key, self.instance, nx=True, px=self.lease_ms)
        return bool(taken)

    async def renew(self, entry_ids: list[str]) -> list[str]:
        """Renew the liveness key and the entries still owned; returns the ids no longer owned."""
        lost = await self._renew(
            keys=[self.keys.stream, self.alive_key, self.keys.consumers],
            args=[self.keys.group, self.consumer, self.lease_ms, now_ms(), self.instance, *entry_ids],
        )
        return [_text(entry) for entry in lost]

    async def release(self, entry_ids: list[str]) -> int:
        """Make entries this consumer still owns claimable by others at once; returns how many."""
        if not entry_ids:
            return 0
        released = await self._release(
            keys=[self.keys.stream],
            args=[self.keys.group, self.consumer, RELEASE_IDLE_MS, *entry_ids],
        )
        return int(released)

    async def owned(self, limit: int = 10_000) -> list[str]:
        """Entries pending under this consumer's name (left by a previous process of the same name)."""
        rows = await self.redis.xpending_range(
            self.keys.stream, self.keys.group, min="-", max="+", count=limit, consumername=self.consumer
        )
        return [_text(row["message_id"]) for row in rows]

    async def goodbye(self) -> None:
        """Drop the liveness key and heartbeat, so reapers may remove this consumer once it owns nothing."""
        await self.redis.delete(self.alive_key)
        await self.redis.zrem(self.keys.consumers, self.consumer)
