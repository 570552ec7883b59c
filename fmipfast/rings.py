"""AF_PACKET sockets with TPACKET rings: how the engine owns an interface (docs/design.md §5).

One socket per interface (and per worker, with PACKET_FANOUT) carries both rings in one mapping: the RX ring
of ``rx_block_nr`` blocks of ``rx_block_size`` octets, then the TX ring of ``tx_frame_nr`` frames.  The RX
blocks are walked by the compiled kernel (``ring_walk_block``) into offsets/lengths over the mapping itself,
so ``classify`` reads frames in place; a block goes back to the kernel when :meth:`FrameBatch.release` is called.
Frames are sent by copying them into TX slots (``ring_tx_fill``) and one ``send()``.

``rx_mode="frames"`` gives the RX side a TPACKET_V2 ring instead: slots of ``rx_frame_size`` octets, each
handed over by the kernel (and waking the reader) on its own, where a V3 block waits for its retire timer
(1 ms at the least) at low load.  The PACKET_VERSION of a socket is that of both its rings, so the TX ring
(V3, the same fill) is then on a second socket of its own, bound to the interface with protocol 0 (it
receives nothing); PACKET_IGNORE_OUTGOING on the RX socket keeps what it sends out of the RX ring as well.

Linux facts this relies on (checked on these machines, docs/design.md §5):
* PACKET_STATISTICS resets on every read: :meth:`PacketRing.statistics` is the one place that reads it, and
  it accumulates.
* A packet socket sees what other packet sockets send on the same interface (PACKET_OUTGOING): RX and TX
  share one socket and PACKET_IGNORE_OUTGOING is set, so the engine never re-reads what it sent.
* Frames a local kernel sent over veth arrive with TP_STATUS_CSUMNOTREADY and only the pseudo-header sum in
  their checksum field (reported in ``FrameBatch.status``); the engine completes them before transmitting.

Ownership: a PacketRing belongs to one thread (the engine's loop); nothing here locks.

May import: backend, config, errors, constants, _linux.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import select
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Iterable, Iterator

import numpy as np

from fmipfast import backend
from fmipfast._linux import (
    ETH_P_ALL,
    PACKET_AUXDATA,
    PACKET_FANOUT,
    PACKET_FANOUT_CPU,
    PACKET_FANOUT_FLAG_DEFRAG,
    PACKET_FANOUT_HASH,
    PACKET_FANOUT_LB,
    PACKET_FANOUT_QM,
    PACKET_FANOUT_RND,
    PACKET_FANOUT_ROLLOVER,
    PACKET_IGNORE_OUTGOING,
    PACKET_LOSS,
    PACKET_OUTGOING,
    PACKET_QDISC_BYPASS,
    PACKET_RX_RING,
    PACKET_STATISTICS,
    PACKET_TX_RING,
    PACKET_VERSION,
    SCM_TIMESTAMPNS,
    SO_ATTACH_FILTER,
    SO_TIMESTAMPNS,
    SOL_PACKET,
    TP_FT_REQ_FILL_RXHASH,
    TP_STATUS_CSUMNOTREADY,
    TP_STATUS_LOSING,  # noqa: F401 - importable from fmipfast.rings before fmipfast._linux held it
    TP_STATUS_USER,
    TPACKET_V2,
    TPACKET_V3,
)
from fmipfast.constants import ETH_HDR_LEN, IP6_HDR_LEN, EtherType
from fmipfast.errors import FmipError

__all__ = ["PacketRing", "FrameBatch", "RingError", "TP_STATUS_CSUMNOTREADY", "TP_STATUS_USER", "FANOUT_MODES",
           "RX_MODES", "ControlSocket", "ControlPacket", "icmp6_types_bpf", "udp_port_bpf", "PACKET_OUTGOING"]

_AUXDATA = struct.Struct("=IIIHHHH")  # struct tpacket_auxdata: status, len, snaplen, mac, net, vlan tci, tpid
_TIMESPEC = struct.Struct("=qq")
#: ``PacketRing(rx_mode=...)``: TPACKET_V3 blocks (the kernel hands over a block when it is full or at its
#: retire timer) or TPACKET_V2 frames (each on its own, at once)
RX_MODES = ("blocks", "frames")
FANOUT_MODES = {"hash": PACKET_FANOUT_HASH, "lb": PACKET_FANOUT_LB, "cpu": PACKET_FANOUT_CPU,
                "rollover": PACKET_FANOUT_ROLLOVER, "rnd": PACKET_FANOUT_RND, "qm": PACKET_FANOUT_QM}


class RingError(FmipError, OSError):
    """The interface cannot be opened with rings (no such interface, no permission, bad ring geometry)."""


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_SockFilter))]


@dataclass(eq=False)
class FrameBatch:
    """Frames received together: one arena, their offsets and lengths in it, each frame's ``tp_status`` and
    receive time -- exactly what ``classify`` takes.  A ring block's frames stay in place in the RX mapping
    (call :meth:`release` once done with them, after copying anything kept, e.g. into a PacketBuffer); a
    memory, pcap or control-socket batch is packed.  The one frame vector from a port to the engine: a
    :class:`PacketRing` hands out its blocks as these (``port`` None), a port as these with itself as
    ``port``."""

    port: object
    arena: np.ndarray
    offsets: np.ndarray
    lengths: np.ndarray
    status: np.ndarray
    ts_ns: np.ndarray
    _release: Callable[[], None] | None = field(default=None, repr=False)
    #: the stripped 802.1Q tag of each frame (0xFFFFFFFF: none), from a ring block; None for packed batches
    vlan_tci: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        # the engine hands these to the compiled kernels as they are: the kernels' own dtypes, C-contiguous,
        # made so once here (a no-op for a ring block's walk, which fills arrays of exactly these) instead of on
        # every pass
        self.offsets = np.ascontiguousarray(self.offsets, dtype=np.int64)
        self.lengths = np.ascontiguousarray(self.lengths, dtype=np.uint32)
        self.status = np.ascontiguousarray(self.status, dtype=np.uint32)

    def __len__(self) -> int:
        return int(self.offsets.shape[0])

    def frame(self, i: int) -> bytes:
        o, n = int(self.offsets[i]), int(self.lengths[i])
        return self.arena[o:o + n].tobytes()

    def frames(self) -> list[bytes]:
        return [self.frame(i) for i in range(len(self))]

    def release(self) -> None:
        """Hand a ring block back to the kernel (once; later calls do nothing); nothing for a packed batch."""
        if self._release is not None:
            self._release()
            self._release = None


class PacketRing:
    """An AF_PACKET socket bound to ``ifname`` with a TPACKET_V3 RX ring and a TX ring.

    Geometry: ``rx_block_size`` must be a multiple of the page size; the kernel retires a partly filled
    block after ``rx_timeout_ms``.  ``rx_mode="frames"``: the RX ring is TPACKET_V2, ``rx_block_size *
    rx_block_nr`` octets of ``rx_frame_size``-octet slots (a multiple of 16 dividing the block size; a frame
    longer than the slot holds, less 66 octets of header, is cut to it), and ``rx_timeout_ms`` does not
    apply.  :attr:`rx_unit` and :attr:`rx_units` are what the RX ring is read by: blocks, or slots.
    ``fanout=(group_id, mode)`` joins a PACKET_FANOUT group (mode one of
    :data:`FANOUT_MODES`), so several workers share an interface.  ``bpf`` is a classic-BPF program, a list
    of ``(code, jt, jf, k)`` (what ``tcpdump -dd`` prints).  Counters: :attr:`counters`; kernel statistics:
    :meth:`statistics`.
    """

    def __init__(self, ifname: str, *, rx_block_size: int = 1 << 18, rx_block_nr: int = 16,
                 rx_timeout_ms: int = 2, tx_frame_size: int = 2048, tx_frame_nr: int = 512,
                 ignore_outgoing: bool = True, fanout: tuple[int, str] | None = None,
                 bpf: list[tuple[int, int, int, int]] | None = None, qdisc_bypass: bool = False,
                 rx_mode: str = "blocks", rx_frame_size: int = 2048) -> None:
        page = mmap.PAGESIZE
        if rx_block_size <= 0 or rx_block_size % page:
            raise ValueError(f"rx_block_size must be a positive multiple of the page size {page}")
        if rx_mode not in RX_MODES:
            raise ValueError(f"rx_mode must be one of {', '.join(RX_MODES)}, got {rx_mode!r}")
        if rx_mode == "frames" and (rx_frame_size < 128 or rx_frame_size % 16 or rx_block_size % rx_frame_size):
            raise ValueError(f"rx_frame_size {rx_frame_size} must be a multiple of 16 of at least 128 dividing "
                             f"rx_block_size {rx_block_size}")
        if rx_block_nr <= 0 or tx_frame_nr <= 0:
            raise ValueError("rx_block_nr and tx_frame_nr must be positive")
        if tx_frame_size < 64 or tx_frame_size % 16 or page % tx_frame_size and tx_frame_size % page:
            raise ValueError(f"tx_frame_size {tx_frame_size} must be a multiple of 16 that divides or is a "
                             f"multiple of the page size")
        self.ifname = ifname
        self.rx_block_size, self.rx_block_nr = rx_block_size, rx_block_nr
        #: TPACKET_V2 frames (rx_mode "frames") instead of TPACKET_V3 blocks
        self.per_frame = rx_mode == "frames"
        #: what the RX ring is read by: a block (its size, how many) or, per frame, a slot
        self.rx_unit = rx_frame_size if self.per_frame else rx_block_size
        self.rx_units = rx_block_size * rx_block_nr // rx_frame_size if self.per_frame else rx_block_nr
        self.tx_frame_size, self.tx_frame_nr = tx_frame_size, tx_frame_nr
        self.counters: dict[str, int] = dict.fromkeys(
            ("rx_blocks", "rx_frames", "rx_walk_errors", "rx_walk_dropped", "rx_csum_not_ready", "tx_frames",
             "tx_direct", "tx_ring_full", "tx_too_big", "tx_send_errors"), 0)
        self._kernel_totals = {"packets": 0, "drops": 0, "freeze_q_cnt": 0}
        self._rx_next = 0
        #: The next TX slot to fill: a one-element cell, so that the forwarding node (Node.set_tx_ring), which
        #: fills the ring itself on the engine's thread, and ``send`` carry on from each other.
        self.tx_head = np.zeros(1, dtype=np.int64)
        self._timeout_ms = rx_timeout_ms
        self._tx_map: mmap.mmap | None = None
        try:
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            #: the socket of the TX ring: this one, or per frame one of its own
            self.tx_sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0) if self.per_frame else self.sock
        except PermissionError as exc:
            if getattr(self, "sock", None) is not None:
                self.sock.close()
            raise RingError(exc.errno, f"AF_PACKET on {ifname} needs CAP_NET_RAW (run as root)") from None
        try:
            self._setup(ignore_outgoing, fanout, bpf, qdisc_bypass)
        except OSError as exc:
            self.sock.close()
            self.tx_sock.close()
            if isinstance(exc, RingError):
                raise
            raise RingError(exc.errno or 0, f"{ifname}: {exc.strerror or exc}") from None

    def _setup(self, ignore_outgoing: bool, fanout: tuple[int, str] | None,
               bpf: list[tuple[int, int, int, int]] | None, qdisc_bypass: bool) -> None:
        s, t = self.sock, self.tx_sock
        s.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V2 if self.per_frame else TPACKET_V3)
        if t is not s:
            t.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
        # Before the rings (the kernel refuses it after): a TX slot the kernel cannot send -- longer than the
        # device's MTU, say -- is handed back and skipped.  Without it the kernel stops at that slot for good
        # (TP_STATUS_WRONG_FORMAT, EMSGSIZE) and sends nothing queued after it ever again.
        t.setsockopt(SOL_PACKET, PACKET_LOSS, 1)
        if self.per_frame:  # struct tpacket_req: the slots fill the blocks exactly (checked), slot i at i * size
            s.setsockopt(SOL_PACKET, PACKET_RX_RING, struct.pack(
                "=4I", self.rx_block_size, self.rx_block_nr, self.rx_unit, self.rx_units))
        else:
            rx_frame = 2048 if self.rx_block_size >= 2048 else self.rx_block_size
            s.setsockopt(SOL_PACKET, PACKET_RX_RING, struct.pack(
                "=7I", self.rx_block_size, self.rx_block_nr, rx_frame,
                self.rx_block_size * self.rx_block_nr // rx_frame, self._timeout_ms, 0, TP_FT_REQ_FILL_RXHASH))
        tx_block = max(mmap.PAGESIZE, self.tx_frame_size)
        per_block = tx_block // self.tx_frame_size
        tx_blocks = -(-self.tx_frame_nr // per_block)
        self.tx_frame_nr = tx_blocks * per_block
        t.setsockopt(SOL_PACKET, PACKET_TX_RING, struct.pack(
            "=7I", tx_block, tx_blocks, self.tx_frame_size, self.tx_frame_nr, 0, 0, 0))
        self._rx_size = self.rx_block_size * self.rx_block_nr
        self._tx_size = tx_block * tx_blocks
        if t is s:
            self._map = mmap.mmap(s.fileno(), self._rx_size + self._tx_size, mmap.MAP_SHARED,
                                  mmap.PROT_READ | mmap.PROT_WRITE)
            whole = np.frombuffer(self._map, dtype=np.uint8)
            self.rx = whole[:self._rx_size]
            self.tx = whole[self._rx_size:]
        else:
            self._map = mmap.mmap(s.fileno(), self._rx_size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
            self._tx_map = mmap.mmap(t.fileno(), self._tx_size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
            self.rx = np.frombuffer(self._map, dtype=np.uint8)
            self.tx = np.frombuffer(self._tx_map, dtype=np.uint8)
        # The arrays each RX block's walk fills (ring_walk_block's out=: offsets, lengths, status, ts_ns,
        # vlan_tci), one set per block, made once: a block's FrameBatch is valid until the block is released,
        # and the block is walked again only after that.  Rows: a TPACKET_V3 frame takes at least its 48-octet
        # header and sockaddr_ll before the packet, so no block holds more than block_size // 64 frames; what a
        # damaged block announces beyond that is counted as walk-dropped, never written.
        # Per frame, the walk storage bounds a run of ready slots instead (the node takes a longer one in runs).
        self._walk_rows = min(self.rx_units, 1024) if self.per_frame else self.rx_block_size // 64 + 1
        self._walk_out = [(np.empty(self._walk_rows, dtype=np.int64), np.empty(self._walk_rows, dtype=np.uint32),
                           np.empty(self._walk_rows, dtype=np.uint32), np.empty(self._walk_rows, dtype=np.int64),
                           np.empty(self._walk_rows, dtype=np.uint32))
                          for _ in range(0 if self.per_frame else self.rx_block_nr)]
        #: the walk storage of the forwarding node's ``run_ring`` over this ring (engine.Pipeline.ring_pass): the
        #: frames of the block it stopped at, read until that block is handed back
        self.fast_out = tuple(np.empty(self._walk_rows, dtype=dt) for dt in
                              (np.int64, np.uint32, np.uint32, np.int64, np.uint32))
        if ignore_outgoing:
            s.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
        if qdisc_bypass:
            t.setsockopt(SOL_PACKET, PACKET_QDISC_BYPASS, 1)
        if bpf is not None:
            self._attach_bpf(bpf)
        try:
            s.bind((self.ifname, ETH_P_ALL))
            if t is not s:
                t.bind((self.ifname, 0))  # protocol 0: the socket receives nothing
        except OSError as exc:
            raise RingError(exc.errno or 0, f"cannot bind to interface {self.ifname!r}: {exc.strerror}") from None
        if fanout is not None:
            group, mode = fanout
            if mode not in FANOUT_MODES:
                raise ValueError(f"fanout mode {mode!r} is not one of {', '.join(FANOUT_MODES)}")
            arg = (group & 0xFFFF) | ((FANOUT_MODES[mode] | PACKET_FANOUT_FLAG_DEFRAG) << 16)
            s.setsockopt(SOL_PACKET, PACKET_FANOUT, struct.pack("=I", arg))  # > INT_MAX: pass as bytes
        s.setblocking(False)
        t.setblocking(False)

    def _attach_bpf(self, program: list[tuple[int, int, int, int]]) -> None:
        _attach_filter(self.sock, program)

    # ------------------------------------------------------------------ RX
    def fileno(self) -> int:
        return self.sock.fileno()

    def tx_fileno(self) -> int:
        """The descriptor whose ``send()`` flushes the TX ring (``fileno()`` itself unless per frame)."""
        return self.tx_sock.fileno()

    def next_block(self) -> FrameBatch | None:
        """The next block user space owns, walked; None when the kernel still owns it.  Per frame: the run of
        frames user space owns from the next slot on (its own arrays: a run has no fixed place), released
        together."""
        if self.per_frame:
            return self._next_run()
        off = self._rx_next * self.rx_block_size
        if not backend.ring_block_status(self.rx, off) & TP_STATUS_USER:
            return None
        walk = backend.ring_walk_block(self.rx, off, self.rx_block_size, max_frames=self._walk_rows,
                                       out=self._walk_out[self._rx_next])
        self._rx_next = (self._rx_next + 1) % self.rx_block_nr
        return self._batch(walk, partial(backend.ring_release_block, self.rx, off))

    def _batch(self, walk: dict, release: Callable[[], None]) -> FrameBatch:
        """A walk's frames as the batch the engine reads, counted; ``release`` hands them back."""
        self.counters["rx_blocks"] += 1
        self.counters["rx_frames"] += len(walk["offsets"])
        if walk["error"]:
            self.counters["rx_walk_errors"] += 1
            self.counters["rx_walk_dropped"] += walk["dropped"]
        self.counters["rx_csum_not_ready"] += walk["csum_not_ready"]
        return FrameBatch(None, self.rx, walk["offsets"], walk["lengths"], walk["status"], walk["ts_ns"], release,
                          walk["vlan_tci"])

    def _next_run(self) -> FrameBatch | None:
        cur, size, nr = self._rx_next, self.rx_unit, self.rx_units
        walk = backend.ring_walk_frames(self.rx, cur, size, nr, max_frames=self._walk_rows)
        taken = walk["announced"]
        if not taken:
            return None
        self._rx_next = (cur + taken) % nr
        return self._batch(walk, partial(backend.ring_release_frames, self.rx, cur, size, nr, taken))

    def walked(self, cursor: int, blocks: int, frames: int, csum_not_ready: int) -> None:
        """The forwarding node walked ``blocks`` blocks of this ring (``Node.run_ring``) holding ``frames`` frames,
        ``csum_not_ready`` of them with TP_STATUS_CSUMNOTREADY; ``cursor`` is the next block to read."""
        self._rx_next = cursor
        c = self.counters
        c["rx_blocks"] += blocks
        c["rx_frames"] += frames
        c["rx_csum_not_ready"] += csum_not_ready

    def hand_back(self, cursor: int, count: int = 1) -> None:
        """Hand block ``cursor`` back to the kernel (the one ``Node.run_ring`` stopped at, done with) and read
        the next one next; per frame, the run of ``count`` slots from slot ``cursor``."""
        if self.per_frame:
            backend.ring_release_frames(self.rx, cursor, self.rx_unit, self.rx_units, count)
            self._rx_next = (cursor + count) % self.rx_units
            return
        backend.ring_release_block(self.rx, cursor * self.rx_block_size)
        self._rx_next = (cursor + 1) % self.rx_block_nr

    def blocks(self) -> Iterator[FrameBatch]:
        """Every block ready now (each must be released before the ring wraps around to it)."""
        while True:
            block = self.next_block()
            if block is None:
                return
            yield block

    def wait(self, timeout: float | None) -> bool:
        """Block until a frame may be ready (poll on the socket); True if it may."""
        poller = select.poll()
        poller.register(self.sock.fileno(), select.POLLIN | select.POLLERR)
        return bool(poller.poll(None if timeout is None else int(timeout * 1000)))

    # ------------------------------------------------------------------ TX
    def send(self, arena: np.ndarray, offsets: np.ndarray, lengths: np.ndarray) -> int:
        """Queue frames on the TX ring and kick the kernel once; returns how many were queued.  Frames that
        find the ring full are counted (``tx_ring_full``) and not queued: the caller decides to retry."""
        offsets = np.ascontiguousarray(offsets, dtype=np.int64)
        lengths = np.ascontiguousarray(lengths, dtype=np.uint32)
        n = int(offsets.shape[0])
        done = total = 0
        # A batch larger than the free slots: fill, kick the kernel, refill with what it has sent since
        # (veth and most drivers free the slots during the send); stop when a round makes no progress.
        head = self.tx_head
        while done < n:
            consumed, sent, head[0], too_big = backend.ring_tx_fill(
                self.tx, self.tx_frame_size, int(head[0]), arena, offsets[done:], lengths[done:])
            self.counters["tx_too_big"] += too_big
            done += consumed
            total += sent
            if sent:
                self._kick()
            if done >= n or consumed == 0:
                break
        self.counters["tx_ring_full"] += n - done
        self.counters["tx_frames"] += total
        return total

    def queued(self, n: int) -> None:
        """``n`` frames were queued on the TX ring by its other filler (the forwarding node, through
        ``tx_head``): count them and kick the kernel once."""
        if n:
            self.counters["tx_frames"] += n
            self.counters["tx_direct"] += n
            self._kick()

    def _kick(self) -> None:
        try:
            self.tx_sock.send(b"", socket.MSG_DONTWAIT)
        except BlockingIOError:
            pass  # the kernel sends what is queued as the device drains
        except OSError:
            self.counters["tx_send_errors"] += 1
            raise

    # ------------------------------------------------------------------ statistics
    def statistics(self) -> dict[str, int]:
        """Kernel ring statistics since the socket opened (PACKET_STATISTICS resets on read; this is the
        only reader and it accumulates)."""
        raw = self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 12)  # V2: 8 octets, no freeze count
        packets, drops, freeze = struct.unpack("=III", raw.ljust(12, b"\0"))
        self._kernel_totals["packets"] += packets
        self._kernel_totals["drops"] += drops
        self._kernel_totals["freeze_q_cnt"] += freeze
        return dict(self._kernel_totals)

    def close(self) -> None:
        self.rx = self.tx = None  # type: ignore[assignment]
        for name in ("_map", "_tx_map"):
            mapping = getattr(self, name, None)
            if mapping is not None:
                try:
                    mapping.close()
                except BufferError:
                    pass  # a numpy view is still out; the mapping goes with the last reference
                setattr(self, name, None)
        self.sock.close()
        self.tx_sock.close()

    def __enter__(self) -> "PacketRing":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------- the low-latency control socket
