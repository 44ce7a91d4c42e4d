"""The token pool through the whole pipeline: real `ghibli consume` processes, real Redis, the real
ingest app and the ZeroGPU-like test Space, which refuses calls per token with the real quota texts.

- two tokens, one exhausted: every job succeeds on the other, the exhausted one shows `cooling`
  until the time its refusal named, and no attempt is counted for the refusal;
- every token exhausted: jobs show `waiting_for_quota` with a resume time, then succeed;
- four consumers share two tokens at one call per token: the Space never sees two calls of one
  token at the same time;
- a job whose "result" is the input photo fails, and its result URL never returns the photo;
- a Space without the endpoint: the consumer is not ready, its breaker pauses claiming, the job
  waits without failures, and the admin view and /metrics show it;
- afterwards no raw token is anywhere in Redis, the logs or /metrics.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from litestar.testing import AsyncTestClient

from consumers.tokens import alias_of
from ingest.app import create_app
from jobs.settings import load_settings
from tests.apps.quota_space import token_label
from tests.apps.runner import QuotaSpace, new_token
from tests.photos import encode, landscape
from tests.procs import Proc, RedisServer, base_env, free_port, ghibli
from tests.redis_scan import redis_contents

# System tier: starts processes beyond redis-server (docs/tests.md).
pytestmark = [pytest.mark.system, pytest.mark.anyio]

ADMIN = "admin-secret-for-tests-0123456789"
TERMINAL = ("succeeded", "failed", "cancelled")


def _env(redis_server: RedisServer, space: QuotaSpace, tokens: list[str], **extra: str) -> dict[str, str]:
    extra.setdefault("GHIBLI_SPACE", space.url)
    return base_env(
        REDIS_URL=redis_server.url,
        HUGGING_FACE_TOKENS=",".join(tokens),
        GHIBLI_TOKEN_MAX_IN_FLIGHT="1",
        GHIBLI_RESULT_CACHE="false",
        GHIBLI_RATE_LIMIT_SUBMITS="0",
        GHIBLI_RATE_LIMIT_REQUESTS="0",
        GHIBLI_MAX_ATTEMPTS="3",
        GHIBLI_RETRY_BASE_SECONDS="0.5",
        ADMIN_SECRET=ADMIN,
        **extra,
    )


def _consumers(procs: list[Proc], env: dict[str, str], tmp_path: Path, count: int) -> list[int]:
    """Start `count` consumer processes, each with its own /metrics port; returns the ports."""
    ports = []
    for i in range(count):
        port = free_port()
        env_i = {**env, "GHIBLI_CONSUMER_NAME": f"c{i}", "GHIBLI_METRICS_PORT": str(port)}
        procs.append(ghibli(["consume"], env_i, tmp_path / f"consumer-{i}.log").start())
        ports.append(port)
    return ports


@asynccontextmanager
async def ingest(env: dict[str, str]) -> AsyncIterator[AsyncTestClient[Any]]:
    async with AsyncTestClient(create_app(load_settings(environ=env))) as client:
        yield client


async def submit(client: AsyncTestClient[Any], seed: int) -> str:
    response = await client.post(
        "/v1/jobs",
        files={"image": ("photo.jpg", encode(landscape(320, 240, seed=seed)), "image/jpeg")},
        data={"width": "320", "height": "256", "seed": str(seed)},
    )
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    return job_id


async def wait_all(
    client: AsyncTestClient[Any], ids: list[str], timeout_s: float, seen: dict[str, set[str]] | None = None
) -> dict[str, dict[str, Any]]:
    """Poll until every job is terminal; `seen` collects each job's statuses along the way."""
    jobs: dict[str, dict[str, Any]] = {}
    with anyio.fail_after(timeout_s):
        while True:
            for job_id in ids:
                if jobs.get(job_id, {}).get("status") in TERMINAL:
                    continue
                job = (await client.get(f"/v1/jobs/{job_id}")).json()
                jobs[job_id] = job
                if seen is not None:
                    seen.setdefault(job["status"], set()).add(job_id)
                    if job["status"] == "waiting_for_quota":
                        assert job["resume_at"] is not None, job
                        seen.setdefault("resume_at", set()).add(job["resume_at"])
            if all(j["status"] in TERMINAL for j in jobs.values()):
                return jobs
            await anyio.sleep(0.4)


async def admin(client: AsyncTestClient[Any], path: str) -> Any:
    response = await client.get(path, headers={"Authorization": f"Bearer {ADMIN}"})
    assert response.status_code == 200, response.text
    return response.json()


