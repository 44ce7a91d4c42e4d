"""The real stack for the client tests (web page and CLI): Redis, the offline Space, `ghibli ingest`
and `ghibli consume` as subprocesses on free ports, plus a scripted consumer for states that a test
must hold still (queued, waiting for GPU quota).

Two ingest processes share one Redis under different key prefixes:
- "live" has real consumers calling a slow offline Space (progress is visible for seconds); calls
  with seed FAIL_SEED fail at the Space and, with one attempt allowed, end the job as failed;
- "held" has no consumer at all: its jobs stay queued until the test, acting as the consumer
  through the real job-store scripts (XREADGROUP + claim/update/finish), moves them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
from redis.asyncio import Redis

from jobs.blobs import RedisBlobStore
from jobs.keys import Keys
from jobs.model import Status
from jobs.store import Claim, JobStore
from tests.procs import Proc, RedisServer, base_env, free_port, ghibli, start_space, wait_until

T = TypeVar("T")

FAIL_SEED = 13
SPACE_DELAY_S = 2.5
LIVE_PREFIX = "{ghibli}:"
HELD_PREFIX = "{held}:"


@dataclass
class Ingest:
    url: str
    env: dict[str, str]
    proc: Proc


def stack_env(redis: RedisServer, space_url: str, prefix: str, **extra: str) -> dict[str, str]:
    return base_env(
        REDIS_URL=redis.url,
        GHIBLI_SPACE=space_url,
        GHIBLI_KEY_PREFIX=prefix,
        GHIBLI_MAX_ATTEMPTS="1",
        **extra,
    )


def start_ingest(env: dict[str, str], log_dir: Path, name: str, port: int | None = None) -> Ingest:
    """`ghibli ingest` on a free port (or on `port`, to restart one where its clients expect it)."""
    port = port or free_port()
    env = {**env, "GHIBLI_PORT": str(port), "GHIBLI_HOST": "127.0.0.1"}
    proc = ghibli(["ingest"], env, log_dir / f"ingest-{name}.log").start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: httpx.get(url + "/readyz", timeout=2).status_code == 200, "ingest", 60, proc.proc)
    except (TimeoutError, RuntimeError):
        proc.stop()
        raise RuntimeError(f"ingest did not start:\n{proc.log()[-3000:]}") from None
    return Ingest(url, env, proc)


def start_consumer(env: dict[str, str], log_dir: Path, name: str) -> Proc:
    return ghibli(["consume"], env, log_dir / f"consumer-{name}.log").start()


@contextmanager
def slow_space(log_dir: Path) -> Iterator[str]:
    """The offline Space, slow enough to watch (one call at a time), failing seed FAIL_SEED."""
    proc, url = start_space(
        log_dir,
        extra=[
            "--delay",
            str(SPACE_DELAY_S),
            "--concurrency",
            "1",
            "--fault-kind",
            "worker_error",
            "--fault-seeds",
            str(FAIL_SEED),
        ],
    )
    try:
        yield url
    finally:
        proc.stop()


def run_async(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine on its own loop in a worker thread (the sync Playwright API owns this one)."""

    async def main() -> T:
        return await make()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, main()).result(timeout=60)


class ScriptedConsumer:
    """Acts as a consumer of one key prefix through the real scripts of jobs/store.py."""

    def __init__(self, redis_url: str, prefix: str, name: str = "scripted") -> None:
        self.redis_url = redis_url
        self.keys = Keys(prefix, "jobs", "workers")
        self.name = name

    async def _call(self, fn: Callable[[JobStore, Redis], Awaitable[T]]) -> T:
        redis = Redis.from_url(self.redis_url)
        try:
            return await fn(JobStore(redis, self.keys), redis)
        finally:
            await redis.aclose()

    def take(self, job_id: str) -> Claim:
        """Read the job's stream entry as this consumer and claim it (the job becomes running)."""

        async def take(store: JobStore, redis: Redis) -> Claim:
            await store.ensure_group()
            for attempt in range(50):
                # First the entries an earlier take read past (delivered to this consumer, not
                # claimed), then new ones.
                start = "0" if attempt == 0 else ">"
                reply: Any = await redis.xreadgroup(
                    self.keys.group, self.name, {self.keys.stream: start}, count=100, block=100
                )
                for _stream, entries in reply or []:
                    for raw_id, fields in entries:
                        entry_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
                        if fields.get(b"job", b"").decode() == job_id:
                            claim = await store.claim(job_id, entry_id, self.name)
                            assert isinstance(claim, Claim), claim
                            return claim
            raise AssertionError(f"no stream entry for job {job_id}")

        return run_async(lambda: self._call(take))

    def update(self, claim: Claim, status: Status, **fields: object) -> None:
        verdict = run_async(lambda: self._call(lambda store, _r: store.update(claim, status, **fields)))
        assert verdict == "ok", verdict

    def finish(self, claim: Claim, status: Status, **fields: object) -> None:
        verdict = run_async(lambda: self._call(lambda store, _r: store.finish(claim, status, **fields)))
        assert verdict == "ok", verdict

    def succeed(self, claim: Claim, picture: bytes, media_type: str = "image/png") -> None:
        """Store `picture` as the job's result and finish it, as a consumer does."""
        key = f"out/{claim.job_id}/{claim.attempt}"

        async def put(_store: JobStore, redis: Redis) -> None:
            await RedisBlobStore(redis, self.keys).put(key, picture, 3600)

        run_async(lambda: self._call(put))
        self.finish(claim, Status.SUCCEEDED, result_key=key, result_type=media_type, progress=1, phase="done")
