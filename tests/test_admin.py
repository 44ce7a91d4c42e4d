"""The operator views: the token pool and jobs by status, behind ADMIN_SECRET (real Redis, real app)."""

from __future__ import annotations

import time

import pytest
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from consumers.token_pool import Outcome, TokenPool
from consumers.tokens import alias_of, load_tokens
from ingest.app import create_app
from ingest.submit import Submissions
from jobs.blobs import RedisBlobStore
from jobs.keys import Keys
from jobs.model import JobParams, new_job_id
from jobs.settings import load_settings
from jobs.store import JobStore
from tests.apps.runner import new_token
from tests.procs import RedisServer, base_env

pytestmark = pytest.mark.anyio

SECRET = "s3cret-admin-" + "x" * 20


def _app(redis_server: RedisServer, secret: str = SECRET):  # type: ignore[no-untyped-def]
    env = base_env(REDIS_URL=redis_server.url, ADMIN_SECRET=secret, GHIBLI_RATE_LIMIT_REQUESTS="0")
    return create_app(load_settings(environ=env))


def _is_problem(response, status: int, code: str) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == code


async def test_without_a_secret_configured_the_admin_routes_do_not_exist(redis_server: RedisServer) -> None:
    async with AsyncTestClient(_app(redis_server, secret="")) as client:
        for path in ("/v1/admin/tokens", "/v1/admin/jobs"):
            _is_problem(await client.get(path), 404, "admin_disabled")
            _is_problem(await client.get(path, headers={"Authorization": "Bearer "}), 404, "admin_disabled")


async def test_a_missing_or_wrong_secret_is_a_401_problem(redis_server: RedisServer) -> None:
    async with AsyncTestClient(_app(redis_server)) as client:
        for headers in (
            {},
            {"Authorization": "Bearer wrong"},
            {"Authorization": f"Bearer {SECRET}x"},
            {"Authorization": f"Bearer {SECRET[:-1]}"},
            {"Authorization": f"Basic {SECRET}"},
            {"Authorization": SECRET},
        ):
            response = await client.get("/v1/admin/tokens", headers=headers)
            _is_problem(response, 401, "unauthorized")
            assert response.headers["www-authenticate"].startswith("Bearer")
            assert SECRET not in response.text
        # Not in the query string either: secrets there end up in proxy logs.
        _is_problem(await client.get(f"/v1/admin/tokens?secret={SECRET}"), 401, "unauthorized")
        ok = await client.get("/v1/admin/tokens", headers={"Authorization": f"bearer  {SECRET}"})
        assert ok.status_code == 200


async def test_the_token_view_shows_each_alias_and_the_totals(redis_server: RedisServer) -> None:
    redis = Redis.from_url(redis_server.url)
    first, second = new_token(), new_token()
    tokens = load_tokens(
        {"HUGGING_FACE_TOKEN_1": first, "HUGGING_FACE_TOKEN_2": second, "HF_TOKEN": "hf_nope"}
    )
    pool = TokenPool(redis, Keys(), tokens, max_in_flight=2, lease_s=30, gpu_seconds_per_call=60)
    await pool.register()
    done = (await pool.acquire()).lease
    assert done is not None
    await pool.release(done, Outcome.SUCCESS, charge_gpu=True)
    cooled = (await pool.acquire()).lease
    assert cooled is not None
    until_ms = int(time.time() * 1000) + 600_000
    await pool.release(
        cooled, Outcome.QUOTA, error_code="quota_exceeded", cooldown_until_ms=until_ms, requested_s=90
    )
    running = (await pool.acquire()).lease  # the one still usable, busy with a call
    assert running is not None
    assert running.alias == done.alias

    async with AsyncTestClient(_app(redis_server)) as client:
        response = await client.get("/v1/admin/tokens", headers={"Authorization": f"Bearer {SECRET}"})
    assert response.status_code == 200, response.text
    body = response.json()
    by_alias = {t["alias"]: t for t in body["tokens"]}
    assert set(by_alias) == {alias_of(first), alias_of(second), alias_of("hf_nope")}
    ready = by_alias[done.alias]
    assert ready["state"] == "ready"  # one of two slots in use
    assert (ready["in_flight"], ready["max_in_flight"], ready["calls"], ready["successes"]) == (1, 2, 2, 1)
    assert ready["gpu_seconds_today"] == 60
    cooling = by_alias[cooled.alias]
    assert cooling["state"] == "cooling"
    assert cooling["cooldown_until"] is not None
    assert 590 < cooling["cooldown_seconds"] <= 600
    assert cooling["last_error"]["code"] == "quota_exceeded"
    assert (cooling["failures"], cooling["quota_errors"], cooling["gpu_seconds_per_call"]) == (1, 1, 90)
    disabled = by_alias[alias_of("hf_nope")]
    assert (disabled["state"], disabled["source"]) == ("disabled", "HF_TOKEN")
    assert disabled["problem"]
    summary = body["summary"]
    assert (summary["tokens"], summary["ready"], summary["cooling"], summary["disabled"]) == (3, 1, 1, 1)
    assert (summary["in_flight"], summary["calls"], summary["successes"], summary["failures"]) == (1, 3, 1, 1)
    assert summary["next_resume_at"] is None  # a token is still usable
    for raw in (first, second, "hf_nope"):
        assert raw not in response.text
    await redis.aclose()


