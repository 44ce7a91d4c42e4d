"""What browsers may not do on another site's behalf (cross-site form posts), and the headers every
response carries (nosniff; the page's policy on whatever serves HTML; no API UI from a CDN).

Real app in process, real redis-server."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.ingest_support import api, photo_bytes, settings_for
from tests.procs import RedisServer

pytestmark = pytest.mark.anyio

HOST = "testserver.local"  # what the test client sends as Host


def upload(seed: int = 1) -> dict[str, Any]:
    return {"files": {"image": ("p.jpg", photo_bytes(seed=seed), "image/jpeg")}}


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 202),  # curl, the CLI, a server: not a browser
        ({"Sec-Fetch-Site": "same-origin", "Origin": f"http://{HOST}"}, 202),  # the page itself
        ({"Sec-Fetch-Site": "none"}, 202),  # typed by the user
        ({"Origin": f"http://{HOST}"}, 202),  # an older browser on this host
        ({"Origin": f"https://{HOST}:8443"}, 202),  # behind a proxy on another port: same host
        ({"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}, 403),
        ({"Sec-Fetch-Site": "same-site", "Origin": f"https://evil.{HOST}"}, 403),
        ({"Origin": "https://evil.example"}, 403),  # an older browser, from elsewhere
        ({"Origin": "null"}, 403),  # a sandboxed frame or a file: page
        ({"Sec-Fetch-Site": "cross-site", "Origin": "https://shop.example"}, 202),  # listed
    ],
)
async def test_cross_site_form_posts_are_refused(
    redis_server: RedisServer, headers: dict[str, str], status: int
) -> None:
    settings = settings_for(redis_server, GHIBLI_ALLOWED_ORIGINS="https://shop.example, https://b.example")
    async with api(settings) as client:
        response = await client.post("/v1/jobs", headers=headers, **upload())
        assert response.status_code == status, response.text
        compat = await client.post("/api/transform-ghibli", headers=headers, **upload(seed=2))
        assert compat.status_code == (200 if status == 202 else 403), compat.text
        if status == 403:
            assert response.json()["code"] == "cross_site_request"
            assert response.headers["content-type"].startswith("application/problem+json")


async def test_cross_site_deletes_are_refused(redis_server: RedisServer) -> None:
    async with api(settings_for(redis_server)) as client:
        job = (await client.post("/v1/jobs", **upload())).json()
        forged = await client.delete(
            f"/v1/jobs/{job['id']}",
            headers={"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"},
        )
        assert forged.status_code == 403
        assert (await client.get(f"/v1/jobs/{job['id']}")).status_code == 200  # still there
        assert (await client.delete(f"/v1/jobs/{job['id']}")).status_code == 204


async def test_every_response_says_nosniff_and_every_html_response_carries_the_pages_policy(
    redis_server: RedisServer,
) -> None:
    async with api(settings_for(redis_server, GHIBLI_RATE_LIMIT_REQUESTS="1")) as client:
        responses = {
            "health": await client.get("/healthz"),
            "metrics": await client.get("/metrics"),
            "script": await client.get("/static/app.js"),
            "page": await client.get("/"),
            "page file": await client.get("/static/index.html"),
            "not found": await client.get("/v1/jobs/" + "0" * 32),
            "rate limited": await client.get("/v1/jobs/" + "1" * 32),  # refused by a middleware
        }
        assert responses["rate limited"].status_code == 429
        for name, response in responses.items():
            assert response.headers.get("x-content-type-options") == "nosniff", name
        for name in ("page", "page file"):
            response = responses[name]
            assert response.headers["content-type"].startswith("text/html"), name
            policy = response.headers["content-security-policy"]
            assert "frame-ancestors 'none'" in policy, name
            assert "script-src 'self'" in policy, name
            assert response.headers["referrer-policy"] == "no-referrer", name


async def test_the_api_document_is_served_without_a_ui_from_a_cdn(redis_server: RedisServer) -> None:
    async with api(settings_for(redis_server)) as client:
        document = await client.get("/schema")
        assert document.status_code == 200
        assert document.json()["openapi"].startswith("3.")
        assert (await client.get("/schema/openapi.json")).status_code == 200
        assert (await client.get("/schema/openapi.yaml")).status_code == 200
        for ui in ("swagger", "redoc", "elements", "rapidoc", "scalar"):
            assert (await client.get(f"/schema/{ui}")).status_code == 404, ui
        assert not re.search(r"cdn\.|unpkg\.com|jsdelivr", document.text)
