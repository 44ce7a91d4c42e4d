"""Shared fixtures: real redis-server processes and the real offline Space on free ports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.apps.runner import QuotaSpace
from tests.procs import Proc, RedisServer, start_space

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
def procs() -> Iterator[list[Proc]]:
    """Processes a test starts; all are stopped at the end, whatever happened."""
    started: list[Proc] = []
    yield started
    for proc in started:
        proc.stop()
