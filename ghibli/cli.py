"""The `ghibli` command: its groups of subcommands (use / operate / run), and the ones that run
the stack's processes (up, ingest, consume, space).

Options that are settings come from jobs.settings (same names, same environment variables, same
help, typed INTEGER/FLOAT/BOOLEAN like the setting), so `--help`, the table in docs/configuration.md and the
validation messages cannot drift apart; ranges are checked by the settings object.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from ghibli import cmd_client
from jobs.settings import Settings, SettingsError, iter_settings, load_settings

F = TypeVar("F", bound=Callable[..., Any])

COMMON = (
    "redis_url",
    "redis_password_file",
    "key_prefix",
    "stream_name",
    "group_name",
    "job_ttl_seconds",
    "blob_ttl_seconds",
    "blob_dir",
    "log_level",
    "log_format",
)
# The decode sandbox (sandbox/): ingest decodes uploads, consumers check the Space's pictures.
DECODE = ("decode_workers", "decode_memory_mb", "decode_cpu_seconds", "decode_timeout_seconds")
CONSUMER = (
    "space",
    "space_plaintext_hosts",
    "call_timeout_seconds",
    "hf_tokens_file",
    "token_max_in_flight",
    "quota_cooldown_seconds",
    "gpu_seconds_per_call",
    "breaker_open_seconds",
    "concurrency",
    "consumer_name",
    "lease_seconds",
    "heartbeat_seconds",
    "heartbeat_timeout_seconds",
    "shutdown_grace_seconds",
    "max_attempts",
    "max_deliveries",
    "retry_base_seconds",
    "retry_cap_seconds",
    "metrics_port",
    "metrics_host",
)
INGEST = (
    "host",
    "port",
    "ingest_workers",
    "max_upload_bytes",
    "max_pixels",
    "max_jpeg_scans",
    "max_backlog",
    "max_unfinished_per_client",
    "max_stored_bytes_per_client",
    "rate_limit_submits",
    "rate_limit_requests",
    "trusted_proxies",
    "ipv6_client_prefix",
    "allowed_origins",
    "idempotency_ttl_seconds",
    "result_cache",
    "sse_keepalive_seconds",
    "header_timeout_seconds",
    "body_timeout_seconds",
    "keepalive_timeout_seconds",
    "max_connections_per_client",
    "max_connections",
    "max_streams_per_client",
    "max_streams",
    # API keys and webhook subscriptions (docs/webhooks.md); the keys themselves: environment only.
    "api_keys_file",
    "public_submissions",
    "webhook_allow_http",
    "webhook_allow_networks",
)


_CLICK_TYPES: dict[type, click.ParamType[Any]] = {int: click.INT, float: click.FLOAT, bool: click.BOOL}


def settings_options(*names: str, shown: Mapping[str, str] | None = None) -> Callable[[F], F]:
    """Click options for these settings; secrets are read from the environment only.

    `shown` replaces the default a command's help shows where the command itself picks the value
    (`up` starts its own Redis and Space), so help never lists a default that is not used."""
    infos = {info.name: info for info in iter_settings()}
    shown = shown or {}

    def decorate(fn: F) -> F:
        for name in reversed(names):
            info = infos[name]
            fn = click.option(
                info.option,
                name,
                type=_CLICK_TYPES.get(info.value_type, click.STRING),
                envvar=info.env,
                show_envvar=True,
                default=None,
                help=f"{info.help} [default: {shown.get(name, info.default)}]",
            )(fn)
        return fn

    return decorate


def _settings(values: dict[str, Any]) -> Settings:
    names = {info.name for info in iter_settings()}
    try:
        return load_settings({k: v for k, v in values.items() if k in names})
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from None


def _configure_logs(settings: Settings) -> None:
    from jobs.logs import configure_logging

    configure_logging(settings.log_level, settings.log_format)


# `ghibli --help` lists commands by what a person is doing, in this order.
SECTIONS = (
    ("Use (talk to a server)", ("submit", "jobs", "status", "wait", "download", "cancel")),
    ("Operate (look after a stack)", ("doctor", "dlq", "keys")),
    ("Run (the stack's processes)", ("up", "ingest", "consume", "space", "webhooks", "metrics-exporter")),
)


class SectionedGroup(click.Group):
    """A group whose help lists its commands in SECTIONS (any other command under "Other")."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        ordered = [name for _title, names in SECTIONS for name in names if name in self.commands]
        return ordered + sorted(set(self.commands) - set(ordered))

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        placed: set[str] = set()
        limit = formatter.width - 6 - max(len(name) for name in self.commands)
        for title, names in (*SECTIONS, ("Other", tuple(sorted(self.commands)))):
            rows = []
            for name in names:
                command = self.commands.get(name)
                if command is None or command.hidden or name in placed:
                    continue
                placed.add(name)
                rows.append((name, command.get_short_help_str(limit)))
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)


