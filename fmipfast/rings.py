"""AF_PACKET sockets with TPACKET_V3 rings: how the engine owns an interface (docs/design.md §5).

One socket per interface (and per worker, with PACKET_FANOUT) carries both rings in one mapping: the RX ring
of ``rx_block_nr`` blocks of ``rx_block_size`` octets, then the TX ring of ``tx_frame_nr`` frames.  The RX
blocks are walked by the compiled kernel (``ring_walk_block``) into offsets/lengths over the mapping itself,
so ``classify`` reads frames in place; a block goes back to the kernel when :meth:`RxBlock.release` is called.
Frames are sent by copying them into TX slots (``ring_tx_fill``) and one ``send()``.

Linux facts this relies on (checked on these machines, docs/design.md §5):
* PACKET_STATISTICS resets on every read: :meth:`PacketRing.statistics` is the one place that reads it, and
  it accumulates.
* A packet socket sees what other packet sockets send on the same interface (PACKET_OUTGOING): RX and TX
  share one socket and PACKET_IGNORE_OUTGOING is set, so the engine never re-reads what it sent.
* Frames a local kernel sent over veth arrive with TP_STATUS_CSUMNOTREADY and only the pseudo-header sum in
  their checksum field (reported in ``RxBlock.status``); the engine completes them before transmitting.

Ownership: a PacketRing belongs to one thread (the engine's loop); nothing here locks.

May import: backend, config, errors.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import select
import socket
import struct
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from fmipfast import backend
from fmipfast.errors import FmipError

__all__ = ["PacketRing", "RxBlock", "RingError", "TP_STATUS_CSUMNOTREADY", "TP_STATUS_USER", "FANOUT_MODES"]

SOL_PACKET = 263
PACKET_RX_RING = 5
PACKET_STATISTICS = 6
PACKET_VERSION = 10
PACKET_TX_RING = 13
PACKET_QDISC_BYPASS = 20
PACKET_FANOUT = 18
PACKET_IGNORE_OUTGOING = 23
TPACKET_V3 = 2
ETH_P_ALL = 0x0003
SO_ATTACH_FILTER = 26
TP_STATUS_USER = 1
TP_STATUS_LOSING = 1 << 2
TP_STATUS_CSUMNOTREADY = 1 << 3
TP_FT_REQ_FILL_RXHASH = 1
FANOUT_MODES = {"hash": 0, "lb": 1, "cpu": 2, "rollover": 3, "rnd": 4, "qm": 5}
PACKET_FANOUT_FLAG_DEFRAG = 0x8000


class RingError(FmipError, OSError):
    """The interface cannot be opened with rings (no such interface, no permission, bad ring geometry)."""


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_SockFilter))]


@dataclass
class RxBlock:
    """One RX block user space owns: frames as offsets into ``arena`` (the RX mapping).  Call
    :meth:`release` once done with them (after copying anything kept, e.g. into a PacketBuffer)."""

    ring: "PacketRing"
    offset: int
    arena: np.ndarray
    offsets: np.ndarray
    lengths: np.ndarray
    status: np.ndarray
    ts_ns: np.ndarray
    vlan_tci: np.ndarray
    dropped: int
    error: int
    released: bool = field(default=False)

    def __len__(self) -> int:
        return int(self.offsets.shape[0])

    def release(self) -> None:
        if not self.released:
            self.ring._release(self)
            self.released = True


class PacketRing:
    """An AF_PACKET socket bound to ``ifname`` with a TPACKET_V3 RX ring and a TX ring.

    Geometry: ``rx_block_size`` must be a multiple of the page size; the kernel retires a partly filled
    block after ``rx_timeout_ms``.  ``fanout=(group_id, mode)`` joins a PACKET_FANOUT group (mode one of
    :data:`FANOUT_MODES`), so several workers share an interface.  ``bpf`` is a classic-BPF program, a list
    of ``(code, jt, jf, k)`` (what ``tcpdump -dd`` prints).  Counters: :attr:`counters`; kernel statistics:
    :meth:`statistics`.
    """

    def __init__(self, ifname: str, *, rx_block_size: int = 1 << 18, rx_block_nr: int = 16,
                 rx_timeout_ms: int = 10, tx_frame_size: int = 2048, tx_frame_nr: int = 512,
                 ignore_outgoing: bool = True, fanout: tuple[int, str] | None = None,
                 bpf: list[tuple[int, int, int, int]] | None = None, qdisc_bypass: bool = False) -> None:
        page = mmap.PAGESIZE
        if rx_block_size <= 0 or rx_block_size % page:
            raise ValueError(f"rx_block_size must be a positive multiple of the page size {page}")
        if rx_block_nr <= 0 or tx_frame_nr <= 0:
            raise ValueError("rx_block_nr and tx_frame_nr must be positive")
        if tx_frame_size < 64 or tx_frame_size % 16 or page % tx_frame_size and tx_frame_size % page:
            raise ValueError(f"tx_frame_size {tx_frame_size} must be a multiple of 16 that divides or is a "
                             f"multiple of the page size")
        self.ifname = ifname
        self.rx_block_size, self.rx_block_nr = rx_block_size, rx_block_nr
        self.tx_frame_size, self.tx_frame_nr = tx_frame_size, tx_frame_nr
        self.counters: dict[str, int] = dict.fromkeys(
            ("rx_blocks", "rx_frames", "rx_walk_errors", "rx_walk_dropped", "rx_csum_not_ready", "tx_frames",
             "tx_ring_full", "tx_too_big", "tx_send_errors"), 0)
        self._kernel_totals = {"packets": 0, "drops": 0, "freeze_q_cnt": 0}
        self._rx_next = 0
        self._tx_head = 0
        self._timeout_ms = rx_timeout_ms
        try:
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        except PermissionError as exc:
            raise RingError(exc.errno, f"AF_PACKET on {ifname} needs CAP_NET_RAW (run as root)") from None
        try:
            self._setup(ignore_outgoing, fanout, bpf, qdisc_bypass)
        except OSError as exc:
            self.sock.close()
            if isinstance(exc, RingError):
                raise
            raise RingError(exc.errno or 0, f"{ifname}: {exc.strerror or exc}") from None

    def _setup(self, ignore_outgoing, fanout, bpf, qdisc_bypass) -> None:
        s = self.sock
        s.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
        rx_frame = 2048 if self.rx_block_size >= 2048 else self.rx_block_size
        s.setsockopt(SOL_PACKET, PACKET_RX_RING, struct.pack(
            "=7I", self.rx_block_size, self.rx_block_nr, rx_frame,
            self.rx_block_size * self.rx_block_nr // rx_frame, self._timeout_ms, 0, TP_FT_REQ_FILL_RXHASH))
        tx_block = max(mmap.PAGESIZE, self.tx_frame_size)
        per_block = tx_block // self.tx_frame_size
        tx_blocks = -(-self.tx_frame_nr // per_block)
        self.tx_frame_nr = tx_blocks * per_block
        s.setsockopt(SOL_PACKET, PACKET_TX_RING, struct.pack(
            "=7I", tx_block, tx_blocks, self.tx_frame_size, self.tx_frame_nr, 0, 0, 0))
        self._rx_size = self.rx_block_size * self.rx_block_nr
        self._tx_size = tx_block * tx_blocks
        self._map = mmap.mmap(s.fileno(), self._rx_size + self._tx_size, mmap.MAP_SHARED,
                              mmap.PROT_READ | mmap.PROT_WRITE)
        whole = np.frombuffer(self._map, dtype=np.uint8)
        self.rx = whole[:self._rx_size]
        self.tx = whole[self._rx_size:]
        if ignore_outgoing:
            s.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
        if qdisc_bypass:
            s.setsockopt(SOL_PACKET, PACKET_QDISC_BYPASS, 1)
        if bpf is not None:
            self._attach_bpf(bpf)
        try:
            s.bind((self.ifname, ETH_P_ALL))
        except OSError as exc:
            raise RingError(exc.errno or 0, f"cannot bind to interface {self.ifname!r}: {exc.strerror}") from None
        if fanout is not None:
            group, mode = fanout
            if mode not in FANOUT_MODES:
                raise ValueError(f"fanout mode {mode!r} is not one of {', '.join(FANOUT_MODES)}")
            arg = (group & 0xFFFF) | ((FANOUT_MODES[mode] | PACKET_FANOUT_FLAG_DEFRAG) << 16)
            s.setsockopt(SOL_PACKET, PACKET_FANOUT, struct.pack("=I", arg))  # > INT_MAX: pass as bytes
        s.setblocking(False)

    def _attach_bpf(self, program: list[tuple[int, int, int, int]]) -> None:
        insns = (_SockFilter * len(program))(*[_SockFilter(*ins) for ins in program])
        prog = _SockFprog(len(program), insns)
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.setsockopt(self.sock.fileno(), socket.SOL_SOCKET, SO_ATTACH_FILTER, ctypes.byref(prog),
                           ctypes.sizeof(prog)) != 0:
            err = ctypes.get_errno()
            raise RingError(err, f"SO_ATTACH_FILTER: {os.strerror(err)}")

    # ------------------------------------------------------------------ RX
    def fileno(self) -> int:
        return self.sock.fileno()

    def next_block(self) -> RxBlock | None:
        """The next block user space owns, walked; None when the kernel still owns it."""
        off = self._rx_next * self.rx_block_size
        if not backend.ring_block_status(self.rx, off) & TP_STATUS_USER:
            return None
        walk = backend.ring_walk_block(self.rx, off, self.rx_block_size)
        self._rx_next = (self._rx_next + 1) % self.rx_block_nr
        self.counters["rx_blocks"] += 1
        self.counters["rx_frames"] += len(walk["offsets"])
        if walk["error"]:
            self.counters["rx_walk_errors"] += 1
            self.counters["rx_walk_dropped"] += walk["dropped"]
        self.counters["rx_csum_not_ready"] += int(np.count_nonzero(walk["status"] & TP_STATUS_CSUMNOTREADY))
        return RxBlock(self, off, self.rx, walk["offsets"], walk["lengths"], walk["status"], walk["ts_ns"],
                       walk["vlan_tci"], walk["dropped"], walk["error"])

    def blocks(self) -> Iterator[RxBlock]:
        """Every block ready now (each must be released before the ring wraps around to it)."""
        while True:
            block = self.next_block()
            if block is None:
                return
            yield block

    def _release(self, block: RxBlock) -> None:
        backend.ring_release_block(self.rx, block.offset)

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
        while done < n:
            consumed, sent, self._tx_head, too_big = backend.ring_tx_fill(
                self.tx, self.tx_frame_size, self._tx_head, arena, offsets[done:], lengths[done:])
            self.counters["tx_too_big"] += too_big
            done += consumed
            total += sent
            if sent:
                try:
                    self.sock.send(b"", socket.MSG_DONTWAIT)
                except BlockingIOError:
                    pass  # the kernel sends what is queued as the device drains
                except OSError:
                    self.counters["tx_send_errors"] += 1
                    raise
            if done >= n or consumed == 0:
                break
        self.counters["tx_ring_full"] += n - done
        self.counters["tx_frames"] += total
        return total

    # ------------------------------------------------------------------ statistics
    def statistics(self) -> dict[str, int]:
        """Kernel ring statistics since the socket opened (PACKET_STATISTICS resets on read; this is the
        only reader and it accumulates)."""
        raw = self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 12)
        packets, drops, freeze = struct.unpack("=III", raw)
        self._kernel_totals["packets"] += packets
        self._kernel_totals["drops"] += drops
        self._kernel_totals["freeze_q_cnt"] += freeze
        return dict(self._kernel_totals)

    def close(self) -> None:
        if getattr(self, "_map", None) is not None:
            self.rx = self.tx = None  # type: ignore[assignment]
            try:
                self._map.close()
            except BufferError:
                pass  # a numpy view is still out; the mapping goes with the last reference
            self._map = None  # type: ignore[assignment]
        self.sock.close()

    def __enter__(self) -> "PacketRing":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
