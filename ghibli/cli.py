"""The `ghibli` command: its groups of subcommands (use / operate / run), and the ones that run
the stack's processes (up, ingest, consume, space).

Options that are settings come from ghibli/options.py; the offline Space's own command lives in
space/cli.py, so `space/` starts without the pipeline package.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from ghibli import cmd_client, cmd_dlq, cmd_doctor, cmd_jobs, cmd_keys, cmd_metrics, cmd_webhooks
from ghibli.options import COMMON, CONSUMER, DECODE, INGEST, build_settings, configure_logs, settings_options
from space.cli import space

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

    settings = build_settings(values)
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

    settings = build_settings(values)
    configure_logs(settings)
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

    settings = build_settings(values)
    configure_logs(settings)
    run_consumer(settings)


# Commands that live in their own modules register here, one line each.
for command in (
    cmd_metrics.metrics_exporter,
    cmd_doctor.doctor,
    cmd_dlq.dlq,
    cmd_webhooks.webhooks,
    cmd_keys.keys,
    cmd_client.submit,
    cmd_client.status,
    cmd_client.cancel,
    cmd_jobs.jobs,
    cmd_jobs.wait,
    cmd_jobs.download,
    space,
):
    cli.add_command(command)


def main(argv: Sequence[str] | None = None) -> None:
    cli.main(args=list(argv) if argv is not None else None, prog_name="ghibli")
