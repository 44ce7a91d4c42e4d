"""Entry point of one consumer process: wire the parts together and run until stopped."""

from __future__ import annotations

import anyio
from redis.asyncio import Redis

from consumers.space_call import SpaceCaller
from consumers.tokens import TokenConfigError
from consumers.worker import Consumer, ConsumerNameTaken
from jobs.backoff import Backoff
from jobs.blobs import open_blob_store
from jobs.keys import Keys
from jobs.logs import get_logger
from jobs.redis_conn import REDIS_DOWN, connect
from jobs.settings import Settings
from jobs.store import JobStore
from metrics.exposition import serve_process_metrics
from sandbox.pool import DecodePool, PoolLimits

__all__ = ["run_consumer"]

log = get_logger("consumers.main")


async def _serve(settings: Settings) -> None:
    keys = Keys(settings.key_prefix, settings.stream_name, settings.group_name)
    redis = connect(settings.redis_url, name=f"consumer:{settings.resolved_consumer_name}")
    try:
        store = JobStore.from_settings(redis, keys, settings)
        blobs = open_blob_store(redis, keys, settings.blob_dir)
        async with DecodePool(PoolLimits.from_settings(settings, role="consumer")) as decoder:
            try:
                caller = await _open_caller(settings, redis, keys, decoder)
            except TokenConfigError as exc:
                log.error("cannot start", error=str(exc))
                raise SystemExit(2) from None
            try:
                await Consumer(settings, store, blobs, caller).run()
            except ConsumerNameTaken as exc:
                log.error("cannot start", error=str(exc))
                raise SystemExit(1) from None
            finally:
                await caller.aclose()
    finally:
        await redis.aclose()


async def _open_caller(settings: Settings, redis: Redis, keys: Keys, decoder: DecodePool) -> SpaceCaller:
    """The Space caller (its token pool lives in Redis): wait for Redis rather than exit."""
    backoff = Backoff(cap_s=5.0)
    while True:
        try:
            return await SpaceCaller.open(settings, redis, keys, decoder)
        except REDIS_DOWN as exc:
            delay = backoff.next_delay()
            log.warning("redis unavailable at start-up", error=str(exc), retry_in_s=round(delay, 2))
            await anyio.sleep(delay)


def run_consumer(settings: Settings) -> None:
    serve_process_metrics(settings.metrics_host, settings.metrics_port)
    anyio.run(_serve, settings)
