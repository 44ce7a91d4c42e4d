"""`ghibli metrics-exporter`: the one process that serves the queue's gauges.

Run exactly one per Redis (a second one is harmless but doubles what sum() shows). It reads Redis
at each scrape with a synchronous client on the HTTP server's thread: a scrape is a few cheap
commands, and a read that fails shows as `ghibli_queue_up 0` rather than as old numbers.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

from prometheus_client import CollectorRegistry, ProcessCollector
from redis import Redis

from jobs.keys import Keys
from jobs.logs import get_logger
from jobs.redis_conn import connect_sync
from jobs.settings import Settings
from metrics.exposition import MetricsServer, start_metrics_server
from metrics.queue_collector import QueueCollector

__all__ = ["exporter_registry", "open_exporter_redis", "run_exporter"]

log = get_logger("metrics.exporter")


def open_exporter_redis(settings: Settings) -> Redis:
    return connect_sync(settings.redis_url, name="metrics-exporter", decode_responses=True)


def exporter_registry(redis: Redis, settings: Settings) -> CollectorRegistry:
    keys = Keys(settings.key_prefix, settings.stream_name, settings.group_name)
    registry = CollectorRegistry()
    registry.register(QueueCollector(redis, keys, lease_s=settings.lease_seconds))
    ProcessCollector(registry=registry)
    return registry


def run_exporter(settings: Settings) -> None:
    """Serve until SIGTERM or SIGINT."""
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("stopping", signal=signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    redis = open_exporter_redis(settings)
    server: MetricsServer | None = None
    try:
        server = start_metrics_server(
            settings.metrics_host, settings.exporter_port, exporter_registry(redis, settings)
        )
        log.info(
            "metrics exporter listening",
            address=f"{settings.metrics_host}:{server.port}",
            stream=Keys(settings.key_prefix, settings.stream_name).stream,
            group=settings.group_name,
        )
        stop.wait()
    finally:
        if server is not None:
            server.close()
        redis.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
