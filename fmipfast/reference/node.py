"""The forwarding node, pure Python: the oracle of the compiled ``Node`` (``_kernels/node.pxi``).

A ``Node`` takes one classified block of frames (a :class:`~fmipfast.reference.wire.Batch` filled by
``classify`` over the same arena, offsets and lengths) and decides, frame by frame, what becomes of it:

1. classify's drops stay drops; a unicast frame for another station's MAC is dropped (``OTHER_HOST``) when
   the block came from the wire, and so is a frame with VLAN tags (``VLAN_TAGGED``: the links are untagged);
2. a frame the sending kernel left for the device to checksum (``TP_STATUS_CSUMNOTREADY``) gets its UDP, TCP
   or ICMPv6 checksum completed in place;
3. the destination is looked up in the neighbor cache: an address of the router goes to the control path
   (an IPv6-in-IPv6 packet for it is decapsulated if its outer source is a peer router: in place, RFC 2473
   §3.2 -- the inner packet stays where it is and gets an Ethernet header of zero MACs and type 0x86DD in
   the 14 octets before it, which held the outer headers; its offset and length go to the decap vector, in
   block order, for the inner packets' own pass; one the decapsulation refuses is a drop by its status;
   with ``run(..., finish_inner=True)`` the node classifies the inner packet (with :meth:`Node.set_codepoints`'
   codepoints) and finishes it at its outer frame's place in the block when its action is one the node
   completes -- forwarded, tunnelled, buffered or dropped as an outer frame from no wire would be, never held
   (the outer frame is then ``DECAPPED``, the inner packet's action, aux and destination entry in
   ``inner_action`` / ``inner_aux`` / ``inner_entry``); any other inner packet -- the router's own, control,
   to be resolved, an ICMPv6 error due, a punted tunnel or buffer, another level of tunnel -- goes to the
   decap vector untouched, and Python's pass classifies and looks it up again); a packet for another node
   that a router never forwards is dropped whatever its entry (:func:`not_forwarded`: a link-local, IPv4-mapped
   or multicast address is ``ADDRESS_NOT_FORWARDED``; of a frame from the wire, a unicast packet in a
   link-layer broadcast or multicast frame is ``LINK_MULTICAST_NOT_FORWARDED``); a ``TUNNEL`` entry
   (PAR mid-handover) is tunnelled to the peer in the entry's ``entry_peer`` column, a ``PROXY`` entry (NAR
   mid-handover) is buffered under the key in its ``entry_key`` column, a ``HOLD`` entry (the route switch)
   too for direct, non-Mobility-Header frames from the wire.  With a :class:`PacketBuffer` set
   (:meth:`Node.set_buffer`) the node pushes those frames itself, in block order, in one push per block
   (``BUFFERED``; refused ones are drops by the buffer's status, a key of -1 is ``NOT_BUFFERED``), else it
   punts them (``BUFFER``).  With a tunnel set up (:meth:`Node.set_tunnel`, :meth:`Node.set_tunnel_peers`)
   the node encapsulates ``TUNNEL`` frames itself (RFC 2473: outer source the output interface's address,
   outer hop limit ``hop_limit``, the inner hop limit decremented) into its own tunnel arena and per-interface
   tunnel TX vectors (``TUNNELLED``) when the FIB routes the peer and the next hop's entry is usable; a peer
   without a route or with an unresolved next hop is punted (``TUNNEL``), an inner packet the encapsulation
   refuses is a drop by its status;
4. anything else is forwarded: the destination's own usable entry, else the FIB's route (output interface,
   next hop), gives the output interface; no route or a hop limit that would reach 0 is punted for the ICMPv6
   error; a next hop without a usable entry is punted for resolution; otherwise the frame is rewritten in place
   (Ethernet addresses, hop limit - 1) and appended to its output interface's TX vector.

Outputs, per frame ``i < n``: ``action[i]`` (an :class:`~fmipfast.constants.Action`), ``aux[i]`` (the buffer
key for BUFFER, the peer index for TUNNEL, the drop reason for DROP, else -1), ``entry[i]`` (the destination's
neighbor index or -1), ``out_if[i]`` and ``next_hop[i]`` (for FORWARD and RESOLVE); per output interface
``k``: ``tx_count[k]`` frames at ``tx_offsets[k, :tx_count[k]]`` / ``tx_lengths[k, :tx_count[k]]`` in block
order, and ``tunnel_count[k]`` tunnel frames at ``tunnel_offsets[k, :tunnel_count[k]]`` of ``tunnel_arena``;
``decap_count`` inner frames at ``decap_offsets[:decap_count]`` / ``decap_lengths`` in the block's arena;
``stats`` (``NODE_STATS`` names) and ``drops`` (by :class:`~fmipfast.constants.DropReason`) count this
block's work, the finished inner packets' drops and pushes included; given ``counts`` (the engine's ledger, a
row per EngineCounter), the node adds the block's figures to it too (:func:`book`).  ``run`` returns the bit
set of the actions present (``1 << action``), the finished inner packets' included.

Bounds: the tunnel arena holds ``capacity`` frames of ``14 + max(mtu)`` octets (an encapsulated packet is at
most the output interface's MTU, checked per frame), so a block can never run out of it; the buffer's bounds
are its own (per-key and global caps, drop-oldest: the statuses say what it refused).

The node reads the neighbor cache and FIB it was given and its own columns; it changes nothing but the
selected frames' octets and its outputs.  Ownership: one thread (the engine's) calls ``run`` and the setters.
"""

from __future__ import annotations

import errno as _errno
import operator
import socket
import time
from typing import Any

import numpy as np

from fmipfast._linux import TP_STATUS_CSUMNOTREADY, TP_STATUS_USER
from fmipfast.constants import (
    DEFAULT_CODEPOINTS,
    NODE_STATS,
    Action,
    Codepoints,
    DropReason,
    EngineCounter,
    IpProto,
    NeighborFlag,
    NeighborState,
    Verdict,
)
from fmipfast.reference.cksum import upper_layer_checksum
from fmipfast.reference.rewrite import decapsulate, encapsulate
from fmipfast.reference.ring import (
    BLOCK_DESC_LEN,
    TPACKET2_HDR_LEN,
    TPACKET_ALIGNMENT,
    TX_DATA_OFF,
    check_walk_out,
    ring_block_status,
    ring_release_block,
    ring_release_frames,
    ring_tx_fill,
    ring_walk_block,
    ring_walk_frames,
)
from fmipfast.reference.wire import classify

__all__ = ["Node", "NODE_STATS", "RING_IDLE", "RING_LIMIT", "RING_BLOCK", "RING_CHUNK", "check_ring", "kick",
           "TP_STATUS_CSUMNOTREADY", "CHECKSUM_FIELD", "check_run", "check_counts", "book",
           "check_tables", "check_tunnel", "check_now", "check_codepoints", "check_tx_ring", "check_mtus",
           "TUNNEL_MTU_MIN", "TUNNEL_MTU_MAX"]

#: Offset of the checksum field inside each upper-layer header whose checksum the node completes.
CHECKSUM_FIELD = {int(IpProto.UDP): 6, int(IpProto.TCP): 16, int(IpProto.ICMPV6): 2}

