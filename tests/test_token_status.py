"""`GET /api/token-status`: the old product's token report in its shape, behind the admin secret
(a header; `?secret=` only when the operator turns it on), showing aliases, never tokens."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from consumers.token_pool import Outcome, TokenPool
from consumers.tokens import alias_of, load_tokens
from ingest.app import create_app
from jobs.keys import Keys
from jobs.settings import load_settings
from tests.apps.runner import new_token
from tests.procs import RedisServer, base_env

pytestmark = pytest.mark.anyio

SECRET = "old-admin-secret-" + "y" * 16
ROUTE = "/api/token-status"


def app(redis_server: RedisServer, secret: str = SECRET, **env: str) -> Litestar:
    environ = base_env(REDIS_URL=redis_server.url, ADMIN_SECRET=secret, GHIBLI_RATE_LIMIT_REQUESTS="0", **env)
    return create_app(load_settings(environ=environ))


def refused(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == code
    assert body["error"]  # the old product's member, which old dashboards display
    assert SECRET not in response.text


async def test_without_a_secret_configured_it_does_not_exist(redis_server: RedisServer) -> None:
    async with AsyncTestClient(app(redis_server, secret="")) as client:
        refused(await client.get(ROUTE), 404, "admin_disabled")
        refused(await client.get(ROUTE, params={"secret": ""}), 404, "admin_disabled")
        refused(await client.get(ROUTE, headers={"Authorization": "Bearer "}), 404, "admin_disabled")


async def test_the_secret_comes_from_the_authorization_header(redis_server: RedisServer) -> None:
    async with AsyncTestClient(app(redis_server)) as client:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {SECRET}"}):
            response = await client.get(ROUTE, headers=headers)
            refused(response, 401, "unauthorized")
            assert response.json()["error"] == "Unauthorized access"
            assert response.headers["www-authenticate"].startswith("Bearer")
        ok = await client.get(ROUTE, headers={"Authorization": f"Bearer {SECRET}"})
        assert ok.status_code == 200, ok.text
        assert ok.headers["cache-control"] == "no-store"


async def test_the_query_secret_is_refused_unless_the_operator_allows_it(redis_server: RedisServer) -> None:
    async with AsyncTestClient(app(redis_server)) as client:
        # The old guide's URL, with the right secret: refused, with a code that says why.
        response = await client.get(ROUTE, params={"secret": SECRET})
        refused(response, 401, "secret_in_query_refused")
        assert "GHIBLI_ADMIN_SECRET_IN_QUERY" in response.json()["detail"]
    async with AsyncTestClient(app(redis_server, GHIBLI_ADMIN_SECRET_IN_QUERY="true")) as client:
        assert (await client.get(ROUTE, params={"secret": SECRET})).status_code == 200
        refused(await client.get(ROUTE, params={"secret": SECRET + "x"}), 401, "unauthorized")
        refused(await client.get(ROUTE, params={"secret": ""}), 401, "unauthorized")
        assert (await client.get(ROUTE, headers={"Authorization": f"Bearer {SECRET}"})).status_code == 200


async def test_the_old_shape_with_aliases_never_tokens(redis_server: RedisServer) -> None:
    redis = Redis.from_url(redis_server.url)
    first, second, third = new_token(), new_token(), new_token()
    tokens = load_tokens({"HUGGING_FACE_TOKEN_1": first, "HUGGING_FACE_TOKEN_2": second, "HF_TOKEN": third})
    pool = TokenPool(redis, Keys(), tokens, max_in_flight=1, lease_s=30, gpu_seconds_per_call=90)
    await pool.register()
    used = (await pool.acquire()).lease
    assert used is not None
    await pool.release(used, Outcome.SUCCESS, charge_gpu=True)  # 90 GPU seconds today
    cooled = (await pool.acquire()).lease
    assert cooled is not None
    until_ms = int(time.time() * 1000) + 600_000
    await pool.release(cooled, Outcome.QUOTA, error_code="quota_exceeded", cooldown_until_ms=until_ms)

    async with AsyncTestClient(app(redis_server)) as client:
        response = await client.get(ROUTE, headers={"Authorization": f"Bearer {SECRET}"})
    await redis.aclose()
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"timestamp", "summary", "tokens"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", body["timestamp"])  # toISOString()
    by_token = {t["token"]: t for t in body["tokens"]}
    assert set(by_token) == {alias_of(first), alias_of(second), alias_of(third)}
    assert all(set(t) == {"token", "usageMinutes", "available", "quotaExceeded"} for t in body["tokens"])
    assert by_token[used.alias]["usageMinutes"] == 1.5
    assert by_token[cooled.alias] == {
        "token": cooled.alias,
        "usageMinutes": by_token[cooled.alias]["usageMinutes"],
        "available": False,
        "quotaExceeded": True,
    }
    summary = body["summary"]
    assert summary["totalTokens"] == 3
    assert summary["availableTokens"] == 2  # the cooling one is not
    assert summary["usedTokens"] >= 1
    assert isinstance(summary["totalUsageMinutes"], str)
    assert re.fullmatch(r"\d+\.\d", summary["totalUsageMinutes"])
    assert re.fullmatch(r"\d+\.\d", summary["averageUsageMinutes"])
    for raw in (first, second, third):
        assert raw not in response.text
        assert raw[:10] not in response.text  # not even the old product's first 10 characters
