"""`ghibli jobs`, `ghibli wait` and `ghibli download`: coming back to jobs after `submit --detach`,
Ctrl-C, or from another terminal.

`jobs` lists the jobs this CLI submitted to the server (its history, ghibli/history.py) with their
state now; the server lists nobody's jobs to the public, since ids are capabilities. With `--all`
and the server's ADMIN_SECRET it lists every job on the server through the admin API instead.
"""

from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, cast

import click

from ghibli.client_opts import IDS_HELP, ClientContext, client_options, progress_option
from ghibli.cmd_client import progress_mode
from ghibli.follow import Followed, Targets, follow
from ghibli.job_display import Display, describe
from ghibli.job_ids import short_ids
from jobs.model import Status

if TYPE_CHECKING:
    from ghibli.client import Format

__all__ = ["download", "jobs", "wait"]

STATES = [s.value for s in Status] + ["gone"]
_LOOKUPS_AT_ONCE = 8


@dataclass(frozen=True, slots=True)
class _Row:
    id: str
    state: str  # a Status value, or "gone" (expired or erased on the server)
    progress: float
    created: datetime | None
    photo: str
    detail: str


def _history_rows(ctx: ClientContext, limit: int, states: set[str]) -> list[_Row]:
    import httpx

    from ghibli.client import ApiError

    entries = ctx.history.entries(ctx.server)

    def look(entry_index: int) -> _Row:
        entry = entries[entry_index]
        submitted = datetime.fromtimestamp(entry.submitted_at, UTC) if entry.submitted_at else None
        try:
            job = ctx.client.status(entry.id)
        except ApiError as exc:
            if exc.code != "job_not_found":
                raise
            return _Row(entry.id, "gone", 0.0, submitted, Path(entry.photo).name, "expired or erased")
        return _Row(
            job.id, job.status.value, job.progress, job.created_at, Path(entry.photo).name, describe(job)
        )

    rows: list[_Row] = []
    # Newest first, in batches, until enough rows pass the filter.
    with ThreadPoolExecutor(_LOOKUPS_AT_ONCE) as pool:
        for start in range(0, len(entries), _LOOKUPS_AT_ONCE * 4):
            try:
                batch = list(pool.map(look, range(start, min(len(entries), start + _LOOKUPS_AT_ONCE * 4))))
            except httpx.TransportError as exc:
                ctx.unreachable(exc)
            rows.extend(row for row in batch if not states or row.state in states)
            if len(rows) >= limit:
                break
    return rows[:limit]


def _admin_rows(ctx: ClientContext, admin_secret: str, limit: int, states: set[str]) -> list[_Row]:
    import httpx

    one = Status(next(iter(states))) if len(states) == 1 and "gone" not in states else None
    try:
        found = [
            _Row(j.id, j.status.value, j.progress, j.created_at, "", j.error.message if j.error else j.phase)
            for j in ctx.client.admin_jobs(admin_secret, status=one)
            if not states or j.status.value in states
        ]
    except httpx.TransportError as exc:
        ctx.unreachable(exc)
    found.sort(key=lambda r: r.created or datetime.min.replace(tzinfo=UTC), reverse=True)
    return found[:limit]


def _age(when: datetime | None) -> str:
    if when is None:
        return "-"
    seconds = max(0, int(time.time() - when.timestamp()))
    for size, unit in ((86_400, "d"), (3_600, "h"), (60, "m")):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@click.command()
@client_options
@click.option(
    "--state",
    "states",
    type=click.Choice(STATES),
    multiple=True,
    help="Only jobs in this state (repeat for several); 'gone': expired or erased on the server.",
)
@click.option(
    "-n", "--limit", type=click.IntRange(1), default=20, show_default=True, help="At most this many jobs."
)
@click.option(
    "--all",
    "every_job",
    is_flag=True,
    help="Every job on the server, not only this CLI's (the admin API: needs ADMIN_SECRET).",
)
@click.option(
    "--admin-secret",
    default=None,
    envvar="ADMIN_SECRET",
    show_envvar=True,
    help="The server's admin secret, sent only with --all.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per job instead of the table.")
