"""Helpers of the ingest tests: an app on a real Redis, and jobs moved through their states by the
real job-store scripts (claim, update, finish) instead of a consumer, so tests are fast and exact."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar.testing import AsyncTestClient
from PIL import Image
from redis.asyncio import Redis

from ingest.app import create_app
from ingest.submit import Submissions
from jobs.blobs import RedisBlobStore
from jobs.keys import Keys
from jobs.model import JobParams, Status, new_job_id
from jobs.settings import Settings, load_settings
from jobs.store import Claim, FollowersWaiting, JobStore
from tests.photos import encode, landscape
from tests.procs import RedisServer, base_env

TERMINAL = {"succeeded", "failed", "cancelled"}


def settings_for(redis: RedisServer, **env: str) -> Settings:
    """Test settings: limits off unless a test turns them on."""
    defaults = {
        "GHIBLI_RATE_LIMIT_SUBMITS": "0",
        "GHIBLI_RATE_LIMIT_REQUESTS": "0",
        "GHIBLI_MAX_BACKLOG": "0",
        "GHIBLI_MAX_UNFINISHED_PER_CLIENT": "0",
        "GHIBLI_MAX_STORED_BYTES_PER_CLIENT": "0",
        # One decode worker, not one per core: each costs ~0.14 s of CPU to start and a hundred
        # tests start an ingest; the pool's sizing and fairness have their own tests.
        "GHIBLI_DECODE_WORKERS": "1",
    }
    return load_settings(environ=base_env(REDIS_URL=redis.url, **{**defaults, **env}))


@asynccontextmanager
async def api(settings: Settings) -> AsyncIterator[AsyncTestClient[Any]]:
    async with AsyncTestClient(create_app(settings)) as client:
        yield client


def photo_bytes(seed: int = 1, size: tuple[int, int] = (320, 240)) -> bytes:
    return encode(landscape(*size, seed=seed), "JPEG", quality=90)


def picture(color: tuple[int, int, int] = (40, 120, 200), size: tuple[int, int] = (64, 48)) -> bytes:
    """A stand-in result, as a consumer would store it (PNG)."""
    return encode(Image.new("RGB", size, color), "PNG")


def decode(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


class Driver:
    """Moves jobs like a consumer would, through the real scripts of jobs/store.py."""

    def __init__(self, settings: Settings, consumer: str = "test-driver") -> None:
        self.keys = Keys(settings.key_prefix, settings.stream_name, settings.group_name)
        self.redis = Redis.from_url(settings.redis_url)
        self.store = JobStore(self.redis, self.keys, blob_ttl_s=settings.blob_ttl_seconds)
        self.blobs = RedisBlobStore(self.redis, self.keys)
        self.consumer = consumer

    async def close(self) -> None:
        await self.redis.aclose()

    async def queue(self, params: JobParams, photo: bytes = b"photo") -> str:
        """A job queued as ingest queues an accepted upload (no HTTP, no result cache)."""
        job_id = new_job_id()
        accepted = await Submissions(self.store, self.blobs, result_cache=False).submit(
            job_id, params, photo=photo, input_digest="d"
        )
        assert accepted.outcome == "queued", accepted
        return job_id

    async def claim_all(self) -> dict[str, Claim]:
        """Deliver every new entry to this driver and claim it; job id -> claim."""
        await self.store.ensure_group()
        claims: dict[str, Claim] = {}
        while True:
            reply = await self.redis.xreadgroup(
                self.keys.group, self.consumer, {self.keys.stream: ">"}, count=500
            )
            entries = [e for _stream, batch in (reply or []) for e in batch]
            if not entries:
                return claims
            for entry_id, fields in entries:
                job_id = fields[b"job"].decode()
                claim = await self.store.claim(job_id, entry_id.decode(), self.consumer)
                if isinstance(claim, Claim):  # else a deleted or finished job: skipped, as a consumer would
                    claims[job_id] = claim

    async def progress(self, claim: Claim, fraction: float, phase: str = "painting") -> None:
        assert await self.store.update(claim, Status.RUNNING, progress=fraction, phase=phase) == "ok"

    async def succeed(self, claim: Claim, data: bytes, media_type: str = "image/png") -> str:
        """As consumers/job_run.py does: the result, and a copy for each job merged into this one."""
        key = f"out/{claim.job_id}/{claim.attempt}"
        await self.blobs.put(key, data, 3600)
        copies: dict[str, str] = {}
        while True:
            try:
                return await self.store.finish(
                    claim,
                    Status.SUCCEEDED,
                    copies=copies,
                    result_key=key,
                    result_type=media_type,
                    progress=1,
                    phase="done",
                )
            except FollowersWaiting as waiting:
                for job_id in waiting.followers:
                    copies[job_id] = f"out/{job_id}/{claim.attempt}"
                    await self.blobs.put(copies[job_id], data, 3600)

    async def fail(self, claim: Claim, code: str, message: str) -> str:
        return await self.store.finish(claim, Status.FAILED, error_code=code, error_message=message)

    async def stored_photo(self, job_id: str) -> bytes:
        record = await self.store.get(job_id)
        assert record is not None
        data = await self.blobs.get(record.input_key)
        assert data is not None
        return data
