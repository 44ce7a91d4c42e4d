"""Helpers of the consumer tests: jobs queued through the real JobStore, consumers as real processes.

Jobs are queued with `Submissions.submit`, what ingest does after validating an upload (the
photo's blob, the job hash and its stream entry), without HTTP: tests that queue hundreds of jobs
stay fast without skipping anything the consumers see. The result cache is off so that every job
runs (identical jobs in flight would otherwise share one Space call).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx
from redis.asyncio import Redis

from ingest.submit import Submissions
from jobs.blobs import BlobStore, open_blob_store
from jobs.keys import Keys
from jobs.model import JobParams, JobRecord, Status, new_job_id
from jobs.redis_conn import connect
from jobs.store import JobStore
from tests.photos import encode, landscape
from tests.procs import Proc, base_env, free_port, ghibli, wait_until

PHOTO = encode(landscape(320, 240))


@dataclass
class Pipeline:
    """The job store and blobs of one Redis, as the tests drive them."""

    redis: Redis
    keys: Keys
    store: JobStore
    blobs: BlobStore

    @property
    def submissions(self) -> Submissions:
        return Submissions(self.store, self.blobs, result_cache=False)

    async def submit(self, count: int = 1, *, prompt: str | None = None, size: int = 256) -> list[str]:
        ids: list[str] = []
        for i in range(count):
            job_id = new_job_id()
            params = JobParams(width=size, height=size, seed=i, **({"prompt": prompt} if prompt else {}))
            accepted = await self.submissions.submit(job_id, params, photo=PHOTO, input_digest="test")
            assert accepted.outcome == "queued", accepted
            ids.append(job_id)
        return ids

    async def jobs(self, ids: Iterable[str]) -> dict[str, JobRecord]:
        found: dict[str, JobRecord] = {}
        for job_id in ids:
            record = await self.store.get(job_id)
            assert record is not None, f"job {job_id} vanished"
            found[job_id] = record
        return found

    async def statuses(self, ids: Iterable[str]) -> dict[str, Status]:
        """Every job's status in one round trip (a missing job fails the test)."""
        ids = list(ids)
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hget(self.keys.job(job_id), "status")
            raw = await pipe.execute()
        assert None not in raw, "a job vanished"
        return {job_id: Status(value.decode()) for job_id, value in zip(ids, raw, strict=True)}

    async def wait_for(
        self,
        ids: list[str],
        done: Callable[[JobRecord], bool] = lambda r: r.status.terminal,
        *,
        timeout_s: float = 120,
        seen: Callable[[dict[str, JobRecord]], None] | None = None,
        enough: int | None = None,
    ) -> dict[str, JobRecord]:
        """Poll until every job (or `enough` of them) satisfies `done`; `seen` gets each round's records."""
        deadline = time.monotonic() + timeout_s
        while True:
            records = await self.jobs(ids)
            if sum(map(done, records.values())) >= (len(ids) if enough is None else enough):
                return records
            if time.monotonic() > deadline:
                waiting = {i: r.status.value for i, r in records.items() if not done(r)}
                raise TimeoutError(f"{len(waiting)} job(s) not done after {timeout_s} s: {waiting}")
            if seen is not None:
                seen(records)
            await anyio.sleep(0.25)

    async def pending(self) -> int:
        summary = await self.redis.xpending(self.keys.stream, self.keys.group)
        return int(summary["pending"])


@asynccontextmanager
async def pipeline(redis_url: str) -> AsyncIterator[Pipeline]:
    redis = connect(redis_url, name="test")
    keys = Keys()
    store = JobStore(redis, keys)
    await store.ensure_group()
    try:
        yield Pipeline(redis, keys, store, open_blob_store(redis, keys, ""))
    finally:
        await redis.aclose()


def calling(record: JobRecord) -> bool:
    """Running, and the Space call is under way (past claim and set-up)."""
    return record.status is Status.RUNNING and record.phase not in ("", "starting")


def logged(proc: Proc, event: str, **fields: object) -> bool:
    """Whether the process logged this structlog event (with these fields) as a JSON line."""
    for line in proc.log().splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if row.get("event") == event and all(row.get(k) == v for k, v in fields.items()):
            return True
    return False


def consumer(redis_url: str, space_url: str, log_dir: Path, name: str, **settings: str) -> Proc:
    """`ghibli consume` as a subprocess; settings are GHIBLI_* variables without the prefix."""
    env = base_env(
        REDIS_URL=redis_url,
        GHIBLI_SPACE=space_url,
        GHIBLI_CONSUMER_NAME=name,
        GHIBLI_LOG_LEVEL="info",
        **{f"GHIBLI_{k.upper()}": v for k, v in settings.items()},
    )
    return ghibli(["consume"], env, log_dir / f"consumer-{name}.log")


@dataclass
class ScriptedSpace:
    """tests/apps/scripted_space.py running: its URL, its call log and its heal switch."""

    url: str
    call_log: Path
    heal_file: Path

    def calls(self, prompt: str) -> list[dict[str, object]]:
        if not self.call_log.exists():
            return []
        rows = [json.loads(line) for line in self.call_log.read_text().splitlines() if line]
        return [r for r in rows if r["prompt"] == prompt]


def start_scripted_space(
    workdir: Path, *, delay_s: float = 0.2, slow_s: float = 5.0, bomb_dir: Path | None = None
) -> tuple[Proc, ScriptedSpace]:
    port = free_port()
    space = ScriptedSpace(f"http://127.0.0.1:{port}/", workdir / "calls.jsonl", workdir / "healed")
    argv = [sys.executable, "-m", "tests.apps.scripted_space", "--port", str(port)]
    argv += ["--delay", str(delay_s), "--slow", str(slow_s)]
    argv += ["--call-log", str(space.call_log), "--heal-file", str(space.heal_file)]
    if bomb_dir is not None:
        argv += ["--bomb-dir", str(bomb_dir)]
    proc = Proc(argv, {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}, workdir / "space.log").start()
    try:
        wait_until(
            lambda: httpx.get(space.url + "config", timeout=2).status_code == 200,
            "scripted Space",
            180,
            proc.proc,
        )
    except (TimeoutError, RuntimeError):
        proc.stop()
        raise RuntimeError(f"scripted Space did not start:\n{proc.log()[-3000:]}") from None
    return proc, space
