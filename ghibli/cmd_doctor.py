"""`ghibli doctor`: check a deployment and say what to fix; `--probe` is the containers' HEALTHCHECK."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import click

from ghibli.findings import Level, fail
from ghibli.options import settings_options
from ghibli.stack import resolve
from jobs.settings import Settings, SettingsError, iter_settings

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from ghibli.findings import Finding

__all__ = ["doctor"]

CHECKS = ("settings", "redis", "queue", "tokens", "space")
PROBES = ("ingest", "consumer", "space", "exporter", "container")
# Every setting but the secrets (those come from the environment only): the doctor checks what any
# role would run with.
SETTINGS = tuple(info.name for info in iter_settings() if not info.secret)


@click.command()
@settings_options(*SETTINGS)
@click.option(
    "--check",
    "checks",
    type=click.Choice(("all", *CHECKS)),
    multiple=True,
    default=("all",),
    show_default=True,
    help="What to check (repeatable).",
)
@click.option(
    "--probe",
    type=click.Choice(PROBES),
    default=None,
    help="Only check that the process of this role in this container is healthy (for HEALTHCHECK); "
    "'container' finds the role from the container's main command.",
)
@click.option(
    "--space-port",
    type=click.IntRange(1, 65535),
    default=7861,
    show_default=True,
    envvar="GHIBLI_SPACE_PORT",
    show_envvar=True,
    help="Port of the offline Space in this container (for --probe space).",
)
@click.option(
    "--timeout",
    "timeout_s",
    type=click.FloatRange(0.1),
    default=20.0,
    show_default=True,
    help="Seconds each check may take.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@click.option("--strict", is_flag=True, help="Warnings fail too.")
def doctor(
    checks: tuple[str, ...],
    probe: str | None,
    space_port: int,
    timeout_s: float,
    as_json: bool,
    strict: bool,
    **values: Any,
) -> None:
    """Check settings, Redis (version, persistence, memory policy), the jobs stream and group, the
    HF tokens and the Space's endpoint; print what to fix. Exits 1 when something is wrong.

    Without options or variables it checks the stack `ghibli up` runs here, if any."""
    try:
        # Options and variables first, then the stack `ghibli up` runs here (ghibli/stack.py).
        target = resolve(values, click.get_current_context())
    except SettingsError as exc:
        findings = [fail("settings", str(exc), "Fix the variable (or option) named above.")]
    else:
        if probe is not None:
            findings = _probe(probe, target.settings, space_port, timeout_s)
        else:
            # The first line says what is checked and where that came from.
            click.echo(f"doctor: {target.describe('redis_url', 'space')}", err=as_json)
            wanted = CHECKS if "all" in checks else tuple(c for c in CHECKS if c in checks)
            findings = _diagnose(wanted, target.settings, timeout_s)

    if as_json:
        click.echo(json.dumps([_as_dict(f) for f in findings], indent=2))
    else:
        _print(findings, brief=probe is not None)
    worst = max((f.level for f in findings), default=Level.OK)
    failed = worst is Level.FAIL or (strict and worst is Level.WARN)
    sys.exit(1 if failed else 0)


def _diagnose(wanted: tuple[str, ...], settings: Settings, timeout_s: float) -> list[Finding]:
    import anyio

    from ghibli import doctor as d
    from ghibli.doctor_topology import check_topology
    from jobs.keys import Keys

    findings: list[Finding] = []
    if "settings" in wanted:
        findings += d.check_settings(settings)
    keys = Keys(settings.key_prefix, settings.stream_name, settings.group_name)

    async def redis_part() -> list[Finding]:
        async def body(redis: Redis) -> list[Finding]:
            found: list[Finding] = []
            if "redis" in wanted:
                found += await d.check_redis(redis, keys)
                found += await check_topology(redis, keys, settings)
            if "queue" in wanted:
                found += await d.check_queue(redis, keys)
            return found

        return await d.with_redis(settings, timeout_s, body)

    if "redis" in wanted or "queue" in wanted:
        findings += anyio.run(redis_part)
    token: str | None = None
    if "tokens" in wanted or "space" in wanted:
        from ghibli.doctor_tokens import check_tokens

        token_findings, token = check_tokens(settings)
        if "tokens" in wanted:
            findings += token_findings
    if "space" in wanted:
        findings += d.check_space(settings, token, timeout_s)
    return findings


def _probe(probe: str, settings: Settings, space_port: int, timeout_s: float) -> list[Finding]:
    import anyio

    from ghibli import probes

    role = probes.container_role() if probe == "container" else probe
    if role == "ingest":
        return [probes.probe_http("ingest", f"http://127.0.0.1:{settings.port}/healthz", timeout_s)]
    if role == "space":
        return [probes.probe_http("space", f"http://127.0.0.1:{space_port}/config", timeout_s)]
    if role == "exporter":
        url = f"http://127.0.0.1:{settings.exporter_port}/metrics"
        return [probes.probe_http("exporter", url, timeout_s)]
    if role == "consumer":
        found: list[Finding] = anyio.run(probes.probe_consumer, settings, timeout_s)
        return found
    return [
        fail(
            "probe",
            "cannot tell this container's role from its command (/proc/1/cmdline).",
            "Run `ghibli ingest`, `consume`, `space` or `metrics-exporter` as the container's command, or "
            "use --probe ingest|consumer|space|exporter.",
        )
    ]


_MARK = {Level.OK: "ok  ", Level.WARN: "WARN", Level.FAIL: "FAIL"}


def _print(findings: list[Finding], *, brief: bool) -> None:
    width = max((len(f.topic) for f in findings), default=0)
    for f in findings:
        click.echo(f"{_MARK[f.level]}  {f.topic:<{width}}  {f.message}")
        if f.fix and f.level is not Level.OK:
            click.echo(f"{'':4}  {'':<{width}}  fix: {f.fix}")
    if brief:
        return
    problems = sum(1 for f in findings if f.level is Level.FAIL)
    warnings = sum(1 for f in findings if f.level is Level.WARN)
    if problems or warnings:
        click.echo(f"\n{problems} problem(s), {warnings} warning(s).")
    else:
        click.echo("\nAll checks passed.")


def _as_dict(finding: Finding) -> dict[str, str]:
    return {
        "level": finding.level.name.lower(),
        "topic": finding.topic,
        "message": finding.message,
        "fix": finding.fix,
    }