async def test_jobs_by_status_are_paged_without_repeats(redis_server: RedisServer) -> None:
    redis = Redis.from_url(redis_server.url)
    store = JobStore(redis, Keys())
    await store.ensure_group()
    submissions = Submissions(store, RedisBlobStore(redis, Keys()), result_cache=False)
    ids = [new_job_id() for _ in range(25)]
    for job_id in ids:
        assert (
            await submissions.submit(job_id, JobParams(), photo=b"p", input_digest="d")
        ).outcome == "queued"
    cancelled = set(ids[:7])
    for job_id in cancelled:
        assert await store.cancel(job_id) == "ok"

    async def all_pages(query: str) -> list[dict[str, object]]:
        items: list[dict[str, object]] = []
        cursor = "0"
        async with AsyncTestClient(_app(redis_server)) as client:
            for _ in range(100):
                response = await client.get(
                    f"/v1/admin/jobs?{query}&limit=4&cursor={cursor}",
                    headers={"Authorization": f"Bearer {SECRET}"},
                )
                assert response.status_code == 200, response.text
                page = response.json()
                items += page["items"]
                if page["next_cursor"] is None:
                    return items
                cursor = page["next_cursor"]
        raise AssertionError("the pages never ended")

    found = await all_pages("status=cancelled")
    assert sorted(str(j["id"]) for j in found) == sorted(cancelled)
    assert all(j["status"] == "cancelled" and j["error"]["code"] == "cancelled" for j in found)  # type: ignore[index]
    queued = await all_pages("status=queued")
    assert sorted(str(j["id"]) for j in queued) == sorted(set(ids) - cancelled)
    assert len(await all_pages("limit=4")) == 25

    async with AsyncTestClient(_app(redis_server)) as client:
        headers = {"Authorization": f"Bearer {SECRET}"}
        _is_problem(await client.get("/v1/admin/jobs?status=lost", headers=headers), 400, "bad_request")
        _is_problem(await client.get("/v1/admin/jobs?cursor=abc", headers=headers), 400, "bad_request")
        # Digits, but past a SCAN cursor's 64 bits: a 400, not Redis's error as a 500.
        too_big = await client.get(f"/v1/admin/jobs?cursor={2**64}", headers=headers)
        _is_problem(too_big, 400, "invalid_cursor")
        _is_problem(
            await client.get("/v1/admin/jobs?cursor=99999999999999999999", headers=headers),
            400,
            "invalid_cursor",
        )
        assert (await client.get(f"/v1/admin/jobs?cursor={2**64 - 1}", headers=headers)).status_code == 200
    await redis.aclose()
