"""Commands that go to "a server" rather than to a key, pointed at the server that holds the jobs.

On one server or behind Sentinel there is one primary and these are plain calls. On a Redis Cluster
the client sends keyless commands to an arbitrary node by default (INFO, PING), to every primary
(SCAN) or rejects them; here they go to the node that owns the slot of the key prefix's hash tag,
which holds every key of the pipeline. Pass any key of the pipeline (e.g. the jobs stream).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from redis.asyncio.cluster import RedisCluster
from redis.asyncio.sentinel import SentinelConnectionPool

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = [
    "PrimaryInUse",
    "cluster_of",
    "on_slot_owner",
    "primary_in_use",
    "scan_page",
    "server_info",
    "topology_of",
]


def cluster_of(redis: object) -> RedisCluster | None:
    return redis if isinstance(redis, RedisCluster) else None


def topology_of(redis: object) -> str:
    if isinstance(redis, RedisCluster):
        return "cluster"
    pool = getattr(redis, "connection_pool", None)
    return "sentinel" if isinstance(pool, SentinelConnectionPool) else "standalone"


async def on_slot_owner(redis: Redis, key: str) -> dict[str, Any]:
    """Keyword arguments that send a keyless command to the owner of `key`'s slot ({} off a cluster)."""
    cluster = cluster_of(redis)
    if cluster is None:
        return {}
    await cluster.initialize()  # a no-op once the slot map is known
    return {"target_nodes": cluster.get_node_from_key(key)}


async def server_info(redis: Redis, key: str, section: str = "server") -> dict[str, Any]:
    """INFO of the server holding the pipeline's keys."""
    target = await on_slot_owner(redis, key)
    info: dict[str, Any] = await redis.info(section, **target)
    return info


async def scan_page(redis: Redis, key: str, cursor: int, match: str, count: int) -> tuple[int, list[Any]]:
    """One SCAN step on the server holding the pipeline's keys: (next cursor, keys)."""
    target = await on_slot_owner(redis, key)
    reply: Any = await redis.scan(cursor=cursor, match=match, count=count, **target)
    next_cursor, keys = reply
    if isinstance(next_cursor, dict):  # the cluster client reports a cursor per node
        (next_cursor,) = next_cursor.values()
    return int(next_cursor), list(keys)


@dataclass(frozen=True, slots=True)
class PrimaryInUse:
    topology: str  # standalone | sentinel | cluster
    address: str  # host:port (or the socket path) of the server the pipeline's writes go to
    role: str  # that server's own view: master, or slave while a fail-over is under way


async def primary_in_use(redis: Redis, key: str) -> PrimaryInUse:
    """Which server the pipeline's writes go to now, and whether it still thinks it is the primary.

    With Sentinel this asks the sentinels (one small command), which also makes the pool drop its
    idle connections to a primary that was replaced.
    """
    topology = topology_of(redis)
    cluster = cluster_of(redis)
    if cluster is not None:
        await cluster.initialize()
        node = cluster.get_node_from_key(key)
        address = node.name if node is not None else "none (the slot has no owner)"
    elif isinstance(redis.connection_pool, SentinelConnectionPool):
        pool: Any = redis.connection_pool  # redis-py leaves the Sentinel pool untyped
        host, port = await pool.get_master_address()
        address = f"{host}:{port}"
    else:
        kwargs = redis.connection_pool.connection_kwargs
        address = str(kwargs["path"]) if "path" in kwargs else f"{kwargs.get('host')}:{kwargs.get('port')}"
    info = await server_info(redis, key, "replication")
    return PrimaryInUse(topology, address, str(info.get("role", "unknown")))
