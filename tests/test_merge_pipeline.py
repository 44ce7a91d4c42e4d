"""Merged identical jobs with real consumers and the offline Space, counted in the Space's call log:
two identical submissions make one call and two results; the leader's owner cancelling does not
stop the call its followers share; a different seed is another call."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.ingest_support import photo_bytes
from tests.procs import Proc, RedisServer, start_space
from tests.web_stack import Ingest, stack_env, start_consumer, start_ingest

pytestmark = pytest.mark.system  # starts processes beyond redis-server (docs/tests.md)

SPACE_DELAY_S = 3.0
TERMINAL = ("succeeded", "failed", "cancelled")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("merge")


@pytest.fixture(scope="module")
def call_log(workdir: Path) -> Path:
    return workdir / "calls.jsonl"


@pytest.fixture(scope="module")
def stack(workdir: Path, call_log: Path) -> Iterator[Ingest]:
    redis = RedisServer(workdir / "redis").start()
    space, url = start_space(
        workdir,
        engine="fast",
        extra=["--delay", str(SPACE_DELAY_S), "--concurrency", "4", "--call-log", str(call_log)],
    )
    env = stack_env(redis, url, "{ghibli}:", GHIBLI_CONCURRENCY="4", GHIBLI_TOKEN_MAX_IN_FLIGHT="4")
    ingest: Ingest | None = None
    consumer: Proc | None = None
    try:
        ingest = start_ingest(env, workdir, "merge")
        consumer = start_consumer(env, workdir, "merge")
        yield ingest
    finally:
        for proc in (consumer, ingest.proc if ingest else None, space):
            if proc is not None:
                proc.stop()
        redis.stop()


@pytest.fixture
def http(stack: Ingest) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        yield client


def submit(http: httpx.Client, seed: int) -> str:
    response = http.post(
        "/v1/jobs",
        files={"image": ("p.jpg", photo_bytes(seed=7), "image/jpeg")},
        data={"seed": str(seed), "width": "256", "height": "256"},
    )
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    return job_id


def wait(http: httpx.Client, job_id: str, until: Any, timeout_s: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        job: dict[str, Any] = http.get(f"/v1/jobs/{job_id}").json()
        if until(job) or time.monotonic() > deadline:
            return job
        time.sleep(0.1)


def finished(http: httpx.Client, job_id: str) -> dict[str, Any]:
    job = wait(http, job_id, lambda j: j["status"] in TERMINAL)
    assert job["status"] in TERMINAL, job
    return job


def calls(call_log: Path, seed: int) -> list[dict[str, Any]]:
    if not call_log.exists():
        return []
    records = [json.loads(line) for line in call_log.read_text().splitlines() if line.strip()]
    return [r for r in records if r["seed"] == seed]


def test_two_identical_submissions_make_one_call_and_two_results(
    http: httpx.Client, call_log: Path, stack: Ingest
) -> None:
    first, second = submit(http, 101), submit(http, 101)
    assert first != second
    for job_id in (first, second):
        assert finished(http, job_id)["status"] == "succeeded"
    pictures = [http.get(f"/v1/jobs/{job_id}/result") for job_id in (first, second)]
    assert [p.status_code for p in pictures] == [200, 200]
    assert pictures[0].content == pictures[1].content
    assert len(calls(call_log, 101)) == 1, stack.proc.log()[-2000:]
    metrics = http.get("/metrics").text
    assert 'ghibli_jobs_deduplicated_total{kind="in_flight"} 1.0' in metrics


def test_a_different_seed_is_another_call(http: httpx.Client, call_log: Path) -> None:
    jobs = [submit(http, 201), submit(http, 202)]
    assert [finished(http, job_id)["status"] for job_id in jobs] == ["succeeded", "succeeded"]
    assert len(calls(call_log, 201)) == 1
    assert len(calls(call_log, 202)) == 1


def test_the_leader_cancelled_while_running_hands_its_call_to_its_follower(
    http: httpx.Client, call_log: Path
) -> None:
    leader, follower = submit(http, 301), submit(http, 301)
    running = wait(http, follower, lambda j: j["status"] == "running" and j["progress"] > 0)
    assert running["status"] == "running", running  # the Space is painting
    assert http.delete(f"/v1/jobs/{leader}").status_code == 204
    assert http.get(f"/v1/jobs/{leader}").status_code == 404
    job = finished(http, follower)
    assert job["status"] == "succeeded", job
    assert http.get(f"/v1/jobs/{follower}/result").status_code == 200
    made = calls(call_log, 301)
    assert [c["outcome"] for c in made] == ["ok"]  # one call, not stopped, not repeated


def test_a_follower_cancelled_leaves_the_leader_running(http: httpx.Client, call_log: Path) -> None:
    leader, follower = submit(http, 401), submit(http, 401)
    wait(http, leader, lambda j: j["status"] == "running")
    assert http.delete(f"/v1/jobs/{follower}").status_code == 204
    assert finished(http, leader)["status"] == "succeeded"
    assert [c["outcome"] for c in calls(call_log, 401)] == ["ok"]
