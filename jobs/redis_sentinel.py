"""Following a Sentinel-managed primary closely enough that writes are not lost to a switch.

redis-py's Sentinel client asks the sentinels for the primary when it opens a connection, and
keeps using open connections until one meets a READONLY reply. That is not enough here: during a
fail-over, and after a forced one (`SENTINEL FAILOVER`) until the sentinels reconfigure it, which
takes seconds, the old primary still accepts writes, and the fail-over then throws them away.
So the pool here:

- asks every sentinel at once, at most once a second (and on each new connection); a fail-over in
  progress at any of them means "no primary" (`FailoverInProgress`, a ConnectionError, so callers
  wait it out like any outage), and among the answers the one with the highest config epoch (the
  newest fail-over's result) wins;
- drops idle connections at once when the primary moves, and busy ones when they come back;
- lets a durable write check afterwards that the primary it went to is still the primary
  (`confirm_primary`, used by jobs/durable.py).

Sentinels that do not answer are skipped; if none answers, open connections keep being used (a
primary without sentinels still works), and new ones cannot be opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Iterable, Mapping
from typing import Any

import redis.sentinel as sync_sentinel
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.sentinel import MasterNotFoundError, Sentinel, SentinelConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = [
    "BlockingSentinelPool",
    "FailoverInProgress",
    "Sentinels",
    "SyncSentinelPool",
    "SyncSentinels",
    "choose_primary",
    "confirm_primary",
]

# How often a pool asks the sentinels whether the primary moved.
PRIMARY_CHECK_S = 1.0
_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)


class FailoverInProgress(MasterNotFoundError):
    """A sentinel reports a fail-over of the primary under way: no write should go anywhere yet."""


def _flags(state: Mapping[str, Any]) -> set[str]:
    flags = state.get("flags", "")
    return set(flags) if isinstance(flags, set) else set(str(flags).split(","))


def choose_primary(service: str, masters: Iterable[Mapping[str, Any] | None]) -> tuple[str, int]:
    """The primary from the sentinels' `SENTINEL MASTERS` replies (None: no answer)."""
    states = [m.get(service) for m in masters if m is not None]
    if any(s is not None and "failover_in_progress" in _flags(s) for s in states):
        raise FailoverInProgress(f"fail-over of {service!r} in progress")
    good = [
        s
        for s in states
        if s is not None and s.get("is_master") and not s.get("is_sdown") and not s.get("is_odown")
    ]
    if not good:
        raise MasterNotFoundError(f"No master found for {service!r}")
    best = max(good, key=lambda s: int(s.get("config-epoch", 0)))
    return str(best["ip"]), int(best["port"])


_SENTINEL: Any = Sentinel  # redis-py leaves it untyped
_SYNC_SENTINEL: Any = sync_sentinel.Sentinel


class Sentinels(_SENTINEL):  # type: ignore[misc]
    async def discover_master(self, service_name: str) -> tuple[str, int]:
        async def ask(sentinel: Redis) -> Mapping[str, Any] | None:
            try:
                masters = await sentinel.sentinel_masters()
            except _UNREACHABLE:
                return None
            return masters if isinstance(masters, dict) else None

        replies = await asyncio.gather(*(ask(s) for s in self.sentinels))
        if all(r is None for r in replies):
            raise MasterNotFoundError(f"No sentinel answers for {service_name!r}")
        return choose_primary(service_name, replies)


class SyncSentinels(_SYNC_SENTINEL):  # type: ignore[misc]
    def discover_master(self, service_name: str) -> tuple[str, int]:
        replies: list[Mapping[str, Any] | None] = []
        for sentinel in self.sentinels:
            try:
                replies.append(sentinel.sentinel_masters())
            except _UNREACHABLE:
                replies.append(None)
        if all(r is None for r in replies):
            raise MasterNotFoundError(f"No sentinel answers for {service_name!r}")
        return choose_primary(service_name, replies)


class BlockingSentinelPool(SentinelConnectionPool, BlockingConnectionPool):
    """Sentinel's pool that waits for a free connection (as the plain pool does) instead of
    raising, follows a switch of primary as the module's docstring says, and closes the sentinel
    clients with itself."""

    _checked_at = -math.inf
    _switching = False  # a fail-over is under way: hand out no connection, keep none

    async def check_primary(self) -> tuple[str, int]:
        """Ask the sentinels now; drops connections to a primary they replaced."""
        try:
            address: tuple[str, int] = await self.get_master_address()  # type: ignore[no-untyped-call]
        except FailoverInProgress:
            self._switching = True
            self.master_address = None
            await self.disconnect(inuse_connections=False)
            raise
        self._switching = False
        return address

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        now = time.monotonic()
        if self._switching or now - self._checked_at >= PRIMARY_CHECK_S:
            self._checked_at = now
            try:
                await self.check_primary()
            except FailoverInProgress:
                raise
            except MasterNotFoundError:
                pass  # no sentinel answers: open connections still work, a new one will say so
        return await super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]

    async def release(self, connection: Any) -> None:
        if self._switching or (
            self.master_address is not None and (connection.host, connection.port) != self.master_address
        ):
            await connection.disconnect()  # not to the primary (any more): reconnect on next use
        await super().release(connection)

    async def aclose(self) -> None:
        try:
            await super().aclose()
        finally:
            await self.sentinel_manager.aclose()


class SyncSentinelPool(sync_sentinel.SentinelConnectionPool):
    """The same for the synchronous client (the metrics exporter), without the fail-over refusal:
    it only reads."""

    _checked_at = -math.inf

    def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        now = time.monotonic()
        if now - self._checked_at >= PRIMARY_CHECK_S:
            self._checked_at = now
            with contextlib.suppress(MasterNotFoundError, *_UNREACHABLE):
                self.get_master_address()  # type: ignore[no-untyped-call]
        return super().get_connection(*args, **kwargs)

    def release(self, connection: Any) -> None:
        if self.master_address is not None and (connection.host, connection.port) != self.master_address:
            connection.disconnect()
        super().release(connection)

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.sentinel_manager.close()


def sentinel_pool(redis: Redis) -> BlockingSentinelPool | None:
    pool = getattr(redis, "connection_pool", None)  # a cluster client has none
    return pool if isinstance(pool, BlockingSentinelPool) else None


async def confirm_primary(redis: Redis, before: tuple[str, int] | None) -> bool:
    """Is the primary the sentinels name now (no fail-over under way) the one named before a write?

    With Sentinel only; True for other topologies. A write acknowledged by WAIT survives a fail-over
    that starts afterwards (the sentinels promote the replica that has the most), but not one that
    had already begun: then the sentinels now report it in progress, or another primary."""
    pool = sentinel_pool(redis)
    if pool is None:
        return True
    try:
        return await pool.check_primary() == before
    except MasterNotFoundError:
        return False
