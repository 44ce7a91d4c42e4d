"""HF token sources, aliases, and the Redis-shared pool's atomic selection (real redis-server)."""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import pytest
from redis.asyncio import Redis

from consumers.breaker import CircuitBreaker
from consumers.errors import ErrorKind, SpaceError
from consumers.token_pool import Outcome, TokenPool
from consumers.tokens import ANONYMOUS, TokenConfigError, TokenSet, alias_of, load_tokens
from jobs import token_state as ts
from jobs.keys import Keys
from jobs.store import now_ms
from tests.apps.runner import new_token
from tests.clock import MsClock
from tests.procs import RedisServer

A, B, C = new_token(), new_token(), new_token()


# --- sources -------------------------------------------------------------------------------------


def test_every_source_is_read_in_order_and_deduplicated(tmp_path: Path) -> None:
    secrets_file = tmp_path / "tokens"
    secrets_file.write_text(f"# the team's tokens\n{C}\n\n{A}\n")
    environ = {
        "HUGGING_FACE_TOKENS": f" {A} ,{B},,",
        "HUGGING_FACE_TOKEN_10": C,
        "HUGGING_FACE_TOKEN_2": B,  # a duplicate: named by its first source
        "HF_TOKEN": A,
    }
    tokens = load_tokens(environ, str(secrets_file))
    assert [t.secret for t in tokens.usable] == [A, B, C]
    assert [t.source for t in tokens.usable] == [
        "HUGGING_FACE_TOKENS[1]",
        "HUGGING_FACE_TOKENS[2]",
        "HUGGING_FACE_TOKEN_10",
    ]
    assert tokens.aliases == (alias_of(A), alias_of(B), alias_of(C))
    assert not tokens.anonymous


def test_numbered_tokens_sort_numerically_and_the_file_is_read(tmp_path: Path) -> None:
    secrets_file = tmp_path / "tokens"
    secrets_file.write_text(f"{C}\n")
    environ = {"HUGGING_FACE_TOKEN_10": B, "HUGGING_FACE_TOKEN_9": A, "HUGGING_FACE_TOKEN": ""}
    tokens = load_tokens(environ, str(secrets_file))
    assert [t.source for t in tokens.usable] == [
        "HUGGING_FACE_TOKEN_9",
        "HUGGING_FACE_TOKEN_10",
        "HUGGING_FACE_TOKENS_FILE:1",
    ]


def test_no_token_means_anonymous() -> None:
    tokens = load_tokens({"HUGGING_FACE_TOKENS": " , "})
    assert tokens.anonymous
    assert tokens.aliases == (ANONYMOUS,)
    assert tokens.secret(ANONYMOUS) is None


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (f"Bearer {A}", "Bearer"),
        (f'"{A}"', "quotes"),
        ("hf_abc def1234567890123456789", "spaces"),
        ("api_" + A[3:], "does not start with hf_"),
        ("hf_short", "at least 20"),
        ("hf_" + "é" * 30, "non-ASCII"),
    ],
    # Named by the problem: the test tokens are drawn per run, and every xdist worker must collect
    # the same ids.
    ids=["bearer", "quotes", "spaces", "prefix", "short", "non-ascii"],
)
def test_malformed_tokens_are_reported_by_alias_never_by_value(value: str, problem: str) -> None:
    tokens = load_tokens({"HUGGING_FACE_TOKEN_1": value, "HUGGING_FACE_TOKEN_2": A})
    assert [t.secret for t in tokens.usable] == [A]
    (bad,) = tokens.rejected
    assert bad.source == "HUGGING_FACE_TOKEN_1"
    assert bad.alias == alias_of(value.strip())
    assert problem in bad.problem
    assert value.strip() not in bad.problem
    assert value.strip() not in repr(bad)
    assert value.strip() not in repr(tokens)


def test_only_malformed_tokens_stop_the_consumer_with_their_aliases() -> None:
    with pytest.raises(TokenConfigError) as caught:
        load_tokens({"HF_TOKEN": "hf_tooshort"})
    assert alias_of("hf_tooshort") in str(caught.value)
    assert "HF_TOKEN" in str(caught.value)
    assert "hf_tooshort" not in str(caught.value).replace(alias_of("hf_tooshort"), "")


