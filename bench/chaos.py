"""Chaos: jobs of a 1.5-s Space, 3 consumers x 1, one of them SIGKILLed every 2 s and replaced.

    uv run python -m bench.chaos                  # 60 jobs, the consumers' default settings
    uv run python -m bench.chaos --runs 3 --consumer-env GHIBLI_LEASE_SECONDS=10

The scenario of issue #21 (its figures: ~150 s until the last of 60 jobs succeeded with the 30-s
lease, 0.32 repeated calls per kill). Kills follow tests/test_chaos.py: every 2 s, while at least
two consumers have started (a new consumer takes seconds to start on a loaded machine, and killing
each one as it starts would only measure start-up), a random started one is killed and another
started. Prints, per run and as medians: seconds from queueing to the last job's success, kills,
Space calls, and calls that ran again for the same job (from the Space's call log) per kill and
per busy kill (a kill of a consumer that was running a job: only those can cost a repeated call;
faster take-overs keep consumers busier, so more kills hit a call), and how often a consumer that
was *not* killed lost a job to a take-over (`taken from live`: false take-overs, e.g. heartbeats
starved on a loaded machine) or logged a late heartbeat.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bench.photos import job_photo
from bench.pipeline import TERMINAL, JobQueue
from bench.procs import Proc, Stack

__all__ = ["ChaosRun", "run_chaos"]

SEED_BASE = 8_000_000


@dataclass(frozen=True, slots=True)
class ChaosRun:
    jobs: int
    succeeded: int
    seconds: float  # from queueing to the last success
    kills: int
    busy_kills: int  # kills of a consumer that was running a job
    calls: int
    repeated: int  # Space calls beyond the first for the same job (seed)
    taken_from_live: int  # jobs a consumer that was not killed lost to a take-over
    late_beats: int  # "heartbeat late" warnings of all consumers

    @property
    def repeated_per_kill(self) -> float:
        return self.repeated / self.kills if self.kills else 0.0

    @property
    def repeated_per_busy_kill(self) -> float:
        return self.repeated / self.busy_kills if self.busy_kills else 0.0

    def line(self) -> str:
        return (
            f"{self.succeeded}/{self.jobs} succeeded, last after {self.seconds:.1f} s; {self.kills} kills "
            f"({self.busy_kills} busy), {self.calls} Space calls, {self.repeated} repeated "
            f"({self.repeated_per_kill:.2f} per kill, {self.repeated_per_busy_kill:.2f} per busy kill); "
            f"taken from live consumers: {self.taken_from_live}; late heartbeats: {self.late_beats}"
        )


def run_chaos(
    workdir: Path,
    *,
    jobs: int = 60,
    consumers: int = 3,
    kill_every_s: float = 2.0,
    call_s: float = 1.5,
    consumer_env: dict[str, str] | None = None,
    seed: int = 2026,
) -> ChaosRun:
    stack = Stack(workdir, consumer_env=dict(consumer_env or {}))
    call_log = workdir / "calls.jsonl"
    try:
        space_url = stack.space(engine="fast", delay_s=call_s, concurrency=32, call_log=call_log)
        redis_url = stack.redis()
        chaos = _Chaos(stack, redis_url, space_url, consumers, kill_every_s, seed)
        succeeded, seconds = asyncio.run(chaos.run(JobQueue(redis_url, job_photo(workdir)[0]), jobs))
    finally:
        stack.close()
    calls, repeated = _repeated(call_log)
    events = _log_events(workdir)
    return ChaosRun(
        jobs,
        succeeded,
        seconds,
        chaos.kills,
        chaos.busy_kills,
        calls,
        repeated,
        taken_from_live=events[("stopping job", "taken_over")],
        late_beats=events[("heartbeat late", "")],
    )


class _Chaos:
    def __init__(
        self, stack: Stack, redis_url: str, space_url: str, consumers: int, kill_every_s: float, seed: int
    ) -> None:
        self.stack = stack
        self.redis_url = redis_url
        self.space_url = space_url
        self.kill_every_s = kill_every_s
        self.rng = random.Random(seed)
        self.live = [self._new() for _ in range(consumers)]
        self.kills = 0
        self.busy_kills = 0

    def _new(self) -> Proc:
        return self.stack.consumer(self.redis_url, self.space_url, concurrency=1)

    async def run(self, queue: JobQueue, jobs: int, timeout_s: float = 900) -> tuple[int, float]:
        """Queue the jobs, kill until every one has ended; (succeeded, seconds to the last success)."""
        try:
            began = time.time()
            ids = await queue.fill(jobs, size=256, seed_base=SEED_BASE)
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                statuses = await queue.times(ids)
                if all(job.status in TERMINAL for job in statuses):
                    break
                started = [proc for proc in self.live if "consumer started" in proc.log()]
                if len(started) >= 2:
                    victim = self.rng.choice(started)
                    self.busy_kills += await _running_on(queue, ids, victim.name.removeprefix("consumer-"))
                    victim.kill()
                    self.live.remove(victim)
                    self.live.append(self._new())
                    self.kills += 1
                await asyncio.sleep(self.kill_every_s)
            done = [job for job in await queue.times(ids) if job.status == "succeeded"]
            return len(done), max((job.finished_at for job in done), default=began) - began
        finally:
            await queue.aclose()


async def _running_on(queue: JobQueue, ids: list[str], consumer: str) -> int:
    """1 if this consumer is running one of the jobs, else 0."""
    async with queue.redis.pipeline(transaction=False) as pipe:
        for job_id in ids:
            pipe.hmget(queue.keys.job(job_id), ["status", "consumer"])
        rows = await pipe.execute()
    return int(any(status == b"running" and name == consumer.encode() for status, name in rows))


def _log_events(workdir: Path) -> Counter[tuple[str, str]]:
    """(event, reason) of every JSON line the consumers logged."""
    found: Counter[tuple[str, str]] = Counter()
    for path in workdir.glob("consumer-*.log"):
        for line in path.read_text(errors="replace").splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict):
                found[(str(row.get("event", "")), str(row.get("reason", "")))] += 1
    return found


def _repeated(call_log: Path) -> tuple[int, int]:
    calls = [json.loads(line) for line in call_log.read_text().splitlines() if line]
    per_seed = Counter(call["seed"] for call in calls)
    return len(calls), sum(n - 1 for n in per_seed.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.chaos",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--jobs", type=int, default=60)
    parser.add_argument("--consumers", type=int, default=3)
    parser.add_argument("--kill-every", type=float, default=2.0, metavar="SECONDS")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument(
        "--consumer-env", action="append", default=[], metavar="NAME=VALUE", help="repeatable"
    )
    args = parser.parse_args(argv)
    env = dict(item.split("=", 1) for item in args.consumer_env)
    results = []
    for index in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="ghibli-chaos-") as workdir:
            result = run_chaos(
                Path(workdir),
                jobs=args.jobs,
                consumers=args.consumers,
                kill_every_s=args.kill_every,
                consumer_env=env,
                seed=2026 + index,
            )
        print(f"run {index + 1}: {result.line()}", flush=True)
        results.append(result)
    if len(results) > 1:
        seconds = statistics.median(r.seconds for r in results)
        per_kill = statistics.median(r.repeated_per_kill for r in results)
        per_busy = statistics.median(r.repeated_per_busy_kill for r in results)
        print(
            f"median of {len(results)}: last success after {seconds:.1f} s, {per_kill:.2f} repeated per "
            f"kill, {per_busy:.2f} per busy kill"
        )
    return 0 if all(r.succeeded == r.jobs for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
