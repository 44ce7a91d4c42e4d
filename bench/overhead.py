"""Section 1: what one job costs in latency on top of the Space call itself.

One job at a time, photo in to picture out: the pipeline's job is POSTed to ingest, followed on its
SSE stream to the end and its result downloaded; the direct call is `Client.predict` with the same
stored photo and parameters, its result downloaded by gradio_client. The three kinds of call take
turns (in a rotating order), so a change in the machine's load hits all of them alike.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.direct import DirectCaller
from bench.pipeline import Trip, submit_and_watch
from bench.procs import Stack
from bench.report import Report, Row, percentile, ratio

__all__ = ["OverheadConfig", "run_overhead"]

SECTION = "1 overhead"
BUDGET_MS = 15.0


@dataclass(frozen=True, slots=True)
class OverheadConfig:
    jobs: int = 60
    warmup: int = 3
    size: int = 256


@dataclass(slots=True)
class _Samples:
    pipeline: list[Trip] = field(default_factory=list)
    direct: dict[str, list[float]] = field(default_factory=lambda: {"default": [], "tuned": []})


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def run_overhead(
    report: Report, stack: Stack, space_url: str, photo: bytes, stored_photo: Path, config: OverheadConfig
) -> None:
    redis_url = stack.redis()
    _, ingest_url = stack.ingest(redis_url)
    stack.consumers(redis_url, space_url, (1, 2))
    callers = {
        kind: DirectCaller(space_url, kind, stored_photo, config.size) for kind in ("default", "tuned")
    }
    samples = _Samples()
    kinds = ["pipeline", "default", "tuned"]
    try:
        with httpx.Client(base_url=ingest_url, timeout=60) as client:
            for turn in range(config.warmup + config.jobs):
                order = kinds[turn % 3 :] + kinds[: turn % 3]
                for kind in order:
                    seed = 10_000 + turn
                    if kind == "pipeline":
                        trip = submit_and_watch(client, photo, size=config.size, seed=seed)
                        if turn >= config.warmup:
                            samples.pipeline.append(trip)
                    else:
                        seconds = callers[kind].call(seed)
                        if turn >= config.warmup:
                            samples.direct[kind].append(seconds)
    finally:
        for caller in callers.values():
            caller.close()
    _rows(report, samples, config)


def _rows(report: Report, samples: _Samples, config: OverheadConfig) -> None:
    ok = [t for t in samples.pipeline if t.status == "succeeded"]
    failed = len(samples.pipeline) - len(ok)
    pipe = [t.seconds for t in ok]
    labels = {"default": "gradio_client defaults", "tuned": "gradio_client + shared SSL context"}
    p50 = statistics.median(pipe) if pipe else float("nan")
    p99 = percentile(pipe, 99)
    for kind, label in labels.items():
        direct = samples.direct[kind]
        d50 = statistics.median(direct) if direct else float("nan")
        report.add(
            Row(
                SECTION,
                f"latency p50, photo in to picture out (ms); direct = {label}",
                _ms(p50),
                _ms(d50),
                ratio(p50, d50),
            )
        )
        d99 = percentile(direct, 99)
        report.add(Row(SECTION, f"latency p99 (ms); direct = {label}", _ms(p99), _ms(d99), ratio(p99, d99)))
    best = min(statistics.median(samples.direct[k]) if samples.direct[k] else float("inf") for k in labels)
    overhead = p50 - best
    report.add(
        Row(
            SECTION,
            f"overhead p50 = pipeline p50 - faster direct p50 (ms), {len(pipe)} jobs "
            f"of {config.size}x{config.size}" + (f", {failed} FAILED" if failed else ""),
            _ms(overhead),
            _ms(best),
            budget=f"<= {BUDGET_MS:.0f} ms",
            passed=overhead * 1000 <= BUDGET_MS and failed == 0,
        )
    )
    parts = {
        "upload (POST answered)": [t.submit_s for t in ok],
        "queued (created to claimed)": [t.queued_s for t in ok],
        "running (claimed to finished, Space call included)": [t.running_s for t in ok],
        "notified (finished to SSE event received)": [t.notified_s for t in ok],
    }
    shown = ", ".join(f"{name} {_ms(statistics.median(v))}" for name, v in parts.items() if v)
    running = statistics.median(parts["running (claimed to finished, Space call included)"] or [float("nan")])
    report.add(
        Row(
            SECTION,
            f"where a pipeline job's time goes, p50 (ms): {shown}; running minus the faster direct "
            f"call: {_ms(running - best)}",
            _ms(p50),
        )
    )
