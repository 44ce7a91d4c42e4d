"""The HF token pool, shared by every consumer through Redis.

Choosing a token and taking a slot on it is one script (jobs/lua/token_acquire.lua), so two
consumers never both take the last slot; ending a call is another (token_release.lua). A slot is
a lease that the running call renews; a consumer that dies stops renewing, and its slot frees
itself when the lease runs out. Key names and fields: jobs/token_state.py.
"""

from __future__ import annotations

import enum
import secrets
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING

from consumers.tokens import ANONYMOUS, TokenSet
from jobs import token_state as ts
from jobs.redis_conn import as_text
from jobs.script_defs_infra import (
    TOKEN_ACQUIRE,
    TOKEN_RELEASE,
    AcquireVerdict,
    TokenAcquireArgs,
    TokenAcquireKeys,
    TokenReleaseArgs,
    TokenReleaseKeys,
)
from jobs.store import Clock, now_ms

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.client import Pipeline

    from jobs.keys import Keys

__all__ = ["Acquired", "Lease", "Outcome", "TokenPool"]


class Outcome(enum.StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    QUOTA = "quota"
    ABANDONED = "abandoned"  # cancelled or interrupted: no verdict on the token


@dataclass(frozen=True, slots=True)
class Lease:
    alias: str
    call_id: str


@dataclass(frozen=True, slots=True)
class Acquired:
    """What acquire() found: a lease, or why there is none (busy, cooling until, paused until)."""

    lease: Lease | None = None
    verdict: AcquireVerdict = AcquireVerdict.OK
    until_ms: int = 0


class TokenPool:
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        tokens: TokenSet,
        *,
        max_in_flight: int,
        lease_s: float,
        gpu_seconds_per_call: float,
        clock: Clock = now_ms,
    ) -> None:
        self.redis = redis
        self._clock = clock
        self.keys = keys
        self.tokens = tokens
        self.aliases = tokens.aliases
        self.max_in_flight = max_in_flight
        self.lease_ms = int(lease_s * 1000)
        self.gpu_seconds_per_call = gpu_seconds_per_call
        self._acquire = TOKEN_ACQUIRE.load(redis)
        self._release = TOKEN_RELEASE.load(redis)

    async def register(self) -> None:
        """Make this consumer's tokens (and its malformed ones, disabled) visible to operators."""
        now = self._clock()
        async with self.redis.pipeline(transaction=True) as pipe:
            for token in (*self.tokens.usable, *self.tokens.rejected):
                self._queue_register(pipe, token.alias, token.source, token.problem, now)
            if self.tokens.anonymous:
                self._queue_register(pipe, ANONYMOUS, "no token configured", "", now)
            await pipe.execute()

    def _queue_register(self, pipe: Pipeline, alias: str, source: str, problem: str, now: int) -> None:
        key = self.keys.token(alias)
        pipe.zadd(self.keys.tokens, {alias: now}, nx=True)
        pipe.hsetnx(key, ts.F_REGISTERED_AT, now)
        pipe.hset(
            key,
            mapping={
                ts.F_SEEN_AT: now,
                ts.F_SOURCE: source,
                ts.F_MAX_IN_FLIGHT: self.max_in_flight,
                ts.F_DISABLED: "1" if problem else "0",
                ts.F_PROBLEM: problem,
            },
        )

    async def acquire(self, exclude: Collection[str] = ()) -> Acquired:
        """Take a slot on the best token, or say why none is available (never waits)."""
        call_id = secrets.token_hex(8)
        token_keys: list[str] = []
        token_args: list[str] = []
        for alias in self.aliases:
            token_keys += [self.keys.token(alias), ts.leases_key(self.keys, alias)]
            token_args += [alias, "1" if alias in exclude else "0"]
        reply = await self._acquire(
            TokenAcquireKeys(space=ts.space_key(self.keys), tokens=token_keys),
            TokenAcquireArgs(
                now_ms=self._clock(),
                lease_ms=self.lease_ms,
                call_id=call_id,
                max_in_flight=self.max_in_flight,
                tokens=token_args,
            ),
        )
        verdict, value = AcquireVerdict.of(reply), reply[1]
        if verdict is AcquireVerdict.OK:
            return Acquired(Lease(as_text(value), call_id))
        return Acquired(verdict=verdict, until_ms=int(value))

    async def renew(self, lease: Lease) -> bool:
        """Push the lease's expiry out; False if it had already expired and been dropped."""
        changed = await self.redis.zadd(
            ts.leases_key(self.keys, lease.alias),
            {lease.call_id: self._clock() + self.lease_ms},
            xx=True,
            ch=True,
        )
        return bool(changed)

    async def release(
        self,
        lease: Lease,
        outcome: Outcome,
        *,
        error_code: str = "",
        cooldown_until_ms: int = 0,
        requested_s: float = 0,
        charge_gpu: bool = False,
    ) -> None:
        now = self._clock()
        await self._release(
            TokenReleaseKeys(
                token=self.keys.token(lease.alias), leases=ts.leases_key(self.keys, lease.alias)
            ),
            TokenReleaseArgs(
                call_id=lease.call_id,
                now_ms=now,
                outcome=outcome.value,
                error_code=error_code,
                cooldown_until_ms=cooldown_until_ms,
                requested_s=requested_s,
                charge_gpu="1" if charge_gpu else "0",
                default_gpu_s=self.gpu_seconds_per_call,
                day=ts.gpu_day(now),
            ),
        )

    async def set_space(self, **fields: object) -> None:
        """Record the Space's readiness or the breaker in the shared `space` hash."""
        await self.redis.hset(ts.space_key(self.keys), mapping={k: str(v) for k, v in fields.items()})
