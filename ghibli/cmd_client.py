"""`ghibli submit`, `ghibli status` and `ghibli cancel`: the API from a terminal.

`submit` uploads every photo first (they then queue and run in parallel on the server), remembers
each job in this CLI's history (ghibli/history.py), follows them (ghibli/follow.py) with a progress
bar each on stderr and writes the pictures. Result paths are the output, one per line; errors go to
stderr and make the exit status non-zero.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, cast

import click

from ghibli.client_opts import IDS_HELP, ClientContext, client_options, progress_option
from ghibli.follow import Followed, Targets, follow
from ghibli.job_display import Display, describe

if TYPE_CHECKING:
    from ghibli.client import Format
    from jobs.wire import JobView

__all__ = ["cancel", "progress_mode", "status", "submit"]

_SUFFIX_FORMATS = {".webp": "webp", ".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg"}


def progress_mode(progress: str) -> str:
    return progress if progress != "auto" else ("bars" if sys.stderr.isatty() else "lines")


def _output_plan(
    output: str | None, count: int, fmt: str | None
) -> tuple[Path | None, Path | None, str | None]:
    """(file, folder, format) for -o: a file only for one photo; a folder when it exists as one,
    ends with a slash or has no suffix. A file's suffix picks the format unless --format does."""
    if output is None:
        return None, None, fmt
    path = Path(output)
    if output.endswith(("/", "\\")) or path.is_dir() or not path.suffix:
        return None, path, fmt
    if count > 1:
        raise click.UsageError(
            f"-o {output} names one file, but {count} photos make {count} pictures: give a folder "
            f"instead (e.g. -o {path.with_suffix('')}/)."
        )
    suffix_format = _SUFFIX_FORMATS.get(path.suffix.lower())
    if suffix_format is None:
        raise click.UsageError(f"-o {output}: pictures are written as .webp, .png or .jpg.")
    if fmt is not None and fmt != suffix_format:
        raise click.UsageError(f"-o {output} does not match --format {fmt}.")
    return path, None, suffix_format


@click.command()
@click.argument(
    "photos", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "-o",
    "--output",
    default=None,
    metavar="FILE|DIR",
    help="A file (one photo; its suffix picks the format) or a folder; default: next to each photo.",
)
@client_options
@click.option(
    "--prompt",
    default=None,
    envvar="GHIBLI_PROMPT",
    show_envvar=True,
    help="Prompt; default: the Ghibli prompt.",
)
@click.option(
    "--width",
    type=click.IntRange(256, 1024),
    default=None,
    envvar="GHIBLI_WIDTH",
    show_envvar=True,
    help="256-1024, step 64; default keeps the photo's aspect ratio.",
)
@click.option(
    "--height",
    type=click.IntRange(256, 1024),
    default=None,
    envvar="GHIBLI_HEIGHT",
    show_envvar=True,
    help="256-1024, step 64; default keeps the photo's aspect ratio.",
)
@click.option(
    "--seed",
    type=click.IntRange(0, 4_294_967_295),
    default=None,
    envvar="GHIBLI_SEED",
    show_envvar=True,
    help="0-4294967295; default random (printed).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jpeg", "png", "webp"]),
    default=None,
    help="Format of the written pictures; default: from -o FILE's suffix, else as stored (webp).",
)
@progress_option
@click.option("--detach", is_flag=True, help="Only submit: print each job's id and return.")
def submit(
    photos: tuple[Path, ...],
    output: str | None,
    server: str,
    api_key: str | None,
    history_file: Path | None,
    prompt: str | None,
    width: int | None,
    height: int | None,
    seed: int | None,
    fmt: str | None,
    progress: str,
    detach: bool,
) -> None:
    """Upload photos, follow their jobs with a progress bar each, and write the pictures.

    Prints each picture's path; with --detach, each job's id (follow them later with `ghibli wait`,
    fetch them with `ghibli download`).
    """
    import httpx

    from ghibli.client import ApiError

    file, folder, fmt = _output_plan(output, len(photos), fmt)
    failed = 0
    items: list[Followed] = []
    with ClientContext(server, api_key, history_file) as ctx, Display(progress_mode(progress)) as display:
        for photo in photos:
            try:
                job = ctx.client.submit(photo, prompt=prompt, width=width, height=height, seed=seed)
            except ApiError as exc:
                display.message(f"{photo}: rejected: {exc}")
                failed += 1
                continue
            except httpx.TransportError as exc:
                ctx.unreachable(exc)
            ctx.history.add(ctx.server, job.id, photo)
            if detach:
                display.output(job.id)
                continue
            display.message(
                f"{photo}: job {job.id} ({job.params.width}x{job.params.height}, seed {job.params.seed})"
            )
            items.append(Followed(photo.name, job.id, photo.stem, folder or photo.parent))
            display.add(photo.name, job)
        if items:
            targets = Targets(file)
            failed += follow(ctx.client, display, items, fmt=cast("Format | None", fmt), targets=targets)
    sys.exit(1 if failed else 0)


