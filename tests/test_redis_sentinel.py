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

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.failover_kit import CONCURRENCY, CONSUMERS, Stack, chaos, ha_space
from tests.ha_kit import SentinelSet, sigkill

pytestmark = pytest.mark.anyio
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
