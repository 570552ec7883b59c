"""A latency histogram in the Prometheus sense: counts of observations in cumulative buckets, their sum and
count.  A vocabulary type: the layers that time something (the KDC's requests and its clients' round trips,
the NAR's buffering, the MN's handover interruption) keep one without knowing how it is exported;
:func:`fmipfast.metrics.histogram_family` renders it.

May import: nothing of fmipfast.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable

__all__ = ["Histogram", "LATENCY_BOUNDS", "HANDOVER_BOUNDS"]

#: Seconds: a KDC exchange on a LAN is a millisecond or less; a forwarded (case 3) or retransmitted one more.
LATENCY_BOUNDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
#: Seconds: a fast handover's interruption is the layer-2 gap plus a few round trips (tens of ms); a plain
#: Mobile IPv6 one, seconds.
HANDOVER_BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0)


class Histogram:
    """Observations (seconds, or any unit) counted under the upper ``bounds`` (strictly increasing, finite);
    ``+Inf`` is implicit.  Negative, NaN or infinite observations are refused (a clock that stepped back is
    the caller's bug to count, not a sample)."""

    __slots__ = ("bounds", "counts", "sum", "count")

    def __init__(self, bounds: Iterable[float] = LATENCY_BOUNDS) -> None:
        b = tuple(float(x) for x in bounds)
        if not b or any(not math.isfinite(x) for x in b) or any(x >= y for x, y in zip(b, b[1:])):
            raise ValueError("histogram bounds must be finite and strictly increasing")
        self.bounds = b
        self.counts = [0] * (len(b) + 1)  # per bucket (not cumulative); the last is (bounds[-1], +Inf)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"observation {value!r}: a finite, non-negative value is needed")
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def cumulative(self) -> list[tuple[float, int]]:
        """``(le, observations <= le)`` for every bound and ``+Inf`` (what the ``_bucket`` samples carry)."""
        out, total = [], 0
        for le, n in zip((*self.bounds, math.inf), self.counts):
            total += n
            out.append((le, total))
        return out
