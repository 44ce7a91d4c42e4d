"""Chaos: 200 jobs while a consumer is SIGKILLed every 2 s and replaced; none lost, none stuck.

The Space is the real offline Space (fast engine, 1 to 3 s per call) with its call log, so the
test counts the Space calls that really ran twice. The consumers run with the default recovery
settings (heartbeat timeout 5 s, lease 30 s): a killed consumer's jobs move on by heartbeat, and
none waits for a lease. A crash may cost at most one repeated call per job it interrupted, i.e. at
most kills x per-process concurrency repeated calls in all.
"""

from __future__ import annotations

import json
import random
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from jobs.model import Status
from tests.consumer_kit import consumer, logged, pipeline
from tests.procs import Proc, RedisServer, start_space

# System tier: starts processes beyond redis-server (docs/tests.md).
pytestmark = [pytest.mark.system, pytest.mark.anyio]

JOBS = 200
PROCESSES = 3
CONCURRENCY = 4
KILL_EVERY_S = 2.0


@pytest.fixture(scope="module")
def chaos_space(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    workdir = tmp_path_factory.mktemp("chaos-space")
    call_log = workdir / "calls.jsonl"
    extra = ["--delay", "1", "--jitter", "2", "--concurrency", "32", "--call-log", str(call_log)]
    proc, url = start_space(workdir, engine="fast", extra=extra, timeout_s=240)
    yield url, call_log
    proc.stop()


@pytest.mark.timeout(900)
async def test_jobs_survive_consumers_killed_every_two_seconds(
    redis_server: RedisServer, chaos_space: tuple[str, Path], procs: list[Proc], tmp_path: Path
) -> None:
    space_url, call_log = chaos_space
    started = 0

    names: dict[int, str] = {}  # id(proc) -> consumer name

    def new_consumer() -> Proc:
        nonlocal started
        started += 1
        name = f"chaos-{started}"
        proc = consumer(
            redis_server.url,
            space_url,
            tmp_path,
            name,
            concurrency=str(CONCURRENCY),
            # A job may be interrupted by several kills in a row here; the delivery limit is not
            # what this test is about (tests/test_consumer_scripts.py covers it).
            max_deliveries="1000",
            token_max_in_flight="64",
        ).start()
        procs.append(proc)
        names[id(proc)] = name
        return proc

    rng = random.Random(20_26)
    async with pipeline(redis_server.url) as pipe:
        ids = await pipe.submit(JOBS)
        live = [new_consumer() for _ in range(PROCESSES)]
        kills = 0
        wall_began = time.time()
        deadline = time.monotonic() + 800
        while True:
            statuses = await pipe.statuses(ids)
            if all(s.terminal for s in statuses.values()):
                break
            assert time.monotonic() < deadline, Counter(s.value for s in statuses.values())
            for proc in live:
                assert proc.alive(), f"a consumer died by itself:\n{proc.log()[-3000:]}"
            # Kill only consumers that are working, so every kill can interrupt jobs, and leave one
            # working: on a loaded machine a new consumer takes longer than 2 s to start, and
            # killing every one as soon as it starts would only measure start-up time.
            ready = [p for p in live if logged(p, "consumer started")]
            if len(ready) >= 2:
                victim = rng.choice(ready)
                victim.signal(signal.SIGKILL)
                victim.wait(10)
                live.remove(victim)
                kills += 1
                live.append(new_consumer())
            await anyio.sleep(KILL_EVERY_S)
        records = await pipe.jobs(ids)
        last_success_s = max(r.finished_at for r in records.values()) / 1000 - wall_began
        takeovers = Counter(
            reason
            for proc in procs
            for reason in ("heartbeat_expired", "lease_expired")
            if logged(proc, "entry taken over", reason=reason)
        )
        assert Counter(r.status for r in records.values()) == {Status.SUCCEEDED: JOBS}
        for record in records.values():
            assert await pipe.blobs.get(record.result_key) is not None, record
        repeated_claims = sum(r.attempt - 1 for r in records.values())
        calls = [json.loads(line) for line in call_log.read_text().splitlines() if line]
        per_seed = Counter(c["seed"] for c in calls)
        assert set(per_seed) == set(range(JOBS))
        repeated_calls = sum(n - 1 for n in per_seed.values())
        print(
            f"\n{JOBS} jobs, the last succeeded after {last_success_s:.1f} s; {kills} kills: {len(calls)} "
            f"Space calls, {repeated_calls} ran twice or more (repeated claims: {repeated_claims}); "
            f"allowed: {kills * CONCURRENCY}; consumers that took over by heartbeat / by lease: "
            f"{takeovers['heartbeat_expired']} / {takeovers['lease_expired']}"
        )
        assert repeated_calls <= kills * CONCURRENCY
        assert takeovers["heartbeat_expired"] > 0  # killed consumers' jobs moved on by heartbeat
        # Nothing stuck or left behind: no entry in the stream, no pending entry, no retry waiting.
        assert await pipe.redis.xlen(pipe.keys.stream) == 0
        assert await pipe.pending() == 0
        assert await pipe.redis.zcard(pipe.keys.delayed) == 0
        assert await pipe.redis.hlen(pipe.keys.entries) == 0
        # The killed consumers own nothing now: the live ones remove them from the group.
        live_names = {names[id(p)] for p in live}
        with anyio.fail_after(60):
            while True:
                infos = await pipe.redis.xinfo_consumers(pipe.keys.stream, pipe.keys.group)
                if {c["name"].decode() for c in infos} <= live_names:
                    break
                await anyio.sleep(1)
