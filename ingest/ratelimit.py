"""Per-client rate limits kept in Redis, so every ingest process (and machine) counts together.

A token bucket per (client, class of request) decided by one Lua script (jobs/lua/ratelimit.lua):
no read-then-write race between processes, no clock skew between machines. Clients are stored as a
hash of their identity (address or key id), never the identity itself.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from jobs.script_defs_infra import RATELIMIT, RateLimitArgs, RateLimitKeys

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from jobs.keys import Keys

__all__ = ["Decision", "RateLimiter"]


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    retry_after_s: float

    @property
    def retry_after_header(self) -> str:
        """Whole seconds, rounded up: a client that waits this long is let in."""
        return str(max(1, math.ceil(self.retry_after_s)))


class RateLimiter:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._keys = keys
        self._script = RATELIMIT.load(redis)

    async def hit(self, bucket: str, client: str, per_minute: int, *, cost: int = 1) -> Decision:
        """Spend `cost` tokens of `client`'s bucket `bucket` (capacity and refill: per_minute a minute).

        A cost above the capacity is spent as the whole capacity: it must stay possible at all."""
        digest = hashlib.sha256(client.encode()).hexdigest()[:24]
        interval_ms = max(1, 60_000 // per_minute)
        allowed, remaining, retry_ms = await self._script(
            RateLimitKeys(bucket=self._keys.rate_limit(f"{bucket}:{digest}")),
            RateLimitArgs(interval_ms=interval_ms, capacity=per_minute, cost=max(1, min(cost, per_minute))),
        )
        return Decision(
            allowed=bool(int(allowed)),
            limit=per_minute,
            remaining=max(0, int(remaining)),
            retry_after_s=int(retry_ms) / 1000,
        )
