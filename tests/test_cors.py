"""CORS (ingest/cors.py): off by default; listed origins get preflights answered and readable answers,
errors included; other origins get nothing; credentials are never allowed."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from jobs.settings import SettingsError, load_settings
from tests.ingest_support import api, photo_bytes, settings_for
from tests.procs import RedisServer, base_env

pytestmark = pytest.mark.anyio

APP = "https://app.example.com"
DEV = "http://localhost:3000"
OTHER = "https://evil.example.net"


def preflight(origin: str, method: str = "POST", headers: str = "") -> dict[str, str]:
    asked = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers:
        asked["Access-Control-Request-Headers"] = headers
    return asked


def no_cors(response: Any) -> None:
    assert "access-control-allow-origin" not in response.headers
    assert "access-control-allow-credentials" not in response.headers


async def submit(client: AsyncTestClient[Any], path: str, origin: str) -> Any:
    return await client.post(
        path,
        headers={"Origin": origin},
        files={"image": ("p.jpg", photo_bytes(), "image/jpeg")},
        data={"seed": "3"},
    )


async def test_off_by_default(redis_server: RedisServer) -> None:
    async with api(settings_for(redis_server, GHIBLI_LONG_POLL_SECONDS="0")) as client:
        no_cors(await client.options("/v1/jobs", headers=preflight(APP)))
        no_cors(await submit(client, "/v1/jobs", APP))
        no_cors(await client.get("/v1/jobs/" + "0" * 32, headers={"Origin": APP}))


async def test_listed_origins_get_preflights_and_readable_answers(redis_server: RedisServer) -> None:
    settings = settings_for(redis_server, GHIBLI_CORS_ORIGINS=f"{APP}, {DEV}", GHIBLI_LONG_POLL_SECONDS="0")
    async with api(settings) as client:
        for origin in (APP, DEV):
            answer = await client.options(
                "/v1/jobs", headers=preflight(origin, "POST", "idempotency-key, authorization")
            )
            assert answer.status_code == 204, answer.text
            assert answer.headers["access-control-allow-origin"] == origin
            assert "POST" in answer.headers["access-control-allow-methods"]
            allowed = answer.headers["access-control-allow-headers"].lower()
            assert "idempotency-key" in allowed
            assert "authorization" in allowed
            assert int(answer.headers["access-control-max-age"]) > 0
            assert "access-control-allow-credentials" not in answer.headers
            assert "origin" in answer.headers["vary"].lower()

        for path in ("/v1/jobs", "/api/transform-ghibli"):
            created = await submit(client, path, APP)
            assert created.status_code in (200, 202), created.text
            assert created.headers["access-control-allow-origin"] == APP
            assert "access-control-allow-credentials" not in created.headers
        exposed = {h.strip().lower() for h in created.headers["access-control-expose-headers"].split(",")}
        assert {"location", "retry-after", "idempotent-replayed", "etag"} <= exposed

        task_id = created.json()["taskId"]
        for method in ("GET", "POST"):
            check = await client.request(
                method, f"/api/transform-ghibli/check/{task_id}", headers={"Origin": APP}
            )
            assert check.status_code == 200
            assert check.headers["access-control-allow-origin"] == APP
        deleted = await client.options(f"/v1/jobs/{task_id}", headers=preflight(DEV, "DELETE"))
        assert deleted.status_code == 204
        assert "DELETE" in deleted.headers["access-control-allow-methods"]

        # Errors are readable too: a page can show the problem document.
        missing = await client.get("/v1/jobs/" + "0" * 32, headers={"Origin": APP})
        assert missing.status_code == 404
        assert missing.headers["access-control-allow-origin"] == APP


async def test_other_origins_and_credentials_are_refused(redis_server: RedisServer) -> None:
    settings = settings_for(redis_server, GHIBLI_CORS_ORIGINS=APP, GHIBLI_LONG_POLL_SECONDS="0")
    async with api(settings) as client:
        refused = await client.options("/v1/jobs", headers=preflight(OTHER))
        assert refused.status_code == 400
        no_cors(refused)
        # Look-alikes of the listed origin are other origins.
        for origin in (
            "https://app.example.com.evil.net",
            "http://app.example.com",
            "https://xapp.example.com",
        ):
            no_cors(await client.options("/v1/jobs", headers=preflight(origin)))
            no_cors(await client.get("/v1/jobs/" + "0" * 32, headers={"Origin": origin}))
        # A header the API does not take is not allowed either.
        assert (
            await client.options("/v1/jobs", headers=preflight(APP, "POST", "x-custom"))
        ).status_code == 400
        # Answers for a listed origin never allow credentials, with a cookie or without.
        cookie = await client.get("/v1/jobs/" + "0" * 32, headers={"Origin": APP, "Cookie": "session=1"})
        assert cookie.headers["access-control-allow-origin"] == APP
        assert "access-control-allow-credentials" not in cookie.headers


async def test_rate_limited_answers_are_readable(redis_server: RedisServer) -> None:
    settings = settings_for(
        redis_server, GHIBLI_CORS_ORIGINS=APP, GHIBLI_RATE_LIMIT_REQUESTS="2", GHIBLI_LONG_POLL_SECONDS="0"
    )
    async with api(settings) as client:
        codes = []
        for _ in range(4):
            response = await client.get("/v1/jobs/" + "0" * 32, headers={"Origin": APP})
            codes.append(response.status_code)
        assert codes[-1] == 429, codes
        assert response.headers["access-control-allow-origin"] == APP
        assert "retry-after" in response.headers["access-control-expose-headers"].lower()


async def test_any_origin(redis_server: RedisServer) -> None:
    settings = settings_for(redis_server, GHIBLI_CORS_ORIGINS="*", GHIBLI_LONG_POLL_SECONDS="0")
    async with api(settings) as client:
        answer = await client.get("/v1/jobs/" + "0" * 32, headers={"Origin": OTHER})
        assert answer.headers["access-control-allow-origin"] == "*"
        assert "access-control-allow-credentials" not in answer.headers


@pytest.mark.parametrize(
    "value", ["https://app.example.com/", "app.example.com", "https://a.com/page", "ftp://x"]
)
def test_a_bad_origin_stops_the_process_with_a_clear_message(value: str) -> None:
    with pytest.raises(SettingsError, match="GHIBLI_CORS_ORIGINS"):
        load_settings(environ=base_env(GHIBLI_CORS_ORIGINS=value))
