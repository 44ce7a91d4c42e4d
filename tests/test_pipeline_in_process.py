"""The whole job path in one process (fast lane): ingest through `litestar.testing`, consumers in
burst mode (tests/consumer_harness.py), the offline Space on a thread, one Redis for the session
with a key prefix per test. The system tests prove the same with real processes; these make the
path cheap enough to check on every change."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from PIL import Image
from redis.asyncio import Redis

from jobs.model import Status
from tests.consumer_harness import Harness, InProcessSpace, in_process_space, test_prefix
from tests.ingest_support import api, photo_bytes, settings_for
from tests.procs import RedisServer

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def shared_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def space(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessSpace]:
    yield from in_process_space(tmp_path_factory.mktemp("space"))


def _settings(redis: RedisServer, space: InProcessSpace) -> dict[str, str]:
    return {"GHIBLI_KEY_PREFIX": test_prefix(), "GHIBLI_SPACE": space.url, "GHIBLI_CONCURRENCY": "2"}


async def test_a_photo_goes_from_upload_to_its_picture(
    shared_redis: RedisServer, space: InProcessSpace
) -> None:
    settings = settings_for(shared_redis, **_settings(shared_redis, space))
    photo = photo_bytes(seed=31, size=(640, 480))
    async with api(settings) as client:
        accepted = await client.post(
            "/v1/jobs",
            files={"image": ("p.jpg", photo, "image/jpeg")},
            data={"width": "512", "height": "384", "seed": "7001"},
        )
        assert accepted.status_code == 202, accepted.text
        job_id = accepted.json()["id"]
        records = await Harness(settings).burst([job_id])
        assert records[job_id].status is Status.SUCCEEDED
        assert records[job_id].attempt == 1
        result = await client.get(f"/v1/jobs/{job_id}/result")
    assert result.status_code == 200
    picture = Image.open(io.BytesIO(result.content))
    assert picture.size == (512, 384)
    assert result.content != photo
    assert [c["outcome"] for c in space.calls(seed=7001)] == ["ok"]


async def test_identical_submissions_share_one_call_and_each_gets_its_picture(
    shared_redis: RedisServer, space: InProcessSpace
) -> None:
    settings = settings_for(shared_redis, **_settings(shared_redis, space))
    photo = photo_bytes(seed=32)
    async with api(settings) as client:
        ids = []
        for _ in range(2):
            accepted = await client.post(
                "/v1/jobs", files={"image": ("p.jpg", photo, "image/jpeg")}, data={"seed": "7002"}
            )
            assert accepted.status_code == 202, accepted.text
            ids.append(accepted.json()["id"])
        other = await client.post(
            "/v1/jobs", files={"image": ("p.jpg", photo, "image/jpeg")}, data={"seed": "7003"}
        )
        ids.append(other.json()["id"])
        records = await Harness(settings, count=2).burst(ids)
        assert [records[i].status for i in ids] == [Status.SUCCEEDED] * 3
        pictures = [(await client.get(f"/v1/jobs/{i}/result")).content for i in ids]
    assert pictures[0] == pictures[1] != pictures[2]
    assert len(space.calls(seed=7002)) == 1  # the second was the first's follower
    assert len(space.calls(seed=7003)) == 1


async def test_a_burst_leaves_no_entry_pending_and_no_consumer_in_the_group(
    shared_redis: RedisServer, space: InProcessSpace
) -> None:
    settings = settings_for(shared_redis, **_settings(shared_redis, space))
    async with api(settings) as client:
        ids = []
        for seed in range(7010, 7014):
            accepted = await client.post(
                "/v1/jobs",
                files={"image": ("p.jpg", photo_bytes(seed=seed), "image/jpeg")},
                data={"seed": str(seed)},
            )
            ids.append(accepted.json()["id"])
        harness = Harness(settings, count=2)
        records = await harness.burst(ids)
    assert {r.status for r in records.values()} == {Status.SUCCEEDED}
    redis = Redis.from_url(shared_redis.url)
    try:
        keys = harness.keys
        assert (await redis.xpending(keys.stream, keys.group))["pending"] == 0
        assert await redis.xinfo_consumers(keys.stream, keys.group) == []  # both said goodbye
        assert await redis.zcard(keys.consumers) == 0
    finally:
        await redis.aclose()