#
# A TPACKET_V3 RX block is handed to user space when it is full or when its retire timer fires
# (``rx_timeout_ms``, the kernel's tp_retire_blk_tov, 1 ms at the least): at a few thousand frames per second
# a block takes far longer than that to fill, so every frame -- an Attach, a Neighbor Solicitation, a HI --
# waits for the timer, up to ``rx_timeout_ms`` per engine it crosses.  The few frames whose latency is the
# handover's go instead to a plain AF_PACKET socket (no ring: each frame wakes its reader at once) with a
# classic-BPF filter that passes only them, and the ring gets the inverse filter so nothing is seen twice.

# classic BPF opcodes (<linux/filter.h>)
_LD_H_ABS, _LD_B_ABS, _LD_B_IND, _LD_W_ABS = 0x28, 0x30, 0x50, 0x20
_JEQ_K, _JA, _ADD_K, _SUB_K, _LSH_K, _TAX, _RET_K = 0x15, 0x05, 0x04, 0x14, 0x64, 0x07, 0x06
_LD_LEN, _JGE_K, _JGE_X = 0x80, 0x35, 0x3D
_SKF_AD_PKTTYPE = 0xFFFFF000 + 4  # SKF_AD_OFF (-0x1000) + SKF_AD_PKTTYPE
ETH_P_IPV6 = int(EtherType.IPV6)
_ETH, _IP6 = ETH_HDR_LEN, IP6_HDR_LEN
SNAPLEN = 0x40000


