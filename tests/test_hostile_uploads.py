"""Hostile uploads against a real `ghibli ingest` (uvicorn) and redis-server, with honest uploads
sent at the same time: every bomb is answered with a problem document within a bound, the honest
uploads keep being accepted, ingest's own memory stays flat (pixels are decoded in the sandbox's
workers, not in ingest), and an upload whose client goes away stops its decode.
"""

from __future__ import annotations

import asyncio
import re
import socket
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests import hostile, images
from tests.photos import encode, landscape
from tests.procs import Proc, RedisServer, base_env, free_port, ghibli, wait_until

# System tier: starts processes beyond redis-server (docs/tests.md).
pytestmark = [pytest.mark.system, pytest.mark.anyio]


@dataclass
class Ingest:
    url: str
    proc: Proc

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmHWM")

    def metric(self, name: str, **labels: str) -> float:
        text = httpx.get(self.url + "/metrics", timeout=10).text
        wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
        match = re.search(rf"^{re.escape(name)}\{{{re.escape(wanted)}\}} (\S+)$", text, re.MULTILINE)
        return float(match.group(1)) if match else 0.0


@pytest.fixture
def ingest(redis_server: RedisServer, procs: list[Proc], tmp_path: Path) -> Ingest:
    port = free_port()
    env = base_env(
        REDIS_URL=redis_server.url,
        GHIBLI_PORT=str(port),
        GHIBLI_MAX_BACKLOG="0",
        GHIBLI_MAX_UNFINISHED_PER_CLIENT="0",
        GHIBLI_MAX_STORED_BYTES_PER_CLIENT="0",
        GHIBLI_RATE_LIMIT_SUBMITS="0",
        GHIBLI_RATE_LIMIT_REQUESTS="0",
        GHIBLI_DECODE_WORKERS="2",
    )
    proc = ghibli(["ingest"], env, tmp_path / "ingest.log").start()
    procs.append(proc)
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: httpx.get(url + "/healthz", timeout=2).status_code == 200, "ingest", 60, proc.proc)
    return Ingest(url, proc)


HOSTILE = {
    # name: (bytes, expected status, expected code or None for "accepted: it is a real image")
    "scan bomb 1": (hostile.progressive_scan_bomb(), 422, "image_too_complex"),
    "scan bomb 2": (hostile.progressive_scan_bomb(side=5000), 422, "image_too_complex"),
    "webp 268 MP": (hostile.webp_bomb(), 422, "too_many_pixels"),
    "webp 36 MP in 34 bytes": (hostile.webp_bomb(side=6000), 422, "image_too_complex"),
    "webp 36 MP padded": (hostile.webp_bomb(side=6000, padding=40_000), 202, None),
    "png 900 MP": (images.png_bomb(), 422, "too_many_pixels"),
    "png 36 MP RGBA 1": (hostile.png_memory_bomb(), 202, None),
    "png 36 MP RGBA 2": (hostile.png_memory_bomb(), 202, None),
    "gif": (hostile.gif_bomb(), 422, "too_many_pixels"),
    "heic": (hostile.heic_bomb(), 422, "too_many_pixels"),
    "truncated jpeg": (images.truncated_jpeg(), 422, "image_unreadable"),
    "header-only png": (hostile.header_only_png(), 422, "image_unreadable"),
}


async def post(client: httpx.AsyncClient, url: str, data: bytes, seed: int) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = await client.post(
        url + "/v1/jobs",
        files={"image": ("photo", data, "application/octet-stream")},
        data={"seed": str(seed)},
    )
    return response, time.monotonic() - started


async def test_bombs_are_answered_in_bounded_time_while_honest_uploads_keep_working(ingest: Ingest) -> None:
    honest_latencies: list[float] = []
    honest_statuses: list[int] = []

    async with httpx.AsyncClient(timeout=120) as client:
        # Warm up: the first upload waits for the decode workers to start.
        assert (await post(client, ingest.url, encode(landscape(640, 480)), 0))[0].status_code == 202
        rss_before = ingest.peak_rss_mb()

        async def honest() -> None:
            for seed in range(1, 13):
                response, elapsed = await post(
                    client, ingest.url, encode(landscape(640, 480, seed=seed)), seed
                )
                honest_statuses.append(response.status_code)
                honest_latencies.append(elapsed)

        hostile_tasks = {
            name: asyncio.ensure_future(post(client, ingest.url, data, index))
            for index, (name, (data, _status, _code)) in enumerate(HOSTILE.items(), start=100)
        }
        await asyncio.gather(honest(), *hostile_tasks.values())

    for name, (_data, status, code) in HOSTILE.items():
        response, elapsed = hostile_tasks[name].result()
        assert response.status_code == status, f"{name}: {response.text}"
        if code is not None:
            assert response.headers["content-type"].startswith("application/problem+json"), name
            assert response.json()["code"] == code, f"{name}: {response.json()}"
        assert elapsed < 60, f"{name} took {elapsed:.1f} s"
        if code in ("too_many_pixels", "image_too_complex") and name.startswith(("scan", "webp 268", "gif")):
            assert elapsed < 5, f"{name} should be refused from its header, took {elapsed:.1f} s"
    assert honest_statuses == [202] * 12
    # Honest uploads wait at most for one bomb's decode (turns are fair), never for all of them.
    assert max(honest_latencies) < 20, honest_latencies
    assert statistics.median(honest_latencies) < 5, honest_latencies
    # Decoding in ingest itself would have taken ~150 MB per 36 MP bomb at once.
    growth = ingest.peak_rss_mb() - rss_before
    assert growth < 120, f"ingest's peak RSS grew by {growth:.0f} MB"


def upload(url: str, data: bytes) -> int:
    return httpx.post(url + "/v1/jobs", files={"image": ("p", data, "image/jpeg")}, timeout=60).status_code


def test_an_abandoned_upload_stops_its_decode(ingest: Ingest) -> None:
    assert upload(ingest.url, encode(landscape(640, 480))) == 202
    assert ingest.metric("ghibli_decode_workers_replaced_total", reason="abandoned") == 0
    body_parts = hostile.png_memory_bomb()  # seconds of decoding
    boundary = "hostile-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="p.png"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + body_parts
        + f"\r\n--{boundary}--\r\n".encode()
    )
    port = int(ingest.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as sock:
        head = (
            f"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n"
        )
        sock.sendall(head.encode() + body)
        time.sleep(0.5)  # the decode has started
    wait_until(
        lambda: ingest.metric("ghibli_decode_workers_replaced_total", reason="abandoned") == 1,
        "the abandoned decode's worker killed",
        15,
    )
    assert upload(ingest.url, encode(landscape(640, 480, seed=3))) == 202  # and ingest still decodes
