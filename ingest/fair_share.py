"""Fair share per client: how many unfinished jobs it has, and how many bytes it has had stored.

A client is an API key, or an address bucket for anonymous callers (an IPv4 address or an IPv6
/64, ingest/client_ip.py), so one client can never take the whole backlog or fill Redis:

- unfinished jobs: each client has a ZSET of its job ids. Nothing has to remove a job when it
  finishes (consumers know nothing of clients): the admission script drops members whose job is
  terminal, expired or erased before it counts. A submission first takes a *reservation* (so two
  racing submissions cannot both take the last slot), then turns it into its job id, or gives it
  back when nothing was queued. A reservation of a process that died in between lapses after
  RESERVATION_MS. Limits: an API key's `max_unfinished`, GHIBLI_MAX_UNFINISHED_PER_CLIENT for
  anonymous clients.
- stored bytes: a counter per client that expires one window (the blob TTL) after its first
  upload; an upload that would take it past GHIBLI_MAX_STORED_BYTES_PER_CLIENT is refused until
  the window ends.

Clients are stored as a hash of their identity, never the address itself.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio

from jobs.script_defs_infra import (
    ADMIT_UNFINISHED,
    CHARGE_STORED,
    AdmitArgs,
    AdmitKeys,
    ChargeArgs,
    ChargeKeys,
)
from jobs.store import now_ms

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from jobs.keys import Keys

__all__ = ["Slot", "StoredBytes", "TooManyUnfinished", "UnfinishedJobs", "client_digest"]

RESERVATION_MS = 120_000


def client_digest(client: str) -> str:
    return hashlib.sha256(client.encode()).hexdigest()[:24]


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
        self._admit = ADMIT_UNFINISHED.load(redis)

    def key_of(self, client: str) -> str:
        """The ZSET of one client's jobs: `key:<id>` for an API key, else a hash of the client."""
        if client.startswith("key:"):
            return f"{self._keys.prefix}{client}:open"
        return f"{self._keys.prefix}client:{client_digest(client)}:open"

    async def count(self, client: str) -> int:
        """Members of the set, as last pruned (an upper bound of the unfinished jobs)."""
        return int(await self._redis.zcard(self.key_of(client)))

    @asynccontextmanager
    async def slot(self, client: str, limit: int) -> AsyncIterator[Slot]:
        """Room for one more job of `client`; raises TooManyUnfinished. A limit of 0: no check."""
        slot = Slot()
        if limit <= 0:
            yield slot
            return
        name = self.key_of(client)
        reservation = "r:" + secrets.token_hex(8)
        admitted, _count = await self._admit(
            AdmitKeys(open=name),
            AdmitArgs(
                job_key_prefix=self._keys.job(""),
                limit=limit,
                reservation=reservation,
                now_ms=now_ms(),
                reservation_ttl_ms=RESERVATION_MS,
                ttl_s=self._ttl_s,
            ),
        )
        if not int(admitted):
            raise TooManyUnfinished(limit)
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


@dataclass(frozen=True, slots=True)
class StorageDecision:
    allowed: bool
    used: int
    retry_after_s: int


class StoredBytes:
    """Bytes a client has had stored in the current window (one per blob TTL, from its first upload)."""

    def __init__(self, redis: Redis, keys: Keys, *, window_s: int) -> None:
        self._keys = keys
        self._window_s = window_s
        self._charge = CHARGE_STORED.load(redis)

    def key_of(self, client: str) -> str:
        return f"{self._keys.prefix}stored:{client_digest(client)}"

    async def charge(self, client: str, size: int, limit: int) -> StorageDecision:
        """Count `size` more bytes for `client`, unless that takes it past `limit` (0: no limit)."""
        if limit <= 0:
            return StorageDecision(True, 0, 0)
        allowed, used, left_ms = await self._charge(
            ChargeKeys(counter=self.key_of(client)),
            ChargeArgs(size=size, limit=limit, window_ms=self._window_s * 1000),
        )
        return StorageDecision(bool(int(allowed)), int(used), max(1, -(-int(left_ms) // 1000)))
