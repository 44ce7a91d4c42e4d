"""How the CLI shows a job: one line of plain words for its state, and the progress display of
`ghibli submit` (rich bars on a terminal, a line per change in logs, or nothing)."""

from __future__ import annotations

import threading
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from jobs.model import Status

if TYPE_CHECKING:
    from jobs.wire import JobView

__all__ = ["Display", "describe"]


def _local_time(when: datetime) -> str:
    return when.astimezone().strftime("%H:%M:%S")


# Phases the consumer reports while running; the Space's own step names pass through as they are.
_PHASES = {
    "starting": "starting",
    "waiting_for_token": "waiting for a free HF token",
    "in_queue": "in the Space's queue",
    "processing": "painting",
}


def describe(job: JobView) -> str:
    """One line of plain words for a job's state (shared by the bars, the lines and `status`)."""
    if job.status is Status.QUEUED:
        return "queued"
    if job.status is Status.RUNNING:
        words = _PHASES.get(job.phase, job.phase or "running")
        queue = job.queue
        if queue is not None and queue.rank is not None and job.phase == "in_queue":
            where = f"#{queue.rank + 1}" + (f" of {queue.size}" if queue.size else "")
            eta = f", ~{queue.eta_seconds:.0f} s" if queue.eta_seconds is not None else ""
            return f"{words} {where}{eta}"
        return words
    if job.status is Status.RETRYING:
        return f"retrying (attempt {job.attempt + 1})"
    if job.status is Status.WAITING_FOR_QUOTA:
        when = f", resumes at {_local_time(job.resume_at)}" if job.resume_at else ""
        return f"waiting for GPU quota{when}"
    if job.status is Status.SUCCEEDED:
        return "done" + (" (reused an identical result)" if job.cache_hit else "")
    reason = f": {job.error.message}" if job.error else ""
    return f"{job.status.value}{reason}"


class Display:
    """What `submit` shows while jobs run: bars (rich, on a terminal), lines (logs) or nothing."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self._lock = threading.Lock()
        self._last: dict[str, tuple[str, int]] = {}
        self._peaks: dict[str, tuple[int, int]] = {}
        self._progress: Any = None
        self._tasks: dict[str, Any] = {}

    def __enter__(self) -> Display:
        if self.mode == "bars":
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                Progress,
                TaskProgressColumn,
                TextColumn,
                TimeElapsedColumn,
            )

            self._progress = Progress(
                TextColumn("{task.description}", style="bold"),
                BarColumn(bar_width=28),
                TaskProgressColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[state]}"),
                console=Console(stderr=True),
                refresh_per_second=8,
            )
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def add(self, label: str, job: JobView) -> None:
        if self._progress is not None:
            self._tasks[job.id] = self._progress.add_task(label, total=100, state="waiting")
        self.update(label, job)

    def _percent(self, job: JobView) -> int:
        """Never backwards within one attempt (a Space may report several progress series, e.g.
        denoising then painting); 100 only once the job succeeded."""
        if job.status is Status.SUCCEEDED:
            return 100
        raw = min(int(job.progress * 100), 99)
        if job.status is not Status.RUNNING:
            return raw
        attempt, peak = self._peaks.get(job.id, (job.attempt, 0))
        peak = max(peak if attempt == job.attempt else 0, raw)
        self._peaks[job.id] = (job.attempt, peak)
        return peak

    def update(self, label: str, job: JobView) -> None:
        text = describe(job)
        with self._lock:
            percent = self._percent(job)
        if self._progress is not None:
            self._progress.update(self._tasks[job.id], completed=percent, state=text)
            return
        if self.mode != "lines":
            return
        with self._lock:
            # A line per change of words, or per 10 % of progress: readable in CI logs.
            previous = self._last.get(job.id)
            if previous is not None and previous[0] == text and previous[1] // 10 == percent // 10:
                return
            self._last[job.id] = (text, percent)
            click.echo(f"{label}: {percent:3d}% {text}", err=True)

    def message(self, text: str) -> None:
        if self._progress is not None:
            self._progress.console.print(text, markup=False, highlight=False)
        else:
            click.echo(text, err=True)
