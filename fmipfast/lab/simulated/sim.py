"""Discrete-event simulation for ``fmipfast demo``: a virtual clock, links with delay, and ports for the engine.

Everything in one process and deterministic: events run in time order (ties in scheduling order), so a run
with the same seed gives the same timeline, byte for byte.  :class:`SimPort` is an engine port
(:class:`fmipfast.ports.Port`): a frame sent on a :class:`SimLink` reaches every other attached port after
the link's delay; a port can move between links (the layer-2 handover) or be detached (the link gap), and a
frame in flight to a port that has left is lost, as on a real link.  Taps see every frame (``--capture``).

Ownership: single-threaded; the simulator owns its clock (nothing here reads the wall clock).
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Callable, Iterator

import numpy as np

from fmipfast.ports import FrameBatch, Port, pack_frames

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


class SimLink:
    """A broadcast link (a hub) with a one-way delay."""

    def __init__(self, sim: Sim, name: str, delay_ns: int = 0) -> None:
        self.sim = sim
        self.name = name
        self.delay_ns = delay_ns
        self.ports: list[SimPort] = []
        self.taps: list[Callable[[int, str, bytes], None]] = []
        self.counters = {"frames": 0, "delivered": 0, "lost_in_flight": 0}

    def carry(self, sender: "SimPort", frame: bytes) -> None:
        self.counters["frames"] += 1
        for tap in self.taps:
            tap(self.sim.now, self.name, frame)
        for port in list(self.ports):
            if port is not sender:
                self.sim.after(self.delay_ns, self._arrival(port, frame))

    def _arrival(self, port: "SimPort", frame: bytes) -> Callable[[], None]:
        return lambda: self._arrive(port, frame)

    def _arrive(self, port: "SimPort", frame: bytes) -> None:
        if port.link is not self:  # it moved away while the frame was in flight
            self.counters["lost_in_flight"] += 1
            return
        self.counters["delivered"] += 1
        port._deliver(frame)


class SimPort(Port):
    """An interface on a :class:`SimLink`; ``on_receive`` is called (once per burst, at the arrival time)
    so its node can poll."""

    def __init__(self, sim: Sim, name: str, mac: bytes, link: SimLink | None = None) -> None:
        self.sim = sim
        self.name = name
        self.mac = bytes(mac)
        self.link: SimLink | None = None
        self.on_receive: Callable[[], object] | None = None
        self._queue: deque[tuple[int, bytes]] = deque()
        self._wake_scheduled = False
        self.counters = {"rx_frames": 0, "tx_frames": 0, "tx_lost_link_down": 0}
        self.attach(link)

    def attach(self, link: SimLink | None) -> None:
        if self.link is not None:
            self.link.ports.remove(self)
        self._queue.clear()
        self.link = link
        if link is not None:
            link.ports.append(self)

    def _deliver(self, frame: bytes) -> None:
        self._queue.append((self.sim.now, frame))
        if self.on_receive is not None and not self._wake_scheduled:
            self._wake_scheduled = True
            self.sim.after(0, self._wake)

    def _wake(self) -> None:
        self._wake_scheduled = False
        if self.on_receive is not None:
            self.on_receive()

    def receive(self) -> Iterator[FrameBatch]:
        if not self._queue:
            return
        take = list(self._queue)
        self._queue.clear()
        arena, offsets, lengths = pack_frames(f for _, f in take)
        self.counters["rx_frames"] += len(take)
        yield FrameBatch(self, arena, offsets, lengths, np.zeros(len(take), dtype=np.uint32),
                         np.array([t for t, _ in take], dtype=np.int64))

    def send(self, arena: np.ndarray, offsets: np.ndarray, lengths: np.ndarray) -> int:
        n = int(offsets.shape[0])
        if self.link is None:
            self.counters["tx_lost_link_down"] += n
            return 0
        for o, ln in zip(offsets, lengths):
            self.link.carry(self, np.asarray(arena[int(o):int(o) + int(ln)]).tobytes())
        self.counters["tx_frames"] += n
        return n

    def statistics(self) -> dict[str, int]:
        return dict(self.counters)
