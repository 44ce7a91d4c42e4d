"""A web app's whole path, every part real: `ghibli ingest` with API keys, a consumer calling the
offline Space, `ghibli webhooks` calling a receiver on loopback. Then the key and the webhook
secret are searched for in everything the stack wrote: Redis, every log, every /metrics."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from standardwebhooks import Webhook

from tests.photos import encode, landscape
from tests.procs import Proc, RedisServer, free_port, ghibli, start_space, wait_until
from tests.redis_scan import redis_contents
from tests.web_stack import start_consumer, start_ingest
from tests.webhook_kit import Receiver, make_key, wait_for, webhook_env

pytestmark = pytest.mark.system  # starts processes beyond redis-server (docs/tests.md)


def test_a_keyed_app_gets_signed_webhooks_and_no_secret_is_stored_or_shown(
    redis_server: RedisServer, procs: list[Proc], tmp_path: Path
) -> None:
    shop = make_key("shop", rate=3)
    stranger = make_key("stranger")  # never configured
    space, space_url = start_space(tmp_path, engine="fast", extra=["--delay", "0.5"])
    procs.append(space)
    metrics_port = free_port()
    env = webhook_env(
        redis_server, shop, GHIBLI_SPACE=space_url, GHIBLI_WEBHOOK_METRICS_PORT=str(metrics_port)
    )
    ingest = start_ingest(env, tmp_path, "keys")
    procs.append(ingest.proc)
    procs.append(start_consumer(env, tmp_path, "one"))
    dispatcher = ghibli(["webhooks"], env, tmp_path / "webhooks.log").start()
    procs.append(dispatcher)
    photo = encode(landscape(320, 240))

    def submit(headers: dict[str, str], seed: int, **data: str) -> httpx.Response:
        return httpx.post(
            f"{ingest.url}/v1/jobs",
            headers=headers,
            files={"image": ("p.jpg", photo, "image/jpeg")},
            data={"seed": str(seed), "width": "256", "height": "256", **data},
            timeout=30,
        )

    with Receiver() as receiver:
        assert submit({}, 1).status_code == 401
        assert submit(stranger.auth, 1).json()["code"] == "invalid_api_key"
        hooked = submit(shop.auth, 1, webhook_url=receiver.url(), webhook_events="started,progress,completed")
        assert hooked.status_code == 202, hooked.text
        job_id = hooked.json()["id"]
        assert submit(shop.auth, 2).status_code == 202
        assert submit(shop.auth, 3).status_code == 202
        over = submit(shop.auth, 4)
        assert over.status_code == 429
        assert over.json()["code"] == "rate_limited"

        def completed() -> bool:
            return any(d.json["type"] == "job.completed" for d in receiver.received())

        wait_for(completed, f"the completed webhook\n{dispatcher.log()[-2000:]}", timeout_s=120)
        got = receiver.received()
        view = httpx.get(f"{ingest.url}/v1/jobs/{job_id}", timeout=10).json()

    kinds = [d.json["type"] for d in got]
    assert kinds[0] == "job.started"
    assert kinds[-1] == "job.completed"
    assert set(kinds[1:-1]) <= {"job.progress"}
    assert len({d.id for d in got}) == len(got)  # every event its own webhook-id, each sent once
    versions = [d.json["version"] for d in got]
    assert versions == sorted(versions)
    assert got[-1].json["status"] == "succeeded"
    assert got[-1].json["result"]["url"] == f"/v1/jobs/{job_id}/result"
    verifier = Webhook(shop.whsec)
    for delivery in got:
        assert verifier.verify(delivery.body, delivery.headers)["id"] == job_id
    assert view["status"] == "succeeded"
    assert view["webhook"]["delivered"] == len(got)
    assert view["webhook"]["pending"] == 0

    # --- the key, the stranger's key and the signing secret are nowhere -------------------------
    secrets = [shop.plain, stranger.plain, shop.whsec, shop.whsec.removeprefix("whsec_")]
    raw_secrets = [s.encode() for s in secrets] + [shop.entry.webhook_secrets[0].key]
    stored = redis_contents(redis_server.url)
    assert any(key.endswith(f"job:{job_id}") for key, _value in stored)  # the scan sees the jobs
    for key, value in stored:
        for raw_secret in raw_secrets:
            assert raw_secret not in value, f"a secret is stored in Redis under {key}"
    ingest_metrics = httpx.get(f"{ingest.url}/metrics", timeout=10).text
    dispatcher_metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
    assert 'ghibli_jobs_submitted_by_key_total{key="shop"} 3.0' in ingest_metrics
    assert 'ghibli_webhook_attempts_total{key="shop",outcome="delivered"}' in dispatcher_metrics
    for proc in procs[1:]:  # ingest, consumer, dispatcher: stop them so their logs are complete
        proc.stop()
    logs = {proc.log_path.name: proc.log() for proc in procs[1:]}
    ingest_lines = [
        json.loads(line) for line in logs[ingest.proc.log_path.name].splitlines() if line[:1] == "{"
    ]
    assert any(e.get("key_id") == "shop" and e.get("job_id") == job_id for e in ingest_lines)
    assert any(e.get("key_id") == "shop" for e in ingest_lines if e.get("event") == "request")
    for text in (*logs.values(), ingest_metrics, dispatcher_metrics):
        for secret in secrets:
            assert secret not in text
    wait_until(lambda: not dispatcher.alive(), "dispatcher stopped", 20)
    assert dispatcher.proc is not None
    assert dispatcher.proc.returncode == 0, logs[dispatcher.log_path.name][-2000:]
