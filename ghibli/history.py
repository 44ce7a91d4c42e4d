"""The jobs this CLI submitted, remembered on this machine: what `ghibli jobs` lists and what id
prefixes resolve against.

Job ids are capabilities (whoever holds one may read and delete the job), so the server never lists
or completes them for anyone; the CLI remembers its own. One JSON line per job in a file only its
user can read (default `$XDG_STATE_HOME/ghibli/jobs.jsonl`, i.e. ~/.local/state/ghibli/jobs.jsonl),
kept to the newest few thousand lines.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec

__all__ = ["History", "HistoryEntry", "default_history_path"]

_KEEP = 2_000  # entries kept when the file is trimmed
_TRIM_AT = 2 * _KEEP


class HistoryEntry(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    server: str
    photo: str = ""  # the photo's path as it was then, for naming downloads
    submitted_at: float = 0.0  # unix seconds


def default_history_path() -> Path:
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "ghibli" / "jobs.jsonl"


def _server_key(server: str) -> str:
    return server.rstrip("/")


class History:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_history_path()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[int]:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield fd
        finally:
            os.close(fd)

    def add(self, server: str, job_id: str, photo: Path | None = None) -> None:
        entry = HistoryEntry(
            id=job_id,
            server=_server_key(server),
            photo=str(photo.resolve()) if photo is not None else "",
            submitted_at=round(time.time(), 3),
        )
        with self._locked() as fd:
            os.write(fd, msgspec.json.encode(entry) + b"\n")
            if os.fstat(fd).st_size > _TRIM_AT * 200 and len(lines := self._lines()) > _TRIM_AT:
                tmp = self.path.with_suffix(".tmp")
                tmp.write_bytes(b"".join(line + b"\n" for line in lines[-_KEEP:]))
                tmp.chmod(0o600)
                os.replace(tmp, self.path)

    def _lines(self) -> list[bytes]:
        try:
            return [line for line in self.path.read_bytes().splitlines() if line.strip()]
        except FileNotFoundError:
            return []

    def entries(self, server: str) -> list[HistoryEntry]:
        """This server's jobs, newest first, each once."""
        key = _server_key(server)
        seen: dict[str, HistoryEntry] = {}
        decoder = msgspec.json.Decoder(HistoryEntry)
        for line in self._lines():
            try:
                entry = decoder.decode(line)
            except msgspec.DecodeError:
                continue  # a line cut short by a crash: the others still count
            if entry.server == key:
                seen.pop(entry.id, None)
                seen[entry.id] = entry
        return list(reversed(seen.values()))

    def forget(self, server: str, job_ids: set[str]) -> None:
        """Drop jobs erased on the server (`ghibli cancel`)."""
        key = _server_key(server)
        with self._locked():
            keep = []
            for line in self._lines():
                try:
                    entry = msgspec.json.decode(line, type=HistoryEntry)
                except msgspec.DecodeError:
                    continue
                if not (entry.server == key and entry.id in job_ids):
                    keep.append(line + b"\n")
            tmp = self.path.with_suffix(".tmp")
            tmp.write_bytes(b"".join(keep))
            tmp.chmod(0o600)
            os.replace(tmp, self.path)