def _assemble(program: list[tuple[int, object, object, int] | str], *,
              invert: bool = False) -> list[tuple[int, int, int, int]]:
    """Classic BPF from instructions whose jump targets are label names (strings in the list mark where a label
    is).  Two labels are always defined at the end: ``match`` (return the frame) and ``no`` (drop it);
    ``invert`` swaps what they return."""
    labels: dict[str, int] = {}
    insns: list[tuple[int, object, object, int]] = []
    for item in program:
        if isinstance(item, str):
            labels[item] = len(insns)
        else:
            insns.append(item)
    labels["match"], labels["no"] = len(insns), len(insns) + 1
    out: list[tuple[int, int, int, int]] = []
    def rel(i: int, target: object) -> int:
        off = labels[str(target)] - i - 1
        if not 0 <= off <= 255:
            raise ValueError(f"BPF jump to {target!r} out of reach")
        return off

    for i, (code, jt, jf, k) in enumerate(insns):
        if code in (_JEQ_K, _JGE_K, _JGE_X):
            out.append((code, rel(i, jt), rel(i, jf), k))
        elif code == _JA:
            out.append((code, 0, 0, rel(i, k)))  # type: ignore[arg-type]  # k holds the label of a JA
        else:
            out.append((code, 0, 0, k))
    accept, reject = (0, SNAPLEN) if invert else (SNAPLEN, 0)
    return out + [(_RET_K, 0, 0, accept), (_RET_K, 0, 0, reject)]