@click.group(
    cls=SectionedGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(package_name="ghibli-pipeline", prog_name="ghibli", message="%(prog)s %(version)s")
def cli() -> None:
    """ghibli-pipeline: photos in, Studio-Ghibli-style pictures out.

    Start here: `ghibli up` runs everything on this machine; `ghibli submit photo.jpg` paints one.
    """


# What `up` really uses where it picks a value itself.
UP_SHOWN = {
    "redis_url": "a Redis started here on --redis-port, redis://127.0.0.1:6380/0",
    "space": "the offline Space started here on --space-port, http://127.0.0.1:7861/",
    "consumer_name": "<host>-up-<n> for consumer n",
    "metrics_port": "0 (off); when set, consumer n listens on this port + n",
    "log_format": "auto: console when up runs on a terminal, else json",
}


@cli.command()
@settings_options(*COMMON, *DECODE, *CONSUMER, *INGEST, shown=UP_SHOWN)
@click.option(
    "--consumers",
    type=click.IntRange(1, 64),
    default=2,
    show_default=True,
    envvar="GHIBLI_UP_CONSUMERS",
    show_envvar=True,
    help="Consumer processes to start.",
)
@click.option(
    "--redis-port",
    type=click.IntRange(1, 65535),
    default=6380,
    show_default=True,
    envvar="GHIBLI_UP_REDIS_PORT",
    show_envvar=True,
    help="Port of the Redis started here (when REDIS_URL is not set).",
)
@click.option(
    "--space-port",
    type=click.IntRange(1, 65535),
    default=7861,
    show_default=True,
    envvar="GHIBLI_UP_SPACE_PORT",
    show_envvar=True,
    help="Port of the offline Space started here (when GHIBLI_SPACE is not set).",
)
@click.option(
    "--space-engine",
    type=click.Choice(["ghibli", "fast"]),
    default="ghibli",
    show_default=True,
    envvar="GHIBLI_UP_SPACE_ENGINE",
    show_envvar=True,
    help="Engine of the offline Space started here.",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".ghibli"),
    show_default=True,
    envvar="GHIBLI_UP_DATA_DIR",
    show_envvar=True,
    help="Where the Redis started here keeps its append-only file, and where up records the stack "
    "(stack.json) for the other commands run here.",
)
def up(
    consumers: int, redis_port: int, space_port: int, space_engine: str, data_dir: Path, **values: Any
) -> None:
    """Start the whole stack here: Redis, the offline Space, ingest, consumers and webhooks.

    Says "up" once every part answers. Ctrl-C (or SIGTERM, SIGHUP) stops it in order: ingest,
    then consumers finish running jobs within the grace period, then the Space, then Redis. A second
    Ctrl-C stops at once: running jobs are handed back and run again at the next start."""
    from ghibli.up import StackOptions, run_stack

    settings = _settings(values)
    options = StackOptions(
        consumers=consumers,
        redis_port=redis_port,
        space_port=space_port,
        space_engine=space_engine,
        data_dir=data_dir,
        start_redis=values.get("redis_url") is None,
        start_space=values.get("space") is None,
    )
    sys.exit(run_stack(settings, options))


