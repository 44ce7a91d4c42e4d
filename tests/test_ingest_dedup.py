"""Idempotency-Key and the result cache: the same request never makes a second job or Space call."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from litestar.testing import AsyncTestClient
from prometheus_client import REGISTRY

from tests.ingest_support import Driver, api, photo_bytes, picture, settings_for
from tests.procs import RedisServer

pytestmark = pytest.mark.anyio


async def submit(client: AsyncTestClient[Any], photo: bytes, key: str | None = None, **form: str) -> Any:
    headers = {"Idempotency-Key": key} if key is not None else None
    return await client.post(
        "/v1/jobs", files={"image": ("p.jpg", photo, "image/jpeg")}, data=form or None, headers=headers
    )


def dedup_count(kind: str) -> float:
    return REGISTRY.get_sample_value("ghibli_jobs_deduplicated_total", {"kind": kind}) or 0.0


async def all_redis_bytes(driver: Driver) -> bytes:
    """Every key name and value in Redis, concatenated (to look for what must not be stored)."""
    out = bytearray()
    async for key in driver.redis.scan_iter(count=1000):
        out += key
        kind = (await driver.redis.type(key)).decode()
        if kind == "string":
            out += await driver.redis.get(key) or b""
        elif kind == "hash":
            for field, value in (await driver.redis.hgetall(key)).items():
                out += field + value
    return bytes(out)


async def test_same_key_same_request_returns_the_same_job(
    client: AsyncTestClient[Any], driver: Driver
) -> None:
    photo, before = photo_bytes(), dedup_count("idempotency")
    first = await submit(client, photo, "order-7731-attempt", seed="11")
    assert first.status_code == 202
    again = await submit(client, photo, "order-7731-attempt", seed="11")
    assert again.status_code == 202
    assert again.text == first.text  # the same document, byte for byte
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert await driver.redis.xlen(driver.keys.stream) == 1  # one job queued, not two
    assert dedup_count("idempotency") == before + 1
    # The key itself is never stored, only its hash.
    assert b"order-7731-attempt" not in await all_redis_bytes(driver)


async def test_replay_is_the_same_document_even_after_the_job_moved_on(
    client: AsyncTestClient[Any], driver: Driver
) -> None:
    photo = photo_bytes()
    first = await submit(client, photo, "k-1")
    claims = await driver.claim_all()
    await driver.progress(claims[first.json()["id"]], 0.5)
    again = await submit(client, photo, "k-1")
    assert again.json() == first.json()
    assert again.json()["status"] == "queued"
    status = (await client.get(first.headers["location"])).json()
    assert status["status"] == "running"


async def test_random_seed_requests_replay_too(client: AsyncTestClient[Any]) -> None:
    """No seed sent: the fingerprint is of the request, not of the random seed it was given."""
    photo = photo_bytes()
    first = await submit(client, photo, "no-seed")
    again = await submit(client, photo, "no-seed")
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["params"]["seed"] == first.json()["params"]["seed"]


@pytest.mark.parametrize(
    ("photo_seed", "form"),
    [(2, {"seed": "11"}), (1, {"seed": "12"}), (1, {"seed": "11", "prompt": "another"})],
)
async def test_same_key_different_request_is_422(
    client: AsyncTestClient[Any], photo_seed: int, form: dict[str, str]
) -> None:
    assert (await submit(client, photo_bytes(seed=1), "reused", seed="11")).status_code == 202
    response = await submit(client, photo_bytes(seed=photo_seed), "reused", **form)
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "idempotency_key_reused"


async def test_concurrent_requests_with_one_key_make_one_job(
    client: AsyncTestClient[Any], driver: Driver
) -> None:
    photo, answers = photo_bytes(), []

    async def one() -> None:
        answers.append(await submit(client, photo, "burst", seed="5"))

    async with anyio.create_task_group() as tg:
        for _ in range(6):
            tg.start_soon(one)
    assert {r.status_code for r in answers} == {202}
    assert len({r.json()["id"] for r in answers}) == 1
    assert await driver.redis.xlen(driver.keys.stream) == 1


async def test_bad_key_is_400(client: AsyncTestClient[Any]) -> None:
    response = await submit(client, photo_bytes(), "x" * 256)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_idempotency_key"


async def test_deleting_the_job_frees_its_key(client: AsyncTestClient[Any]) -> None:
    photo = photo_bytes()
    first = await submit(client, photo, "again-later", seed="3")
    assert (await client.delete(first.headers["location"])).status_code == 204
    second = await submit(client, photo, "again-later", seed="3")
    assert second.status_code == 202
    assert second.json()["id"] != first.json()["id"]


async def test_result_cache_answers_the_same_photo_and_parameters(
    client: AsyncTestClient[Any], driver: Driver
) -> None:
    photo, result = photo_bytes(), picture()
    first = (await submit(client, photo, seed="42", width="512", height="384")).json()
    claims = await driver.claim_all()
    assert await driver.succeed(claims[first["id"]], result) == "ok"
    entries_before, hits_before = await driver.redis.xlen(driver.keys.stream), dedup_count("cache")

    response = await submit(client, photo, seed="42", width="512", height="384")
    assert response.status_code == 202
    hit = response.json()
    assert hit["id"] != first["id"]
    assert hit["status"] == "succeeded"
    assert hit["cache_hit"] is True
    assert hit["progress"] == 1.0
    assert hit["result"]["url"] == f"/v1/jobs/{hit['id']}/result"
    assert await driver.redis.xlen(driver.keys.stream) == entries_before  # no new work for the Space
    assert dedup_count("cache") == hits_before + 1
    fetched = await client.get(hit["result"]["url"])
    assert fetched.status_code == 200
    assert fetched.content == result
    assert fetched.headers["content-type"] == "image/png"
    status = (await client.get(f"/v1/jobs/{hit['id']}")).json()
    assert status["cache_hit"] is True

    # Another seed (or any other parameter) is another picture: queued, not cached.
    miss = (await submit(client, photo, seed="43", width="512", height="384")).json()
    assert miss["status"] == "queued"
    assert miss["cache_hit"] is False


async def test_deleting_the_original_keeps_cached_copies_and_ends_the_cache_entry(
    client: AsyncTestClient[Any], driver: Driver
) -> None:
    photo, result = photo_bytes(), picture((200, 100, 50))
    first = (await submit(client, photo, seed="9")).json()
    await driver.succeed((await driver.claim_all())[first["id"]], result)
    hit = (await submit(client, photo, seed="9")).json()
    assert hit["cache_hit"] is True

    assert (await client.delete(f"/v1/jobs/{first['id']}")).status_code == 204
    # The copy served by the cache hit is the hit's own: still there.
    assert (await client.get(f"/v1/jobs/{hit['id']}/result")).content == result
    # And the deleted job's result no longer answers new submissions.
    after = (await submit(client, photo, seed="9")).json()
    assert after["status"] == "queued"
    assert after["cache_hit"] is False


async def test_cache_can_be_turned_off(redis_server: RedisServer, driver: Driver) -> None:
    async with api(settings_for(redis_server, GHIBLI_RESULT_CACHE="false")) as client:
        photo = photo_bytes()
        first = (await submit(client, photo, seed="1")).json()
        await driver.succeed((await driver.claim_all())[first["id"]], picture())
        again = (await submit(client, photo, seed="1")).json()
        assert again["status"] == "queued"
