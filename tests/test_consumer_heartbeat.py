"""Heartbeat take-over with real consumers: the default settings (lease 30 s; heartbeat every 1 s,
timeout 5 s), a real redis-server and the scripted Gradio app ("first-slow:N" prompts take N s the
first time, so the first consumer is still calling when the test is ready, and 0.2 s after).

A consumer that is killed, frozen, or leaves while Redis is away loses its running job within
about the heartbeat timeout and one scan, not a lease; one that wakes up from a freeze cannot
write over the job it lost.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import pytest

from consumers.recovery import takeover_guard_s
from jobs.model import JobRecord, Status
from tests.consumer_kit import (
    Pipeline,
    ScriptedSpace,
    calling,
    consumer,
    logged,
    pipeline,
    start_scripted_space,
)
from tests.procs import Proc, RedisServer, wait_until

# System tier: starts processes beyond redis-server (docs/tests.md).
pytestmark = [pytest.mark.system, pytest.mark.anyio]

HEARTBEAT_TIMEOUT_S = 5.0  # GHIBLI_HEARTBEAT_TIMEOUT_SECONDS' default
LEASE_S = 30.0  # GHIBLI_LEASE_SECONDS' default
BOUND_S = 10.0  # heartbeat timeout + one scan (1 s) + a generous margin for a loaded machine


@pytest.fixture(scope="module")
def scripted_space(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScriptedSpace]:
    proc, space = start_scripted_space(tmp_path_factory.mktemp("scripted-space"))
    yield space
    proc.stop()


def start(
    procs: list[Proc], redis_url: str, space: ScriptedSpace, log_dir: Path, name: str, **settings: str
) -> Proc:
    settings.setdefault("token_max_in_flight", "32")
    proc = consumer(redis_url, space.url, log_dir, name, **settings).start()
    procs.append(proc)
    return proc


async def ready_to_take_over(pipe: Pipeline, rescuer: Proc) -> None:
    """The rescuer runs, and Redis has been up long enough that take-overs are allowed at all
    (consumers/recovery.py: after a restart, live consumers first get time to beat again)."""
    wait_until(lambda: logged(rescuer, "consumer started"), "rescuer started", 180)
    uptime = float((await pipe.redis.info("server"))["uptime_in_seconds"])
    await anyio.sleep(max(0.0, takeover_guard_s(HEARTBEAT_TIMEOUT_S) - uptime))


def rerun(name: str) -> Callable[[JobRecord], bool]:
    """The job runs again (or has run again) on this consumer."""
    return lambda r: r.attempt >= 2 and r.consumer == name and r.status in (Status.RUNNING, Status.SUCCEEDED)


async def terminal_events(pipe: Pipeline, job_id: str) -> list[str]:
    rows = await pipe.redis.xrange(pipe.keys.events, "-", "+")
    return [
        f[b"s"].decode()
        for _, f in rows
        if f[b"job"].decode() == job_id and Status(f[b"s"].decode()).terminal
    ]


async def test_a_killed_consumers_job_runs_again_within_the_heartbeat_timeout(
    redis_server: RedisServer, scripted_space: ScriptedSpace, procs: list[Proc], tmp_path: Path
) -> None:
    async with pipeline(redis_server.url) as pipe:
        [job_id] = await pipe.submit(prompt="first-slow:120 killed")
        victim = start(procs, redis_server.url, scripted_space, tmp_path, "victim", concurrency="1")
        await pipe.wait_for([job_id], lambda r: calling(r) and r.consumer == "victim", timeout_s=180)
        rescuer = start(procs, redis_server.url, scripted_space, tmp_path, "rescuer")
        await ready_to_take_over(pipe, rescuer)
        victim.signal(signal.SIGKILL)
        killed = time.monotonic()
        victim.wait(10)
        await pipe.wait_for([job_id], rerun("rescuer"), timeout_s=LEASE_S + 30)
        took = time.monotonic() - killed
        done = (await pipe.wait_for([job_id], timeout_s=60))[job_id]
        print(f"\nrunning again {took:.1f} s after SIGKILL (heartbeat timeout 5 s, lease 30 s)")
        assert (done.status, done.consumer, done.attempt) == (Status.SUCCEEDED, "rescuer", 2)
        assert took < BOUND_S, rescuer.log()[-3000:]
        assert logged(rescuer, "entry taken over", reason="heartbeat_expired")
        assert await pipe.blobs.get(done.result_key) is not None
        assert await pipe.pending() == 0
        # The dead consumer left the group with its last entry (takeover.lua removes it).
        names = [c["name"] for c in await pipe.redis.xinfo_consumers(pipe.keys.stream, pipe.keys.group)]
        assert b"victim" not in names


async def test_a_frozen_consumer_loses_its_job_to_the_heartbeat_and_cannot_write_when_it_wakes(
    redis_server: RedisServer, scripted_space: ScriptedSpace, procs: list[Proc], tmp_path: Path
) -> None:
    async with pipeline(redis_server.url) as pipe:
        prompt = "first-slow:45 frozen"
        [job_id] = await pipe.submit(prompt=prompt)
        frozen = start(procs, redis_server.url, scripted_space, tmp_path, "frozen", concurrency="1")
        await pipe.wait_for([job_id], lambda r: calling(r) and r.consumer == "frozen", timeout_s=180)
        rescuer = start(procs, redis_server.url, scripted_space, tmp_path, "thaw-rescuer")
        await ready_to_take_over(pipe, rescuer)
        frozen.signal(signal.SIGSTOP)  # past the heartbeat timeout, well under the lease
        stopped = time.monotonic()
        await pipe.wait_for([job_id], rerun("thaw-rescuer"), timeout_s=LEASE_S + 30)
        took = time.monotonic() - stopped
        done = (await pipe.wait_for([job_id], timeout_s=60))[job_id]
        print(f"\ntaken over {took:.1f} s after SIGSTOP (heartbeat timeout 5 s, lease 30 s)")
        assert took < BOUND_S, rescuer.log()[-3000:]
        assert (done.status, done.consumer, done.attempt) == (Status.SUCCEEDED, "thaw-rescuer", 2)
        assert done.result_key.startswith(f"out/{job_id}/2-")  # named per claim: attempt-nonce

        # It wakes up once its own call has ended at the Space: it holds a result, for a job that is
        # no longer its own.
        wait_until(lambda: len(scripted_space.calls(prompt)) == 2, "the frozen one's call ends", 90)
        frozen.signal(signal.SIGCONT)
        wait_until(lambda: logged(frozen, "stopping job", reason="taken_over"), "the frozen one notices", 60)
        await anyio.sleep(2)
        after: JobRecord = (await pipe.jobs([job_id]))[job_id]
        assert (after.version, after.attempt, after.result_key, after.consumer, after.status) == (
            done.version,
            2,
            done.result_key,
            "thaw-rescuer",
            Status.SUCCEEDED,
        ), frozen.log()[-3000:]
        # It stored nothing: the rescuer's is the job's only result blob.
        assert await pipe.redis.keys(pipe.keys.blob(f"out/{job_id}/*")) == [
            pipe.keys.blob(done.result_key).encode()
        ]
        assert await terminal_events(pipe, job_id) == ["succeeded"]  # one terminal state, once
        assert await pipe.pending() == 0
        # It lives on: beating again under its own name, it works the queue like any other.
        wait_until(lambda: logged(frozen, "heartbeat late"), "the late heartbeat is logged", 30)
        assert frozen.alive()
        assert await pipe.redis.exists(pipe.keys.alive("frozen"))
        [later] = await pipe.submit(prompt="after the thaw")
        assert (await pipe.wait_for([later], timeout_s=60))[later].status is Status.SUCCEEDED


async def test_a_consumer_that_left_while_redis_was_away_loses_its_job_to_the_heartbeat(
    scripted_space: ScriptedSpace, procs: list[Proc], tmp_path: Path
) -> None:
    server = RedisServer(tmp_path / "redis", appendonly=True, extra=("--appendfsync", "always")).start()
    try:
        async with pipeline(server.url) as pipe:
            [job_id] = await pipe.submit(prompt="first-slow:150 left while redis was away")
            leaving = start(
                procs, server.url, scripted_space, tmp_path, "leaving", shutdown_grace_seconds="1"
            )
            await pipe.wait_for([job_id], lambda r: calling(r) and r.consumer == "leaving", timeout_s=180)
            standby = start(procs, server.url, scripted_space, tmp_path, "standby")
            wait_until(lambda: logged(standby, "consumer started"), "standby started", 180)
        server.stop()
        leaving.signal(signal.SIGTERM)
        assert leaving.wait(60) == 0, leaving.log()[-3000:]
        server.start()
        restarted = time.monotonic()
        async with pipeline(server.url) as pipe:
            # Nothing was handed back: the entry is still pending under the consumer that left.
            [row] = await pipe.redis.xpending_range(pipe.keys.stream, pipe.keys.group, "-", "+", 10)
            assert row["consumer"] == b"leaving"
            await pipe.wait_for([job_id], rerun("standby"), timeout_s=LEASE_S + 60)
            took = time.monotonic() - restarted
            done = (await pipe.wait_for([job_id], timeout_s=60))[job_id]
        print(f"\nrunning again {took:.1f} s after Redis came back (heartbeat timeout 5 s, lease 30 s)")
        assert (done.status, done.attempt) == (Status.SUCCEEDED, 2)
        assert logged(standby, "entry taken over", reason="heartbeat_expired"), standby.log()[-3000:]
        # After a restart take-overs wait until live consumers could beat again (7 s), yet not a
        # lease: the lease path would wait 2/3 of the lease for Redis's uptime, then the lease.
        assert took < takeover_guard_s(HEARTBEAT_TIMEOUT_S) + BOUND_S
    finally:
        server.stop()
