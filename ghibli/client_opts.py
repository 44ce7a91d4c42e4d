"""What the API commands (`submit`, `jobs`, `status`, `wait`, `download`, `cancel`) share: where the
server is, its API key, the local job history, and typed ids resolved against that history."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from ghibli.history import History
from ghibli.job_ids import IdError, resolve_ids
from ghibli.stack import DEFAULT_SERVER, server_callback

if TYPE_CHECKING:
    from ghibli.client import GhibliClient

__all__ = ["IDS_HELP", "ClientContext", "client_options", "progress_option"]

F = TypeVar("F", bound=Callable[..., Any])

IDS_HELP = "IDs are full job ids or unique prefixes of jobs this CLI submitted (see `ghibli jobs`)."


def client_options(fn: F) -> F:
    """--server, --api-key (the environment is safer: a key on the command line shows in `ps`) and
    --history: the arguments of `ClientContext`."""
    fn = click.option(
        "--history",
        "history_file",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        envvar="GHIBLI_HISTORY",
        show_envvar=True,
        help="File where this CLI remembers the jobs it submitted, for `ghibli jobs` and id prefixes. "
        "[default: $XDG_STATE_HOME/ghibli/jobs.jsonl, else ~/.local/state/ghibli/jobs.jsonl]",
    )(fn)
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


def progress_option(fn: F) -> F:
    return click.option(
        "--progress",
        type=click.Choice(["auto", "bars", "lines", "none"]),
        default="auto",
        show_default=True,
        envvar="GHIBLI_PROGRESS",
        show_envvar=True,
        help="Bars on a terminal (auto), one line per change (logs), or nothing.",
    )(fn)


class ClientContext:
    """The server, its client and this CLI's history of it."""

    def __init__(self, server: str, api_key: str | None, history_file: Path | None) -> None:
        self.server = server.rstrip("/")
        self.api_key = api_key
        self.history = History(history_file)
        self._client: GhibliClient | None = None

    @property
    def client(self) -> GhibliClient:
        if self._client is None:
            from ghibli.client import GhibliClient

            headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else None
            self._client = GhibliClient(self.server, headers=headers)
        return self._client

    def __enter__(self) -> ClientContext:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._client is not None:
            self._client.close()

    def unreachable(self, exc: Exception) -> NoReturn:
        raise click.ClickException(f"cannot reach the server at {self.server}: {exc}")

    def resolve(self, typed: tuple[str, ...]) -> list[str]:
        """Full ids for what was typed; a clear error for unknown or ambiguous prefixes."""
        known = [entry.id for entry in self.history.entries(self.server)]
        try:
            return resolve_ids(typed, known, f"the {len(known)} jobs this CLI submitted to {self.server}")
        except IdError as exc:
            raise click.UsageError(str(exc)) from None

    def photos(self) -> dict[str, Path]:
        """Job id -> the photo it was submitted with, from the history."""
        return {e.id: Path(e.photo) for e in self.history.entries(self.server) if e.photo}
