"""Redis Sentinel, natively: one primary, two replicas, three sentinels (all real redis-server 7.0
processes), and the whole pipeline on `redis+sentinel://` through a fail-over under load.

The fail-over chaos runs 200 jobs through ingest and two consumers against a slowed offline Space
and takes the primary away half-way: SIGKILL, or `SENTINEL FAILOVER` (the old primary lives on and
is demoted). Each run prints what it cost (docs/redis-ha.md quotes these lines). Without durable
acknowledgements a fail-over may lose the last writes before it; with GHIBLI_DURABLE_REPLICAS=1
no accepted job may be lost. In every case: no job seen in two different terminal states, every
accepted job that exists ends terminal, and the processes never die.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis as redis_sync

from tests.failover_kit import CONCURRENCY, CONSUMERS, Stack, chaos, ha_space
from tests.ha_kit import SentinelSet, sigkill
from tests.procs import ROOT, Proc, base_env, free_port, ghibli, wait_until

# System tier: starts processes beyond redis-server (docs/tests.md).
pytestmark = [pytest.mark.system, pytest.mark.anyio]
__all__ = ["ha_space"]  # a fixture (tests/failover_kit.py)


@pytest.fixture
def sentinels(tmp_path: Path) -> Iterator[SentinelSet]:
    topology = SentinelSet(tmp_path / "redis").start()
    yield topology
    topology.stop()


@pytest.mark.timeout(900)
@pytest.mark.parametrize(
    ("how", "durable"),
    [("sigkill", 0), ("sigkill", 1), ("forced", 0), ("forced", 1)],
    ids=["sigkill-no-wait", "sigkill-wait-1", "forced-no-wait", "forced-wait-1"],
)
async def test_failover_under_load(
    sentinels: SentinelSet, ha_space: tuple[str, Path], tmp_path: Path, how: str, durable: int
) -> None:
    space_url, call_log = ha_space
    stack = Stack(sentinels.url, space_url, tmp_path / "logs", durable_replicas=durable).start()
    try:
        old = sentinels.primary_port()
        assert stack.ready()["redis"] == {"topology": "sentinel", "primary": f"127.0.0.1:{old}"}

        def fail() -> None:
            if how == "sigkill":
                sigkill(sentinels.server(old))
            else:
                sentinels.force_failover()

        report = await chaos(stack, call_log, fail)
        new = sentinels.wait_for_new_primary(old)
        print("\n" + report.line(f"sentinel {how}, GHIBLI_DURABLE_REPLICAS={durable}"))
        assert report.conflicting == 0
        assert set(report.statuses) <= {"succeeded", "lost"}, report.statuses
        if durable:
            assert report.lost == 0
        # Only work in flight around the switch can run again (a finish or a claim the new primary
        # never saw): at most every running slot, twice.
        assert report.ran_twice <= 2 * CONSUMERS * CONCURRENCY
        # Readiness names the new primary (ingest asked the sentinels, not its old connection).
        assert stack.ready()["redis"] == {"topology": "sentinel", "primary": f"127.0.0.1:{new}"}
        stack.alive()
    finally:
        stack.stop()


@pytest.mark.timeout(300)
def test_every_process_follows_a_forced_failover(sentinels: SentinelSet, tmp_path: Path) -> None:
    """The exporter (synchronous client), the webhook dispatcher and the CLI on redis+sentinel://,
    before and after the primary moves: they name, and read from, the new primary."""
    exporter_port = free_port()
    env = base_env(REDIS_URL=sentinels.url, GHIBLI_EXPORTER_PORT=str(exporter_port))
    procs = [
        ghibli(["metrics-exporter"], env, tmp_path / "exporter.log").start(),
        ghibli(["webhooks"], env, tmp_path / "webhooks.log").start(),
    ]
    try:

        def scrape() -> str:
            return httpx.get(f"http://127.0.0.1:{exporter_port}/metrics", timeout=5).text

        def doctor() -> str:
            done = subprocess.run(
                [sys.executable, "-m", "ghibli", "doctor", "--check", "redis", "--json"],
                env=env,
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            return done.stdout

        old = sentinels.primary_port()
        wait_until(lambda: "ghibli_queue_up 1.0" in scrape(), "exporter", 60)
        assert f"primary in use 127.0.0.1:{old}, 2 replica(s) connected; 3 of 3 sentinel(s)" in doctor()
        wait_until(lambda: logged_event(procs[1], "webhooks: dispatcher running"), "dispatcher", 60)
        sentinels.force_failover()
        new = sentinels.wait_for_new_primary(old)
        wait_until(
            lambda: f"primary in use 127.0.0.1:{new}," in doctor(), "the doctor to name the new primary", 60
        )
        # The exporter reads the new primary: a job created there shows in its gauges.
        with redis_sync.Redis(port=new, socket_timeout=5) as primary:
            primary.xadd("{ghibli}:jobs", {"job": "probe"})
        wait_until(lambda: "ghibli_stream_length 1.0" in scrape(), "the exporter to read the new primary", 60)
        assert "ghibli_queue_up 1.0" in scrape()
        for proc in procs:
            assert proc.alive(), proc.log()[-3000:]
    finally:
        for proc in procs:
            proc.stop()


def logged_event(proc: Proc, event: str) -> bool:
    return any(f'"event": "{event}"' in line for line in proc.log().splitlines())
