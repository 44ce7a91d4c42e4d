"""Server-Sent Events against a real `ghibli ingest` process (uvicorn) and a real redis-server.

In-process test clients hang on open-ended event streams, so these tests talk HTTP to a subprocess.
Jobs move through the real job-store scripts (tests/ingest_support.py: Driver).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest
from httpx_sse import aconnect_sse

from jobs.model import JobParams
from tests.ingest_support import TERMINAL, Driver, picture, settings_for
from tests.procs import RedisServer, base_env, free_port, ghibli, wait_until

# System tier: starts processes beyond redis-server (docs/tests.md).
pytestmark = [pytest.mark.system, pytest.mark.anyio]


@pytest.fixture(scope="module")
def sse_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One Redis and one ingest process for the module: starting uvicorn costs seconds."""
    server = RedisServer(tmp_path_factory.mktemp("sse-redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def ingest_url(sse_redis: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    env = base_env(
        REDIS_URL=sse_redis.url,
        GHIBLI_PORT=str(port),
        GHIBLI_SSE_KEEPALIVE_SECONDS="1",
        GHIBLI_RATE_LIMIT_SUBMITS="0",
        GHIBLI_RATE_LIMIT_REQUESTS="0",
        GHIBLI_MAX_BACKLOG="0",
        GHIBLI_MAX_UNFINISHED_PER_CLIENT="0",
        GHIBLI_MAX_STORED_BYTES_PER_CLIENT="0",
        # A thousand viewers from one address: the per-client caps are for tests/test_connection_limits.py.
        GHIBLI_MAX_STREAMS_PER_CLIENT="0",
        GHIBLI_MAX_CONNECTIONS_PER_CLIENT="0",
        GHIBLI_LOG_LEVEL="warning",
    )
    proc = ghibli(["ingest"], env, tmp_path_factory.mktemp("sse-ingest") / "ingest.log").start()
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: httpx.get(url + "/healthz", timeout=2).status_code == 200, "ingest", 90, proc.proc)
        yield url
    finally:
        proc.stop()


@pytest.fixture
async def driver(sse_redis: RedisServer) -> Any:
    driver = Driver(settings_for(sse_redis))
    await driver.store.ensure_group()
    yield driver
    await driver.close()


async def new_job(driver: Driver) -> str:
    return await driver.queue(JobParams(seed=1))


Event = tuple[str, str, dict[str, Any]]


async def collect(
    url: str, job_id: str, last_event_id: str | None = None, into: list[Event] | None = None
) -> list[Event]:
    """Every event of the stream until the server ends it: (event, id, data), appended as they come."""
    headers = {"Last-Event-ID": last_event_id} if last_event_id is not None else {}
    out: list[Event] = [] if into is None else into
    async with (
        httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(10, read=60)) as client,
        aconnect_sse(client, "GET", f"/v1/jobs/{job_id}/events", headers=headers) as source,
    ):
        assert source.response.headers["content-type"].startswith("text/event-stream")
        async for event in source.aiter_sse():
            if event.data:  # httpx-sse also yields the keep-alive comments as empty events
                out.append((event.event, event.id, json.loads(event.data)))
    return out


async def until(check: Any, timeout_s: float = 30) -> None:
    """Poll a condition on what the viewers received (they run in other tasks)."""
    with anyio.fail_after(timeout_s):
        while True:
            if check():
                return
            await anyio.sleep(0.05)


async def test_snapshot_then_every_change_then_the_end(ingest_url: str, driver: Driver) -> None:
    job_id = await new_job(driver)
    events: list[Event] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(collect, ingest_url, job_id, None, events)
        await until(lambda: events)  # the snapshot arrived: the viewer is registered
        claim = (await driver.claim_all())[job_id]
        await driver.progress(claim, 0.25, "painting")
        await anyio.sleep(0.3)
        await driver.progress(claim, 0.75, "painting")
        await anyio.sleep(0.3)
        assert await driver.succeed(claim, picture()) == "ok"
    kinds = {e[0] for e in events}
    assert kinds == {"status"}
    versions = [int(e[1]) for e in events]
    assert versions == sorted(set(versions))  # increasing, no repeats
    assert versions[-1] == (await driver.store.get(job_id)).version  # type: ignore[union-attr]
    first, last = events[0][2], events[-1][2]
    assert (first["id"], first["status"], int(events[0][1])) == (job_id, "queued", 1)
    assert last["status"] == "succeeded"
    assert last["progress"] == 1.0
    assert last["result"]["url"] == f"/v1/jobs/{job_id}/result"
    assert [e[2]["version"] for e in events] == versions  # id: is the status JSON's version
    assert any(e[2]["progress"] == 0.75 for e in events)


