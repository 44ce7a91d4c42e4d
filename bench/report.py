"""The benchmark's one output: a markdown table, one row per figure, PASS/FAIL where a budget applies.

Every row carries the 1-minute load average at the moment it was measured: the machine is shared,
and a figure taken at load 9 on 2 cores means something else than one taken at load 0.5.
"""

from __future__ import annotations

import math
import os
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["COLUMNS", "Report", "Row", "load_average", "percentile", "ratio"]

COLUMNS = ("#", "section", "figure", "pipeline", "direct", "ratio", "budget", "verdict", "load")


def load_average() -> float:
    return os.getloadavg()[0]


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    return statistics.quantiles(ordered, n=100, method="inclusive")[max(0, min(98, round(q) - 1))]


def ratio(pipeline: float, direct: float) -> str:
    if not direct or math.isnan(direct) or math.isnan(pipeline):
        return "—"
    return f"{pipeline / direct:.2f}x"


@dataclass(slots=True)
class Row:
    section: str  # "1 overhead"
    figure: str  # what is measured, with its unit
    pipeline: str  # the pipeline's value, formatted
    direct: str = "—"  # the same thing done with direct gradio_client calls, if there is one
    ratio: str = "—"
    budget: str = ""  # e.g. "<= 15 ms"
    passed: bool | None = None  # None: no budget on this row
    load: float = field(default_factory=load_average)

    @property
    def verdict(self) -> str:
        if self.passed is None:
            return ""
        return "PASS" if self.passed else "FAIL"

    def cells(self) -> list[str]:
        number, _, name = self.section.partition(" ")
        return [
            number,
            name,
            self.figure,
            self.pipeline,
            self.direct,
            self.ratio,
            self.budget,
            self.verdict,
            f"{self.load:.1f}",
        ]


@dataclass(slots=True)
class Report:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        return row

    def note(self, text: str) -> None:
        self.notes.append(text)

    def table(self) -> str:
        def line(cells: Sequence[str]) -> str:
            return "| " + " | ".join(c.replace("|", "/") for c in cells) + " |"

        align = ["---:", "---", "---", "---:", "---:", "---:", "---", "---", "---:"]
        out = [line(COLUMNS), "|" + "|".join(align) + "|"]
        out.extend(line(row.cells()) for row in self.rows)
        return "\n".join(out)

    def render(self, header: str) -> str:
        parts = [header, "", self.table()]
        if self.notes:
            parts += ["", *(f"- {note}" for note in self.notes)]
        verdicts = [row.verdict for row in self.rows if row.verdict]
        parts += ["", f"{verdicts.count('PASS')} PASS, {verdicts.count('FAIL')} FAIL"]
        return "\n".join(parts)
