"""Section 6: seconds from SIGKILL of a consumer that holds a job to that job running again, by
heartbeat and by lease; and how punctual heartbeats stay when the consumers' CPU is saturated.

Consumer A (concurrency 1) claims a job from the 1-s Space and is killed at once; consumer B, idle
beside it, takes the entry over. With the defaults that happens by heartbeat: A's liveness key
expires (GHIBLI_HEARTBEAT_TIMEOUT_SECONDS after its last beat) and B's next scan (every heartbeat)
takes everything A owned. The lease case sets the heartbeat timeout above the lease, so the entry
is reclaimed only once it has been idle for a lease (XAUTOCLAIM, checked every lease/3 or 2 s):
what an entry a live consumer stopped renewing costs, and what every crash cost before heartbeats.
The clock stops when the job hash shows attempt 2 running (polled every 20 ms); the job must then
succeed. Take-overs wait until Redis has been up long enough (consumers/recovery.py), so the kill
waits for that first.

The gap row runs 2 consumers x 32 calls on the instant Space (the throughput section's heaviest
level, where the consumers' CPU is the bottleneck) and reads the heartbeat-gap histogram from the
consumers' /metrics: a gap near the timeout would declare a live consumer dead.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families
from redis import Redis

from bench.pipeline import JobQueue
from bench.procs import Stack, free_port, wait_consumer
from bench.report import Report, Row

__all__ = ["Gaps", "Recovery", "gap_row", "measure_gaps", "measure_recovery", "recovery_row"]

HEARTBEAT_S = 1.0  # GHIBLI_HEARTBEAT_SECONDS' default
HEARTBEAT_TIMEOUT_S = 5.0  # GHIBLI_HEARTBEAT_TIMEOUT_SECONDS' default
LEASE_S = 30.0  # GHIBLI_LEASE_SECONDS' default
GAP_METRIC = "ghibli_consumer_heartbeat_gap_seconds"


@dataclass(frozen=True, slots=True)
class Recovery:
    lease_s: float
    heartbeat_timeout_s: float
    seconds: float  # SIGKILL to attempt 2 running (NaN if it never ran again)
    finished: str  # the job's final status

    @property
    def by_heartbeat(self) -> bool:
        return self.heartbeat_timeout_s < self.lease_s


def _guard_s(lease_s: float, heartbeat_timeout_s: float) -> float:
    # consumers/recovery.py: takeover_guard_s (heartbeat) and restart_guard_s (lease).
    return min(heartbeat_timeout_s + 2.0, max(2 * lease_s / 3, 5.0))


def measure_recovery(
    stack: Stack, space_url: str, photo: bytes, *, lease_s: float, heartbeat_timeout_s: float
) -> Recovery:
    redis_url = stack.redis()
    settings = {
        "GHIBLI_LEASE_SECONDS": str(lease_s),
        "GHIBLI_HEARTBEAT_TIMEOUT_SECONDS": str(heartbeat_timeout_s),
    }
    redis = Redis.from_url(redis_url, decode_responses=True)
    try:
        started = stack.consumers(redis_url, space_url, (1, 1), **settings)
        started += stack.consumers(redis_url, space_url, (1, 1), **settings)
        while int(redis.info("server")["uptime_in_seconds"]) < _guard_s(lease_s, heartbeat_timeout_s) + 1:
            time.sleep(0.2)
        (job_id,) = asyncio.run(_fill(JobQueue(redis_url, photo)))
        key = f"{{ghibli}}:job:{job_id}"
        holder = _wait_for(lambda: _running_on(redis, key), 60.0, 0.005)
        victim = next(proc for proc in started if proc.name == f"consumer-{holder}")
        victim.kill()
        killed = time.monotonic()
        rerun = _wait_for(lambda: _attempt_two(redis, key), min(lease_s, heartbeat_timeout_s) * 3 + 30, 0.02)
        seconds = time.monotonic() - killed if rerun else float("nan")
        final = _wait_for(lambda: _terminal(redis, key), 60.0, 0.05)
        return Recovery(lease_s, heartbeat_timeout_s, seconds, final or "unfinished")
    finally:
        redis.close()
        stack.close()


def _wait_for(check: Callable[[], str], timeout_s: float, every_s: float) -> str:
    """Poll until check() returns a non-empty string (returned) or the time-out ("")."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(every_s)
    return ""


def _running_on(redis: Redis, key: str) -> str:
    """The consumer running the job, once one is."""
    status, consumer = redis.hmget(key, ["status", "consumer"])
    return str(consumer or "") if status == "running" else ""


def _attempt_two(redis: Redis, key: str) -> str:
    status, attempt = redis.hmget(key, ["status", "attempt"])
    return str(status) if int(attempt or 0) >= 2 and status in ("running", "succeeded") else ""


def _terminal(redis: Redis, key: str) -> str:
    status = str(redis.hget(key, "status") or "")
    return status if status in ("succeeded", "failed", "cancelled") else ""


