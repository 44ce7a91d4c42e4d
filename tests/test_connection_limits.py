"""Idle connections, held streams and slow uploads against a real `ghibli ingest` (uvicorn): a few
addresses (127.0.0.x) open thousands of connections and hundreds of SSE streams; the caps refuse
what is over them with a problem document, the deadlines close what never finishes, and a client
from another address is served normally all along.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.photos import encode, landscape
from tests.procs import Proc, RedisServer, base_env, free_port, ghibli, wait_until

# System tier: starts processes beyond redis-server (docs/tests.md).
pytestmark = [pytest.mark.system, pytest.mark.anyio]

PER_CLIENT_CONNECTIONS = 256
HEADER_TIMEOUT_S = 2.0
IDLE_HEADER_TIMEOUT_S = 6.0  # opening 2000 connections takes a few seconds on a busy machine
BODY_TIMEOUT_S = 4.0
PER_CLIENT_STREAMS = 40
STREAMS = 170


@dataclass
class Ingest:
    port: int
    proc: Proc

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def start_ingest(
    redis_server: RedisServer, procs: list[Proc], tmp_path: Path, header_timeout_s: float
) -> Ingest:
    port = free_port()
    env = base_env(
        REDIS_URL=redis_server.url,
        GHIBLI_HOST="0.0.0.0",  # the test's 127.0.0.x addresses reach it
        GHIBLI_PORT=str(port),
        GHIBLI_MAX_BACKLOG="0",
        GHIBLI_MAX_UNFINISHED_PER_CLIENT="0",
        GHIBLI_MAX_STORED_BYTES_PER_CLIENT="0",
        GHIBLI_RATE_LIMIT_SUBMITS="0",
        GHIBLI_RATE_LIMIT_REQUESTS="0",
        GHIBLI_MAX_CONNECTIONS_PER_CLIENT=str(PER_CLIENT_CONNECTIONS),
        GHIBLI_HEADER_TIMEOUT_SECONDS=str(header_timeout_s),
        GHIBLI_BODY_TIMEOUT_SECONDS=str(BODY_TIMEOUT_S),
        GHIBLI_KEEPALIVE_TIMEOUT_SECONDS="1",
        GHIBLI_MAX_STREAMS_PER_CLIENT=str(PER_CLIENT_STREAMS),
        GHIBLI_MAX_STREAMS=str(STREAMS),
        GHIBLI_DECODE_WORKERS="1",
    )
    proc = ghibli(["ingest"], env, tmp_path / "ingest.log").start()
    procs.append(proc)
    ingest = Ingest(port, proc)
    wait_until(
        lambda: httpx.get(ingest.url + "/healthz", timeout=2).status_code == 200, "ingest", 60, proc.proc
    )
    return ingest


@pytest.fixture
def ingest(redis_server: RedisServer, procs: list[Proc], tmp_path: Path) -> Ingest:
    return start_ingest(redis_server, procs, tmp_path, HEADER_TIMEOUT_S)


async def connect(port: int, source: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))


async def first_bytes(reader: asyncio.StreamReader, timeout_s: float) -> bytes:
    """What the server sends first (b"" when it closed), or None-like b"?" when it stays silent."""
    try:
        return await asyncio.wait_for(reader.read(4096), timeout_s)
    except TimeoutError:
        return b"?"


def status_of(head: bytes) -> int:
    return int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/1.1 ") else 0


def problem_of(response: bytes) -> dict[str, object]:
    body = response.split(b"\r\n\r\n", 1)[1]
    decoded: dict[str, object] = json.loads(body)
    return decoded


async def honest_is_served(ingest: Ingest, job_id: str) -> None:
    """A client from 127.0.0.1: its status read, an upload and (if asked) its stream all work."""
    async with httpx.AsyncClient(base_url=ingest.url, timeout=20) as client:
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get(f"/v1/jobs/{job_id}")).status_code == 200
        photo = encode(landscape(320, 240, seed=int(time.time() * 1000) % 10_000))
        upload = await client.post("/v1/jobs", files={"image": ("p.jpg", photo, "image/jpeg")})
        assert upload.status_code == 202, upload.text


def submit_job(ingest: Ingest) -> str:
    photo = encode(landscape(320, 240))
    response = httpx.post(
        ingest.url + "/v1/jobs", files={"image": ("p.jpg", photo, "image/jpeg")}, timeout=60
    )
    assert response.status_code == 202
    job_id: str = response.json()["id"]
    return job_id


async def test_thousands_of_idle_connections_are_capped_then_timed_out(
    redis_server: RedisServer, procs: list[Proc], tmp_path: Path
) -> None:
    header_timeout_s = IDLE_HEADER_TIMEOUT_S
    ingest = start_ingest(redis_server, procs, tmp_path, header_timeout_s)
    job_id = submit_job(ingest)
    attackers = [f"127.0.0.{i}" for i in range(2, 6)]
    started = time.monotonic()
    # 2000 connections, 500 from each of four addresses, opened at once.
    opened = dict(
        zip(
            attackers,
            await asyncio.gather(
                *(asyncio.gather(*(connect(ingest.port, source) for _ in range(500))) for source in attackers)
            ),
            strict=True,
        )
    )
    assert time.monotonic() - started < header_timeout_s - 1, "opening them took too long for this test"
    answers = {
        source: await asyncio.gather(*(first_bytes(reader, 0.5) for reader, _w in conns))
        for source, conns in opened.items()
    }
    for source, first in answers.items():
        kinds = Counter(status_of(data) if data != b"?" else "held" for data in first)
        assert kinds == {"held": PER_CLIENT_CONNECTIONS, 429: 500 - PER_CLIENT_CONNECTIONS}, (source, kinds)
        refused = next(data for data in first if data != b"?")
        assert b"application/problem+json" in refused
        assert b"retry-after:" in refused.lower()
        assert problem_of(refused)["code"] == "too_many_connections"
    # Meanwhile a client from another address is served as usual.
    await honest_is_served(ingest, job_id)
    # The held connections never sent a request: the header deadline closes every one of them.
    held = [
        r
        for source, conns in opened.items()
        for (r, _w), d in zip(conns, answers[source], strict=True)
        if d == b"?"
    ]
    closing = await asyncio.gather(*(first_bytes(reader, header_timeout_s + 8) for reader in held))
    assert time.monotonic() - started < header_timeout_s + 10
    assert Counter(status_of(data) for data in closing) == {408: len(held)}
    for _reader, writer in (c for conns in opened.values() for c in conns):
        writer.close()
    # With them gone, an address that was capped can connect again.
    reader, writer = await connect(ingest.port, attackers[0])
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_of(await first_bytes(reader, 10)) == 200
    writer.close()


def complete(data: bytes, *, stream: bool = True) -> bool:
    """A whole response head, and then the first event of a stream or the whole body."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    if stream and status_of(data) == 200:
        return b"event: status" in body
    length = next(
        (
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ),
        0,
    )
    return len(body) >= length


