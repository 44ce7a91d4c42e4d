"""One way to open Redis, with time-outs that suit blocking stream reads."""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis

__all__ = ["BLOCK_MS", "connect"]

# XREAD/XREADGROUP BLOCK must stay well under the socket timeout, or redis-py treats the quiet
# wait as a dead socket and retries it (redis-py 8 defaults to a 5 s socket timeout).
SOCKET_TIMEOUT_S = 10.0
BLOCK_MS = 2_000


def connect(url: str, *, max_connections: int = 64, name: str = "ghibli") -> Redis:
    """A client on a pool that waits for a free connection instead of raising.

    Replies stay bytes: images are binary, and the job store decodes hash fields itself.
    """
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=20,
        socket_timeout=SOCKET_TIMEOUT_S,
        socket_connect_timeout=5.0,
        health_check_interval=15,
        client_name=name,
    )
    return Redis(connection_pool=pool)
