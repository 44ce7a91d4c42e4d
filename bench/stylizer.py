"""Speed of the offline stylizer: milliseconds per megapixel at 512, 768 and 1024 square.

    uv run python -m bench.stylizer [--repeat N] [--engine ghibli|fast]

Prints a markdown table. The budget (issue 7) is at most 500 ms per megapixel at 768x768 on a
2-core machine; this reports it, no test asserts it. Timings on a shared machine are noisy, so the
table shows the median and the best wall time of N runs after one warm-up call, the CPU time the
process used per call (what the work costs, whatever else runs), and the load average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

from PIL import Image

from space.samples import meadow, portrait
from space.stylizer import fast_transform, stylize

SIZES = (512, 768, 1024)
BUDGET_MS_PER_MP = 500.0


def _time(
    fn: Callable[..., Image.Image], image: Image.Image, size: int, repeat: int
) -> tuple[list[float], float]:
    """Wall seconds of each run, and the mean CPU seconds per run."""
    fn(image, size, size, 0)  # warm-up: imports, OpenCV thread pool, allocator
    walls = []
    cpu_start = time.process_time()
    for seed in range(repeat):
        start = time.perf_counter()
        fn(image, size, size, seed)
        walls.append(time.perf_counter() - start)
    return walls, (time.process_time() - cpu_start) / repeat


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=7, help="timed runs per size and photo")
    parser.add_argument("--engine", choices=("ghibli", "fast"), default="ghibli")
    args = parser.parse_args()
    fn = stylize if args.engine == "ghibli" else fast_transform
    photos = {"meadow": meadow(1600, 1066, seed=1), "portrait": portrait(900, 1200, seed=2)}
    load = os.getloadavg()[0]
    print(
        f"engine `{args.engine}`, {args.repeat} runs per cell after a warm-up, {os.cpu_count()} CPUs, ",
        end="",
    )
    print(f"load average {load:.1f} at start\n")
    print("| size | photo | median ms | best ms | CPU ms | median ms/MP | best ms/MP |")
    print("|---|---|---:|---:|---:|---:|---:|")
    at_768: list[float] = []
    for size in SIZES:
        mp = size * size / 1e6
        for name, photo in photos.items():
            walls, cpu = _time(fn, photo, size, args.repeat)
            med, best = statistics.median(walls) * 1000, min(walls) * 1000
            if size == 768:
                at_768.append(med / mp)
            cells = f"{med:.0f} | {best:.0f} | {cpu * 1000:.0f} | {med / mp:.0f} | {best / mp:.0f}"
            print(f"| {size}x{size} | {name} | {cells} |")
    worst = max(at_768)
    verdict = "within" if worst <= BUDGET_MS_PER_MP else "OVER"
    budget = f"{BUDGET_MS_PER_MP:.0f} ms/MP budget"
    print(f"\n768x768: {worst:.0f} ms/MP (median, slower photo): {verdict} the {budget}", end="")
    print(f" (load average {os.getloadavg()[0]:.1f} at the end)")


if __name__ == "__main__":
    main()
