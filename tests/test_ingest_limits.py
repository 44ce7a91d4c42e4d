"""Backpressure, per-client rate limits shared through Redis, trusted proxies, errors and request logs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from ingest.client_ip import ClientAddress
from tests.ingest_support import Driver, api, photo_bytes, settings_for
from tests.procs import Proc, RedisServer, base_env, free_port, ghibli, wait_until

pytestmark = pytest.mark.anyio


def form(seed: int = 1) -> dict[str, Any]:
    return {"files": {"image": ("p.jpg", photo_bytes(seed=seed), "image/jpeg")}}


async def test_backlog_over_the_limit_is_503(redis_server: RedisServer) -> None:
    settings = settings_for(redis_server, GHIBLI_MAX_BACKLOG="3")
    driver = Driver(settings)
    async with api(settings) as client:
        for seed in (1, 2):
            assert (await client.post("/v1/jobs", **form(seed))).status_code == 202
        delayed = driver.keys.delayed
        redis = driver.redis  # the app's own client lives on the app's event loop
        await redis.zadd(delayed, {"a-retrying-job": 1})  # retries waiting count as backlog too
        response = await client.post("/v1/jobs", **form(3))
        assert response.status_code == 503
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["code"] == "overloaded"
        assert int(response.headers["retry-after"]) > 0
        compat = await client.post("/api/transform-ghibli", **form(3))
        assert compat.status_code == 503
        assert compat.json()["error"]  # old clients show `error`
        # Reads are not backpressured.
        assert (await client.get("/healthz")).status_code == 200
        await redis.zrem(delayed, "a-retrying-job")
        assert (await client.post("/v1/jobs", **form(3))).status_code == 202
    await driver.close()


async def test_submissions_are_limited_per_client_across_processes(redis_server: RedisServer) -> None:
    """Two app instances (as two ingest processes) on one Redis share each client's bucket."""
    settings = settings_for(redis_server, GHIBLI_RATE_LIMIT_SUBMITS="2")
    async with api(settings) as one, api(settings) as two:
        assert (await one.post("/v1/jobs", **form(1))).status_code == 202
        assert (await two.post("/v1/jobs", **form(2))).status_code == 202
        refused = await one.post("/v1/jobs", **form(3))
        assert refused.status_code == 429
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert refused.json()["code"] == "rate_limited"
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert (await two.post("/api/transform-ghibli", **form(4))).status_code == 429
        # Other requests have their own (here unlimited) bucket.
        assert (await two.get("/v1/jobs/" + "0" * 32)).status_code == 404


async def test_probes_metrics_and_schema_are_never_limited(redis_server: RedisServer) -> None:
    async with api(settings_for(redis_server, GHIBLI_RATE_LIMIT_REQUESTS="1")) as client:
        for _ in range(3):
            for path in ("/healthz", "/readyz", "/metrics", "/schema/openapi.json"):
                assert (await client.get(path)).status_code == 200, path
        assert (await client.get("/v1/jobs/" + "0" * 32)).status_code == 404
        limited = await client.get("/v1/jobs/" + "0" * 32)
        assert limited.status_code == 429
        assert limited.json()["code"] == "rate_limited"


def scope(peer: str, forwarded: str | None = None) -> Any:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded is not None else []
    return {"client": (peer, 40000), "headers": headers}


def test_client_address_believes_only_trusted_proxies() -> None:
    untrusting = ClientAddress("")
    assert untrusting(scope("203.0.113.9", "1.2.3.4")) == "203.0.113.9"
    proxies = ClientAddress("10.0.0.0/8, 192.0.2.1")
    assert proxies(scope("203.0.113.9", "1.2.3.4")) == "203.0.113.9"  # not from a proxy: header ignored
    assert proxies(scope("10.1.2.3", "1.2.3.4")) == "1.2.3.4"
    # Read from the right: whatever the client put on the left is ignored.
    assert proxies(scope("10.1.2.3", "6.6.6.6, 1.2.3.4")) == "1.2.3.4"
    # Two proxies in a row: the first untrusted hop from the right is the client.
    assert proxies(scope("10.1.2.3", "6.6.6.6, 1.2.3.4, 192.0.2.1")) == "1.2.3.4"
    assert proxies(scope("10.1.2.3")) == "10.1.2.3"
    assert proxies(scope("10.1.2.3", "10.9.9.9")) == "10.9.9.9"  # only proxies: the farthest one