async def _fill(queue: JobQueue) -> list[str]:
    try:
        return await queue.fill(1, size=256, seed_base=7_000_000)
    finally:
        await queue.aclose()


def recovery_row(report: Report, result: Recovery, *, defaults: bool) -> None:
    ok = result.seconds == result.seconds and result.finished == "succeeded"  # NaN: never ran again
    lease, timeout = result.lease_s, result.heartbeat_timeout_s
    if result.by_heartbeat:
        how = (
            f"by heartbeat: timeout {timeout:.0f} s{' (the default)' if defaults else ''}, "
            f"lease {lease:.0f} s; "
            f"then it {result.finished}; by design between the timeout - {HEARTBEAT_S:.0f} s and the timeout "
            f"+ {HEARTBEAT_S:.0f} s (beats every {HEARTBEAT_S:.0f} s, scans for dead consumers every "
            f"{HEARTBEAT_S:.0f} s)"
        )
        bound = timeout + 5
    else:
        how = (
            f"by lease: lease {lease:.0f} s{' (the default)' if defaults else ''}, heartbeat timeout "
            f"{timeout:.0f} s (above the lease: an entry its live consumer stopped renewing, and every "
            f"crash before heartbeats); then it {result.finished}; by design between 2/3 of the lease and "
            "the lease + 2 s (leases are renewed every lease/3, lease scans run every 2 s at most)"
        )
        bound = lease + 5
    report.add(
        Row(
            "6 recovery",
            f"seconds from SIGKILL of the consumer holding a job to that job running again, {how}",
            f"{result.seconds:.1f}",
            budget=f"<= {bound:.0f} s ({'timeout' if result.by_heartbeat else 'lease'} + 5)",
            passed=ok and result.seconds <= bound,
        )
    )


@dataclass(frozen=True, slots=True)
class Gaps:
    in_flight: int
    beats: int
    p99_le: float  # upper bound of the bucket holding the 99th percentile
    max_le: float  # upper bound of the highest bucket with a gap in it
    late: int  # gaps over half the timeout


def measure_gaps(stack: Stack, space_url: str, photo: bytes, *, processes: int, concurrency: int) -> Gaps:
    """Heartbeat gaps while `processes` x `concurrency` consumers drain a queue of instant calls."""
    redis_url = stack.redis()
    ports = [free_port() for _ in range(processes)]
    try:
        started = [
            stack.consumer(redis_url, space_url, concurrency=concurrency, GHIBLI_METRICS_PORT=str(port))
            for port in ports
        ]
        for proc in started:
            wait_consumer(proc)
        queue = JobQueue(redis_url, photo)
        jobs = processes * concurrency * 8
        asyncio.run(_drain(queue, jobs))
        buckets: dict[float, float] = {}
        for port in ports:
            for le, count in _gap_buckets(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text):
                buckets[le] = buckets.get(le, 0.0) + count
    finally:
        stack.close()
    total = buckets.get(float("inf"), 0.0)
    ordered = sorted(buckets.items())
    p99 = next((le for le, count in ordered if count >= 0.99 * total), float("nan"))
    highest = next((le for le, count in ordered if count >= total), float("nan"))
    late = total - max((count for le, count in ordered if le <= HEARTBEAT_TIMEOUT_S / 2), default=0.0)
    return Gaps(processes * concurrency, int(total), p99, highest, int(late))


async def _drain(queue: JobQueue, jobs: int) -> None:
    try:
        await queue.drain(jobs, size=256, seed_base=7_100_000, timeout_s=600)
    finally:
        await queue.aclose()


def _gap_buckets(text: str) -> list[tuple[float, float]]:
    """(le, cumulative count) of the heartbeat-gap histogram in one /metrics page."""
    found = []
    for family in text_string_to_metric_families(text):
        if family.name != GAP_METRIC:
            continue
        for sample in family.samples:
            if sample.name == GAP_METRIC + "_bucket":
                found.append((float(sample.labels["le"]), float(sample.value)))
    return found


def gap_row(report: Report, gaps: Gaps) -> None:
    report.add(
        Row(
            "6 recovery",
            f"heartbeat gaps (s) with {gaps.in_flight} instant calls in flight, the consumers' CPU "
            f"saturated: 99th percentile / longest, as the upper bounds of their histogram buckets, of "
            f"{gaps.beats} beats "
            f"(every {HEARTBEAT_S:.0f} s); {gaps.late} came later than half the {HEARTBEAT_TIMEOUT_S:.0f}-s "
            "timeout",
            f"{gaps.p99_le:g} / {gaps.max_le:g}",
            budget=f"longest <= {HEARTBEAT_TIMEOUT_S / 2:g} s (half the timeout)",
            passed=gaps.beats > 0 and gaps.max_le <= HEARTBEAT_TIMEOUT_S / 2,
        )
    )
