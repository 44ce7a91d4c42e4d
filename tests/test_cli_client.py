"""`ghibli submit`, `ghibli status` and `ghibli cancel` as subprocesses against the real stack:
Redis, `ghibli ingest`, `ghibli consume` and the slow offline Space (tests/web_stack.py)."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from ghibli.client import GhibliClient, JobFailed, Transport
from jobs.model import Status
from jobs.wire import JobView
from tests.photos import encode, landscape
from tests.procs import ROOT, RedisServer
from tests.web_stack import (
    FAIL_SEED,
    HELD_PREFIX,
    LIVE_PREFIX,
    Ingest,
    ScriptedConsumer,
    slow_space,
    stack_env,
    start_consumer,
    start_ingest,
)

pytestmark = pytest.mark.system  # starts processes beyond redis-server (docs/tests.md)

CLI_TIMEOUT_S = 180


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module", autouse=True)
def cli_state(workdir: Path) -> Iterator[None]:
    """The CLI's job history goes to this module's directory, not the home directory."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_STATE_HOME", str(workdir / "state"))
        yield


@pytest.fixture(scope="module")
def redis(workdir: Path) -> Iterator[RedisServer]:
    server = RedisServer(workdir / "redis").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def live(redis: RedisServer, workdir: Path) -> Iterator[Ingest]:
    """The whole pipeline; the consumer runs three calls at once (anonymous calls may overlap)
    against a Space that paints one at a time, so the others wait in the Space's own queue and
    report their place in it."""
    with slow_space(workdir) as space_url:
        env = stack_env(redis, space_url, LIVE_PREFIX, GHIBLI_CONCURRENCY="3", GHIBLI_TOKEN_MAX_IN_FLIGHT="3")
        ingest = start_ingest(env, workdir, "live")
        consumer = start_consumer(env, workdir, "live")
        yield ingest
        consumer.stop()
        ingest.proc.stop()


@pytest.fixture(scope="module")
def held(redis: RedisServer, workdir: Path) -> Iterator[tuple[Ingest, ScriptedConsumer]]:
    ingest = start_ingest(stack_env(redis, "http://127.0.0.1:9/", HELD_PREFIX), workdir, "held")
    yield ingest, ScriptedConsumer(redis.url, HELD_PREFIX)
    ingest.proc.stop()


def photo(path: Path, width: int, height: int, seed: int) -> Path:
    path.write_bytes(encode(landscape(width, height, seed=seed), "JPEG", quality=90))
    return path


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GHIBLI_")}
    env.update({"PYTHONUNBUFFERED": "1", "COLUMNS": "120", **extra})
    return env


def ghibli_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ghibli", *args],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        cwd=ROOT,
        env=env or cli_env(),
        check=False,
    )


def test_several_photos_at_once_with_a_progress_line_each(live: Ingest, tmp_path: Path) -> None:
    photos = [
        photo(tmp_path / "wide.jpg", 800, 600, 1),
        photo(tmp_path / "tall.jpg", 480, 640, 2),
        photo(tmp_path / "square.jpg", 500, 500, 3),
    ]
    out = tmp_path / "out"
    done = ghibli_cli(
        "submit",
        *map(str, photos),
        "-o",
        str(out),
        "--server",
        live.url,
        "--progress",
        "lines",
        "--format",
        "png",
    )
    assert done.returncode == 0, done.stderr
    written = [Path(line) for line in done.stdout.split()]
    assert written == [out / "wide.ghibli.png", out / "tall.ghibli.png", out / "square.ghibli.png"]
    sizes = [Image.open(io.BytesIO(p.read_bytes())).size for p in written]
    # Each keeps its photo's shape at the default longest side 768, snapped to 64.
    assert sizes == [(768, 576), (576, 768), (768, 768)]
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in written)

    log = done.stderr
    ids = re.findall(r"job ([0-9a-f]{32}) \((\d+)x(\d+), seed (\d+)\)", log)
    assert len(ids) == 3
    for name in ("wide.jpg", "tall.jpg", "square.jpg"):
        percents = [int(p) for p in re.findall(rf"^{re.escape(name)}: +(\d+)% ", log, re.MULTILINE)]
        assert percents[0] == 0, (name, percents)
        assert percents[-1] == 100, (name, percents)
        assert any(0 < p < 100 for p in percents), (name, percents)  # live progress, not just the end
        assert percents == sorted(percents), (name, percents)
        assert re.search(rf"^{re.escape(name)}: 100% done$", log, re.MULTILINE)
    # The Space paints one at a time: the others waited in its queue and said where.
    assert re.search(r"in the Space's queue #\d", log), log

    # `ghibli status` of a finished job, as words and as JSON.
    job_id = ids[0][0]
    words = ghibli_cli("status", job_id, "--server", live.url)
    assert words.returncode == 0, words.stderr
    assert f"{job_id}  succeeded  100%  done" in words.stdout
    assert f"result: {live.url}/v1/jobs/{job_id}/result" in words.stdout
    as_json = ghibli_cli("status", job_id, "--json", "--server", live.url)
    view = json.loads(as_json.stdout)
    assert view["status"] == "succeeded"
    assert view["params"]["seed"] == int(ids[0][3])


