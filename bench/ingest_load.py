"""Section 4: uploads per second and the peak memory of one ingest process, for 1 MB and 10 MB JPEGs.

A fresh ingest process per size, so its peak RSS (VmHWM) belongs to that size alone. No consumer
runs: the uploads are checked, decoded, normalized, stored and queued, and nothing else. The direct
figure is the same file POSTed to the Gradio server's own upload route at the same concurrency,
which is the first thing every direct gradio_client call does (that route only stores the bytes).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import httpx

from bench.procs import Stack, children, rss_bytes, tree_cpu_seconds
from bench.report import Report, Row, ratio

__all__ = ["UploadRun", "run_space_uploads", "run_uploads", "upload_rows"]

SECTION = "4 ingest"


@dataclass(frozen=True, slots=True)
class UploadRun:
    uploads: int
    seconds: float
    failures: int
    rss_idle: int = 0
    rss_peak: int = 0
    cpu_per_upload_s: float = 0.0
    worker_rss_peak: int = 0  # the largest of its decode workers

    @property
    def per_second(self) -> float:
        return self.uploads / self.seconds if self.seconds > 0 else 0.0


async def _post_all(
    url: str, photo: bytes, count: int, concurrency: int, *, to_space: bool
) -> tuple[float, int]:
    """POST `count` uploads from `concurrency` clients; (seconds, failures)."""
    failures = 0
    next_upload = iter(range(count))

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal failures
        for index in next_upload:
            if to_space:
                response = await client.post(
                    url + "gradio_api/upload", files={"files": ("photo.jpg", photo, "image/jpeg")}
                )
            else:
                response = await client.post(
                    url + "/v1/jobs",
                    files={"image": ("photo.jpg", photo, "image/jpeg")},
                    data={"seed": str(index)},
                )
            if response.status_code >= 300:
                failures += 1

    async with httpx.AsyncClient(timeout=120) as client:
        start = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        return time.perf_counter() - start, failures


def run_uploads(stack: Stack, photo: bytes, count: int, concurrency: int) -> UploadRun:
    """Uploads to a fresh ingest process (and Redis) of this stack."""
    redis_url = stack.redis()
    proc, url = stack.ingest(redis_url)
    try:
        idle = rss_bytes(proc.pid)
        cpu = tree_cpu_seconds(proc.pid)
        seconds, failures = asyncio.run(_post_all(url, photo, count, concurrency, to_space=False))
        return UploadRun(
            uploads=count - failures,
            seconds=seconds,
            failures=failures,
            rss_idle=idle,
            rss_peak=rss_bytes(proc.pid, peak=True),
            cpu_per_upload_s=(tree_cpu_seconds(proc.pid) - cpu) / max(count, 1),
            worker_rss_peak=max((rss_bytes(child, peak=True) for child in children(proc.pid)), default=0),
        )
    finally:
        stack.close()


def run_space_uploads(space_url: str, photo: bytes, count: int, concurrency: int) -> UploadRun:
    seconds, failures = asyncio.run(_post_all(space_url, photo, count, concurrency, to_space=True))
    return UploadRun(uploads=count - failures, seconds=seconds, failures=failures)


def upload_rows(
    report: Report, name: str, count: int, concurrency: int, ours: UploadRun, direct: UploadRun
) -> None:
    failed = f", {ours.failures} FAILED" if ours.failures else ""
    report.add(
        Row(
            SECTION,
            f"uploads/s of a {name} JPEG, {count} uploads from {concurrency} clients; direct = the same file "
            f"POSTed to the Gradio server's upload route{failed}",
            f"{ours.per_second:.1f}",
            f"{direct.per_second:.1f}",
            ratio(ours.per_second, direct.per_second),
        )
    )
    report.add(
        Row(
            SECTION,
            f"ingest peak RSS (MB) with {name} uploads; idle before: {ours.rss_idle / 1e6:.0f}; largest "
            f"decode worker's peak: {ours.worker_rss_peak / 1e6:.0f}; CPU per upload (ingest and its "
            f"decode workers) {ours.cpu_per_upload_s * 1000:.0f} ms",
            f"{ours.rss_peak / 1e6:.0f}",
        )
    )