def jobs(
    server: str,
    api_key: str | None,
    history_file: Path | None,
    states: tuple[str, ...],
    limit: int,
    every_job: bool,
    admin_secret: str | None,
    as_json: bool,
) -> None:
    """List recent jobs, newest first: the ones this CLI submitted to the server, or with --all
    every job on it. Short ids in the list work in every command."""
    import msgspec

    from ghibli.client import ApiError

    wanted = set(states)
    with ClientContext(server, api_key, history_file) as ctx:
        try:
            if every_job:
                if not admin_secret:
                    raise click.UsageError(
                        "--all reads the server's admin API: set ADMIN_SECRET (or --admin-secret)."
                    )
                rows = _admin_rows(ctx, admin_secret, limit, wanted)
            else:
                rows = _history_rows(ctx, limit, wanted)
        except ApiError as exc:
            raise click.ClickException(str(exc)) from None
        known = [e.id for e in ctx.history.entries(ctx.server)]
    if as_json:
        for row in rows:
            click.echo(msgspec.json.encode(row).decode())
        return
    if not rows:
        where = "on the server" if every_job else f"submitted by this CLI to {ctx.server}"
        click.echo(f"no jobs {where}" + (f" in state {', '.join(states)}" if states else ""), err=True)
        return
    short = short_ids([r.id for r in rows], known)
    width = max(len(s) for s in short.values())
    photo_width = min(24, max([5, *(len(r.photo) for r in rows)]))
    click.echo(f"{'ID':<{width}}  {'STATE':<17}  {'DONE':>4}  {'AGE':>4}  {'PHOTO':<{photo_width}}  DETAIL")
    for r in rows:
        click.echo(
            f"{short[r.id]:<{width}}  {r.state:<17}  {r.progress:>4.0%}  {_age(r.created):>4}  "
            f"{r.photo[:photo_width]:<{photo_width}}  {r.detail}"
        )


@click.command(epilog=IDS_HELP)
@click.argument("job_ids", nargs=-1, required=True, metavar="ID...")
@client_options
@progress_option
def wait(
    job_ids: tuple[str, ...], server: str, api_key: str | None, history_file: Path | None, progress: str
) -> None:
    """Follow jobs until they end, with a progress bar each; print each one's final state.

    Exits 0 when every job succeeded, 1 otherwise.
    """
    with ClientContext(server, api_key, history_file) as ctx, Display(progress_mode(progress)) as display:
        items, failed = _followed(ctx, ctx.resolve(job_ids), display, Path())
        failed += follow(ctx.client, display, items)
    sys.exit(1 if failed else 0)


@click.command(epilog=IDS_HELP)
@click.argument("job_ids", nargs=-1, required=True, metavar="ID...")
@click.option(
    "-o",
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(),
    show_default=True,
    metavar="DIR",
    help="Folder for the pictures, named after the photo (when this CLI submitted it) or the job id.",
)
@client_options
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jpeg", "png", "webp"]),
    default=None,
    help="Format of the written pictures; default: as stored (webp).",
)
@progress_option
def download(
    job_ids: tuple[str, ...],
    output: Path,
    server: str,
    api_key: str | None,
    history_file: Path | None,
    fmt: str | None,
    progress: str,
) -> None:
    """Write the pictures of jobs into a folder (waiting for those not finished yet) and print
    their paths."""
    with ClientContext(server, api_key, history_file) as ctx, Display(progress_mode(progress)) as display:
        items, failed = _followed(ctx, ctx.resolve(job_ids), display, output)
        failed += follow(ctx.client, display, items, fmt=cast("Format | None", fmt), targets=Targets())
    sys.exit(1 if failed else 0)


def _followed(
    ctx: ClientContext, ids: list[str], display: Display, folder: Path
) -> tuple[list[Followed], int]:
    """The jobs to follow, labelled by their photo's name where the history knows it, and how many
    of the ids the server does not know (reported)."""
    import httpx

    from ghibli.client import ApiError

    photos = ctx.photos()
    short = short_ids(ids, photos)
    items: list[Followed] = []
    missing = 0
    for job_id in ids:
        photo = photos.get(job_id)
        label = photo.name if photo else short[job_id]
        try:
            job = ctx.client.status(job_id)
        except httpx.TransportError as exc:
            ctx.unreachable(exc)
        except ApiError as exc:
            display.message(f"{label}: {exc}")
            missing += 1
            continue
        items.append(Followed(label, job_id, photo.stem if photo else job_id, folder))
        display.add(label, job)
    return items, missing