async def read_response(reader: asyncio.StreamReader, first: bytes, timeout_s: float = 10) -> bytes:
    """A whole (non-stream) response whose first bytes are `first`."""
    data = first
    while data and not complete(data, stream=False):
        chunk = await asyncio.wait_for(reader.read(4096), timeout_s)
        if not chunk:
            break
        data += chunk
    return data


async def open_stream(port: int, source: str, job_id: str) -> tuple[int, bytes, asyncio.StreamWriter]:
    reader, writer = await connect(port, source)
    writer.write(
        f"GET /v1/jobs/{job_id}/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n".encode()
    )
    data = b""
    while not complete(data):
        chunk = await asyncio.wait_for(reader.read(4096), 20)
        if not chunk:
            break
        data += chunk
    return status_of(data), data, writer


async def test_held_streams_are_capped_per_client_and_per_process(ingest: Ingest) -> None:
    job_id = submit_job(ingest)
    attackers = [f"127.0.0.{i}" for i in range(10, 14)]
    streams = [
        await asyncio.gather(
            *(open_stream(ingest.port, source, job_id) for _ in range(PER_CLIENT_STREAMS + 20))
        )
        for source in attackers
    ]
    for source, results in zip(attackers, streams, strict=True):
        codes = Counter(code for code, _data, _w in results)
        assert codes == {200: PER_CLIENT_STREAMS, 429: 20}, (source, codes)
        refused = next(data for code, data, _w in results if code == 429)
        assert problem_of(refused)["code"] == "too_many_streams"
        assert b"retry-after: 10" in refused.lower()
    held = len(attackers) * PER_CLIENT_STREAMS  # 160 of the process's 170
    # Another client still gets a stream, and reads status while streams are refused to it later.
    code, data, honest_writer = await open_stream(ingest.port, "127.0.0.1", job_id)
    assert code == 200
    assert b"event: status" in data
    more = await asyncio.gather(*(open_stream(ingest.port, "127.0.0.20", job_id) for _ in range(15)))
    codes = Counter(code for code, _data, _w in more)
    assert codes == {200: STREAMS - held - 1, 503: 15 - (STREAMS - held - 1)}, codes
    assert problem_of(next(d for c, d, _w in more if c == 503))["code"] == "too_many_streams"
    await honest_is_served(ingest, job_id)  # polling its status works when streams are refused
    for _code, _data, writer in [r for results in streams for r in results] + list(more):
        writer.close()
    honest_writer.close()

    # Closed streams give their slots back.
    async def stream_again() -> bool:
        code, _data, writer = await open_stream(ingest.port, attackers[0], job_id)
        writer.close()
        return code == 200

    deadline = time.monotonic() + 10
    while not await stream_again():
        assert time.monotonic() < deadline, "slots were not given back"
        await asyncio.sleep(0.2)


