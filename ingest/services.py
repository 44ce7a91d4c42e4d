"""What ingest's handlers need, opened once per process by the app's lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import cast

import anyio
from litestar import Litestar
from litestar.datastructures import State
from redis.asyncio import Redis

from ingest.client_ip import ClientAddress, parse_origins
from ingest.conversions import Conversions
from ingest.cors import cors_exact_origins
from ingest.engine_probe import EngineProbe
from ingest.events import EventsHub
from ingest.fair_share import StoredBytes, UnfinishedJobs
from ingest.ratelimit import RateLimiter
from ingest.streams import StreamSlots
from ingest.submit import Submissions
from ingest.webhook_request import WebhookIntake
from jobs.apikeys import KeyRing, load_key_ring
from jobs.blobs import BlobStore, open_blob_store
from jobs.keys import Keys
from jobs.redis_conn import connect
from jobs.settings import Settings
from jobs.store import JobStore
from sandbox.pool import DecodePool, PoolLimits

__all__ = ["Services", "provide_services", "services_from_state", "services_lifespan"]

# Request handlers share this pool; the events reader holds one connection of it for good.
REDIS_POOL_SIZE = 64


@dataclass(slots=True)
class Services:
    settings: Settings
    redis: Redis
    store: JobStore
    blobs: BlobStore
    submissions: Submissions
    limiter: RateLimiter
    events: EventsHub
    client_address: ClientAddress
    # Every decode of an upload or a stored picture runs in these worker processes (sandbox/).
    decoder: DecodePool
    conversions: Conversions
    # Held-open responses (SSE, long polls): per-client and per-process caps (ingest/streams.py).
    streams: StreamSlots
    # Other sites whose pages may post here from a browser (ingest/browser_guard.py): those of
    # GHIBLI_ALLOWED_ORIGINS and of GHIBLI_CORS_ORIGINS (a site allowed to call the API may post).
    allowed_origins: frozenset[str]
    # API keys (ingest/auth.py) and webhook subscriptions (ingest/webhook_request.py).
    api_keys: KeyRing
    unfinished: UnfinishedJobs
    stored: StoredBytes
    webhooks: WebhookIntake
    # The painting engine jobs go to, as users are told (/readyz, new jobs, the page).
    engine: EngineProbe

    @property
    def keys(self) -> Keys:
        return self.store.keys


def open_services(settings: Settings) -> Services:
    keys = Keys(settings.key_prefix, settings.stream_name, settings.group_name)
    redis = connect(settings.redis_url, max_connections=REDIS_POOL_SIZE, name="ingest")
    store = JobStore.from_settings(redis, keys, settings)
    blobs = open_blob_store(redis, keys, settings.blob_dir)
    api_keys = load_key_ring(settings)
    limiter = RateLimiter(redis, keys)
    decoder = DecodePool(PoolLimits.from_settings(settings, role="ingest"))
    return Services(
        settings=settings,
        redis=redis,
        store=store,
        blobs=blobs,
        submissions=Submissions(
            store,
            blobs,
            idempotency_ttl_s=settings.idempotency_ttl_seconds,
            result_cache=settings.result_cache,
        ),
        limiter=limiter,
        events=EventsHub(redis, keys),
        client_address=ClientAddress(settings.trusted_proxies, settings.ipv6_client_prefix),
        decoder=decoder,
        conversions=Conversions(
            blobs,
            decoder,
            limiter,
            blob_ttl_s=settings.blob_ttl_seconds,
            per_minute=settings.rate_limit_requests,
        ),
        streams=StreamSlots(per_client=settings.max_streams_per_client, total=settings.max_streams),
        allowed_origins=parse_origins(settings.allowed_origins) | cors_exact_origins(settings),
        api_keys=api_keys,
        unfinished=UnfinishedJobs(redis, keys, ttl_s=settings.job_ttl_seconds),
        stored=StoredBytes(redis, keys, window_s=settings.blob_ttl_seconds),
        webhooks=WebhookIntake.from_settings(settings, api_keys),
        engine=EngineProbe(settings.space),
    )


def services_lifespan(settings: Settings) -> Callable[[Litestar], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        services = open_services(settings)
        app.state.services = services
        try:
            await services.store.ensure_group()
            await services.store.durability.check()  # e.g. GHIBLI_DURABLE_FSYNC without WAITAOF: refuse
            await services.engine.refresh()
            async with services.decoder, anyio.create_task_group() as tg:
                tg.start_soon(services.events.run)
                tg.start_soon(services.engine.run)
                yield
                tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await services.redis.aclose()

    return lifespan


def services_from_state(state: State) -> Services:
    return cast("Services", state.services)


async def provide_services(state: State) -> Services:
    return services_from_state(state)
