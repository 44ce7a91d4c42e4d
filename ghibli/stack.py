"""Where the stack is: `ghibli up` records the stack it runs; the other commands find it and use it.

`ghibli up` writes `<data dir>/stack.json` (state starting, running, stopping) and marks it stopped
when it exits. The commands that talk to a stack (doctor, dlq, metrics-exporter, submit, status, ...)
look for it in $GHIBLI_UP_DATA_DIR, else in `.ghibli/` of this directory or of a parent (as git finds
`.git`). A record counts only while the `ghibli up` process that wrote it lives on this machine.

Options and environment variables still win over the record, and every command says on its first
line what it talks to and where that came from: `doctor: redis redis://127.0.0.1:6380/0 (from ghibli
up), space http://127.0.0.1:7861/ (from ghibli up)`. No secret is recorded: a password in REDIS_URL
is cut out (REDIS_PASSWORD_FILE, a path, is kept), secrets stay in the environment.
"""

from __future__ import annotations

import os
import re
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import msgspec

from jobs.settings import Settings, SettingsError, iter_settings, load_settings

__all__ = [
    "DATA_DIR_ENV",
    "DEFAULT_DATA_DIR",
    "DEFAULT_SERVER",
    "Found",
    "StackRecord",
    "Target",
    "find_stack",
    "process_started",
    "resolve",
    "server_callback",
    "write_record",
]

STACK_FILE = "stack.json"
DATA_DIR_ENV = "GHIBLI_UP_DATA_DIR"
DEFAULT_DATA_DIR = ".ghibli"
DEFAULT_SERVER = "http://127.0.0.1:8000"
FROM_UP = "from ghibli up"
# How one process presents itself, not how the stack is configured.
_NOT_RECORDED = frozenset({"log_level", "log_format", "consumer_name", "metrics_port"})
_LABELS = {"redis_url": "redis", "space": "space"}


class StackRecord(msgspec.Struct, kw_only=True):
    """One stack `ghibli up` runs (or ran): its processes' settings and where to reach it."""

    state: str  # starting, running, stopping, stopped
    pid: int
    pid_started: int  # the process's start time (clock ticks since boot): a reused pid is not `up`
    host: str
    started_at: float
    server: str  # the ingest API, as a client reaches it
    redis_url: str
    space: str
    offline_space: bool
    settings: dict[str, str]  # environment variable -> value, for every setting that is not a secret
    stopped_at: float | None = None
    version: int = 1

    def running(self) -> bool:
        return (
            self.state != "stopped"
            and self.host == socket.gethostname()
            and process_started(self.pid) == self.pid_started
        )


