"""Held status requests (ingest/long_poll.py): answered when the job changes or at the bound, served
by the events hub (Redis commands do not grow with the time requests are held), bounded per client.

A real `ghibli ingest` (uvicorn) process: Litestar's test client runs requests one at a time.
Clients come from several loopback addresses, since the bound on held requests is per client.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import anyio
import httpx
import pytest

from tests.ingest_support import Driver, photo_bytes, picture, settings_for
from tests.procs import RedisServer, base_env, free_port, ghibli, wait_until

# System tier: starts processes beyond redis-server (docs/tests.md).
pytestmark = [pytest.mark.system, pytest.mark.anyio]

HELD_PER_CLIENT = 8  # GHIBLI_MAX_STREAMS_PER_CLIENT here: held requests take stream slots
BOUND_S = 8.0  # long enough for 32 requests to arrive on a loaded machine before any is answered


@pytest.fixture(scope="module")
def poll_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("poll-redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def ingest_url(poll_redis: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    env = base_env(
        REDIS_URL=poll_redis.url,
        GHIBLI_PORT=str(port),
        GHIBLI_LONG_POLL_SECONDS=str(BOUND_S),
        GHIBLI_MAX_STREAMS_PER_CLIENT=str(HELD_PER_CLIENT),
        GHIBLI_RATE_LIMIT_SUBMITS="0",
        GHIBLI_RATE_LIMIT_REQUESTS="0",
        GHIBLI_MAX_BACKLOG="0",
        GHIBLI_LOG_LEVEL="warning",
    )
    proc = ghibli(["ingest"], env, tmp_path_factory.mktemp("poll-ingest") / "ingest.log").start()
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: httpx.get(url + "/healthz", timeout=2).status_code == 200, "ingest", 90, proc.proc)
        yield url
    finally:
        proc.stop()


@pytest.fixture
async def driver(poll_redis: RedisServer) -> AsyncIterator[Driver]:
    driver = Driver(settings_for(poll_redis))
    yield driver
    await driver.close()


def http(url: str, source: str = "127.0.0.1") -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(local_address=source)
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=0)
    return httpx.AsyncClient(base_url=url, transport=transport, limits=limits, timeout=30)


@pytest.fixture
async def client(ingest_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with http(ingest_url) as client:
        yield client


_seeds = iter(range(1000, 10_000))


async def submit(client: httpx.AsyncClient) -> str:
    """A new job (another seed each time: the module's tests share one Redis and its result cache)."""
    seed = next(_seeds)
    response = await client.post(
        "/api/transform-ghibli",
        files={"image": ("p.jpg", photo_bytes(seed=seed), "image/jpeg")},
        data={"seed": str(seed), "width": "512", "height": "512"},
    )
    assert response.status_code == 200, response.text
    task_id: str = response.json()["taskId"]
    return task_id


async def timed(call: Any) -> tuple[Any, float]:
    started = time.monotonic()
    result = await call
    return result, time.monotonic() - started


async def command_calls(driver: Driver) -> dict[str, int]:
    stats = await driver.redis.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}


async def settled(driver: Driver) -> dict[str, int]:
    """Command counts once requests stop arriving (no new snapshot read for 0.5 s): on a loaded
    machine the last of 32 requests can arrive seconds after the first."""
    last = await command_calls(driver)
    while True:
        await anyio.sleep(0.5)
        now = await command_calls(driver)
        if now.get("hgetall", 0) == last.get("hgetall", 0):
            return now
        last = now


async def held(driver: Driver, tg: anyio.abc.TaskGroup, request: Callable[[], Awaitable[None]]) -> None:
    """Start a held request and return once ingest holds it: its one snapshot read on arrival
    (HGETALL) has happened. A sleep instead would let a slow arrival pass for a hold."""
    before = (await command_calls(driver)).get("hgetall", 0)
    tg.start_soon(request)
    with anyio.fail_after(30):
        while (await command_calls(driver)).get("hgetall", 0) <= before:  # noqa: ASYNC110 # Redis's count
            await anyio.sleep(0.01)


