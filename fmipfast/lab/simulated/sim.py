"""Discrete-event simulation for ``fmipfast demo``: a virtual clock, links with delay, and ports for the engine.

Everything in one process and deterministic: events run in time order (ties in scheduling order), so a run
with the same seed gives the same timeline, byte for byte.  :class:`SimLink` and :class:`SimPort` are the
in-memory wire of :mod:`fmipfast.ports` (:class:`~fmipfast.ports.MemoryLink`, :class:`~fmipfast.ports.MemoryPort`)
on this clock: a frame sent on a link reaches every other attached port after the link's delay; a port can
move between links (the layer-2 handover) or be detached (the link gap), and a frame in flight to a port that
has left is lost, as on a real link.  Taps see every frame (``--capture``).

Ownership: single-threaded; the simulator owns its clock (nothing here reads the wall clock).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable

from fmipfast.ports import MemoryLink, MemoryPort

__all__ = ["Sim", "SimLink", "SimPort", "MS", "US"]

US = 1_000
MS = 1_000_000


class Sim:
    """A virtual clock (ns) and an event queue."""

    def __init__(self, start_ns: int = 0) -> None:
        self.now = start_ns
        self._queue: list[tuple[int, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self.events_run = 0

    def clock(self) -> int:
        return self.now

    def at(self, when_ns: int, fn: Callable[[], None]) -> None:
        heapq.heappush(self._queue, (max(when_ns, self.now), next(self._seq), fn))

    def after(self, delay_ns: int, fn: Callable[[], None]) -> None:
        self.at(self.now + delay_ns, fn)

    def every(self, period_ns: int, fn: Callable[[], None], *, until_ns: int | None = None) -> None:
        """Run ``fn`` now and then every ``period_ns`` (until ``until_ns``)."""

        def step() -> None:
            fn()
            if until_ns is None or self.now + period_ns <= until_ns:
                self.after(period_ns, step)

        self.at(self.now, step)

    def pending(self) -> int:
        return len(self._queue)

    def run(self, until_ns: int, *, max_events: int = 10_000_000) -> None:
        """Run events up to ``until_ns`` (inclusive), then leave the clock there."""
        while self._queue and self._queue[0][0] <= until_ns:
            when, _, fn = heapq.heappop(self._queue)
            self.now = when
            fn()
            self.events_run += 1
            if self.events_run > max_events:
                raise RuntimeError(f"simulation ran more than {max_events} events: a timer loop?")
        self.now = max(self.now, until_ns)


class SimLink(MemoryLink):
    """A broadcast link (a hub) with a one-way delay: a :class:`~fmipfast.ports.MemoryLink` whose frames
    arrive on ``sim``'s clock."""

    def __init__(self, sim: Sim, name: str, delay_ns: int = 0) -> None:
        super().__init__(name, delay_ns=delay_ns, schedule=sim.after)
        self.sim = sim


class SimPort(MemoryPort):
    """An interface on a :class:`SimLink`: a :class:`~fmipfast.ports.MemoryPort` on ``sim``'s clock that
    hands over everything queued in one batch; ``on_receive`` is called (once per burst, at the arrival time)
    so its node can poll."""

    def __init__(self, sim: Sim, name: str, mac: bytes, link: MemoryLink | None = None) -> None:
        super().__init__(name, mac, link, batch_size=None, clock=sim.clock)
        self.sim = sim
