"""How processes expose metrics: ingest's workers summed (multiprocess mode), the exporter alone
serving the queue's gauges, each endpoint's output accepted by `promtool check metrics`."""

from __future__ import annotations

import shutil
import signal
import subprocess
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from metrics.exposition import MULTIPROC_ENV, serve_process_metrics
from tests.photos import encode, landscape
from tests.procs import Proc, RedisServer, base_env, free_port, ghibli, wait_until

pytestmark = pytest.mark.system  # starts processes beyond redis-server (docs/tests.md)


def promtool_check_metrics(text: str) -> None:
    """`promtool check metrics` reads an exposition on stdin and lints names, types and help."""
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool is not installed (scripts/test installs Debian's prometheus package)")
    result = subprocess.run(
        [binary, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert not (result.stdout + result.stderr).strip(), result.stdout + result.stderr


def samples(text: str) -> dict[str, float]:
    """name{labels} -> value of every sample in an exposition."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return out


def test_process_endpoint_serves_the_catalogue() -> None:
    assert serve_process_metrics("127.0.0.1", 0) is None  # port 0 in settings: no endpoint
    port = free_port()
    server = serve_process_metrics("127.0.0.1", port)
    assert server is not None
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    finally:
        server.close()
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    values = samples(response.text)
    assert values['ghibli_jobs_finished_total{outcome="succeeded"}'] == 0
    assert "ghibli_jobs_in_progress" in values
    # Queue-wide gauges are the exporter's alone: a replica must not serve them.
    assert not any(name.startswith(("ghibli_group_", "ghibli_pending_", "ghibli_stream_")) for name in values)
    promtool_check_metrics(response.text)


def test_ingest_workers_are_summed_whichever_worker_answers(
    redis_server: RedisServer, procs: list[Proc], tmp_path: Path
) -> None:
    """Two uvicorn workers behind one socket: every scrape shows the submissions of both."""
    port = free_port()
    env = base_env(REDIS_URL=redis_server.url, GHIBLI_PORT=str(port), GHIBLI_INGEST_WORKERS="2")
    env.pop(MULTIPROC_ENV, None)
    scratch = tmp_path / "scratch"  # the ingest's TMPDIR, so only its own directory shows up there
    scratch.mkdir()
    env["TMPDIR"] = str(scratch)
    ingest = ghibli(["ingest"], env, tmp_path / "ingest.log").start()
    procs.append(ingest)
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: httpx.get(base + "/readyz", timeout=2).status_code == 200, "ingest", 90, ingest.proc)
    photo = encode(landscape(320, 240))
    with httpx.Client(base_url=base, timeout=30) as client:
        for seed in range(8):
            response = client.post(
                "/v1/jobs",
                files={"image": ("p.jpg", photo, "image/jpeg")},
                data={"width": "256", "height": "256", "seed": str(seed)},
            )
            assert response.status_code == 202, response.text
        refused = client.post("/v1/jobs", files={"image": ("p.txt", b"not a photo", "text/plain")})
        assert refused.status_code >= 400
        code = refused.json()["code"]
    for _ in range(12):  # new connections: the kernel hands them to either worker
        with httpx.Client(base_url=base, timeout=10) as fresh:
            text = fresh.get("/metrics").text
        values = samples(text)
        assert values["ghibli_jobs_submitted_total"] == 8, text
        assert values[f'ghibli_jobs_rejected_total{{reason="{code}"}}'] == 1
    promtool_check_metrics(text)
    # `ghibli ingest` made a private directory where each worker keeps its own files...
    made = set(scratch.glob("ghibli-ingest-metrics-*"))
    assert len(made) == 1, made
    directory = made.pop()
    assert len({f.stem.rsplit("_", 1)[-1] for f in directory.glob("counter_*.db")}) == 2
    # ...and removes it when it stops.
    ingest.signal(signal.SIGTERM)
    assert ingest.wait(30) == 0, ingest.log()[-2000:]
    assert not directory.exists()


def test_exporter_serves_the_queue_once_and_stops_on_sigterm(
    redis_server: RedisServer, procs: list[Proc], tmp_path: Path
) -> None:
    port = free_port()
    env = base_env(REDIS_URL=redis_server.url, GHIBLI_EXPORTER_PORT=str(port))
    exporter = ghibli(["metrics-exporter"], env, tmp_path / "exporter.log").start()
    procs.append(exporter)
    url = f"http://127.0.0.1:{port}/metrics"
    wait_until(lambda: httpx.get(url, timeout=2).status_code == 200, "exporter", 30, exporter.proc)
    text = httpx.get(url, timeout=10).text
    values = samples(text)
    assert values["ghibli_queue_up"] == 1
    assert values["ghibli_stream_length"] == 0
    assert values['ghibli_tokens{state="cooling"}'] == 0
    # Only the queue: the per-process counters come from ingest and consumers.
    assert "ghibli_jobs_finished_total" not in text
    promtool_check_metrics(text)

    redis_server.stop()  # Redis gone: the exporter says so instead of serving old numbers
    values = samples(httpx.get(url, timeout=30).text)
    assert values["ghibli_queue_up"] == 0
    assert "ghibli_stream_length" not in values

    exporter.signal(signal.SIGTERM)
    assert exporter.wait(15) == 0, exporter.log()[-2000:]
    assert '"metrics exporter listening"' in exporter.log()
