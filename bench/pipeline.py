"""Driving the pipeline: fill its queue, wait until it is drained, and run one job through HTTP.

Throughput runs fill the queue through `ingest.submit.Submissions`, the very call ingest makes after
it has checked and normalized an upload, so the measured interval holds consumers, Redis and the
Space, and not the uploads competing with them for the same two cores (ingest has its own section).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from datetime import datetime

import httpx
from redis.asyncio import Redis

from ingest.submit import Submissions
from jobs.blobs import open_blob_store
from jobs.keys import Keys
from jobs.model import JobParams, new_job_id
from jobs.store import JobStore
from sandbox.photo import normalize_photo

__all__ = ["Drained", "JobQueue", "JobTimes", "submit_and_watch"]

TERMINAL = ("succeeded", "failed", "cancelled")
MAX_PIXELS = 40_000_000


@dataclass(frozen=True, slots=True)
class JobTimes:
    status: str
    created_at: float  # unix seconds, as the job hash records them
    started_at: float
    finished_at: float
    attempt: int


@dataclass(slots=True)
class Drained:
    started: float  # unix time the queue filling began
    jobs: list[JobTimes]

    @property
    def succeeded(self) -> int:
        return sum(1 for job in self.jobs if job.status == "succeeded")

    @property
    def seconds(self) -> float:
        done = [job.finished_at for job in self.jobs if job.status == "succeeded"]
        return max(done) - self.started if done else 0.0

    @property
    def per_second(self) -> float:
        return self.succeeded / self.seconds if self.seconds > 0 else 0.0

    @property
    def failures(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for job in self.jobs:
            if job.status != "succeeded":
                out[job.status] = out.get(job.status, 0) + 1
        return out


class JobQueue:
    """Puts jobs on the stream as ingest does, and watches them until every one has ended."""

    def __init__(self, redis_url: str, photo: bytes, *, blob_dir: str = "") -> None:
        self.redis = Redis.from_url(redis_url)
        self.keys = Keys()
        self.store = JobStore(self.redis, self.keys, job_ttl_s=86_400, blob_ttl_s=3_600)
        self.submissions = Submissions(self.store, open_blob_store(self.redis, self.keys, blob_dir))
        normalized = normalize_photo(photo, max_pixels=MAX_PIXELS)
        self.photo = normalized.stored(photo)
        self.digest = normalized.digest(photo)

    async def fill(self, count: int, *, size: int, seed_base: int) -> list[str]:
        """`count` queued jobs, each with its own seed (so none is answered from the result cache)."""
        ids = [new_job_id() for _ in range(count)]

        async def one(index: int) -> None:
            params = JobParams(width=size, height=size, seed=seed_base + index)
            accepted = await self.submissions.submit(
                ids[index], params, photo=self.photo, input_digest=self.digest
            )
            assert accepted.outcome == "queued", accepted.outcome

        for chunk in range(0, count, 32):
            await asyncio.gather(*(one(i) for i in range(chunk, min(count, chunk + 32))))
        return ids

    async def wait(self, ids: list[str], timeout_s: float) -> list[JobTimes]:
        """Wait until every job has ended (or the time-out); their times as recorded in Redis.

        Two cheap reads per poll, whatever the number of jobs: a finished job's entry is deleted
        from the stream, so an empty stream and no retry waiting means every job has ended.
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.xlen(self.keys.stream)
                pipe.zcard(self.keys.delayed)
                length, delayed = await pipe.execute()
            if not length and not delayed:
                break
            await asyncio.sleep(0.05)
        return await self.times(ids)

    async def times(self, ids: list[str]) -> list[JobTimes]:
        fields = ["status", "created_at", "started_at", "finished_at", "attempt"]
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hmget(self.keys.job(job_id), fields)
            rows = await pipe.execute()
        out = []
        for status, created, started, finished, attempt in rows:
            out.append(
                JobTimes(
                    status=(status or b"missing").decode(),
                    created_at=int(created or 0) / 1000,
                    started_at=int(started or 0) / 1000,
                    finished_at=int(finished or 0) / 1000,
                    attempt=int(attempt or 0),
                )
            )
        return out

    async def drain(self, count: int, *, size: int, seed_base: int, timeout_s: float) -> Drained:
        started = time.time()
        ids = await self.fill(count, size=size, seed_base=seed_base)
        return Drained(started, await self.wait(ids, timeout_s))

    async def aclose(self) -> None:
        await self.redis.aclose()


@dataclass(frozen=True, slots=True)
class Trip:
    """One photo through the HTTP API: upload, live status until done, result download."""

    seconds: float
    status: str
    submit_s: float  # POST /v1/jobs answered
    queued_s: float  # created -> claimed by a consumer (from the job hash)
    running_s: float  # claimed -> finished, Space call included
    notified_s: float  # finished -> the SSE viewer got the terminal event


def submit_and_watch(client: httpx.Client, photo: bytes, *, size: int, seed: int) -> Trip:
    """POST the photo, follow GET /v1/jobs/{id}/events to the end, GET the result."""
    start = time.perf_counter()
    response = client.post(
        "/v1/jobs",
        files={"image": ("photo.jpg", photo, "image/jpeg")},
        data={"width": str(size), "height": str(size), "seed": str(seed)},
    )
    response.raise_for_status()
    submitted = time.perf_counter()
    job = response.json()
    with client.stream("GET", f"/v1/jobs/{job['id']}/events") as events:
        for line in events.iter_lines():
            if line.startswith("data:"):
                job = json.loads(line[5:])
                if job["status"] in TERMINAL:
                    break
    seen = time.time()
    if job["status"] == "succeeded":
        client.get(job["result"]["url"]).raise_for_status()
    end = time.perf_counter()
    created, started, finished = (_seconds(job.get(k)) for k in ("created_at", "started_at", "finished_at"))
    return Trip(
        seconds=end - start,
        status=job["status"],
        submit_s=submitted - start,
        queued_s=started - created if started and created else float("nan"),
        running_s=finished - started if finished and started else float("nan"),
        notified_s=seen - finished if finished else float("nan"),
    )


def _seconds(value: object) -> float:
    """A time of the job view (ISO 8601) as unix seconds; 0 when absent."""
    return datetime.fromisoformat(str(value)).timestamp() if value else 0.0
