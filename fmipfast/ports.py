"""The engine's interfaces ("ports"): the :class:`Port` protocol, three implementations that run the same engine.

* :class:`RingPort` — a real link, owned through an AF_PACKET socket with TPACKET_V3 rings (:mod:`rings`).
* :class:`PcapPort` — frames replayed from a capture file; what the engine sends is written to another
  (a VPP-style pcap-in / pcap-out harness that needs no root).
* :class:`MemoryPort` on a :class:`MemoryLink` — an in-memory wire for tests and ``fmipfast demo``: every
  frame sent on a link reaches every other port attached to it (a hub), at once or after a delay on a
  caller's scheduler (the demo's simulated clock), a port can be moved between links (the layer-2
  handover), and a detached port's frames are counted as lost.

Every port yields :class:`FrameBatch` objects — a uint8 ``arena`` with int64 ``offsets`` and uint32
``lengths`` (exactly what ``classify`` takes), the per-frame ``status`` (TP_STATUS_* bits; 0 off the rings)
and ``ts_ns`` — and the engine calls :meth:`FrameBatch.release` when it is done with the frames.

Ownership: a port belongs to the engine's thread; MemoryLink delivery is single-threaded, synchronous or on
the scheduler it was given.

May import: rings, pcap, errors (tests/test_imports.py holds the rules).
"""

from __future__ import annotations

import fcntl
import os
import socket
import struct
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol, runtime_checkable

import numpy as np

from fmipfast.errors import FmipError
from fmipfast.pcap import LINKTYPE_ETHERNET, PcapReader, PcapWriter
from fmipfast.rings import FrameBatch

__all__ = ["FrameBatch", "Port", "RingPort", "PcapPort", "MemoryLink", "MemoryPort", "pack_frames"]


