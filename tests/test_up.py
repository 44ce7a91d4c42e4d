"""`ghibli up` starts the whole stack; `ghibli submit` gets a picture; SIGTERM leaves nothing behind.

Ctrl-C is tested as a person presses it: `up` runs in a pseudo-terminal (tests/pty_kit.py) and the
test types the interrupt character, so the terminal signals the whole foreground process group.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import redis
from PIL import Image

from ghibli.up_signals import Received, StopPolicy
from jobs.keys import Keys
from tests.photos import encode, landscape
from tests.procs import ROOT, RedisServer, base_env, children_of, free_port, ghibli, pid_alive, wait_until
from tests.pty_kit import PtyProc


@pytest.mark.system
def test_up_submit_and_clean_shutdown(tmp_path: Path) -> None:
    port, redis_port, space_port = free_port(), free_port(), free_port()
    env = base_env(GHIBLI_PORT=str(port), GHIBLI_SHUTDOWN_GRACE_SECONDS="5")
    up = ghibli(
        [
            "up",
            "--redis-port",
            str(redis_port),
            "--space-port",
            str(space_port),
            "--consumers",
            "2",
            "--data-dir",
            str(tmp_path / "data"),
        ],
        env,
        tmp_path / "up.log",
    ).start()
    try:
        wait_until(lambda: "ghibli-pipeline is up" in up.log(), "ghibli up", 120, up.proc)
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz").json()
        assert (ready["status"], ready["engine"]["kind"]) == ("ready", "offline-demo")
        assert ready["redis"]["topology"] == "standalone"
        stack = children_of(up.pid)
        assert len(stack) >= 5, up.log()  # redis, space, ingest, 2 consumers

        photo = tmp_path / "photo.jpg"
        landscape(480, 360).save(photo)
        out = tmp_path / "out.webp"
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "ghibli",
                "submit",
                str(photo),
                "-o",
                str(out),
                "--server",
                f"http://127.0.0.1:{port}",
                "--width",
                "384",
                "--height",
                "256",
            ],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr + up.log()[-3000:]
        assert Image.open(out).size == (384, 256)

        up.signal(signal.SIGTERM)
        assert up.wait(60) == 0, up.log()[-3000:]
        assert_all_gone(stack)
    finally:
        up.stop()
    # SIGTERM stops the stack in the order Ctrl-C does.
    text = up.log()
    assert f"ghibli up: stopping (SIGTERM from pid {os.getpid()})" in text, text[-3000:]
    stopped_consumers_before_redis(text)


# --- Ctrl-C in a terminal --------------------------------------------------------------------------


@dataclass
class Up:
    """`ghibli up` in a pseudo-terminal, run in `cwd` (its data directory is cwd/.ghibli)."""

    cwd: Path
    space_delay: float
    grace_s: float = 30.0
    port: int = field(default_factory=free_port)
    redis_port: int = field(default_factory=free_port)
    space_port: int = field(default_factory=free_port)
    term: PtyProc | None = None
    stack: set[int] = field(default_factory=set)
    up_at: float = 0.0

    @property
    def server(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, transcript: str) -> Up:
        env = base_env(
            GHIBLI_PORT=str(self.port),
            GHIBLI_SHUTDOWN_GRACE_SECONDS=str(self.grace_s),
            GHIBLI_SPACE_DELAY=str(self.space_delay),  # read by the offline Space `up` starts
        )
        argv = [sys.executable, "-m", "ghibli", "up", "--redis-port", str(self.redis_port)]
        argv += ["--space-port", str(self.space_port), "--space-engine", "fast", "--consumers", "2"]
        self.term = PtyProc(argv, env, self.cwd, self.cwd / transcript)
        self.term.wait_for("ghibli-pipeline is up", 180)
        self.up_at = time.monotonic()
        self.stack = children_of(self.term.pid)
        return self

    @property
    def pty(self) -> PtyProc:
        assert self.term is not None
        return self.term

    def submit(self) -> str:
        photo = encode(landscape(320, 240))
        reply = httpx.post(
            f"{self.server}/v1/jobs",
            files={"image": ("photo.jpg", photo, "image/jpeg")},
            data={"width": "256", "height": "256"},
            timeout=30,
        )
        assert reply.status_code == 202, reply.text
        job_id: str = reply.json()["id"]
        return job_id

    def job(self, job_id: str) -> dict[str, object]:
        row: dict[str, object] = httpx.get(f"{self.server}/v1/jobs/{job_id}", timeout=10).json()
        return row

    def wait_calling(self, job_id: str) -> None:
        """Until the Space call of this job is under way."""
        wait_until(
            lambda: (
                self.job(job_id)["status"] == "running" and self.job(job_id)["phase"] not in ("", "starting")
            ),
            "the job's Space call",
            60,
        )

    def stop(self) -> None:
        if self.term is not None:
            self.term.stop()


def json_lines(text: str) -> list[dict[str, object]]:
    rows = []
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def line_of(text: str, marker: str) -> int:
    """Index of the last line containing marker, -1 if none."""
    found = [i for i, line in enumerate(text.splitlines()) if marker in line]
    return found[-1] if found else -1


def stopped_consumers_before_redis(text: str) -> None:
    lines = text.splitlines()
    stopped = [i for i, line in enumerate(lines) if '"consumer stopped"' in line]
    redis_bye = line_of(text, "Redis is now ready to exit")
    assert len(stopped) == 2, text[-4000:]
    assert redis_bye > max(stopped), "Redis stopped before the last consumer:\n" + text[-4000:]


def read_job_from_aof(data_dir: Path, job_id: str) -> dict[bytes, bytes]:
    """The job as the append-only file `up`'s Redis wrote keeps it: a Redis of its own replays it."""
    server = RedisServer(data_dir / "redis", appendonly=True).start()
    try:
        with redis.Redis(port=server.port) as client:
            fields: dict[bytes, bytes] = client.hgetall(Keys().job(job_id))
            return fields
    finally:
        server.stop()