def icmp6_types_bpf(types: Iterable[int], *, through_ah: bool = True,
                    invert: bool = False) -> list[tuple[int, int, int, int]]:
    """A classic-BPF program for Ethernet frames: pass IPv6 ICMPv6 messages whose type is in ``types``, the
    ICMPv6 header right after the IPv6 header or (``through_ah``) after one Authentication Header -- the HI and
    HAck between the routers (RFC 4302: the AH length field is its size in 32-bit words minus 2).  ``invert``
    passes every other frame instead (the ring's complement of a control socket's filter).  Other extension
    headers are not walked: such a frame does not match (it stays on the ring).  Every load is guarded by a
    length check first: a classic-BPF load past the end of a frame drops it, which the inverted program must
    not do (a short frame would then reach neither socket)."""
    wanted = sorted({int(t) for t in types})
    if not wanted or any(not 0 <= t <= 255 for t in wanted):
        raise ValueError(f"ICMPv6 types must be within 0..255, at least one: {types!r}")
    icmp_end = _ETH + _IP6 + 4  # an ICMPv6 header right after the IPv6 header ends here
    p: list[tuple[int, object, object, int] | str] = [
        (_LD_LEN, 0, 0, 0), (_JGE_K, "long", "no", icmp_end),
        "long", (_LD_H_ABS, 0, 0, 12), (_JEQ_K, "ipv6", "no", ETH_P_IPV6),
        "ipv6", (_LD_B_ABS, 0, 0, _ETH + 6), (_JEQ_K, "direct", "ah" if through_ah else "no", 58)]
    if through_ah:
        p += ["ah", (_JEQ_K, "walk", "no", 51),
              "walk", (_LD_B_ABS, 0, 0, _ETH + _IP6), (_JEQ_K, "len", "no", 58),       # AH's next header
              "len", (_LD_B_ABS, 0, 0, _ETH + _IP6 + 1), (_ADD_K, 0, 0, 2), (_LSH_K, 0, 0, 2), (_TAX, 0, 0, 0),
              (_LD_LEN, 0, 0, 0), (_SUB_K, 0, 0, icmp_end), (_JGE_X, "inside", "no", 0),  # len - 58 >= X
              "inside", (_LD_B_IND, 0, 0, _ETH + _IP6), (_JA, 0, 0, "type")]  # type: ignore[list-item]
    p += ["direct", (_LD_B_ABS, 0, 0, _ETH + _IP6), "type"]
    for j, t in enumerate(wanted):
        p += [(_JEQ_K, "match", f"t{j + 1}" if j + 1 < len(wanted) else "no", t), f"t{j + 1}"]
    return _assemble(p, invert=invert)


