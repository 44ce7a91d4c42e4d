"""What ingest's handlers need, opened once per process by the app's lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import cast

from litestar import Litestar
from litestar.datastructures import State
from redis.asyncio import Redis

from jobs.blobs import BlobStore, open_blob_store
from jobs.keys import Keys
from jobs.redis_conn import connect
from jobs.settings import Settings
from jobs.store import JobStore

__all__ = ["Services", "provide_services", "services_lifespan"]


@dataclass(slots=True)
class Services:
    settings: Settings
    redis: Redis
    store: JobStore
    blobs: BlobStore

    @property
    def keys(self) -> Keys:
        return self.store.keys


def open_services(settings: Settings) -> Services:
    keys = Keys(settings.key_prefix, settings.stream_name, settings.group_name)
    redis = connect(settings.redis_url, name="ingest")
    return Services(
        settings=settings,
        redis=redis,
        store=JobStore(redis, keys, job_ttl_s=settings.job_ttl_seconds, blob_ttl_s=settings.blob_ttl_seconds),
        blobs=open_blob_store(redis, keys, settings.blob_dir),
    )


def services_lifespan(settings: Settings):  # type: ignore[no-untyped-def]
    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        services = open_services(settings)
        app.state.services = services
        try:
            await services.store.ensure_group()
            yield
        finally:
            await services.redis.aclose()

    return lifespan


async def provide_services(state: State) -> Services:
    return cast("Services", state.services)
