"""The light-weight Kerberos replay cache (RFC 4120 §3.2.3; docs/security.md §5): the authenticators seen
within the skew window, bounded, failing closed when full of live entries.

Ownership/threading: a :class:`ReplayCache` belongs to its verifier's asyncio loop (the engine's); it is
mutated without locks.
"""

from __future__ import annotations

import heapq

from fmipfast.security.lwkerb.constants import _US, DEFAULT_SKEW
from fmipfast.security.lwkerb.errors import ReplayCacheFull, ReplayDetected


class ReplayCache:
    """Authenticators seen within the skew window (RFC 4120 §3.2.3), bounded by ``capacity``.

    An entry for an authenticator with ctime *c* lives while ``now <= c + skew``; :meth:`check_and_add`
    first purges dead entries, then rejects a repeat (:class:`ReplayDetected`) or, when ``capacity`` live
    entries remain, rejects the new one (:class:`ReplayCacheFull`: fail closed, never evict a live entry).
    """

    def __init__(self, capacity: int = 65536, skew: float = DEFAULT_SKEW) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self.skew_us = int(skew * _US)
        self._seen: dict[tuple, int] = {}
        self._heap: list[tuple[int, int, tuple]] = []  # (expiry, arrival, key): keys themselves never compared
        self._arrivals = 0

    def __len__(self) -> int:
        return len(self._seen)

    def purge(self, now_us: int) -> None:
        h = self._heap
        while h and h[0][0] < now_us:
            exp, _n, k = heapq.heappop(h)
            if self._seen.get(k) == exp:
                del self._seen[k]

    def check_and_add(self, key: tuple, ctime_us: int, now_us: int) -> None:
        self.purge(now_us)
        if key in self._seen:
            raise ReplayDetected("authenticator replayed within the skew window")
        if len(self._seen) >= self.capacity:
            raise ReplayCacheFull(f"replay cache full ({self.capacity} live entries): rejecting")
        exp = ctime_us + self.skew_us
        self._seen[key] = exp
        self._arrivals += 1
        heapq.heappush(self._heap, (exp, self._arrivals, key))