def udp_port_bpf(port: int, *, outgoing_only: bool = False) -> list[tuple[int, int, int, int]]:
    """A classic-BPF program passing IPv6 UDP datagrams (no extension header) to destination ``port``;
    ``outgoing_only``: only those this host sends on the interface (sll_pkttype PACKET_OUTGOING)."""
    if not 0 < port < 65536:
        raise ValueError(f"port must be within 1..65535, got {port}")
    p: list[tuple[int, object, object, int] | str] = []
    if outgoing_only:
        p += [(_LD_W_ABS, 0, 0, _SKF_AD_PKTTYPE), (_JEQ_K, "out", "no", PACKET_OUTGOING), "out"]
    p += [(_LD_H_ABS, 0, 0, 12), (_JEQ_K, "ip6", "no", ETH_P_IPV6), "ip6", (_LD_B_ABS, 0, 0, _ETH + 6),
          (_JEQ_K, "udp", "no", 17), "udp", (_LD_H_ABS, 0, 0, _ETH + _IP6 + 2), (_JEQ_K, "match", "no", port)]
    return _assemble(p)


@dataclass(frozen=True)
class ControlPacket:
    """One frame of a :class:`ControlSocket`: its octets, the kernel's receive timestamp (CLOCK_REALTIME ns,
    SO_TIMESTAMPNS, the clock of a TPACKET frame's; 0 when the kernel gave none), its sll_pkttype
    (:data:`PACKET_OUTGOING`: sent here) and its tp_status (PACKET_AUXDATA: :data:`TP_STATUS_CSUMNOTREADY` as
    on a ring)."""

    frame: bytes
    ts_ns: int
    pkttype: int
    status: int = 0


