"""SpaceCaller in process: token rotation on quota, QuotaWait, readiness, the breaker, slot limits.

Real redis-server, the real quota test Space (tests/apps/quota_space.py) on loopback.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest

from consumers.errors import ErrorKind, QuotaWait, SpaceError
from consumers.space_call import SpaceCaller
from consumers.space_client import SpaceUpdate
from consumers.tokens import ANONYMOUS, alias_of
from jobs import token_state as ts
from jobs.keys import Keys
from jobs.model import JobParams
from jobs.redis_conn import connect
from jobs.settings import load_settings
from sandbox.pool import DecodePool, PoolLimits
from tests.apps.quota_space import token_label
from tests.apps.runner import QuotaSpace, new_token
from tests.photos import encode, landscape
from tests.procs import RedisServer, base_env

# System tier: starts processes beyond redis-server (docs/tests.md).
pytestmark = [pytest.mark.system, pytest.mark.anyio]

PARAMS = JobParams(width=320, height=256, seed=3)


@pytest.fixture
def space(quota_space: QuotaSpace) -> QuotaSpace:
    return quota_space


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "photo.jpg"
    path.write_bytes(encode(landscape(320, 240)))
    return path


@asynccontextmanager
async def opened(
    redis_server: RedisServer, url: str, tokens: dict[str, str], **settings: str
) -> AsyncIterator[SpaceCaller]:
    env = base_env(REDIS_URL=redis_server.url, GHIBLI_SPACE=url, GHIBLI_BREAKER_OPEN_SECONDS="30", **settings)
    config = load_settings(environ=env)
    redis = connect(config.redis_url)
    async with DecodePool(PoolLimits(workers=1)) as decoder:
        caller = await SpaceCaller.open(config, redis, Keys(), decoder, environ=tokens)
        try:
            yield caller
        finally:
            await caller.aclose()
            await redis.aclose()


async def call(caller: SpaceCaller, photo: Path, stop: threading.Event | None = None) -> str:
    updates: list[SpaceUpdate] = []
    result = await caller.call(PARAMS, photo, on_update=updates.append, stop=stop or threading.Event())
    assert result.media_type.startswith("image/")
    return result.token_alias


async def pool(redis_server: RedisServer) -> dict[str, ts.TokenView]:
    redis = connect(redis_server.url)
    try:
        view = await ts.read_pool(redis, Keys())
    finally:
        await redis.aclose()
    return {t.alias: t for t in view.tokens}


def overlaps(space: QuotaSpace, *labels: str) -> int:
    """How many calls (of these tokens) started before the previous one ended, per the Space."""
    spans = sorted((c["start"], c["end"]) for c in space.calls() if c["token"] in labels)
    return sum(1 for (_, end), (start, _) in itertools.pairwise(spans) if start < end)


async def test_an_exhausted_token_cools_and_the_call_moves_on_at_once(
    redis_server: RedisServer, space: QuotaSpace, photo: Path
) -> None:
    exhausted, fresh = new_token(), new_token()
    space.set_token(exhausted, allowed=0, quota="free", retry="0:00:40")
    space.set_token(fresh)
    tokens = {"HUGGING_FACE_TOKENS": f"{exhausted},{fresh}"}
    async with opened(redis_server, space.url, tokens) as caller:
        assert caller.readiness().ready
        before = time.time()
        aliases = [await call(caller, photo) for _ in range(4)]
    assert aliases == [alias_of(fresh)] * 4
    state = await pool(redis_server)
    cooling = state[alias_of(exhausted)]
    assert cooling.state == "cooling"
    assert cooling.cooldown_until is not None
    assert before + 39 <= cooling.cooldown_until.timestamp() <= time.time() + 41
    assert cooling.quota_errors == 1  # asked once, then left alone while cooling
    assert cooling.last_error is not None
    assert cooling.last_error.code == "quota_exceeded"
    assert state[alias_of(fresh)].successes == 4
    assert state[alias_of(fresh)].gpu_seconds_today == 240
    refused = [c for c in space.calls() if c["token"] == token_label(exhausted)]
    assert [c["outcome"] for c in refused] == ["quota"]


async def test_when_every_token_is_cooling_the_call_waits_for_quota_then_resumes(
    redis_server: RedisServer, space: QuotaSpace, photo: Path
) -> None:
    first, second = new_token(), new_token()
    for token in (first, second):
        space.set_token(token, allowed=1, window_s=10, quota="anonymous")
    tokens = {"HUGGING_FACE_TOKEN_1": first, "HUGGING_FACE_TOKEN_2": second}
    async with opened(redis_server, space.url, tokens) as caller:
        assert {await call(caller, photo), await call(caller, photo)} == {alias_of(first), alias_of(second)}
        with pytest.raises(QuotaWait) as waiting:
            await call(caller, photo)
        resume_at = waiting.value.resume_at_ms / 1000
        assert time.time() < resume_at <= time.time() + 10
        state = await pool(redis_server)
        assert {t.state for t in state.values()} == {"cooling"}
        await anyio.sleep(max(0.0, resume_at - time.time()) + 0.3)
        assert await call(caller, photo) in (alias_of(first), alias_of(second))


async def test_tokens_never_run_more_calls_than_allowed_across_consumers(
    redis_server: RedisServer, space: QuotaSpace, photo: Path
) -> None:
    first, second = new_token(), new_token()
    space.set_token(first, delay_s=0.6)
    space.set_token(second, delay_s=0.6)
    tokens = {"HUGGING_FACE_TOKENS": f"{first},{second}"}
    async with (
        opened(redis_server, space.url, tokens, GHIBLI_CONCURRENCY="3") as one,
        opened(redis_server, space.url, tokens, GHIBLI_CONCURRENCY="3") as two,
    ):
        done: list[str] = []

        async def run(caller: SpaceCaller) -> None:
            done.append(await call(caller, photo))

        async with anyio.create_task_group() as tg:
            for caller in (one, two) * 4:
                tg.start_soon(run, caller)
    assert sorted(done) == sorted([alias_of(first), alias_of(second)] * 4)
    assert overlaps(space, token_label(first)) == 0
    assert overlaps(space, token_label(second)) == 0
    # The Space did run calls side by side (on different tokens), so overlaps were possible.
    assert overlaps(space, token_label(first), token_label(second)) > 0
    assert {t.in_flight for t in (await pool(redis_server)).values()} == {0}


async def test_without_tokens_calls_are_anonymous(
    redis_server: RedisServer, space: QuotaSpace, photo: Path
) -> None:
    async with opened(redis_server, space.url, {}) as caller:
        assert await call(caller, photo) == ANONYMOUS
    assert space.calls()[-1]["token"] == "anonymous"  # no auth header reached the Space
    assert (await pool(redis_server))[ANONYMOUS].successes == 1


async def test_a_missing_endpoint_makes_the_consumer_not_ready_and_paused(
    redis_server: RedisServer, space: QuotaSpace, photo: Path
) -> None:
    async with opened(redis_server, space.url + "other/", {}) as caller:
        readiness = caller.readiness()
        assert not readiness.ready
        assert "endpoint_missing" in readiness.reason
        assert "/single_condition_generate_image" in readiness.reason
        paused = caller.paused_until()
        assert paused is not None
        assert time.time() + 25 < paused <= time.time() + 31
        with pytest.raises(SpaceError) as caught:
            await call(caller, photo)
        assert (caught.value.kind, caught.value.code) == (ErrorKind.BROKEN, "space_paused")
        assert caught.value.retry_after_s is not None
    redis = connect(redis_server.url)
    view = await ts.read_pool(redis, Keys())
    await redis.aclose()
    assert view.space.ready is False
    assert view.space.reason is not None
    assert "endpoint_missing" in view.space.reason
    assert view.space.paused_until is not None


async def test_the_older_six_parameter_space_is_ready(
    redis_server: RedisServer, space: QuotaSpace, photo: Path
) -> None:
    async with opened(redis_server, space.url + "v6/", {}) as caller:
        assert caller.readiness().ready
        assert len(caller.readiness().parameters) == 6
        assert caller.paused_until() is None
        assert await call(caller, photo) == ANONYMOUS


async def test_a_token_in_an_error_text_is_replaced_by_its_alias(
    redis_server: RedisServer, space: QuotaSpace, photo: Path
) -> None:
    token = new_token()
    space.set_token(token, mode="leak")
    async with opened(redis_server, space.url, {"HF_TOKEN": token}) as caller:
        with pytest.raises(SpaceError) as caught:
            await call(caller, photo)
    assert caught.value.code == "space_error"
    assert token not in caught.value.message
    assert alias_of(token) in caught.value.message
    state = (await pool(redis_server))[alias_of(token)]
    assert (state.failures, state.in_flight) == (1, 0)


async def test_a_stopped_call_frees_its_token_slot(
    redis_server: RedisServer, space: QuotaSpace, photo: Path
) -> None:
    token = new_token()
    space.set_token(token, mode="slow", sleep_s=20)
    stop = threading.Event()
    async with opened(redis_server, space.url, {"HF_TOKEN": token}) as caller:
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: anyio.to_thread.run_sync(lambda: (time.sleep(1.5), stop.set())))
            with pytest.raises(SpaceError) as caught:
                await call(caller, photo, stop)
        assert caught.value.code == "cancelled"
    state = (await pool(redis_server))[alias_of(token)]
    assert (state.in_flight, state.failures, state.successes) == (0, 0, 0)
