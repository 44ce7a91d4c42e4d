"""Old clients against a Space as slow as the real one (45 s a call), with the default settings.

The old product's page gives up after 30 checks (~42 s). With held checks (25 s each) both an
old-style script (its exact cadence, GET) and the old page's polling logic in Chromium (POST, from
another origin: CORS) get their pictures. The page's "Generate" clicked twice makes two tasks and
one Space call (merged in flight). Everything is real: Redis, the offline Space with its call log,
`ghibli ingest` and `ghibli consume`.
"""

from __future__ import annotations

import functools
import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis as redis_client

from jobs.keys import Keys
from jobs.token_state import S_READY, space_key
from tests.ingest_support import photo_bytes
from tests.procs import Proc, RedisServer, free_port, start_space, wait_until
from tests.web_stack import Ingest, stack_env, start_consumer, start_ingest

playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = Path("/usr/bin/chromium")
PAGE_DIR = Path(__file__).parent / "apps"
SPACE_DELAY_S = 45.0
OLD_PROMPT = "Ghibli Studio style, Charming hand-drawn anime-style illustration"

# System tier: starts processes beyond redis-server (docs/tests.md).
pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("old-frontend")


@pytest.fixture(scope="module")
def page_origin() -> Iterator[str]:
    """The old page on an origin of its own (a static file server)."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(PAGE_DIR))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def stack(workdir: Path, page_origin: str) -> Iterator[tuple[Ingest, Path]]:
    redis = RedisServer(workdir / "redis").start()
    call_log = workdir / "calls.jsonl"
    space, url = start_space(
        workdir,
        engine="fast",
        extra=["--delay", str(SPACE_DELAY_S), "--concurrency", "2", "--call-log", str(call_log)],
    )
    env = stack_env(
        redis,
        url,
        "{ghibli}:",
        GHIBLI_CONCURRENCY="2",
        GHIBLI_TOKEN_MAX_IN_FLIGHT="2",
        GHIBLI_CORS_ORIGINS=page_origin,
    )
    ingest: Ingest | None = None
    consumer: Proc | None = None
    try:
        ingest = start_ingest(env, workdir, "old")  # GHIBLI_LONG_POLL_SECONDS: the default (25 s)
        consumer = start_consumer(env, workdir, "old")
        # The consumer has checked the Space's endpoint: the clock of the test starts now.
        client = redis_client.Redis.from_url(redis.url)
        try:
            wait_until(
                lambda: client.hget(space_key(Keys()), S_READY) == b"1", "consumer", 120, consumer.proc
            )
        finally:
            client.close()
        yield ingest, call_log
    finally:
        for proc in (consumer, ingest.proc if ingest else None, space):
            if proc is not None:
                proc.stop()
        redis.stop()


def old_style_client(base: str, photo: bytes, outcome: dict[str, Any]) -> None:
    """The old page's loop, in Python: 2 s, then 2 s while pollCount <= 10, then 1 s; 30 checks."""
    started = time.monotonic()
    with httpx.Client(base_url=base, timeout=60) as http:
        form = {"prompt": OLD_PROMPT, "height": "512", "width": "512", "seed": "7"}
        accepted = http.post(
            "/api/transform-ghibli", files={"image": ("a.jpg", photo, "image/jpeg")}, data=form
        )
        task_id = accepted.json()["taskId"]
        time.sleep(2)
        for poll in range(1, 31):
            try:
                answer = http.get(f"/api/transform-ghibli/check/{task_id}")
            except httpx.HTTPError:
                answer = None
            if answer is not None and "image" in answer.headers.get("content-type", ""):
                outcome.update(picture=answer.content, polls=poll, seconds=time.monotonic() - started)
                return
            if answer is not None and answer.status_code == 500:
                outcome.update(failed=answer.json(), polls=poll)
                return
            time.sleep(2 if poll <= 10 else 1)
    outcome.update(gave_up=True, seconds=time.monotonic() - started)


def test_old_clients_get_their_pictures_from_a_45_s_space(
    stack: tuple[Ingest, Path], page_origin: str, workdir: Path
) -> None:
    ingest, call_log = stack
    script: dict[str, Any] = {}
    thread = threading.Thread(target=old_style_client, args=(ingest.url, photo_bytes(seed=11), script))
    thread.start()

    photo = workdir / "meadow.jpg"
    photo.write_bytes(photo_bytes(seed=12, size=(640, 480)))
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--no-sandbox", "--disable-background-networking", "--disable-gpu"],
        )
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{page_origin}/old_page.html?api={ingest.url}")
            page.wait_for_selector("html[data-ready='true']")
            page.set_input_files("#file", str(photo))
            page.click("#generate")
            page.wait_for_timeout(5_000)
            page.click("#generate")  # "Generate" again: the same photo and seed, a second task
            try:
                page.wait_for_function(
                    "() => window.runs.length === 2 && window.runs.every(r => r.outcome !== null)",
                    timeout=int((SPACE_DELAY_S + 150) * 1000),
                    polling=500,
                )
            except playwright_api.TimeoutError:
                runs = page.evaluate("window.runs")
                logs = "\n".join(p.read_text()[-3000:] for p in sorted(workdir.glob("*.log")))
                pytest.fail(f"the page did not finish: {runs}\n{logs}")
            runs = page.evaluate("window.runs")
        finally:
            browser.close()
    thread.join(timeout=SPACE_DELAY_S + 150)

    assert not errors, errors
    assert [run["outcome"] for run in runs] == ["picture", "picture"], runs
    assert runs[0]["taskId"] != runs[1]["taskId"]
    assert all(run["width"] > 0 for run in runs), runs
    # Held checks: a handful of the page's 30 checks cover the 45-s call.
    assert all(run["polls"] <= 8 for run in runs), runs
    assert script.get("picture"), script
    assert script["seconds"] >= SPACE_DELAY_S  # longer than the old cadence's ~42 s of checks
    assert script["polls"] <= 8, script

    calls = [json.loads(line) for line in call_log.read_text().splitlines()]
    print(
        f"\nold-style script: {script['polls']} checks, {script['seconds']:.0f} s; page runs: "
        f"{[(run['polls'], run['answers']) for run in runs]}; Space calls: {len(calls)}"
    )
    assert len(calls) == 2, calls  # the script's photo and the page's photo: its 2nd task was merged
    assert all(call["outcome"] == "ok" and call["end"] - call["start"] >= SPACE_DELAY_S for call in calls)