def assert_all_gone(pids: set[int]) -> None:
    deadline = time.monotonic() + 10
    while any(pid_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [p for p in pids if pid_alive(p)], "processes of the stack outlived `ghibli up`"


@pytest.mark.parametrize(
    ("signals", "verdicts"),
    [
        # Ctrl-C, and `uv run` forwarding it: one request.
        ([(signal.SIGINT, "the terminal", 0.0), (signal.SIGINT, "pid 7", 0.01)], ["drain", "repeat"]),
        # Ctrl-C twice, however fast: at once.
        ([(signal.SIGINT, "the terminal", 0.0), (signal.SIGINT, "the terminal", 0.2)], ["drain", "now"]),
        # Another sender, later than the window: a new request.
        ([(signal.SIGTERM, "pid 7", 0.0), (signal.SIGINT, "the terminal", 1.5)], ["drain", "now"]),
        (
            [(signal.SIGHUP, None, 0.0), (signal.SIGHUP, None, 0.1), (signal.SIGINT, None, 0.2)],
            ["drain", "now", "again"],
        ),
    ],
)
def test_who_sent_a_stop_signal_decides_what_it_means(
    signals: list[tuple[int, str | None, float]], verdicts: list[str]
) -> None:
    policy = StopPolicy(window_s=1.0)
    assert [policy.classify(Received(signum, source, at)) for signum, source, at in signals] == verdicts


@pytest.mark.system
def test_ctrl_c_finishes_the_running_job_and_stops_redis_last(tmp_path: Path) -> None:
    up = Up(tmp_path, space_delay=8).start("up.log")
    try:
        # Only `up` is in the terminal's session: Ctrl-C cannot reach its children.
        assert len(up.stack) >= 6, up.pty.text()  # redis, space, ingest, 2 consumers, webhooks
        assert all(os.getsid(pid) != os.getsid(up.pty.pid) for pid in up.stack if pid_alive(pid))
        job_id = up.submit()
        up.wait_calling(job_id)
        up.pty.interrupt()
        # A parent in the terminal's group (uv run, tini) forwarding its own copy: the same request.
        time.sleep(0.05)
        os.kill(up.pty.pid, signal.SIGTERM)
        assert up.pty.wait(120) == 0, up.pty.text()[-4000:]
    finally:
        up.stop()
    text = up.pty.text()
    assert "ghibli up: stopping (SIG" in text, text[-4000:]
    assert "the same stop request delivered twice; still stopping in order" in text, text[-4000:]
    assert "Ctrl-C again to stop at once" in text
    assert "second signal" not in text, text[-4000:]
    assert "stopping at once" not in text, text[-4000:]
    assert not [r for r in json_lines(text) if str(r.get("event")).startswith("stop request repeated")]
    stopped_consumers_before_redis(text)
    assert line_of(text, "ghibli up: ingest stopped") < line_of(
        text, "ghibli up: consumers and webhooks stopped"
    )
    assert "redis stopped, its append-only file written" in text
    assert_all_gone(up.stack)
    job = read_job_from_aof(tmp_path / ".ghibli", job_id)
    assert (job[b"status"], job[b"attempt"]) == (b"succeeded", b"1"), job
    record = json.loads((tmp_path / ".ghibli" / "stack.json").read_text())
    assert record["state"] == "stopped"


@pytest.mark.system
def test_two_ctrl_c_stop_at_once_and_the_job_runs_again_at_the_next_start(tmp_path: Path) -> None:
    up = Up(tmp_path, space_delay=60).start("up-1.log")
    try:
        job_id = up.submit()
        up.wait_calling(job_id)
        up.pty.interrupt()
        time.sleep(0.3)
        up.pty.interrupt()
        asked = time.monotonic()
        assert up.pty.wait(60) == 0, up.pty.text()[-4000:]
        took = time.monotonic() - asked
    finally:
        up.stop()
    text = up.pty.text()
    print(f"stopped {took:.1f} s after the second Ctrl-C (the call had ~60 s to go)")
    assert took < 30, text[-4000:]
    assert "ghibli up: stopping at once (SIGINT from the terminal)" in text, text[-4000:]
    rows = json_lines(text)
    assert [r for r in rows if r.get("event") == "stopping at once" and r.get("signal") == "SIGQUIT"]
    assert sum(1 for r in rows if r.get("event") == "handed back for immediate reclaim") == 1, text[-4000:]
    stopped_consumers_before_redis(text)
    assert_all_gone(up.stack)

    # The next start runs the job at once: it was handed back, there is no lease to wait out.
    again = Up(tmp_path, space_delay=0.5).start("up-2.log")
    try:
        wait_until(lambda: again.job(job_id)["status"] == "succeeded", "the handed-back job", 60)
        took = time.monotonic() - again.up_at
        print(f"the handed-back job finished {took:.1f} s after the restart said up (lease 30 s)")
        assert took < 10, again.pty.text()[-4000:]
        assert again.job(job_id)["attempt"] == 2
        again.pty.interrupt()
        assert again.pty.wait(60) == 0
    finally:
        again.stop()


@pytest.mark.system
@pytest.mark.parametrize("part", ["ingest", "redis"])
def test_a_taken_port_is_named_before_anything_starts(tmp_path: Path, part: str) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        port = taken if part == "ingest" else free_port()
        redis_port = taken if part == "redis" else free_port()
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "ghibli",
                "up",
                "--redis-port",
                str(redis_port),
                "--space-port",
                str(free_port()),
            ],
            env=base_env(GHIBLI_PORT=str(port)),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    # Who holds it, when /proc says: here this test's own process.
    assert f"ghibli up: port {taken} is taken by " in out, out
    assert f"(pid {os.getpid()})" in out, out
    what, option = ("ingest", "--port (GHIBLI_PORT)") if part == "ingest" else ("Redis", "--redis-port")
    assert f"{what} cannot listen on 127.0.0.1:{taken}" in out, out
    assert option in out, out
    assert "is up" not in out
    assert not (tmp_path / ".ghibli" / "redis").exists()  # nothing was started


