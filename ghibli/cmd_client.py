"""`ghibli submit`, `ghibli status` and `ghibli cancel`: the API from a terminal.

`submit` uploads every photo first (they then queue and run in parallel on the server), follows
each job on its own thread through `GhibliClient.wait` (SSE, polling where SSE is unavailable) and
draws one progress bar per job on stderr. Result paths go to stdout, one per line, so scripts can
use them; errors go to stderr and make the exit status non-zero.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar, cast

import click

from ghibli.job_display import Display, describe
from ghibli.stack import DEFAULT_SERVER, server_callback

if TYPE_CHECKING:
    # httpx takes half a second to import: `ghibli --help` and the other commands skip it.
    from ghibli.client import Format, GhibliClient
    from jobs.wire import JobView

__all__ = ["cancel", "status", "submit"]

F = TypeVar("F", bound=Callable[..., Any])
# Jobs followed at once; the rest show as waiting until a follower is free (they run anyway).
_FOLLOWERS = 16


def server_option(fn: F) -> F:
    """--server and --api-key: where the API is, and the key it may require (environment only
    is safer: a key on the command line shows in `ps`)."""
    fn = click.option(
        "--api-key",
        default=None,
        envvar="GHIBLI_API_KEY",
        show_envvar=True,
        help="API key sent as `Authorization: Bearer`, when the server requires one.",
    )(fn)
    return click.option(
        "--server",
        default=None,
        envvar="GHIBLI_SERVER",
        show_envvar=True,
        callback=server_callback,
        help=f"Base URL of the ingest API. [default: the stack `ghibli up` runs here, else {DEFAULT_SERVER}]",
    )(fn)


def _open_client(server: str, api_key: str | None) -> GhibliClient:
    from ghibli.client import GhibliClient

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else None
    return GhibliClient(server, headers=headers)


def _unreachable(server: str, exc: Exception) -> NoReturn:
    raise click.ClickException(f"cannot reach the server at {server}: {exc}")


# -- submit ------------------------------------------------------------------------------------


@dataclass
class _Work:
    photo: Path
    job: JobView
    target: Path | None = None
    error: str = ""
    done: threading.Event = field(default_factory=threading.Event)


def _output_path(photo: Path, output: Path | None, count: int, ext: str, taken: set[Path]) -> Path:
    if output is not None and count == 1 and output.suffix:
        return output
    folder = output if output is not None else photo.parent
    target = folder / f"{photo.stem}.ghibli{ext}"
    n = 2
    while target in taken:  # two photos with one name from different folders
        target = folder / f"{photo.stem}.ghibli-{n}{ext}"
        n += 1
    taken.add(target)
    return target


@click.command()
@click.argument(
    "photos", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    default=None,
    help="Output file (one photo) or directory; default: next to each photo.",
)
@server_option
@click.option(
    "--prompt",
    default=None,
    envvar="GHIBLI_PROMPT",
    show_envvar=True,
    help="Prompt; default: the Ghibli prompt.",
)
@click.option(
    "--width",
    type=int,
    default=None,
    envvar="GHIBLI_WIDTH",
    show_envvar=True,
    help="256-1024, step 64; default keeps the photo's aspect ratio.",
)
@click.option(
    "--height",
    type=int,
    default=None,
    envvar="GHIBLI_HEIGHT",
    show_envvar=True,
    help="256-1024, step 64; default keeps the photo's aspect ratio.",
)
@click.option(
    "--seed",
    type=int,
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
    help="Format of the written pictures; default: as the server stores them (webp).",
)
@click.option(
    "--progress",
    type=click.Choice(["auto", "bars", "lines", "none"]),
    default="auto",
    show_default=True,
    envvar="GHIBLI_PROGRESS",
    show_envvar=True,
    help="Bars on a terminal (auto), one line per change (logs), or nothing.",
)
@click.option("--detach", is_flag=True, help="Only submit: print each job's id and return.")
def submit(
    photos: tuple[Path, ...],
    output: Path | None,
    server: str,
    api_key: str | None,
    prompt: str | None,
    width: int | None,
    height: int | None,
    seed: int | None,
    fmt: str | None,
    progress: str,
    detach: bool,
) -> None:
    """Upload photos, follow their jobs with a progress bar each, and write the results."""
    import httpx

    from ghibli.client import ApiError

    mode = progress if progress != "auto" else ("bars" if sys.stderr.isatty() else "lines")
    failed = 0
    works: list[_Work] = []
    with _open_client(server, api_key) as client, Display(mode) as display:
        for photo in photos:
            try:
                job = client.submit(photo, prompt=prompt, width=width, height=height, seed=seed)
            except ApiError as exc:
                display.message(f"{photo}: rejected: {exc}")
                failed += 1
                continue
            except httpx.TransportError as exc:
                _unreachable(server, exc)
            if detach:
                click.echo(job.id)
                continue
            display.message(
                f"{photo}: job {job.id} ({job.params.width}x{job.params.height}, seed {job.params.seed})"
            )
            works.append(_Work(photo, job))
            display.add(photo.name, job)
        if works:
            failed += _follow(client, display, works, output, cast("Format | None", fmt), len(photos))
    sys.exit(1 if failed else 0)


def _follow(
    client: GhibliClient,
    display: Display,
    works: list[_Work],
    output: Path | None,
    fmt: Format | None,
    count: int,
) -> int:
    from ghibli.client import FORMATS, ApiError, JobFailed, extension_for

    pending = list(works)
    pending_lock = threading.Lock()
    taken: set[Path] = set()

    def run_one(work: _Work) -> None:
        try:
            job = client.wait(work.job.id, on_update=lambda j: display.update(work.photo.name, j))
            data = client.result(job.id, fmt=fmt)
            stored = job.result.content_type if job.result is not None else "image/webp"
            ext = extension_for(FORMATS[fmt] if fmt else stored)
            with pending_lock:
                work.target = _output_path(work.photo, output, count, ext, taken)
            work.target.parent.mkdir(parents=True, exist_ok=True)
            work.target.write_bytes(data)
        except (ApiError, JobFailed, OSError) as exc:
            work.error = str(exc)
        except Exception as exc:  # noqa: BLE001 - one job's surprise must not hide the others
            work.error = f"{type(exc).__name__}: {exc}"
        finally:
            work.done.set()

    def follower() -> None:
        while True:
            with pending_lock:
                if not pending:
                    return
                work = pending.pop(0)
            run_one(work)

    threads = [threading.Thread(target=follower, daemon=True) for _ in range(min(_FOLLOWERS, len(works)))]
    for thread in threads:
        thread.start()
    failed = 0
    try:
        for work in works:
            while not work.done.wait(0.2):  # short waits keep Ctrl-C responsive
                pass
            if work.error:
                failed += 1
                display.message(f"{work.photo}: {work.error}")
            else:
                click.echo(str(work.target))
    except KeyboardInterrupt:
        left = [w.job.id for w in works if not w.done.is_set()]
        display.message("interrupted; these jobs go on (see `ghibli status ID`): " + " ".join(left))
        sys.exit(130)
    return failed


# -- status, cancel ------------------------------------------------------------------------------


def _print_status(job: JobView, client: GhibliClient) -> None:
    p = job.params
    lines = [
        f"{job.id}  {job.status.value}  {job.progress:.0%}  {describe(job)}",
        f"  {p.width}x{p.height}, seed {p.seed}, prompt: {p.prompt}",
        f"  created {job.created_at.astimezone():%Y-%m-%d %H:%M:%S}"
        + (f", finished {job.finished_at.astimezone():%H:%M:%S}" if job.finished_at else ""),
    ]
    if job.error is not None:
        lines.append(f"  error: {job.error.message} ({job.error.code})")
    if job.result is not None:
        lines.append(f"  result: {client.server}{job.result.url}")
    lines.append(f"  page: {client.page_url(job.id)}")
    click.echo("\n".join(lines))


@click.command()
@click.argument("job_ids", nargs=-1, required=True)
@server_option
@click.option("--json", "as_json", is_flag=True, help="Print each job's status JSON, one per line.")
def status(job_ids: tuple[str, ...], server: str, api_key: str | None, as_json: bool) -> None:
    """Show jobs' status: state, progress, queue position, error or result link."""
    import httpx
    import msgspec

    from ghibli.client import ApiError

    failed = 0
    with _open_client(server, api_key) as client:
        for job_id in job_ids:
            try:
                job = client.status(job_id)
            except httpx.TransportError as exc:
                _unreachable(server, exc)
            except ApiError as exc:
                click.echo(f"{job_id}: {exc}", err=True)
                failed += 1
                continue
            if as_json:
                click.echo(msgspec.json.encode(job).decode())
            else:
                _print_status(job, client)
    sys.exit(1 if failed else 0)


@click.command()
@click.argument("job_ids", nargs=-1, required=True)
@server_option
def cancel(job_ids: tuple[str, ...], server: str, api_key: str | None) -> None:
    """Cancel jobs and erase them and their pictures."""
    import httpx

    from ghibli.client import ApiError

    failed = 0
    with _open_client(server, api_key) as client:
        for job_id in job_ids:
            try:
                client.cancel(job_id)
            except httpx.TransportError as exc:
                _unreachable(server, exc)
            except ApiError as exc:
                click.echo(f"{job_id}: {exc}", err=True)
                failed += 1
                continue
            click.echo(f"{job_id}: cancelled and erased")
    sys.exit(1 if failed else 0)
