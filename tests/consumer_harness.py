"""Consumers in the test's own process, for fast tests of the whole job path (docs/tests.md).

The system tests run `ghibli consume` as a process, as people do; that costs a Python start-up, a
Gradio client import and a readiness wait per consumer. Here the same `Consumer` runs in the test's
event loop against an offline Space launched in-process (a thread of this process), so a test of
submit -> claim -> call -> finish -> result takes well under a second once Gradio is imported.

Burst mode, as arq's workers have it: `Harness.burst(job_ids)` runs the consumers until those jobs
are over, then stops them the way SIGTERM does (drain, hand back, goodbye) and returns the jobs'
records. Each test gets its own key prefix on one Redis shared by the session, so tests cannot see
each other's keys and no Redis is started per test.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import msgspec

from consumers.space_call import SpaceCaller
from consumers.worker import Consumer
from jobs.blobs import open_blob_store
from jobs.keys import Keys
from jobs.model import JobRecord, Status
from jobs.redis_conn import connect
from jobs.settings import Settings
from jobs.store import JobStore
from sandbox.pool import DecodePool, PoolLimits
from tests.procs import free_port

__all__ = ["Harness", "InProcessSpace", "in_process_space", "test_prefix"]

TERMINAL = {Status.SUCCEEDED, Status.FAILED, Status.CANCELLED}


@dataclass(frozen=True)
class InProcessSpace:
    """The offline Space (fast engine) served by a thread of this process, with its call log."""

    url: str
    call_log: Path

    def calls(self, seed: int | None = None) -> list[dict[str, Any]]:
        """Calls the Space has logged (finished or failed), optionally those with one seed."""
        if not self.call_log.exists():
            return []
        rows = [json.loads(line) for line in self.call_log.read_text().splitlines() if line]
        return [r for r in rows if seed is None or r.get("seed") == seed]


def in_process_space(workdir: Path, *, delay_s: float = 0.0) -> Iterator[InProcessSpace]:
    """Generator for a fixture: launch the Space, yield it, close it."""
    from space.app import SpaceOptions, launch  # Gradio is imported only by tests that use it

    port = free_port()
    call_log = workdir / "calls.jsonl"
    demo = launch(
        SpaceOptions(engine="fast", delay_s=delay_s, concurrency=8, call_log=call_log),
        "127.0.0.1",
        port,
        block=False,
    )
    try:
        yield InProcessSpace(f"http://127.0.0.1:{port}/", call_log)
    finally:
        demo.close()


def test_prefix() -> str:
    """A key prefix of its own for one test (a hash tag, as the settings require)."""
    return f"{{t{secrets.token_hex(6)}}}:"


test_prefix.__test__ = False  # type: ignore[attr-defined] # a helper, not a test for pytest


class Harness:
    """`count` consumers with `settings`, run in this event loop by `burst()`."""

    def __init__(self, settings: Settings, *, count: int = 1) -> None:
        self.settings = settings
        self.count = count
        self.keys = Keys(settings.key_prefix, settings.stream_name, settings.group_name)

    async def burst(self, job_ids: list[str], *, timeout_s: float = 60) -> dict[str, JobRecord]:
        """Run the consumers until every job in `job_ids` is over; stop them; return the records."""
        async with self._consumers() as consumers, anyio.create_task_group() as tg:
            for consumer in consumers:
                tg.start_soon(consumer.run)
            try:
                with anyio.fail_after(timeout_s):
                    records = await self._wait_over(consumers[0].store, job_ids)
            finally:
                for consumer in consumers:
                    consumer.stop()
        return records

    @staticmethod
    async def _wait_over(store: JobStore, job_ids: list[str]) -> dict[str, JobRecord]:
        while True:
            records = {job_id: await store.get(job_id) for job_id in job_ids}
            over = {k: r for k, r in records.items() if r is not None and r.status in TERMINAL}
            if len(over) == len(job_ids):
                return over
            await anyio.sleep(0.02)

    @asynccontextmanager
    async def _consumers(self) -> AsyncIterator[list[Consumer]]:
        async with AsyncExitStack() as stack:
            consumers = []
            for n in range(self.count):
                settings = msgspec.structs.replace(self.settings, consumer_name=f"harness-{n}")
                redis = connect(settings.redis_url, name=f"consumer:harness-{n}")
                stack.push_async_callback(redis.aclose)
                store = JobStore.from_settings(redis, self.keys, settings)
                blobs = open_blob_store(redis, self.keys, settings.blob_dir)
                decoder = await stack.enter_async_context(DecodePool(PoolLimits(workers=1)))
                caller = await SpaceCaller.open(settings, redis, self.keys, decoder, environ={})
                stack.push_async_callback(caller.aclose)
                consumers.append(Consumer(settings, store, blobs, caller))
            yield consumers