def run_ghibli(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """A command as a person runs it after `ghibli up`: in that directory, no option, no variable."""
    return subprocess.run(
        [sys.executable, "-m", "ghibli", *args],
        env=base_env(**env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.system
def test_other_commands_use_the_stack_up_started_and_name_it(tmp_path: Path) -> None:
    up = Up(tmp_path, space_delay=0).start("up.log")
    redis_url = f"redis://127.0.0.1:{up.redis_port}/0"
    space_url = f"http://127.0.0.1:{up.space_port}/"
    try:
        doctor = run_ghibli(["doctor"], tmp_path)
        report = doctor.stdout
        print(report)
        assert report.splitlines()[0] == (
            f"doctor: redis {redis_url} (from ghibli up), space {space_url} (from ghibli up)"
        ), report + doctor.stderr
        assert doctor.returncode == 0, report
        assert "FAIL" not in report
        assert "All checks passed." in report, report  # no problem, and no warning either
        assert "2 consumer(s) alive" in report, report

        dlq = run_ghibli(["dlq", "list"], tmp_path)
        assert dlq.returncode == 0, dlq.stderr
        assert dlq.stderr.splitlines()[0] == f"dlq: redis {redis_url} (from ghibli up)", dlq.stderr
        assert "0 dead letter(s)" in dlq.stderr

        job_id = up.submit()
        status = run_ghibli(["status", job_id, "--json"], tmp_path)
        assert status.returncode == 0, status.stderr
        assert status.stderr.splitlines()[0] == f"status: server {up.server} (from ghibli up)"
        assert json.loads(status.stdout)["id"] == job_id

        # Found from a subdirectory too (as git finds .git); an explicit variable wins and is named.
        (tmp_path / "photos").mkdir()
        below = run_ghibli(["dlq", "list"], tmp_path / "photos")
        assert below.stderr.splitlines()[0] == f"dlq: redis {redis_url} (from ghibli up)", below.stderr
        told = run_ghibli(["dlq", "list"], tmp_path, REDIS_URL=redis_url.replace("/0", "/1"))
        assert told.stderr.splitlines()[0] == f"dlq: redis {redis_url.replace('/0', '/1')} (from REDIS_URL)"

        # A second `ghibli up` on the same data directory is refused, naming the first.
        ports = ["--redis-port", str(free_port()), "--space-port", str(free_port())]
        second = run_ghibli(["up", *ports], tmp_path, GHIBLI_PORT=str(free_port()))
        assert second.returncode == 1
        assert f"ghibli up already runs with the data directory .ghibli (pid {up.pty.pid}" in second.stderr

        up.pty.interrupt()
        assert up.pty.wait(60) == 0, up.pty.text()[-4000:]
    finally:
        up.stop()
    # A stopped stack is not used, and the first line says why the defaults are checked.
    after = run_ghibli(["doctor", "--check", "settings"], tmp_path)
    stopped = f"the ghibli up stack of {tmp_path / '.ghibli'} is not running"
    assert after.stdout.splitlines()[0].startswith(
        f"doctor: redis redis://127.0.0.1:6379/0 (default; {stopped})"
    ), after.stdout


@pytest.mark.system
def test_closing_the_terminal_stops_the_stack_in_order_too(tmp_path: Path) -> None:
    """SIGHUP from a hung-up terminal: `up` can no longer write there, and still stops in order."""
    up = Up(tmp_path, space_delay=8).start("up.log")
    try:
        job_id = up.submit()
        up.wait_calling(job_id)
        up.pty.close()
        assert up.pty.wait(120) == 0
    finally:
        up.stop()
    assert_all_gone(up.stack)
    data_dir = tmp_path / ".ghibli"
    assert json.loads((data_dir / "stack.json").read_text())["state"] == "stopped"
    server = RedisServer(data_dir / "redis", appendonly=True).start()
    try:
        with redis.Redis(port=server.port) as client:
            job = client.hgetall(Keys().job(job_id))
            assert (job[b"status"], job[b"attempt"]) == (b"succeeded", b"1"), job
            # Both consumers said goodbye and left the group before Redis wrote its last AOF record.
            assert client.xinfo_consumers(Keys().stream, Keys().group) == []
            assert list(client.scan_iter(match=Keys().alive("*"))) == []
    finally:
        server.stop()
