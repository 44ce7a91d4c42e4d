"""One way to open Redis, plain, Sentinel or Cluster, with time-outs that suit blocking stream reads.

Every process (ingest, consumers, the webhook dispatcher, the exporter, the CLI) builds its clients
here, from REDIS_URL (the forms are in jobs/redis_url.py and docs/redis-ha.md), so all of them follow
a fail-over the same way:

- Sentinel: redis-py's Sentinel client with a pool that follows the primary closely
  (jobs/redis_sentinel.py): no connection to a primary the sentinels replaced or are replacing.
  Callers see `REDIS_DOWN` errors during the switch and retry with their usual outage back-off
  (jobs/backoff.py).
- Cluster: redis-py's cluster client; it follows MOVED/ASK and routes each command and script by its
  key's slot. All keys share one hash tag, so everything goes to the node owning that slot.

A cluster client is handed out typed as `Redis`: it is not a subclass, but it has the same command
methods (redis-py's cluster command mixins), and the code is written against those. The few commands
that go to "a node" rather than "the key's node" on a cluster (INFO, SCAN, WAIT) are sent
through jobs/redis_topology.py, which points them at the slot's owner.
"""

from __future__ import annotations

from typing import Any, cast

import redis as redis_sync
import redis.cluster as sync_cluster
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.exceptions import (
    ClusterDownError,
    ReadOnlyError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from jobs.redis_sentinel import BlockingSentinelPool, Sentinels, SyncSentinelPool, SyncSentinels
from jobs.redis_url import RedisTarget, parse_redis_url

__all__ = ["BLOCK_MS", "REDIS_DOWN", "as_text", "connect", "connect_sync", "is_unblocked_by_failover"]

# XREAD/XREADGROUP BLOCK must stay well under the socket timeout, or redis-py treats the quiet
# wait as a dead socket and retries it (redis-py 8 defaults to a 5 s socket timeout).
SOCKET_TIMEOUT_S = 10.0
BLOCK_MS = 2_000
# Sentinels answer one small command per new connection; a dead one must not hold that up long.
SENTINEL_TIMEOUT_S = 2.0

# "Redis is away for now": a restart (BusyLoadingError is a ConnectionError too), a fail-over in
# progress (Sentinel: MasterNotFoundError, a ConnectionError; READONLY from a primary that was just
# demoted; Cluster: CLUSTERDOWN, TRYAGAIN, a slot without an owner yet). Every loop waits these out.
REDIS_DOWN: tuple[type[Exception], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    ConnectionError,
    ReadOnlyError,
    ClusterDownError,
    TryAgainError,
    SlotNotCoveredError,
)


_SYNC_CLUSTER_NODE: Any = sync_cluster.ClusterNode  # untyped in redis-py


def as_text(value: object) -> str:
    """A Redis reply value as text: bytes from a client without decode_responses, else str()."""
    return value.decode() if isinstance(value, bytes) else str(value)


def is_unblocked_by_failover(exc: BaseException) -> bool:
    """A blocked XREAD/XREADGROUP that Redis ended because its primary became a replica."""
    return str(exc).startswith("UNBLOCKED") and "state changed" in str(exc)


def _common(name: str, socket_timeout: float) -> dict[str, Any]:
    return {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": 5.0,
        "health_check_interval": 15,
        "client_name": name,
    }


def _sentinel_kwargs(target: RedisTarget) -> dict[str, Any]:
    return {
        "username": target.sentinel_username,
        "password": target.sentinel_password,
        "socket_timeout": SENTINEL_TIMEOUT_S,
        "socket_connect_timeout": SENTINEL_TIMEOUT_S,
    }


def connect(url: str, *, max_connections: int = 64, name: str = "ghibli") -> Redis:
    """A client that waits for a free connection instead of raising (on a cluster: at most
    `max_connections` per node, and it raises MaxConnectionsError, a REDIS_DOWN error, beyond).

    Replies stay bytes: images are binary, and the job store decodes hash fields itself.
    """
    target = parse_redis_url(url)
    common = _common(name, SOCKET_TIMEOUT_S)
    if target.topology == "sentinel":
        sentinel = Sentinels(
            list(target.nodes),
            sentinel_kwargs=_sentinel_kwargs(target),
            username=target.username,
            password=target.password,
            db=target.db,
            **common,
        )
        client: Redis = sentinel.master_for(
            target.service,
            connection_pool_class=BlockingSentinelPool,
            max_connections=max_connections,
            timeout=20,
        )
        return client
    if target.topology == "cluster":
        cluster = RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in target.nodes],
            username=target.username,
            password=target.password,
            max_connections=max_connections,
            # Only the jobs' slot matters here; whether the cluster serves others is the server's call.
            require_full_coverage=False,
            **common,
        )
        return cast("Redis", cluster)
    pool = BlockingConnectionPool.from_url(url, max_connections=max_connections, timeout=20, **common)
    return Redis(connection_pool=pool)


def connect_sync(
    url: str, *, name: str, decode_responses: bool = False, socket_timeout: float = 5.0
) -> redis_sync.Redis:
    """A synchronous client (the metrics exporter answers scrapes on a plain thread)."""
    target = parse_redis_url(url)
    common = {**_common(name, socket_timeout), "socket_connect_timeout": 3.0}
    if target.topology == "sentinel":
        sentinel = SyncSentinels(
            list(target.nodes),
            sentinel_kwargs=_sentinel_kwargs(target),
            username=target.username,
            password=target.password,
            db=target.db,
            decode_responses=decode_responses,
            **common,
        )
        client: redis_sync.Redis = sentinel.master_for(target.service, connection_pool_class=SyncSentinelPool)
        return client
    if target.topology == "cluster":
        cluster = sync_cluster.RedisCluster(
            startup_nodes=[_SYNC_CLUSTER_NODE(host, port) for host, port in target.nodes],
            username=target.username,
            password=target.password,
            require_full_coverage=False,
            decode_responses=decode_responses,
            **common,
        )
        return cast("redis_sync.Redis", cluster)
    return redis_sync.Redis.from_url(url, decode_responses=decode_responses, **common)
