"""A result in another format (`GET /v1/jobs/{id}/result?format=`): converted once, then kept.

A conversion decodes and re-encodes a picture (hundreds of ms of CPU for a PNG), so it runs in
the decode sandbox, once per (job, format): the copy is stored beside the result as
`<result>.<format>` (jobs/blobs.py), expires when the result does and is erased with the job.
Requests for the same conversion that arrive while it runs wait for it instead of starting
their own. Each conversion a client causes costs CONVERSION_COST requests of its request budget
(GHIBLI_RATE_LIMIT_REQUESTS); reading a stored copy costs one, like any request.
"""

from __future__ import annotations

import time

import anyio
from redis.exceptions import RedisError

from ingest.disconnect import Receive, unless_disconnected
from ingest.problems import Problem, image_problem
from ingest.ratelimit import RateLimiter
from jobs.blobs import BlobStore, converted_name
from jobs.logs import get_logger
from jobs.model import JobRecord
from sandbox.errors import ImageRefused
from sandbox.pool import DecodePool

__all__ = ["CONVERSION_COST", "Conversions"]

log = get_logger("ingest.conversions")

CONVERSION_COST = 30


class Conversions:
    def __init__(
        self, blobs: BlobStore, decoder: DecodePool, limiter: RateLimiter, *, blob_ttl_s: int, per_minute: int
    ) -> None:
        self._blobs = blobs
        self._decoder = decoder
        self._limiter = limiter
        self._blob_ttl_s = blob_ttl_s
        self._per_minute = per_minute
        self._running: dict[str, anyio.Event] = {}

    async def picture(
        self, record: JobRecord, fmt: str, *, client: str, receive: Receive | None
    ) -> bytes | None:
        """The result as `fmt`; None when the result itself has expired. Raises Problem."""
        name = converted_name(record.result_key, fmt)
        while True:
            stored = await self._blobs.get(name)
            if stored is not None:
                return stored
            running = self._running.get(name)
            if running is None:
                break
            await running.wait()  # another request converts it now; then read its copy (or do it)
        await self._charge(client)
        done = self._running[name] = anyio.Event()
        try:
            original = await self._blobs.get(record.result_key)
            if original is None:
                return None
            try:
                converted = await unless_disconnected(
                    receive, lambda: self._decoder.convert(original, fmt, client=client)
                )
            except ImageRefused as exc:
                raise image_problem(exc, field=None) from None
            ttl_s = self._left_s(record)
            if ttl_s > 0:
                await self._blobs.put(name, converted, ttl_s)
            return converted
        finally:
            del self._running[name]
            done.set()

    def _left_s(self, record: JobRecord) -> int:
        """Seconds the result itself has left (it was stored when the job finished)."""
        expires_ms = record.finished_at + self._blob_ttl_s * 1000
        return int((expires_ms - time.time() * 1000) // 1000)

    async def _charge(self, client: str) -> None:
        if self._per_minute <= 0:
            return
        try:
            decision = await self._limiter.hit("requests", client, self._per_minute, cost=CONVERSION_COST)
        except RedisError as exc:
            log.warning("rate limiter unavailable", error=type(exc).__name__)
            return
        if not decision.allowed:
            raise Problem(
                429,
                "rate_limited",
                "Too many requests",
                f"A conversion to another format counts as {CONVERSION_COST} requests of the "
                f"{self._per_minute} per minute each client may make; retry in "
                f"{decision.retry_after_header} s, or fetch the picture in the format it has.",
                headers={
                    "Retry-After": decision.retry_after_header,
                    "RateLimit-Limit": str(self._per_minute),
                },
            )
