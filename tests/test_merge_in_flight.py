"""Identical jobs in flight are merged: a follower shares its leader's Space call, with its own id,
status and copy of the result (ingest/submit.py, jobs/lua/prelude.lua, cancel.lua, finish.lua).

Jobs are moved by the real job-store scripts (tests/ingest_support.py's Driver acts as the
consumer, copies included); tests/test_merge_pipeline.py runs the same with real consumers and
the offline Space's call log.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from litestar.testing import AsyncTestClient
from prometheus_client import REGISTRY

from jobs.model import Status
from jobs.settings import load_settings
from jobs.store import FollowersWaiting
from jobs.webhooks import OutboxItem, WebhookKeys
from tests.ingest_support import Driver, api, photo_bytes, picture, settings_for
from tests.procs import RedisServer
from tests.webhook_kit import AppKey, make_key, webhook_env

pytestmark = pytest.mark.anyio


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[AsyncTestClient[Any]]:
    async with api(settings_for(redis_server, GHIBLI_LONG_POLL_SECONDS="0")) as client:
        yield client


def merged_count() -> float:
    return REGISTRY.get_sample_value("ghibli_jobs_deduplicated_total", {"kind": "in_flight"}) or 0.0


async def submit(client: AsyncTestClient[Any], seed: str = "42", photo: int = 1, **form: str) -> str:
    response = await client.post(
        "/v1/jobs",
        files={"image": ("p.jpg", photo_bytes(seed=photo), "image/jpeg")},
        data={"seed": seed, "width": "512", "height": "512", **form},
    )
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    return job_id


async def status(client: AsyncTestClient[Any], job_id: str) -> Any:
    response = await client.get(f"/v1/jobs/{job_id}")
    return response.json() if response.status_code == 200 else response.status_code


async def keys_left(driver: Driver, kind: str) -> list[bytes]:
    return [key async for key in driver.redis.scan_iter(match=f"{driver.keys.prefix}{kind}:*")]


async def test_identical_jobs_share_one_call_and_get_their_own_results(
    client: AsyncTestClient[Any], driver: Driver
) -> None:
    before = merged_count()
    leader = await submit(client)
    follower = await submit(client)
    assert follower != leader
    assert await driver.redis.xlen(driver.keys.stream) == 1  # one job for the Space
    assert merged_count() == before + 1
    claims = await driver.claim_all()
    assert set(claims) == {leader}

    # The follower shows the leader's run as its own.
    await driver.progress(claims[leader], 0.5, "denoising")
    view = await status(client, follower)
    assert (view["status"], view["progress"], view["phase"]) == ("running", 0.5, "denoising")
    assert view["id"] == follower
    assert leader not in str(view)  # ids are capabilities: a follower never learns its leader's

    result = picture((10, 200, 30))
    assert await driver.succeed(claims[leader], result) == "ok"
    for job_id in (leader, follower):
        view = await status(client, job_id)
        assert view["status"] == "succeeded"
        fetched = await client.get(f"/v1/jobs/{job_id}/result")
        assert fetched.status_code == 200
        assert fetched.content == result
    leader_record, follower_record = await driver.store.get(leader), await driver.store.get(follower)
    assert leader_record is not None
    assert follower_record is not None
    assert follower_record.result_key != leader_record.result_key  # its own copy
    # Erasing the leader does not take the follower's picture away.
    assert (await client.delete(f"/v1/jobs/{leader}")).status_code == 204
    assert (await client.get(f"/v1/jobs/{follower}/result")).content == result
    assert await keys_left(driver, "followers") == []
    assert await keys_left(driver, "inflight") == []


async def test_only_identical_jobs_merge(client: AsyncTestClient[Any], driver: Driver) -> None:
    before = merged_count()
    await submit(client, seed="42")
    await submit(client, seed="43")  # another seed is another picture
    await submit(client, seed="42", photo=2)  # another photo
    await submit(client, seed="42", prompt="another prompt")
    assert await driver.redis.xlen(driver.keys.stream) == 4
    assert merged_count() == before


async def test_merging_is_off_with_the_result_cache(redis_server: RedisServer, driver: Driver) -> None:
    settings = settings_for(redis_server, GHIBLI_RESULT_CACHE="false", GHIBLI_LONG_POLL_SECONDS="0")
    async with api(settings) as client:
        await submit(client)
        await submit(client)
    assert await driver.redis.xlen(driver.keys.stream) == 2
    assert await keys_left(driver, "inflight") == []


async def test_a_late_follower_joins_a_running_job_where_it_is(
    client: AsyncTestClient[Any], driver: Driver
) -> None:
    leader = await submit(client)
    claim = (await driver.claim_all())[leader]
    await driver.progress(claim, 0.75)
    follower = await submit(client)
    view = await status(client, follower)
    assert (view["status"], view["progress"]) == ("running", 0.75)
    assert await driver.redis.xlen(driver.keys.stream) == 1


async def test_cancelling_a_follower_never_cancels_the_leader(
    client: AsyncTestClient[Any], driver: Driver
) -> None:
    leader = await submit(client)
    follower = await submit(client)
    claim = (await driver.claim_all())[leader]
    assert (await client.delete(f"/v1/jobs/{follower}")).status_code == 204
    assert await status(client, follower) == 404
    await driver.progress(claim, 0.5)  # the leader's run goes on
    assert await driver.succeed(claim, picture()) == "ok"
    assert (await status(client, leader))["status"] == "succeeded"
    assert await driver.redis.exists(driver.keys.blob(f"out/{follower}/{claim.attempt}")) == 0


async def test_cancelling_the_leader_hands_its_call_to_the_followers(
    client: AsyncTestClient[Any], driver: Driver
) -> None:
    leader = await submit(client)
    first, second = await submit(client), await submit(client)
    claim = (await driver.claim_all())[leader]
    leader_photo = (await driver.store.get(leader)).input_key  # type: ignore[union-attr]

    assert (await client.delete(f"/v1/jobs/{leader}")).status_code == 204
    assert await status(client, leader) == 404  # gone for its owner
    assert (await client.delete(f"/v1/jobs/{leader}")).status_code == 404
    assert await driver.blobs.get(leader_photo) is None  # its owner's photo is erased at once
    run = await driver.store.get(leader)
    assert run is not None
    assert run.withdrawn
    assert run.status is Status.RUNNING
    assert await driver.blobs.get(run.input_key) is not None  # the run uses a follower's photo

    # The call goes on: its progress still reaches the followers; the first one leaves too.
    await driver.progress(claim, 0.6)
    assert (await status(client, second))["progress"] == 0.6
    assert (await client.delete(f"/v1/jobs/{first}")).status_code == 204
    run = await driver.store.get(leader)
    assert run is not None
    assert await driver.blobs.get(run.input_key) is not None  # re-pointed to the last one's photo

    result = picture((90, 20, 160))
    assert await driver.succeed(claim, result) == "withdrawn"
    assert (await status(client, second))["status"] == "succeeded"
    assert (await client.get(f"/v1/jobs/{second}/result")).content == result
    assert await driver.redis.exists(driver.keys.job(leader)) == 0  # the withdrawn job is gone now
    assert await keys_left(driver, "followers") == []
    assert await keys_left(driver, "inflight") == []


async def test_a_withdrawn_run_stops_when_its_last_follower_leaves(
    client: AsyncTestClient[Any], driver: Driver
) -> None:
    leader = await submit(client)
    follower = await submit(client)
    claim = (await driver.claim_all())[leader]
    assert (await client.delete(f"/v1/jobs/{leader}")).status_code == 204
    assert (await client.delete(f"/v1/jobs/{follower}")).status_code == 204
    assert await driver.redis.exists(driver.keys.job(leader)) == 0
    assert await driver.store.update(claim, Status.RUNNING, progress=0.5) == "missing"  # the call stops
    assert await driver.store.finish(claim, Status.CANCELLED) == "missing"
    assert await driver.redis.xlen(driver.keys.stream) == 0  # and its entry is acknowledged
    # A new identical submission is a job of its own again.
    assert await submit(client) not in (leader, follower)
    assert await driver.redis.xlen(driver.keys.stream) == 1


async def test_a_leader_s_failure_is_its_followers_own(client: AsyncTestClient[Any], driver: Driver) -> None:
    leader = await submit(client)
    follower = await submit(client)
    claim = (await driver.claim_all())[leader]
    assert await driver.fail(claim, "space_error", "The Space is paused.") == "ok"
    view = await status(client, follower)
    assert view["status"] == "failed"
    assert view["error"] == {"code": "space_error", "message": "The Space is paused."}
    compat = await client.get(f"/api/transform-ghibli/check/{follower}")
    assert compat.status_code == 500
    assert compat.json()["error"] == "The Space is paused."
    # The next identical submission is a new attempt, not a follower of a finished job.
    assert await submit(client) != leader
    assert await driver.redis.xlen(driver.keys.stream) == 1


async def test_retries_and_dead_letters_reach_the_followers(
    client: AsyncTestClient[Any], driver: Driver
) -> None:
    leader = await submit(client)
    follower = await submit(client)
    claim = (await driver.claim_all())[leader]
    verdict = await driver.store.retry(
        claim,
        due_ms=0,
        status=Status.WAITING_FOR_QUOTA,
        phase="waiting_for_quota",
        count_failure=False,
        error_code="quota_wait",
        error_message="Every token is cooling down.",
    )
    assert verdict == "ok"
    view = await status(client, follower)
    assert view["status"] == "waiting_for_quota"
    assert view["error"]["code"] == "quota_wait"
    verdict = await driver.store.dead_letter(
        claim,
        reason="max_attempts",
        error_code="space_error",
        error_message="Gave up.",
        count_failure=True,
        consumer="test",
    )
    assert verdict == "ok"
    view = await status(client, follower)
    assert (view["status"], view["error"]["code"]) == ("failed", "space_error")


async def test_success_waits_for_every_follower_s_copy(client: AsyncTestClient[Any], driver: Driver) -> None:
    """A follower that joins while the consumer finishes is never left without a result."""
    leader = await submit(client)
    claim = (await driver.claim_all())[leader]
    key = f"out/{leader}/{claim.attempt}"
    await driver.blobs.put(key, picture(), 3600)
    assert await driver.store.finish(claim, Status.SUCCEEDED, copies={}, result_key=key) == "ok"

    leader = await submit(client, seed="7")
    claim = (await driver.claim_all())[leader]
    late = await submit(client, seed="7")
    with pytest.raises(FollowersWaiting) as waiting:
        await driver.store.finish(claim, Status.SUCCEEDED, copies={}, result_key=key)
    assert waiting.value.followers == [late]
    assert (await status(client, leader))["status"] == "running"  # nothing was written
    assert await driver.redis.xlen(driver.keys.stream) == 1  # nor acknowledged
    assert await driver.succeed(claim, picture()) == "ok"
    assert (await status(client, late))["status"] == "succeeded"


async def test_old_clients_merge_too(client: AsyncTestClient[Any], driver: Driver) -> None:
    """The old page's "Generate" clicked again: same photo, same seed (42), a second task id."""
    form = {"seed": "42", "width": "512", "height": "512"}
    ids = []
    for _ in range(2):
        response = await client.post(
            "/api/transform-ghibli", files={"image": ("p.jpg", photo_bytes(), "image/jpeg")}, data=form
        )
        ids.append(response.json()["taskId"])
    assert ids[0] != ids[1]
    claims = await driver.claim_all()
    assert list(claims) == [ids[0]]
    await driver.succeed(claims[ids[0]], picture())
    for task_id in ids:
        done = await client.get(f"/api/transform-ghibli/check/{task_id}")
        assert done.content == picture()