def test_bars_on_a_terminal(live: Ingest, tmp_path: Path) -> None:
    source = photo(tmp_path / "garden.jpg", 640, 480, 5)
    target = tmp_path / "garden-painted.jpg"
    # rich draws live bars only on a terminal; these variables make the pipe count as one.
    env = cli_env(TTY_INTERACTIVE="1", TTY_COMPATIBLE="1")
    done = ghibli_cli(
        "submit", str(source), "-o", str(target), "--width", "512", "--height", "384", "--seed", "7",
        "--format", "jpeg", "--server", live.url, "--progress", "bars", env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(target)
    assert target.read_bytes().startswith(b"\xff\xd8\xff")
    assert Image.open(target).size == (512, 384)
    frames = done.stderr.replace("\r", "\n")
    assert "\x1b[" in frames  # redrawn in place
    assert re.search(r"garden\.jpg.*\b\d{1,2}%", frames), frames[-2000:]  # a bar mid-way
    assert re.search(r"garden\.jpg.*100%.*done", frames), frames[-2000:]


def test_a_failed_job_is_reported_and_the_others_still_written(live: Ingest, tmp_path: Path) -> None:
    good = photo(tmp_path / "good.jpg", 640, 480, 8)
    out = tmp_path / "out"
    done = ghibli_cli(
        "submit", str(good), "-o", str(out), "--seed", str(FAIL_SEED), "--server", live.url,
        "--progress", "lines",
    )  # fmt: skip
    # The Space fails every call with this seed; with one attempt allowed the job fails.
    assert done.returncode == 1
    assert re.search(
        r"good\.jpg: job [0-9a-f]{32} failed: .*GPU task aborted.*\(space_worker_error\)", done.stderr
    ), done.stderr
    assert done.stdout == ""
    assert not out.exists() or not any(out.iterdir())

    # A refused upload is an error with the API's own words, and the other photos still run.
    bogus = tmp_path / "notes.jpg"
    bogus.write_text("not a photo")
    mixed = ghibli_cli(
        "submit", str(bogus), str(good), "-o", str(out), "--server", live.url, "--progress", "none"
    )
    assert mixed.returncode == 1
    assert "notes.jpg: rejected:" in mixed.stderr
    assert "unsupported_image_type, HTTP 415" in mixed.stderr
    assert mixed.stdout.split() == [str(out / "good.ghibli.webp")]


def test_cancel_from_another_terminal_ends_the_waiting_submit(
    held: tuple[Ingest, ScriptedConsumer], tmp_path: Path
) -> None:
    ingest, consumer = held
    source = photo(tmp_path / "slow.jpg", 640, 480, 9)
    waiting = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ghibli",
            "submit",
            str(source),
            "--server",
            ingest.url,
            "--progress",
            "lines",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=cli_env(),
    )
    try:
        assert waiting.stderr is not None
        first = waiting.stderr.readline()
        match = re.search(r"job ([0-9a-f]{32})", first)
        assert match, first
        job_id = match.group(1)
        claim = consumer.take(job_id)
        consumer.update(claim, Status.RUNNING, progress=0.3, phase="painting")
        deadline = time.monotonic() + 30
        while "30% painting" not in (line := waiting.stderr.readline()):
            assert line, "the submit process ended early"
            assert time.monotonic() < deadline, "the running state never showed"

        status = ghibli_cli("status", job_id, "--server", ingest.url)
        assert status.returncode == 0
        assert f"{job_id}  running  30%  painting" in status.stdout

        cancel = ghibli_cli("cancel", job_id, "--server", ingest.url)
        assert cancel.returncode == 0, cancel.stderr
        assert cancel.stdout.strip() == f"{job_id}: cancelled and erased"

        rest = waiting.communicate(timeout=60)[1]
        assert waiting.returncode == 1
        assert re.search(rf"slow\.jpg: job {job_id} (was cancelled|cancelled)", rest), rest
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.wait()

    gone = ghibli_cli("status", job_id, "--server", ingest.url)
    assert gone.returncode == 1
    assert "(job_not_found, HTTP 404)" in gone.stderr
    again = ghibli_cli("cancel", job_id, "--server", ingest.url)
    assert again.returncode == 1
    assert "job_not_found" in again.stderr