async def admin_jobs(client: AsyncTestClient[Any]) -> dict[str, dict[str, Any]]:
    page = await admin(client, "/v1/admin/jobs?limit=500")
    assert page["next_cursor"] is None
    return {j["id"]: j for j in page["items"]}


def logs(procs: list[Proc]) -> str:
    return "\n".join(p.log() for p in procs)


def assert_nowhere(secrets: list[str], redis_url: str, texts: list[str]) -> None:
    """No secret in any Redis key or value (every type), nor in the given texts."""
    dump = [value for _key, value in redis_contents(redis_url)]
    blob = b"\n".join(dump)
    assert len(dump) > 10  # the scan saw the pipeline's keys
    for secret in secrets:
        assert secret.encode() not in blob, "a token is stored in Redis"
        for text in texts:
            assert secret not in text, "a token is in a log or in /metrics"


def overlaps(space: QuotaSpace, *labels: str) -> int:
    spans = sorted((c["start"], c["end"]) for c in space.calls() if c["token"] in labels)
    return sum(1 for (_, end), (start, _) in itertools.pairwise(spans) if start < end)


async def test_one_exhausted_token_every_job_succeeds_on_the_other(
    redis_server: RedisServer, quota_space: QuotaSpace, procs: list[Proc], tmp_path: Path
) -> None:
    exhausted, fresh = new_token(), new_token()
    quota_space.set_token(exhausted, allowed=0, quota="free", retry="0:05:00")
    quota_space.set_token(fresh, delay_s=0.3)
    env = _env(redis_server, quota_space, [exhausted, fresh])
    _consumers(procs, env, tmp_path, 2)
    async with ingest(env) as client:
        refused_before = time.time()
        ids = [await submit(client, seed) for seed in range(6)]
        jobs = await wait_all(client, ids, 240)
        assert {j["status"] for j in jobs.values()} == {"succeeded"}, (jobs, logs(procs)[-3000:])
        ran = await admin_jobs(client)
        assert {ran[i]["token_alias"] for i in ids} == {alias_of(fresh)}
        assert {(ran[i]["attempt"], ran[i]["failures"]) for i in ids} == {(1, 0)}  # the refusal cost nothing
        pool = await admin(client, "/v1/admin/tokens")
    tokens = {t["alias"]: t for t in pool["tokens"]}
    cooling = tokens[alias_of(exhausted)]
    assert cooling["state"] == "cooling"
    until = cooling["cooldown_until"]
    assert until is not None
    until_s = datetime.fromisoformat(until).timestamp()
    assert refused_before + 299 <= until_s <= time.time() + 301
    assert cooling["quota_errors"] == 1
    assert cooling["last_error"]["code"] == "quota_exceeded"
    assert tokens[alias_of(fresh)]["successes"] == 6
    assert pool["summary"]["cooling"] == 1
    refusals = [c for c in quota_space.calls() if c["token"] == token_label(exhausted)]
    assert [c["outcome"] for c in refusals] == ["quota"]
    assert_nowhere([exhausted, fresh], redis_server.url, [logs(procs)])


async def test_every_token_exhausted_jobs_wait_for_quota_then_succeed(
    redis_server: RedisServer, quota_space: QuotaSpace, procs: list[Proc], tmp_path: Path
) -> None:
    first, second = new_token(), new_token()
    for token in (first, second):  # one call each per 20 s: the third and fourth jobs must wait
        quota_space.set_token(token, allowed=1, window_s=20, quota="free", delay_s=0.2)
    env = _env(redis_server, quota_space, [first, second], GHIBLI_CONCURRENCY="1")
    _consumers(procs, env, tmp_path, 1)
    async with ingest(env) as client:
        ids = [await submit(client, seed) for seed in range(4)]
        seen: dict[str, set[str]] = {}
        jobs = await wait_all(client, ids, 240, seen)
        assert {j["status"] for j in jobs.values()} == {"succeeded"}, (jobs, logs(procs)[-3000:])
        assert seen.get("waiting_for_quota"), seen
        assert seen.get("resume_at"), seen
        ran = await admin_jobs(client)
        assert {ran[i]["failures"] for i in ids} == {0}  # waiting for quota is not a failure
    refusals = [c for c in quota_space.calls() if c["token"] in (token_label(first), token_label(second))]
    assert sum(1 for c in refusals if c["outcome"] == "ok") == 4