_A_DROP, _A_FORWARD, _A_TUNNEL = int(Action.DROP), int(Action.FORWARD), int(Action.TUNNEL)
_A_DECAP, _A_BUFFER, _A_CONTROL = int(Action.DECAP), int(Action.BUFFER), int(Action.CONTROL)
_A_RESOLVE, _A_NO_ROUTE, _A_TIME_EXCEEDED = int(Action.RESOLVE), int(Action.NO_ROUTE), int(Action.TIME_EXCEEDED)
_A_BUFFERED, _A_TUNNELLED, _A_DECAPPED = int(Action.BUFFERED), int(Action.TUNNELLED), int(Action.DECAPPED)
_A_PACKET_TOO_BIG = int(Action.PACKET_TOO_BIG)
_S_BUFFERED, _S_DECAPPED = NODE_STATS.index("buffered"), NODE_STATS.index("decapped")
_S_FRAMES, _S_DROPPED = NODE_STATS.index("frames"), NODE_STATS.index("dropped")
_S_HELD, _S_CSUM = NODE_STATS.index("reorder_held"), NODE_STATS.index("csum_completed")
(_C_RECEIVED, _C_RECEIVED_INNER, _C_DECAPSULATED, _C_DROPPED, _C_REORDER_HELD, _C_CSUM_COMPLETED, _C_BUFFERED) = (
    int(EngineCounter.RECEIVED), int(EngineCounter.RECEIVED_INNER), int(EngineCounter.DECAPSULATED),
    int(EngineCounter.DROPPED), int(EngineCounter.REORDER_HELD), int(EngineCounter.CSUM_COMPLETED),
    int(EngineCounter.BUFFERED))
#: The actions whose frames Python handles before a block's TX vectors are sent (it may send frames of its own
#: that go first): a block with any of them is not filled into the TX rings (``set_tx_ring``).
_PYTHON_FIRST = ~((1 << _A_DROP) | (1 << _A_FORWARD) | (1 << _A_BUFFERED) | (1 << _A_TUNNELLED) | (1 << _A_DECAPPED))
#: The inner packets' actions the node finishes itself (``finish_inner``).
_FINISHED = frozenset((_A_FORWARD, _A_TUNNELLED, _A_BUFFERED, _A_DROP))
#: The MTUs ``set_tunnel`` takes (RFC 8200 §5's minimum; the largest an IPv6 payload length can describe).
TUNNEL_MTU_MIN, TUNNEL_MTU_MAX = 1280, 65535
#: Why ``Node.run_ring`` returned (its first value): the kernel owns the block at the cursor; ``max_blocks``
#: blocks were done (more may be ready); the block at the cursor is left whole to the caller's usual path (a
#: walk error, frames the walk could not report, a VLAN tag the kernel stripped); a chunk of the block at the
#: cursor needs the caller (see ``run_ring``).
RING_IDLE, RING_LIMIT, RING_BLOCK, RING_CHUNK = 0, 1, 2, 3
#: The actions whose frames the caller handles after the node (``run_ring`` stops at a chunk with any).
_CALLER = _PYTHON_FIRST
_A_DECAPPED_BIT = 1 << _A_DECAPPED
_C_FORWARDED, _C_TUNNELLED = int(EngineCounter.FORWARDED), int(EngineCounter.TUNNELLED)
_R_INTERNAL_ERROR = int(DropReason.INTERNAL_ERROR)
_NO_TAG = 0xFFFFFFFF
_F_LOCAL, _F_PROXY = int(NeighborFlag.LOCAL), int(NeighborFlag.PROXY)
_F_TUNNEL, _F_HOLD = int(NeighborFlag.TUNNEL), int(NeighborFlag.HOLD)
_INCOMPLETE = int(NeighborState.INCOMPLETE)
_P_MH = int(IpProto.MH)
_V4_MAPPED = bytes(10) + b"\xff\xff"  # RFC 4291 §2.5.5.2: ::ffff:0:0/96


def _link_local(addr: bytes) -> bool:
    return addr[0] == 0xFE and addr[1] & 0xC0 == 0x80  # RFC 4291 §2.5.6: fe80::/10


def not_forwarded(src: bytes, dst: bytes) -> bool:
    """Whether a router never forwards a packet of ``src`` to ``dst`` (ADDRESS_NOT_FORWARDED): a link-local
    source or destination (RFC 4291 §2.5.6), an IPv4-mapped one (§2.5.5.2), a multicast destination (the
    router does no multicast routing)."""
    return (dst[0] == 0xFF or _link_local(src) or _link_local(dst) or src[:12] == _V4_MAPPED
            or dst[:12] == _V4_MAPPED)


def _array(obj: Any, name: str, dtype: Any, shape_tail: tuple[int, ...] = ()) -> np.ndarray:
    a = np.asarray(obj)
    if a.dtype != np.dtype(dtype):
        raise TypeError(f"{name}: need dtype {np.dtype(dtype).name}, got {a.dtype.name}")
    if a.ndim != 1 + len(shape_tail) or tuple(a.shape[1:]) != shape_tail:
        raise ValueError(f"{name}: need shape [n{''.join(f', {k}' for k in shape_tail)}], got {list(a.shape)}")
    return np.ascontiguousarray(a)