def test_unreadable_tokens_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(TokenConfigError, match="HUGGING_FACE_TOKENS_FILE"):
        load_tokens({}, str(tmp_path / "missing"))


def test_aliases_are_stable_short_hashes() -> None:
    assert alias_of(A) == alias_of(A)
    assert alias_of(A) != alias_of(B)
    assert alias_of(A).startswith("hf-")
    assert len(alias_of(A)) == 11
    assert A[3:11] not in alias_of(A)


# --- the shared pool ----------------------------------------------------------------------------


def _pool(
    redis: Redis,
    tokens: TokenSet,
    *,
    max_in_flight: int = 1,
    lease_s: float = 30,
    clock: MsClock | None = None,
) -> TokenPool:
    return TokenPool(
        redis,
        Keys(),
        tokens,
        max_in_flight=max_in_flight,
        lease_s=lease_s,
        gpu_seconds_per_call=60,
        clock=clock or now_ms,
    )


async def _view(redis: Redis) -> dict[str, ts.TokenView]:
    view = await ts.read_pool(redis, Keys())
    return {t.alias: t for t in view.tokens}


@pytest.mark.anyio
async def test_least_in_flight_then_least_recently_used(redis_server: RedisServer) -> None:
    redis = Redis.from_url(redis_server.url)
    tokens = load_tokens({"HUGGING_FACE_TOKENS": f"{A},{B},{C}"})
    clock = MsClock()
    pool = _pool(redis, tokens, max_in_flight=2, clock=clock)
    await pool.register()
    first = (await pool.acquire()).lease
    assert first is not None
    clock.advance(0.01)
    second = (await pool.acquire()).lease
    third = (await pool.acquire()).lease
    assert second is not None
    assert third is not None
    # Three tokens, three calls: one on each (never two on one while another is idle).
    assert {first.alias, second.alias, third.alias} == set(tokens.aliases)
    await pool.release(second, Outcome.SUCCESS)
    clock.advance(0.01)
    await pool.release(first, Outcome.SUCCESS)
    # first and second are idle; second was used less recently (released or not, last_used is
    # when the call started: second started after first, so first is the least recently used).
    fourth = (await pool.acquire()).lease
    assert fourth is not None
    assert fourth.alias == first.alias
    await redis.aclose()


@pytest.mark.anyio
async def test_a_cooling_token_is_skipped_until_its_time(redis_server: RedisServer) -> None:
    redis = Redis.from_url(redis_server.url)
    tokens = load_tokens({"HUGGING_FACE_TOKENS": f"{A},{B}"})
    clock = MsClock()
    pool = _pool(redis, tokens, clock=clock)
    await pool.register()
    lease = (await pool.acquire()).lease
    assert lease is not None
    until = clock.now + 1500
    await pool.release(
        lease, Outcome.QUOTA, error_code="quota_exceeded", cooldown_until_ms=until, requested_s=90
    )
    other = (await pool.acquire()).lease
    assert other is not None
    assert other.alias != lease.alias
    # The other token is full (max 1) and this one is cooling: the caller must wait for quota.
    got = await pool.acquire()
    assert got.lease is None
    assert got.verdict == "busy"
    await pool.release(other, Outcome.QUOTA, error_code="quota_exceeded", cooldown_until_ms=until + 500)
    got = await pool.acquire()
    assert (got.verdict, got.until_ms) == ("cooling", until)
    view = await _view(redis)
    assert view[lease.alias].state == "cooling"
    assert view[lease.alias].cooldown_until is not None
    assert abs(view[lease.alias].cooldown_until.timestamp() * 1000 - until) < 2
    assert view[lease.alias].gpu_seconds_per_call == 90
    assert view[lease.alias].quota_errors == 1
    assert view[lease.alias].failures == 1
    assert view[lease.alias].last_error is not None
    assert view[lease.alias].last_error.code == "quota_exceeded"
    clock.advance(1.4)
    assert (await pool.acquire()).verdict == "cooling"  # not a moment early
    clock.advance(0.2)
    back = (await pool.acquire()).lease
    assert back is not None
    assert back.alias == lease.alias
    await redis.aclose()


