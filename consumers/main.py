"""Entry point of one consumer process: wire the parts together and run until stopped."""

from __future__ import annotations

import anyio

from consumers.space_call import SpaceCaller
from consumers.worker import Consumer
from jobs.blobs import open_blob_store
from jobs.keys import Keys
from jobs.logs import get_logger
from jobs.redis_conn import connect
from jobs.settings import Settings
from jobs.store import JobStore
from metrics.exposition import serve_process_metrics

__all__ = ["run_consumer"]

log = get_logger("consumers.main")


async def _serve(settings: Settings) -> None:
    keys = Keys(settings.key_prefix, settings.stream_name, settings.group_name)
    redis = connect(settings.redis_url, name=f"consumer:{settings.resolved_consumer_name}")
    try:
        store = JobStore(
            redis, keys, job_ttl_s=settings.job_ttl_seconds, blob_ttl_s=settings.blob_ttl_seconds
        )
        blobs = open_blob_store(redis, keys, settings.blob_dir)
        caller = await SpaceCaller.open(settings, redis, keys)
        try:
            await Consumer(settings, store, blobs, caller).run()
        finally:
            await caller.aclose()
    finally:
        await redis.aclose()


def run_consumer(settings: Settings) -> None:
    serve_process_metrics(settings.metrics_host, settings.metrics_port)
    anyio.run(_serve, settings)