async def test_a_withdrawn_leader_s_owner_gets_cancelled_and_nothing_more(
    redis_server: RedisServer, driver: Driver
) -> None:
    """Its webhook ends with 'cancelled', its key's unfinished jobs no longer count it, and the
    follower's own webhook carries the run to its end."""
    shop = make_key("shop", max_unfinished=2)
    settings = load_settings(environ=webhook_env(redis_server, shop, GHIBLI_LONG_POLL_SECONDS="0"))
    hook = {"webhook_url": "http://127.0.0.1:9/hook", "webhook_events": "started,progress,completed"}
    async with api(settings) as client:
        leader = await submit_as(client, shop, **hook)
        follower = await submit_as(client, shop, **hook)
        claim = (await driver.claim_all())[leader]
        assert (await client.delete(f"/v1/jobs/{leader}", headers=shop.auth)).status_code == 204
        await driver.progress(claim, 0.5)
        await driver.succeed(claim, picture())

        leader_events = await outbox(driver, leader)
        assert [(e.type, e.snap["status"]) for e in leader_events] == [
            ("started", "running"),
            ("completed", "cancelled"),
        ]
        follower_events = await outbox(driver, follower)
        assert [(e.type, e.snap["status"]) for e in follower_events][-1] == ("completed", "succeeded")
        assert ("progress", "running") in [(e.type, e.snap["status"]) for e in follower_events]

        # The key has one unfinished job (a third would exceed 2 if the withdrawn one counted).
        await submit_as(client, shop, seed="5")
        await submit_as(client, shop, seed="6")
        refused = await client.post(
            "/v1/jobs",
            headers=shop.auth,
            files={"image": ("p.jpg", photo_bytes(), "image/jpeg")},
            data={"seed": "8"},
        )
        assert refused.status_code == 429
        assert refused.json()["code"] == "too_many_unfinished_jobs"


async def submit_as(client: AsyncTestClient[Any], key: AppKey, seed: str = "42", **form: str) -> str:
    response = await client.post(
        "/v1/jobs",
        headers=key.auth,
        files={"image": ("p.jpg", photo_bytes(), "image/jpeg")},
        data={"seed": seed, "width": "512", "height": "512", **form},
    )
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    return job_id


async def outbox(driver: Driver, job_id: str) -> list[OutboxItem]:
    queue = WebhookKeys(driver.keys.prefix).queue(job_id)
    return [msgspec.json.decode(item, type=OutboxItem) for item in await driver.redis.lrange(queue, 0, -1)]