@pytest.mark.anyio
async def test_excluded_tokens_count_as_cooling(redis_server: RedisServer) -> None:
    redis = Redis.from_url(redis_server.url)
    tokens = load_tokens({"HUGGING_FACE_TOKENS": f"{A},{B}"})
    pool = _pool(redis, tokens)
    got = await pool.acquire(exclude={alias_of(A)})
    assert got.lease is not None
    assert got.lease.alias == alias_of(B)
    await pool.release(got.lease, Outcome.ABANDONED)
    got = await pool.acquire(exclude={alias_of(A), alias_of(B)})
    assert got.verdict == "cooling"
    await redis.aclose()


@pytest.mark.anyio
async def test_a_dead_consumers_slot_frees_itself_and_live_ones_renew(redis_server: RedisServer) -> None:
    redis = Redis.from_url(redis_server.url)
    tokens = load_tokens({"HUGGING_FACE_TOKENS": A})
    clock = MsClock()
    pool = _pool(redis, tokens, lease_s=1.0, clock=clock)
    await pool.register()
    crashed = (await pool.acquire()).lease  # its consumer is SIGKILLed: never released
    assert crashed is not None
    assert (await pool.acquire()).verdict == "busy"
    assert (await _view(redis))[alias_of(A)].state == "busy"
    clock.advance(0.9)
    assert (await pool.acquire()).verdict == "busy"  # the lease still holds
    clock.advance(0.3)
    alive = (await pool.acquire()).lease  # the crashed call's lease ran out: its slot is free
    assert alive is not None
    for _ in range(3):  # a call that keeps renewing keeps its slot past the lease
        clock.advance(0.5)
        assert await pool.renew(alive)
    assert (await pool.acquire()).verdict == "busy"
    assert not await pool.renew(crashed)
    await redis.aclose()


@pytest.mark.anyio
async def test_release_counts_and_gpu_seconds_per_utc_day(redis_server: RedisServer) -> None:
    redis = Redis.from_url(redis_server.url)
    tokens = load_tokens({"HUGGING_FACE_TOKENS": A})
    pool = _pool(redis, tokens, max_in_flight=4)
    await pool.register()
    for outcome, charge in [(Outcome.SUCCESS, True), (Outcome.FAILURE, True), (Outcome.FAILURE, False)]:
        lease = (await pool.acquire()).lease
        assert lease is not None
        await pool.release(
            lease, outcome, error_code="no_gpu" if outcome is Outcome.FAILURE else "", charge_gpu=charge
        )
    token = (await _view(redis))[alias_of(A)]
    assert (token.calls, token.successes, token.failures, token.in_flight) == (3, 1, 2, 0)
    assert token.gpu_seconds_today == 120
    assert token.state == "ready"
    # Yesterday's seconds do not count today, and the next call starts the new day from zero.
    await redis.hset(Keys().token(alias_of(A)), ts.F_GPU_DAY, "20000101")
    assert (await _view(redis))[alias_of(A)].gpu_seconds_today == 0
    lease = (await pool.acquire()).lease
    assert lease is not None
    await pool.release(lease, Outcome.SUCCESS, charge_gpu=True)
    assert (await _view(redis))[alias_of(A)].gpu_seconds_today == 60
    await redis.aclose()


@pytest.mark.anyio
async def test_many_concurrent_acquires_never_exceed_the_limit(redis_server: RedisServer) -> None:
    redis = Redis.from_url(redis_server.url, max_connections=64)
    tokens = load_tokens({"HUGGING_FACE_TOKENS": f"{A},{B}"})
    pools = [_pool(redis, tokens, max_in_flight=2) for _ in range(8)]  # 8 "consumers"
    taken: list[str] = []

    async def grab(pool: TokenPool) -> None:
        for _ in range(5):
            got = await pool.acquire()
            if got.lease is not None:
                taken.append(got.lease.alias)

    async with anyio.create_task_group() as tg:
        for pool in pools:
            tg.start_soon(grab, pool)
    assert sorted(taken) == sorted([alias_of(A)] * 2 + [alias_of(B)] * 2)
    await redis.aclose()


