"""Fair share per client against a real `ghibli ingest` and redis-server: anonymous clients too have
a cap on unfinished jobs and on stored bytes per window, one client's caps never touch another's,
IPv6 clients are counted per /64, and an anonymous client's Idempotency-Keys are its own. Clients
are told apart by X-Forwarded-For from a trusted proxy (the test), so IPv4 and IPv6 clients can
both be played from loopback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from ingest.client_ip import client_bucket
from tests.ingest_support import Driver, settings_for
from tests.photos import encode, landscape
from tests.procs import Proc, RedisServer, base_env, free_port, ghibli, wait_until

MAX_UNFINISHED = 3
PHOTO = encode(landscape(640, 480, seed=1), "JPEG", quality=90)  # stored as sent: its size is known


@pytest.fixture
def ingest(redis_server: RedisServer, procs: list[Proc], tmp_path: Path) -> str:
    port = free_port()
    env = base_env(
        REDIS_URL=redis_server.url,
        GHIBLI_PORT=str(port),
        GHIBLI_TRUSTED_PROXIES="127.0.0.1",
        GHIBLI_RATE_LIMIT_SUBMITS="0",
        GHIBLI_MAX_UNFINISHED_PER_CLIENT=str(MAX_UNFINISHED),
        GHIBLI_MAX_STORED_BYTES_PER_CLIENT=str(5 * len(PHOTO)),
        GHIBLI_DECODE_WORKERS="1",
    )
    proc = ghibli(["ingest"], env, tmp_path / "ingest.log").start()
    procs.append(proc)
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: httpx.get(url + "/healthz", timeout=2).status_code == 200, "ingest", 60, proc.proc)
    return url


def submit(url: str, client: str, seed: int, photo: bytes = PHOTO) -> httpx.Response:
    return httpx.post(
        url + "/v1/jobs",
        files={"image": ("p.jpg", photo, "image/jpeg")},
        data={"seed": str(seed)},
        headers={"X-Forwarded-For": client},
        timeout=60,
    )


def test_ipv6_clients_are_counted_per_64() -> None:
    assert client_bucket("2001:db8:1:2::5") == client_bucket("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert client_bucket("2001:db8:1:3::5") != client_bucket("2001:db8:1:2::5")
    assert client_bucket("2001:db8:1:2::5", 128) == "2001:db8:1:2::5/128"
    assert client_bucket("::ffff:198.51.100.7") == "198.51.100.7"  # IPv4-mapped: the IPv4 address
    assert client_bucket("198.51.100.7") == "198.51.100.7"


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["code"] == code
    assert int(response.headers["retry-after"]) >= 1
    return body


@pytest.mark.system
def test_an_anonymous_client_has_a_cap_on_unfinished_jobs(ingest: str, redis_server: RedisServer) -> None:
    jobs = [submit(ingest, "198.51.100.7", seed) for seed in range(MAX_UNFINISHED)]
    assert [r.status_code for r in jobs] == [202] * MAX_UNFINISHED
    body = problem(submit(ingest, "198.51.100.7", 99), 429, "too_many_unfinished_jobs")
    assert f"at most {MAX_UNFINISHED} unfinished" in body["detail"]
    # The same /64 is the same IPv6 client; another /64, or another address, is not.
    for seed in range(MAX_UNFINISHED):
        assert submit(ingest, f"2001:db8:1:2::{seed + 1}", 100 + seed).status_code == 202
    problem(submit(ingest, "2001:db8:1:2:abcd::1", 199), 429, "too_many_unfinished_jobs")
    assert submit(ingest, "2001:db8:1:3::1", 200).status_code == 202
    assert submit(ingest, "198.51.100.8", 300).status_code == 202

    async def finish_one() -> None:
        driver = Driver(settings_for(redis_server))
        claims = await driver.claim_all()
        assert await driver.fail(claims[jobs[0].json()["id"]], "space_error", "no") == "ok"
        await driver.close()

    anyio.run(finish_one)
    # One of its jobs finished: it may queue one more.
    assert submit(ingest, "198.51.100.7", 400).status_code == 202


@pytest.mark.system
def test_a_client_has_a_cap_on_stored_bytes_per_window(ingest: str, redis_server: RedisServer) -> None:
    clients = ["203.0.113.1", "203.0.113.2", "203.0.113.3"]
    accepted = 0

    async def finish_all() -> None:  # so that the unfinished-jobs cap is not what stops them
        driver = Driver(settings_for(redis_server))
        for claim in (await driver.claim_all()).values():
            await driver.fail(claim, "space_error", "no")
        await driver.close()

    for seed in range(10):
        client = clients[0] if seed < 9 else clients[1]
        response = submit(ingest, client, seed)
        anyio.run(finish_all)
        if response.status_code != 202:
            body = problem(response, 429, "storage_quota_exceeded")
            assert int(response.headers["retry-after"]) <= 3600  # the window: GHIBLI_BLOB_TTL_SECONDS
            assert "bytes of photos" in body["detail"]
            break
        accepted += 1
    assert accepted == 5  # five photos fit in the window, the sixth does not
    assert submit(ingest, clients[2], 50).status_code == 202  # another client's bytes are its own


@pytest.mark.system
def test_idempotency_keys_of_anonymous_clients_are_their_own(ingest: str) -> None:
    def post(client: str) -> httpx.Response:
        return httpx.post(
            ingest + "/v1/jobs",
            files={"image": ("p.jpg", PHOTO, "image/jpeg")},
            data={"seed": "7"},
            headers={"X-Forwarded-For": client, "Idempotency-Key": "order-1"},
            timeout=60,
        )

    first = post("198.51.100.20")
    assert first.status_code == 202
    again = post("198.51.100.20")
    assert again.headers.get("idempotent-replayed") == "true"
    assert again.json()["id"] == first.json()["id"]
    # Another client with the same key and the same photo gets its own job, not the first one's id.
    other = post("198.51.100.21")
    assert other.status_code == 202
    assert "idempotent-replayed" not in other.headers
    assert other.json()["id"] != first.json()["id"]
