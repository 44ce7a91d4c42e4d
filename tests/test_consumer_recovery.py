"""Consumers that stall, stop or lose their job: zombies, graceful shutdown, hand-back, cancellation.

Real `ghibli consume` processes, a real redis-server and a real Gradio app (tests/apps/
scripted_space.py: prompts with "slow" take 5 s) whose call log counts the Space calls made.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from consumers.recovery import restart_guard_s
from jobs.model import Status
from jobs.stop_signals import StopRequests
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

pytestmark = pytest.mark.anyio

SLOW_S = 5.0


@pytest.fixture(scope="module")
def scripted_space(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScriptedSpace]:
    """Started once per module: Gradio takes seconds to start."""
    proc, space = start_scripted_space(tmp_path_factory.mktemp("scripted-space"), slow_s=SLOW_S)
    yield space
    proc.stop()


def start(
    procs: list[Proc], redis: RedisServer, space: ScriptedSpace, log_dir: Path, name: str, **settings: str
) -> Proc:
    settings.setdefault("token_max_in_flight", "32")
    proc = consumer(redis.url, space.url, log_dir, name, **settings).start()
    procs.append(proc)
    return proc


@pytest.mark.system
async def test_a_zombie_cannot_overwrite_the_result_of_the_consumer_that_took_over(
    redis_server: RedisServer, scripted_space: ScriptedSpace, procs: list[Proc], tmp_path: Path
) -> None:
    async with pipeline(redis_server.url) as pipe:
        [job_id] = await pipe.submit(prompt="slow zombie")
        zombie = start(
            procs, redis_server, scripted_space, tmp_path, "zombie", lease_seconds="3", concurrency="1"
        )
        await pipe.wait_for([job_id], lambda r: calling(r) and r.consumer == "zombie", timeout_s=180)
        zombie.signal(signal.SIGSTOP)
        stopped_at = time.monotonic()
        rescuer = start(procs, redis_server, scripted_space, tmp_path, "rescuer", lease_seconds="3")
        done = (await pipe.wait_for([job_id], timeout_s=180))[job_id]
        assert (done.status, done.consumer, done.attempt) == (Status.SUCCEEDED, "rescuer", 2), rescuer.log()[
            -3000:
        ]
        assert done.result_key.startswith(f"out/{job_id}/2-")
        print(f"taken over and finished {time.monotonic() - stopped_at:.1f} s after the SIGSTOP")

        # The zombie wakes up: its call has finished at the Space meanwhile, but it lost the job.
        zombie.signal(signal.SIGCONT)
        wait_until(
            lambda: logged(zombie, "stopping job", reason="taken_over"), "zombie notices the take-over", 60
        )
        await anyio.sleep(2)
        after = (await pipe.jobs([job_id]))[job_id]
        assert (after.version, after.attempt, after.result_key, after.consumer) == (
            done.version,
            2,
            done.result_key,
            "rescuer",
        ), zombie.log()[-3000:]
        assert await pipe.blobs.get(done.result_key) is not None
        # The zombie stored nothing: the rescuer's is the job's only result blob.
        assert await pipe.redis.keys(pipe.keys.blob(f"out/{job_id}/*")) == [
            pipe.keys.blob(done.result_key).encode()
        ]
        assert await pipe.pending() == 0
        calls = scripted_space.calls("slow zombie")
        print(f"Space calls for the job: {len(calls)}")
        assert len(calls) <= 2


@pytest.mark.system
async def test_sigterm_lets_the_running_call_finish_and_exits_0(
    redis_server: RedisServer, scripted_space: ScriptedSpace, procs: list[Proc], tmp_path: Path
) -> None:
    async with pipeline(redis_server.url) as pipe:
        [job_id] = await pipe.submit(prompt="slow graceful")
        proc = start(procs, redis_server, scripted_space, tmp_path, "graceful", shutdown_grace_seconds="30")
        await pipe.wait_for([job_id], calling, timeout_s=180)
        signalled = time.monotonic()
        proc.signal(signal.SIGTERM)
        code = proc.wait(60)
        took = time.monotonic() - signalled
        print(f"exited {code} {took:.1f} s after SIGTERM (grace 30 s, call {SLOW_S} s)")
        assert code == 0, proc.log()[-3000:]
        assert took < 30
        record = (await pipe.jobs([job_id]))[job_id]
        assert (record.status, record.attempt) == (Status.SUCCEEDED, 1)
        assert await pipe.blobs.get(record.result_key) is not None
        assert [c["outcome"] for c in scripted_space.calls("slow graceful")] == ["ok"]
        # Owning nothing, it left the group and dropped its liveness key.
        names = [c["name"] for c in await pipe.redis.xinfo_consumers(pipe.keys.stream, pipe.keys.group)]
        assert b"graceful" not in names
        assert not await pipe.redis.exists(pipe.keys.alive("graceful"))


@pytest.mark.system
async def test_a_call_still_running_after_the_grace_period_is_handed_over_at_once(
    redis_server: RedisServer, scripted_space: ScriptedSpace, procs: list[Proc], tmp_path: Path
) -> None:
    lease = 45.0
    async with pipeline(redis_server.url) as pipe:
        [job_id] = await pipe.submit(prompt="first-slow:150 handback")
        leaving = start(
            procs,
            redis_server,
            scripted_space,
            tmp_path,
            "leaving",
            shutdown_grace_seconds="1",
            lease_seconds=str(lease),
        )
        await pipe.wait_for([job_id], lambda r: calling(r) and r.consumer == "leaving", timeout_s=180)
        standby = start(procs, redis_server, scripted_space, tmp_path, "standby", lease_seconds=str(lease))
        wait_until(lambda: logged(standby, "consumer started"), "standby consumer", 180)
        # Reclaiming waits until Redis has been up for two renewal periods (downtime counts as
        # idle time); that guard is not what this test measures.
        uptime = float((await pipe.redis.info("server"))["uptime_in_seconds"])
        await anyio.sleep(max(0.0, restart_guard_s(lease) - uptime))
        signalled = time.monotonic()
        leaving.signal(signal.SIGTERM)
        assert leaving.wait(30) == 0, leaving.log()[-3000:]
        record = (await pipe.wait_for([job_id], timeout_s=lease))[job_id]
        took = time.monotonic() - signalled
        print(f"handed over and finished {took:.1f} s after SIGTERM (lease {lease:.0f} s)")
        assert (record.status, record.consumer, record.attempt) == (Status.SUCCEEDED, "standby", 2)
        assert took < lease  # not reclaimed by lease expiry: it was released
        assert logged(leaving, "handed back for immediate reclaim")


@pytest.mark.system
async def test_cancelled_jobs_are_not_started_and_running_ones_are_stopped(
    redis_server: RedisServer, scripted_space: ScriptedSpace, procs: list[Proc], tmp_path: Path
) -> None:
    async with pipeline(redis_server.url) as pipe:
        [early] = await pipe.submit(prompt="cancelled before its turn")
        assert await pipe.store.cancel(early) == "ok"
        proc = start(procs, redis_server, scripted_space, tmp_path, "canceller")
        [late] = await pipe.submit(prompt="first-slow:120 cancelled while running")
        [erased] = await pipe.submit(prompt="first-slow:120 erased while running")
        await pipe.wait_for([late, erased], calling, timeout_s=180)
        cancelled_at = time.monotonic()
        assert await pipe.store.cancel(late) == "ok"
        # DELETE /v1/jobs/{id} cancels, then erases the job hash.
        assert await pipe.store.cancel(erased) == "ok"
        await pipe.store.erase(erased)
        wait_until(
            lambda: (
                logged(proc, "stopping job", job_id=late, reason="cancelled")
                and logged(proc, "stopping job", job_id=erased, reason="missing")
            ),
            "the calls are stopped",
            30,
        )
        noticed = time.monotonic() - cancelled_at
        print(f"running jobs' calls stopped {noticed:.1f} s after the cancel")
        await _until_drained(pipe)
        assert not await pipe.redis.exists(pipe.keys.job(erased))
        assert not await pipe.redis.keys(pipe.keys.blob(f"out/{erased}/*"))
        records = await pipe.jobs([early, late])
        assert records[early].status is Status.CANCELLED
        assert records[early].attempt == 0  # never started
        assert scripted_space.calls("cancelled before its turn") == []
        assert records[late].status is Status.CANCELLED
        assert records[late].result_key == ""
        assert not await pipe.redis.keys(pipe.keys.blob(f"out/{late}/*"))


async def _until_drained(pipe: Pipeline, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while await pipe.pending() or await pipe.redis.xlen(pipe.keys.stream):
        assert time.monotonic() < deadline, "entries left in the stream"
        await anyio.sleep(0.2)


@pytest.mark.system
async def test_one_stop_request_delivered_twice_is_not_a_second_request(
    redis_server: RedisServer, scripted_space: ScriptedSpace, procs: list[Proc], tmp_path: Path
) -> None:
    """A terminal's SIGINT to the group and a supervisor's forwarded SIGTERM, 0.1 s apart: one drain."""
    async with pipeline(redis_server.url) as pipe:
        [job_id] = await pipe.submit(prompt="slow twice")
        proc = start(procs, redis_server, scripted_space, tmp_path, "twice", shutdown_grace_seconds="30")
        await pipe.wait_for([job_id], calling, timeout_s=180)
        proc.signal(signal.SIGINT)
        await anyio.sleep(0.1)
        proc.signal(signal.SIGTERM)
        assert proc.wait(60) == 0, proc.log()[-3000:]
        record = (await pipe.jobs([job_id]))[job_id]
        assert (record.status, record.attempt) == (Status.SUCCEEDED, 1), proc.log()[-3000:]
        assert logged(proc, "stop request repeated: the same request, still draining", signal="SIGTERM")
        assert not logged(proc, "stopping at once")
        assert [c["outcome"] for c in scripted_space.calls("slow twice")] == ["ok"]


@pytest.mark.system
async def test_sigquit_stops_at_once_and_hands_the_job_back(
    redis_server: RedisServer, scripted_space: ScriptedSpace, procs: list[Proc], tmp_path: Path
) -> None:
    """What `ghibli up` sends on a second Ctrl-C: no waiting, yet the entry is released to Redis."""
    async with pipeline(redis_server.url) as pipe:
        [job_id] = await pipe.submit(prompt="first-slow:150 quit")
        proc = start(procs, redis_server, scripted_space, tmp_path, "quitter", shutdown_grace_seconds="120")
        await pipe.wait_for([job_id], calling, timeout_s=180)
        proc.signal(signal.SIGTERM)
        await anyio.sleep(0.1)
        proc.signal(signal.SIGQUIT)
        signalled = time.monotonic()
        assert proc.wait(60) == 0, proc.log()[-3000:]
        took = time.monotonic() - signalled
        print(f"exited {took:.1f} s after SIGQUIT (grace 120 s, call 150 s)")
        assert took < 30
        assert logged(proc, "stopping at once", signal="SIGQUIT")
        assert logged(proc, "handed back for immediate reclaim", entries=1)
        [pending] = await pipe.redis.xpending_range(pipe.keys.stream, pipe.keys.group, "-", "+", 10)
        assert pending["time_since_delivered"] >= 3_600_000  # released: any consumer takes it at once


@pytest.mark.parametrize(
    ("signals", "verdicts"),
    [
        ([(signal.SIGINT, 0.0), (signal.SIGTERM, 0.4)], ["drain", "repeat"]),
        ([(signal.SIGINT, 0.0), (signal.SIGINT, 2.5)], ["drain", "now"]),
        ([(signal.SIGTERM, 0.0), (signal.SIGQUIT, 0.1), (signal.SIGTERM, 5.0)], ["drain", "now", "again"]),
        ([(signal.SIGQUIT, 0.0)], ["now"]),
    ],
)
def test_stop_requests_verdicts(signals: list[tuple[int, float]], verdicts: list[str]) -> None:
    requests = StopRequests(window_s=2.0)
    assert [requests.classify(signum, at) for signum, at in signals] == verdicts
