"""The CLI as a newcomer meets it: `submit` in a real pseudo-terminal (the screen is rebuilt by a
terminal emulator and read), the local job history behind `jobs` and id prefixes, `wait`,
`download`, `--version`, `--help` and the refusal of `-o FILE` for several photos.

Against the real stack of tests/web_stack.py: "live" (Redis, ingest, a consumer, the slow offline
Space) and "held" (ingest with no consumer; the test moves jobs through the real store scripts).
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import click
import httpx
import pexpect
import pyte
import pytest
from PIL import Image

from ghibli.cli import cli
from jobs.model import Status
from jobs.settings import iter_settings
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

pytestmark = pytest.mark.system  # starts processes beyond redis-server (docs/tests.md)

CLI_TIMEOUT_S = 180
ADMIN_SECRET = "admin-secret-for-the-cli-tests"
ROWS, COLS = 40, 150


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli-jobs")


@pytest.fixture(scope="module")
def redis(workdir: Path) -> Iterator[RedisServer]:
    server = RedisServer(workdir / "redis").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def live(redis: RedisServer, workdir: Path) -> Iterator[Ingest]:
    with slow_space(workdir) as space_url:
        env = stack_env(redis, space_url, LIVE_PREFIX, GHIBLI_CONCURRENCY="2", GHIBLI_TOKEN_MAX_IN_FLIGHT="2")
        ingest = start_ingest(env, workdir, "live")
        consumer = start_consumer(env, workdir, "live")
        yield ingest
        consumer.stop()
        ingest.proc.stop()


@pytest.fixture(scope="module")
def held(redis: RedisServer, workdir: Path) -> Iterator[tuple[Ingest, ScriptedConsumer]]:
    env = stack_env(redis, "http://127.0.0.1:9/", HELD_PREFIX, ADMIN_SECRET=ADMIN_SECRET)
    ingest = start_ingest(env, workdir, "held")
    yield ingest, ScriptedConsumer(redis.url, HELD_PREFIX)
    ingest.proc.stop()


@pytest.fixture
def history(tmp_path: Path) -> Path:
    """Each test has its own CLI history file."""
    return tmp_path / "state" / "jobs.jsonl"


def photo(path: Path, seed: int, size: tuple[int, int] = (480, 360)) -> Path:
    path.write_bytes(encode(landscape(*size, seed=seed), "JPEG", quality=88))
    return path


def cli_env(history: Path, **extra: str) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("GHIBLI_") and k != "ADMIN_SECRET"}
    env.update({"PYTHONUNBUFFERED": "1", "COLUMNS": "120", "GHIBLI_HISTORY": str(history), **extra})
    return env


def ghibli_cli(history: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ghibli", *args],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        cwd=ROOT,
        env=cli_env(history, **env),
        check=False,
    )


# ---------------------------------------------------------------------------------------------
# in a terminal


def screen_after(raw: bytes) -> list[str]:
    """What a terminal of ROWS x COLS shows after these bytes (cursor moves, erased lines and all)."""
    screen = pyte.Screen(COLS, ROWS)
    stream = pyte.ByteStream(screen)
    stream.feed(raw)
    return [line.rstrip() for line in screen.display]


def test_submit_in_a_terminal_leaves_every_path_on_the_screen(
    live: Ingest, tmp_path: Path, history: Path
) -> None:
    photos = [photo(tmp_path / f"photo-{i}.jpg", seed=40 + i) for i in range(5)]
    out = tmp_path / "out"
    child = pexpect.spawn(
        sys.executable,
        ["-m", "ghibli", "submit", *map(str, photos), "-o", f"{out}/", "--server", live.url],
        cwd=str(ROOT),
        env={**cli_env(history), "TERM": "xterm-256color"},
        dimensions=(ROWS, COLS),
        timeout=CLI_TIMEOUT_S,
    )
    raw = bytearray()
    while True:
        try:
            raw += child.read_nonblocking(65536, timeout=CLI_TIMEOUT_S)
        except pexpect.EOF:
            break
    child.close()
    assert child.exitstatus == 0, raw.decode(errors="replace")[-3000:]
    shown = screen_after(bytes(raw))
    paths = [out / f"photo-{i}.ghibli.webp" for i in range(5)]
    for path in paths:
        assert Image.open(path).format == "WEBP"
        # The whole path on a line of its own: not overwritten by a bar, not glued to one.
        assert str(path) in shown, "\n".join(shown)
    assert [line for line in shown if line.startswith(str(out))] == [str(p) for p in paths]
    # The bars were live (redrawn in place) and showed a time left while jobs ran.
    assert b"\x1b[" in raw
    assert re.search(rb"~\d+:\d\d", raw), "no ETA was shown"
    for i in range(5):
        assert any(re.search(rf"photo-{i}\.jpg .*100%.*done", line) for line in shown), "\n".join(shown)


def test_output_file_with_several_photos_is_refused_before_any_upload(
    held: tuple[Ingest, ScriptedConsumer], tmp_path: Path, history: Path
) -> None:
    ingest, _consumer = held
    photos = [photo(tmp_path / f"p{i}.jpg", seed=i) for i in range(2)]
    done = ghibli_cli(
        history, "submit", *map(str, photos), "-o", str(tmp_path / "one.webp"), "--server", ingest.url
    )
    assert done.returncode == 2
    assert "-o " + str(tmp_path / "one.webp") + " names one file, but 2 photos make 2 pictures" in done.stderr
    assert "give a folder" in done.stderr
    assert not (tmp_path / "one.webp").exists()
    assert not history.exists()  # nothing was submitted
    # A suffix the pictures cannot have is refused too; a folder is fine.
    wrong = ghibli_cli(
        history, "submit", str(photos[0]), "-o", str(tmp_path / "a.gif"), "--server", ingest.url
    )
    assert wrong.returncode == 2
    assert ".webp, .png or .jpg" in wrong.stderr


# ---------------------------------------------------------------------------------------------
# version and help


def test_version_and_grouped_help_with_typed_options() -> None:
    version = importlib.metadata.version("ghibli-pipeline")
    done = subprocess.run(
        [sys.executable, "-m", "ghibli", "--version"], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert (done.returncode, done.stdout.strip()) == (0, f"ghibli {version}")

    helped = subprocess.run(
        [sys.executable, "-m", "ghibli", "--help"], capture_output=True, text=True, cwd=ROOT, check=False
    ).stdout
    sections = [line for line in helped.splitlines() if line and not line.startswith(" ")]
    assert sections[-3:] == [
        "Use (talk to a server):",
        "Operate (look after a stack):",
        "Run (the stack's processes):",
    ]
    use = helped.split("Use (talk to a server):")[1].split("Operate")[0]
    assert [line.split()[0] for line in use.strip().splitlines()] == [
        "submit", "jobs", "status", "wait", "download", "cancel"
    ]  # fmt: skip
    assert "Other" not in helped  # every command has its place

    # Every option that is a numeric setting is typed as a number, in every command.
    numeric = {i.env: i.value_type for i in iter_settings() if i.value_type in (int, float)}
    checked = 0
    for name, command in cli.commands.items():
        for param in command.params:
            if isinstance(param, click.Option) and param.envvar in numeric:
                expected = click.INT if numeric[str(param.envvar)] is int else click.FLOAT
                assert param.type is expected, (name, param.opts[0], param.type)
                checked += 1
    assert checked > 30
    ingest_help = subprocess.run(
        [sys.executable, "-m", "ghibli", "ingest", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    ).stdout
    assert re.search(r"--port INTEGER", ingest_help)
    assert not re.search(r"--(port|max-upload-bytes|sse-keepalive-seconds) TEXT", ingest_help)
    consume_help = subprocess.run(
        [sys.executable, "-m", "ghibli", "consume", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    ).stdout
    assert re.search(r"--lease-seconds FLOAT", consume_help)


# ---------------------------------------------------------------------------------------------
# jobs, prefixes, wait, download


def _rows(listing: str) -> dict[str, list[str]]:
    """`ghibli jobs` table: short id -> its columns."""
    lines = listing.strip().splitlines()
    assert lines[0].split()[:3] == ["ID", "STATE", "DONE"], listing
    return {line.split()[0]: line.split() for line in lines[1:]}


def test_jobs_prefixes_wait_and_download(
    held: tuple[Ingest, ScriptedConsumer], tmp_path: Path, history: Path
) -> None:
    ingest, consumer = held
    photos = [
        photo(tmp_path / name, seed=60 + i) for i, name in enumerate(("cat.jpg", "tea.jpg", "moon.jpg"))
    ]
    detached = ghibli_cli(history, "submit", *map(str, photos), "--detach", "--server", ingest.url)
    assert detached.returncode == 0, detached.stderr
    cat, tea, moon = detached.stdout.split()
    # Each job is remembered, readable by this user only.
    assert history.stat().st_mode & 0o077 == 0
    assert [json.loads(line)["id"] for line in history.read_text().splitlines()] == [cat, tea, moon]

    listing = ghibli_cli(history, "jobs", "--server", ingest.url)
    assert listing.returncode == 0, listing.stderr
    rows = _rows(listing.stdout)
    assert list(rows) == [moon[:8], tea[:8], cat[:8]]  # newest first, short ids
    assert {row[1] for row in rows.values()} == {"queued"}
    assert [row[4] for row in rows.values()] == ["moon.jpg", "tea.jpg", "cat.jpg"]

    # A prefix works everywhere; the status names the engine the job was sent to.
    status = ghibli_cli(history, "status", cat[:6], "--server", ingest.url)
    assert status.returncode == 0, status.stderr
    assert status.stdout.startswith(f"{cat}  queued")
    assert "engine: unknown" in status.stdout  # the held stack's Space URL answers nobody

    # The cat is painted while `wait` follows it; the tea fails.
    waiting = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ghibli",
            "wait",
            cat[:7],
            tea[:7],
            "--server",
            ingest.url,
            "--progress",
            "lines",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=cli_env(history),
    )
    try:
        assert waiting.stderr is not None
        painted = encode(Image.new("RGB", (512, 384), (90, 140, 80)), "PNG")
        claim = consumer.take(cat)
        consumer.update(claim, Status.RUNNING, progress=0.5, phase="painting")
        # Labelled by the photo's name from the history, with the time left.
        deadline = time.monotonic() + 30
        while "cat.jpg:  50% painting" not in (line := waiting.stderr.readline()):
            assert line, "wait ended early"
            assert time.monotonic() < deadline, "the running state never showed"
        assert re.search(r"\(\d+:\d\d left\)", line), line
        consumer.succeed(claim, painted)
        failing = consumer.take(tea)
        consumer.finish(failing, Status.FAILED, error_code="space_rejected", error_message="no content")
        out, err = waiting.communicate(timeout=60)
    finally:
        if waiting.poll() is None:
            waiting.kill()
    assert waiting.returncode == 1, err
    assert out.splitlines() == [f"{cat}  succeeded  done", f"{tea}  failed  failed: no content"]

    # States now, and the filter.
    rows = _rows(ghibli_cli(history, "jobs", "--server", ingest.url).stdout)
    assert [row[1] for row in rows.values()] == ["queued", "failed", "succeeded"]
    only = _rows(ghibli_cli(history, "jobs", "--state", "succeeded", "--server", ingest.url).stdout)
    assert list(only) == [cat[:8]]

    # Download: the picture named after its photo, in the asked format; a job this CLI did not
    # submit (full id) is named after its id.
    other = httpx.post(f"{ingest.url}/v1/jobs", files={"image": photos[2].read_bytes()}).json()["id"]
    consumer.succeed(consumer.take(other), painted)
    folder = tmp_path / "pictures"
    fetched = ghibli_cli(
        history, "download", cat[:5], other, "-o", str(folder), "--format", "jpeg", "--server", ingest.url
    )
    assert fetched.returncode == 0, fetched.stderr
    assert fetched.stdout.split() == [str(folder / "cat.ghibli.jpg"), str(folder / f"{other}.ghibli.jpg")]
    assert Image.open(folder / "cat.ghibli.jpg").format == "JPEG"
    # A failed job has no picture: a clear error, exit 1.
    nothing = ghibli_cli(history, "download", tea[:8], "-o", str(folder), "--server", ingest.url)
    assert nothing.returncode == 1
    assert "failed: no content (space_rejected)" in nothing.stderr

    # Erased elsewhere: the history shows it as gone; `cancel` by prefix forgets it too.
    assert httpx.delete(f"{ingest.url}/v1/jobs/{tea}").status_code == 204
    gone = _rows(ghibli_cli(history, "jobs", "--state", "gone", "--server", ingest.url).stdout)
    assert list(gone) == [tea[:8]]
    cancelled = ghibli_cli(history, "cancel", moon[:6], "--server", ingest.url)
    assert cancelled.stdout.strip() == f"{moon}: cancelled and erased"
    assert moon[:8] not in _rows(ghibli_cli(history, "jobs", "--server", ingest.url).stdout)


def test_ambiguous_and_unknown_prefixes_are_refused_with_the_candidates(
    held: tuple[Ingest, ScriptedConsumer], history: Path
) -> None:
    ingest, _consumer = held
    twins = ["abcd" + "0" * 27 + "1", "abcd" + "0" * 27 + "2"]
    history.parent.mkdir(parents=True)
    history.write_text(
        "".join(
            json.dumps({"id": i, "server": ingest.url, "photo": "", "submitted_at": 1.0}) + "\n"
            for i in twins
        )
    )
    for command in ("status", "wait", "download", "cancel"):
        done = ghibli_cli(history, command, "abcd", "--server", ingest.url)
        assert done.returncode == 2, (command, done.stderr)
        assert f"id prefix 'abcd' is ambiguous: {twins[0]}, {twins[1]}" in done.stderr, command
    unknown = ghibli_cli(history, "status", "ffff", "--server", ingest.url)
    assert unknown.returncode == 2
    assert "no job starting with 'ffff' among the 2 jobs this CLI submitted to" in unknown.stderr
    # Another server's history does not complete prefixes here.
    elsewhere = ghibli_cli(history, "status", "abcd", "--server", "http://127.0.0.1:9")
    assert "no job starting with 'abcd' among the 0 jobs" in elsewhere.stderr
    bad = ghibli_cli(history, "status", "not-an-id", "--server", ingest.url)
    assert "'not-an-id' is not a job id" in bad.stderr


def test_every_job_through_the_admin_api(
    held: tuple[Ingest, ScriptedConsumer], tmp_path: Path, history: Path
) -> None:
    ingest, _consumer = held
    stranger = httpx.post(
        f"{ingest.url}/v1/jobs", files={"image": photo(tmp_path / "s.jpg", 90).read_bytes()}
    )
    job_id = stranger.json()["id"]
    # Not this CLI's job: not in its list.
    assert job_id[:8] not in ghibli_cli(history, "jobs", "--server", ingest.url).stdout
    refused = ghibli_cli(history, "jobs", "--all", "--server", ingest.url)
    assert refused.returncode == 2
    assert "set ADMIN_SECRET" in refused.stderr
    every = ghibli_cli(history, "jobs", "--all", "--json", "--server", ingest.url, ADMIN_SECRET=ADMIN_SECRET)
    assert every.returncode == 0, every.stderr
    listed = {json.loads(line)["id"]: json.loads(line)["state"] for line in every.stdout.splitlines()}
    assert listed[job_id] == "queued"
    wrong = ghibli_cli(history, "jobs", "--all", "--server", ingest.url, ADMIN_SECRET="wrong")
    assert wrong.returncode == 1
    assert "unauthorized" in wrong.stderr
