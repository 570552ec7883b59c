"""The pipeline: a block of frames through ``classify`` and the forwarding node (``Node.run_block``,
``_kernels/node.pxi``), one compiled call.  The node finishes forwarding, the handover buffer (it pushes
BUFFER frames into the engine's PacketBuffer under the keys of its ``entry_key`` column) and the tunnel
(RFC 2473, toward the NAR of its ``entry_peer`` column, into tunnel TX vectors of its own); the tunnel
vectors are sent at once.  Python then takes the classes the node hands over, in this order: CONTROL
(fmipfast.dataplane.deliver), TUNNEL (only a NAR whose next hop is unresolved or unrouted), DECAP (the node
decapsulated them in place and left their inner packets to Python -- for the router itself, to be resolved, an
ICMPv6 error due, another level of tunnel --: those get a pass of their own over the node's decap vector), the
ICMPv6 errors (no route, hop limit) and
RESOLVE (fmipfast.dataplane.nd); then the node's TX vectors are sent.  A peer's tunnelled data is DECAPPED:
the node forwarded, re-tunnelled, buffered or dropped the inner packet itself, at its outer frame's place in the
block, and Python only books it.  A block of forwarded, buffered, tunnelled, decapsulated and dropped frames
costs the one call and one ``send`` per output interface; everything here runs per block, never per frame,
except for the frames Python has work for.

A ring block's frames whose VLAN tag the kernel stripped (``FrameBatch.vlan_tci``) are received and dropped
(VLAN_TAGGED) before the node sees them: it drops a tag found in a frame itself.

Frames that re-enter the pipeline — what a control handler releases, decapsulated inner packets, frames
leaving a queue (:meth:`Pipeline.reinject`) — get passes of their own, each with a classify Batch of its own,
nested at most ``MAX_NESTED_PASSES`` deep (deeper ones wait, at most ``MAX_WAITING_PASSES``), decapsulation at
most ``MAX_DECAP_DEPTH`` levels.  Frames leaving a queue are booked in the second ledger (counters.Books).

Ownership: the engine's thread runs every pass; the Batches, the node's outputs and the pass state are its
alone (docs/conventions.md §3).  Time comes from the engine's clock, once per block.

May import: backend, ports, config, constants (tests/test_imports.py holds the rules).
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from fmipfast import backend
from fmipfast.config import RouterConfig
from fmipfast.constants import Action, Codepoints, DropReason, Icmp6Type, NeighborState
from fmipfast.dataplane.counters import (
    BUFFERED,
    DECAPSULATED,
    DROPPED,
    FORWARDED,
    RECEIVED,
    TUNNELLED,
    Books,
    Faults,
)
from fmipfast.dataplane.deliver import LocalDelivery
from fmipfast.dataplane.fib import Routes
from fmipfast.dataplane.handover import Handover
from fmipfast.dataplane.icmp import IcmpErrors
from fmipfast.dataplane.nd import Resolver
from fmipfast.dataplane.tables import find_neighbor
from fmipfast.dataplane.types import Interface
from fmipfast.ports import FrameBatch, RingPort

if TYPE_CHECKING:
    from fmipfast.backend import Batch, NeighborCache, Node, PacketBuffer

__all__ = ["Pipeline", "MAX_DECAP_DEPTH", "MAX_NESTED_PASSES", "MAX_WAITING_PASSES", "TUNNEL_HOP_LIMIT"]

#: Levels of IPv6-in-IPv6 the engine decapsulates in one frame (RFC 2473 §4.1.1: default limit 4).
MAX_DECAP_DEPTH = 4
#: Passes started from a control stage run at once, each with a Batch of its own, up to this nesting depth
#: (deeper ones wait until the stage that started them is done).
MAX_NESTED_PASSES = 8
#: Passes waiting for the outermost one to finish (see Pipeline._wait).
MAX_WAITING_PASSES = 64
#: Outer hop limit of the tunnel to the NAR (RFC 2473 §6.3: the tunnel entry point's default hop limit).
TUNNEL_HOP_LIMIT = 64

# the forwarding node's actions, as ints and as bits of the set ``Node.run`` returns
_A_DROP, _A_CONTROL, _A_BUFFER = int(Action.DROP), int(Action.CONTROL), int(Action.BUFFER)
_A_TUNNEL, _A_DECAP, _A_RESOLVE = int(Action.TUNNEL), int(Action.DECAP), int(Action.RESOLVE)
_A_NO_ROUTE, _A_TIME_EXCEEDED = int(Action.NO_ROUTE), int(Action.TIME_EXCEEDED)
_B_FORWARD, _B_CONTROL, _B_BUFFER = 1 << int(Action.FORWARD), 1 << _A_CONTROL, 1 << _A_BUFFER
_B_TUNNEL, _B_DECAP, _B_RESOLVE = 1 << _A_TUNNEL, 1 << _A_DECAP, 1 << _A_RESOLVE
_B_NO_ROUTE, _B_TIME_EXCEEDED = 1 << _A_NO_ROUTE, 1 << _A_TIME_EXCEEDED
_B_BUFFERED, _B_TUNNELLED = 1 << int(Action.BUFFERED), 1 << int(Action.TUNNELLED)
_A_DECAPPED = int(Action.DECAPPED)
_B_DECAPPED = 1 << _A_DECAPPED
_A_PACKET_TOO_BIG = int(Action.PACKET_TOO_BIG)
_B_PACKET_TOO_BIG = 1 << _A_PACKET_TOO_BIG
# every action Python has work for (DECAPPED only books its inner packets: see _decapped)
_SLOW = ~((1 << _A_DROP) | _B_FORWARD | _B_BUFFERED | _B_TUNNELLED | _B_DECAPPED)
_S_INCOMPLETE = int(NeighborState.INCOMPLETE)
_R_INTERNAL_ERROR = int(DropReason.INTERNAL_ERROR)
_R_HOP_LIMIT, _R_TOO_BIG = int(DropReason.HOP_LIMIT_EXCEEDED), int(DropReason.FRAME_TOO_BIG)

#: A pass waiting for the outermost one: (iface, frames, inner, from_wire, booked in the requeue ledger).
_Waiting = tuple[Interface, FrameBatch, bool, bool, bool]

_NO_TAG = 0xFFFFFFFF  # a ring block's vlan_tci of a frame whose tag (if any) is still in it
# Node.run_ring's reasons (fmipfast.reference.node.RING_IDLE ..)
_RING_IDLE, _RING_LIMIT, _RING_BLOCK, _RING_CHUNK = 0, 1, 2, 3


class Pipeline:
    """The per-block data path of one engine over its tables and parts (see the module's docstring)."""

    def __init__(self, cfg: RouterConfig, codepoints: Codepoints, clock: Callable[[], int],
                 interfaces: Sequence[Interface], node: Node, ncache: NeighborCache, buffer: PacketBuffer,
                 routes: Routes, handover: Handover, resolver: Resolver, delivery: LocalDelivery,
                 icmp: IcmpErrors, books: Books, faults: Faults) -> None:
        self.cfg = cfg
        self.codepoints = codepoints
        self.clock = clock
        self.interfaces = interfaces
        self.node = node
        self.ncache = ncache
        self.buffer = buffer
        self.routes = routes
        self.handover = handover
        self.resolver = resolver
        self.delivery = delivery
        self.icmp = icmp
        self.books = books
        self.faults = faults
        self.batch_size = cfg.batch_size
        # One classify Batch per nesting level of passes (a pass started while another still reads its Batch:
        # the control stage's releases, decapsulated packets), made when first needed.
        self.batches: list[Batch] = [backend.impl.Batch(cfg.batch_size)]
        self.depth = 0
        # Passes asked for MAX_NESTED_PASSES deep wait here (on a copy) and run when the outermost pass is done,
        # at most MAX_WAITING_PASSES of them.
        self.waiting: deque[_Waiting] = deque()
        self.waited = 0  # passes the current outermost pass has queued so far
        self.decap_depth = 0
        self._no_status = np.zeros(cfg.batch_size, dtype=np.uint32)  # read-only use: frames the engine made
        self._no_ts = np.zeros(cfg.batch_size, dtype=np.int64)
        # the inner packets the node finishes are classified with the engine's codepoints
        node.set_codepoints(codepoints)
        # views of the node's outputs, taken once (its arrays are never reallocated)
        self._node_out = (node.action, node.aux, node.entry, node.out_if, node.next_hop, node.tx_count,
                          node.tx_offsets, node.tx_lengths)
        self._tunnel_out = (node.tunnel_count, node.tunnel_offsets, node.tunnel_lengths)
        # the node fills the TX rings of the ring ports itself (it shares each ring's head with its sender);
        # per interface, the ring to kick for what it queued (None: no ring)
        self._rings: list[Any] = []  # fmipfast.rings.PacketRing or None
        for iface in interfaces:
            ring = iface.port.ring if isinstance(iface.port, RingPort) else None
            if ring is not None and ring.tx is not None:
                node.set_tx_ring(iface.index, ring.tx, ring.tx_frame_size, ring.tx_head)
            self._rings.append(ring)
        for iface, ring in zip(interfaces, self._rings):
            if ring is not None and ring.tx is not None:
                node.set_tx_kick(iface.index, ring.tx_fileno())
        self._tx_queued, self._tunnel_queued = node.tx_queued, node.tunnel_queued
        self._ring_tx = node.ring_tx
        # run_ring reads CLOCK_MONOTONIC itself per chunk when that is the engine's clock, else gets one reading
        self._monotonic = clock is time.monotonic_ns
        # each interface's rows of the node's TX and tunnel vectors, as 1-D views (sliced per block)
        self._tx_rows = [(iface, node.tx_offsets[iface.index], node.tx_lengths[iface.index]) for iface in interfaces]
        self._tunnel_rows = [(iface, node.tunnel_offsets[iface.index], node.tunnel_lengths[iface.index])
                             for iface in interfaces]

    # ------------------------------------------------------------------ passes
    def process(self, iface: Interface, fb: FrameBatch, *, inner: bool = False, from_wire: bool = True) -> int:
        """See ``Engine.process``."""
        n_total: int = fb.offsets.shape[0]
        if from_wire and fb.vlan_tci is not None and n_total:
            fb = self._untagged(fb)
        if self.depth >= MAX_NESTED_PASSES:
            self._wait(iface, fb, inner, from_wire, False)
            return n_total
        self.run_pass(iface, fb, inner, from_wire)
        return n_total

    def _untagged(self, fb: FrameBatch) -> FrameBatch:
        """``fb`` without the frames whose VLAN tag the kernel stripped (a ring block's ``vlan_tci``), which are
        received and dropped here (VLAN_TAGGED: the links are untagged, as the node drops a tag it finds in
        the frame): the frame left for the node does not show the tag."""
        tagged = fb.vlan_tci != _NO_TAG  # type: ignore[operator]
        k = int(np.count_nonzero(tagged))
        if not k:
            return fb
        ledger = self.books.now
        ledger.c[RECEIVED] += k
        ledger.drop(DropReason.VLAN_TAGGED, k)
        keep = ~tagged
        return FrameBatch(fb.port, fb.arena, fb.offsets[keep], fb.lengths[keep], fb.status[keep], fb.ts_ns[keep])

    def ring_pass(self, iface: Interface, max_blocks: int) -> tuple[int, bool]:
        """The ready blocks of ``iface``'s RX ring, at most ``max_blocks``, through the node's ``run_ring``:
        walked, classified, run, filled into the TX rings and kicked in one compiled call, chunk by chunk, until
        a chunk has work for Python; Python then finishes that chunk, runs the rest of its block as a pass of
        its own and hands the block back (a block the node leaves whole goes the usual way, ``process``).
        Returns the frames received and whether more blocks may be ready.  Only for a ring port's interface,
        outside any pass (the engine's poll)."""
        port = iface.port
        ring = port.ring  # type: ignore[attr-defined]
        node = self.node
        ledger = self.books.now
        before = ledger.c.tobytes()  # the counts before the call (read only if finishing a chunk fails)
        b = self.batches[0]
        reason, cursor, blocks, frames, csum, walked, start, stop, present, err, err_if = node.run_ring(
            b, ring.rx, ring.rx_unit, ring.rx_units, ring._rx_next, iface.index, ring.fast_out,
            drops=ledger.node_drops, counts=ledger.node_counts, now_ns=None if self._monotonic else self.clock(),
            max_blocks=max_blocks, hold=bool(self.handover.hold), per_frame=ring.per_frame)
        ring.walked(cursor, blocks, frames, csum)
        for k, q in enumerate(self._ring_tx.tolist()):
            if q:
                tx = self._rings[k].counters
                tx["tx_frames"] += q
                tx["tx_direct"] += q
        if err:
            self._rings[err_if].counters["tx_send_errors"] += 1
            self.faults.internal("engine pass", OSError(err, os.strerror(err)), interface=self.interfaces[err_if].name)
        if reason == _RING_IDLE or reason == _RING_LIMIT:
            return frames, reason == _RING_LIMIT
        if reason == _RING_BLOCK:  # the usual path: walked again, with its counts, and processed as a whole
            fb = ring.next_block()
            if fb is None:  # cannot be: the node saw it ready (a block never goes back to the kernel by itself)
                return frames, True
            fb.port = port
            try:
                self.process(iface, fb)
            finally:
                fb.release()
            return frames + len(fb), True
        out = ring.fast_out
        fb = FrameBatch(port, ring.rx, out[0][:walked], out[1][:walked], out[2][:walked], out[3][:walked])
        try:
            if present:  # the node's outputs are this chunk's: finished before anything else runs
                self.depth += 1
                self.waited = 0
                try:
                    try:
                        self._after_node(iface, ring.rx, fb.offsets[start:stop], fb.lengths[start:stop], b,
                                         stop - start, present, self.clock(), False)
                    except Exception as exc:  # noqa: BLE001 -- the data plane goes on; the frames are accounted for
                        self._chunk_failed(iface, exc, before, 0)
                    while self.waiting:
                        self._run(*self.waiting.popleft())
                finally:
                    self.depth -= 1
            if stop < walked:  # the rest of the block: a pass of its own
                self.process(iface, FrameBatch(port, ring.rx, fb.offsets[stop:], fb.lengths[stop:], fb.status[stop:],
                                               fb.ts_ns[stop:]))
        finally:
            ring.hand_back(cursor, walked)
        return frames, True

    def reinject(self, iface: Interface, arena: np.ndarray, offsets: np.ndarray, lengths: np.ndarray) -> None:
        """Frames leaving a queue (a flushed handover buffer, a resolved next hop) go through the pipeline
        again.  They got their disposition when they were queued, so this second pass is booked in the
        second ledger (``Books.requeue``), keeping the main equation exact."""
        fb = FrameBatch(iface.port, arena, offsets, lengths, np.zeros(offsets.shape[0], dtype=np.uint32),
                        np.zeros(offsets.shape[0], dtype=np.int64))
        if self.depth >= MAX_NESTED_PASSES:
            self._wait(iface, fb, False, False, True)
        else:
            self._run(iface, fb, False, False, True)

    def _wait(self, iface: Interface, fb: FrameBatch, inner: bool, from_wire: bool, requeue: bool) -> None:
        """A pass asked for too deep: it runs, on a copy, once the outermost pass is done; beyond
        MAX_WAITING_PASSES queued by one outermost pass its frames are refused (INTERNAL_ERROR, in their
        ledger), so a loop of re-entries can neither grow the stack nor run forever."""
        if self.waited >= MAX_WAITING_PASSES:
            ledger = self.books.requeue if requeue else self.books.now
            if not requeue:
                ledger.c[RECEIVED] += len(fb)
            ledger.drop(_R_INTERNAL_ERROR, len(fb))
            self.faults.internal("nested passes", RuntimeError(f"more than {MAX_WAITING_PASSES} passes waiting"))
            return
        copy = FrameBatch(fb.port, np.array(fb.arena, dtype=np.uint8), np.array(fb.offsets, dtype=np.int64),
                          np.array(fb.lengths, dtype=np.uint32), np.array(fb.status, dtype=np.uint32),
                          np.array(fb.ts_ns, dtype=np.int64))
        self.waiting.append((iface, copy, inner, from_wire, requeue))
        self.waited += 1

    def _run(self, iface: Interface, fb: FrameBatch, inner: bool, from_wire: bool, requeue: bool) -> None:
        """One pass; ``requeue``: frames leaving a queue, booked in the second ledger (see reinject)."""
        if not requeue:
            self.run_pass(iface, fb, inner, from_wire)
            return
        before = self.books.switch(self.books.requeue)
        try:
            self.run_pass(iface, fb, inner, from_wire)
        finally:
            self.books.switch(before)

    def run_pass(self, iface: Interface, fb: FrameBatch, inner: bool, from_wire: bool) -> None:
        """One pass over ``fb``, in chunks of at most ``batch_size`` frames; a chunk that fails has its frames
        booked (those without a disposition as INTERNAL_ERROR) and the rest go on."""
        self.depth += 1
        if self.depth == 1:
            self.waited = 0
        try:
            if len(self.batches) < self.depth:
                self.batches.append(backend.impl.Batch(self.batch_size))
            size = self.batch_size
            total: int = fb.offsets.shape[0]
            for start in range(0, total, size):
                stop = start + size if total - start > size else total
                books = self.books.now.c.tobytes()  # the counts before the chunk (read only if it fails)
                try:
                    self._process_chunk(iface, fb, start, stop, inner, from_wire)
                except Exception as exc:  # noqa: BLE001 -- the data plane goes on; the frames are accounted for
                    self._chunk_failed(iface, exc, books, stop - start)
            while self.depth == 1 and self.waiting:
                self._run(*self.waiting.popleft())
        finally:
            self.depth -= 1

    def _chunk_failed(self, iface: Interface, exc: Exception, books: bytes, n: int) -> None:
        """A chunk of ``n`` frames raised ``exc``: logged, and its frames without a disposition booked as
        INTERNAL_ERROR (``books``: the ledger's counts before the chunk), so the equation holds."""
        self.faults.internal("engine pass", exc, interface=iface.name, frames=n)
        was = np.frombuffer(books, dtype=np.int64)
        received, before = int(was[RECEIVED]), int(was[FORWARDED:DROPPED + 1].sum())
        ledger = self.books.now
        if ledger.c[RECEIVED] == received:
            ledger.c[RECEIVED] += n
        missing = (ledger.c[RECEIVED] - received) - (ledger.dispositions() - before)
        if missing > 0:
            ledger.drop(_R_INTERNAL_ERROR, missing)

    # ------------------------------------------------------------------ one block
    def _process_chunk(self, iface: Interface, fb: FrameBatch, start: int, stop: int, inner: bool,
                       from_wire: bool) -> None:
        now = self.clock()
        arena = fb.arena
        # a FrameBatch holds the kernels' dtypes, C-contiguous (FrameBatch.__post_init__): a chunk is a view
        if start == 0 and stop == fb.offsets.shape[0]:  # the whole batch: no slices (the common block)
            offsets, lengths, status = fb.offsets, fb.lengths, fb.status
        else:
            offsets, lengths, status = fb.offsets[start:stop], fb.lengths[start:stop], fb.status[start:stop]
        n = stop - start
        ledger = self.books.now
        b = self.batches[self.depth - 1]
        # classify into this level's Batch, then the forwarding node: classify's drops, the link-layer filter,
        # checksum completion, the lookups, the handover columns, the rewrite of what is forwarded and its TX
        # vectors -- one compiled call; it finishes the inner packets of a peer's tunnel it can while a further
        # level of decapsulation is allowed, and books the block (received, dropped, held, checksums completed,
        # buffered, the finished inner packets) in the ledger's counts itself
        present = self.node.run_block(b, arena, offsets, lengths, status, iface.index, from_wire=from_wire,
                                      inner=inner, drops=ledger.node_drops, now_ns=now,
                                      finish_inner=self.decap_depth < MAX_DECAP_DEPTH, counts=ledger.node_counts)
        self._after_node(iface, arena, offsets, lengths, b, n, present, now, inner)

    def _after_node(self, iface: Interface, arena: np.ndarray, offsets: np.ndarray, lengths: np.ndarray, b: Batch,
                    n: int, present: int, now: int, inner: bool) -> None:
        """What Python does for a chunk of ``n`` frames after the node ran it (``run_block``, or ``run_ring``
        stopping at it; ``b`` the Batch it was classified into, ``present`` the node's bit set of actions):
        the holds the tunnel extends, the TX vectors, and the classes the node hands over."""
        n_action, n_aux, n_entry, n_out_if, n_next_hop, tx_count, tx_offsets, tx_lengths = self._node_out
        if present & _B_DECAPPED and self.handover.hold:
            self._decapped(n, now)
        if inner and self.handover.hold:  # the tunnel still delivers: the holds of these MNs go on
            self.handover.tunnel_delivered(n_entry[:n][n_action[:n] != _A_DROP], now)
        if present & _B_TUNNELLED:  # now: a pass started below would overwrite the node's tunnel arena
            self._transmit_tunnels()
        if present & _SLOW == 0:  # the common block: forwarded, buffered, tunnelled and dropped frames only
            if present & _B_FORWARD:
                self._transmit_rows(self._tx_rows, arena, tx_count, self._tx_queued, FORWARDED)
            return
        # Everything below may start passes of its own (the control stage's releases, decapsulated packets),
        # which reuse the node's and classify's outputs: take copies of what this chunk still needs first.
        action = n_action[:n].copy()
        aux = n_aux[:n].copy()
        if present & _B_RESOLVE:
            out_if = n_out_if[:n].copy()
            next_hop = n_next_hop[:n].copy()
        if present & _B_TUNNEL:
            l3 = np.array(b.l3_offset, dtype=np.uint32)
        if present & (_B_NO_ROUTE | _B_TIME_EXCEEDED | _B_PACKET_TOO_BIG | _B_TUNNEL):  # IPv6 header, upper layer
            headers = (np.array(b.l3_offset[:n], dtype=np.int64), np.array(b.next_header[:n], dtype=np.int64),
                       np.array(b.l4_offset[:n], dtype=np.int64))
        if present & _B_DECAP:  # the inner frames the node made in place, in this block's arena
            d_count = self.node.decap_count
            d_offsets = self.node.decap_offsets[:d_count].copy()
            d_lengths = self.node.decap_lengths[:d_count].copy()
        tx = None
        if present & _B_FORWARD:
            tx = (tx_count.copy(), tx_offsets.copy(), tx_lengths.copy())
        if present & _B_CONTROL:
            sel = np.flatnonzero(action == _A_CONTROL)
            # what it releases (a buffer flushed by an Attach, a resolved next hop's queue) goes out at once, in
            # passes of their own (process): before the rest of this chunk, which is newer
            self.delivery.stage(iface, arena, offsets, lengths, b, sel, now, inner)
        if present & _B_BUFFER:  # a node without the buffer (set_buffer) leaves it here
            sel = np.flatnonzero(action == _A_BUFFER)
            self._buffer(arena, offsets, lengths, sel, aux[sel], now)
        if present & _B_TUNNEL:
            sel = np.flatnonzero(action == _A_TUNNEL)
            self._tunnel(iface, arena, offsets, lengths, l3, sel, aux[sel], now, headers)
        if present & _B_DECAP:
            self._decap(iface, arena, d_offsets, d_lengths)
        if present & _B_NO_ROUTE:
            sel = np.flatnonzero(action == _A_NO_ROUTE)
            for i in sel:
                self.icmp.error(iface, arena, offsets, lengths, int(i), Icmp6Type.DEST_UNREACH, 0, 0, now,
                                *(int(h[i]) for h in headers))
            self.books.now.drop(DropReason.NO_ROUTE, int(sel.size))
        if present & _B_TIME_EXCEEDED:
            # a packet that would leave with hop limit 0 is answered with Time Exceeded (RFC 4443 §3.3)
            sel = np.flatnonzero(action == _A_TIME_EXCEEDED)
            for i in sel:
                self.icmp.error(iface, arena, offsets, lengths, int(i), Icmp6Type.TIME_EXCEEDED, 0, 0, now,
                                *(int(h[i]) for h in headers))
            self.books.now.drop(DropReason.HOP_LIMIT_EXCEEDED, int(sel.size))
        if present & _B_PACKET_TOO_BIG:
            # larger than its output link's MTU (the node's aux): a router never fragments (RFC 8200 §5), it
            # answers with Packet Too Big carrying that MTU (RFC 4443 §3.2), for Path MTU Discovery (RFC 8201)
            sel = np.flatnonzero(action == _A_PACKET_TOO_BIG)
            for i in sel:
                self.icmp.error(iface, arena, offsets, lengths, int(i), Icmp6Type.PACKET_TOO_BIG, 0, int(aux[i]),
                                now, *(int(h[i]) for h in headers))
            self.books.now.drop(DropReason.FRAME_TOO_BIG, int(sel.size))
        if present & _B_RESOLVE:
            sel = np.flatnonzero(action == _A_RESOLVE)
            self.resolver.resolve(arena, offsets, lengths, sel, out_if[sel].astype(np.int64), next_hop[sel], now)
        if tx is not None:
            self._transmit_vectors(arena, *tx)

    # ------------------------------------------------------------------ FORWARD, TUNNELLED
    def _transmit_tunnels(self) -> None:
        """Send the node's tunnel TX vectors (frames it encapsulated into its own arena)."""
        # the arena is (re)made by set_tunnel: taken when used
        self._transmit_rows(self._tunnel_rows, self.node.tunnel_arena, self._tunnel_out[0], self._tunnel_queued,
                            TUNNELLED)

    def _transmit_rows(self, rows: list[tuple[Interface, np.ndarray, np.ndarray]], arena: np.ndarray,
                       count: np.ndarray, queued: np.ndarray, counter: int) -> None:
        """Send the first ``count[k]`` frames of each interface's row of the node's vectors (its own arrays):
        the first ``queued[k]`` the node put on the interface's TX ring itself (a kick), the rest through the
        port."""
        q_all = queued.tolist()
        done = lost = 0
        try:
            for k, m in enumerate(count.tolist()):
                if m:
                    q = q_all[k]
                    if q:
                        self._rings[k].queued(q)  # queued only on a ring port's interface
                        done += q
                        if q == m:
                            continue
                    out, offsets, lengths = rows[k]
                    sent = out.port.send(arena, offsets[q:m], lengths[q:m])
                    done += sent
                    lost += m - q - sent
        finally:  # booked once, and also when a port raised (what went out before it did is booked as sent)
            ledger = self.books.now
            ledger.c[counter] += done
            if lost:
                ledger.drop(DropReason.TX_RING_FULL, lost)

    def _transmit_vectors(self, arena: np.ndarray, tx_count: np.ndarray, tx_offsets: np.ndarray,
                          tx_lengths: np.ndarray) -> None:
        """Send the node's TX vectors: frame ``j`` of interface ``k`` at ``tx_offsets[k, j]``."""
        for k, m in enumerate(tx_count.tolist()):
            if m:
                self._transmit(self.interfaces[k], arena, tx_offsets[k, :m], tx_lengths[k, :m], FORWARDED)

    def _transmit(self, out: Interface, arena: np.ndarray, offsets: np.ndarray, lengths: np.ndarray,
                  counter: int) -> None:
        if not offsets.shape[0]:
            return
        sent = out.port.send(arena, offsets, lengths)
        ledger = self.books.now
        ledger.c[counter] += sent
        lost = int(offsets.shape[0]) - sent
        if lost:
            ledger.drop(DropReason.TX_RING_FULL, lost)

    # ------------------------------------------------------------------ BUFFER, TUNNEL, DECAP
    def _buffer(self, arena: np.ndarray, offsets: np.ndarray, lengths: np.ndarray, sel: np.ndarray,
                keys: np.ndarray, now: int) -> None:
        """Buffer the selected frames under their keys (the node's ``entry_key`` column); -1: this handover
        does not buffer (the HI's U flag was clear)."""
        keys = keys.astype(np.int32, copy=False)
        known = keys >= 0
        ledger = self.books.now
        if not known.all():
            ledger.drop(DropReason.NOT_BUFFERED, int((~known).sum()))
            sel, keys = sel[known], keys[known]
        if sel.size:
            st = self.buffer.push(keys, arena, offsets[sel], lengths[sel], now)
            ok = st == 0
            ledger.c[BUFFERED] += int(ok.sum())
            if not ok.all():
                ledger.drop_statuses(st[~ok])

    def _tunnel(self, iface: Interface, arena: np.ndarray, offsets: np.ndarray, lengths: np.ndarray,
                l3: np.ndarray, sel: np.ndarray, peers: np.ndarray, now: int,
                headers: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        """Encapsulate the selected frames toward their NAR (the node's ``entry_peer`` column: an index into
        ``Handover.peer_table``) per RFC 2473, one kernel call per NAR: what the node left (a NAR without a
        route or with an unresolved next hop; the node tunnels the others itself).  Tunnel packets are this
        router's own: no hop-limit decrement, and an unresolved next hop queues them like forwarded traffic
        (counted ``queued_resolve``, not ``tunnelled``)."""
        peer_table, peer_arrays = self.handover.peer_table, self.handover.peer_arrays
        single = bool((peers == peers[0]).all())  # one NAR: the common case
        for p in [int(peers[0])] if single else np.unique(peers).tolist():
            group = sel if single else sel[peers == p]
            peer = peer_table[p] if 0 <= p < len(peer_table) else None
            route = None if peer is None else self.routes.peer_route(p, peer)
            if peer is None or route is None:
                self.books.now.drop(DropReason.NO_ROUTE, int(group.size))
                continue
            out = self.interfaces[route[0]]
            hop = route[1]
            idx = find_neighbor(self.ncache, hop)
            resolved = idx >= 0 and int(self.ncache.states[idx]) != _S_INCOMPLETE
            dst_mac = np.asarray(self.ncache.macs[idx], dtype=np.uint8) if resolved else np.zeros(6, dtype=np.uint8)
            out_arena, out_off, out_len, st = backend.impl.encapsulate(
                arena, offsets, lengths, l3, group, out.source_array, peer_arrays[p], dst_mac,
                out.mac_array, hop_limit=TUNNEL_HOP_LIMIT, mtu=int(self.node.mtus[route[0]]))
            self._tunnel_errors(iface, arena, offsets, lengths, group, st, int(self.node.mtus[route[0]]), now,
                                headers)
            out_off, out_len = self._kept(st, out_off, out_len)
            m = int(out_off.shape[0])
            if not m:
                continue
            if resolved:
                self._transmit(out, out_arena, out_off, out_len, TUNNELLED)
            else:
                self.resolver.resolve(out_arena, out_off, out_len, np.arange(m, dtype=np.int64),
                                      np.full(m, route[0], dtype=np.int64),
                                      np.tile(np.frombuffer(hop.packed, dtype=np.uint8), (m, 1)), self.clock())

    def _tunnel_errors(self, iface: Interface, arena: np.ndarray, offsets: np.ndarray, lengths: np.ndarray,
                       group: np.ndarray, st: np.ndarray, mtu: int, now: int,
                       headers: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        """The ICMPv6 errors the tunnel entry point owes for what ``encapsulate`` refused (the node does the
        same for what it tunnels itself): Time Exceeded for an inner hop limit that would reach 0 (RFC 2473
        §3.1), Packet Too Big with the tunnel MTU -- the link's less the outer header, at least 1280 -- for a
        packet larger than 1280 that does not fit (§7.1); the frames are dropped by their status either way."""
        for j in np.flatnonzero((st == _R_HOP_LIMIT) | (st == _R_TOO_BIG)).tolist():
            i = int(group[j])
            h = [int(col[i]) for col in headers]
            if int(st[j]) == _R_HOP_LIMIT:
                self.icmp.error(iface, arena, offsets, lengths, i, Icmp6Type.TIME_EXCEEDED, 0, 0, now, *h)
                continue
            o = int(offsets[i]) + h[0]
            if 40 + int.from_bytes(bytes(arena[o + 4:o + 6]), "big") > 1280:
                self.icmp.error(iface, arena, offsets, lengths, i, Icmp6Type.PACKET_TOO_BIG, 0, max(mtu - 40, 1280),
                                now, *h)

    def _kept(self, st: np.ndarray, offsets: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The packets a rewriting kernel produced (status 0); the others are dropped by their status."""
        ok = st == 0
        if ok.all():
            return offsets, lengths
        self.books.now.drop_statuses(st[~ok])
        return offsets[ok], lengths[ok]

    def _decapped(self, n: int, now: int) -> None:
        """The inner packets the node finished itself (DECAPPED; it booked them: decapsulated, received, their
        dispositions with the block's): the holds of the MNs the tunnel still delivers to go on."""
        node = self.node
        sel = node.action[:n] == _A_DECAPPED
        self.handover.tunnel_delivered(node.inner_entry[:n][sel], now)

    def _decap(self, iface: Interface, arena: np.ndarray, offsets: np.ndarray, lengths: np.ndarray) -> None:
        """The inner packets the node decapsulated in place (it checked that a peer sent them) get their pass,
        now (the Batch of this chunk is no longer read), so that what the tunnel delivered goes out before this
        chunk's direct frames (they are newer).  Nested tunnels are decapsulated up to MAX_DECAP_DEPTH levels
        (RFC 2473 §4.1.1's default encapsulation limit)."""
        m = int(offsets.shape[0])
        if not m:
            return
        if self.decap_depth >= MAX_DECAP_DEPTH:
            self.books.now.drop(DropReason.DECAP_TOO_DEEP, m)
            return
        self.books.now.c[DECAPSULATED] += m
        size = self.batch_size
        inner = FrameBatch(iface.port, arena, offsets, lengths,
                           self._no_status[:m] if m <= size else np.zeros(m, dtype=np.uint32),
                           self._no_ts[:m] if m <= size else np.zeros(m, dtype=np.int64))
        self.decap_depth += 1
        try:
            self.run_pass(iface, inner, True, False)
        finally:
            self.decap_depth -= 1