class ControlSocket:
    """A plain AF_PACKET socket on ``ifname`` (no ring) whose classic-BPF program ``bpf`` passes only the
    frames whose latency matters: each one wakes its reader as it arrives, with the kernel's timestamp.

    The filter is attached before the socket is bound to the interface and to a protocol, so no frame that
    the program refuses is ever queued.  ``ignore_outgoing`` (PACKET_IGNORE_OUTGOING) leaves out what this
    host sends on the interface.  Non-blocking; :meth:`receive` reads what is queued.  Counters:
    :attr:`counters` (``frames``, ``truncated``, ``no_timestamp``, ``errors``).
    """

    def __init__(self, ifname: str, bpf: list[tuple[int, int, int, int]], *, ignore_outgoing: bool = True,
                 rcvbuf: int = 1 << 20, max_frame: int = 65536) -> None:
        if not bpf:
            raise ValueError("a control socket needs a BPF program (it would see every frame)")
        self.ifname = ifname
        self.max_frame = max_frame
        self.counters = dict.fromkeys(("frames", "truncated", "no_timestamp", "errors"), 0)
        self._totals = {"packets": 0, "drops": 0}
        try:
            # protocol 0: not hooked into the receive path until bind() names one, after the filter is on
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        except PermissionError as exc:
            raise RingError(exc.errno, f"AF_PACKET on {ifname} needs CAP_NET_RAW (run as root)") from None
        try:
            _attach_filter(self.sock, bpf)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            self.sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
            if ignore_outgoing:
                self.sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
            try:
                self.sock.bind((ifname, ETH_P_ALL))
            except OSError as exc:
                raise RingError(exc.errno or 0, f"cannot bind to interface {ifname!r}: {exc.strerror}") from None
            self.sock.setblocking(False)
        except BaseException:
            self.sock.close()
            raise

    def fileno(self) -> int:
        return self.sock.fileno()

    def receive(self, max_frames: int = 64) -> list[ControlPacket]:
        """Up to ``max_frames`` queued frames, oldest first (none: an empty list)."""
        out: list[ControlPacket] = []
        space = socket.CMSG_SPACE(_TIMESPEC.size) + socket.CMSG_SPACE(_AUXDATA.size)
        while len(out) < max_frames:
            try:
                data, anc, flags, addr = self.sock.recvmsg(self.max_frame, space)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self.counters["errors"] += 1
                break
            if flags & socket.MSG_TRUNC:
                self.counters["truncated"] += 1
                continue
            ts = status = 0
            for level, kind, value in anc:
                if level == socket.SOL_SOCKET and kind == SCM_TIMESTAMPNS and len(value) >= _TIMESPEC.size:
                    sec, nsec = _TIMESPEC.unpack_from(value)
                    ts = sec * 1_000_000_000 + nsec
                elif level == SOL_PACKET and kind == PACKET_AUXDATA and len(value) >= _AUXDATA.size:
                    status = _AUXDATA.unpack_from(value)[0]
            if not ts:
                self.counters["no_timestamp"] += 1
            self.counters["frames"] += 1
            out.append(ControlPacket(data, ts, int(addr[2]) if len(addr) > 2 else 0, status))
        return out

    def statistics(self) -> dict[str, int]:
        """Kernel statistics since the socket opened: ``packets`` and ``drops`` (receive buffer full), read
        (PACKET_STATISTICS resets on read) and accumulated here."""
        packets, drops = struct.unpack("=II", self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
        self._totals["packets"] += packets
        self._totals["drops"] += drops
        return dict(self._totals)

    def wait(self, timeout: float | None) -> bool:
        poller = select.poll()
        poller.register(self.sock.fileno(), select.POLLIN)
        return bool(poller.poll(None if timeout is None else int(timeout * 1000)))

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "ControlSocket":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _attach_filter(sock: socket.socket, program: list[tuple[int, int, int, int]]) -> None:
    insns = (_SockFilter * len(program))(*[_SockFilter(*ins) for ins in program])
    prog = _SockFprog(len(program), insns)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setsockopt(sock.fileno(), socket.SOL_SOCKET, SO_ATTACH_FILTER, ctypes.byref(prog),
                       ctypes.sizeof(prog)) != 0:
        err = ctypes.get_errno()
        raise RingError(err, f"SO_ATTACH_FILTER: {os.strerror(err)}")
