"""The benchmark: `uv run python -m bench` prints one markdown table, PASS/FAIL per budget line.

    uv run python -m bench                 # everything, about 10-15 minutes on 2 cores
    uv run python -m bench --quick         # a short smoke run of every section (figures are rough)
    uv run python -m bench --sections overhead,throughput

Each section starts its own redis-server, ingest and consumers on free loopback ports (the offline
Spaces are shared by the sections) and stops them when it is done. The command exits 0 whatever
the verdicts: budgets are reported, never asserted. The machine is usually shared, so the pipeline
and the direct gradio_client calls it is compared with are measured side by side in the same run,
and each row shows the load average at the time.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.procs import Stack, redis_binary
from bench.report import Report, Row, load_average

SECTIONS = (
    "overhead",
    "throughput",
    "scaling",
    "ingest",
    "memory",
    "recovery",
    "fanout",
    "stylizer",
    "durable",
)
NUMBERS = {name: i + 1 for i, name in enumerate(SECTIONS)}


@dataclass
class Run:
    """What the sections share: the report, the quick flag, the work directory and the Spaces."""

    report: Report
    quick: bool
    workdir: Path
    spaces: Stack
    _urls: dict[str, str]
    consumer_env: dict[str, str]
    baseline_src: Path | None = None  # --baseline-src: another tree's ingest, side by side (section 4)

    def space(self, kind: str) -> str:
        """'fast': the fast engine, no delay; 'second': answers after exactly 1 s. Started once."""
        if kind not in self._urls:
            delay = 1.0 if kind == "second" else 0.0
            self._urls[kind] = self.spaces.space(engine="fast", delay_s=delay, concurrency=64)
        return self._urls[kind]

    def stack(self, name: str) -> Stack:
        return Stack(self.workdir / name, consumer_env=self.consumer_env)


def _header(quick: bool, started: datetime) -> str:
    redis = subprocess.run(
        [redis_binary(), "--version"], capture_output=True, text=True, check=False
    ).stdout.split()
    version = next((part.split("=")[1] for part in redis if part.startswith("v=")), "?")
    import os

    return (
        f"ghibli-pipeline benchmark{' (--quick: rough figures)' if quick else ''}, "
        f"{started:%Y-%m-%d %H:%M} UTC: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"redis-server {version}, load average {load_average():.1f} at the start"
    )


def _sections(names: str) -> list[str]:
    chosen = [name.strip() for name in names.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in SECTIONS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown sections {unknown}; choose from {', '.join(SECTIONS)}")
    return [name for name in SECTIONS if name in chosen]


def _runner(name: str) -> Callable[[Run], None]:
    from bench import sections

    runner: Callable[[Run], None] = getattr(sections, name)
    return runner


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a short smoke run of every section")
    parser.add_argument(
        "--sections",
        type=_sections,
        default=list(SECTIONS),
        help=f"comma-separated subset of: {', '.join(SECTIONS)} (default: all)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory (process logs)")
    parser.add_argument(
        "--consumer-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment of every consumer (experiments, e.g. trying a fix); repeatable",
    )
    parser.add_argument(
        "--baseline-src",
        type=Path,
        default=None,
        metavar="DIR",
        help="another version's source tree (e.g. `git archive main | tar -x -C DIR`): section 4 "
        "measures its ingest's upload latency side by side with this one's",
    )
    args = parser.parse_args(argv)
    started = datetime.now(tz=UTC)
    workdir = Path(tempfile.mkdtemp(prefix="ghibli-bench-"))
    consumer_env = dict(item.split("=", 1) for item in args.consumer_env)
    run = Run(Report(), args.quick, workdir, Stack(workdir / "spaces"), {}, consumer_env, args.baseline_src)
    if consumer_env:
        run.report.note(f"Consumers ran with extra environment {sorted(consumer_env)} (an experiment).")
    clock = time.monotonic()
    try:
        for name in args.sections:
            print(
                f"[bench] {NUMBERS[name]} {name} ... (load {load_average():.1f})", file=sys.stderr, flush=True
            )
            section_clock = time.monotonic()
            try:
                _runner(name)(run)
            except Exception as exc:  # noqa: BLE001 - one broken section must not hide the others' figures
                traceback.print_exc(file=sys.stderr)
                message = f"{type(exc).__name__}: {exc}".splitlines()[0][:160]
                run.report.add(Row(f"{NUMBERS[name]} {name}", f"ERROR: {message}", "—", passed=False))
            print(
                f"[bench] {name} took {time.monotonic() - section_clock:.0f} s", file=sys.stderr, flush=True
            )
    finally:
        run.spaces.close()
        if args.keep:
            print(f"[bench] logs kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    run.report.note(
        f"Whole run: {time.monotonic() - clock:.0f} s; load average {load_average():.1f} at the end. "
        "Command: `uv run python -m bench" + (" --quick" if args.quick else "") + "`."
    )
    print(run.report.render(_header(args.quick, started)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
