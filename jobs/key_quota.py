"""How many unfinished jobs an API key has, and a slot for one more (its `max_unfinished`).

Each key has a ZSET of its job ids. Nothing has to remove a job when it finishes (consumers know
nothing of keys): the admission script drops members whose job is terminal, expired or erased
before it counts. A submission first takes a *reservation* (so two racing submissions cannot both
take the last slot), then turns it into its job id, or gives it back when nothing was queued. A
reservation of a process that died in between lapses after RESERVATION_MS.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio

from jobs.scripts import load_script
from jobs.store import now_ms

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from jobs.apikeys import ApiKey
    from jobs.keys import Keys

__all__ = ["Slot", "TooManyUnfinished", "UnfinishedJobs"]

RESERVATION_MS = 120_000


class TooManyUnfinished(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"at most {limit} unfinished jobs")
        self.limit = limit


class Slot:
    """A reserved place; `hold(job_id)` keeps it for that job, otherwise it is given back."""

    def __init__(self) -> None:
        self.job_id: str | None = None

    def hold(self, job_id: str) -> None:
        self.job_id = job_id


class UnfinishedJobs:
    def __init__(self, redis: Redis, keys: Keys, *, ttl_s: int) -> None:
        self._redis = redis
        self._keys = keys
        self._ttl_s = ttl_s
        self._admit = load_script(redis, "apikey_admit")

    def key_of(self, key_id: str) -> str:
        return f"{self._keys.prefix}key:{key_id}:open"

    async def count(self, key_id: str) -> int:
        """Members of the set, as last pruned (an upper bound of the unfinished jobs)."""
        return int(await self._redis.zcard(self.key_of(key_id)))

    @asynccontextmanager
    async def slot(self, key: ApiKey | None) -> AsyncIterator[Slot]:
        """Room for one more job of `key`; raises TooManyUnfinished. No key or no limit: no check."""
        slot = Slot()
        if key is None or key.max_unfinished <= 0:
            yield slot
            return
        name = self.key_of(key.id)
        reservation = "r:" + secrets.token_hex(8)
        admitted, _count = await self._admit(
            keys=[name],
            args=[self._keys.job(""), key.max_unfinished, reservation, now_ms(), RESERVATION_MS, self._ttl_s],
        )
        if not int(admitted):
            raise TooManyUnfinished(key.max_unfinished)
        try:
            yield slot
        finally:
            # Shielded: a cancelled request must still give its reservation back or keep its job.
            with anyio.CancelScope(shield=True):
                async with self._redis.pipeline(transaction=True) as pipe:
                    pipe.zrem(name, reservation)
                    if slot.job_id is not None:
                        pipe.zadd(name, {slot.job_id: now_ms()})
                        pipe.expire(name, self._ttl_s)
                    await pipe.execute()
