"""The queue's state as Prometheus gauges, read from Redis at each scrape.

A custom collector (not Gauges set by a loop) so every scrape sees Redis as it is now, and a
failed read shows as `ghibli_queue_up 0` with no stale values. It must be registered in exactly
one process (`ghibli metrics-exporter`): queue-wide numbers served by every replica would be
multiplied by sum() in every query.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from redis.exceptions import RedisError

from jobs.logs import get_logger
from metrics.definitions import QUEUE_GAUGES
from metrics.queue_state import QueueState, read_queue_state

if TYPE_CHECKING:
    from redis import Redis

    from jobs.keys import Keys

__all__ = ["QueueCollector"]

log = get_logger("metrics.queue_collector")


def _gauge(name: str) -> GaugeMetricFamily:
    spec = QUEUE_GAUGES[name]
    return GaugeMetricFamily(spec.name, spec.help, labels=list(spec.labels) or None)


def _single(name: str, value: float) -> GaugeMetricFamily:
    family = _gauge(name)
    family.add_metric([], value)
    return family


class QueueCollector(Collector):
    def __init__(self, redis: Redis, keys: Keys, *, lease_s: float) -> None:
        self.redis = redis
        self.keys = keys
        self.lease_s = lease_s

    def describe(self) -> Iterator[GaugeMetricFamily]:
        # Names only, so registering never touches Redis.
        for name in QUEUE_GAUGES:
            yield _gauge(name)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        started = time.perf_counter()
        try:
            state = read_queue_state(self.redis, self.keys, lease_s=self.lease_s)
        except (RedisError, OSError) as exc:
            log.warning("queue state unreadable", error=type(exc).__name__, detail=str(exc)[:200])
            yield _single("ghibli_queue_up", 0)
            yield _single("ghibli_queue_collect_seconds", time.perf_counter() - started)
            return
        yield _single("ghibli_queue_up", 1)
        yield _single("ghibli_queue_collect_seconds", time.perf_counter() - started)
        yield from _families(state)


def _families(state: QueueState) -> Iterator[GaugeMetricFamily]:
    yield _single("ghibli_stream_length", state.stream_length)
    yield _single("ghibli_group_lag", state.group_lag)
    yield _single("ghibli_group_pending", state.group_pending)
    yield _single("ghibli_group_consumers", state.group_consumers)
    yield _single("ghibli_consumers_live", state.consumers_live)
    yield _single("ghibli_backlog_oldest_age_seconds", state.backlog_oldest_age_s)
    yield _single("ghibli_pending_oldest_age_seconds", state.pending_oldest_age_s)
    yield _single("ghibli_pending_max_idle_seconds", state.pending_max_idle_s)
    yield _single("ghibli_pending_max_deliveries", state.pending_max_deliveries)
    yield _single("ghibli_pending_expired_leases", state.pending_expired_leases)
    yield _single("ghibli_delayed_jobs", state.delayed)
    yield _single("ghibli_delayed_overdue_seconds", state.delayed_overdue_s)
    yield _single("ghibli_jobs_waiting_for_quota", state.waiting_for_quota)
    yield _single("ghibli_dead_letters", state.dead_letters)
    by_state = _gauge("ghibli_tokens")
    for token_state, count in state.tokens_by_state().items():
        by_state.add_metric([token_state], count)
    yield by_state
    cooldown = _gauge("ghibli_token_cooldown_seconds")
    in_flight = _gauge("ghibli_token_in_flight")
    for token in state.tokens:
        cooldown.add_metric([token.alias], token.cooldown_s)
        in_flight.add_metric([token.alias], token.in_flight)
    yield cooldown
    yield in_flight
    if state.space_ready is not None:
        yield _single("ghibli_space_ready", state.space_ready)
    yield _single("ghibli_space_paused", state.space_paused)
