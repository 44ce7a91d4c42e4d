"""Webhooks: refused URLs at submission, events captured with their state, retries with a stable id,
order per job, and the address checked again at delivery.

Real parts: redis-server, the ingest app, a real HTTP receiver on loopback (allowlisted), the real
`ghibli webhooks` dispatcher process; job states are driven through the real job-store scripts
(tests/ingest_support.py: Driver), so each state is exact and the tests are quick.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from redis.asyncio import Redis
from standardwebhooks import Webhook

from jobs.settings import load_settings
from jobs.webhook_url import UrlPolicy, address_allowed
from jobs.webhooks import WebhookKeys
from tests.ingest_support import Driver, api, photo_bytes, picture
from tests.procs import ROOT, Proc, RedisServer, free_port, ghibli
from tests.webhook_kit import Delivery, Receiver, make_key, webhook_env

pytestmark = pytest.mark.anyio


def documented_verifier() -> Any:
    """`verify_webhook` exactly as docs/webhooks.md shows it to receivers."""
    text = (ROOT / "docs" / "webhooks.md").read_text()
    block = text.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(compile(block, "docs/webhooks.md", "exec"), namespace)  # our own documentation
    return namespace["verify_webhook"]


def form(seed: int = 1, **fields: str) -> dict[str, Any]:
    return {"files": {"image": ("p.jpg", photo_bytes(seed=seed), "image/jpeg")}, "data": fields}


async def until(check: Any, what: str, timeout_s: float = 60.0) -> None:
    """Poll `check` until it is true; `what` names the wait in a failing test's traceback."""
    with anyio.fail_after(timeout_s):
        while True:
            if await check():
                return
            await anyio.sleep(0.1)


def start_dispatcher(env: dict[str, str], tmp_path: Path, procs: list[Proc]) -> tuple[Proc, int]:
    port = free_port()
    proc = ghibli(["webhooks"], {**env, "GHIBLI_WEBHOOK_METRICS_PORT": str(port)}, tmp_path / "webhooks.log")
    procs.append(proc.start())
    return proc, port


async def test_private_and_malformed_urls_are_refused_at_submission(redis_server: RedisServer) -> None:
    shop = make_key("shop")
    bare = make_key("bare", secret=False)  # a key without a webhook secret (and no server secret)
    env = webhook_env(
        redis_server, shop, bare, GHIBLI_WEBHOOK_ALLOW_NETWORKS="", GHIBLI_WEBHOOK_ALLOW_HTTP="false"
    )
    refused = {
        "https://127.0.0.1/hook": "webhook_url_forbidden",
        "https://localhost:8443/hook": "webhook_url_forbidden",  # a name that resolves to loopback
        "https://10.1.2.3/hook": "webhook_url_forbidden",
        "https://192.168.0.7:8443/hook": "webhook_url_forbidden",
        "https://169.254.169.254/latest/meta-data": "webhook_url_forbidden",  # cloud metadata
        "https://[::1]/hook": "webhook_url_forbidden",
        "https://[::ffff:10.0.0.1]/hook": "webhook_url_forbidden",  # IPv4-mapped private
        "https://0.0.0.0/hook": "webhook_url_forbidden",
        "http://example.com/hook": "invalid_webhook_url",  # http is not allowed here
        "ftp://example.com/hook": "invalid_webhook_url",
        "https://user:secret@example.com/hook": "invalid_webhook_url",
        "https:///no-host": "invalid_webhook_url",
        "https://no-such-host.invalid/hook": "webhook_host_unresolvable",
    }
    async with api(load_settings(environ=env)) as client:
        for url, code in refused.items():
            response = await client.post("/v1/jobs", headers=shop.auth, **form(webhook_url=url))
            assert response.status_code == 422, (url, response.text)
            assert response.headers["content-type"].startswith("application/problem+json")
            problem = response.json()
            assert (problem["code"], problem["field"]) == (code, "webhook_url"), url
            # The answer names the URL's host but never what it resolved to (no probing of our DNS).
            if "localhost" in url:
                assert "127.0.0.1" not in problem["detail"], problem["detail"]
                assert "::1" not in problem["detail"], problem["detail"]
        bad_events = await client.post(
            "/v1/jobs",
            headers=shop.auth,
            **form(webhook_url="https://93.184.215.14/hook", webhook_events="started,finished"),
        )
        assert bad_events.status_code == 422
        assert bad_events.json()["code"] == "invalid_webhook_events"
        assert "finished" in bad_events.json()["detail"]
        unsigned = await client.post(
            "/v1/jobs", headers=bare.auth, **form(webhook_url="https://93.184.215.14/h")
        )
        assert unsigned.status_code == 422
        assert unsigned.json()["code"] == "webhooks_unavailable"
        # Nothing was queued by any of these.
        redis = Redis.from_url(redis_server.url)
        assert [k async for k in redis.scan_iter(match="{ghibli}:job:*")] == []
        # A public address is accepted (no dispatcher runs here, so nothing is ever sent to it).
        accepted = await client.post(
            "/v1/jobs",
            headers=shop.auth,
            **form(webhook_url="https://93.184.215.14/hook", webhook_events="completed, started"),
        )
        assert accepted.status_code == 202, accepted.text
        webhook = accepted.json()["webhook"]
        assert webhook["events"] == ["started", "completed"]
        assert (webhook["attempts"], webhook["delivered"], webhook["pending"]) == (0, 0, 0)
        assert "93.184" not in accepted.text  # the URL is not shown back
        await redis.aclose()