@pytest.fixture
def ingest_server(redis_server: RedisServer, procs: list[Proc], tmp_path: Path) -> Any:
    """A factory of real `ghibli ingest` processes (uvicorn), with their log files."""

    def start(**env: str) -> tuple[str, Proc]:
        port = free_port()
        settings = {
            "REDIS_URL": redis_server.url,
            "GHIBLI_PORT": str(port),
            "GHIBLI_MAX_BACKLOG": "0",
            "GHIBLI_RATE_LIMIT_SUBMITS": "0",
            **env,
        }
        proc = ghibli(["ingest"], base_env(**settings), tmp_path / f"ingest-{port}.log").start()
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: httpx.get(url + "/healthz", timeout=2).status_code == 200, "ingest", 60, proc.proc)
        return url, proc

    return start


@pytest.mark.system
def test_x_forwarded_for_from_a_trusted_proxy(ingest_server: Any) -> None:
    url, _proc = ingest_server(GHIBLI_TRUSTED_PROXIES="127.0.0.1", GHIBLI_RATE_LIMIT_REQUESTS="1")
    status = url + "/v1/jobs/" + "0" * 32

    def get(forwarded: str) -> int:
        return httpx.get(status, headers={"X-Forwarded-For": forwarded}, timeout=10).status_code

    assert get("198.51.100.1") == 404
    assert get("198.51.100.1") == 429
    assert get("198.51.100.2") == 404  # another client, its own bucket
    assert get("6.6.6.6, 198.51.100.1") == 429  # a spoofed left part does not buy a new bucket


@pytest.mark.system
def test_x_forwarded_for_is_ignored_without_trusted_proxies(ingest_server: Any) -> None:
    url, _proc = ingest_server(GHIBLI_RATE_LIMIT_REQUESTS="1")
    status = url + "/v1/jobs/" + "0" * 32
    assert httpx.get(status, headers={"X-Forwarded-For": "198.51.100.1"}, timeout=10).status_code == 404
    assert httpx.get(status, headers={"X-Forwarded-For": "198.51.100.2"}, timeout=10).status_code == 429


@pytest.mark.system
def test_request_logs_carry_no_bodies_or_secrets(ingest_server: Any) -> None:
    url, proc = ingest_server()
    secrets = {"prompt": "my-private-prompt-4471", "key": "idem-secret-9921", "bearer": "bearer-secret-1234"}
    photo = photo_bytes(seed=5)
    response = httpx.post(
        url + "/v1/jobs?note=query-secret-5512",
        files={"image": ("private-name.jpg", photo, "image/jpeg")},
        data={"prompt": secrets["prompt"]},
        headers={"Idempotency-Key": secrets["key"], "Authorization": f"Bearer {secrets['bearer']}"},
        timeout=30,
    )
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    assert httpx.get(url + f"/v1/jobs/{job_id}", timeout=10).status_code == 200
    assert httpx.get(url + "/v1/jobs/" + "f" * 32, timeout=10).status_code == 404

    def logged() -> list[dict[str, Any]]:
        lines = [line for line in proc.log().splitlines() if line.startswith("{")]
        return [entry for entry in map(json.loads, lines) if entry.get("event") == "request"]

    wait_until(lambda: len(logged()) >= 3, "request log lines", 10)
    entries = logged()
    assert {(e["method"], e["route"], e["status"]) for e in entries} >= {
        ("POST", "/v1/jobs", 202),
        ("GET", "/v1/jobs/{job_id}", 200),
        ("GET", "/v1/jobs/{job_id}", 404),
    }
    assert any(e.get("job_id") == job_id for e in entries)
    text = proc.log()
    for secret in (*secrets.values(), "query-secret-5512", "private-name.jpg"):
        assert secret not in text
    assert "JFIF" not in text  # no image bytes


async def test_errors_without_redis_are_problems_without_stack_traces(redis_server: RedisServer) -> None:
    async with api(settings_for(redis_server)) as client:
        assert (await client.get("/readyz")).status_code == 200
        redis_server.stop()
        assert (await client.get("/healthz")).status_code == 200  # the process itself is fine
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["code"] == "not_ready"
        broken = await client.get("/v1/jobs/" + "0" * 32)
        assert broken.status_code == 503  # worth a retry: Redis restarts or fails over
        assert broken.headers["content-type"].startswith("application/problem+json")
        assert broken.json()["code"] == "store_unavailable"
        assert broken.headers["retry-after"] == "1"
        for leak in ("Traceback", "redis", 'File "', "Connection"):
            assert leak not in broken.text
