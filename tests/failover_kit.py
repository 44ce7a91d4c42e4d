"""The fail-over chaos run shared by the Sentinel and Cluster tests.

Real processes only: `ghibli ingest` and two `ghibli consume` processes on a REDIS_URL naming a
Sentinel set or a cluster, the offline Space (fast engine, slowed down) with its call log, and a
client that submits 200 photos over HTTP at a steady pace, each with its own Idempotency-Key, and
retries a refused submission (503 during the switch, or a dropped connection) with the same key as
a careful client would. Half-way through, `fail` takes the primary away (SIGKILL, or a fail-over
forced through Sentinel). The run then waits until every accepted job that still exists is
terminal, and reports:

- accepted: submissions answered 202;
- lost: accepted jobs the new primary does not know (the fail-over took them);
- ran twice: jobs whose Space call ran more than once (from the Space's own call log);
- seconds without service: the longest stretch after the failure without a submission accepted,
  and without a job finishing;
- conflicting: jobs seen in two different terminal states (must be 0).
"""

from __future__ import annotations

import itertools
import json
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import httpx
import pytest
from redis.asyncio import Redis

from jobs.keys import Keys
from jobs.redis_conn import REDIS_DOWN, connect
from tests.consumer_kit import consumer
from tests.photos import encode, landscape
from tests.procs import Proc, base_env, free_port, ghibli, start_space, wait_until

JOBS = 200
KILL_AFTER = 100  # accepted submissions before the failure
PACE_S = 0.05  # one submission started every 50 ms: 20/s, so submissions straddle the fail-over
SUBMITTERS = 8
CONSUMERS = 2
CONCURRENCY = 8
LEASE_S = 10  # renewed every ~3.3 s: a fail-over of a few seconds does not expire live leases
CALL_TIMEOUT_S = 30
SUBMIT_FOR_S = 120  # a careful client retries a refused submission this long
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
PHOTO = encode(landscape(320, 240), "JPEG", quality=85)


@dataclass
class ChaosReport:
    accepted: int = 0
    lost: int = 0
    ran_twice: int = 0
    ingest_gap_s: float = 0.0
    finish_gap_s: float = 0.0
    conflicting: int = 0
    refused: Counter[str] = field(default_factory=Counter)  # refusals by status/problem code
    statuses: Counter[str] = field(default_factory=Counter)

    def line(self, label: str) -> str:
        return (
            f"{label}: {JOBS} submitted, {self.accepted} accepted, {self.lost} lost, "
            f"{self.ran_twice} ran twice, {self.ingest_gap_s:.1f} s without accepting, "
            f"{self.finish_gap_s:.1f} s without a job finishing; refusals {dict(self.refused)}; "
            f"final {dict(self.statuses)}; conflicting {self.conflicting}"
        )


@dataclass
class Stack:
    """Ingest and consumers on one REDIS_URL."""

    redis_url: str
    space_url: str
    log_dir: Path
    durable_replicas: int = 0
    procs: list[Proc] = field(default_factory=list)
    port: int = field(default_factory=free_port)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Stack:
        durable = {"GHIBLI_DURABLE_REPLICAS": str(self.durable_replicas), "GHIBLI_DURABLE_TIMEOUT_MS": "1000"}
        env = base_env(
            REDIS_URL=self.redis_url,
            GHIBLI_PORT=str(self.port),
            GHIBLI_RATE_LIMIT_SUBMITS="0",
            GHIBLI_RATE_LIMIT_REQUESTS="0",
            GHIBLI_MAX_BACKLOG="0",
            # One address submits the whole load: fair share per client is not under test here.
            GHIBLI_MAX_UNFINISHED_PER_CLIENT="0",
            GHIBLI_MAX_STORED_BYTES_PER_CLIENT="0",
            GHIBLI_LOG_LEVEL="warning",
            **durable,
        )
        ingest = ghibli(["ingest"], env, self.log_dir / "ingest.log").start()
        self.procs.append(ingest)
        for i in range(CONSUMERS):
            self.procs.append(
                consumer(
                    self.redis_url,
                    self.space_url,
                    self.log_dir,
                    f"ha-{i}",
                    concurrency=str(CONCURRENCY),
                    lease_seconds=str(LEASE_S),
                    token_max_in_flight="64",
                    durable_replicas=str(self.durable_replicas),
                    # A few calls whose twin was cancelled at the Space (a zombie run halted after the
                    # switch) never finish there; they are retried after this, not after 600 s.
                    call_timeout_seconds=str(CALL_TIMEOUT_S),
                ).start()
            )
        wait_until(
            lambda: httpx.get(self.base + "/readyz", timeout=3).status_code == 200, "ingest", 120, ingest.proc
        )
        return self

    def ready(self) -> dict[str, object]:
        body: dict[str, object] = httpx.get(self.base + "/readyz", timeout=5).json()
        return body

    def alive(self) -> None:
        for proc in self.procs:
            assert proc.alive(), f"{proc.argv} died:\n{proc.log()[-3000:]}"

    def stop(self) -> None:
        for proc in self.procs:
            proc.stop()


