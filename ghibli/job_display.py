"""How the CLI shows a job: one line of plain words for its state, and the progress display of
`ghibli submit`, `wait` and `download` (rich bars on a terminal, a line per change in logs, or
nothing).

Results (paths, final states) are the command's output: on stdout when it is a pipe or a file; on a
terminal they are printed through the bars' console, above the live bars, so a redraw never
overwrites them.
"""

from __future__ import annotations

import sys
import threading
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from jobs.model import Status

if TYPE_CHECKING:
    from jobs.wire import JobView

__all__ = ["Display", "describe", "eta_at", "format_eta"]


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


def eta_at(job: JobView, now: float | None = None) -> float | None:
    """When the job should be done or move on (unix time), where the server's state says:
    quota or retry resume times, the Space's queue estimate, or the pace of progress so far."""
    now = time.time() if now is None else now
    if job.status in (Status.WAITING_FOR_QUOTA, Status.RETRYING) and job.resume_at is not None:
        return job.resume_at.timestamp()
    if job.status is not Status.RUNNING:
        return None
    queue = job.queue
    if job.phase == "in_queue" and queue is not None and queue.eta_seconds is not None:
        return now + queue.eta_seconds
    if job.progress > 0.03 and job.started_at is not None:
        ran = max(0.0, now - job.started_at.timestamp())
        return now + ran * (1 - job.progress) / job.progress
    return None


def format_eta(at: float | None, now: float | None = None) -> str:
    if at is None:
        return ""
    left = max(0, round(at - (time.time() if now is None else now)))
    return f"~{left // 60}:{left % 60:02d}" if left < 3600 else f"~{left // 3600}:{left % 3600 // 60:02d}h"


class Display:
    """What `submit` shows while jobs run: bars (rich, on a terminal), lines (logs) or nothing."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self._lock = threading.Lock()
        self._last: dict[str, tuple[str, int]] = {}
        self._peaks: dict[str, tuple[int, int]] = {}
        self._progress: Any = None
        self._tasks: dict[str, Any] = {}
        # When stdout is the bars' terminal, results share its screen: print them through the bars'
        # console, above the bars. Anywhere else (a pipe, a file) they go to stdout as they are.
        self._output_through_console = mode == "bars" and sys.stdout.isatty() and sys.stderr.isatty()

    def __enter__(self) -> Display:
        if self.mode == "bars":
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                Progress,
                ProgressColumn,
                TaskProgressColumn,
                TextColumn,
                TimeElapsedColumn,
            )
            from rich.text import Text

            class EtaColumn(ProgressColumn):
                """Time left, counted down between updates (rich's own guesses from the bar's speed,
                which jumps when a job leaves a queue)."""

                def render(self, task: Any) -> Text:
                    return Text(format_eta(task.fields.get("eta_at")).ljust(6), style="progress.remaining")

            self._progress = Progress(
                TextColumn("{task.description}", style="bold"),
                BarColumn(bar_width=28),
                TaskProgressColumn(),
                TimeElapsedColumn(),
                EtaColumn(),
                TextColumn("{task.fields[state]}"),
                console=Console(stderr=True),
                refresh_per_second=8,
                # Writes to stdout go where they belong (see `output`), not into the bars' console.
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def add(self, label: str, job: JobView) -> None:
        if self._progress is not None:
            self._tasks[job.id] = self._progress.add_task(label, total=100, state="waiting", eta_at=None)
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
        eta = eta_at(job)
        if self._progress is not None:
            self._progress.update(self._tasks[job.id], completed=percent, state=text, eta_at=eta)
            return
        if self.mode != "lines":
            return
        with self._lock:
            # A line per change of words, or per 10 % of progress: readable in CI logs.
            previous = self._last.get(job.id)
            if previous is not None and previous[0] == text and previous[1] // 10 == percent // 10:
                return
            self._last[job.id] = (text, percent)
            left = f" ({format_eta(eta).lstrip('~')} left)" if eta is not None else ""
            click.echo(f"{label}: {percent:3d}% {text}{left}", err=True)

    def message(self, text: str) -> None:
        """Something for the person (stderr)."""
        if self._progress is not None:
            self._progress.console.print(text, markup=False, highlight=False, soft_wrap=True)
        else:
            click.echo(text, err=True)

    def output(self, text: str) -> None:
        """A result line (a path, a final state): stdout, or above the bars on a terminal."""
        if self._progress is not None and self._output_through_console:
            self._progress.console.print(text, markup=False, highlight=False, soft_wrap=True)
        else:
            with self._lock:
                click.echo(text)