async def test_delete_erases_the_webhook_outbox(redis_server: RedisServer) -> None:
    """An erased job is announced to nobody: its queued events (prompt, photo digest, URL) go too."""
    shop = make_key("shop")
    env = webhook_env(redis_server, shop, GHIBLI_WEBHOOK_ALLOW_NETWORKS="")
    keys = WebhookKeys()
    redis = Redis.from_url(redis_server.url)
    async with api(load_settings(environ=env)) as client:
        job = (
            await client.post(
                "/v1/jobs",
                headers=shop.auth,
                **form(webhook_url="https://93.184.215.14/hook", webhook_events="started,completed"),
            )
        ).json()
        driver = Driver(load_settings(environ=env))
        claim = (await driver.claim_all())[job["id"]]
        await driver.progress(claim, 0.5)  # `started` is queued (no dispatcher runs here)
        assert await redis.llen(keys.queue(job["id"])) == 1
        await redis.hset(keys.state(job["id"]), "attempts", 2)  # as a failing delivery leaves it
        assert (await client.delete(f"/v1/jobs/{job['id']}")).status_code == 204
        await driver.close()
    assert not await redis.exists(keys.queue(job["id"]))
    assert not await redis.exists(keys.state(job["id"]))
    assert await redis.zscore(keys.due, job["id"]) is None
    await redis.aclose()


def test_addresses_hidden_in_ipv6_forms_are_checked_as_ipv4() -> None:
    from ipaddress import ip_address, ip_network

    policy = UrlPolicy()
    for private in (
        "::ffff:127.0.0.1",
        "64:ff9b::a00:1",
        "2002:c0a8:101::1",
        "fe80::1",
        "fc00::1",
        "fec0::1",  # site-local (deprecated; still routed inside some networks)
        "fec0:1:2::3",
        "3fff::1",  # documentation (RFC 9637)
        "3fff:fff::1",
        "224.0.0.1",
    ):
        assert not address_allowed(ip_address(private), policy), private
    assert address_allowed(ip_address("93.184.215.14"), policy)
    assert address_allowed(ip_address("2606:4700::1111"), policy)
    allow = UrlPolicy(allowed=(ip_network("127.0.0.1/32"),))
    assert address_allowed(ip_address("127.0.0.1"), allow)
    assert address_allowed(ip_address("::ffff:127.0.0.1"), allow)
    assert not address_allowed(ip_address("127.0.0.2"), allow)


async def test_each_event_is_captured_with_the_state_it_announces(redis_server: RedisServer) -> None:
    shop = make_key("shop")
    settings = load_settings(environ=webhook_env(redis_server, shop))
    driver = Driver(settings)
    outbox = WebhookKeys(settings.key_prefix)
    async with api(settings) as client:
        plain = await client.post("/v1/jobs", headers=shop.auth, **form(seed=1))
        assert plain.json()["webhook"] is None
        subscribed = await client.post(
            "/v1/jobs",
            headers=shop.auth,
            **form(
                seed=2, webhook_url="http://127.0.0.1:9/hook", webhook_events="started,progress,completed"
            ),
        )
        job_id = subscribed.json()["id"]
        claims = await driver.claim_all()
        for fraction in (0.1, 0.2, 0.3, 0.4, 0.5):
            await driver.progress(claims[job_id], fraction)
        queued = [json.loads(raw) for raw in await driver.redis.lrange(outbox.queue(job_id), 0, -1)]
        # started, then the progress events coalesced into the newest one (nothing delivers here).
        assert [item["type"] for item in queued] == ["started", "progress"]
        assert queued[1]["snap"]["progress"] == "0.5"
        assert queued[0]["snap"]["status"] == "running"
        assert await driver.succeed(claims[job_id], picture()) == "ok"
        queued = [json.loads(raw) for raw in await driver.redis.lrange(outbox.queue(job_id), 0, -1)]
        assert [item["type"] for item in queued] == ["started", "progress", "completed"]
        versions = [int(item["snap"]["version"]) for item in queued]
        assert versions == sorted(versions)
        assert len(set(versions)) == 3
        assert [item["id"] for item in queued] == [f"msg_{job_id}_{v}" for v in versions]
        assert queued[2]["snap"]["status"] == "succeeded"
        assert queued[0]["snap"]["key_id"] == "shop"
        assert await driver.redis.zscore(outbox.due, job_id) is not None
        # The job without a webhook has no outbox; the finished one without progress subscribers
        # would have queued nothing for its progress.
        assert await driver.redis.exists(outbox.queue(plain.json()["id"])) == 0
        assert (await client.get(f"/v1/jobs/{job_id}")).json()["webhook"]["pending"] == 3
    await driver.close()