@pytest.fixture(scope="module")
def ha_space(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The offline Space, fast engine slowed to 1.5-2.5 s a call, with its call log."""
    workdir = tmp_path_factory.mktemp("ha-space")
    call_log = workdir / "calls.jsonl"
    extra = ["--delay", "1.5", "--jitter", "1", "--concurrency", "32", "--call-log", str(call_log)]
    proc, url = start_space(workdir, engine="fast", extra=extra, timeout_s=240)
    yield url, call_log
    proc.stop()


def _space_calls(call_log: Path, seeds: set[int]) -> Counter[int]:
    calls = Counter[int]()
    for line in call_log.read_text().splitlines():
        if line:
            row = json.loads(line)
            if row.get("seed") in seeds:
                calls[int(row["seed"])] += 1
    return calls


async def chaos(
    stack: Stack, call_log: Path, fail: Callable[[], object], *, settle_s: float = 300
) -> ChaosReport:
    """Submit JOBS photos, call `fail` once KILL_AFTER were accepted, and wait until every accepted
    job still known is terminal."""
    report = ChaosReport()
    seeds = {i: random.randrange(10**9) for i in range(JOBS)}  # this run's calls in the shared log
    accepted: dict[int, str] = {}  # index -> job id
    accepted_at: list[float] = []
    failed_at: list[tuple[float, float]] = []  # (monotonic, wall clock) of the failure
    seen: dict[str, set[str]] = {}  # job id -> terminal statuses observed
    began = time.monotonic()
    keys = Keys()

    async def submit(client: httpx.AsyncClient, i: int) -> None:
        await anyio.sleep(max(0.0, began + i * PACE_S - time.monotonic()))
        form = {"seed": str(seeds[i]), "width": "256", "height": "256"}
        give_up = time.monotonic() + SUBMIT_FOR_S
        while True:
            assert time.monotonic() < give_up, (
                f"submission {i} refused for {SUBMIT_FOR_S} s: {report.refused}"
            )
            try:
                response = await client.post(
                    "/v1/jobs",
                    files={"image": ("p.jpg", PHOTO, "image/jpeg")},
                    data=form,
                    headers={"Idempotency-Key": f"chaos-{seeds[i]}"},
                )
            except httpx.HTTPError as exc:
                report.refused[type(exc).__name__] += 1
            else:
                if response.status_code == 202:
                    accepted[i] = response.json()["id"]
                    accepted_at.append(time.monotonic())
                    if len(accepted) >= KILL_AFTER and not failed_at:
                        fail()
                        failed_at.append((time.monotonic(), time.time()))
                    return
                code = (
                    response.json().get("code", "?")
                    if response.headers.get("content-type", "").endswith("json")
                    else "?"
                )
                report.refused[f"{response.status_code} {code}"] += 1
                assert response.status_code == 503, response.text  # only "retry later" is acceptable
            await anyio.sleep(0.2)

    redis = connect(stack.redis_url, name="chaos-watch")

    async def watch(stop: anyio.Event) -> None:
        while not stop.is_set():
            ids = list(accepted.values())
            try:
                async with redis.pipeline(transaction=False) as pipe:
                    for job_id in ids:
                        pipe.hget(keys.job(job_id), "status")
                    rows = await pipe.execute()
            except REDIS_DOWN:
                rows = []
            for job_id, raw in zip(ids, rows, strict=False):
                status = raw.decode() if raw else None
                if status in TERMINAL:
                    seen.setdefault(job_id, set()).add(status)
            await anyio.sleep(0.5)

    try:
        async with anyio.create_task_group() as tg:
            stop = anyio.Event()
            tg.start_soon(watch, stop)
            async with httpx.AsyncClient(base_url=stack.base, timeout=30) as client:
                limiter = anyio.CapacityLimiter(SUBMITTERS)

                async def one(i: int) -> None:
                    async with limiter:
                        await submit(client, i)

                async with anyio.create_task_group() as submitters:
                    for i in range(JOBS):
                        submitters.start_soon(one, i)
            assert failed_at, "the failure was never triggered"
            deadline = time.monotonic() + settle_s
            while True:
                stack.alive()
                statuses = await _fields(redis, keys, list(accepted.values()), "status")
                if all(s is None or s in TERMINAL for s in statuses.values()):
                    break
                assert time.monotonic() < deadline, Counter(statuses.values())
                await anyio.sleep(1)
            await anyio.sleep(1)  # one more look by the watcher
            stop.set()
            finished = await _fields(redis, keys, list(accepted.values()), "finished_at")
    finally:
        await redis.aclose()
    killed, killed_wall = failed_at[0]
    report.accepted = len(accepted)
    report.lost = sum(1 for s in statuses.values() if s is None)
    report.statuses = Counter(s or "lost" for s in statuses.values())
    calls = _space_calls(call_log, {seeds[i] for i in accepted})
    report.ran_twice = sum(1 for n in calls.values() if n > 1)
    report.ingest_gap_s = _longest_gap(killed, accepted_at)
    report.finish_gap_s = _longest_gap(killed_wall, [int(ms) / 1000 for ms in finished.values() if ms])
    report.conflicting = sum(1 for found in seen.values() if len(found) > 1)
    return report


def _longest_gap(start: float, times: list[float]) -> float:
    """The longest stretch without an event from `start` (the failure) until the last event: the
    time without service (submissions accepted, or jobs finished) that the fail-over cost."""
    after = sorted(t for t in times if t >= start)
    points = [start, *after]
    return max((b - a for a, b in itertools.pairwise(points)), default=0.0)


async def _fields(redis: Redis, keys: Keys, ids: list[str], field_name: str) -> dict[str, str | None]:
    """One field of every job, waiting out the fail-over."""
    while True:
        try:
            async with redis.pipeline(transaction=False) as pipe:
                for job_id in ids:
                    pipe.hget(keys.job(job_id), field_name)
                rows = await pipe.execute()
            return {job_id: (raw.decode() if raw else None) for job_id, raw in zip(ids, rows, strict=True)}
        except REDIS_DOWN:
            await anyio.sleep(0.5)
