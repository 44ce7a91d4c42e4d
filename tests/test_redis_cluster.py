"""Redis Cluster, natively: a three-master cluster of real redis-server 7.0 processes (plus two
replicas of the master owning the jobs' slot), reached through `redis+cluster://` naming a node
that does NOT own that slot, so every command depends on the client following the slot map.

- A key prefix without a hash tag is refused at start-up, naming the setting.
- The whole path: ingest (rate limit, API key quota in MULTI, idempotency, durable acks with WAIT
  on the slot owner), a consumer (blocking XREADGROUP, every job-store script), SSE (the events
  reader's blocking XREAD), webhooks, the admin jobs view (SCAN on the owner), the exporter, the
  doctor and the CLI.
- Fail-over under load: the slot owner is SIGKILLed, one of its two replicas takes over; with
  GHIBLI_DURABLE_REPLICAS=1 no accepted job is lost.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from jobs.settings import SettingsError, load_settings
from tests.failover_kit import CONCURRENCY, CONSUMERS, Stack, chaos, ha_space
from tests.ha_kit import ClusterSet, sigkill
from tests.photos import encode, landscape
from tests.procs import ROOT, Proc, base_env, free_port, ghibli, start_space, wait_until
from tests.web_stack import start_consumer, start_ingest
from tests.webhook_kit import Receiver, make_key, wait_for, webhook_env

pytestmark = pytest.mark.system  # starts processes beyond redis-server (docs/tests.md)

__all__ = ["ha_space"]  # a fixture (tests/failover_kit.py)

ADMIN = "cluster-admin-secret-0123456789"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ClusterSet]:
    topology = ClusterSet(tmp_path / "cluster").start()
    yield topology
    topology.stop()


def test_a_key_prefix_without_a_hash_tag_is_refused_at_start_up(tmp_path: Path) -> None:
    env = base_env(REDIS_URL="redis+cluster://127.0.0.1:7000", GHIBLI_KEY_PREFIX="ghibli:")
    with pytest.raises(SettingsError, match="GHIBLI_KEY_PREFIX"):
        load_settings(environ=env)
    # Every command loads the settings first: it exits with the message, before any Redis call.
    done = subprocess.run(
        [sys.executable, "-m", "ghibli", "consume"],
        env=env,
        cwd=ROOT,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "GHIBLI_KEY_PREFIX" in done.stdout + done.stderr
    assert "CROSSSLOT" not in done.stdout + done.stderr


@pytest.mark.timeout(600)
def test_the_whole_path_through_a_node_that_does_not_own_the_slot(
    cluster: ClusterSet, procs: list[Proc], tmp_path: Path
) -> None:
    owner = cluster.owner_port()
    url = cluster.url()
    assert f":{owner}" not in url
    shop = make_key("shop", rate=30, max_unfinished=5)
    space, space_url = start_space(tmp_path, engine="fast", extra=["--delay", "0.5"])
    procs.append(space)
    exporter_port = free_port()
    env = webhook_env(
        cluster.server(owner),
        shop,
        REDIS_URL=url,
        GHIBLI_SPACE=space_url,
        GHIBLI_RATE_LIMIT_SUBMITS="30",  # the rate-limit script runs too
        ADMIN_SECRET=ADMIN,
        GHIBLI_DURABLE_REPLICAS="1",  # WAIT on the slot owner, which has one replica
        GHIBLI_EXPORTER_PORT=str(exporter_port),
    )
    ingest = start_ingest(env, tmp_path, "cluster")
    procs.append(ingest.proc)
    procs.append(start_consumer(env, tmp_path, "cluster"))
    procs.append(ghibli(["webhooks"], env, tmp_path / "webhooks.log").start())
    procs.append(ghibli(["metrics-exporter"], env, tmp_path / "exporter.log").start())
    ready = httpx.get(f"{ingest.url}/readyz", timeout=10).json()
    assert ready["redis"] == {"topology": "cluster", "primary": f"127.0.0.1:{owner}"}
    photo = encode(landscape(320, 240))

    def submit(seed: int, **data: str) -> httpx.Response:
        return httpx.post(
            f"{ingest.url}/v1/jobs",
            headers={**shop.auth, "Idempotency-Key": f"cluster-{seed}"},
            files={"image": ("p.jpg", photo, "image/jpeg")},
            data={"seed": str(seed), "width": "256", "height": "256", **data},
            timeout=30,
        )

    with Receiver() as receiver:
        hooked = submit(1, webhook_url=receiver.url(), webhook_events="completed")
        assert hooked.status_code == 202, hooked.text
        job_id = hooked.json()["id"]
        assert submit(1, webhook_url=receiver.url(), webhook_events="completed").json()["id"] == job_id
        others = [submit(seed).json()["id"] for seed in (2, 3)]
        # SSE: the events reader's blocking XREAD on the slot owner delivers the end.
        with httpx.stream("GET", f"{ingest.url}/v1/jobs/{job_id}/events", timeout=120) as events:
            states = []
            for line in events.iter_lines():
                if line.startswith("data:"):
                    states.append(json.loads(line[5:])["status"])
                    if states[-1] in ("succeeded", "failed"):
                        break
        assert states[-1] == "succeeded", states
        wait_for(lambda: any(d.json["type"] == "job.completed" for d in receiver.received()), "webhook", 60)
    for other in others:
        wait_until(
            lambda o=other: (
                httpx.get(f"{ingest.url}/v1/jobs/{o}", timeout=10).json()["status"] == "succeeded"
            ),
            "job",
            120,
        )
    result = httpx.get(f"{ingest.url}/v1/jobs/{job_id}/result", timeout=10)
    assert result.status_code == 200
    assert result.headers["content-type"].startswith("image/")
    # The admin view scans the slot owner's keys (the node in the URL holds none of them).
    admin = {"Authorization": f"Bearer {ADMIN}"}
    listed = httpx.get(
        f"{ingest.url}/v1/admin/jobs", params={"status": "succeeded"}, headers=admin, timeout=10
    )
    assert {job["id"] for job in listed.json()["items"]} == {job_id, *others}
    assert httpx.delete(f"{ingest.url}/v1/jobs/{others[0]}", timeout=10).status_code in (200, 204)
    assert httpx.get(f"{ingest.url}/v1/jobs/{others[0]}", timeout=10).status_code == 404
    # The exporter reads the queue on the owner.
    scrape = ""

    def exported() -> bool:
        nonlocal scrape
        scrape = httpx.get(f"http://127.0.0.1:{exporter_port}/metrics", timeout=5).text
        return "ghibli_queue_up 1.0" in scrape

    wait_until(exported, "exporter", 60)
    assert "ghibli_group_consumers 1.0" in scrape
    # The doctor and the CLI go through the same client.
    doctor = subprocess.run(
        [sys.executable, "-m", "ghibli", "doctor", "--check", "redis", "--check", "queue", "--json"],
        env=env,
        cwd=ROOT,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    findings = json.loads(doctor.stdout)
    assert not [f for f in findings if f["level"] == "fail"], findings
    assert any(f"primary in use 127.0.0.1:{owner}" in f["message"] for f in findings), findings
    listing = subprocess.run(
        [sys.executable, "-m", "ghibli", "dlq", "list"],
        env=env,
        cwd=ROOT,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listing.returncode == 0, listing.stderr
    for proc in procs:
        assert proc.alive(), proc.log()[-3000:]


@pytest.mark.anyio
@pytest.mark.timeout(900)
@pytest.mark.parametrize("durable", [0, 1], ids=["no-wait", "wait-1"])
async def test_failover_under_load_on_a_cluster(
    cluster: ClusterSet, ha_space: tuple[str, Path], tmp_path: Path, durable: int
) -> None:
    space_url, call_log = ha_space
    old = cluster.owner_port()
    stack = Stack(cluster.url(), space_url, tmp_path / "logs", durable_replicas=durable).start()
    try:
        assert stack.ready()["redis"] == {"topology": "cluster", "primary": f"127.0.0.1:{old}"}
        report = await chaos(stack, call_log, lambda: sigkill(cluster.server(old)))
        new = cluster.wait_for_new_owner(old)
        print("\n" + report.line(f"cluster, slot owner SIGKILLed, GHIBLI_DURABLE_REPLICAS={durable}"))
        assert report.conflicting == 0
        assert set(report.statuses) <= {"succeeded", "lost"}, report.statuses
        if durable:
            assert report.lost == 0
        assert report.ran_twice <= 2 * CONSUMERS * CONCURRENCY
        assert stack.ready()["redis"] == {"topology": "cluster", "primary": f"127.0.0.1:{new}"}
        stack.alive()
    finally:
        stack.stop()