@pytest.mark.system
async def test_retries_keep_the_webhook_id_and_later_events_wait(
    redis_server: RedisServer, procs: list[Proc], tmp_path: Path
) -> None:
    shop = make_key("shop")
    env = webhook_env(redis_server, shop)

    def answer(_headers: dict[str, str], _body: bytes, earlier: list[Delivery]) -> int:
        return 500 if len(earlier) < 2 else 200  # the first two requests fail

    with Receiver(answer) as receiver:
        settings = load_settings(environ=env)
        driver = Driver(settings)
        async with api(settings) as client:
            submitted = await client.post(
                "/v1/jobs",
                headers=shop.auth,
                **form(webhook_url=receiver.url(), webhook_events="started,completed"),
            )
            assert submitted.status_code == 202, submitted.text
            job_id = submitted.json()["id"]
            claims = await driver.claim_all()
            assert await driver.succeed(claims[job_id], picture()) == "ok"
            # Both events are in the outbox before the dispatcher starts: order is its job.
            dispatcher, metrics_port = start_dispatcher(env, tmp_path, procs)

            async def all_delivered() -> bool:
                view = (await client.get(f"/v1/jobs/{job_id}")).json()
                return bool(view["webhook"]["delivered"] == 2)

            await until(all_delivered, "both events delivered")
            view = (await client.get(f"/v1/jobs/{job_id}")).json()
        await driver.close()
    got = receiver.received()
    assert [d.answered for d in got] == [500, 500, 200, 200], dispatcher.log()[-3000:]
    started, completed = got[:3], got[3]
    assert len({d.id for d in started}) == 1  # one event, one webhook-id, three attempts
    assert completed.id != started[0].id
    assert {d.body for d in started} == {started[0].body}  # the same bytes each time
    assert [d.json["type"] for d in got] == ["job.started"] * 3 + ["job.completed"]
    assert started[0].json["status"] == "running"
    assert completed.json["status"] == "succeeded"
    assert completed.json["id"] == job_id
    # Signatures verify with an independent implementation (the standardwebhooks package).
    verifier = Webhook(shop.whsec)
    for delivery in got:
        assert verifier.verify(delivery.body, delivery.headers)["id"] == job_id
        assert delivery.headers["content-type"] == "application/json"
    tampered = got[-1].body.replace(b"succeeded", b"failed")
    with pytest.raises(Exception, match="signature"):
        verifier.verify(tampered, got[-1].headers)
    # ... and with the receiver example of the docs.
    verify_webhook = documented_verifier()
    assert verify_webhook(shop.whsec, got[-1].headers, got[-1].body)["status"] == "succeeded"
    with pytest.raises(ValueError, match="signature"):
        verify_webhook(shop.whsec, got[-1].headers, tampered)
    with pytest.raises(ValueError, match="signature"):
        verify_webhook(make_key("other").whsec, got[-1].headers, got[-1].body)
    # The attempts and the last outcome are on the job...
    webhook = view["webhook"]
    assert (webhook["attempts"], webhook["delivered"], webhook["pending"]) == (4, 2, 0)
    assert (webhook["last_event"], webhook["last_outcome"], webhook["last_status_code"]) == (
        "completed",
        "delivered",
        200,
    )
    # ... and in the dispatcher's metrics, labelled by key id.
    async with httpx.AsyncClient(timeout=10) as http:
        text = (await http.get(f"http://127.0.0.1:{metrics_port}/metrics")).text
    assert 'ghibli_webhook_attempts_total{key="shop",outcome="http_error"} 2.0' in text
    assert 'ghibli_webhook_attempts_total{key="shop",outcome="delivered"} 2.0' in text
    assert 'ghibli_webhook_events_total{key="shop",result="delivered"} 2.0' in text
    logged = [json.loads(line) for line in dispatcher.log().splitlines() if line.startswith("{")]
    attempts = [e for e in logged if e.get("event") == "webhook attempt"]
    assert [(e["status"], e["key_id"]) for e in attempts] == [
        (500, "shop"),
        (500, "shop"),
        (200, "shop"),
        (200, "shop"),
    ]