async def test_slow_uploads_and_idle_keepalive_connections_are_cut_off(ingest: Ingest) -> None:
    head = (
        b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        b"Content-Length: 100000\r\n\r\n"
    )
    # A body that stops: cut off after the longest pause.
    reader, writer = await connect(ingest.port, "127.0.0.30")
    started = time.monotonic()
    writer.write(head + b"--b\r\n" + b"x" * 1000)
    stalled = await read_response(reader, await first_bytes(reader, HEADER_TIMEOUT_S + 8))
    assert status_of(stalled) == 408, stalled[:200]
    assert problem_of(stalled)["code"] == "request_timeout"
    assert time.monotonic() - started < HEADER_TIMEOUT_S + 6
    writer.close()
    # A body that trickles (a byte every 0.5 s, never a long pause): cut off at the body deadline.
    reader, writer = await connect(ingest.port, "127.0.0.31")
    started = time.monotonic()
    writer.write(head)
    answer = b""
    while not answer and time.monotonic() - started < BODY_TIMEOUT_S + 10:
        writer.write(b"x")
        answer = (await first_bytes(reader, 0.5)).replace(b"?", b"")
    answer = await read_response(reader, answer)
    assert status_of(answer) == 408, answer[:200]
    assert problem_of(answer)["code"] == "request_timeout"
    assert BODY_TIMEOUT_S - 1 < time.monotonic() - started < BODY_TIMEOUT_S + 6
    writer.close()
    # A kept-alive connection with nothing more to ask is closed after the keep-alive timeout.
    reader, writer = await connect(ingest.port, "127.0.0.32")
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_of(await read_response(reader, await first_bytes(reader, 10))) == 200
    started = time.monotonic()
    assert await first_bytes(reader, 10) == b""  # closed by the server
    assert time.monotonic() - started < 4
    writer.close()