def test_the_client_class_waits_through_sse_and_by_polling(live: Ingest, tmp_path: Path) -> None:
    source = photo(tmp_path / "lib.jpg", 640, 480, 10)
    transports: tuple[Transport, ...] = ("sse", "poll")
    for transport in transports:
        seen: list[tuple[str, float]] = []

        def record(job: JobView, seen: list[tuple[str, float]] = seen) -> None:
            seen.append((job.status.value, job.progress))

        with GhibliClient(live.url, transport=transport, poll_interval_s=0.2) as client:
            job = client.submit(source, width=384, height=256, seed=100 + len(transport))
            assert job.status is Status.QUEUED
            done = client.wait(job.id, on_update=record)
            assert done.status is Status.SUCCEEDED
            picture = client.result(done.id, fmt="png")
        assert picture.startswith(b"\x89PNG")
        assert Image.open(io.BytesIO(picture)).size == (384, 256)
        assert seen[0][0] in ("queued", "running")
        assert seen[-1] == ("succeeded", 1.0)
        assert any(status == "running" and 0 < p < 1 for status, p in seen), (transport, seen)

    with GhibliClient(live.url) as client:
        failing = client.submit(source, seed=FAIL_SEED)
        with pytest.raises(JobFailed) as failed:
            client.wait(failing.id)
    assert failed.value.job.status is Status.FAILED
    assert failed.value.job.error is not None
    assert failed.value.job.error.code == "space_worker_error"
    assert httpx.get(f"{live.url}/v1/jobs/{failing.id}").json()["status"] == "failed"


def test_detach_prints_the_ids_and_status_reads_them(
    held: tuple[Ingest, ScriptedConsumer], tmp_path: Path
) -> None:
    ingest, _consumer = held
    photos = [photo(tmp_path / f"p{i}.jpg", 320, 240, 20 + i) for i in range(2)]
    done = ghibli_cli("submit", *map(str, photos), "--detach", "--seed", "5", "--server", ingest.url)
    assert done.returncode == 0, done.stderr
    ids = done.stdout.split()
    assert len(ids) == 2
    assert all(re.fullmatch(r"[0-9a-f]{32}", job_id) for job_id in ids)
    status = ghibli_cli("status", *ids, "--json", "--server", ingest.url)
    views = [json.loads(line) for line in status.stdout.splitlines()]
    assert [v["id"] for v in views] == ids
    assert {v["status"] for v in views} == {"queued"}
    assert {v["params"]["seed"] for v in views} == {5}
    # Sizes were left to the server: each photo's shape at the default longest side.
    assert {(v["params"]["width"], v["params"]["height"]) for v in views} == {(768, 576)}
    cancelled = ghibli_cli("cancel", *ids, "--server", ingest.url)
    assert cancelled.returncode == 0, cancelled.stderr
    assert len(cancelled.stdout.splitlines()) == 2


def test_the_client_polls_when_the_server_refuses_it_a_stream(
    redis: RedisServer, workdir: Path, tmp_path: Path
) -> None:
    env = stack_env(redis, "http://127.0.0.1:9/", HELD_PREFIX, GHIBLI_MAX_STREAMS_PER_CLIENT="1")
    ingest = start_ingest(env, workdir, "one-stream")
    consumer = ScriptedConsumer(redis.url, HELD_PREFIX)
    try:
        with GhibliClient(ingest.url, poll_interval_s=0.2) as client:
            job = client.submit(photo(tmp_path / "p.jpg", 320, 240, 40), seed=40)
            # This client's one stream is taken (another tab, say): the next is refused with 429.
            with httpx.stream("GET", f"{ingest.url}/v1/jobs/{job.id}/events", timeout=30) as held_stream:
                assert held_stream.status_code == 200
                refused = httpx.get(f"{ingest.url}/v1/jobs/{job.id}/events", timeout=10)
                assert refused.status_code == 429
                assert refused.json()["code"] == "too_many_streams"
                claim = consumer.take(job.id)
                outcome: list[BaseException] = []

                def wait() -> None:
                    try:
                        client.wait(job.id)
                    except JobFailed as exc:
                        outcome.append(exc)

                waiter = threading.Thread(target=wait)
                waiter.start()
                time.sleep(3)  # the job runs on while the client follows it
                consumer.finish(claim, Status.FAILED, error_code="space_error", error_message="no")
                waiter.join(30)
        assert isinstance(outcome[0], JobFailed)
        assert outcome[0].job.status is Status.FAILED
        # Refused once, the client polled: no retries of the refused stream.
        refusals = [
            row
            for row in map(json.loads, filter(None, ingest.proc.log().splitlines()))
            if row.get("route") == "/v1/jobs/{job_id}/events" and row.get("status") == 429
        ]
        assert len(refusals) == 2, refusals  # the test's own, and the client's one attempt
    finally:
        ingest.proc.stop()
