"""Interleaved timing, a cross-check of pyperf's figures on a shared machine.

pyperf times one row after another, so when other work on the machine comes and goes (two cores shared by
several people) the rows of one run see different loads and their ratios drift by tens of percent.  Here the
rows take turns, one call each per round, in one process, so every row sees the same load; the medians and
minima over the rounds give the ratios.  Benchmark use only.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def run(rows: dict[str, Callable[[], object]], rounds: int, units: int) -> dict[str, tuple[float, float]]:
    """{name: (median, min) seconds per unit}: each round calls every row once, in turn (``units`` units,
    e.g. frames or lookups, per call); one untimed warm-up round first."""
    for call in rows.values():
        call()
    times: dict[str, list[float]] = {name: [] for name in rows}
    for _ in range(rounds):
        for name, call in rows.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return {name: (statistics.median(t) / units, min(t) / units) for name, t in times.items()}


def table(results: dict[str, tuple[float, float]], refs: dict[str, str], unit: str) -> str:
    """A text table: ns per unit (median, min) and the ratio of each row's rate to each reference row's."""
    head = f"{'row':<26}{'median ns/' + unit:>18}{'min':>8}" + "".join(f"{'vs ' + r:>22}" for r in refs)
    lines = [head]
    for name, (med, low) in results.items():
        line = f"{name:<26}{med * 1e9:>18.1f}{low * 1e9:>8.1f}"
        for ref in refs.values():
            rmed, rlow = results[ref]
            line += f"{rmed / med:>12.2f}x /{rlow / low:>5.2f}x"
        lines.append(line)
    lines.append("(ratios: rate / reference rate, by medians / by minima)")
    return "\n".join(lines)