@cli.command()
@settings_options(*COMMON, *DECODE, *INGEST)
def ingest(**values: Any) -> None:
    """Run the ingest HTTP API (Litestar on uvicorn)."""
    import uvicorn

    settings = _settings(values)
    _configure_logs(settings)
    _raise_open_files_limit()
    # Worker processes rebuild the settings from the environment.
    os.environ.update(settings.to_env())
    # Several workers share one socket: their metrics are summed through files (metrics/exposition.py).
    from metrics.exposition import prepare_multiprocess_dir

    prepare_multiprocess_dir(settings.ingest_workers)
    uvicorn.run(
        "ingest.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.ingest_workers,
        log_level="warning",
        # Open SSE streams would otherwise hold shutdown forever.
        timeout_graceful_shutdown=5,
        # Connection caps and the deadline on a request's head (ingest/connections.py); the body's
        # deadline is the app's (ingest/body_deadline.py).
        http="ingest.connections:GuardedH11Protocol",
        timeout_keep_alive=settings.keepalive_timeout_seconds,
        # X-Forwarded-For is read by ingest itself, from GHIBLI_TRUSTED_PROXIES only (ingest/client_ip.py).
        proxy_headers=False,
        access_log=False,
    )


def _raise_open_files_limit() -> None:
    """Up to the hard limit: every connection is a file descriptor, and the soft limit is often 1024
    (GHIBLI_MAX_CONNECTIONS, not the kernel, should be what refuses connections)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


@cli.command()
@settings_options(*COMMON, *DECODE, *CONSUMER)
def consume(**values: Any) -> None:
    """Run one consumer process of the group (add more processes or machines to scale out)."""
    from consumers.main import run_consumer

    settings = _settings(values)
    _configure_logs(settings)
    run_consumer(settings)


@cli.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    envvar="GHIBLI_SPACE_HOST",
    show_envvar=True,
    help="Address the offline Space listens on.",
)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=7861,
    show_default=True,
    envvar="GHIBLI_SPACE_PORT",
    show_envvar=True,
    help="Port the offline Space listens on.",
)
@click.option(
    "--engine",
    type=click.Choice(["ghibli", "fast"]),
    default="ghibli",
    show_default=True,
    envvar="GHIBLI_SPACE_ENGINE",
    show_envvar=True,
    help="'ghibli' paints; 'fast' is a cheap transform for throughput benchmarks.",
)
@click.option(
    "--delay",
    type=click.FloatRange(0),
    default=0.0,
    show_default=True,
    envvar="GHIBLI_SPACE_DELAY",
    show_envvar=True,
    help="Seconds to wait before answering.",
)
@click.option(
    "--jitter",
    type=click.FloatRange(0),
    default=0.0,
    show_default=True,
    envvar="GHIBLI_SPACE_JITTER",
    show_envvar=True,
    help="Up to this many more seconds, at random.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 1024),
    default=4,
    show_default=True,
    envvar="GHIBLI_SPACE_CONCURRENCY",
    show_envvar=True,
    help="Calls the Space runs at once (Gradio's queue concurrency).",
)
@click.option(
    "--max-queue",
    type=click.IntRange(1),
    default=None,
    envvar="GHIBLI_SPACE_MAX_QUEUE",
    show_envvar=True,
    help="Calls that may wait in Gradio's queue; more get HTTP 503 (QueueError). [default: unbounded]",
)
@click.option(
    "--fault-kind",
    type=click.Choice(["quota", "quota_html", "no_gpu", "worker_error", "queue_full"]),
    default="quota",
    show_default=True,
    envvar="GHIBLI_SPACE_FAULT_KIND",
    show_envvar=True,
    help="How chosen calls fail, with the real Space's titles and texts: quota ('ZeroGPU quota "
    "exceeded', 'Try again in H:MM:SS'), quota_html (older HTML text, no retry time), no_gpu "
    "('ZeroGPU queue timeout'), worker_error ('ZeroGPU worker error'), queue_full (HTTP 503 at "
    "queue join: gradio_client QueueError).",
)
@click.option(
    "--fault-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    envvar="GHIBLI_SPACE_FAULT_RATE",
    show_envvar=True,
    help="Probability that a call fails (0..1).",
)
@click.option(
    "--fault-first",
    type=click.IntRange(0),
    default=0,
    show_default=True,
    envvar="GHIBLI_SPACE_FAULT_FIRST",
    show_envvar=True,
    help="The first N calls fail, then the rest succeed (retry tests).",
)
@click.option(
    "--fault-seeds",
    default="",
    envvar="GHIBLI_SPACE_FAULT_SEEDS",
    show_envvar=True,
    help="Comma-separated seeds: calls with one of these seeds always fail (poison tests). A call "
    "fails if any of --fault-first, --fault-seeds or --fault-rate picks it.",
)
@click.option(
    "--fault-retry-after",
    type=click.FloatRange(0),
    default=5.0,
    show_default=True,
    envvar="GHIBLI_SPACE_FAULT_RETRY_AFTER",
    show_envvar=True,
    help="Seconds in the quota message's 'Try again in H:MM:SS'.",
)
@click.option(
    "--call-log",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    envvar="GHIBLI_SPACE_CALL_LOG",
    show_envvar=True,
    help="Append one JSON line per call (times, outcome, seed, size, input sha256, token alias; "
    "never the token).",
)
def space(
    host: str,
    port: int,
    engine: str,
    delay: float,
    jitter: float,
    concurrency: int,
    max_queue: int | None,
    fault_kind: str,
    fault_rate: float,
    fault_first: int,
    fault_seeds: str,
    fault_retry_after: float,
    call_log: Path | None,
) -> None:
    """Run the offline Space: the Ghibli Space's exact API on a CPU stylizer.

    Faults: a call fails when it is one of the first --fault-first calls, when its seed is in
    --fault-seeds, or at random with --fault-rate; it then fails the --fault-kind way.
    """
    from space.app import SpaceOptions, serve
    from space.faults import FaultPlan, parse_seeds

    try:
        seeds = parse_seeds([fault_seeds])
    except ValueError:
        raise click.BadParameter("comma-separated integers", param_hint="--fault-seeds") from None
    faults = FaultPlan(
        kind=fault_kind, rate=fault_rate, first=fault_first, seeds=seeds, retry_after_s=fault_retry_after
    )
    options = SpaceOptions(
        engine=engine,
        delay_s=delay,
        jitter_s=jitter,
        concurrency=concurrency,
        max_queue=max_queue,
        faults=faults,
        call_log=call_log,
    )
    serve(host, port, options)


# Commands that live in their own modules (ghibli/cmd_*.py) register here, one line each.
cli.add_command(__import__("ghibli.cmd_metrics").cmd_metrics.metrics_exporter)
cli.add_command(__import__("ghibli.cmd_doctor").cmd_doctor.doctor)
cli.add_command(__import__("ghibli.cmd_dlq").cmd_dlq.dlq)
cli.add_command(__import__("ghibli.cmd_webhooks").cmd_webhooks.webhooks)
cli.add_command(__import__("ghibli.cmd_keys").cmd_keys.keys)
cli.add_command(cmd_client.submit)
cli.add_command(cmd_client.status)
cli.add_command(cmd_client.cancel)
cli.add_command(__import__("ghibli.cmd_jobs").cmd_jobs.jobs)
cli.add_command(__import__("ghibli.cmd_jobs").cmd_jobs.wait)
cli.add_command(__import__("ghibli.cmd_jobs").cmd_jobs.download)


def main(argv: Sequence[str] | None = None) -> None:
    cli.main(args=list(argv) if argv is not None else None, prog_name="ghibli")
