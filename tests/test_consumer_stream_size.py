"""The jobs stream does not grow: after XACK every entry is deleted, so XLEN <= unfinished jobs.

1000 jobs through two real consumer processes and the real offline Space (fast engine, no delay).
While they run, atomic snapshots (MULTI: XLEN + every job's status) check the invariant; at the
end the stream, the PEL and the entry index are empty.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from jobs.model import Status
from tests.consumer_kit import Pipeline, consumer, pipeline
from tests.procs import Proc, RedisServer, start_space

# System tier: starts processes beyond redis-server (docs/tests.md).
pytestmark = [pytest.mark.system, pytest.mark.anyio]

JOBS = 1000


@pytest.fixture(scope="module")
def fast_space(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("fast-space")
    proc, url = start_space(workdir, engine="fast", extra=["--concurrency", "16"], timeout_s=240)
    yield url
    proc.stop()


async def snapshot(pipe: Pipeline, ids: list[str]) -> tuple[int, int]:
    """(XLEN, unfinished jobs) at one instant: MULTI/EXEC runs them with nothing in between."""
    async with pipe.redis.pipeline(transaction=True) as tx:
        tx.xlen(pipe.keys.stream)
        for job_id in ids:
            tx.hget(pipe.keys.job(job_id), "status")
        length, *statuses = await tx.execute()
    unfinished = sum(not Status(s.decode()).terminal for s in statuses)
    return int(length), unfinished


@pytest.mark.timeout(900)
async def test_stream_length_stays_within_unfinished_jobs(
    redis_server: RedisServer, fast_space: str, procs: list[Proc], tmp_path: Path
) -> None:
    for i in range(2):
        procs.append(
            consumer(
                redis_server.url,
                fast_space,
                tmp_path,
                f"bulk-{i}",
                concurrency="8",
                token_max_in_flight="64",
            ).start()
        )
    async with pipeline(redis_server.url) as pipe:
        ids = await pipe.submit(JOBS)
        began = time.monotonic()
        samples: list[tuple[int, int]] = []
        while True:
            length, unfinished = await snapshot(pipe, ids)
            samples.append((length, unfinished))
            assert length <= unfinished, samples[-5:]
            if unfinished == 0:
                break
            assert time.monotonic() - began < 800, f"{unfinished} jobs unfinished"
            for proc in procs:
                assert proc.alive(), proc.log()[-3000:]
            await anyio.sleep(1)
        took = time.monotonic() - began
        statuses = await pipe.statuses(ids)
        assert Counter(statuses.values()) == {Status.SUCCEEDED: JOBS}
        rate = JOBS / took
        print(f"\n{JOBS} jobs in {took:.0f} s ({rate:.1f}/s); (XLEN, unfinished) samples: {samples[::10]}")
        assert await pipe.redis.xlen(pipe.keys.stream) == 0
        assert await pipe.pending() == 0
        assert await pipe.redis.hlen(pipe.keys.entries) == 0