def process_started(pid: int) -> int | None:
    """Start time of a live process in clock ticks since boot (Linux /proc); None if it is gone.

    Elsewhere 0 for any live process: the pid alone then identifies it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        if not Path("/proc/self/stat").exists():
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return None
            except PermissionError:
                return 0
            return 0
        return None
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] == "Z" else int(fields[19])


def record_for(
    settings: Settings, *, state: str, server: str, offline_space: bool, started_at: float
) -> StackRecord:
    """The record of a stack whose processes run with these settings."""
    values = {
        info.env: _env_value(getattr(settings, info.name))
        for info in iter_settings()
        if not info.secret and info.name not in _NOT_RECORDED
    }
    values["REDIS_URL"] = _without_password(settings.redis_url)
    return StackRecord(
        state=state,
        pid=os.getpid(),
        pid_started=process_started(os.getpid()) or 0,
        host=socket.gethostname(),
        started_at=started_at,
        server=server,
        redis_url=values["REDIS_URL"],
        space=settings.space,
        offline_space=offline_space,
        settings=values,
    )


def _env_value(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _without_password(url: str) -> str:
    return re.sub(r"(://[^:/@]*):[^@]*@", r"\1@", url)


def write_record(data_dir: Path, record: StackRecord) -> Path:
    """Atomically (a reader never sees half a file)."""
    path = data_dir / STACK_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(msgspec.json.format(msgspec.json.encode(record)) + b"\n")
    tmp.replace(path)
    return path


@dataclass(frozen=True, slots=True)
class Found:
    path: Path
    record: StackRecord

    @property
    def running(self) -> bool:
        return self.record.running()


def read_record(path: Path) -> StackRecord | None:
    try:
        return msgspec.json.decode(path.read_bytes(), type=StackRecord)
    except (OSError, msgspec.DecodeError):
        return None


def find_stack(cwd: Path | None = None, environ: Mapping[str, str] | None = None) -> Found | None:
    """The nearest stack record: in $GHIBLI_UP_DATA_DIR, else in .ghibli/ here or in a parent."""
    environ = os.environ if environ is None else environ
    if environ.get(DATA_DIR_ENV):
        candidates = [Path(environ[DATA_DIR_ENV]) / STACK_FILE]
    else:
        here = (cwd or Path.cwd()).resolve()
        candidates = [d / DEFAULT_DATA_DIR / STACK_FILE for d in (here, *here.parents)]
    for path in candidates:
        record = read_record(path)
        if record is not None:
            return Found(path, record)
    return None


# --- what a command talks to -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    """The settings a command runs with, the stack they came from (if any) and each value's origin."""

    settings: Settings
    stack: Found | None
    origins: Mapping[str, str] = field(default_factory=dict)
    stopped_stack: Found | None = None

    def origin(self, name: str) -> str:
        origin = self.origins.get(name, "default")
        if origin == "default" and self.stopped_stack is not None:
            return f"default; the ghibli up stack of {self.stopped_stack.path.parent} is not running"
        return origin

    def describe(self, *names: str) -> str:
        """`redis redis://127.0.0.1:6380/0 (from ghibli up), space ... (default)`."""
        shown = []
        for name in names:
            value = re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", str(getattr(self.settings, name)))
            shown.append(f"{_LABELS.get(name, name)} {value} ({self.origin(name)})")
        return ", ".join(shown)


def resolve(
    values: Mapping[str, Any], ctx: click.Context | None = None, environ: Mapping[str, str] | None = None
) -> Target:
    """Settings for a command: its options and the environment, then the running stack, then defaults.

    Raises SettingsError as load_settings does."""
    environ = os.environ if environ is None else environ
    found = find_stack(environ=environ)
    running = found if found is not None and found.running else None
    recorded = running.record.settings if running is not None else {}
    names = {info.name for info in iter_settings()}
    settings = load_settings({k: v for k, v in values.items() if k in names}, environ={**recorded, **environ})
    origins: dict[str, str] = {}
    for info in iter_settings():
        source = ctx.get_parameter_source(info.name) if ctx is not None else None
        if source is click.core.ParameterSource.COMMANDLINE:
            origins[info.name] = f"from {info.option}"
        elif source is click.core.ParameterSource.ENVIRONMENT or info.env in environ:
            origins[info.name] = f"from {info.env}"
        elif info.env in recorded:
            origins[info.name] = FROM_UP
    stopped = found if found is not None and running is None else None
    return Target(settings, running, origins, stopped)


def resolve_or_fail(values: Mapping[str, Any], ctx: click.Context | None = None) -> Target:
    """resolve(), with a bad setting as a usage error that names it."""
    try:
        return resolve(values, ctx)
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from None


def server_callback(ctx: click.Context, _param: click.Parameter, value: str | None) -> str:
    """--server: given, else the running stack's ingest, else the default.

    A server the user did not name (the stack's, or the default) is named on stderr's first line;
    one given with --server or GHIBLI_SERVER is not repeated back (scripts read these lines)."""
    if value is not None:
        return value
    found = find_stack()
    if found is not None and found.running:
        value, origin = found.record.server, FROM_UP
    else:
        value, origin = DEFAULT_SERVER, "default"
    click.echo(f"{ctx.info_name}: server {value} ({origin})", err=True)
    return value


def age(record: StackRecord) -> str:
    """How long ago the stack started, for messages."""
    seconds = max(0, int(time.time() - record.started_at))
    return (
        f"{seconds // 3600}h{seconds // 60 % 60:02d}m"
        if seconds >= 3600
        else f"{seconds // 60}m{seconds % 60:02d}s"
    )
