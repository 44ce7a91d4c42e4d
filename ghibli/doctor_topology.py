"""What `ghibli doctor` says about Redis's topology: the primary in use, its replicas, the sentinels
or the cluster slot, and whether durable acknowledgements (GHIBLI_DURABLE_*) can work there."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ghibli.findings import Finding, fail, ok, warn
from jobs.durable import Durability, DurabilityUnavailable
from jobs.redis_topology import cluster_of, primary_in_use, server_info

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from jobs.keys import Keys
    from jobs.settings import Settings

__all__ = ["check_topology"]


async def check_topology(redis: Redis, keys: Keys, settings: Settings) -> list[Finding]:
    primary = await primary_in_use(redis, keys.stream)
    replication = await server_info(redis, keys.stream, "replication")
    replicas = int(replication.get("connected_slaves", 0))
    where = f"{primary.topology}: primary in use {primary.address}, {replicas} replica(s) connected"
    found: list[Finding] = []
    cluster = cluster_of(redis)
    if cluster is not None:
        where += f"; the jobs' slot {cluster.keyslot(keys.stream)} ({keys.prefix}) lives there"
    if primary.topology == "sentinel":
        reachable, known = await _sentinels(redis)
        where += f"; {reachable} of {known} sentinel(s) answer"
        if reachable < 2:
            found.append(
                warn(
                    "redis.topology",
                    f"only {reachable} of the {known} sentinel(s) in REDIS_URL answer: a fail-over "
                    "needs a quorum.",
                    "Run at least three sentinels (quorum 2) and list them all in REDIS_URL.",
                )
            )
    if primary.role != "master":
        found.append(
            fail(
                "redis.topology",
                f"{primary.address} is a {primary.role}, not the primary: a fail-over is under way, or "
                "REDIS_URL points at a replica.",
                "Wait a few seconds and run the doctor again; if it stays so, check REDIS_URL and "
                "the sentinels.",
            )
        )
    return [ok("redis.topology", where), *found, *await _durability(redis, keys, settings, replicas)]


async def _sentinels(redis: Redis) -> tuple[int, int]:
    """Sentinels of the URL that answer a PING, of those listed."""
    pool: Any = redis.connection_pool  # redis-py leaves the Sentinel pool untyped
    clients: list[Redis] = list(pool.sentinel_manager.sentinels)
    reachable = 0
    for client in clients:
        try:
            await client.ping()
            reachable += 1
        except Exception:  # noqa: BLE001, S112 - an unreachable sentinel is what is being counted
            continue
    return reachable, len(clients)


async def _durability(redis: Redis, keys: Keys, settings: Settings, replicas: int) -> list[Finding]:
    durability = Durability.from_settings(redis, keys, settings)
    if not durability.enabled:
        if replicas:
            return [
                ok(
                    "redis.durability",
                    "durable acknowledgements off: a fail-over can lose the last writes before it "
                    "(GHIBLI_DURABLE_REPLICAS, docs/redis-ha.md)",
                )
            ]
        return []
    try:
        await durability.check()
    except DurabilityUnavailable as exc:
        return [fail("redis.durability", str(exc), "See docs/redis-ha.md (durable acknowledgements).")]
    if replicas < settings.durable_replicas:
        return [
            fail(
                "redis.durability",
                f"GHIBLI_DURABLE_REPLICAS is {settings.durable_replicas} but the primary has {replicas} "
                "replica(s) connected: every submission waits and is refused (503 not_durable).",
                "Start the replicas, or lower GHIBLI_DURABLE_REPLICAS.",
            )
        ]
    return [ok("redis.durability", f"durable acknowledgements: {durability.describe()}")]
