"""`ghibli dlq`: list the dead-letter stream and put dead jobs back on the queue."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from ghibli.options import COMMON, settings_options
from ghibli.stack import resolve_or_fail

if TYPE_CHECKING:
    from ghibli.dead_letters import DeadLetters
    from jobs.settings import Settings

__all__ = ["dlq"]


async def _with_dead_letters(settings: Settings, work: Any) -> Any:
    from ghibli.dead_letters import DeadLetters
    from jobs.keys import Keys
    from jobs.redis_conn import connect

    redis = connect(settings.redis_url, max_connections=2, name="dlq")
    try:
        keys = Keys(settings.key_prefix, settings.stream_name, settings.group_name)
        return await work(DeadLetters(redis, keys, job_ttl_s=settings.job_ttl_seconds))
    finally:
        await redis.aclose()


def _run(values: dict[str, Any], work: Any) -> Any:
    """Against the Redis of the options, the variables or the stack `ghibli up` runs here, named first."""
    import anyio

    ctx = click.get_current_context()
    target = resolve_or_fail(values, ctx)
    click.echo(f"dlq: {target.describe('redis_url')}", err=True)
    return anyio.run(_with_dead_letters, target.settings, work)


@click.group()
def dlq() -> None:
    """Dead letters: jobs given up on (too many failed calls or deliveries, or a lost entry)."""


@dlq.command("list")
@settings_options(*COMMON)
@click.option(
    "--limit", type=click.IntRange(1), default=100, show_default=True, help="Show at most this many."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def list_(limit: int, as_json: bool, **values: Any) -> None:
    """Show dead letters, oldest first: entry id, job, reason, failures, last error."""
    import msgspec

    async def work(letters: DeadLetters) -> tuple[int, list[Any]]:
        return await letters.count(), await letters.page(limit=limit)

    total, page = _run(values, work)
    for letter in page:
        if as_json:
            click.echo(msgspec.json.encode(letter).decode())
            continue
        when = datetime.fromtimestamp(letter.at / 1000, tz=UTC).isoformat(timespec="seconds")
        click.echo(
            f"{letter.id}  job {letter.job}  {when}  {letter.reason}  failures={letter.failures}\n"
            f"    {letter.error_code}: {letter.error_message}"
        )
    if not as_json:
        click.echo(
            f"{total} dead letter(s)" + (f", {len(page)} shown" if len(page) < total else ""), err=True
        )


async def _full_ref(letters: DeadLetters, ref: str) -> str:
    """An entry id or full job id as given; a job id prefix completed among the dead letters (an
    operator's command that reads Redis itself, so every dead job is its to name)."""
    from ghibli.job_ids import FULL_ID, IdError, resolve_ids

    if "-" in ref or FULL_ID.fullmatch(ref.strip().lower()):
        return ref
    known = await letters.job_ids()
    try:
        [job_id] = resolve_ids([ref], known, f"the {len(known)} dead letters")
    except IdError as exc:
        raise click.UsageError(str(exc)) from None
    return job_id


@dlq.command()
@settings_options(*COMMON)
@click.argument("ref", required=False)
@click.option("--all", "replay_all", is_flag=True, help="Replay every dead letter.")
def replay(ref: str | None, replay_all: bool, **values: Any) -> None:
    """Put a dead job back on the queue: REF is a dead-letter entry id, a job id or the start of
    one (unique among the dead letters)."""
    if bool(ref) == replay_all:
        raise click.UsageError("give either one dead-letter id / job id, or --all")

    async def work(letters: DeadLetters) -> list[Any]:
        if replay_all:
            return await letters.replay_all()
        letter = await letters.find(await _full_ref(letters, ref or ""))
        if letter is None:
            raise click.ClickException(f"no dead letter for {ref!r}")
        return [await letters.replay(letter)]

    from jobs.script_defs import ReplayVerdict

    results = _run(values, work)
    replayed = 0
    for result in results:
        if result.verdict is ReplayVerdict.OK:
            replayed += 1
            click.echo(f"{result.job}: queued again")
        elif result.verdict is ReplayVerdict.MISSING:
            click.echo(
                f"{result.job}: expired, cannot be replayed (its dead letter {result.id} stays)", err=True
            )
        else:
            click.echo(f"{result.job}: not replayed, it is {result.verdict} already", err=True)
    click.echo(f"{replayed} of {len(results)} replayed", err=True)
    sys.exit(0 if replayed == len(results) else 1)
