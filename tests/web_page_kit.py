"""What the web page tests share: the real stack (Redis, the slow offline Space, ingest with and
without consumers), Debian's Chromium through Playwright, a console watcher, screenshots and the
steps every test takes (open the page, choose a photo, read the job id).

Test modules import the fixtures by name; each module gets its own stack (module scope).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.photos import encode, landscape
from tests.procs import ROOT, RedisServer
from tests.web_stack import (
    HELD_PREFIX,
    LIVE_PREFIX,
    Ingest,
    ScriptedConsumer,
    slow_space,
    stack_env,
    start_consumer,
    start_ingest,
)

__all__ = [
    "ARTIFACTS",
    "CHROMIUM",
    "JOB_TIMEOUT_MS",
    "Console",
    "browser",
    "choose_photo",
    "held",
    "job_id_of",
    "live",
    "needs_chromium",
    "open_page",
    "photo_file",
    "redis",
    "shot",
    "space",
    "workdir",
]

playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts" / "web"
JOB_TIMEOUT_MS = 120_000

needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")


# ---------------------------------------------------------------------------------------------
# the stack and the browser, started once for this module


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("web")


@pytest.fixture(scope="module")
def redis(workdir: Path) -> Iterator[RedisServer]:
    server = RedisServer(workdir / "redis").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def space(workdir: Path) -> Iterator[str]:
    with slow_space(workdir) as url:
        yield url


@pytest.fixture(scope="module")
def live(redis: RedisServer, space: str, workdir: Path) -> Iterator[Ingest]:
    """Ingest + a consumer on the slow Space: the whole pipeline."""
    # Two calls at once on a Space that paints one at a time: a second job waits in its queue.
    env = stack_env(redis, space, LIVE_PREFIX, GHIBLI_CONCURRENCY="2", GHIBLI_TOKEN_MAX_IN_FLIGHT="2")
    ingest = start_ingest(env, workdir, "live")
    consumer = start_consumer(env, workdir, "live")
    yield ingest
    consumer.stop()
    ingest.proc.stop()


@pytest.fixture(scope="module")
def held(redis: RedisServer, space: str, workdir: Path) -> Iterator[tuple[Ingest, ScriptedConsumer]]:
    """Ingest without consumers; the test plays the consumer."""
    ingest = start_ingest(stack_env(redis, space, HELD_PREFIX), workdir, "held")
    yield ingest, ScriptedConsumer(redis.url, HELD_PREFIX)
    ingest.proc.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--no-sandbox", "--disable-background-networking", "--disable-gpu"],
        )
        yield chromium
        chromium.close()


class Console:
    """Console errors and uncaught exceptions of a page; `expect` allows one known HTTP error."""

    def __init__(self, page: Any) -> None:
        self.errors: list[str] = []
        self.allowed: list[re.Pattern[str]] = []
        page.on("console", lambda msg: self.errors.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))

    def expect(self, pattern: str) -> None:
        self.allowed.append(re.compile(pattern))

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(p.search(e) for p in self.allowed)]


OpenPage = Callable[..., tuple[Any, "Console"]]


@pytest.fixture
def open_page(browser: Any) -> Iterator[OpenPage]:
    """open_page(url, **context_options) -> (page, console); all are closed and checked at the end."""
    opened: list[tuple[Any, Console]] = []

    def open_(url: str, **options: Any) -> tuple[Any, Console]:
        options.setdefault("viewport", {"width": 1280, "height": 900})
        options.setdefault("locale", "en-US")
        options.setdefault("color_scheme", "light")
        context = browser.new_context(accept_downloads=True, **options)
        page = context.new_page()
        page.set_default_timeout(30_000)
        console = Console(page)
        opened.append((context, console))
        page.goto(url)
        page.wait_for_selector("html[data-ready='true']")
        return page, console

    yield open_
    problems = [e for _ctx, console in opened for e in console.unexpected()]
    for context, _console in opened:
        context.close()
    assert not problems, f"console errors: {problems}"


def shot(page: Any, name: str, *, full_page: bool = True, settle_ms: int = 350) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(settle_ms)  # let transitions settle
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=full_page)


@pytest.fixture(scope="module")
def photo_file(workdir: Path) -> Path:
    path = workdir / "meadow.jpg"
    path.write_bytes(encode(landscape(800, 600, seed=3), "JPEG", quality=90))
    return path


def job_id_of(page: Any) -> str:
    page.wait_for_function("() => /^#job=[0-9a-f]{32}$/.test(location.hash)")
    hash_: str = page.evaluate("location.hash")
    return hash_.removeprefix("#job=")


def choose_photo(page: Any, photo: Path) -> None:
    page.set_input_files("#file", str(photo))
    page.wait_for_selector("#drop[data-state='photo']")
    page.wait_for_function("() => document.querySelector('#preview').naturalWidth > 0")
