"""Section 5: Redis bytes per queued job (without and with its photo), and a consumer's RSS.

Redis: a fresh server, N uploads through ingest with no consumer running, and the growth of INFO
`used_memory` divided by N. "Without the blob" runs ingest with GHIBLI_BLOB_DIR (photos on disk),
so Redis holds only what a queued job itself costs: its hash, its stream entry, its share of the
events stream. MEMORY USAGE of one job's hash is shown beside it.

Consumer: RSS once it is connected and idle, and its peak while every slot runs a 1-s call; the
direct figures are a gradio_client process after its warm-up call, and its peak with as many threads.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from redis import Redis

from bench.direct import run_direct
from bench.pipeline import Drained, JobQueue
from bench.procs import Stack, tree_rss_bytes
from bench.report import Report, Row, load_average, ratio

__all__ = ["ConsumerMemory", "QueuedJobMemory", "consumer_memory", "memory_rows", "queued_job_memory"]

SECTION = "5 memory"


@dataclass(frozen=True, slots=True)
class QueuedJobMemory:
    per_job: float  # bytes of used_memory per queued job
    job_hash: int  # MEMORY USAGE of one job hash
    stream_per_job: float  # MEMORY USAGE of the jobs stream / N
    photo_bytes: int  # the stored (normalized) photo
    load: float = 0.0


def queued_job_memory(stack: Stack, photo: bytes, jobs: int, *, blob_dir: Path | None) -> QueuedJobMemory:
    redis_url = stack.redis()
    settings = {"GHIBLI_BLOB_DIR": str(blob_dir)} if blob_dir else {}
    _, ingest_url = stack.ingest(redis_url, **settings)
    redis = Redis.from_url(redis_url)
    try:
        with httpx.Client(base_url=ingest_url, timeout=60) as client:
            # One job first: the stream, the group, the events stream and scripts exist before the baseline.
            first = client.post(
                "/v1/jobs", files={"image": ("p.jpg", photo, "image/jpeg")}, data={"seed": "0"}
            )
            first.raise_for_status()
            time.sleep(0.2)
            before = int(redis.info("memory")["used_memory"])
            ids = []
            for seed in range(1, jobs + 1):
                response = client.post(
                    "/v1/jobs", files={"image": ("p.jpg", photo, "image/jpeg")}, data={"seed": str(seed)}
                )
                response.raise_for_status()
                ids.append(response.json()["id"])
        time.sleep(0.2)
        after = int(redis.info("memory")["used_memory"])
        job_hash = int(redis.memory_usage(f"{{ghibli}}:job:{ids[-1]}", samples=0) or 0)
        stream = int(redis.memory_usage("{ghibli}:jobs", samples=0) or 0)
        photo_key = f"{{ghibli}}:blob:in/{ids[-1]}"
        photo_bytes = int(redis.strlen(photo_key)) if not blob_dir else _file_size(blob_dir)
        return QueuedJobMemory(
            (after - before) / jobs, job_hash, stream / (jobs + 1), photo_bytes, load_average()
        )
    finally:
        redis.close()
        stack.close()


def _file_size(blob_dir: Path) -> int:
    files = [p for p in blob_dir.rglob("*") if p.is_file()]
    return files[-1].stat().st_size if files else 0


@dataclass(frozen=True, slots=True)
class ConsumerMemory:
    idle: int
    busy_peak: int
    direct_idle: int
    direct_peak: int
    in_flight: int
    succeeded: int
    load: float = 0.0


def consumer_memory(
    stack: Stack, space_url: str, photo: bytes, stored_photo: Path, concurrency: int, jobs: int
) -> ConsumerMemory:
    redis_url = stack.redis()
    try:
        (consumer,) = stack.consumers(redis_url, space_url, (1, concurrency))
        time.sleep(2)
        idle = tree_rss_bytes(consumer.pid)  # with its decode worker
        peak = [idle]
        done = threading.Event()

        def sample() -> None:  # VmHWM would include start-up; sample the running process instead
            while not done.wait(0.1):
                peak.append(tree_rss_bytes(consumer.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        drained = asyncio.run(_drain(redis_url, photo, jobs))
        done.set()
        sampler.join()
    finally:
        stack.close()
    direct = run_direct(space_url, "default", stored_photo, 256, (1, concurrency), jobs, 9_000_000)
    return ConsumerMemory(
        idle, max(peak), direct.rss_idle, direct.rss_peak, concurrency, drained.succeeded, load_average()
    )


async def _drain(redis_url: str, photo: bytes, jobs: int) -> Drained:
    queue = JobQueue(redis_url, photo)
    try:
        return await queue.drain(jobs, size=256, seed_base=8_000_000, timeout_s=300)
    finally:
        await queue.aclose()


def _mb(n: float) -> str:
    return f"{n / 1e6:.0f}"


def memory_rows(
    report: Report, jobs: int, bare: QueuedJobMemory, full: QueuedJobMemory, consumer: ConsumerMemory
) -> None:
    report.add(
        Row(
            SECTION,
            f"Redis bytes per queued job without its photo: used_memory growth / {jobs} jobs, photos in "
            f"GHIBLI_BLOB_DIR (MEMORY USAGE of one job hash: {bare.job_hash}; jobs stream per entry: "
            f"{bare.stream_per_job:.0f})",
            f"{bare.per_job:.0f}",
            budget="<= 2048 bytes",
            passed=bare.per_job <= 2048,
            load=bare.load,
        )
    )
    report.add(
        Row(
            SECTION,
            f"Redis bytes per queued job with its photo in Redis "
            f"(the stored photo: {full.photo_bytes} bytes)",
            f"{full.per_job:.0f}",
            load=full.load,
        )
    )
    report.add(
        Row(
            SECTION,
            "consumer RSS idle (MB) with its decode worker, connected to the Space; direct = a gradio_client "
            "process after one call",
            _mb(consumer.idle),
            _mb(consumer.direct_idle),
            ratio(consumer.idle, consumer.direct_idle),
            load=consumer.load,
        )
    )
    report.add(
        Row(
            SECTION,
            f"consumer RSS busy (MB) with its decode worker, peak with {consumer.in_flight} 1-s calls in "
            f"flight; direct = peak of a gradio_client process with {consumer.in_flight} threads",
            _mb(consumer.busy_peak),
            _mb(consumer.direct_peak),
            ratio(consumer.busy_peak, consumer.direct_peak),
            load=consumer.load,
        )
    )
