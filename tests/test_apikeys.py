"""API keys: configured as hashed entries, checked on submission (401), limited per key (429), their
id on the job and in admin views; `ghibli keys create` prints a key once with its entry."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ghibli.cli import cli
from jobs.apikeys import KeyRing, key_digest, load_key_ring, parse_entries
from jobs.settings import SettingsError, load_settings
from jobs.webhook_signing import WebhookSecret
from tests.ingest_support import Driver, api, photo_bytes, picture
from tests.procs import RedisServer, base_env
from tests.webhook_kit import make_key, webhook_env

pytestmark = pytest.mark.anyio


def form(seed: int = 1, **fields: str) -> dict[str, Any]:
    return {"files": {"image": ("p.jpg", photo_bytes(seed=seed), "image/jpeg")}, "data": fields}


def test_keys_create_prints_a_key_once_and_an_entry_that_accepts_it() -> None:
    done = CliRunner().invoke(
        cli, ["keys", "create", "--id", "shop", "--rate", "10", "--max-unfinished", "3"]
    )
    assert done.exit_code == 0, done.output
    key = re.search(r"^\s+(gk_\S+)$", done.output, re.MULTILINE)
    secret = re.search(r"^\s+(whsec_\S+)$", done.output, re.MULTILINE)
    entry = re.search(r"^\s+(id=shop,\S+)$", done.output, re.MULTILINE)
    assert key
    assert secret
    assert entry
    assert key.group(1) not in entry.group(1)  # the entry holds a hash, never the key
    ring = KeyRing(parse_entries(entry.group(1)))
    found = ring.authenticate(key.group(1))
    assert found is not None
    assert (found.id, found.rate_per_minute, found.max_unfinished) == ("shop", 10, 3)
    assert found.webhook_secrets == (WebhookSecret.parse(secret.group(1)),)
    assert ring.authenticate(key.group(1) + "x") is None
    again = CliRunner().invoke(cli, ["keys", "create", "--id", "shop"])
    assert key.group(1) not in again.output  # a new key every time
    refused = CliRunner().invoke(cli, ["keys", "create", "--id", "Not A Name"])
    assert refused.exit_code != 0


def test_bad_entries_are_refused_naming_the_entry_but_not_the_secret(tmp_path: Path) -> None:
    good = f"id=a,sha256={key_digest('gk_one')}"
    cases = {
        "id=a": "sha256",
        f"id=a,sha256={'0' * 63}": "sha256",
        f"id=A!,sha256={'0' * 64}": "id",
        f"id=anonymous,sha256={'0' * 64}": "id",
        f"id=a,sha256={'0' * 64},rate=-1": "rate",
        f"id=a,sha256={'0' * 64},color=red": "unknown part",
        f"id=a,sha256={'0' * 64},webhook_secret=whsec_c2hvcnQ=": "24-64",
    }
    for text, expected in cases.items():
        with pytest.raises(ValueError, match=expected):
            parse_entries(f"{good}; {text}")
        with pytest.raises(ValueError, match="entry 2"):
            parse_entries(f"{good}; {text}")
    with pytest.raises(ValueError, match="same key"):
        KeyRing(parse_entries(f"{good}; {good.replace('id=a', 'id=b')}"))
    with pytest.raises(ValueError, match="twice"):
        KeyRing(parse_entries(f"{good}; id=a,sha256={'1' * 64}"))
    secret = WebhookSecret.generate().serialize()
    keys_file = tmp_path / "keys"
    keys_file.write_text(f"# shop\n{good},webhook_secret={secret}\nid=b,sha256=zz,webhook_secret={secret}\n")
    with pytest.raises(SettingsError) as caught:
        load_key_ring(load_settings(environ={"GHIBLI_API_KEYS_FILE": str(keys_file)}))
    assert "GHIBLI_API_KEYS_FILE" in str(caught.value)
    assert "entry 3" in str(caught.value)
    assert secret not in str(caught.value)
    keys_file.write_text(f"# shop\n{good},webhook_secret={secret}\n")
    ring = load_key_ring(load_settings(environ={"GHIBLI_API_KEYS_FILE": str(keys_file)}))
    assert ring.ids == ["a"]
    assert secret not in repr(load_settings(environ={"GHIBLI_API_KEYS": f"{good},webhook_secret={secret}"}))


async def test_with_keys_submissions_need_a_valid_key(redis_server: RedisServer) -> None:
    shop = make_key("needs-key-shop")  # an id of its own: the metrics registry lives for the session
    other = make_key("other")  # made the same way, but not configured
    settings = load_settings(environ=webhook_env(redis_server, shop, ADMIN_SECRET="admin-secret-1"))
    async with api(settings) as client:
        for route in ("/v1/jobs", "/api/transform-ghibli"):
            missing = await client.post(route, **form())
            assert missing.status_code == 401, missing.text
            assert missing.json()["code"] == "api_key_required"
            assert missing.headers["www-authenticate"].startswith("Bearer")
            for headers in (other.auth, {"Authorization": shop.plain}, {"Authorization": "Bearer "}):
                wrong = await client.post(route, headers=headers, **form())
                assert wrong.status_code == 401
                assert wrong.json()["code"] == "invalid_api_key"
        accepted = await client.post("/v1/jobs", headers=shop.auth, **form())
        assert accepted.status_code == 202, accepted.text
        job_id = accepted.json()["id"]
        compat = await client.post("/api/transform-ghibli", headers=shop.auth, **form(seed=2))
        assert compat.status_code == 200
        # The key id is on the job and in the admin view; reads need no key (job ids are capabilities).
        assert (await client.get(f"/v1/jobs/{job_id}")).status_code == 200
        page = await client.get("/v1/admin/jobs", headers={"Authorization": "Bearer admin-secret-1"})
        assert {item["id"]: item["key_id"] for item in page.json()["items"]}[job_id] == "needs-key-shop"
        metrics = (await client.get("/metrics")).text
        assert 'ghibli_jobs_submitted_by_key_total{key="needs-key-shop"} 2.0' in metrics
        assert 'ghibli_jobs_rejected_total{reason="invalid_api_key"}' in metrics


async def test_public_submissions_stay_open_without_a_key_but_not_with_a_wrong_one(
    redis_server: RedisServer,
) -> None:
    shop = make_key("shop")
    env = webhook_env(redis_server, shop, GHIBLI_PUBLIC_SUBMISSIONS="true")
    async with api(load_settings(environ=env)) as client:
        assert (await client.post("/v1/jobs", **form())).status_code == 202
        assert (await client.post("/v1/jobs", headers=make_key("x").auth, **form(seed=2))).status_code == 401
        # Anonymous callers cannot ask for webhooks (they are signed with a key's secret).
        hook = await client.post("/v1/jobs", **form(seed=3, webhook_url="http://127.0.0.1:9/hook"))
        assert hook.status_code == 422
        assert hook.json()["code"] == "webhooks_unavailable"


async def test_without_keys_everyone_is_anonymous(redis_server: RedisServer) -> None:
    async with api(
        load_settings(environ=base_env(REDIS_URL=redis_server.url, GHIBLI_MAX_BACKLOG="0"))
    ) as client:
        response = await client.post("/v1/jobs", headers=make_key("x").auth, **form())
        assert response.status_code == 202


async def test_a_key_is_limited_by_its_own_rate_not_the_per_client_one(redis_server: RedisServer) -> None:
    fast = make_key("fast", rate=3)
    slow = make_key("slow", rate=1)
    # One anonymous submission per minute per client address; keys have their own buckets.
    env = webhook_env(
        redis_server, fast, slow, GHIBLI_PUBLIC_SUBMISSIONS="true", GHIBLI_RATE_LIMIT_SUBMITS="1"
    )
    async with api(load_settings(environ=env)) as client:
        for seed in (1, 2, 3):
            assert (await client.post("/v1/jobs", headers=fast.auth, **form(seed=seed))).status_code == 202
        over = await client.post("/v1/jobs", headers=fast.auth, **form(seed=4))
        assert over.status_code == 429
        assert over.json()["code"] == "rate_limited"
        assert "API key" in over.json()["detail"]
        assert 1 <= int(over.headers["retry-after"]) <= 60
        assert (await client.post("/v1/jobs", headers=slow.auth, **form(seed=5))).status_code == 202
        assert (await client.post("/v1/jobs", headers=slow.auth, **form(seed=6))).status_code == 429
        assert (await client.post("/v1/jobs", **form(seed=7))).status_code == 202
        assert (await client.post("/v1/jobs", **form(seed=8))).status_code == 429


async def test_a_key_may_have_only_so_many_unfinished_jobs(redis_server: RedisServer) -> None:
    shop = make_key("shop", max_unfinished=2)
    settings = load_settings(environ=webhook_env(redis_server, shop))
    driver = Driver(settings)
    async with api(settings) as client:
        first = (await client.post("/v1/jobs", headers=shop.auth, **form(seed=1))).json()
        await client.post("/v1/jobs", headers=shop.auth, **form(seed=2))
        over = await client.post("/v1/jobs", headers=shop.auth, **form(seed=3))
        assert over.status_code == 429
        assert over.json()["code"] == "too_many_unfinished_jobs"
        assert over.headers["retry-after"]
        # A replay of an earlier request (Idempotency-Key) is not a new job: still answered.
        keyed = {"Idempotency-Key": "order-1", **shop.auth}
        claims = await driver.claim_all()
        assert await driver.succeed(claims[first["id"]], picture()) == "ok"
        again = await client.post("/v1/jobs", headers=keyed, **form(seed=3))
        assert again.status_code == 202
        replay = await client.post("/v1/jobs", headers=keyed, **form(seed=3))
        assert replay.status_code == 202
        assert replay.headers["idempotent-replayed"] == "true"
        assert (await client.post("/v1/jobs", headers=shop.auth, **form(seed=4))).status_code == 429
        # Idempotency-Keys are scoped by key: another app's "order-1" is its own.
        assert (await driver.redis.zcard(f"{settings.key_prefix}key:shop:open")) == 2
    await driver.close()