def check_run(batch: Any, arena: Any, offsets: Any, lengths: Any, status: Any, iface: Any, drops: Any, capacity: int,
              interfaces: int, *, block: bool = False
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """The arguments of ``Node.run`` (``Node.run_block`` with ``block``: the batch is to be filled, so its
    capacity bounds the block) as arrays, or the ``TypeError``/``ValueError`` that names the first wrong one
    (both implementations raise these)."""
    ar = np.asarray(arena)
    if ar.dtype != np.uint8 or ar.ndim != 1:
        raise TypeError(f"arena: need a 1-D uint8 array, got {ar.dtype.name}[{ar.ndim}-D]")
    if not ar.flags.writeable or not ar.flags.c_contiguous:
        raise TypeError("arena: need a writable, contiguous array")
    off = _array(offsets, "offsets", np.int64)
    ln = _array(lengths, "lengths", np.uint32)
    n = off.shape[0]
    if ln.shape[0] != n:
        raise ValueError(f"lengths: need {n} rows (one per offset), got {ln.shape[0]}")
    st = _array(status, "status", np.uint32)
    if st.shape[0] not in (0, n):
        raise ValueError(f"status: need 0 or {n} rows, got {st.shape[0]}")
    rows = batch.capacity if block else batch.n
    if n > capacity or n > rows:
        raise ValueError(f"offsets: {n} frames, more than the node's capacity {capacity} or the batch's {rows}")
    if isinstance(iface, bool) or not isinstance(iface, (int, np.integer)) or not 0 <= iface < interfaces:
        raise ValueError(f"iface: need an integer in 0..{interfaces - 1}, got {iface!r}")
    if drops is not None and not (isinstance(drops, np.ndarray) and drops.dtype == np.uint64 and drops.ndim == 1
                                  and drops.shape[0] >= len(DropReason) and drops.flags.writeable
                                  and drops.flags.c_contiguous):
        raise TypeError(f"drops: need a writable uint64 array of at least {len(DropReason)} rows")
    size = ar.shape[0]
    for i in range(n):
        if off[i] < 0 or int(off[i]) + int(ln[i]) > size:
            raise ValueError(f"frame {i}: offset {int(off[i])} + length {int(ln[i])} runs past the arena "
                             f"({size} octets)")
    return ar, off, ln, st, drops


def check_counts(counts: Any) -> None:
    """``counts`` of ``Node.run``: None, or a writable, C-contiguous uint64 array of at least one row per
    EngineCounter (a ``TypeError`` otherwise, in both implementations)."""
    if counts is not None and not (isinstance(counts, np.ndarray) and counts.dtype == np.uint64 and counts.ndim == 1
                                   and counts.shape[0] >= len(EngineCounter) and counts.flags.writeable
                                   and counts.flags.c_contiguous):
        raise TypeError(f"counts: need a writable uint64 array of at least {len(EngineCounter)} rows")


def book(counts: np.ndarray, stats: np.ndarray, inner: bool) -> None:
    """A block's figures into the engine's counters: every frame received (an inner pass's also as
    RECEIVED_INNER), and what the node did itself -- dropped, held for the route switch, checksums
    completed, buffered; a peer's tunnelled packet it finished is decapsulated and its inner packet received
    (and received inner) too: its disposition is among the block's."""
    n, decapped = int(stats[_S_FRAMES]), int(stats[_S_DECAPPED])
    counts[_C_RECEIVED] += n + decapped
    counts[_C_RECEIVED_INNER] += (n if inner else 0) + decapped
    counts[_C_DECAPSULATED] += decapped
    counts[_C_DROPPED] += int(stats[_S_DROPPED])
    counts[_C_REORDER_HELD] += int(stats[_S_HELD])
    counts[_C_CSUM_COMPLETED] += int(stats[_S_CSUM])
    counts[_C_BUFFERED] += int(stats[_S_BUFFERED])


def check_tables(fib: Any, route_if: Any, route_via: Any, route_has_via: Any,
                 interfaces: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The arguments of ``Node.set_routes`` as arrays, or the error naming the first wrong one."""
    ri = _array(route_if, "route_if", np.int32)
    rv = _array(route_via, "route_via", np.uint8, (16,))
    rh = _array(route_has_via, "route_has_via", np.uint8)
    if not ri.shape[0] == rv.shape[0] == rh.shape[0]:
        raise ValueError(f"route_if, route_via, route_has_via: need the same number of rows, got "
                         f"{ri.shape[0]}, {rv.shape[0]}, {rh.shape[0]}")
    if ri.shape[0] and (int(ri.min()) < 0 or int(ri.max()) >= interfaces):
        raise ValueError(f"route_if: need interfaces in 0..{interfaces - 1}")
    if int(fib.size) > ri.shape[0]:
        raise ValueError(f"fib: {int(fib.size)} prefixes but only {ri.shape[0]} route rows")
    return ri.copy(), rv.copy(), rh.copy()


def check_tunnel(sources: Any, mtus: Any, hop_limit: Any, interfaces: int) -> tuple[np.ndarray, np.ndarray, int]:
    """The arguments of ``Node.set_tunnel`` as arrays, or the error naming the first wrong one."""
    src = _array(sources, "sources", np.uint8, (16,))
    mtu = _array(mtus, "mtus", np.uint32)
    if src.shape[0] != interfaces or mtu.shape[0] != interfaces:
        raise ValueError(f"sources, mtus: need {interfaces} rows (one per interface), got {src.shape[0]}, "
                         f"{mtu.shape[0]}")
    if int(mtu.min()) < TUNNEL_MTU_MIN or int(mtu.max()) > TUNNEL_MTU_MAX:
        raise ValueError(f"mtus: need values in {TUNNEL_MTU_MIN}..{TUNNEL_MTU_MAX}")
    if isinstance(hop_limit, bool) or not isinstance(hop_limit, int) or not 1 <= hop_limit <= 255:
        raise ValueError(f"hop_limit: need an integer in 1..255, got {hop_limit!r}")
    return src.copy(), mtu.copy(), hop_limit


def check_now(now_ns: Any) -> int:
    """``Node.run``'s ``now_ns`` when the node has a buffer: the time its pushes are stamped with."""
    if isinstance(now_ns, bool) or not isinstance(now_ns, (int, np.integer)) or not 0 <= now_ns < 1 << 63:
        raise ValueError(f"now_ns: need an integer in 0..2**63-1 when the node has a buffer, got {now_ns!r}")
    return int(now_ns)


def check_codepoints(codepoints: Any) -> Codepoints:
    """``Node.set_codepoints``' argument, or the ``TypeError`` naming it."""
    if not isinstance(codepoints, Codepoints):
        raise TypeError(f"codepoints: need fmipfast.constants.Codepoints, got {type(codepoints).__name__}")
    return codepoints


def check_tx_ring(iface: Any, ring: Any, frame_size: Any, head: Any,
                  interfaces: int) -> tuple[np.ndarray | None, int, np.ndarray | None]:
    """``Node.set_tx_ring``'s arguments, or the error naming the first wrong one: an interface index; the TX
    ring (a writable, C-contiguous uint8 array of whole slots) or None; the slot size (a multiple of
    TPACKET_ALIGNMENT above the 48-octet header plus sockaddr_ll); the head cell (a writable int64 array of one
    element: the next slot, shared with the ring's sender)."""
    if isinstance(iface, bool) or not isinstance(iface, (int, np.integer)) or not 0 <= iface < interfaces:
        raise ValueError(f"iface: need an integer in 0..{interfaces - 1}, got {iface!r}")
    if ring is None:
        return None, 0, None
    if not (isinstance(ring, np.ndarray) and ring.dtype == np.uint8 and ring.ndim == 1 and ring.flags.writeable
            and ring.flags.c_contiguous):
        raise TypeError("ring: need a writable, C-contiguous 1-D uint8 array")
    if isinstance(frame_size, bool) or not isinstance(frame_size, (int, np.integer)):
        raise TypeError(f"frame_size: need an integer, got {type(frame_size).__name__}")
    fs = int(frame_size)
    if fs <= TX_DATA_OFF or fs % TPACKET_ALIGNMENT or ring.shape[0] % fs or ring.shape[0] == 0:
        raise ValueError(f"frame_size {fs} must be a multiple of {TPACKET_ALIGNMENT} above {TX_DATA_OFF} "
                         f"dividing the {ring.shape[0]}-octet ring")
    if not (isinstance(head, np.ndarray) and head.dtype == np.int64 and head.shape == (1,) and head.flags.writeable
            and head.flags.c_contiguous):
        raise TypeError("head: need a writable int64 array of one element")
    return ring, fs, head


def check_mtus(mtus: Any, interfaces: int) -> np.ndarray:
    """``Node.set_mtus``'s argument as uint32[interfaces], or the error naming what is wrong: one MTU per
    interface, each 1280 (RFC 8200 §5's minimum) .. 65535."""
    m = _array(mtus, "mtus", np.uint32)
    if m.shape[0] != interfaces:
        raise ValueError(f"mtus: need {interfaces} rows, got {m.shape[0]}")
    if m.shape[0] and not ((m >= TUNNEL_MTU_MIN) & (m <= TUNNEL_MTU_MAX)).all():
        raise ValueError(f"mtus: each must be {TUNNEL_MTU_MIN}..{TUNNEL_MTU_MAX}, got {m.tolist()}")
    return m


def check_init(ncache: Any, capacity: Any, interfaces: Any) -> None:
    if isinstance(capacity, bool) or not isinstance(capacity, int) or not 1 <= capacity <= 1 << 20:
        raise ValueError(f"capacity: need an integer in 1..{1 << 20}, got {capacity!r}")
    if isinstance(interfaces, bool) or not isinstance(interfaces, int) or not 1 <= interfaces <= 4096:
        raise ValueError(f"interfaces: need an integer in 1..4096, got {interfaces!r}")


def check_ring(ring: Any, block_size: Any, block_nr: Any, cursor: Any, walk_out: Any, max_blocks: Any,
               per_frame: bool = False) -> tuple[np.ndarray, int, int, int, tuple[np.ndarray, ...], int]:
    """``Node.run_ring``'s ring arguments, or the error naming the first wrong one: the RX mapping (a writable,
    C-contiguous 1-D uint8 array), the block size (a multiple of 8 holding at least a 48-octet descriptor) and
    count (their product inside the mapping), the cursor (a block index), the walk's storage (five arrays as
    ``ring_walk_block``'s ``out``, each at least as long as the first, none sharing memory with another or the
    ring), ``max_blocks`` (1..block count).  ``per_frame``: a TPACKET_V2 ring, whose "blocks" are its slots
    (``block_size`` a multiple of 16 holding at least the 32-octet tpacket2_hdr)."""
    if not (isinstance(ring, np.ndarray) and ring.dtype == np.uint8 and ring.ndim == 1 and ring.flags.writeable
            and ring.flags.c_contiguous):
        raise TypeError("ring: need a writable, C-contiguous 1-D uint8 array")
    for name, v in (("block_size", block_size), ("block_nr", block_nr), ("cursor", cursor),
                    ("max_blocks", max_blocks)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{name}: need an integer, got {type(v).__name__}")
    bs, nr, cur, mb = int(block_size), int(block_nr), int(cursor), int(max_blocks)
    least = TPACKET2_HDR_LEN if per_frame else BLOCK_DESC_LEN
    if bs < least or bs % TPACKET_ALIGNMENT or nr < 1 or nr > ring.shape[0] // bs:
        unit = "slot" if per_frame else "block"
        raise ValueError(f"{nr} {unit}s of {bs} octets do not fit the {ring.shape[0]}-octet ring (a {unit}: a "
                         f"multiple of {TPACKET_ALIGNMENT}, at least {least} octets)")
    if not 0 <= cur < nr:
        raise ValueError(f"cursor: need a block index in 0..{nr - 1}, got {cur}")
    if not 1 <= mb <= nr:
        raise ValueError(f"max_blocks: need 1..{nr}, got {mb}")
    if not isinstance(walk_out, (tuple, list)) or len(walk_out) != 5 or not isinstance(walk_out[0], np.ndarray):
        raise TypeError("walk_out: need a tuple of five arrays (offsets, lengths, status, ts_ns, vlan_tci)")
    rows = int(walk_out[0].shape[0]) if walk_out[0].ndim == 1 else 0
    outs = check_walk_out(walk_out, max(rows, 1))
    # the walk writes the five while it reads the ring, and the node reads the first two back: none may be
    # another's memory (a frame's offset overwritten by its timestamp) or the ring's
    arrays = (ring, *outs)
    for i, a in enumerate(arrays):
        for b in arrays[i + 1:]:
            if np.may_share_memory(a, b):
                raise ValueError("walk_out: the five arrays must not share memory with each other or the ring")
    return ring, bs, nr, cur, outs, rows


def kick(fd: int) -> int:
    """Ask the kernel to send what a TX ring holds: ``send(fd, "", 0, MSG_DONTWAIT)`` on the ring's socket.
    Returns 0, or the errno of a failure other than "would block" (the kernel then sends what is queued as the
    device drains)."""
    try:
        s = socket.socket(fileno=fd)  # a descriptor that is no socket (or none): the send(2)'s own errno
    except OSError as exc:
        return exc.errno or _errno.EIO
    try:
        s.send(b"", socket.MSG_DONTWAIT)
    except BlockingIOError:
        return 0
    except OSError as exc:
        return exc.errno or _errno.EIO
    finally:
        s.detach()
    return 0


class Node:
    """The forwarding decisions of one block: see the module docstring.

    ``ncache`` is the router's NeighborCache (the node reads it), ``capacity`` the most frames one ``run``
    takes (the engine's batch size), ``interfaces`` the number of output interfaces (their MACs come from
    :meth:`set_interfaces`).
    """

    def __init__(self, ncache: Any, capacity: int, interfaces: int) -> None:
        check_init(ncache, capacity, interfaces)
        self.ncache = ncache
        self.capacity = capacity
        self.interfaces = interfaces
        n_entries = int(ncache.capacity)
        #: Handover columns, one row per neighbor entry: the buffer key of a PROXY / HOLD entry, the peer
        #: index of a TUNNEL entry (-1: none).  Written by the engine's handover hooks.
        self.entry_key = np.full(n_entries, -1, dtype=np.int32)
        self.entry_peer = np.full(n_entries, -1, dtype=np.int32)
        self.iface_mac = np.zeros((interfaces, 6), dtype=np.uint8)
        self._fib: Any = None
        self._route_if = np.zeros(0, dtype=np.int32)
        self._route_via = np.zeros((0, 16), dtype=np.uint8)
        self._route_has_via = np.zeros(0, dtype=np.uint8)
        self._peers: set[bytes] = set()
        self.action = np.zeros(capacity, dtype=np.uint8)
        self.aux = np.full(capacity, -1, dtype=np.int32)
        self.entry = np.full(capacity, -1, dtype=np.int64)
        self.out_if = np.full(capacity, -1, dtype=np.int32)
        self.next_hop = np.zeros((capacity, 16), dtype=np.uint8)
        self.tx_count = np.zeros(interfaces, dtype=np.int64)
        self.tx_offsets = np.zeros((interfaces, capacity), dtype=np.int64)
        self.tx_lengths = np.zeros((interfaces, capacity), dtype=np.uint32)
        self.stats = np.zeros(len(NODE_STATS), dtype=np.uint64)
        self._buffer: Any = None
        self._tunnel_src: np.ndarray | None = None  # None: the node does not tunnel (punts TUNNEL)
        self._tunnel_mtu = np.zeros(interfaces, dtype=np.uint32)
        self._tunnel_hop_limit = 64
        self._tunnel_peers = np.zeros((0, 16), dtype=np.uint8)
        self.tunnel_arena = np.zeros(1, dtype=np.uint8)
        self.tunnel_count = np.zeros(interfaces, dtype=np.int64)
        self.tunnel_offsets = np.zeros((interfaces, capacity), dtype=np.int64)
        self.tunnel_lengths = np.zeros((interfaces, capacity), dtype=np.uint32)
        self.decap_count = 0
        #: the TX rings the node fills, by interface: (ring, slot size, head cell) or None
        self._tx_rings: list[tuple[np.ndarray, int, np.ndarray] | None] = [None] * interfaces
        self.tx_queued = np.zeros(interfaces, dtype=np.int64)
        self.tunnel_queued = np.zeros(interfaces, dtype=np.int64)
        #: each output interface's MTU (:meth:`set_mtus`): a larger packet to forward is PACKET_TOO_BIG
        self.mtus = np.full(interfaces, TUNNEL_MTU_MAX, dtype=np.uint32)
        #: the sockets ``run_ring`` kicks, by interface (-1: none), and what it queued on each ring
        self._kick_fd = [-1] * interfaces
        self.ring_tx = np.zeros(interfaces, dtype=np.int64)
        self.decap_offsets = np.zeros(capacity, dtype=np.int64)
        self.decap_lengths = np.zeros(capacity, dtype=np.uint32)
        self.inner_action = np.zeros(capacity, dtype=np.uint8)
        self.inner_aux = np.full(capacity, -1, dtype=np.int32)
        self.inner_entry = np.full(capacity, -1, dtype=np.int64)
        self._codepoints = DEFAULT_CODEPOINTS
        self._cursor = 0
        # (frame, key, offset, length, inner?) to push into the buffer at the end of the block
        self._pending: list[tuple[int, int, int, int, bool]] = []
        self._last_peer = (-1, -1, -1)  # (peer index, output interface, next hop's entry) of the last tunnel

    # ---- tables
    def set_interfaces(self, macs: Any) -> None:
        """The MAC of each output interface, ``uint8[interfaces, 6]``."""
        m = _array(macs, "macs", np.uint8, (6,))
        if m.shape[0] != self.interfaces:
            raise ValueError(f"macs: need {self.interfaces} rows, got {m.shape[0]}")
        self.iface_mac[:] = m

    def set_routes(self, fib: Any, route_if: Any, route_via: Any, route_has_via: Any) -> None:
        """The FIB and its columns: a lookup's value ``k`` routes out of ``route_if[k]`` to ``route_via[k]``
        when ``route_has_via[k]``, else to the destination itself (on-link).  An interface outside
        0..interfaces-1 is a ``ValueError``."""
        ri, rv, rh = check_tables(fib, route_if, route_via, route_has_via, self.interfaces)
        self._fib = fib
        self._route_if, self._route_via, self._route_has_via = ri, rv, rh

    def set_peers(self, peers: Any) -> None:
        """The routers whose IPv6-in-IPv6 packets are decapsulated, ``uint8[p, 16]``."""
        p = _array(peers, "peers", np.uint8, (16,))
        self._peers = {bytes(row) for row in p}

    def set_buffer(self, buffer: Any) -> None:
        """The :class:`PacketBuffer` the node pushes BUFFER frames into (None: it punts them).  The node keeps
        a reference; the caller's thread is the buffer's only user (the engine's)."""
        if buffer is not None and type(buffer).__name__ != "PacketBuffer":
            raise TypeError(f"buffer: need a PacketBuffer, got {type(buffer).__name__}")
        self._buffer = buffer

    def set_tunnel(self, sources: Any, mtus: Any, *, hop_limit: int = 64) -> None:
        """Tunnel TUNNEL frames in the node: per output interface the outer source address
        (``uint8[interfaces, 16]``) and the MTU (``uint32[interfaces]``, 1280..65535), the outer hop limit.
        The tunnel arena is sized here: ``capacity * (14 + max(mtus))`` octets."""
        src, mtu, hlim = check_tunnel(sources, mtus, hop_limit, self.interfaces)
        self._tunnel_src, self._tunnel_mtu, self._tunnel_hop_limit = src, mtu, hlim
        self.tunnel_arena = np.zeros(self.capacity * (14 + int(mtu.max())), dtype=np.uint8)

    def set_codepoints(self, codepoints: Any) -> None:
        """The fmipfast codepoints the inner packets are classified with (``finish_inner``; default
        DEFAULT_CODEPOINTS): the engine gives the ones it classifies its blocks with."""
        self._codepoints = check_codepoints(codepoints)

    def set_tx_ring(self, iface: int, ring: Any, frame_size: int = 0, head: Any = None) -> None:
        """Fill interface ``iface``'s vectors straight into its TPACKET_V3 TX ring at the end of each run whose
        block leaves Python nothing to send first (only DROP, FORWARD, BUFFERED, TUNNELLED, DECAPPED): its
        tunnel vector, then its TX vector, each from its first frame, in order, until the ring is full or a
        frame does not fit a slot (``tunnel_queued[k]`` / ``tx_queued[k]`` frames; the caller kicks the ring
        and sends the rest through the ring's sender, which counts what does not fit).  ``ring`` (None:
        stop) is the TX ring's mapping, ``frame_size`` its slot size, ``head`` the one-element int64 cell
        holding the next slot, shared with that sender (a value outside the ring: the node fills nothing).
        The node keeps references to both; one thread (the engine's) uses them."""
        r, fs, h = check_tx_ring(iface, ring, frame_size, head, self.interfaces)
        self._tx_rings[int(iface)] = None if r is None or h is None else (r, fs, h)

    def _fill(self, k: int, src: np.ndarray, offsets: np.ndarray, lengths: np.ndarray) -> int:
        ring, fs, head = self._tx_rings[k]  # type: ignore[misc]
        h = int(head[0])
        if not 0 <= h < ring.shape[0] // fs or not offsets.shape[0]:
            return 0
        fits = lengths <= fs - TX_DATA_OFF
        m = int(offsets.shape[0]) if fits.all() else int(np.argmin(fits))  # up to the first that does not fit
        if not m:
            return 0
        _consumed, sent, head[0], _too_big = ring_tx_fill(ring, fs, h, src, offsets[:m], lengths[:m])
        return int(sent)

    def set_mtus(self, mtus: Any) -> None:
        """Each output interface's MTU (``uint32[interfaces]``, 1280..65535; 65535 until set): a packet to
        forward (its IPv6 header and payload) that is larger than its output interface's is PACKET_TOO_BIG,
        with that MTU as its aux -- the node never fragments (RFC 8200 §5) and Python originates the ICMPv6
        Packet Too Big (RFC 4443 §3.2)."""
        self.mtus = check_mtus(mtus, self.interfaces).copy()

    def set_tx_kick(self, iface: int, fd: int) -> None:
        """The socket of interface ``iface``'s TX ring (``set_tx_ring``), which ``run_ring`` kicks once it has
        queued frames on that ring (-1: none -- what it queues waits for the ring's next kick)."""
        check_tx_ring(iface, None, 0, None, self.interfaces)
        if isinstance(fd, bool) or not isinstance(fd, (int, np.integer)) or not -1 <= fd < 1 << 31:
            raise ValueError(f"fd: need a descriptor or -1, got {fd!r}")
        self._kick_fd[int(iface)] = int(fd)

    def set_tunnel_peers(self, peers: Any) -> None:
        """The NARs tunnels lead to, ``uint8[p, 16]``: row ``entry_peer[e]`` is the peer of TUNNEL entry ``e``."""
        self._tunnel_peers = _array(peers, "peers", np.uint8, (16,)).copy()

    # ---- the node
    def run(self, batch: Any, arena: Any, offsets: Any, lengths: Any, status: Any, iface: int, *,
            from_wire: bool = True, inner: bool = False, drops: Any = None, now_ns: Any = None,
            finish_inner: bool = False, counts: Any = None) -> int:
        """Decide and act on the ``n = len(offsets)`` frames ``batch`` classified; returns the action bit set.

        ``status`` (uint32[n], TPACKET status words) may be empty: no checksum completion.  ``drops`` (uint64,
        one row per DropReason) receives this block's drops; it defaults to a fresh array left in
        :attr:`last_drops`.  A block larger than ``capacity`` or the batch, arrays of the wrong type or shape,
        an ``iface`` outside the interfaces, or a frame outside the arena are a ``TypeError``/``ValueError``
        raised before anything is written; so is a missing ``now_ns`` (the buffer's clock) when the node has a
        buffer.  ``finish_inner``: finish the decapsulated inner packets the node can (see the module).
        ``counts`` (uint64, one row per :class:`~fmipfast.constants.EngineCounter`: the engine's ledger): the
        block's figures are added to it (:func:`book`), so the caller has nothing to add per block."""
        if self._fib is None:
            raise ValueError("run: set_routes() first")
        ar, off, ln, st, drops = check_run(batch, arena, offsets, lengths, status, iface, drops, self.capacity,
                                           self.interfaces)
        check_counts(counts)
        now = check_now(now_ns) if self._buffer is not None else 0
        if drops is None:
            drops = self.last_drops = np.zeros(len(DropReason), dtype=np.uint64)
        n = off.shape[0]
        self.stats[:] = 0
        self.tx_count[:] = 0
        self.tunnel_count[:] = 0
        self.decap_count = 0
        self._cursor = 0
        self._pending = []
        self._last_peer = (-1, -1, -1)
        self.stats[3] = n
        present = 0
        nc = self.ncache
        verdicts = np.asarray(batch.verdict)[:n]
        dst = np.ascontiguousarray(np.asarray(batch.dst)[:n], dtype=np.uint8)
        entries = np.asarray(nc.lookup(dst), dtype=np.int64) if n else np.zeros(0, dtype=np.int64)
        flags_col, states_col = np.asarray(nc.flags), np.asarray(nc.states)
        routes = np.asarray(self._fib.lookup(dst), dtype=np.int64) if n else np.zeros(0, dtype=np.int64)
        my_mac = bytes(self.iface_mac[iface])
        self._finish = bool(finish_inner)
        for i in range(n):
            action, aux = self._one(batch, ar, off, ln, st, i, int(verdicts[i]), int(entries[i]), int(routes[i]),
                                    flags_col, states_col, my_mac, from_wire, inner, drops)
            self.action[i] = action
            self.aux[i] = aux
            self.entry[i] = entries[i]
        if self._pending:
            self._push(ar, now, drops)
        for i in range(n):
            present |= 1 << int(self.action[i])
            if int(self.action[i]) == _A_DECAPPED:
                present |= 1 << int(self.inner_action[i])
        self.tx_queued[:] = 0
        self.tunnel_queued[:] = 0
        for k, tx_ring in enumerate(self._tx_rings):
            if tx_ring is not None and not present & _PYTHON_FIRST:
                t, m = int(self.tunnel_count[k]), int(self.tx_count[k])
                self.tunnel_queued[k] = self._fill(k, self.tunnel_arena, self.tunnel_offsets[k, :t],
                                                   self.tunnel_lengths[k, :t])
                self.tx_queued[k] = self._fill(k, ar, self.tx_offsets[k, :m], self.tx_lengths[k, :m])
        if counts is not None:
            book(counts, self.stats, inner)
        return present

    def run_block(self, batch: Any, arena: Any, offsets: Any, lengths: Any, status: Any, iface: int, *,
                  from_wire: bool = True, inner: bool = False, drops: Any = None, now_ns: Any = None,
                  finish_inner: bool = False, counts: Any = None) -> int:
        """``classify`` the block into ``batch`` (a Batch of at least ``len(offsets)`` rows; the codepoints of
        :meth:`set_codepoints`), then :meth:`run` it: one call per block.  The arguments are checked as
        ``run``'s, before anything is written (the batch's capacity bounds the block)."""
        if self._fib is None:
            raise ValueError("run: set_routes() first")
        if type(batch).__name__ != "Batch":
            raise TypeError(f"batch: need fmipfast._core.Batch, got {type(batch).__name__}")
        check_run(batch, arena, offsets, lengths, status, iface, drops, self.capacity, self.interfaces, block=True)
        check_counts(counts)
        classify(arena, offsets, lengths, codepoints=self._codepoints, out=batch)
        return self.run(batch, arena, offsets, lengths, status, iface, from_wire=from_wire, inner=inner, drops=drops,
                        now_ns=now_ns, finish_inner=finish_inner, counts=counts)

    def run_ring(self, batch: Any, ring: Any, block_size: int, block_nr: int, cursor: int, iface: int,
                 walk_out: Any, *, drops: Any, counts: Any, now_ns: Any = None, max_blocks: int = 1,
                 hold: bool = False, per_frame: bool = False,
                 ) -> tuple[int, int, int, int, int, int, int, int, int, int, int]:
        """Take the blocks a TPACKET_V3 RX ring (``ring``: its mapping, ``block_nr`` blocks of ``block_size``
        octets) holds for user space, from block ``cursor`` on, through the node, at most ``max_blocks`` of
        them: each block is walked into ``walk_out`` (:func:`ring_walk_block`'s ``out``; as many frames as its
        rows), then run in chunks of at most ``capacity`` frames as :meth:`run_block` runs a block from the
        wire (``finish_inner``); a chunk whose frames all end forwarded, tunnelled, buffered, decapsulated
        and finished, or dropped, and fit the TX rings (``set_tx_ring``), is done: each ring it queued frames
        on is kicked (``set_tx_kick``) and they are booked ``forwarded`` / ``tunnelled`` in ``counts`` (the
        engine's ledger; a failed kick books its ring's frames as INTERNAL_ERROR drops instead); a block whose
        chunks are all done is handed back to the kernel.  ``now_ns``: the buffer's clock for every chunk, or
        None to read CLOCK_MONOTONIC per chunk.  ``hold``: the caller has route-switch holds that a tunnel's
        delivery extends, so a chunk with DECAPPED frames is left to it.

        Returns ``(reason, cursor, blocks, frames, csum_not_ready, walked, start, stop, present, errno,
        err_iface)``: ``reason`` one of RING_IDLE, RING_LIMIT, RING_BLOCK, RING_CHUNK; ``cursor`` the block to
        read next (for RING_BLOCK and RING_CHUNK the block the node stopped at, not handed back); ``blocks``,
        ``frames``, ``csum_not_ready`` what the walks reported (the stopped RING_CHUNK block's included).  With
        RING_BLOCK the block at the cursor was not taken at all: its walk found an error, frames beyond the
        storage or a VLAN tag the kernel stripped, which the caller's usual path handles.  With RING_CHUNK the
        block at the cursor holds ``walked`` frames (their offsets .. vlan_tci in ``walk_out[:walked]``):
        those before ``start`` are done, the node ran frames ``start:stop`` -- its outputs and ``present``
        (its bit set of actions) are theirs, as after :meth:`run_block`, and the caller finishes them (with
        ``present`` 0 there is nothing to finish: a kick failed, ``errno`` on the ring of interface
        ``err_iface``) --, and the frames from ``stop`` on are the caller's too; it hands the block back to
        the kernel.  :attr:`ring_tx` holds, per interface, the frames this call queued on its TX ring.

        ``per_frame``: ``ring`` is a TPACKET_V2 RX ring of ``block_nr`` slots of ``block_size`` octets, each
        handed over by the kernel on its own; ``cursor`` is a slot, and each "block" above is the run of ready
        slots from it (:func:`ring_walk_frames`, at most as many as the walk storage's rows), handed back with
        :func:`ring_release_frames`.  With RING_CHUNK the run at the cursor is ``walked`` slots long; with
        RING_BLOCK its walk found a damaged slot or a stripped VLAN tag.

        The arguments are checked before anything is read (:func:`check_ring`, and :meth:`run`'s checks of the
        batch, the interface, ``drops`` and ``counts``)."""
        if self._fib is None:
            raise ValueError("run: set_routes() first")
        if type(batch).__name__ != "Batch":
            raise TypeError(f"batch: need fmipfast._core.Batch, got {type(batch).__name__}")
        rv, bs, nr, cur, outs, rows = check_ring(ring, block_size, block_nr, cursor, walk_out, max_blocks,
                                                 bool(per_frame))
        check_run(batch, rv, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.uint32),
                  np.zeros(0, dtype=np.uint32), iface, drops, self.capacity, self.interfaces, block=True)
        if drops is None:
            raise TypeError(f"drops: need a writable uint64 array of at least {len(DropReason)} rows")
        if counts is None:
            raise TypeError("counts: need the engine's counts, a uint64 array")
        check_counts(counts)
        now_fixed = None if now_ns is None or self._buffer is None else check_now(now_ns)
        cap = min(self.capacity, int(batch.capacity))
        self.ring_tx[:] = 0
        per_frame = bool(per_frame)
        blocks = frames = csum = 0
        for _ in range(operator.index(max_blocks)):
            off = cur * bs
            if per_frame:
                w = ring_walk_frames(rv, cur, bs, nr, max_frames=rows, out=outs)
                if not w["announced"]:
                    return (RING_IDLE, cur, blocks, frames, csum, 0, 0, 0, 0, 0, -1)
            else:
                if not ring_block_status(rv, off) & TP_STATUS_USER:
                    return (RING_IDLE, cur, blocks, frames, csum, 0, 0, 0, 0, 0, -1)
                w = ring_walk_block(rv, off, bs, max_frames=rows, out=outs)
            n = int(w["offsets"].shape[0])
            if w["error"] or w["dropped"] or bool((w["vlan_tci"] != _NO_TAG).any()):
                return (RING_BLOCK, cur, blocks, frames, csum, 0, 0, 0, 0, 0, -1)
            blocks += 1
            frames += n
            csum += int(w["csum_not_ready"])
            for start in range(0, n, cap):
                stop = min(start + cap, n)
                now = time.monotonic_ns() if now_fixed is None else now_fixed
                present = self.run_block(batch, rv, outs[0][start:stop], outs[1][start:stop], outs[2][start:stop],
                                         iface, from_wire=True, drops=drops, now_ns=now, finish_inner=True,
                                         counts=counts)
                if (present & _CALLER or (hold and present & _A_DECAPPED_BIT)
                        or bool((self.tx_queued != self.tx_count).any())
                        or bool((self.tunnel_queued != self.tunnel_count).any())):
                    return (RING_CHUNK, cur, blocks, frames, csum, n, start, stop, present, 0, -1)
                err, err_iface = self._kick_rings(drops, counts)
                if err:
                    return (RING_CHUNK, cur, blocks, frames, csum, n, start, stop, 0, err, err_iface)
            if per_frame:
                ring_release_frames(rv, cur, bs, nr, n)
                cur = (cur + n) % nr
            else:
                ring_release_block(rv, off)
                cur = (cur + 1) % nr
        return (RING_LIMIT, cur, blocks, frames, csum, 0, 0, 0, 0, 0, -1)

    def _kick_rings(self, drops: np.ndarray, counts: np.ndarray) -> tuple[int, int]:
        """Kick every ring the last chunk queued frames on and book them; the first failure's errno and
        interface (0, -1: none)."""
        first = (0, -1)
        for k in range(self.interfaces):
            t, q = int(self.tunnel_queued[k]), int(self.tx_queued[k])
            if not t + q:
                continue
            self.ring_tx[k] += t + q
            fd = self._kick_fd[k]
            err = kick(fd) if fd >= 0 else 0
            if err:
                drops[_R_INTERNAL_ERROR] += t + q
                counts[_C_DROPPED] += t + q
                if not first[0]:
                    first = (err, k)
            else:
                counts[_C_FORWARDED] += q
                counts[_C_TUNNELLED] += t
        return first

    def _push(self, ar: np.ndarray, now: int, drops: np.ndarray) -> None:
        """The block's BUFFER frames (a DECAPPED frame's inner packet at its outer frame's place) into the
        buffer, in block order, in one push; what it refuses (or evicts again within this push) is a drop by
        its status."""
        keys = np.array([p[1] for p in self._pending], dtype=np.int32)
        offsets = np.array([p[2] for p in self._pending], dtype=np.int64)
        lengths = np.array([p[3] for p in self._pending], dtype=np.uint32)
        status = self._buffer.push(keys, ar, offsets, lengths, now)
        for j, (i, _key, _o, _m, inner) in enumerate(self._pending):
            if int(status[j]):
                action, aux = self._drop(drops, int(status[j]))
                if inner:
                    self.inner_action[i], self.inner_aux[i], self.inner_entry[i] = action, aux, -1
                else:
                    self.action[i], self.aux[i] = action, aux
            else:
                self.stats[_S_BUFFERED] += 1

    def _decap(self, ar: np.ndarray, i: int, o: int, length: int, l3: int, l4: int,
               drops: np.ndarray) -> tuple[int, int]:
        """Decapsulate in place: the inner packet's frame starts 14 octets before it (see the module)."""
        if l4 < l3 + 40:  # not what classify passed: the batch is not this block's
            return self._drop(drops, int(DropReason.IP6_TRUNCATED))
        frame = np.ascontiguousarray(ar[o:o + length])
        d_arena, d_off, d_len, d_st = decapsulate(frame, np.zeros(1, np.int64), np.array([length], np.uint32),
                                                  np.array([l3], np.uint32), np.array([l4], np.uint32),
                                                  np.zeros(1, np.int64))
        if int(d_st[0]):
            return self._drop(drops, int(d_st[0]))
        start, size = o + l4 - 14, int(d_len[0])
        ar[start:start + size] = d_arena[int(d_off[0]):int(d_off[0]) + size]
        if self._finish and self._inner(ar, i, start, size, drops):
            return _A_DECAPPED, -1
        self.decap_offsets[self.decap_count] = start
        self.decap_lengths[self.decap_count] = size
        self.decap_count += 1
        return _A_DECAP, -1

    def _inner(self, ar: np.ndarray, i: int, start: int, size: int, drops: np.ndarray) -> bool:
        """Finish the inner packet of frame ``i`` (its frame at ``start``, ``size`` octets) if its action is
        one the node completes (True); else leave it untouched for Python's pass (False).  The lookups made
        for one left are made again by that pass (the neighbor cache counts them twice)."""
        b = classify(ar, np.array([start], np.int64), np.array([size], np.uint32), codepoints=self._codepoints)
        verdict, l3 = int(b.verdict[0]), int(b.l3_offset[0])
        entry = -1
        if verdict == int(Verdict.DROP):
            action, aux = self._drop(drops, int(b.drop_reason[0]))
        elif l3 < 14 or l3 + 40 > size:  # not what classify passes
            action, aux = self._drop(drops, int(DropReason.IP6_TRUNCATED))
        elif verdict not in (int(Verdict.FORWARD), int(Verdict.DECAP)):
            return False
        else:
            dst = bytes(np.asarray(b.dst[0]))
            key = np.frombuffer(dst, np.uint8).reshape(1, 16)
            e = int(self.ncache.lookup(key)[0])
            if e >= 0 and int(np.asarray(self.ncache.flags)[e]) & _F_LOCAL:
                return False
            route = int(np.asarray(self._fib.lookup(key))[0])
            if not_forwarded(bytes(np.asarray(b.src[0])), dst):
                action, aux = self._drop(drops, int(DropReason.ADDRESS_NOT_FORWARDED))
            else:
                action, aux, _out, _hop = self._transit(ar, start, size, l3, dst, int(b.hop_limit[0]), e, route,
                                                        False, drops)
            if action == _A_BUFFER and self._buffer is not None:
                action, aux = self._buffered(drops, i, start, size, aux, True)
            if action not in _FINISHED:
                return False
            if action != _A_DROP:
                entry = e
        self.inner_action[i], self.inner_aux[i], self.inner_entry[i] = action, aux, entry
        self.stats[_S_DECAPPED] += 1
        return True

    def _buffered(self, drops: np.ndarray, i: int, o: int, length: int, key: int,
                  inner: bool) -> tuple[int, int]:
        if self._buffer is None:
            return _A_BUFFER, key
        if key < 0:  # this handover does not buffer (the HI's U flag was clear)
            return self._drop(drops, int(DropReason.NOT_BUFFERED))
        if key >= int(self._buffer.max_keys):  # a column value outside the buffer: not the engine's
            return self._drop(drops, int(DropReason.INTERNAL_ERROR))
        self._pending.append((i, key, o, length, inner))
        return _A_BUFFERED, key

    def _tunnelled(self, drops: np.ndarray, ar: np.ndarray, o: int, length: int, l3: int, x: int) -> tuple[int, int]:
        if self._tunnel_src is None or not 0 <= x < self._tunnel_peers.shape[0]:
            return _A_TUNNEL, x
        peer = self._tunnel_peers[x]
        if self._last_peer[0] != x:  # the peer's route and next hop, looked up again when the peer changes
            out, k = -1, -1
            route = int(np.asarray(self._fib.lookup(peer.reshape(1, 16)))[0])
            if 0 <= route < self._route_if.shape[0]:
                out = int(self._route_if[route])
                hop = self._route_via[route] if self._route_has_via[route] else peer
                k = int(self.ncache.lookup(np.ascontiguousarray(hop).reshape(1, 16))[0])
                if k >= 0 and int(np.asarray(self.ncache.states)[k]) == _INCOMPLETE:
                    k = -1
            self._last_peer = (x, out, k)
        _x, out, k = self._last_peer
        if k < 0:
            return _A_TUNNEL, x
        frame = np.ascontiguousarray(ar[o:o + length])
        t_arena, t_off, t_len, t_st = encapsulate(
            frame, np.zeros(1, np.int64), np.array([length], np.uint32), np.array([l3], np.uint32),
            np.zeros(1, np.int64), self._tunnel_src[out], peer, np.asarray(self.ncache.macs[k]), self.iface_mac[out],
            hop_limit=self._tunnel_hop_limit, mtu=int(self._tunnel_mtu[out]))
        st = int(t_st[0])
        if st == int(DropReason.HOP_LIMIT_EXCEEDED):  # RFC 2473 §3.1: forwarded first, Time Exceeded is due
            return _A_TIME_EXCEEDED, -1
        inner_len = 40 + int.from_bytes(bytes(frame[l3 + 4:l3 + 6]), "big")
        if st == int(DropReason.FRAME_TOO_BIG) and inner_len > TUNNEL_MTU_MIN:
            # RFC 2473 §7.1 (b): Packet Too Big with the tunnel MTU (the link's less the outer header), at least
            # the minimum; a packet of at most the minimum would be fragmented: it is dropped
            return _A_PACKET_TOO_BIG, max(int(self._tunnel_mtu[out]) - 40, TUNNEL_MTU_MIN)
        if st:
            return self._drop(drops, st)
        size = int(t_len[0])
        c, at = int(self.tunnel_count[out]), self._cursor
        self.tunnel_arena[at:at + size] = t_arena[int(t_off[0]):int(t_off[0]) + size]
        self.tunnel_offsets[out, c] = at
        self.tunnel_lengths[out, c] = size
        self.tunnel_count[out] = c + 1
        self._cursor = at + size
        return _A_TUNNELLED, x

    def _drop(self, drops: np.ndarray, reason: int) -> tuple[int, int]:
        if not 0 <= reason < drops.shape[0]:  # a reason outside DropReason: not classify's output
            reason = int(DropReason.INTERNAL_ERROR)
        drops[reason] += 1
        self.stats[0] += 1
        return _A_DROP, reason

    def _one(self, b: Any, ar: np.ndarray, off: np.ndarray, ln: np.ndarray, st: np.ndarray, i: int, verdict: int,
             e: int, route: int, flags_col: np.ndarray, states_col: np.ndarray, my_mac: bytes, from_wire: bool,
             inner: bool, drops: np.ndarray) -> tuple[int, int]:
        self.out_if[i] = -1
        if verdict == int(Verdict.DROP):
            return self._drop(drops, int(b.drop_reason[i]))
        o, length = int(off[i]), int(ln[i])
        l3, l4, nh = int(b.l3_offset[i]), int(b.l4_offset[i]), int(b.next_header[i])
        if l3 < 14 or l3 + 40 > length:  # not what classify passed: the batch is not this block's
            return self._drop(drops, int(DropReason.IP6_TRUNCATED))
        group_frame = False
        if from_wire:
            eth_dst = bytes(np.asarray(b.eth_dst[i]))
            if not eth_dst[0] & 1 and eth_dst != my_mac:
                return self._drop(drops, int(DropReason.OTHER_HOST))
            if not inner and l3 != 14:  # VLAN tags: the router's links are untagged
                return self._drop(drops, int(DropReason.VLAN_TAGGED))
            group_frame = bool(eth_dst[0] & 1) and not inner
        if st.shape[0] and int(st[i]) & TP_STATUS_CSUMNOTREADY:
            self._complete_checksum(ar, o, length, l3, l4, nh, bytes(np.asarray(b.src[i])),
                                    bytes(np.asarray(b.dst[i])))
        if verdict == int(Verdict.CONTROL):
            return _A_CONTROL, -1
        if verdict not in (int(Verdict.FORWARD), int(Verdict.DECAP)):
            return _A_CONTROL, -1  # classify hands nothing else out; the control path counts what it is
        flags = int(flags_col[e]) if e >= 0 else 0
        if flags & _F_LOCAL:
            if verdict != int(Verdict.DECAP):
                return _A_CONTROL, -1
            if bytes(np.asarray(b.src[i])) not in self._peers:
                return self._drop(drops, int(DropReason.DECAP_NOT_FROM_PEER))
            return self._decap(ar, i, o, length, l3, l4, drops)
        # transit traffic (a tunnel packet for another router too) is forwarded -- unless a router never forwards it
        if not_forwarded(bytes(np.asarray(b.src[i])), bytes(np.asarray(b.dst[i]))):
            return self._drop(drops, int(DropReason.ADDRESS_NOT_FORWARDED))
        if group_frame:  # every router on the link would forward it
            return self._drop(drops, int(DropReason.LINK_MULTICAST_NOT_FORWARDED))
        action, aux, out, hop = self._transit(ar, o, length, l3, bytes(np.asarray(b.dst[i])), int(b.hop_limit[i]),
                                              e, route, from_wire and not inner and nh != _P_MH, drops)
        if action in (_A_FORWARD, _A_RESOLVE):
            self.out_if[i] = out
            self.next_hop[i] = np.frombuffer(hop, dtype=np.uint8)
        elif action == _A_BUFFER:
            return self._buffered(drops, i, o, length, aux, False)
        return action, aux

    def _transit(self, ar: np.ndarray, o: int, length: int, l3: int, dst: bytes, hop_limit: int, e: int, route: int,
                 hold_ok: bool, drops: np.ndarray) -> tuple[int, int, int, bytes]:
        """The action and aux of a frame (at ``o``) whose destination is not the router's, and for FORWARD and
        RESOLVE its output interface and next hop: TUNNEL entries are tunnelled, PROXY ones (HOLD ones when
        ``hold_ok``) are BUFFER (the caller buffers or punts), the rest is forwarded (rewrite, TX vector).  The
        caller has refused what a router never forwards (:func:`not_forwarded`)."""
        flags = int(np.asarray(self.ncache.flags)[e]) if e >= 0 else 0
        if flags & _F_TUNNEL:
            action, aux = self._tunnelled(drops, ar, o, length, l3, int(self.entry_peer[e]))  # a row per entry
            return action, aux, -1, b""
        if flags & _F_PROXY:
            return _A_BUFFER, int(self.entry_key[e]), -1, b""
        if flags & _F_HOLD and hold_ok:
            self.stats[1] += 1
            return _A_BUFFER, int(self.entry_key[e]), -1, b""
        via = False
        states_col = np.asarray(self.ncache.states)
        if e >= 0 and int(states_col[e]) != _INCOMPLETE:
            out, hop = int(self.ncache.ifindex[e]), dst
        elif 0 <= route < self._route_if.shape[0]:
            out = int(self._route_if[route])
            via = bool(self._route_has_via[route])
            hop = bytes(self._route_via[route]) if via else dst
        else:
            return _A_NO_ROUTE, -1, -1, b""
        if not 0 <= out < self.interfaces:
            return _A_NO_ROUTE, -1, -1, b""
        if hop_limit <= 1:
            return _A_TIME_EXCEEDED, -1, -1, b""
        if length - l3 > int(self.mtus[out]):  # a router never fragments (RFC 8200 §5)
            return _A_PACKET_TOO_BIG, int(self.mtus[out]), -1, b""
        k = e if not via and e >= 0 else int(self.ncache.lookup(np.frombuffer(hop, np.uint8).reshape(1, 16))[0])
        if k < 0 or int(states_col[k]) == _INCOMPLETE:
            return _A_RESOLVE, -1, out, hop
        ar[o:o + 6] = np.asarray(self.ncache.macs[k])
        ar[o + 6:o + 12] = self.iface_mac[out]
        ar[o + l3 + 7] -= 1
        c = int(self.tx_count[out])
        self.tx_offsets[out, c] = o
        self.tx_lengths[out, c] = length
        self.tx_count[out] = c + 1
        return _A_FORWARD, -1, out, hop

    def _complete_checksum(self, ar: np.ndarray, o: int, length: int, l3: int, l4: int, nh: int, src: bytes,
                           dst: bytes) -> None:
        field = CHECKSUM_FIELD.get(nh)
        if field is None or l4 == 0:
            return
        end = l3 + 40 + int.from_bytes(bytes(ar[o + l3 + 4:o + l3 + 6]), "big")
        if end > length or end - l4 < field + 2:
            return
        value = upper_layer_checksum(src, dst, nh, bytes(ar[o + l4:o + end]), field)
        ar[o + l4 + field] = value >> 8
        ar[o + l4 + field + 1] = value & 0xFF
        self.stats[2] += 1
