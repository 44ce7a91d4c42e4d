"""Fencing across a fail-over to a replica that missed the last writes, step by step.

A real primary and a real replica; "promotion" is `REPLICAOF NO ONE` on the replica at a chosen
moment, so the new primary holds exactly the state up to that moment and the writes after it are
the ones a fail-over loses. Then the clients carry on against the new primary, as they do after a
Sentinel or Cluster fail-over. The rules (docs/redis-ha.md):

- a finished job may run once more (its finish was lost), but it ends in one terminal state;
- a zombie's writes stay refused, even when the attempt number repeats (a lost claim);
- with durable acknowledgements a finish the consumer counted done survives the fail-over, and a
  write the replicas did not confirm is reported, not silently trusted.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest
import redis as redis_sync

from consumers.recovery import Reclaimer
from jobs.durable import Durability, DurabilityUnavailable, NotDurable
from jobs.keys import Keys
from jobs.model import Status
from jobs.store import Claim, JobStore
from tests.consumer_kit import Pipeline, pipeline
from tests.ingest_support import api, photo_bytes, settings_for
from tests.procs import RedisServer, wait_until

# System tier: starts processes beyond redis-server (docs/tests.md).
pytestmark = [pytest.mark.system, pytest.mark.anyio]


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[RedisServer, RedisServer]]:
    primary = RedisServer(tmp_path / "primary").start()
    replica = RedisServer(tmp_path / "replica", extra=("--replicaof", "127.0.0.1", str(primary.port))).start()
    wait_until(lambda: _replication(replica)["master_link_status"] == "up", "replica", 30)
    yield primary, replica
    replica.stop()
    primary.stop()


def _replication(server: RedisServer) -> dict[str, object]:
    with redis_sync.Redis(port=server.port, socket_timeout=3) as c:
        found: dict[str, object] = c.info("replication")
        return found


def caught_up(primary: RedisServer, replica: RedisServer) -> None:
    offset = int(str(_replication(primary)["master_repl_offset"]))
    wait_until(lambda: int(str(_replication(replica)["master_repl_offset"])) >= offset, "replica offset", 10)


def promote(replica: RedisServer) -> None:
    """The fail-over: the replica stops following and keeps the state it has now."""
    with redis_sync.Redis(port=replica.port, socket_timeout=3) as c:
        c.replicaof("NO", "ONE")


@pytest.fixture
async def old(pair: tuple[RedisServer, RedisServer]) -> AsyncIterator[Pipeline]:
    """The pipeline on the first primary (the one that fails)."""
    async with pipeline(pair[0].url) as p:
        yield p


@asynccontextmanager
async def promoted(replica: RedisServer) -> AsyncIterator[Pipeline]:
    """Fail over to the replica, and the pipeline on it as the clients see it afterwards."""
    promote(replica)
    async with pipeline(replica.url) as p:
        yield p


async def read(p: Pipeline, consumer: str) -> list[tuple[str, str]]:
    reply = await p.redis.xreadgroup(p.keys.group, consumer, {p.keys.stream: ">"}, count=10)
    return [(e.decode(), f[b"job"].decode()) for _, entries in reply or [] for e, f in entries]


async def claim(p: Pipeline, job_id: str, entry_id: str, consumer: str) -> Claim:
    found = await p.store.claim(job_id, entry_id, consumer, max_deliveries=10)
    assert isinstance(found, Claim), found
    return found


async def test_a_lost_claim_repeats_the_attempt_number_yet_the_first_claimer_stays_fenced(
    pair: tuple[RedisServer, RedisServer], old: Pipeline
) -> None:
    primary, replica = pair
    [job_id] = await old.submit()
    caught_up(primary, replica)
    async with promoted(replica) as new:
        # "a" reads and claims on the old primary: the new one never sees it.
        [(entry, _)] = await read(old, "a")
        zombie = await claim(old, job_id, entry, "a")
        await _zombie_is_fenced(new, job_id, entry, zombie)


async def _zombie_is_fenced(new: Pipeline, job_id: str, entry: str, zombie: Claim) -> None:
    # On the new primary the entry is undelivered; "b" gets it, and the attempt number repeats.
    assert await read(new, "b") == [(entry, job_id)]
    owner = await claim(new, job_id, entry, "b")
    assert owner.attempt == zombie.attempt == 1
    assert owner.fence != zombie.fence
    # "a" carries on (its Space call was running) and writes to the new primary: all refused.
    assert await new.store.update(zombie, phase="painting", progress=0.5) == "fenced"
    assert await new.store.finish(zombie, Status.FAILED, error_code="zombie", error_message="x") == "fenced"
    due = {"status": Status.RETRYING, "phase": "retrying", "count_failure": True}
    assert await new.store.retry(zombie, due_ms=1, **due, error_code="z", error_message="z") == "fenced"
    verdict = await new.store.dead_letter(
        zombie, reason="max_attempts", error_code="z", error_message="z", count_failure=True, consumer="a"
    )
    assert verdict == "fenced"
    # The owner's work is untouched and lands.
    assert await new.store.update(owner, phase="painting", progress=0.5) == "ok"
    assert await new.store.finish(owner, Status.SUCCEEDED, result_key="out/b") == "ok"
    record = await new.store.get(job_id)
    assert record is not None
    assert (record.status, record.result_key, record.consumer) == (Status.SUCCEEDED, "out/b", "b")


async def test_a_lost_finish_runs_the_job_once_more_and_it_ends_in_one_terminal_state(
    pair: tuple[RedisServer, RedisServer], old: Pipeline
) -> None:
    primary, replica = pair
    [job_id] = await old.submit()
    [(entry, _)] = await read(old, "a")
    first = await claim(old, job_id, entry, "a")
    caught_up(primary, replica)
    async with promoted(replica) as new:
        # "a" succeeds on the old primary, which then dies: the finish is lost.
        assert await old.store.finish(first, Status.SUCCEEDED, result_key="out/a") == "ok"
        await _runs_again_and_ends_once(new, job_id, entry, first)


async def _runs_again_and_ends_once(new: Pipeline, job_id: str, entry: str, first: Claim) -> None:
    record = await new.store.get(job_id)
    assert record is not None
    assert record.status is Status.RUNNING  # the new primary never saw the end
    # Nobody renews the lease ("a" is done with it): "b" takes it over and runs it again.
    found = await Reclaimer(new.redis, new.keys, "b", lease_s=0).reclaim(5)
    assert [e for e, _, _ in found.entries] == [entry]
    second = await claim(new, job_id, entry, "b")
    assert second.attempt == 2
    # This time the call fails for good.
    assert await new.store.finish(second, Status.FAILED, error_code="bad", error_message="no") == "ok"
    # "a" retries its finish against the new primary (its reply was lost with the old one): refused,
    # so the job does not flip from failed to succeeded.
    assert await new.store.finish(first, Status.SUCCEEDED, result_key="out/a") == "fenced"
    # Nor does any later end: a terminal state is final.
    third_entry = await new.redis.xadd(new.keys.stream, {"job": job_id})
    await new.redis.xreadgroup(new.keys.group, "c", {new.keys.stream: ">"})
    refused = await new.store.claim(job_id, third_entry.decode(), "c")
    assert not isinstance(refused, Claim)
    assert (refused.verdict, refused.reason) == ("skip", "failed")
    record = await new.store.get(job_id)
    assert record is not None
    assert (record.status, record.error_code, record.attempt) == (Status.FAILED, "bad", 2)
    assert await new.pending() == 0


async def test_a_durable_finish_survives_the_failover_and_is_not_run_again(
    pair: tuple[RedisServer, RedisServer], old: Pipeline
) -> None:
    _primary, replica = pair
    durable = JobStore(old.redis, old.keys, durability=Durability(old.redis, old.keys.durable, replicas=1))
    [job_id] = await old.submit()
    [(entry, _)] = await read(old, "a")
    first = await claim(old, job_id, entry, "a")
    # The replica has the end before the consumer moves on; promoted right after, it still has it.
    assert await durable.finish(first, Status.SUCCEEDED, result_key="out/a") == "ok"
    async with promoted(replica) as new:
        await _ended_for_good(new, job_id)


async def _ended_for_good(new: Pipeline, job_id: str) -> None:
    record = await new.store.get(job_id)
    assert record is not None
    assert (record.status, record.result_key) == (Status.SUCCEEDED, "out/a")
    found = await Reclaimer(new.redis, new.keys, "b", lease_s=0).reclaim(5)
    assert found.entries == []  # nothing to run again
    assert await new.pending() == 0


async def test_an_unconfirmed_write_is_reported_with_its_reply(
    pair: tuple[RedisServer, RedisServer], old: Pipeline
) -> None:
    _primary, replica = pair
    promote(replica)  # the primary has no replica any more
    durable = JobStore(
        old.redis, old.keys, durability=Durability(old.redis, old.keys.durable, replicas=1, timeout_ms=300)
    )
    [job_id] = await old.submit()
    [(entry, _)] = await read(old, "a")
    first = await claim(old, job_id, entry, "a")
    with anyio.fail_after(10), pytest.raises(NotDurable) as caught:
        await durable.finish(first, Status.SUCCEEDED, result_key="out/a")
    assert (caught.value.reply, caught.value.confirmed, caught.value.wanted) == ("ok", "0 replica(s)", "1")
    record = await old.store.get(job_id)
    assert record is not None
    assert record.status is Status.SUCCEEDED  # it did happen on the primary


async def test_fsync_acknowledgements_are_refused_where_waitaof_is_missing(old: Pipeline) -> None:
    version = str((await old.redis.info("server"))["redis_version"])
    durability = Durability(old.redis, old.keys.durable, replicas=1, fsync=True)
    if tuple(int(p) for p in version.split(".")[:2]) >= (7, 2):
        pytest.skip(f"Redis {version} has WAITAOF")  # Debian's 7.0 here has not
    with pytest.raises(DurabilityUnavailable, match="GHIBLI_DURABLE_FSYNC needs WAITAOF"):
        await durability.check()


async def test_ingest_answers_not_durable_until_the_replicas_confirm(
    pair: tuple[RedisServer, RedisServer],
) -> None:
    primary, replica = pair
    promote(replica)
    settings = settings_for(primary, GHIBLI_DURABLE_REPLICAS="1", GHIBLI_DURABLE_TIMEOUT_MS="300")
    files = {"image": ("p.jpg", photo_bytes(), "image/jpeg")}
    async with api(settings) as client:
        # Without an Idempotency-Key the unconfirmed job is withdrawn: a retry makes the only one.
        refused = await client.post("/v1/jobs", files=files)
        assert refused.status_code == 503
        assert (refused.json()["code"], refused.headers["retry-after"]) == ("not_durable", "1")
        assert await _jobs(primary) == []  # withdrawn: its entry finds no job and is skipped
        # With one the job is kept, and the same key's retry is answered 202 once a replica has it.
        keyed = {"Idempotency-Key": "durable-1"}
        assert (await client.post("/v1/jobs", files=files, headers=keyed)).status_code == 503
        assert (await client.post("/v1/jobs", files=files, headers=keyed)).status_code == 503  # still alone
        with redis_sync.Redis(port=replica.port, socket_timeout=3) as c:
            c.replicaof("127.0.0.1", primary.port)
        wait_until(lambda: _replication(replica)["master_link_status"] == "up", "replica back", 30)
        accepted = await client.post("/v1/jobs", files=files, headers=keyed)
        assert accepted.status_code == 202, accepted.text
        assert await _jobs(primary) == [accepted.json()["id"]]  # one job for the three tries
        with redis_sync.Redis(port=replica.port, socket_timeout=3) as c:
            assert c.exists(Keys().job(accepted.json()["id"]))  # WAIT came back: the replica has it


async def _jobs(server: RedisServer) -> list[str]:
    """Ids of the jobs that exist."""
    async with pipeline(server.url) as p:
        prefix = p.keys.job("")
        return [key.decode()[len(prefix) :] async for key in p.redis.scan_iter(match=prefix + "*")]
