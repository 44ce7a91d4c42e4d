"""Section 7: SSE fan-out, 1000 viewers on one ingest process.

The jobs are queued first and the viewers connect while they wait (each gets its snapshot); then
consumers start and every job runs on the 1-s Space, so each viewer sees running, progress and the
end. Measured: ingest's RSS before and with the viewers connected, its CPU from the consumers'
start until the last viewer saw the end, the Redis connections ingest holds, and how late the
terminal event reached the viewers after the consumer wrote it.

The viewers are plain asyncio sockets in this process (an HTTP client per viewer would cost the
benchmark more CPU than ingest); they only look for the terminal status in the byte stream.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
from redis import Redis

from bench.procs import Stack, cpu_seconds, rss_bytes
from bench.report import Report, Row, percentile

__all__ = ["FanOut", "fanout_rows", "measure_fanout"]

_TERMINAL = (b'"status":"succeeded"', b'"status":"failed"', b'"status":"cancelled"')


@dataclass(frozen=True, slots=True)
class FanOut:
    viewers: int
    jobs: int
    rss_before: int
    rss_connected: int
    rss_peak: int
    cpu_s: float  # ingest CPU while the jobs ran and the viewers were told
    seconds: float  # that interval
    redis_connections: int  # connections named "ingest" while the viewers were connected
    saw_end: int  # viewers that received the terminal event
    events: int  # status events delivered to all viewers
    delay_p50_s: float  # job finished (job hash) -> viewer got the terminal event
    delay_p99_s: float


class _Viewer:
    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.connected = asyncio.Event()
        self.ended_at = 0.0
        self.events = 0  # `event: status` messages received

    async def watch(self, host: str, port: int) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        request = (
            f"GET /v1/jobs/{self.job_id}/events HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n"
        )
        writer.write(request.encode())
        await writer.drain()
        tail = b""
        try:
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    return
                tail = tail[-64:] + chunk
                self.events += chunk.count(b"event: status")
                if b"event: status" in tail:
                    self.connected.set()
                if any(marker in tail for marker in _TERMINAL):
                    self.ended_at = time.time()
                    return
        finally:
            self.connected.set()
            writer.close()


def _ingest_connections(redis: Redis) -> int:
    return sum(1 for client in redis.client_list() if client.get("name") == "ingest")


def measure_fanout(stack: Stack, space_url: str, photo: bytes, viewers: int, jobs: int) -> FanOut:
    redis_url = stack.redis()
    ingest, ingest_url = stack.ingest(redis_url)
    redis = Redis.from_url(redis_url)
    try:
        with httpx.Client(base_url=ingest_url, timeout=60) as client:
            ids = []
            for seed in range(jobs):
                response = client.post(
                    "/v1/jobs", files={"image": ("p.jpg", photo, "image/jpeg")}, data={"seed": str(seed)}
                )
                response.raise_for_status()
                ids.append(response.json()["id"])
        time.sleep(1)
        rss_before = rss_bytes(ingest.pid)
        return asyncio.run(
            _run(stack, redis, redis_url, space_url, ingest.pid, ingest_url, ids, viewers, rss_before)
        )
    finally:
        redis.close()
        stack.close()


async def _run(
    stack: Stack,
    redis: Redis,
    redis_url: str,
    space_url: str,
    ingest_pid: int,
    ingest_url: str,
    ids: list[str],
    viewers: int,
    rss_before: int,
) -> FanOut:
    where = urlsplit(ingest_url)
    host, port = where.hostname or "127.0.0.1", where.port or 80
    crowd = [_Viewer(ids[i % len(ids)]) for i in range(viewers)]
    tasks = []
    for start in range(0, viewers, 100):  # connect in waves: the accept backlog is finite
        batch = crowd[start : start + 100]
        tasks += [asyncio.create_task(viewer.watch(host, port)) for viewer in batch]
        await asyncio.wait_for(asyncio.gather(*(v.connected.wait() for v in batch)), 120)
    await asyncio.sleep(1)
    rss_connected = rss_bytes(ingest_pid)
    connections = _ingest_connections(redis)
    cpu, clock = cpu_seconds(ingest_pid), time.monotonic()
    in_flight = len(ids)
    processes = 1 if in_flight < 4 else 2
    await asyncio.to_thread(stack.consumers, redis_url, space_url, (processes, -(-in_flight // processes)))
    await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 300)
    seconds = time.monotonic() - clock
    cpu_s = cpu_seconds(ingest_pid) - cpu
    finished = {
        job_id: int(redis.hget(f"{{ghibli}}:job:{job_id}", "finished_at") or 0) / 1000 for job_id in set(ids)
    }
    delays = [v.ended_at - finished[v.job_id] for v in crowd if v.ended_at and finished[v.job_id]]
    return FanOut(
        viewers=viewers,
        jobs=len(ids),
        rss_before=rss_before,
        rss_connected=rss_connected,
        rss_peak=rss_bytes(ingest_pid, peak=True),
        cpu_s=cpu_s,
        seconds=seconds,
        redis_connections=connections,
        saw_end=sum(1 for v in crowd if v.ended_at),
        events=sum(v.events for v in crowd),
        delay_p50_s=statistics.median(delays) if delays else float("nan"),
        delay_p99_s=percentile(delays, 99),
    )


def fanout_rows(report: Report, result: FanOut) -> None:
    section, mb = "7 fan-out", 1e6
    report.add(
        Row(
            section,
            f"{result.viewers} SSE viewers on {result.jobs} jobs, one ingest process: its RSS (MB) with them "
            f"connected; before: {result.rss_before / mb:.0f}, peak: {result.rss_peak / mb:.0f}",
            f"{result.rss_connected / mb:.0f}",
        )
    )
    report.add(
        Row(
            section,
            f"ingest CPU seconds while the {result.jobs} jobs ran and every viewer was told "
            f"({result.seconds:.1f} s including the consumers' start-up): {result.events} status events "
            f"sent, {result.cpu_s / max(result.events, 1) * 1e6:.0f} us CPU per event",
            f"{result.cpu_s:.2f}",
        )
    )
    report.add(
        Row(
            section,
            f"Redis connections ingest holds with {result.viewers} viewers connected "
            "(its pool's maximum is 64)",
            str(result.redis_connections),
        )
    )
    report.add(
        Row(
            section,
            f"viewers that saw the terminal state: {result.saw_end}/{result.viewers}; delay from the job's "
            "end (as recorded) to the viewer, p50 / p99 (ms)",
            f"{result.delay_p50_s * 1000:.0f} / {result.delay_p99_s * 1000:.0f}",
        )
    )
