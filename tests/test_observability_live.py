"""The whole pipeline under a real Prometheus: the dashboard shows data and StuckJobs fires.

Real redis-server, the offline Space (fast engine, 2 s per call, the first two calls refused with
the real ZeroGPU quota error), `ghibli ingest` with two workers, three `ghibli consume` processes
with two fake HF tokens, `ghibli metrics-exporter`, redis_exporter and Prometheus scraping all of
them every second with the rules of ops/prometheus (StuckJobs and NoConsumers tuned to seconds).

1. Jobs run; quota errors cool both tokens and park jobs as waiting_for_quota; one consumer is
   SIGKILLed while it holds a job, which another consumer takes over once its heartbeat has expired
   (5 s, well before the 12-s lease) and, with GHIBLI_MAX_DELIVERIES=1, dead-letters. A duplicate
   photo is a cache hit, a text file is rejected, one job is cancelled. Every endpoint's /metrics
   passes `promtool check metrics`.
2. One consumer is stopped (SIGTERM); the last one is SIGSTOPped while it holds a job: StuckJobs
   and NoConsumers fire.
3. Every query of the Grafana dashboard returns at least one series over the run, and the
   signals the run produced are there with the right values.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from redis import Redis

from jobs.keys import Keys
from tests.observability_kit import (
    Prometheus,
    RedisExporter,
    Tuning,
    dashboard_queries,
    scrape_config,
    tuned_rules,
)
from tests.photos import encode, landscape
from tests.procs import Proc, RedisServer, base_env, free_port, ghibli, wait_until
from tests.test_metrics_exposition import promtool_check_metrics

# System tier: starts processes beyond redis-server (docs/tests.md).
pytestmark = [pytest.mark.system, pytest.mark.timeout(420)]

KEYS = Keys()
LEASE_S = 12  # well above the heartbeat timeout (5 s): the killed consumer's job moves on by heartbeat
TOKENS = "hf_" + "A" * 34 + ",hf_" + "B" * 34
TERMINAL = {"succeeded", "failed", "cancelled"}
# 2 s per call; the first two calls refused with the real quota error, "Try again in 0:00:06".
SPACE_OPTIONS = ["--engine", "fast", "--delay", "2", "--fault-kind", "quota", "--fault-first", "2"]
SPACE_OPTIONS += ["--fault-retry-after", "6"]
TUNINGS = [
    # A consumer renews every lease/3; nobody reclaims from a frozen last consumer.
    Tuning("StuckJobs", signal="idle", for_="2s", replace=(("> 120", f"> {2 * LEASE_S}"),)),
    Tuning("NoConsumers", for_="2s"),
]


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[dict[str, object]]:
    started: list[object] = []
    try:
        yield {"tmp": tmp_path, "started": started}
    finally:
        for thing in reversed(started):
            thing.stop()  # type: ignore[attr-defined]


def consumer(name: str, env: dict[str, str], tmp: Path) -> tuple[Proc, int]:
    port = free_port()
    proc = ghibli(
        ["consume"],
        {**env, "GHIBLI_CONSUMER_NAME": name, "GHIBLI_METRICS_PORT": str(port)},
        tmp / f"{name}.log",
    ).start()
    return proc, port


def pending_of(redis: Redis, name: str) -> int:
    summary = redis.xpending(KEYS.stream, KEYS.group)
    return sum(int(c["pending"]) for c in summary["consumers"] if c["name"] == name)


def submit(client: httpx.Client, seed: int, photo: bytes) -> str:
    response = client.post(
        "/v1/jobs",
        files={"image": ("photo.jpg", photo, "image/jpeg")},
        data={"width": "256", "height": "256", "seed": str(seed)},
    )
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def wait_terminal(client: httpx.Client, ids: list[str], timeout_s: float, logs: str) -> dict[str, dict]:
    deadline = time.monotonic() + timeout_s
    jobs: dict[str, dict] = {}
    while time.monotonic() < deadline:
        jobs = {i: client.get(f"/v1/jobs/{i}").json() for i in ids}
        if all(j["status"] in TERMINAL for j in jobs.values()):
            return jobs
        time.sleep(0.5)
    raise AssertionError(f"jobs not finished: {[(i, j['status']) for i, j in jobs.items()]}\n{logs}")


def test_dashboard_has_data_and_stuck_jobs_fire(stack: dict[str, object]) -> None:
    tmp: Path = stack["tmp"]  # type: ignore[assignment]
    started: list[object] = stack["started"]  # type: ignore[assignment]
    t0 = time.time()

    redis_server = RedisServer(tmp / "redis").start()
    started.append(redis_server)
    # Start everything that does not need the Space while it loads (Gradio takes a while).
    space_port = free_port()
    space_url = f"http://127.0.0.1:{space_port}/"
    space = ghibli(
        ["space", "--port", str(space_port), *SPACE_OPTIONS],
        base_env(),
        tmp / "space.log",
    ).start()
    started.append(space)
    env = base_env(
        REDIS_URL=redis_server.url,
        GHIBLI_SPACE=space_url,
        GHIBLI_CONCURRENCY="2",
        GHIBLI_LEASE_SECONDS=str(LEASE_S),
        GHIBLI_MAX_DELIVERIES="1",
        GHIBLI_SHUTDOWN_GRACE_SECONDS="5",
        HUGGING_FACE_TOKENS=TOKENS,
    )
    ingest_port = free_port()
    ingest = ghibli(
        ["ingest"], {**env, "GHIBLI_PORT": str(ingest_port), "GHIBLI_INGEST_WORKERS": "2"}, tmp / "ingest.log"
    ).start()
    started.append(ingest)
    exporter_port = free_port()
    exporter = ghibli(
        ["metrics-exporter"], {**env, "GHIBLI_EXPORTER_PORT": str(exporter_port)}, tmp / "exporter.log"
    ).start()
    started.append(exporter)
    redis_exporter = RedisExporter(redis_server.url, tmp / "redis_exporter.log").start()
    started.append(redis_exporter)
    wait_until(
        lambda: httpx.get(space_url + "config", timeout=2).status_code == 200, "Space", 240, space.proc
    )
    consumers = {name: consumer(name, env, tmp) for name in ("c-a", "c-b", "c-c")}
    started.extend(proc for proc, _ in consumers.values())

    base = f"http://127.0.0.1:{ingest_port}"
    wait_until(lambda: httpx.get(base + "/readyz", timeout=2).status_code == 200, "ingest", 180, ingest.proc)
    for name, (proc, port) in consumers.items():
        url = f"http://127.0.0.1:{port}/metrics"
        wait_until(lambda url=url: httpx.get(url, timeout=2).status_code == 200, name, 180, proc.proc)
    rules = tuned_rules(tmp / "rules", TUNINGS)
    prometheus = Prometheus(
        tmp / "prometheus",
        scrape_config(
            {
                "ghibli-ingest": [f"127.0.0.1:{ingest_port}"],
                "ghibli-consumers": [f"127.0.0.1:{port}" for _, port in consumers.values()],
                "ghibli-queue": [f"127.0.0.1:{exporter_port}"],
                "redis": [redis_exporter.target],
            },
            rules,
        ),
    ).start()
    started.append(prometheus)
    wait_until(lambda: prometheus.targets_up("ghibli-consumers") == 3, "scrapes", 30)

    def logs() -> str:
        return "\n".join(f"--- {n}\n{p.log()[-3000:]}" for n, (p, _) in consumers.items())

    redis = Redis.from_url(redis_server.url, decode_responses=True)
    photo = encode(landscape(320, 240))
    with httpx.Client(base_url=base, timeout=30) as client:
        # --- 1. jobs, quota errors, a consumer SIGKILLed mid-job -------------------------------
        ids = [submit(client, seed, photo) for seed in range(1, 11)]
        victim, _ = consumers["c-a"]

        def quota_scraped() -> bool:
            # The quota counters must not hang on whether the victim met the refusals and died
            # before a scrape: wait until Prometheus holds them, then kill.
            exprs = (
                'sum(ghibli_space_errors_total{error_class="quota"})',
                "sum(ghibli_quota_cooldowns_total)",
            )
            return all(r and float(r[0]["value"][1]) >= 1 for r in map(prometheus.query, exprs))

        wait_until(quota_scraped, "the quota refusals scraped", 60)
        wait_until(lambda: pending_of(redis, "c-a") > 0, "c-a holding a job", 60)
        victim.signal(signal.SIGKILL)
        victim.wait(10)
        # Queue wait is observed at a job's first claim: what the victim observed died with it
        # unless a scrape came first, so those jobs are left out of that count's check below.
        first_claimed_by_victim = {
            line["job_id"]
            for line in map(json.loads, (t for t in victim.log().splitlines() if t.startswith("{")))
            if line.get("event") == "job started" and line.get("attempt") == 1
        }
        jobs = wait_terminal(client, ids, 180, logs())
        lost = [j for j in jobs.values() if j["status"] == "failed"]
        assert lost, "the killed consumer's job should be dead-lettered (GHIBLI_MAX_DELIVERIES=1)"
        assert all(j["error"]["code"] == "delivery_limit" for j in lost), lost
        succeeded = [j for j in jobs.values() if j["status"] == "succeeded"]
        assert len(succeeded) + len(lost) == len(ids)

        # The same photo with the same parameters again: the cached result, no Space call.
        duplicate = submit(client, succeeded[0]["params"]["seed"], photo)
        assert client.get(f"/v1/jobs/{duplicate}").json()["status"] == "succeeded"
        refused = client.post("/v1/jobs", files={"image": ("notes.txt", b"not a photo", "text/plain")})
        assert refused.status_code in (415, 422), refused.text
        cancelled = submit(client, 77, photo)
        assert client.delete(f"/v1/jobs/{cancelled}").status_code in (200, 202, 204)
        accepted = len(ids) + 2

        # Each live endpoint, scraped directly, is valid exposition and shows no token.
        for url in [
            f"{base}/metrics",
            f"http://127.0.0.1:{exporter_port}/metrics",
            *(f"http://127.0.0.1:{port}/metrics" for name, (_, port) in consumers.items() if name != "c-a"),
        ]:
            text = httpx.get(url, timeout=10).text
            promtool_check_metrics(text)
            assert not any(token in text for token in TOKENS.split(",")), url

        # --- 2. the last consumer freezes while it holds a job -----------------------------------
        stopped, _ = consumers["c-c"]
        stopped.signal(signal.SIGTERM)
        assert stopped.wait(30) == 0, stopped.log()[-3000:]
        frozen, _ = consumers["c-b"]
        stuck = submit(client, 99, photo)
        accepted += 1
        # Running, not merely read: frozen between XREADGROUP and its claim, the job would stay queued.
        wait_until(
            lambda: pending_of(redis, "c-b") > 0 and redis.hget(KEYS.job(stuck), "status") == "running",
            "c-b running the job",
            60,
        )
        frozen.signal(signal.SIGSTOP)
        stuck_alert = prometheus.wait_for_alert("StuckJobs", 60, signal="idle")
        prometheus.wait_for_alert("NoConsumers", 60)
        assert client.get(f"/v1/jobs/{stuck}").json()["status"] == "running"

    # --- 3. the dashboard -----------------------------------------------------------------------
    end = time.time()
    empty = []
    for title, expr in dashboard_queries("5s"):
        if not prometheus.query_range(expr, t0, end):
            empty.append(f"{title}: {expr}")
    assert not empty, "dashboard queries without any series:\n" + "\n".join(empty)

    window = f"{int(end - t0) + 60}s"

    def peak(expr: str) -> float:
        return prometheus.value(f"max_over_time(({expr})[{window}:1s])")

    # Ingest's two workers, one target: every accepted submission counted once.
    assert prometheus.value("sum(ghibli_jobs_submitted_total)") == accepted
    assert prometheus.value('sum(ghibli_jobs_deduplicated_total{kind="cache"})') == 1
    assert prometheus.value("sum(ghibli_jobs_cancelled_total)") == 1
    assert prometheus.value(f'sum(ghibli_jobs_rejected_total{{reason="{refused.json()["code"]}"}})') == 1

    # Consumers' counters, including what the killed one reported before it died.
    def total(metric: str) -> float:
        return prometheus.value(f"sum(max_over_time({metric}[{window}]))")

    assert total('ghibli_jobs_reclaimed_total{reason="heartbeat_expired"}') >= 1
    assert total('ghibli_jobs_dead_lettered_total{reason="max_deliveries"}') == len(lost)
    assert total('ghibli_space_errors_total{error_class="quota"}') >= 1
    assert total("ghibli_quota_cooldowns_total") >= 1
    assert total('ghibli_jobs_finished_total{outcome="succeeded"}') >= len(succeeded) - 2
    assert total("ghibli_job_queue_wait_seconds_count") >= len(
        [job for job in succeeded if job["id"] not in first_claimed_by_victim]
    )
    assert total("ghibli_space_call_seconds_count") >= len(succeeded)
    # The queue as the exporter saw it.
    assert peak("max(ghibli_dead_letters)") == len(lost)
    assert peak('max(ghibli_tokens{state="cooling"})') >= 1
    assert peak("max(ghibli_consumers_live)") == 3
    assert prometheus.value("max(ghibli_consumers_live)") == 0
    assert prometheus.value("max(ghibli_group_pending)") >= 1
    assert prometheus.value("max(ghibli_pending_max_idle_seconds)") > 2 * LEASE_S
    assert float(stuck_alert["value"]) > 2 * LEASE_S
    assert prometheus.value("max(redis_memory_used_bytes)") > 0
    redis.close()

    # The processes' logs (ingest's two workers too): one JSON object per line, never a token.
    for proc in [ingest, exporter, *(p for p, _ in consumers.values())]:
        text = proc.log()
        assert not any(token in text for token in TOKENS.split(",")), proc.log_path
        lines = [json.loads(line) for line in text.splitlines() if line.strip()]
        started_jobs = [line for line in lines if line["event"] == "job started"]
        assert all({"job_id", "attempt", "consumer"} <= line.keys() for line in started_jobs)
    assert any(line.startswith("{") and '"route": "/v1/jobs"' in line for line in ingest.log().splitlines())
