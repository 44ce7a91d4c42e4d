"""Riding out Redis outages: which errors mean "Redis is away", and how long to wait between tries.

A consumer never dies because Redis restarted or failed over: every loop catches these (the list is
jobs.redis_conn.REDIS_DOWN, shared with ingest), waits a short jittered back-off and asks again
(redis-py reconnects on the next command; with Sentinel or Cluster, to the new primary). The
back-off stays short (at most a couple of seconds) because after an outage the first thing to do
is renew leases, and every second of downtime already counts as idle time of the entries this
consumer owns.
"""

from __future__ import annotations

import random

from jobs.redis_conn import REDIS_DOWN

__all__ = ["REDIS_DOWN", "Backoff"]


class Backoff:
    """Exponential back-off with full jitter, reset after a success."""

    def __init__(self, base_s: float = 0.1, cap_s: float = 2.0) -> None:
        self._base_s = base_s
        self._cap_s = cap_s
        self._failures = 0

    @property
    def failing(self) -> bool:
        return self._failures > 0

    def next_delay(self) -> float:
        self._failures += 1
        ceiling = min(self._cap_s, self._base_s * 2 ** min(self._failures, 16))
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - spreading retries, not crypto

    def reset(self) -> None:
        self._failures = 0
