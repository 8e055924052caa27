"""wsio's benchmarks: each measures wsio and its peers side by side in one run.

``python -m bench`` runs every suite, ``python -m bench NAME ...`` the named ones (options
after the names, such as ``--quick``, go to each suite). A suite is a module in this
package with ``main(argv: list[str] | None = None) -> None``; it prints its tables and
writes them, with the machine they ran on, to ``bench/results/NAME.md``.

Benchmarks never run in the test suite: timings on shared virtual machines vary from
run to run, so they are compared only within one run. The helpers here give suites
the same method: every candidate is timed in rounds that alternate between candidates
(so a slow spell of the machine hits them all), and the best round counts.
"""

from __future__ import annotations

import timeit
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Table:
    """A result table: ``rows`` of cells under ``columns``, with notes printed below."""

    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        """The table as GitHub markdown, numbers right-aligned."""
        align = ["---" if i == 0 else "---:" for i in range(len(self.columns))]
        lines = [f"### {self.title}", ""]
        lines.append("| " + " | ".join(self.columns) + " |")
        lines.append("| " + " | ".join(align) + " |")
        lines.extend("| " + " | ".join(row) + " |" for row in self.rows)
        if self.notes:
            lines.append("")
            lines.extend(self.notes)
        return "\n".join(lines) + "\n"


def best_times(
    statements: Mapping[str, str],
    namespace: Mapping[str, Any],
    *,
    rounds: int = 7,
    round_seconds: float = 0.02,
) -> dict[str, float]:
    """Seconds per execution of each statement: the best of ``rounds`` timed rounds.

    Each round runs every statement in turn for about ``round_seconds``; the number of
    executions per round is set once per statement beforehand.
    """
    timers = {
        name: timeit.Timer(stmt, globals=dict(namespace)) for name, stmt in statements.items()
    }
    numbers = {name: _calibrate(timer, round_seconds) for name, timer in timers.items()}
    best = dict.fromkeys(timers, float("inf"))
    for _ in range(rounds):
        for name, timer in timers.items():
            best[name] = min(best[name], timer.timeit(numbers[name]) / numbers[name])
    return best


def _calibrate(timer: timeit.Timer, round_seconds: float) -> int:
    number = 1
    while True:
        elapsed = timer.timeit(number)
        if elapsed >= round_seconds / 4:
            return max(1, int(number * round_seconds / elapsed))
        number *= 4


def gbps(size: int, seconds: float) -> str:
    """``size`` bytes per ``seconds`` as GB/s (10**9 bytes), two significant places."""
    return f"{size / seconds / 1e9:.2f}" if size / seconds < 1e10 else f"{size / seconds / 1e9:.1f}"


def ratio(a: float, b: float) -> str:
    """``a / b`` as ``1.23×``."""
    return f"{a / b:.2f}×"


def humanize_size(size: int) -> str:
    """1024 -> '1 KiB', 1048576 -> '1 MiB', 100 -> '100 B'."""
    for unit, scale in (("MiB", 2**20), ("KiB", 2**10)):
        if size >= scale and size % scale == 0:
            return f"{size // scale} {unit}"
    return f"{size} B"


__all__ = ["Table", "best_times", "gbps", "humanize_size", "ratio"]
