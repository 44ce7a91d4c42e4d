"""Failed Space calls: retries with back-off, dead letters, `ghibli dlq`, permanent errors, quota waits.

The Space is tests/apps/scripted_space.py (a real Gradio app): prompts with "fail" raise until its
heal file exists, "reject" raises a validation error, "quota" raises the ZeroGPU quota error
with "Try again in 0:00:02". Its call log counts the calls really made.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from ghibli.dead_letters import DeadLetters
from jobs.model import JobRecord, Status
from tests.consumer_kit import ScriptedSpace, consumer, pipeline, start_scripted_space
from tests.procs import Proc, RedisServer, base_env, ghibli

# System tier: starts processes beyond redis-server (docs/tests.md).
pytestmark = [pytest.mark.system, pytest.mark.anyio]

MAX_ATTEMPTS = 3


@pytest.fixture(scope="module")
def scripted_space(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScriptedSpace]:
    proc, space = start_scripted_space(tmp_path_factory.mktemp("scripted-space"))
    yield space
    proc.stop()


def dlq(redis: RedisServer, log_dir: Path, *args: str) -> tuple[int, str]:
    """Run `ghibli dlq ...` to completion; its exit code and output."""
    log = log_dir / f"dlq-{time.monotonic_ns()}.log"
    proc = ghibli(["dlq", *args], base_env(REDIS_URL=redis.url), log).start()
    return proc.wait(120), proc.log()


async def test_poison_job_is_dead_lettered_after_max_attempts_and_replay_lets_it_succeed(
    redis_server: RedisServer, scripted_space: ScriptedSpace, procs: list[Proc], tmp_path: Path
) -> None:
    scripted_space.heal_file.unlink(missing_ok=True)
    procs.append(
        consumer(
            redis_server.url,
            scripted_space.url,
            tmp_path,
            "failures",
            concurrency="3",
            max_attempts=str(MAX_ATTEMPTS),
            retry_base_seconds="0.5",
            retry_cap_seconds="1",
            token_max_in_flight="16",
        ).start()
    )
    async with pipeline(redis_server.url) as pipe:
        [poison] = await pipe.submit(prompt="fail poison")
        [rejected] = await pipe.submit(prompt="reject me")
        seen_retrying: list[JobRecord] = []

        def note(records: dict[str, JobRecord]) -> None:
            if records[poison].status is Status.RETRYING:
                seen_retrying.append(records[poison])

        records = await pipe.wait_for([poison, rejected], timeout_s=180, seen=note)

        # Transient failures: retried with back-off (visible as 'retrying' with its due time),
        # then given up on: failed + a dead letter with the last error, entry acked and deleted.
        dead = records[poison]
        assert (dead.status, dead.phase, dead.failures) == (Status.FAILED, "dead_lettered", MAX_ATTEMPTS)
        assert dead.error_code == "space_error"
        assert "Scripted failure" in dead.error_message
        assert [c["outcome"] for c in scripted_space.calls("fail poison")] == ["failed"] * MAX_ATTEMPTS
        assert seen_retrying, "the job was never seen waiting for its retry"
        assert all(r.resume_at > r.finished_at and r.error_code == "space_error" for r in seen_retrying)
        [letter] = await DeadLetters(pipe.redis, pipe.keys, job_ttl_s=3600).page()
        assert (letter.job, letter.reason, letter.failures) == (poison, "max_attempts", MAX_ATTEMPTS)
        assert "Scripted failure" in letter.error_message

        # A permanent error fails the job at once: one call, no retry, no dead letter.
        failed = records[rejected]
        assert (failed.status, failed.error_code, failed.failures) == (Status.FAILED, "space_rejected", 0)
        assert "greater than maximum value" in failed.error_message
        assert len(scripted_space.calls("reject me")) == 1

        code, out = dlq(redis_server, tmp_path, "list")
        assert code == 0, out
        assert poison in out
        assert "max_attempts" in out
        assert "Scripted failure" in out
        assert rejected not in out

        # A job id prefix is completed among the dead letters (git-style); one no letter has is refused.
        code, out = dlq(redis_server, tmp_path, "replay", "g00d")
        assert code == 2, out
        assert "not a job id" in out
        other = next(c for c in "0123456789abcdef" if c != poison[0])
        code, out = dlq(redis_server, tmp_path, "replay", other)
        assert code == 2, out
        assert f"no job starting with '{other}' among the 1 dead letters" in out
        scripted_space.heal_file.touch()
        code, out = dlq(redis_server, tmp_path, "replay", poison[:6])
        assert code == 0, out
        assert "1 of 1 replayed" in out
        replayed = (await pipe.wait_for([poison], timeout_s=120))[poison]
        assert (replayed.status, replayed.failures, replayed.attempt) == (
            Status.SUCCEEDED,
            0,
            MAX_ATTEMPTS + 1,
        )
        assert await pipe.blobs.get(replayed.result_key) is not None
        code, out = dlq(redis_server, tmp_path, "list")
        assert "0 dead letter(s)" in out
        code, out = dlq(redis_server, tmp_path, "replay", "--all")
        assert code == 0
        assert "0 of 0 replayed" in out
        assert await pipe.redis.xlen(pipe.keys.stream) == 0
        assert await pipe.redis.zcard(pipe.keys.delayed) == 0


async def test_quota_errors_park_the_job_without_counting_a_failure(
    redis_server: RedisServer, scripted_space: ScriptedSpace, procs: list[Proc], tmp_path: Path
) -> None:
    scripted_space.heal_file.unlink(missing_ok=True)
    procs.append(
        consumer(
            redis_server.url,
            scripted_space.url,
            tmp_path,
            "quota",
            max_attempts="2",
            token_max_in_flight="16",
        ).start()
    )
    async with pipeline(redis_server.url) as pipe:
        [job_id] = await pipe.submit(prompt="quota please")
        waiting = (
            await pipe.wait_for([job_id], lambda r: r.status is Status.WAITING_FOR_QUOTA, timeout_s=180)
        )[job_id]
        assert waiting.failures == 0
        assert waiting.resume_at > waiting.started_at
        assert await pipe.redis.zscore(pipe.keys.delayed, job_id) == waiting.resume_at
        # It comes back by itself when the quota resumes, and keeps waiting while it is short:
        # more quota errors than max_attempts, and still never failed.
        while len(scripted_space.calls("quota please")) <= 2:
            assert (await pipe.jobs([job_id]))[job_id].status in (
                Status.WAITING_FOR_QUOTA,
                Status.QUEUED,
                Status.RUNNING,
            )
            await anyio.sleep(0.5)
        scripted_space.heal_file.touch()
        done = (await pipe.wait_for([job_id], timeout_s=120))[job_id]
        assert (done.status, done.failures) == (Status.SUCCEEDED, 0)
