"""Section 4, latency: what one honest upload waits for, answered 202, decoded in the sandbox.

One client, one upload at a time, to one ingest process: a 640x480 JPEG as browsers export it
(stored byte for byte) and a 12 MP phone photo (EXIF-rotated: decoded, turned upright, resized to
2048 px and re-encoded). With `--baseline-src DIR` (a tree of another version, e.g. made by
`git archive main | tar -x -C DIR`) the same uploads go to that version's ingest too, in
alternating rounds so both see the same machine load, and the rows carry the budgets of issue
#15: the 640x480 p50 within +3 ms of the baseline, the 12 MP p50 no slower than it.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.photos import phone_jpeg, web_jpeg
from bench.procs import Stack
from bench.report import Report, Row, ratio

__all__ = ["LatencyRun", "latency_rows", "measure_latency"]

SECTION = "4 ingest"


@dataclass(frozen=True, slots=True)
class LatencyRun:
    name: str
    ours: list[float]
    baseline: list[float]


def _uploads(client: httpx.Client, url: str, photo: bytes, count: int, seed_base: int) -> list[float]:
    times: list[float] = []
    for index in range(count):
        started = time.perf_counter()
        response = client.post(
            url + "/v1/jobs",
            files={"image": ("photo.jpg", photo, "image/jpeg")},
            data={"seed": str(seed_base + index)},
        )
        times.append(time.perf_counter() - started)
        if response.status_code != 202:
            raise RuntimeError(f"upload refused: {response.status_code} {response.text[:200]}")
    return times


def measure_latency(
    stack: Stack, baseline_src: Path | None, *, rounds: int, per_round: int
) -> list[LatencyRun]:
    """Upload latencies of both photos, ours and (if given) the baseline's, in alternating rounds."""
    redis_url = stack.redis()
    targets = {"ours": stack.ingest(redis_url)[1]}
    if baseline_src is not None:
        targets["baseline"] = stack.ingest(stack.redis(), baseline_src)[1]
    photos = {
        "640x480 JPEG as browsers export it": web_jpeg(),
        "12 MP phone JPEG (EXIF-rotated)": phone_jpeg(),
    }
    runs: list[LatencyRun] = []
    with httpx.Client(timeout=120) as client:
        for seed, (name, photo) in enumerate(photos.items()):
            times: dict[str, list[float]] = {who: [] for who in targets}
            for url in targets.values():  # warm-up: decode workers started, code paths loaded
                _uploads(client, url, photo, 2, seed * 1_000_000)
            for index in range(rounds):
                order = list(targets.items()) if index % 2 == 0 else list(reversed(targets.items()))
                for who, url in order:
                    base = seed * 1_000_000 + (index + 1) * 1000
                    times[who] += _uploads(client, url, photo, per_round, base)
            runs.append(LatencyRun(name, times["ours"], times.get("baseline", [])))
    return runs


def latency_rows(report: Report, runs: list[LatencyRun]) -> None:
    for run, (slack_ms, budget) in zip(
        runs, ((3.0, "<= baseline + 3 ms"), (0.0, "<= baseline")), strict=True
    ):
        ours = statistics.median(run.ours) * 1000
        base = statistics.median(run.baseline) * 1000 if run.baseline else float("nan")
        compared = bool(run.baseline)
        report.add(
            Row(
                SECTION,
                f"upload latency p50 (ms), {run.name}, {len(run.ours)} uploads one at a time"
                + (
                    "; direct = the same uploads to the baseline tree's ingest, alternating rounds"
                    if compared
                    else ""
                ),
                f"{ours:.1f}",
                f"{base:.1f}" if compared else "—",
                ratio(ours, base) if compared else "—",
                budget=budget if compared else "",
                passed=(ours <= base + slack_ms) if compared else None,
            )
        )