async def test_four_consumers_never_run_two_calls_on_one_token(
    redis_server: RedisServer, quota_space: QuotaSpace, procs: list[Proc], tmp_path: Path
) -> None:
    first, second = new_token(), new_token()
    malformed = "hf_" + "s3cr3t-but-malformed-" * 2  # rejected at start-up, reported by alias
    for token in (first, second):
        quota_space.set_token(token, delay_s=2.0)
    env = _env(redis_server, quota_space, [first, second, malformed], GHIBLI_CONCURRENCY="2")
    ports = _consumers(procs, env, tmp_path, 4)
    async with ingest(env) as client:
        ids = [await submit(client, seed) for seed in range(10)]
        jobs = await wait_all(client, ids, 300)
        assert {j["status"] for j in jobs.values()} == {"succeeded"}, (jobs, logs(procs)[-3000:])
        pool = await admin(client, "/v1/admin/tokens")
        ingest_metrics = (await client.get("/metrics")).text
    assert overlaps(quota_space, token_label(first)) == 0
    assert overlaps(quota_space, token_label(second)) == 0
    # Calls did run side by side (on different tokens): an overlap on one token was possible.
    assert overlaps(quota_space, token_label(first), token_label(second)) > 0
    tokens = {t["alias"]: t for t in pool["tokens"]}
    assert tokens[alias_of(first)]["successes"] + tokens[alias_of(second)]["successes"] == 10
    assert tokens[alias_of(malformed)]["state"] == "disabled"
    assert alias_of(malformed) in logs(procs)  # reported at start-up, by alias
    async with httpx.AsyncClient(timeout=10) as http:
        metrics = [(await http.get(f"http://127.0.0.1:{port}/metrics")).text for port in ports]
    assert any("ghibli_space_call_seconds" in text for text in metrics)
    assert_nowhere([first, second, malformed], redis_server.url, [logs(procs), ingest_metrics, *metrics])


async def test_a_job_whose_result_is_the_input_fails_and_never_returns_it(
    redis_server: RedisServer, quota_space: QuotaSpace, procs: list[Proc], tmp_path: Path
) -> None:
    echo = new_token()
    quota_space.set_token(echo, mode="echo_input")
    env = _env(redis_server, quota_space, [echo])
    _consumers(procs, env, tmp_path, 1)
    photo = encode(landscape(320, 256, seed=5), "PNG")
    async with ingest(env) as client:
        response = await client.post(
            "/v1/jobs",
            files={"image": ("photo.png", photo, "image/png")},
            data={"width": "320", "height": "256", "seed": "5"},
        )
        assert response.status_code == 202, response.text
        job_id = response.json()["id"]
        job = (await wait_all(client, [job_id], 240))[job_id]
        assert job["status"] == "failed", (job, logs(procs)[-3000:])
        assert job["error"]["code"] == "result_is_input"
        assert job["result"] is None
        result = await client.get(f"/v1/jobs/{job_id}/result")
    assert result.status_code == 409
    assert result.headers["content-type"].startswith("application/problem+json")
    assert photo not in result.content


async def test_a_space_without_the_endpoint_pauses_claiming_without_burning_attempts(
    redis_server: RedisServer, quota_space: QuotaSpace, procs: list[Proc], tmp_path: Path
) -> None:
    env = _env(
        redis_server,
        quota_space,
        [],
        GHIBLI_SPACE=quota_space.url + "other/",
        GHIBLI_BREAKER_OPEN_SECONDS="2",
    )
    (port,) = _consumers(procs, env, tmp_path, 1)
    async with ingest(env) as client:
        job_id = await submit(client, 1)
        for _ in range(240):  # the consumer checks the Space at start-up
            if "space not ready" in logs(procs):
                break
            await anyio.sleep(0.5)
        await anyio.sleep(10)  # several pauses and probes (2 s, 4 s, ...)
        job = (await client.get(f"/v1/jobs/{job_id}")).json()
        assert job["status"] in ("queued", "retrying"), job  # waiting, not failed
        ran = await admin_jobs(client)
        assert ran[job_id]["failures"] == 0
        pool = await admin(client, "/v1/admin/tokens")
    assert pool["space"]["ready"] is False
    assert "endpoint_missing" in pool["space"]["reason"]
    assert "/single_condition_generate_image" in logs(procs)
    async with httpx.AsyncClient(timeout=10) as http:
        metrics = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    assert "\nghibli_space_circuit_open " in metrics
    assert 'ghibli_space_errors_total{code="endpoint_missing",error_class="broken"}' in metrics
    # Claiming paused between probes (after 2 s, 4 s, 8 s): a handful of calls, not one per retry.
    started = re.search(r"^ghibli_jobs_started_total (\S+)$", metrics, re.MULTILINE)
    assert started is not None
    assert 1 <= float(started.group(1)) <= 5
