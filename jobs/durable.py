"""Durable acknowledgements: a write is relied on only once replicas (and the AOF) have it.

Redis replicates asynchronously: a primary that dies can take its last writes with it, and the
replica that replaces it never saw them. With GHIBLI_DURABLE_REPLICAS=N the writes that others rely
on (a submission before its 202; a job's end before its consumer counts it done) are followed by
`WAIT N timeout`, or by `WAITAOF 1 N timeout` with GHIBLI_DURABLE_FSYNC (Redis >= 7.2).

WAIT counts the replicas that have every write of *its own connection*, so the script and the WAIT
travel in one pipeline, which redis-py sends on one connection (on a cluster: the slot owner's).
A write the replicas did not confirm in time is still on the primary; the caller learns it from
`NotDurable` and decides (ingest answers 503 not_durable; a consumer logs and counts it).

With Sentinel, a replica's acknowledgement is not the whole story: while a fail-over is under way
(a forced one, say) the old primary keeps accepting writes and its other replica may acknowledge
them, yet the promoted replica never gets them. So after the WAIT the sentinels are asked once more
(jobs/redis_sentinel.py): a write counts only if the primary it went to is still the primary.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from redis.exceptions import NoScriptError, ResponseError

from jobs.redis_sentinel import confirm_primary, sentinel_pool
from jobs.redis_topology import on_slot_owner, server_info

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

    from jobs.keys import Keys
    from jobs.settings import Settings

__all__ = ["Durability", "DurabilityUnavailable", "NotDurable"]


class NotDurable(Exception):
    """The write happened on the primary, but fewer replicas (or AOFs) than asked confirmed it."""

    def __init__(self, reply: Any, confirmed: str, wanted: str) -> None:
        super().__init__(f"confirmed by {confirmed}, wanted {wanted}")
        self.reply = reply  # the script's own answer: the write did happen on the primary
        self.confirmed = confirmed
        self.wanted = wanted


class DurabilityUnavailable(RuntimeError):
    """The server cannot give what the settings ask (no WAITAOF, or no AOF to fsync)."""


class Durability:
    def __init__(
        self,
        redis: Redis,
        anchor_key: str,
        *,
        replicas: int = 0,
        timeout_ms: int = 1_000,
        fsync: bool = False,
    ) -> None:
        self._redis = redis
        self._anchor = anchor_key  # a key of the pipeline's slot: WAIT goes to its owner
        self.replicas = replicas
        self.timeout_ms = timeout_ms
        self.fsync = fsync

    @classmethod
    def from_settings(cls, redis: Redis, keys: Keys, settings: Settings) -> Durability:
        return cls(
            redis,
            keys.durable,
            replicas=settings.durable_replicas,
            timeout_ms=settings.durable_timeout_ms,
            fsync=settings.durable_fsync,
        )

    @property
    def enabled(self) -> bool:
        return self.replicas > 0 or self.fsync

    def describe(self) -> str:
        if not self.enabled:
            return "off"
        how = f"WAITAOF 1 {self.replicas}" if self.fsync else f"WAIT {self.replicas}"
        return f"{how} (timeout {self.timeout_ms} ms)"

    def _command(self) -> tuple[Any, ...]:
        if self.fsync:
            return ("WAITAOF", 1, self.replicas, self.timeout_ms)
        return ("WAIT", self.replicas, self.timeout_ms)

    async def check(self) -> None:
        """Refuse settings this server cannot honour, at start-up rather than at the first write."""
        if not self.fsync:
            return
        target = await on_slot_owner(self._redis, self._anchor)
        command: Any = self._redis.execute_command  # untyped in redis-py
        try:
            await command("WAITAOF", 0, 0, 0, **target)  # asks for nothing: answers at once where known
        except ResponseError as exc:
            if "unknown command" not in str(exc).lower():
                raise
            version = (await server_info(self._redis, self._anchor)).get("redis_version", "?")
            raise DurabilityUnavailable(
                f"GHIBLI_DURABLE_FSYNC needs WAITAOF (Redis >= 7.2); this Redis is {version}. "
                "Turn it off, or upgrade Redis."
            ) from None
        persistence = await server_info(self._redis, self._anchor, "persistence")
        if not int(persistence.get("aof_enabled", 0)):
            raise DurabilityUnavailable(
                "GHIBLI_DURABLE_FSYNC needs the append-only file on the primary (appendonly yes)."
            )

    async def run(self, script: AsyncScript, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run a script and wait until its writes are durable; its reply, or NotDurable carrying it."""
        if not self.enabled:
            return await script(keys=list(keys), args=list(args))
        target = await on_slot_owner(self._redis, keys[0])
        for _ in range(2):
            before = await self._primary()
            async with self._redis.pipeline(transaction=False) as pipe:
                # execute_command: the cluster pipeline blocks its evalsha() method, not the command.
                pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
                pipe.execute_command(*self._command(), **target)
                reply, confirmed = await pipe.execute(raise_on_error=False)
            if isinstance(reply, NoScriptError):  # nothing ran: load it (every primary) and go again
                await self._redis.script_load(script.script)
                continue
            if isinstance(reply, Exception):
                raise reply
            await self._verify(reply, confirmed, before)
            return reply
        raise NoScriptError("the script vanished from Redis twice in a row")

    async def sync(self) -> None:
        """Wait until every write made so far (by any connection) is durable.

        For answers that wrote nothing themselves but vouch for an earlier write, such as an
        idempotent replay of a submission whose first answer was 503 not_durable. One small write
        of the anchor key moves this connection's replication offset to the present."""
        if not self.enabled:
            return
        target = await on_slot_owner(self._redis, self._anchor)
        before = await self._primary()
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.incr(self._anchor)
            pipe.execute_command(*self._command(), **target)
            _, confirmed = await pipe.execute(raise_on_error=False)
        await self._verify(None, confirmed, before)

    async def _primary(self) -> tuple[str, int] | None:
        """With Sentinel, the primary the pool's connections go to now (asked for if not known)."""
        pool = sentinel_pool(self._redis)
        if pool is None:
            return None
        address: tuple[str, int] | None = pool.master_address
        return address if address is not None else await pool.check_primary()

    async def _verify(self, reply: Any, confirmed: Any, before: tuple[str, int] | None) -> None:
        if isinstance(confirmed, Exception):
            raise confirmed
        self._count(reply, confirmed)
        if not await confirm_primary(self._redis, before):
            raise NotDurable(reply, "a primary that is being replaced", "the current primary")

    def _count(self, reply: Any, confirmed: Any) -> None:
        if isinstance(confirmed, dict):  # a cluster client's per-node answer
            (confirmed,) = confirmed.values()
        if self.fsync:
            local, replicas = (int(n) for n in confirmed)
            if local < 1 or replicas < self.replicas:
                raise NotDurable(
                    reply, f"local AOF {local}, {replicas} replica(s)", f"local AOF 1, {self.replicas}"
                )
        elif int(confirmed) < self.replicas:
            raise NotDurable(reply, f"{int(confirmed)} replica(s)", f"{self.replicas}")