def pack_frames(frames: Iterable[bytes]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pack frames into one writable arena: ``(arena uint8, offsets int64, lengths uint32)``."""
    items = [bytes(f) for f in frames]
    lengths = np.fromiter((len(f) for f in items), dtype=np.uint32, count=len(items))
    offsets = np.zeros(len(items), dtype=np.int64)
    if len(items) > 1:
        np.cumsum(lengths[:-1], out=offsets[1:])
    # writable: the engine rewrites forwarded frames in place (forward_rewrite)
    arena = np.frombuffer(bytearray(b"".join(items)), dtype=np.uint8) if items else np.zeros(0, dtype=np.uint8)
    return arena, offsets, lengths


@runtime_checkable
class Port(Protocol):
    """One interface the engine owns.  The engine uses nothing of a port beyond these members; the methods
    with a body are defaults that a port class inherits by naming ``Port`` as its base (all three here do).
    Two optional members beyond them: ``receive_control()``, the latency-sensitive frames a port keeps apart
    (:class:`RingPort`'s control socket), which ``receive`` also yields first -- the engine reads them from
    every port before any other frames; and ``control_fileno()``, the descriptor that says some are waiting,
    which the engine polls between the other frames' blocks so that a control frame never waits behind a
    burst of them."""

    name: str
    mac: bytes

    def fileno(self) -> int | None:
        """A file descriptor to wait on (``loop.add_reader``), or None when frames are pulled on demand."""
        return None

    def filenos(self) -> list[int]:
        """Every file descriptor to wait on (a ring port may have a control socket beside its ring)."""
        fd = self.fileno()
        return [] if fd is None else [fd]

    def receive(self) -> Iterator[FrameBatch]:  # pragma: no cover - interface
        raise NotImplementedError

    def send(self, arena: np.ndarray, offsets: np.ndarray, lengths: np.ndarray) -> int:  # pragma: no cover
        raise NotImplementedError

    def send_frames(self, frames: Iterable[bytes]) -> int:
        return self.send(*pack_frames(frames))

    def receive_losses(self) -> tuple[int, int]:
        """Frames lost before :meth:`receive` could yield them, each count cumulative since the port opened:
        ``(dropped by the kernel, hidden by a damaged ring block)``.  The engine books the growth of each as
        received and dropped (KERNEL_RING_DROP, RING_WALK_ERROR); a port without a kernel ring loses none."""
        return 0, 0

    def statistics(self) -> dict[str, int]:
        return {}

    def close(self) -> None:
        return None


def _device_mtu(sock: socket.socket, ifname: str) -> int | None:
    """The MTU of ``ifname`` in ``sock``'s network namespace (SIOCGIFMTU), or None."""
    try:
        out = fcntl.ioctl(sock.fileno(), _SIOCGIFMTU, struct.pack("16si12x", ifname.encode()[:15], 0))
    except OSError:
        return None
    return int(struct.unpack_from("i", out, 16)[0])


_SIOCGIFMTU = 0x8921


class RingPort(Port):
    """A real interface through :class:`fmipfast.rings.PacketRing` (root).

    ``control_types`` (ICMPv6 types, e.g. ND, echo and the fmipfast type): those messages come through a
    :class:`fmipfast.rings.ControlSocket` of their own, which wakes the reader per frame, and the ring's
    classic-BPF program is the complement, so a frame reaches exactly one of them.  :meth:`receive` yields
    the control frames first.  Not with a fanout group: every worker's socket would see each message."""

    def __init__(self, ifname: str, *, control_types: Iterable[int] | None = None, **ring_options: object) -> None:
        from fmipfast.rings import ControlSocket, PacketRing, icmp6_types_bpf

        self.name = ifname
        self.control: ControlSocket | None = None
        if control_types is not None:
            if ring_options.get("bpf") is not None or ring_options.get("fanout") is not None:
                raise FmipError(f"{ifname}: a control socket excludes a ring filter and a fanout group")
            types = sorted(set(control_types))
            # the control socket first: from the ring's first frame on, its complement has a home
            self.control = ControlSocket(ifname, icmp6_types_bpf(types))
            ring_options["bpf"] = icmp6_types_bpf(types, invert=True)
        try:
            self.ring = PacketRing(ifname, **ring_options)  # type: ignore[arg-type]
        except BaseException:
            if self.control is not None:
                self.control.close()
            raise
        # getsockname() of a bound packet socket carries the interface's hardware address; unlike /sys it
        # answers for the network namespace the socket was opened in.
        self.mac = bytes(self.ring.sock.getsockname()[4])
        #: The device's MTU when the port opened (SIOCGIFMTU; None if it would not say): the kernel refuses to
        #: send a larger frame, so the engine forwards by the smaller of it and the configured one.
        self.link_mtu = _device_mtu(self.ring.sock, ifname)
        if len(self.mac) != 6:
            self.close()
            raise FmipError(f"interface {ifname!r} is not Ethernet (hardware address {self.mac.hex()})")

    def fileno(self) -> int | None:
        return self.ring.fileno()

    def filenos(self) -> list[int]:
        return [self.ring.fileno()] + ([self.control.fileno()] if self.control is not None else [])

    def control_fileno(self) -> int | None:
        """The control socket's descriptor (readable: control frames are waiting), or None without one."""
        return None if self.control is None else self.control.fileno()

    def receive_control(self) -> Iterator[FrameBatch]:
        """The control socket's frames only (an optional member of the port protocol: the engine reads every
        port's control frames before any ring block)."""
        if self.control is not None:
            packets = self.control.receive()
            if packets:
                arena, offsets, lengths = pack_frames(p.frame for p in packets)
                yield FrameBatch(self, arena, offsets, lengths,
                                 np.fromiter((p.status for p in packets), dtype=np.uint32, count=len(packets)),
                                 np.fromiter((p.ts_ns for p in packets), dtype=np.int64, count=len(packets)))

    def receive(self) -> Iterator[FrameBatch]:
        yield from self.receive_control()
        for block in self.ring.blocks():
            block.port = self
            yield block

    def send(self, arena: np.ndarray, offsets: np.ndarray, lengths: np.ndarray) -> int:
        return self.ring.send(arena, offsets, lengths)

    def kernel_drops(self) -> int:
        """Frames the kernel dropped for this port since it opened (ring full, control socket buffer full)."""
        drops = self.ring.statistics()["drops"]
        if self.control is not None:
            drops += self.control.statistics()["drops"]
        return drops

    def receive_losses(self) -> tuple[int, int]:
        return self.kernel_drops(), self.ring.counters.get("rx_walk_dropped", 0)

    def statistics(self) -> dict[str, int]:
        out = {**{f"kernel_{k}": v for k, v in self.ring.statistics().items()}, **self.ring.counters}
        if self.control is not None:
            out.update({f"control_{k}": v for k, v in self.control.counters.items()})
        return out

    def close(self) -> None:
        if self.control is not None:
            self.control.close()
        self.ring.close()


class PcapPort(Port):
    """Replays ``source`` (a capture path, or None for no input) in batches of ``batch_size`` frames, and
    writes every frame sent to ``sink`` (a capture path, or None to keep them in :attr:`sent`)."""

    def __init__(self, name: str, mac: bytes, source: str | os.PathLike[str] | None = None,
                 sink: str | os.PathLike[str] | None = None, *, batch_size: int = 256,
                 clock: Callable[[], int] | None = None) -> None:
        if batch_size <= 0:
            raise ValueError("batch_size must be positive")
        self.name, self.mac = name, bytes(mac)
        self.batch_size = batch_size
        self.clock = clock or (lambda: 0)
        self._reader = iter(PcapReader(source)) if source is not None else iter(())
        self._writer = PcapWriter(sink, linktype=LINKTYPE_ETHERNET) if sink is not None else None
        self.sent: list[bytes] = []
        self.counters = {"rx_frames": 0, "tx_frames": 0, "rx_skipped_linktype": 0}

    def receive(self) -> Iterator[FrameBatch]:
        while True:
            frames: list[bytes] = []
            stamps: list[int] = []
            for rec in self._reader:
                if rec.linktype != LINKTYPE_ETHERNET:
                    self.counters["rx_skipped_linktype"] += 1
                    continue
                frames.append(rec.data)
                stamps.append(rec.ts_ns)
                if len(frames) == self.batch_size:
                    break
            if not frames:
                return
            arena, offsets, lengths = pack_frames(frames)
            self.counters["rx_frames"] += len(frames)
            yield FrameBatch(self, arena, offsets, lengths, np.zeros(len(frames), dtype=np.uint32),
                             np.array(stamps, dtype=np.int64))

    def send(self, arena: np.ndarray, offsets: np.ndarray, lengths: np.ndarray) -> int:
        now = self.clock()
        for o, n in zip(offsets, lengths):
            frame = np.asarray(arena[int(o):int(o) + int(n)]).tobytes()
            if self._writer is not None:
                self._writer.write(frame, ts_ns=now)
            else:
                self.sent.append(frame)
        self.counters["tx_frames"] += int(offsets.shape[0])
        return int(offsets.shape[0])

    def statistics(self) -> dict[str, int]:
        return dict(self.counters)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


class MemoryLink:
    """A broadcast segment in memory (a hub): a frame sent by one attached port reaches every other.

    Without ``schedule`` a frame is in the other ports' queues when ``send`` returns, stamped with the
    sender's clock.  With ``schedule`` -- ``schedule(delay_ns, fn)`` runs ``fn`` that much later on the
    caller's clock, e.g. :meth:`fmipfast.lab.simulated.sim.Sim.after` -- each frame arrives ``delay_ns``
    after it was sent, stamped with the receiving port's clock, and a frame in flight to a port that has left
    the link by then is lost (``lost_in_flight``), as on a real link.  A port's queue holds at most
    ``queue_limit`` frames (beyond: ``queue_full``).  Taps see every frame sent: ``tap(now, frame, link_name)``
    (e.g. a capture)."""

    def __init__(self, name: str, *, queue_limit: int = 65536, delay_ns: int = 0,
                 schedule: Callable[[int, Callable[[], None]], None] | None = None) -> None:
        if delay_ns and schedule is None:
            raise ValueError("a link with a delay needs a schedule")
        self.name = name
        self.queue_limit = queue_limit
        self.delay_ns = delay_ns
        self.schedule = schedule
        self.ports: list[MemoryPort] = []
        self.taps: list[Callable[[int, bytes, str], None]] = []
        self.counters = {"frames": 0, "delivered": 0, "queue_full": 0, "lost_in_flight": 0}

    def carry(self, sender: "MemoryPort", frame: bytes, now: int) -> None:
        """``sender`` sent ``frame`` at ``now``: the taps see it, every other port gets it."""
        self.counters["frames"] += 1
        for tap in self.taps:
            tap(now, frame, self.name)
        for port in list(self.ports):
            if port is not sender:
                self._launch(port, frame, now)

    def _launch(self, port: "MemoryPort", frame: bytes, now: int) -> None:
        if self.schedule is None:
            self._arrive(port, frame, now)
        else:
            self.schedule(self.delay_ns, lambda: self._arrive(port, frame, port.clock()))

    def _arrive(self, port: "MemoryPort", frame: bytes, now: int) -> None:
        if port.link is not self:  # it moved away while the frame was in flight
            self.counters["lost_in_flight"] += 1
            return
        if len(port._queue) >= self.queue_limit:
            self.counters["queue_full"] += 1
            port.counters["rx_dropped_queue_full"] += 1
            return
        port._queue.append((now, frame))
        self.counters["delivered"] += 1
        if port.on_receive is not None and not port._wake_pending:
            port._wake_pending = True
            if self.schedule is None:
                port._wake()
            else:  # after every arrival due at the same moment: one wake-up per burst
                self.schedule(0, port._wake)


class MemoryPort(Port):
    """An interface on the in-memory wire.  :meth:`attach` moves it to another link (or None: down).

    ``batch_size`` frames per batch at most (None: everything queued in one); ``on_receive``, when set, is
    called once per burst of arrivals (at their time on a scheduled link) so the port's owner can poll."""

    def __init__(self, name: str, mac: bytes, link: MemoryLink | None = None, *, batch_size: int | None = 256,
                 clock: Callable[[], int] | None = None) -> None:
        self.name, self.mac = name, bytes(mac)
        self.batch_size = batch_size
        self.clock = clock or (lambda: 0)
        self.link: MemoryLink | None = None
        self.on_receive: Callable[[], object] | None = None
        self._queue: deque[tuple[int, bytes]] = deque()
        self._wake_pending = False
        self.counters = {"rx_frames": 0, "tx_frames": 0, "tx_lost_link_down": 0, "rx_dropped_queue_full": 0,
                         "rx_flushed_on_move": 0}
        self.attach(link)

    def attach(self, link: MemoryLink | None) -> None:
        """Move to ``link`` (None = link down).  Frames queued on the old link are lost, as on a real move."""
        if self.link is not None:
            self.link.ports.remove(self)
        self.counters["rx_flushed_on_move"] += len(self._queue)
        self._queue.clear()
        self.link = link
        if link is not None:
            link.ports.append(self)

    def pending(self) -> int:
        return len(self._queue)

    def _wake(self) -> None:
        self._wake_pending = False
        if self.on_receive is not None:
            self.on_receive()

    def receive(self) -> Iterator[FrameBatch]:
        while self._queue:
            n = len(self._queue) if self.batch_size is None else min(self.batch_size, len(self._queue))
            take = [self._queue.popleft() for _ in range(n)]
            arena, offsets, lengths = pack_frames(f for _, f in take)
            self.counters["rx_frames"] += len(take)
            yield FrameBatch(self, arena, offsets, lengths, np.zeros(len(take), dtype=np.uint32),
                             np.array([t for t, _ in take], dtype=np.int64))

    def send(self, arena: np.ndarray, offsets: np.ndarray, lengths: np.ndarray) -> int:
        now = self.clock()
        n = int(offsets.shape[0])
        if self.link is None:
            self.counters["tx_lost_link_down"] += n
            return 0
        for o, ln in zip(offsets, lengths):
            self.link.carry(self, np.asarray(arena[int(o):int(o) + int(ln)]).tobytes(), now)
        self.counters["tx_frames"] += n
        return n

    def statistics(self) -> dict[str, int]:
        return dict(self.counters)