async def test_check_is_held_until_the_job_is_over(client: httpx.AsyncClient, driver: Driver) -> None:
    task_id = await submit(client)
    claim = (await driver.claim_all())[task_id]
    answers: list[tuple[Any, float]] = []

    async def check() -> None:
        answers.append(await timed(client.get(f"/api/transform-ghibli/check/{task_id}")))

    canary: list[Any] = []
    told = anyio.Event()

    async def watch_any_change() -> None:
        canary.append(await client.get(f"/v1/jobs/{task_id}", params={"wait": 10}))
        told.set()

    async with anyio.create_task_group() as tg:
        await held(driver, tg, check)
        await held(driver, tg, watch_any_change)
        await driver.progress(claim, 0.4)  # progress alone does not end the hold
        # The watcher of any change has been told, so the hub has handed the progress to every
        # held request; the check, held first, would have been answered first.
        with anyio.fail_after(10):
            await told.wait()
        await anyio.sleep(0.1)  # a margin for a wrong answer already on its way
        assert canary[0].json()["progress"] == 0.4
        assert not answers
        await driver.succeed(claim, picture(), "image/png")
    (response, elapsed) = answers[0]
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert response.content == picture()
    assert elapsed < BOUND_S - 1, elapsed  # answered when it finished, not at the bound


async def test_check_answers_progress_at_the_bound(client: httpx.AsyncClient, driver: Driver) -> None:
    task_id = await submit(client)
    await driver.progress((await driver.claim_all())[task_id], 0.25)
    response, elapsed = await timed(client.post(f"/api/transform-ghibli/check/{task_id}"))
    assert response.status_code == 200
    assert response.json()["status"] == "processing"
    assert response.json()["progress"] == 25
    assert BOUND_S - 0.2 <= elapsed < BOUND_S + 5, elapsed


async def test_finished_and_unknown_jobs_are_answered_at_once(
    client: httpx.AsyncClient, driver: Driver
) -> None:
    failed_id = await submit(client)
    await driver.fail((await driver.claim_all())[failed_id], "space_error", "The Space is paused.")
    unknown = "/api/transform-ghibli/check/" + "0" * 32
    for path, status in ((f"/api/transform-ghibli/check/{failed_id}", 500), (unknown, 404)):
        response, elapsed = await timed(client.get(path))
        assert response.status_code == status
        assert elapsed < 1.5, elapsed


async def test_v1_wait_returns_on_any_change(client: httpx.AsyncClient, driver: Driver) -> None:
    task_id = await submit(client)
    url = f"/v1/jobs/{task_id}"
    first = (await client.get(url)).json()
    # No wait: at once, as before.
    _plain, elapsed = await timed(client.get(url))
    assert elapsed < 1.5
    # Behind the client's version already: at once.
    behind, elapsed = await timed(client.get(url, params={"wait": 10, "after": first["version"] - 1}))
    assert behind.json()["version"] == first["version"]
    assert elapsed < 1.5
    # Nothing happens: answered at the bound (wait is capped by the setting), unchanged.
    idle, elapsed = await timed(client.get(url, params={"wait": 60, "after": first["version"]}))
    assert idle.json()["version"] == first["version"]
    assert BOUND_S - 0.2 <= elapsed < BOUND_S + 5
    # Held until the job moves on (here: claimed, so it is running).
    answers: list[Any] = []

    async def hold() -> None:
        answers.append((await client.get(url, params={"wait": 10})).json())

    async with anyio.create_task_group() as tg:
        await held(driver, tg, hold)
        assert not answers
        await driver.claim_all()
    assert answers[0]["status"] == "running"
    assert answers[0]["version"] > first["version"]


async def test_v1_wait_validates(client: httpx.AsyncClient) -> None:
    task_id = await submit(client)
    for params in ({"wait": "-1"}, {"wait": "soon"}, {"wait": "1", "after": "x"}):
        response = await client.get(f"/v1/jobs/{task_id}", params=params)
        assert response.status_code == 400, params
        assert response.headers["content-type"].startswith("application/problem+json")
    missing = await client.get("/v1/jobs/" + "0" * 32, params={"wait": "5"})
    assert missing.status_code == 404
    assert missing.json()["code"] == "job_not_found"