@pytest.mark.anyio
async def test_registration_shows_disabled_tokens_and_the_summary(redis_server: RedisServer) -> None:
    redis = Redis.from_url(redis_server.url)
    tokens = load_tokens({"HUGGING_FACE_TOKENS": f"{A},hf_bad"})
    await _pool(redis, tokens).register()
    view = await ts.read_pool(redis, Keys())
    states = {t.alias: (t.state, t.source, t.problem) for t in view.tokens}
    assert states[alias_of(A)] == ("ready", "HUGGING_FACE_TOKENS[1]", None)
    assert states[alias_of("hf_bad")][:2] == ("disabled", "HUGGING_FACE_TOKENS[2]")
    assert (view.summary.tokens, view.summary.ready, view.summary.disabled) == (2, 1, 1)
    assert view.space.ready is None
    await redis.aclose()


@pytest.mark.anyio
async def test_anonymous_pool_is_one_pseudo_token(redis_server: RedisServer) -> None:
    redis = Redis.from_url(redis_server.url)
    pool = _pool(redis, load_tokens({}))
    await pool.register()
    lease = (await pool.acquire()).lease
    assert lease is not None
    assert lease.alias == ANONYMOUS
    assert (await pool.acquire()).verdict == "busy"
    await redis.aclose()


@pytest.mark.anyio
async def test_an_open_shared_breaker_pauses_every_consumer(redis_server: RedisServer) -> None:
    redis = Redis.from_url(redis_server.url)
    pool = _pool(redis, load_tokens({"HF_TOKEN": A}))
    until = int(time.time() * 1000) + 5000
    await pool.set_space(**{ts.S_BREAKER_UNTIL: until, ts.S_BREAKER_REASON: "space_unavailable: PAUSED"})
    got = await pool.acquire()
    assert (got.verdict, got.until_ms) == ("paused", until)
    view = await ts.read_pool(redis, Keys())
    assert view.space.paused_reason == "space_unavailable: PAUSED"
    await pool.set_space(**{ts.S_BREAKER_UNTIL: 0})
    assert (await pool.acquire()).lease is not None
    await redis.aclose()


# --- the circuit breaker ------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_on_broken_doubles_and_closes_on_success() -> None:
    clock = Clock()
    breaker = CircuitBreaker(open_s=10, max_open_s=25, clock=clock)
    paused = SpaceError(ErrorKind.BROKEN, "space_unavailable", "invalid state: PAUSED")
    assert breaker.record(paused)
    assert breaker.open_until() == 1010
    assert breaker.state == "open"
    clock.now = 1011  # half-open: the next call probes
    assert breaker.open_until() is None
    assert breaker.state == "half_open"
    assert breaker.record(paused)
    assert breaker.open_until() == 1031  # doubled
    clock.now = 1032
    breaker.record(paused)
    assert breaker.open_until() == 1057  # capped at 25 s
    clock.now = 1058
    assert not breaker.record(None)
    assert breaker.state == "closed"
    breaker.record(paused)
    assert breaker.open_until() == 1068  # back to the first pause


def test_breaker_opens_after_consecutive_network_failures_only() -> None:
    breaker = CircuitBreaker(open_s=10, threshold=3, clock=Clock())
    down = SpaceError(ErrorKind.TRANSIENT, "network", "connection refused")
    answered = SpaceError(ErrorKind.TRANSIENT, "no_gpu", "No GPU was available")
    assert not breaker.record(down)
    assert not breaker.record(down)
    assert not breaker.record(answered)  # the Space answered: the count starts over
    assert not breaker.record(down)
    assert not breaker.record(down)
    assert breaker.record(down)
    assert breaker.open_until() is not None
