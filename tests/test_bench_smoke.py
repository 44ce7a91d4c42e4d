"""The benchmark runs end to end in its --quick mode and prints a well-formed table.

Speed is never asserted here (budgets are the benchmark's business, reported as PASS/FAIL and
never failing the command): this checks the structure of what it prints, so the README's table
can always be regenerated with the command it names.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from bench.report import COLUMNS
from tests.procs import ROOT, base_env

pytestmark = pytest.mark.system  # starts processes beyond redis-server (docs/tests.md)

SECTIONS = {
    "1": "overhead",
    "2": "throughput",
    "3": "scaling",
    "4": "ingest",
    "5": "memory",
    "6": "recovery",
    "7": "fan-out",
    "8": "stylizer",
    "9": "durable",
}
# Sections whose --quick run still measures a budgeted figure (3's budget is at 64 in flight).
BUDGETED = {"1", "2", "5", "6", "8"}
NUMBER = re.compile(r"^(—|-?\d+(\.\d+)?( / -?\d+(\.\d+)?)?)$")


def _cells(line: str) -> list[str]:
    assert line.startswith("| "), line
    assert line.endswith(" |"), line
    return [cell.strip() for cell in line[2:-2].split(" | ")]


def test_quick_run_prints_one_well_formed_table() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--quick"],
        cwd=ROOT,
        env=base_env(),
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    lines = run.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| #"))
    assert lines[0].startswith("ghibli-pipeline benchmark (--quick"), lines[0]
    assert "load average" in lines[0]
    assert _cells(lines[header]) == list(COLUMNS)
    assert re.fullmatch(r"\|(-{3}:?\|)+", lines[header + 1])
    rows = []
    for line in lines[header + 2 :]:
        if not line.startswith("|"):
            break
        rows.append(_cells(line))
    assert rows, run.stdout
    seen: dict[str, list[list[str]]] = {}
    for row in rows:
        assert len(row) == len(COLUMNS), row
        number, section, figure, pipeline, direct, ratio, budget, verdict, load = row
        assert SECTIONS.get(number) == section, row
        assert not figure.startswith("ERROR"), row
        assert NUMBER.match(pipeline), row
        assert NUMBER.match(direct), row
        assert ratio == "—" or re.fullmatch(r"\d+\.\d\dx", ratio), row
        assert verdict in ("PASS", "FAIL") if budget else verdict == "", row
        float(load)
        seen.setdefault(number, []).append(row)
    assert set(seen) == set(SECTIONS), sorted(seen)
    for number in BUDGETED:
        assert any(row[7] for row in seen[number]), f"section {number} has no verdict"
    # Every direct comparison the issue asks for is there, with its ratio.
    for number in ("1", "2", "3"):
        assert all(row[4] != "—" and row[5] != "—" for row in seen[number] if "direct =" in row[2])
    verdicts = [row[7] for row in rows if row[7]]
    summary = f"{verdicts.count('PASS')} PASS, {verdicts.count('FAIL')} FAIL"
    assert summary in lines[-1], lines[-1]
