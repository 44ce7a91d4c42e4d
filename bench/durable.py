"""Section 9: what durable acknowledgements (GHIBLI_DURABLE_REPLICAS, jobs/durable.py) cost.

A primary with one replica on loopback (and, for the Sentinel row, three sentinels watching it).
Each row compares the same work with the WAIT on and off, taking turns so the machine's load hits
both alike: a whole submission through ingest (POST to 202; two ingest processes on the same
Redis, one with GHIBLI_DURABLE_REPLICAS=1), and the job store's submit script alone, through a
plain URL and through redis+sentinel:// (where a durable write also asks the sentinels whether the
primary is still the primary). On loopback replication takes microseconds; over a network the
WAIT costs about one round trip to the replica more.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import httpx

from bench.procs import Proc, Stack, free_port, redis_binary, wait_until
from bench.report import Report, Row, percentile, ratio
from ingest.submit import Submissions
from jobs.durable import Durability
from jobs.keys import Keys
from jobs.model import JobParams, new_job_id
from jobs.redis_conn import connect
from jobs.store import JobStore

__all__ = ["run_durable"]

SECTION = "9 durable"
SERVICE = "bench"


def _port(url: str) -> str:
    return url.rsplit(":", 1)[1].split("/", maxsplit=1)[0]


def _replica(stack: Stack, primary_url: str) -> None:
    port = free_port()
    primary_port = _port(primary_url)
    data = stack.workdir / f"replica-{port}"
    data.mkdir(parents=True, exist_ok=True)
    argv = [redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data), "--save", ""]
    argv += ["--replicaof", "127.0.0.1", primary_port]
    proc = Proc(argv, {}, stack.workdir / f"replica-{port}.log", name=f"replica-{port}")
    stack.procs.append(proc.start())

    def synced() -> bool:
        import redis

        with redis.Redis(port=port, socket_timeout=2) as client:
            return bool(client.info("replication").get("master_link_status") == "up")

    wait_until(synced, "replica", 30, proc)


def _sentinels(stack: Stack, primary_url: str) -> str:
    primary_port = _port(primary_url)
    ports = [free_port() for _ in range(3)]
    for port in ports:
        conf = stack.workdir / f"sentinel-{port}.conf"
        conf.write_text(
            f"port {port}\nbind 127.0.0.1\ndir {stack.workdir}\n"
            f"sentinel monitor {SERVICE} 127.0.0.1 {primary_port} 2\n"
        )
        proc = Proc(
            [redis_binary(), str(conf), "--sentinel"], {}, conf.with_suffix(".log"), name=f"sentinel-{port}"
        )
        stack.procs.append(proc.start())
    url = f"redis+sentinel://{','.join(f'127.0.0.1:{p}' for p in ports)}/{SERVICE}/0"

    def found() -> bool:
        import redis

        with redis.Redis(port=ports[0], socket_timeout=2) as client:
            return bool(client.sentinel_get_master_addr_by_name(SERVICE))

    wait_until(found, "sentinels", 30)
    return url


def _summary(on: list[float], off: list[float]) -> tuple[str, str, str, str]:
    """(p50 on / off, ratio, p99 on / off, ratio) in ms."""
    p50_on, p50_off = statistics.median(on), statistics.median(off)
    p99_on, p99_off = percentile(on, 99), percentile(off, 99)
    return (
        f"{p50_on * 1000:.2f} / {p50_off * 1000:.2f}",
        ratio(p50_on, p50_off),
        f"{p99_on * 1000:.2f} / {p99_off * 1000:.2f}",
        ratio(p99_on, p99_off),
    )


def _rows(report: Report, what: str, on: list[float], off: list[float]) -> None:
    p50, r50, p99, r99 = _summary(on, off)
    report.add(Row(SECTION, f"{what}, p50 (ms): WAIT 1 / off, {len(on)} each", p50, ratio=r50))
    report.add(Row(SECTION, f"{what}, p99 (ms): WAIT 1 / off", p99, ratio=r99))


def _posts(ingest_on: str, ingest_off: str, photo: bytes, count: int) -> tuple[list[float], list[float]]:
    on: list[float] = []
    off: list[float] = []
    with httpx.Client(timeout=30) as client:
        for turn in range(count + 2):
            for url, samples in ((ingest_on, on), (ingest_off, off))[:: 1 if turn % 2 else -1]:
                began = time.perf_counter()
                response = client.post(
                    f"{url}/v1/jobs",
                    files={"image": ("p.jpg", photo, "image/jpeg")},
                    data={"width": "256", "height": "256", "seed": str(turn)},
                )
                elapsed = time.perf_counter() - began
                response.raise_for_status()
                if turn >= 2:  # the first two of each warm the connections up
                    samples.append(elapsed)
    return on, off


async def _scripts(redis_url: str, count: int, photo: bytes) -> tuple[list[float], list[float]]:
    """The submit script (plus its WAIT, and with Sentinel the primary check) alone, on and off."""
    redis = connect(redis_url, name="bench-durable")
    keys = Keys("{bench-durable}:")
    plain = Submissions(JobStore(redis, keys), _NoBlobs())
    durable = Submissions(
        JobStore(redis, keys, durability=Durability(redis, keys.durable, replicas=1)), _NoBlobs()
    )
    await plain.store.ensure_group()
    on: list[float] = []
    off: list[float] = []
    params = JobParams(width=256, height=256, seed=1)

    async def one(submissions: Submissions) -> float:
        began = time.perf_counter()
        await submissions.submit(new_job_id(), params, photo=photo, input_digest="bench")
        return time.perf_counter() - began

    runs: list[tuple[Callable[[], Awaitable[float]], list[float]]] = [
        (lambda: one(durable), on),
        (lambda: one(plain), off),
    ]
    try:
        for turn in range(count + 5):
            for run, samples in runs[:: 1 if turn % 2 else -1]:
                elapsed = await run()
                if turn >= 5:
                    samples.append(elapsed)
    finally:
        await redis.aclose()
    return on, off


class _NoBlobs:
    """The photo is not what is measured: blob writes are the same with the WAIT on or off."""

    async def put(self, name: str, data: bytes, ttl_s: int) -> None:
        return None

    async def get(self, name: str) -> bytes | None:
        return None

    async def delete(self, *names: str) -> None:
        return None


def run_durable(report: Report, stack: Stack, photo: bytes, *, quick: bool, workdir: Path) -> None:
    count = 20 if quick else 300
    redis_url = stack.redis()
    _replica(stack, redis_url)
    _, ingest_on = stack.ingest(redis_url, GHIBLI_DURABLE_REPLICAS="1")
    _, ingest_off = stack.ingest(redis_url)
    on, off = _posts(ingest_on, ingest_off, photo, count)
    _rows(report, "submission through ingest (POST to 202), one replica", on, off)
    on, off = anyio.run(_scripts, redis_url, count, photo)
    _rows(report, "submit script alone, redis://", on, off)
    sentinel_url = _sentinels(stack, redis_url)
    on, off = anyio.run(_scripts, sentinel_url, count, photo)
    _rows(report, "submit script alone, redis+sentinel:// (WAIT 1 includes the primary check)", on, off)