@pytest.mark.system
async def test_the_address_is_checked_again_at_delivery(
    redis_server: RedisServer, procs: list[Proc], tmp_path: Path
) -> None:
    """Ingest accepts the loopback receiver; the dispatcher (as if DNS now said 127.0.0.1) refuses."""
    shop = make_key("shop")
    with Receiver() as receiver:
        settings = load_settings(environ=webhook_env(redis_server, shop))
        driver = Driver(settings)
        async with api(settings) as client:
            submitted = await client.post("/v1/jobs", headers=shop.auth, **form(webhook_url=receiver.url()))
            job_id = submitted.json()["id"]
            claims = await driver.claim_all()
            assert await driver.fail(claims[job_id], "space_error", "it broke") == "ok"
            strict = webhook_env(redis_server, shop, GHIBLI_WEBHOOK_ALLOW_NETWORKS="")
            start_dispatcher(strict, tmp_path, procs)

            async def refused() -> bool:
                return bool((await client.get(f"/v1/jobs/{job_id}")).json()["webhook"]["attempts"] >= 2)

            await until(refused, "refused attempts")
            webhook = (await client.get(f"/v1/jobs/{job_id}")).json()["webhook"]
        await driver.close()
        assert receiver.received() == []
    assert webhook["last_outcome"] == "failed"  # retried (DNS may change back), never sent
    assert webhook["last_error"] == "webhook_url_forbidden"
    assert webhook["pending"] == 1
    assert webhook["delivered"] == 0


@pytest.mark.system
async def test_progress_is_throttled_and_overtaken_and_gone_stops_a_job(
    redis_server: RedisServer, procs: list[Proc], tmp_path: Path
) -> None:
    shop = make_key("shop")
    env = webhook_env(redis_server, shop, GHIBLI_WEBHOOK_PROGRESS_INTERVAL_SECONDS="60")
    gone_jobs: set[str] = set()

    def answer(_headers: dict[str, str], body: bytes, _earlier: list[Delivery]) -> int:
        return 410 if json.loads(body)["id"] in gone_jobs else 200

    with Receiver(answer) as receiver:
        settings = load_settings(environ=env)
        driver = Driver(settings)
        start_dispatcher(env, tmp_path, procs)
        everything = {"webhook_url": receiver.url(), "webhook_events": "started,progress,completed"}
        async with api(settings) as client:
            throttled = (
                await client.post("/v1/jobs", headers=shop.auth, **form(seed=1, **everything))
            ).json()
            stopped = (await client.post("/v1/jobs", headers=shop.auth, **form(seed=2, **everything))).json()
            gone_jobs.add(stopped["id"])
            claims = await driver.claim_all()
            await driver.progress(claims[throttled["id"]], 0.25)

            def of(job: dict[str, Any]) -> list[Delivery]:
                return [d for d in receiver.received() if d.json["id"] == job["id"]]

            async def first_progress_sent() -> bool:
                return len(of(throttled)) >= 2 and len(of(stopped)) >= 1

            await until(first_progress_sent, "started + one progress; the other job's started")
            # The next progress may not go before the interval (60 s); newer ones replace it.
            for fraction in (0.5, 0.75):
                await driver.progress(claims[throttled["id"]], fraction)
                await driver.progress(claims[stopped["id"]], fraction)
            await anyio.sleep(1.5)
            assert [d.json["type"] for d in of(throttled)] == ["job.started", "job.progress"]
            # Completion overtakes the held-back progress event at once (it is dropped unsent).
            assert await driver.succeed(claims[throttled["id"]], picture()) == "ok"
            assert await driver.succeed(claims[stopped["id"]], picture()) == "ok"

            async def completed_sent() -> bool:
                return len(of(throttled)) >= 3

            await until(completed_sent, "the completed event", timeout_s=30)
            await anyio.sleep(1.0)
            views = {j["id"]: (await client.get(f"/v1/jobs/{j['id']}")).json() for j in (throttled, stopped)}
        await driver.close()
    sent = of(throttled)
    assert [d.json["type"] for d in sent] == ["job.started", "job.progress", "job.completed"]
    assert sent[1].json["progress"] == 0.25
    assert sent[2].json["status"] == "succeeded"
    assert views[throttled["id"]]["webhook"]["pending"] == 0
    # 410 Gone on the first event: nothing more is sent for that job, and the job says so.
    assert [(d.json["type"], d.answered) for d in of(stopped)] == [("job.started", 410)]
    webhook = views[stopped["id"]]["webhook"]
    assert (webhook["last_outcome"], webhook["last_status_code"], webhook["pending"]) == ("gone", 410, 0)