async def test_keepalive_comments(ingest_url: str, driver: Driver) -> None:
    job_id = await new_job(driver)
    lines: list[str] = []
    async with (
        httpx.AsyncClient(base_url=ingest_url, timeout=30) as client,
        client.stream("GET", f"/v1/jobs/{job_id}/events") as response,
    ):
        assert response.headers["cache-control"] == "no-cache"
        with anyio.fail_after(30):
            async for line in response.aiter_lines():
                lines.append(line)
                if line == ": ping":
                    break
    first = lines[: lines.index("")]  # the snapshot event, up to its blank line
    assert sorted(line.split(":")[0] for line in first) == ["data", "event", "id"]
    assert {"event: status", "id: 1"} < set(first)
    assert ": ping" in lines
    assert all(
        not line.startswith("data: ") or line.startswith("data: {") for line in lines
    )  # no empty events


async def test_last_event_id_resumes(ingest_url: str, driver: Driver) -> None:
    job_id = await new_job(driver)
    claim = (await driver.claim_all())[job_id]
    await driver.progress(claim, 0.5)  # version 3: queued (1), running (2), progress (3)

    behind: list[Event] = []
    current: list[Event] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(collect, ingest_url, job_id, "2", behind)  # missed version 3: gets it at once
        tg.start_soon(collect, ingest_url, job_id, "3", current)  # up to date: waits for the next change
        await until(lambda: behind)
        await anyio.sleep(1.5)  # a keep-alive passes; still nothing for the up-to-date viewer
        assert current == []
        assert await driver.succeed(claim, picture()) == "ok"
    assert [int(e[1]) for e in behind] == [3, 4]
    assert [int(e[1]) for e in current] == [4]
    assert current[0][2]["status"] == "succeeded"


async def test_finished_jobs_send_one_event_and_close(ingest_url: str, driver: Driver) -> None:
    job_id = await new_job(driver)
    claim = (await driver.claim_all())[job_id]
    await driver.fail(claim, "space_error", "no GPU today")
    with anyio.fail_after(30):
        events = await collect(ingest_url, job_id)
        assert [(e[0], e[2]["status"], e[2]["error"]["code"]) for e in events] == [
            ("status", "failed", "space_error")
        ]
        # Reconnecting after having seen the end: nothing more, and the stream ends.
        assert await collect(ingest_url, job_id, events[-1][1]) == []


def test_unknown_job_is_404_not_a_stream(ingest_url: str) -> None:
    response = httpx.get(f"{ingest_url}/v1/jobs/{'0' * 32}/events", timeout=10)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_delete_ends_open_streams(ingest_url: str, driver: Driver) -> None:
    job_id = await new_job(driver)
    events: list[Event] = []
    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(collect, ingest_url, job_id, None, events)
            await until(lambda: events)
            async with httpx.AsyncClient(base_url=ingest_url) as client:
                assert (await client.delete(f"/v1/jobs/{job_id}")).status_code == 204
    assert events[0][2]["status"] == "queued"
    assert {e[2]["status"] for e in events[1:]} <= {"cancelled"}


async def ingest_connections(driver: Driver) -> int:
    clients = await driver.redis.client_list()
    return sum(1 for c in clients if c.get("name") == "ingest")


async def test_a_thousand_viewers_one_process_bounded_redis_connections(
    ingest_url: str, driver: Driver
) -> None:
    jobs = [await new_job(driver) for _ in range(50)]
    viewers = 1000
    final: dict[int, str] = {}  # viewer -> the last status it received
    limits = httpx.Limits(max_connections=viewers + 50, max_keepalive_connections=0)

    async def view(n: int, client: httpx.AsyncClient) -> None:
        job_id = jobs[n % len(jobs)]
        async with aconnect_sse(client, "GET", f"/v1/jobs/{job_id}/events") as source:
            if source.response.status_code != 200:
                await source.response.aread()
                raise AssertionError(f"viewer {n}: {source.response.status_code} {source.response.text}")
            async for event in source.aiter_sse():
                if event.data:
                    final[n] = json.loads(event.data)["status"]

    timeout = httpx.Timeout(60, read=300, pool=120)
    async with (
        httpx.AsyncClient(base_url=ingest_url, limits=limits, timeout=timeout) as client,
        anyio.create_task_group() as tg,
    ):
        for n in range(viewers):
            tg.start_soon(view, n, client)
        await until(lambda: len(final) == viewers, 300)  # every viewer has its snapshot
        assert set(final.values()) == {"queued"}
        during = await ingest_connections(driver)
        claims = await driver.claim_all()
        for job_id in jobs:
            await driver.progress(claims[job_id], 0.5)
        for i, job_id in enumerate(jobs):
            if i % 5 == 0:
                assert await driver.fail(claims[job_id], "space_error", "boom") == "ok"
            else:
                assert await driver.succeed(claims[job_id], picture()) == "ok"
        await until(lambda: set(final.values()) <= TERMINAL, 300)
    assert len(final) == viewers
    assert all(status in TERMINAL for status in final.values())
    assert sum(1 for status in final.values() if status == "failed") == viewers // 5
    # One events reader plus the request pool (64 at most), never one connection per viewer.
    print(f"ingest's Redis connections while {viewers} viewers watched: {during}")
    assert 1 <= during <= 65, during
    assert await ingest_connections(driver) <= 65
