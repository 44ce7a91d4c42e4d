"""Following jobs until they end, for `submit`, `wait` and `download`: a thread per job (up to 16 at
once; the rest show as waiting and run on the server anyway), the progress display, and, when asked,
each picture written where `Targets` says. Results are reported in the order the jobs were given,
so scripts can pair them with their inputs."""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ghibli.job_display import Display, describe

if TYPE_CHECKING:
    from ghibli.client import Format, GhibliClient
    from jobs.wire import JobView

__all__ = ["Followed", "Targets", "follow"]

_FOLLOWERS = 16


@dataclass
class Followed:
    label: str  # what the display calls it: the photo's name, or the job's short id
    job_id: str
    stem: str  # the picture's file name: <stem>.ghibli.<ext>
    folder: Path  # where it goes unless Targets names one file
    final: JobView | None = None
    target: Path | None = None
    error: str = ""
    done: threading.Event = field(default_factory=threading.Event)


class Targets:
    """Where pictures are written: one named file (one job), or `<stem>.ghibli.<ext>` in each job's
    folder, numbered when two jobs would share a name."""

    def __init__(self, file: Path | None = None) -> None:
        self.file = file
        self._taken: set[Path] = set()
        self._lock = threading.Lock()

    def path_for(self, item: Followed, ext: str) -> Path:
        if self.file is not None:
            return self.file
        with self._lock:
            target = item.folder / f"{item.stem}.ghibli{ext}"
            n = 2
            while target in self._taken:
                target = item.folder / f"{item.stem}.ghibli-{n}{ext}"
                n += 1
            self._taken.add(target)
            return target


def _run_one(
    client: GhibliClient, display: Display, item: Followed, fmt: Format | None, targets: Targets | None
) -> None:
    from ghibli.client import FORMATS, ApiError, JobFailed, extension_for

    try:
        job = client.wait(item.job_id, on_update=lambda j: display.update(item.label, j))
        item.final = job
        if targets is None:
            return
        data = client.result(job.id, fmt=fmt)
        stored = job.result.content_type if job.result is not None else "image/webp"
        target = targets.path_for(item, extension_for(FORMATS[fmt] if fmt else stored))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        item.target = target
    except JobFailed as exc:
        item.final = exc.job
        item.error = str(exc)
    except (ApiError, OSError) as exc:
        item.error = str(exc)
    except Exception as exc:  # noqa: BLE001 - one job's surprise must not hide the others
        item.error = f"{type(exc).__name__}: {exc}"
    finally:
        item.done.set()


def follow(
    client: GhibliClient,
    display: Display,
    items: list[Followed],
    *,
    fmt: Format | None = None,
    targets: Targets | None = None,
) -> int:
    """Follow every job to its end; write pictures when `targets` is given. Outputs each picture's
    path (or, without targets, each job's final state); returns how many did not succeed."""
    pending = list(items)
    lock = threading.Lock()

    def follower() -> None:
        while True:
            with lock:
                if not pending:
                    return
                item = pending.pop(0)
            _run_one(client, display, item, fmt, targets)

    for _ in range(min(_FOLLOWERS, len(items))):
        threading.Thread(target=follower, daemon=True).start()
    failed = 0
    try:
        for item in items:
            while not item.done.wait(0.2):  # short waits keep Ctrl-C responsive
                pass
            if targets is None and item.final is not None:
                display.output(f"{item.final.id}  {item.final.status.value}  {describe(item.final)}")
            if item.error:
                failed += 1
                if targets is not None or item.final is None:
                    display.message(f"{item.label}: {item.error}")
            elif item.target is not None:
                display.output(str(item.target))
    except KeyboardInterrupt:
        left = " ".join(item.job_id for item in items if not item.done.is_set())
        display.message(
            "interrupted; the jobs go on on the server. Follow them with `ghibli wait "
            f"{left}`, fetch the pictures with `ghibli download {left} -o DIR`."
        )
        sys.exit(130)
    return failed