# -- status, cancel ------------------------------------------------------------------------------


def _print_status(job: JobView, ctx: ClientContext) -> None:
    p = job.params
    lines = [
        f"{job.id}  {job.status.value}  {job.progress:.0%}  {describe(job)}",
        f"  {p.width}x{p.height}, seed {p.seed}, prompt: {p.prompt}",
        f"  created {job.created_at.astimezone():%Y-%m-%d %H:%M:%S}"
        + (f", finished {job.finished_at.astimezone():%H:%M:%S}" if job.finished_at else ""),
    ]
    if job.engine is not None:
        lines.append(f"  engine: {job.engine.kind}" + (f" ({job.engine.name})" if job.engine.name else ""))
    if job.error is not None:
        lines.append(f"  error: {job.error.message} ({job.error.code})")
    if job.result is not None:
        lines.append(f"  result: {ctx.server}{job.result.url}")
    lines.append(f"  page: {ctx.client.page_url(job.id)}")
    click.echo("\n".join(lines))


@click.command(epilog=IDS_HELP)
@click.argument("job_ids", nargs=-1, required=True, metavar="ID...")
@client_options
@click.option("--json", "as_json", is_flag=True, help="Print each job's status JSON, one per line.")
def status(
    job_ids: tuple[str, ...], server: str, api_key: str | None, history_file: Path | None, as_json: bool
) -> None:
    """Show jobs' status: state, progress, queue position, engine, error or result link."""
    import httpx
    import msgspec

    from ghibli.client import ApiError

    failed = 0
    with ClientContext(server, api_key, history_file) as ctx:
        for job_id in ctx.resolve(job_ids):
            try:
                job = ctx.client.status(job_id)
            except httpx.TransportError as exc:
                ctx.unreachable(exc)
            except ApiError as exc:
                click.echo(f"{job_id}: {exc}", err=True)
                failed += 1
                continue
            if as_json:
                click.echo(msgspec.json.encode(job).decode())
            else:
                _print_status(job, ctx)
    sys.exit(1 if failed else 0)


@click.command(epilog=IDS_HELP)
@click.argument("job_ids", nargs=-1, required=True, metavar="ID...")
@client_options
def cancel(job_ids: tuple[str, ...], server: str, api_key: str | None, history_file: Path | None) -> None:
    """Cancel jobs and erase them and their pictures."""
    import httpx

    from ghibli.client import ApiError

    failed = 0
    erased: set[str] = set()
    with ClientContext(server, api_key, history_file) as ctx:
        for job_id in ctx.resolve(job_ids):
            try:
                ctx.client.cancel(job_id)
            except httpx.TransportError as exc:
                ctx.unreachable(exc)
            except ApiError as exc:
                click.echo(f"{job_id}: {exc}", err=True)
                failed += 1
                continue
            erased.add(job_id)
            click.echo(f"{job_id}: cancelled and erased")
        if erased:
            ctx.history.forget(ctx.server, erased)
    sys.exit(1 if failed else 0)
