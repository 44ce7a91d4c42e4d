"""The nine sections with their full and --quick sizes; `bench/__main__.py` runs them in order.

Sections 1-3 and 5-7 send the same 640x480 photo and ask for 256x256 pictures, the smallest the
Space accepts: the offline Space shares the two cores with everything else here, so its own work
is kept as small as it gets ("an instant Space").
"""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING

from bench.direct import CLIENTS
from bench.durable import run_durable
from bench.fanout import fanout_rows, measure_fanout
from bench.ingest_load import run_space_uploads, run_uploads, upload_rows
from bench.memory import consumer_memory, memory_rows, queued_job_memory
from bench.overhead import OverheadConfig, run_overhead
from bench.photos import job_photo, jpeg_of_size
from bench.recovery import (
    HEARTBEAT_TIMEOUT_S,
    LEASE_S,
    gap_row,
    measure_gaps,
    measure_recovery,
    recovery_row,
)
from bench.report import Row
from bench.stylizer import BUDGET_MS_PER_MP, SIZES
from bench.stylizer import _time as time_stylizer
from bench.throughput import Level, LevelResult, measure_level, scaling_rows, throughput_rows
from bench.upload_latency import latency_rows, measure_latency

if TYPE_CHECKING:
    from bench.__main__ import Run

__all__ = [
    "durable",
    "fanout",
    "ingest",
    "memory",
    "overhead",
    "recovery",
    "scaling",
    "stylizer",
    "throughput",
]

SIZE = 256  # pixels, square: the picture every job asks for


def overhead(run: Run) -> None:
    config = OverheadConfig(jobs=5, warmup=1) if run.quick else OverheadConfig(jobs=60, warmup=3)
    stack = run.stack("overhead")
    try:
        raw, stored = job_photo(run.workdir)
        run_overhead(run.report, stack, run.space("fast"), raw, stored, config)
    finally:
        stack.close()


def _levels(run: Run, space: str, levels: list[Level], seed_base: int) -> list[LevelResult]:
    stack = run.stack(f"levels-{space}")
    try:
        raw, stored = job_photo(run.workdir)
        redis_url = stack.redis()
        space_url = run.space(space)
        return [
            measure_level(
                stack,
                redis_url,
                space_url,
                run.spaces.pid(space_url),
                raw,
                stored,
                level,
                size=SIZE,
                clients=CLIENTS,
                seed_base=seed_base * (index + 1),
            )
            for index, level in enumerate(levels)
        ]
    finally:
        stack.close()


def throughput(run: Run) -> None:
    if run.quick:  # 64 in flight at the default client's CPU cost takes minutes
        levels = [Level(1, 3), Level(4, 8)]
    else:
        levels = [Level(1, 20), Level(4, 40), Level(16, 96), Level(64, 192)]
    throughput_rows(run.report, _levels(run, "fast", levels, 1_000_000))


def scaling(run: Run) -> None:
    rounds, counts = (2, (1, 4)) if run.quick else (3, (1, 4, 16, 64))
    levels = [Level(n, rounds * n) for n in counts]
    scaling_rows(run.report, _levels(run, "second", levels, 5_000_000))


def ingest(run: Run) -> None:
    rounds, per_round = (2, 3) if run.quick else (6, 10)
    stack = run.stack("ingest-latency")
    try:
        latency_rows(run.report, measure_latency(stack, run.baseline_src, rounds=rounds, per_round=per_round))
    finally:
        stack.close()
    concurrency = 4
    for target, count in ((1_000_000, 4 if run.quick else 40), (10_000_000, 2 if run.quick else 12)):
        photo = jpeg_of_size(target)
        ours = run_uploads(run.stack(f"ingest-{target}"), photo, count, concurrency)
        direct = run_space_uploads(run.space("fast"), photo, count, concurrency)
        upload_rows(run.report, f"{len(photo) / 1e6:.1f} MB", count, concurrency, ours, direct)


def memory(run: Run) -> None:
    jobs = 30 if run.quick else 300
    raw, stored = job_photo(run.workdir)
    blob_dir = run.workdir / "blobs"
    blob_dir.mkdir(exist_ok=True)
    bare = queued_job_memory(run.stack("memory-bare"), raw, jobs, blob_dir=blob_dir)
    full = queued_job_memory(run.stack("memory-blob"), raw, jobs, blob_dir=None)
    concurrency = 4 if run.quick else 16
    consumer = consumer_memory(
        run.stack("memory-consumer"), run.space("second"), raw, stored, concurrency, 2 * concurrency
    )
    memory_rows(run.report, jobs, bare, full, consumer)


def recovery(run: Run) -> None:
    raw, _ = job_photo(run.workdir)
    space = run.space("second")
    # By heartbeat with the defaults; by lease with the heartbeat timeout above the lease.
    lease = 3.0 if run.quick else LEASE_S
    for name, lease_s, timeout_s in (
        ("heartbeat", LEASE_S, HEARTBEAT_TIMEOUT_S),
        ("lease", lease, lease * 4),
    ):
        result = measure_recovery(
            run.stack(f"recovery-{name}"), space, raw, lease_s=lease_s, heartbeat_timeout_s=timeout_s
        )
        recovery_row(run.report, result, defaults=lease_s == LEASE_S)
    processes, concurrency = (2, 4) if run.quick else (2, 32)
    gaps = measure_gaps(
        run.stack("recovery-gaps"), run.space("fast"), raw, processes=processes, concurrency=concurrency
    )
    gap_row(run.report, gaps)


def fanout(run: Run) -> None:
    viewers, jobs = (100, 10) if run.quick else (1000, 50)
    raw, _ = job_photo(run.workdir)
    fanout_rows(run.report, measure_fanout(run.stack("fanout"), run.space("second"), raw, viewers, jobs))


def stylizer(run: Run) -> None:
    """bench/stylizer.py's timing, one row per size; its own command prints the full detail."""
    from space.samples import meadow, portrait
    from space.stylizer import stylize

    repeat = 1 if run.quick else 5
    photos = [meadow(1600, 1066, seed=1)] + ([] if run.quick else [portrait(900, 1200, seed=2)])
    for size in SIZES:
        megapixels = size * size / 1e6
        worst = max(
            statistics.median(time_stylizer(stylize, photo, size, repeat)[0]) * 1000 / megapixels
            for photo in photos
        )
        budget = size == 768
        run.report.add(
            Row(
                "8 stylizer",
                f"offline stylizer ms per megapixel at {size}x{size}: median of {repeat} runs, slower of "
                f"{len(photos)} photos (detail: `uv run python -m bench.stylizer`)",
                f"{worst:.0f}",
                budget=f"<= {BUDGET_MS_PER_MP:.0f} ms/MP" if budget else "",
                passed=worst <= BUDGET_MS_PER_MP if budget else None,
            )
        )


def durable(run: Run) -> None:
    stack = run.stack("durable")
    try:
        raw, _stored = job_photo(run.workdir)
        run_durable(run.report, stack, raw, quick=run.quick, workdir=run.workdir)
    finally:
        stack.close()