async def test_held_requests_do_not_poll_redis(ingest_url: str, driver: Driver) -> None:
    """Held requests cost one shared snapshot read each on arrival, however long they are held;
    the job's end reaches all of them through the events hub's one reader."""
    sources = [f"127.0.0.{10 + n}" for n in range(4)]  # the bound on held requests is per client
    held = len(sources) * HELD_PER_CLIENT
    async with http(ingest_url) as client:
        task_id = await submit(client)
    claim = (await driver.claim_all())[task_id]
    answers: list[httpx.Response] = []

    async def check(n: int) -> None:
        async with http(ingest_url, sources[n % len(sources)]) as client:
            answers.append(await client.get(f"/api/transform-ghibli/check/{task_id}"))

    def delta(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
        return {name: b[name] - a.get(name, 0) for name in b if b[name] - a.get(name, 0)}

    before = await command_calls(driver)
    async with anyio.create_task_group() as tg:
        for n in range(held):
            tg.start_soon(check, n)
        # Until all of them have arrived and are held; the first arrivals reach the bound of
        # BOUND_S at the earliest BOUND_S after the first request (checked below: no answers yet).
        arrived = await settled(driver)
        await anyio.sleep(1.0)
        holding = await command_calls(driver)
        assert not answers
        await driver.succeed(claim, picture(), "image/png")
    after = await command_calls(driver)
    assert [r.status_code for r in answers] == [200] * held
    assert all(r.content == picture() for r in answers)

    arrival, hold, end = delta(before, arrived), delta(arrived, holding), delta(holding, after)
    print(f"\nredis commands as {held} held requests arrived: {arrival}")
    print(f"while they were held 1 s: {hold}")
    print(f"when the job ended and they were answered: {end}")
    # Arrival: one snapshot read each at most (requests arriving together share one), plus the
    # set-up of pool connections the first time this many requests run at once.
    assert arrival.get("hgetall", 0) <= held
    assert set(arrival) <= {"hgetall", "xread", "info", "hello", "client|setname", "ping"}, arrival
    # Held: nothing per request, only the events reader's blocking XREAD (one per 2 s).
    assert set(hold) <= {"xread", "info"}, hold
    assert hold.get("xread", 0) <= 3
    # The end: the reader reads the job hash once for all of them, then each reads its picture.
    assert end.get("hgetall", 0) <= 2
    assert end.get("get", 0) <= held + 2


async def test_held_requests_per_client_are_bounded(ingest_url: str, driver: Driver) -> None:
    """Over the per-client bound a check is answered at once instead of being held; another
    client is not affected, and a client that hung up frees its places at once."""
    async with http(ingest_url) as client:
        task_id = await submit(client)
    await driver.claim_all()
    path = f"/api/transform-ghibli/check/{task_id}"

    async def hang_up_after(source: str, seconds: float) -> None:
        async with http(ingest_url, source) as client:
            with anyio.move_on_after(seconds):
                await client.get(path)

    # A client that gives up: its held requests end with its connections, not at the bound.
    async with anyio.create_task_group() as tg:
        for _ in range(HELD_PER_CLIENT):
            tg.start_soon(hang_up_after, "127.0.0.20", 0.5)
    await anyio.sleep(0.3)

    quick: list[float] = []
    slow: list[float] = []

    async def check(source: str) -> None:
        async with http(ingest_url, source) as client:
            response, elapsed = await timed(client.get(path))
        assert response.status_code == 200
        (quick if elapsed < BOUND_S - 1 else slow).append(elapsed)

    async with anyio.create_task_group() as tg:
        for _ in range(HELD_PER_CLIENT + 3):
            tg.start_soon(check, "127.0.0.20")
        await anyio.sleep(0.3)
        tg.start_soon(check, "127.0.0.21")
    assert len(slow) == HELD_PER_CLIENT + 1, (slow, quick)
    assert len(quick) == 3, (slow, quick)
