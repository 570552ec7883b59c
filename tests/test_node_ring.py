"""The forwarding node over a TPACKET_V3 RX ring (``Node.run_ring``): the compiled node against its pure-Python
reference on random rings (blocks the kernel or user space owns, frames of every kind, small chunks, TX rings
that fill up), the reference against the same ring driven block by block with ``ring_walk_block`` and
``run_block``, the ledger's conservation, the argument checks and the blocks left whole, and the kick of a real
TX ring on a veth pair (root) and of a descriptor where the kick fails."""

from __future__ import annotations

import errno
import os
import socket
import struct
import time
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fmipfast import reference as ref
from fmipfast.constants import Action, DropReason, EngineCounter, IpProto
from fmipfast.frames import build_ethernet, build_ipv6
from fmipfast.lab.namespaces.netns import Netns
from fmipfast.reference.node import NODE_STATS, RING_BLOCK, RING_CHUNK, RING_IDLE, RING_LIMIT
from fmipfast.rings import TP_STATUS_CSUMNOTREADY, PacketRing
from tests.conftest import HAVE_CORE, IMPLS
from tests.test_node import BUFFER_KEYS, MACS, OTHER_MAC, PEER, ROUTER, SOURCES, frame, handover_world, udp, world
from tests.test_rings import BLOCK, _raw, make_block, needs_root
from tests.test_rings import veth as veth  # noqa: F401  (the fixture)

if HAVE_CORE:
    from fmipfast import _core

needs_core = pytest.mark.skipif(not HAVE_CORE, reason="the compiled core is not built (FMIPFAST_PUREPYTHON=1 or "
                                                      "no extension): nothing to compare the reference with")

TP_STATUS_USER = 1
TP_STATUS_VLAN_VALID = 0x10
MAC_OFF = 82  # make_block's tp_mac
NO_TAG = 0xFFFFFFFF
#: the actions of a chunk run_ring finishes itself; any other stops it for the caller
DONE_ACTIONS = frozenset((Action.DROP, Action.FORWARD, Action.BUFFERED, Action.TUNNELLED, Action.DECAPPED))
#: the terms of the ledger's conservation: RECEIVED, and its dispositions FORWARDED..DROPPED
DISPOSITIONS = slice(int(EngineCounter.FORWARDED), int(EngineCounter.DROPPED) + 1)
#: destinations the world's tables forward: on-link on interface 0, via the router on interface 1, a host on
#: interface 2, via that host
FORWARDED_TO = ["2001:db8:1::10", "2001:db8:100::5", "2001:db8:1::16", "2001:db8:100:8000::5"]
#: TUNNEL entries whose NAR the node reaches (on-link on interface 0; through the router on interface 1)
TUNNELLED_TO = ["2001:db8:1::1b", "2001:db8:1::12"]
#: PROXY / HOLD entries: buffered with a buffer set
BUFFERED_TO = ["2001:db8:1::13", "2001:db8:1::1d", "2001:db8:1::15", "2001:db8:1::14"]


def _slot(n: int) -> int:
    """The octets a frame of ``n`` takes in make_block's layout (header, tp_mac, 8-aligned)."""
    return -(-(MAC_OFF + n) // 8) * 8


# ------------------------------------------------------------------------------------------ random rings


#: frames the node finishes itself (forwarded, tunnelled, buffered with a buffer set, a peer's tunnel it
#: decapsulates and finishes, drops), and frames that need the caller
_DONE_KINDS = ["fwd", "fwd", "fwd", "fwd", "tunnel", "proxy", "decap", "other_host", "mcast", "link_local"]
_ANY_KINDS = _DONE_KINDS + ["own", "no_route", "hop1", "garbage", "any", "any"]


@st.composite
def ring_frame(draw, iface, calm):
    """A frame as the wire brings it to interface ``iface``, with its TPACKET status word: mostly what the node
    finishes itself, also (unless ``calm``) what needs the caller (the router's own, no route, hop limit 1)
    and anything test_node's ``frame`` builds (garbage, VLAN tags in band, other MACs, multicast)."""
    kind = draw(st.sampled_from(_DONE_KINDS if calm else _ANY_KINDS))
    status = TP_STATUS_USER | draw(st.sampled_from([0, 0, TP_STATUS_CSUMNOTREADY]))
    src = SOURCES[0]
    payload = draw(st.binary(max_size=32))
    eth_dst = MACS[iface]
    if kind == "fwd":
        pkt = udp(src, draw(st.sampled_from(FORWARDED_TO)), draw(st.sampled_from([2, 64, 255])), payload)
    elif kind == "tunnel":
        pkt = udp(src, draw(st.sampled_from(TUNNELLED_TO)), 64, payload)
    elif kind == "proxy":
        pkt = udp(src, draw(st.sampled_from(BUFFERED_TO)), 64, payload)
    elif kind == "decap":
        pkt = build_ipv6(PEER, ROUTER, IpProto.IPV6, udp(src, draw(st.sampled_from(FORWARDED_TO)), 64, payload))
    elif kind == "other_host":
        pkt, eth_dst = udp(src, FORWARDED_TO[0], 64, payload), OTHER_MAC
    elif kind == "mcast":
        pkt, eth_dst = udp(src, FORWARDED_TO[0], 64, payload), b"\x33\x33\x00\x00\x00\x01"
    elif kind == "link_local":
        pkt = udp("fe80::1", FORWARDED_TO[0], 64, payload)
    elif kind == "own":
        pkt = udp(src, ROUTER, 64, payload)
    elif kind == "no_route":
        pkt = udp(src, "2001:db9::1", 64, payload)
    elif kind == "hop1":
        pkt = udp(src, FORWARDED_TO[0], 1, payload)
    elif kind == "garbage":
        return draw(st.binary(max_size=80)), status
    else:
        data, st_any = draw(frame())
        return data, TP_STATUS_USER | st_any
    return build_ethernet(eth_dst, bytes([2, 9, 9, 9, 9, 9]), pkt), status


@st.composite
def ring_block(draw, iface, calm):
    """One block: (owned by user space, [(frame, status)], damage), the frames cut to what fits BLOCK."""
    frames = draw(st.lists(ring_frame(iface, calm), max_size=24))
    kept, pos = [], 48
    for f, s in frames:
        if pos + _slot(len(f)) > BLOCK:
            break
        kept.append((f, s))
        pos += _slot(len(f))
    user = draw(st.sampled_from([True, True, True, False]))
    damage = draw(st.sampled_from([None] * 12 + ["blk_len", "next", "vlan"]))
    return user, kept, damage


def build_block(user: bool, frames: list[tuple[bytes, int]], damage: str | None, tci: int = 5) -> bytes:
    """make_block's block with each frame's own status word, then the damage: a blk_len past the block (a walk
    error), a first tp_next_offset not 8-aligned (a walk error), a TP_STATUS_VLAN_VALID tag on the last frame."""
    block = make_block([f for f, _ in frames])
    pos = 48
    for f, s in frames:
        struct.pack_into("=I", block, pos + 20, s)
        pos += _slot(len(f))
    if damage == "blk_len":
        struct.pack_into("=I", block, 20, BLOCK + 8)
    elif damage == "next" and len(frames) > 1:
        struct.pack_into("=I", block, 48, 4)
    elif damage == "vlan" and frames:
        last = pos - _slot(len(frames[-1][0]))
        struct.pack_into("=I", block, last + 20, frames[-1][1] | TP_STATUS_VLAN_VALID)
        struct.pack_into("=I", block, last + 32, tci)
    struct.pack_into("=I", block, 8, TP_STATUS_USER if user else 0)
    return bytes(block)


@st.composite
def tx_ring(draw, calm):
    """A TX ring for one interface, or None: (slots, slot size, slots the kernel still owns, head) -- few
    slots, so that the ring fills up; a head past the ring now and then (the node fills nothing).  ``calm``:
    always a ring, of room enough for a few chunks."""
    if calm:
        slots = draw(st.integers(8, 64))
        return slots, 2048, [], draw(st.integers(0, slots - 1))
    if draw(st.integers(0, 3)) == 0:
        return None
    slots = draw(st.integers(1, 16))
    return (slots, draw(st.sampled_from([256, 2048])), draw(st.lists(st.integers(0, slots - 1), max_size=3)),
            draw(st.sampled_from([0, 0, 0, 1, slots - 1, slots])))


@st.composite
def ring_world(draw):
    iface, calm = draw(st.integers(0, 2)), draw(st.booleans())
    blocks = draw(st.lists(ring_block(iface, calm), min_size=1, max_size=6))
    nr = len(blocks)
    return SimpleNamespace(
        iface=iface, blocks=blocks, nr=nr, cursor=draw(st.integers(0, nr - 1)),
        max_blocks=draw(st.integers(1, nr)), hold=draw(st.booleans()), node_cap=draw(st.integers(2, 8)),
        batch_cap=draw(st.integers(2, 8)), handover=draw(st.booleans()),
        rows=draw(st.sampled_from([257] * 5 + [1, 3, 8])), tail=draw(st.sampled_from([0, 0, 8, 100])),
        tx=[draw(tx_ring(calm)) for _ in range(3)])


def make_world(impl, spec):
    """test_node's world (tables, entries, peers) with a node of ``spec.node_cap`` frames, the handover world
    when asked, and the TX rings of ``spec.tx``; returns (node, neighbor cache, buffer, TX rings, head cells)."""
    sized = SimpleNamespace(NeighborCache=impl.NeighborCache, Fib=impl.Fib,
                            Node=lambda nc, _capacity, interfaces: impl.Node(nc, spec.node_cap, interfaces))
    nc, _fib, node = world(sized)
    buffer = handover_world(impl, node) if spec.handover else None
    rings, heads = [], []
    for k, t in enumerate(spec.tx):
        if t is None:
            rings.append(None)
            heads.append(None)
            continue
        slots, size, busy, head = t
        tx = np.zeros(slots * size, np.uint8)
        for b in busy:
            struct.pack_into("=I", tx, b * size + 20, 1)  # TP_STATUS_SEND_REQUEST: the kernel's still
        cell = np.array([head], np.int64)
        node.set_tx_ring(k, tx, size, cell)
        rings.append(tx)
        heads.append(cell)
    return node, nc, buffer, rings, heads


def ring_of(spec) -> np.ndarray:
    return np.frombuffer(b"".join(build_block(*b) for b in spec.blocks) + bytes(spec.tail), np.uint8).copy()


def walk_storage(rows: int) -> tuple[np.ndarray, ...]:
    return (np.full(rows, -7, np.int64), np.full(rows, 7, np.uint32), np.full(rows, 7, np.uint32),
            np.full(rows, -7, np.int64), np.full(rows, 7, np.uint32))


def now_of(spec):
    return 5_000 if spec.handover else None  # a buffer's clock is fixed; without one the node reads its own


def outputs(node, buffer, rings, heads, ring, drops, counts, nc) -> dict:
    out = {"ring": ring.tobytes(), "drops": drops.tolist(), "counts": (counts - 1000).tolist(),
           "ring_tx": np.asarray(node.ring_tx).tolist(),
           "tx_rings": [None if r is None else (r.tobytes(), int(h[0])) for r, h in zip(rings, heads)],
           "ncache": {k: v for k, v in nc.counters.items() if k != "max_probe"}}
    if buffer is not None:
        out["buffer"] = buffer.counters
        out["queued"] = {}
        for key in range(BUFFER_KEYS):
            arena, offs, lens = buffer.flush(key, 6_000)
            out["queued"][key] = [bytes(arena[o:o + m]) for o, m in zip(offs.tolist(), lens.tolist())]
    return out


def chunk_outputs(node, m: int) -> dict:
    """What the node left for the caller about the chunk it stopped at, as test_node's run_node reads it."""
    tunnel_arena = bytes(node.tunnel_arena)
    return {
        "action": node.action[:m].tolist(), "aux": node.aux[:m].tolist(), "entry": node.entry[:m].tolist(),
        "out_if": node.out_if[:m].tolist(),
        "next_hop": [bytes(node.next_hop[i]) for i in range(m) if node.out_if[i] >= 0],
        "inner": [(int(node.inner_action[i]), int(node.inner_aux[i]), int(node.inner_entry[i])) for i in range(m)
                  if node.action[i] == Action.DECAPPED],
        "tx": [(node.tx_offsets[k, :node.tx_count[k]].tolist(), node.tx_lengths[k, :node.tx_count[k]].tolist())
               for k in range(3)],
        "tunnel": [[tunnel_arena[o:o + n] for o, n in zip(node.tunnel_offsets[k, :node.tunnel_count[k]].tolist(),
                                                        node.tunnel_lengths[k, :node.tunnel_count[k]].tolist())]
                   for k in range(3)],
        "decap": [(int(node.decap_offsets[j]), int(node.decap_lengths[j])) for j in range(node.decap_count)],
        "stats": node.stats.tolist(), "tx_queued": node.tx_queued.tolist(),
        "tunnel_queued": node.tunnel_queued.tolist(),
    }


def run_ring(impl, spec):
    """``spec``'s ring through ``impl``'s node: its return, everything it wrote, the chunk it stopped at."""
    node, nc, buffer, rings, heads = make_world(impl, spec)
    ring = ring_of(spec)
    walk_out = walk_storage(spec.rows)
    drops = np.zeros(len(DropReason), np.uint64)
    counts = np.full(len(EngineCounter), 1000, np.uint64)  # the engine's ledger, already counting
    result = node.run_ring(impl.Batch(spec.batch_cap), ring, BLOCK, spec.nr, spec.cursor, spec.iface, walk_out,
                           drops=drops, counts=counts, now_ns=now_of(spec), max_blocks=spec.max_blocks,
                           hold=spec.hold)
    out = {"result": tuple(int(v) for v in result)}
    if result[0] == RING_CHUNK:
        walked = result[5]
        out["walk"] = [a[:walked].tolist() for a in walk_out]
        if result[8]:
            out["chunk"] = chunk_outputs(node, result[7] - result[6])
    out.update(outputs(node, buffer, rings, heads, ring, drops, counts, nc))
    return out, node


@needs_core
@settings(max_examples=600)
@given(ring_world())
def test_core_run_ring_equals_the_reference(spec):
    got, _ = run_ring(_core, spec)
    want, _ = run_ring(ref, spec)
    assert got == want


class Ledger:
    """What a naive drive of a ring accumulates chunk by chunk: the drops, the counts (from 1000, so that an
    underflow shows), the frames put in the TX rings."""

    def __init__(self) -> None:
        self.drops = np.zeros(len(DropReason), np.uint64)
        self.counts = np.full(len(EngineCounter), 1000, np.uint64)
        self.ring_tx = np.zeros(3, np.int64)

    def outputs(self, ring, rings, heads) -> dict:
        return {"ring": ring.tobytes(), "drops": self.drops.tolist(), "counts": (self.counts - 1000).tolist(),
                "ring_tx": self.ring_tx.tolist(),
                "tx_rings": [None if r is None else (r.tobytes(), int(h[0])) for r, h in zip(rings, heads)]}


def run_chunks(node, spec, ring, w, ledger: Ledger, stopped_here: bool, result) -> bool:
    """The reference's ``run_block`` over one walk's rows ``w``, a chunk of the node's capacity at a time: each
    chunk done (only the actions the node finishes, everything in the TX rings) and booked forwarded/tunnelled
    in ``ledger``; when ``run_ring`` stopped at a chunk of this walk (``stopped_here``), that chunk is not done
    and is the one ``result`` names.  True when it stopped there."""
    _reason, _cursor, _blocks, _frames, _csum, walked, start, stop, present, _err, _err_iface = result
    cap = min(spec.node_cap, spec.batch_cap)
    n = len(w["offsets"])
    for s in range(0, n, cap):
        e = min(s + cap, n)
        p = node.run_block(ref.Batch(cap), ring, w["offsets"][s:e], w["lengths"][s:e], w["status"][s:e],
                           spec.iface, from_wire=True, finish_inner=True, drops=ledger.drops, counts=ledger.counts,
                           now_ns=now_of(spec))
        actions = {Action(a) for a in range(12) if p >> a & 1}
        done = (actions <= DONE_ACTIONS and not (spec.hold and Action.DECAPPED in actions)
                and (node.tx_queued == node.tx_count).all() and (node.tunnel_queued == node.tunnel_count).all())
        if stopped_here and s == start:
            assert (not done, e, n, p) == (True, stop, walked, present)
            return True
        assert done, (s, actions)
        ledger.ring_tx += node.tx_queued + node.tunnel_queued
        ledger.counts[EngineCounter.FORWARDED] += np.uint64(node.tx_queued.sum())
        ledger.counts[EngineCounter.TUNNELLED] += np.uint64(node.tunnel_queued.sum())
    return False


def drive_naively(spec, result) -> dict:
    """The reference's ``ring_walk_block`` and ``run_block`` over ``spec``'s ring, a block and a chunk at a
    time, up to where ``run_ring`` said it stopped (``result``): each chunk before is done (only the actions the
    node finishes, everything in the TX rings) and is booked forwarded/tunnelled, each block before is handed
    back; the chunk ``run_ring`` stopped at is not done; the block at the cursor is the kernel's (RING_IDLE)
    or one its walk could not take whole (RING_BLOCK)."""
    reason, cursor, blocks, frames, csum, walked, start, stop, present, err, err_iface = result
    node, nc, buffer, rings, heads = make_world(ref, spec)
    ring = ring_of(spec)
    ledger = Ledger()
    cur, seen_frames, seen_csum = spec.cursor, 0, 0
    taken = blocks  # the blocks the walks reported: handed back, and the RING_CHUNK block
    for b in range(taken):
        off = cur * BLOCK
        assert ring[off + 8] & TP_STATUS_USER
        w = ref.ring_walk_block(ring, off, BLOCK, max_frames=spec.rows)
        assert w["error"] == 0 and w["dropped"] == 0 and (w["vlan_tci"] == NO_TAG).all()
        n = len(w["offsets"])
        seen_frames += n
        seen_csum += w["csum_not_ready"]
        stopped_here = reason == RING_CHUNK and b == taken - 1
        if run_chunks(node, spec, ring, w, ledger, stopped_here, result):
            break
        assert not stopped_here, "run_ring stopped at a chunk the block does not have"
        ref.ring_release_block(ring, off)
        cur = (cur + 1) % spec.nr
    assert (cur, seen_frames, seen_csum) == (cursor, frames, csum)
    if reason == RING_IDLE:
        assert not ring[cur * BLOCK + 8] & TP_STATUS_USER
    elif reason == RING_BLOCK:
        w = ref.ring_walk_block(ring, cur * BLOCK, BLOCK, max_frames=spec.rows)
        assert ring[cur * BLOCK + 8] & TP_STATUS_USER
        assert w["error"] or w["dropped"] or (w["vlan_tci"] != NO_TAG).any()
    elif reason == RING_LIMIT:
        assert blocks == spec.max_blocks
    return ledger.outputs(ring, rings, heads)


@pytest.mark.parametrize("impl", IMPLS)
@settings(max_examples=250)
@given(spec=ring_world())
def test_run_ring_is_the_blocks_walked_and_run_one_by_one(impl, spec):
    """run_ring (either implementation) leaves the RX ring, the TX rings, drops and the ledger as the
    reference's walk and run_block leave them chunk by chunk, and stops where that composition says."""
    got, _ = run_ring(impl, spec)
    want = drive_naively(spec, got["result"])
    assert {k: got[k] for k in want} == want


def undisposed(node, m: int) -> int:
    """Of a chunk of ``m`` frames the node ran: the packets received but not yet disposed of in the ledger --
    outer frames neither dropped, buffered nor decapsulated, inner packets neither dropped nor buffered."""
    outer = [Action(a) for a in node.action[:m]]
    inner = [Action(int(node.inner_action[i])) for i in range(m) if outer[i] == Action.DECAPPED]
    booked = {Action.DROP, Action.BUFFERED}
    return sum(a not in booked | {Action.DECAPPED} for a in outer) + sum(a not in booked for a in inner)


@pytest.mark.parametrize("impl", IMPLS)
@settings(max_examples=200)
@given(spec=ring_world())
def test_the_ledger_balances_at_every_return(impl, spec):
    """After RING_IDLE, RING_LIMIT or RING_BLOCK every packet received is forwarded, tunnelled, decapsulated,
    buffered or dropped; after RING_CHUNK the difference is exactly the chunk's packets left to the caller
    (at most the chunk: the rest of the block is not received yet)."""
    out, node = run_ring(impl, spec)
    reason, *_rest = out["result"]
    walked, start, stop, present = out["result"][5:9]
    counts = out["counts"]
    gap = counts[EngineCounter.RECEIVED] - sum(counts[DISPOSITIONS])
    if reason == RING_CHUNK and present:
        assert gap == undisposed(node, stop - start)
        assert 0 <= gap <= stop - start <= walked - start
    else:
        assert gap == 0
    received = counts[EngineCounter.RECEIVED] - counts[EngineCounter.RECEIVED_INNER]
    assert received == out["result"][3] - (walked - stop if reason == RING_CHUNK else 0)


# ------------------------------------------------------------------------------------------ edges


def _fwd(iface: int = 0, dst: str = FORWARDED_TO[0], payload: bytes = b"ring") -> bytes:
    return build_ethernet(MACS[iface], bytes([2, 9, 9, 9, 9, 9]), udp(SOURCES[0], dst, 64, payload))


def _dropped(payload: bytes = b"dropped") -> bytes:
    return build_ethernet(OTHER_MAC, bytes([2, 9, 9, 9, 9, 9]), udp(SOURCES[0], FORWARDED_TO[0], 64, payload))


def _plain(impl, capacity: int = 8):
    spec = SimpleNamespace(node_cap=capacity, handover=False, tx=[None, None, None])
    node, _nc, _buffer, _rings, _heads = make_world(impl, spec)
    return node


def _call(impl, node, ring, **kw):
    args = dict(batch=impl.Batch(8), ring=ring, block_size=BLOCK, block_nr=ring.shape[0] // BLOCK, cursor=0,
                iface=0, walk_out=walk_storage(BLOCK // 16 + 1), drops=np.zeros(len(DropReason), np.uint64),
                counts=np.zeros(len(EngineCounter), np.uint64), max_blocks=1)
    args.update(kw)
    return node.run_ring(args.pop("batch"), args.pop("ring"), args.pop("block_size"), args.pop("block_nr"),
                         args.pop("cursor"), args.pop("iface"), args.pop("walk_out"), **args), args


def _readonly(a: np.ndarray) -> np.ndarray:
    a = a.copy()
    a.flags.writeable = False
    return a


BAD_ARGUMENTS = [  # (what, keyword changes given the ring, exception, message)
    ("ring uint16", lambda r: {"ring": r.view(np.uint16)}, TypeError, "ring"),
    ("ring read-only", lambda r: {"ring": _readonly(r)}, TypeError, "ring"),
    ("ring 2-D", lambda r: {"ring": r.reshape(2, -1)}, TypeError, "ring"),
    ("ring a bytearray", lambda r: {"ring": bytearray(r.tobytes())}, TypeError, "ring"),
    ("block_size not a multiple of 8", lambda r: {"block_size": BLOCK - 4, "block_nr": 1}, ValueError, "blocks of"),
    ("block_size under 48", lambda r: {"block_size": 40, "block_nr": 1}, ValueError, "blocks of"),
    ("block_size a bool", lambda r: {"block_size": True}, TypeError, "block_size"),
    ("blocks past the ring", lambda r: {"block_nr": 3}, ValueError, "blocks of"),
    ("no blocks", lambda r: {"block_nr": 0}, ValueError, "blocks of"),
    ("cursor -1", lambda r: {"cursor": -1}, ValueError, "cursor"),
    ("cursor == block_nr", lambda r: {"cursor": 2}, ValueError, "cursor"),
    ("cursor a float", lambda r: {"cursor": 0.0}, TypeError, "cursor"),
    ("max_blocks 0", lambda r: {"max_blocks": 0}, ValueError, "max_blocks"),
    ("max_blocks > block_nr", lambda r: {"max_blocks": 3}, ValueError, "max_blocks"),
    ("walk_out four arrays", lambda r: {"walk_out": walk_storage(8)[:4]}, TypeError, "walk_out"),
    ("walk_out not arrays", lambda r: {"walk_out": ([0] * 8,) * 5}, TypeError, "walk_out"),
    ("walk_out offsets int32", lambda r: {"walk_out": (np.zeros(8, np.int32),) + walk_storage(8)[1:]},
     TypeError, "out offsets"),
    ("walk_out status uint64", lambda r: {"walk_out": walk_storage(8)[:2] + (np.zeros(8, np.uint64),)
                                          + walk_storage(8)[3:]}, TypeError, "out status"),
    ("walk_out 0 rows", lambda r: {"walk_out": walk_storage(0)}, ValueError, "at least 1 rows"),
    ("walk_out a short column", lambda r: {"walk_out": walk_storage(8)[:4] + (np.zeros(4, np.uint32),)},
     ValueError, "out vlan_tci"),
    ("drops None", lambda r: {"drops": None}, TypeError, "drops"),
    ("drops int64", lambda r: {"drops": np.zeros(len(DropReason), np.int64)}, TypeError, "drops"),
    ("counts None", lambda r: {"counts": None}, TypeError, "counts"),
    ("counts short", lambda r: {"counts": np.zeros(3, np.uint64)}, TypeError, "counts"),
    ("batch not a Batch", lambda r: {"batch": object()}, TypeError, "batch"),
    ("iface 3", lambda r: {"iface": 3}, ValueError, "iface"),
    ("iface -1", lambda r: {"iface": -1}, ValueError, "iface"),
]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("what, change, exc, match", BAD_ARGUMENTS, ids=[b[0] for b in BAD_ARGUMENTS])
def test_wrong_arguments_are_refused_before_anything_is_read(impl, what, change, exc, match):
    """Each wrong argument is the same exception with the same message in both implementations (both raise
    what the reference's checks say), and nothing is written: the ring's blocks, drops, counts, the cursor."""
    ring = np.frombuffer(make_block([_fwd(), _dropped()]) + make_block([_dropped()]), np.uint8).copy()
    before = ring.tobytes()
    node = _plain(impl)
    drops, counts = np.zeros(len(DropReason), np.uint64), np.zeros(len(EngineCounter), np.uint64)
    kw = {"drops": drops, "counts": counts} | change(ring)
    with pytest.raises(exc, match=match):
        _call(impl, node, ring, **kw)
    assert ring.tobytes() == before and not drops.any() and not counts.any()
    assert not np.asarray(node.ring_tx).any()


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("now_ns", [-1, 1 << 63, True, "5000"])
def test_a_buffers_clock_out_of_range_is_refused(impl, now_ns):
    """With a buffer, ``now_ns`` is its clock: one out of range is the reference's ValueError, nothing read;
    without a buffer it is not used."""
    ring = np.frombuffer(make_block([_fwd(0, BUFFERED_TO[0])]), np.uint8).copy()
    spec = SimpleNamespace(node_cap=8, handover=True, tx=[None, None, None])
    node, _nc, _buffer, _rings, _heads = make_world(impl, spec)
    counts = np.zeros(len(EngineCounter), np.uint64)
    with pytest.raises(ValueError, match="now_ns"):
        _call(impl, node, ring, counts=counts, now_ns=now_ns)
    assert ring[8] == TP_STATUS_USER and not counts.any()
    ring = np.frombuffer(make_block([_dropped()]), np.uint8).copy()
    result, _ = _call(impl, _plain(impl), ring, counts=counts, now_ns=now_ns)
    assert result[0] == RING_LIMIT and counts[EngineCounter.DROPPED] == 1


@pytest.mark.parametrize("impl", IMPLS)
def test_the_densest_block_a_walk_can_meet(impl):
    """Frame headers 16 octets apart (each one's tp_mac where the next one's tp_nsec is: the closest a valid
    tp_next_offset can put them), all the block holds: walked whole into storage of block_size // 16 + 1 rows
    or more, each frame a drop (too short); into fewer rows, the block is left whole."""
    block = bytearray(BLOCK)
    pos, n = 48, 0
    while pos + 16 + 48 <= BLOCK:  # each header: next 16, status USER, mac 48, snaplen 0
        struct.pack_into("=IIII", block, pos, 16, 1, 48, 0)
        pos += 16
        n += 1
    struct.pack_into("=IIIIIIH", block, pos, 0, 1, 48, 0, 0, 1, 48)  # the last one: a whole header
    n += 1
    struct.pack_into("=IIIIII", block, 0, 3, 0, TP_STATUS_USER, n, 48, BLOCK)
    for rows, want in ((BLOCK // 16 + 1, (RING_LIMIT, 0, 1, n, 0, 0, 0, 0, 0, 0, -1)), (5000, None),
                       (n, None), (n - 1, (RING_BLOCK, 0, 0, 0, 0, 0, 0, 0, 0, 0, -1))):
        ring = np.frombuffer(bytes(block), np.uint8).copy()
        drops, counts = np.zeros(len(DropReason), np.uint64), np.zeros(len(EngineCounter), np.uint64)
        result, _ = _call(impl, _plain(impl), ring, walk_out=walk_storage(rows), drops=drops, counts=counts)
        assert result == (want or (RING_LIMIT, 0, 1, n, 0, 0, 0, 0, 0, 0, -1)), rows
        if result[0] == RING_LIMIT:
            assert counts[EngineCounter.RECEIVED] == counts[EngineCounter.DROPPED] == drops.sum() == n


@pytest.mark.parametrize("impl", IMPLS)
def test_a_node_without_routes_refuses_the_ring(impl):
    nc = impl.NeighborCache(8, seed=bytes(16))
    ring = np.frombuffer(make_block([_fwd()]), np.uint8).copy()
    with pytest.raises(ValueError, match="set_routes"):
        _call(impl, impl.Node(nc, 8, 3), ring)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("fd, exc", [(-2, ValueError), (True, ValueError), (2**31, ValueError), (1.0, ValueError),
                                     ("3", ValueError)])
def test_set_tx_kick_takes_a_descriptor_or_minus_one(impl, fd, exc):
    node = _plain(impl)
    with pytest.raises(exc, match="fd"):
        node.set_tx_kick(0, fd)
    with pytest.raises(ValueError, match="iface"):
        node.set_tx_kick(3, -1)
    node.set_tx_kick(0, -1)
    node.set_tx_kick(2, 2**31 - 1)


def _left_whole(impl, bad: bytes, *, rows: int = BLOCK // 16 + 1):
    """A good block of drops, then ``bad``: from the bad block, RING_BLOCK and nothing written; from the good
    one, it is done and handed back, and the node stops at the bad one untouched."""
    good = bytes(make_block([_dropped(b"a"), _dropped(b"b")]))
    ring = np.frombuffer(good + bad, np.uint8).copy()
    node = _plain(impl)
    drops, counts = np.zeros(len(DropReason), np.uint64), np.zeros(len(EngineCounter), np.uint64)
    before = ring.tobytes()
    result, _ = _call(impl, node, ring, cursor=1, max_blocks=2, drops=drops, counts=counts,
                      walk_out=walk_storage(rows))
    assert result == (RING_BLOCK, 1, 0, 0, 0, 0, 0, 0, 0, 0, -1)
    assert ring.tobytes() == before and not drops.any() and not counts.any()
    result, _ = _call(impl, node, ring, cursor=0, max_blocks=2, drops=drops, counts=counts,
                      walk_out=walk_storage(rows))
    assert result == (RING_BLOCK, 1, 1, 2, 0, 0, 0, 0, 0, 0, -1)
    assert ring[8] == 0 and ring.tobytes()[BLOCK:] == bad  # the good block handed back, the bad one untouched
    assert drops[DropReason.OTHER_HOST] == 2 and counts[EngineCounter.RECEIVED] == 2
    assert counts[EngineCounter.DROPPED] == 2


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("damage", ["blk_len", "next"])
def test_a_block_the_walk_refuses_is_left_whole(impl, damage):
    _left_whole(impl, build_block(True, [(_fwd(), 1), (_fwd(), 1), (_fwd(), 1)], damage))


@pytest.mark.parametrize("impl", IMPLS)
def test_a_block_of_more_frames_than_the_walk_storage_is_left_whole(impl):
    _left_whole(impl, build_block(True, [(_dropped(), 1)] * 4, None), rows=3)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("tci", [0, 5, 0xFFF])
def test_a_block_with_a_tag_the_kernel_stripped_is_left_whole(impl, tci):
    _left_whole(impl, build_block(True, [(_dropped(), 1)] * 3, "vlan", tci))


@pytest.mark.parametrize("impl", IMPLS)
def test_an_empty_block_is_handed_back_and_skipped_and_a_kernel_block_stops(impl):
    ring = np.frombuffer(make_block([]) + make_block([_dropped()]) + build_block(False, [(_dropped(), 1)], None),
                         np.uint8).copy()
    node = _plain(impl)
    drops, counts = np.zeros(len(DropReason), np.uint64), np.zeros(len(EngineCounter), np.uint64)
    result, _ = _call(impl, node, ring, max_blocks=3, drops=drops, counts=counts)
    assert result == (RING_IDLE, 2, 2, 1, 0, 0, 0, 0, 0, 0, -1)
    assert ring[8] == ring[BLOCK + 8] == 0 and counts[EngineCounter.RECEIVED] == counts[EngineCounter.DROPPED] == 1
    # an empty block alone, the limit one block: handed back, the cursor past it (wrapping round)
    ring = np.frombuffer(make_block([]), np.uint8).copy()
    result, _ = _call(impl, node, ring, max_blocks=1, drops=drops, counts=counts)
    assert result == (RING_LIMIT, 0, 1, 0, 0, 0, 0, 0, 0, 0, -1) and ring[8] == 0


@pytest.mark.parametrize("impl", IMPLS)
def test_a_chunk_for_the_caller_keeps_the_block(impl):
    """Capacity 2: the first chunk is dropped (done), the second holds a frame for the router (CONTROL): the
    node stops there, the block is not handed back, the walk's rows are the block's frames, the chunk's
    outputs are the node's."""
    frames = [_dropped(b"1"), _dropped(b"2"), _fwd(0, str(ROUTER)), _dropped(b"3"), _dropped(b"4")]
    ring = np.frombuffer(make_block(frames), np.uint8).copy()
    node = _plain(impl, capacity=2)
    walk_out = walk_storage(16)
    drops, counts = np.zeros(len(DropReason), np.uint64), np.zeros(len(EngineCounter), np.uint64)
    result, _ = _call(impl, node, ring, walk_out=walk_out, drops=drops, counts=counts)
    assert result == (RING_CHUNK, 0, 1, 5, 0, 5, 2, 4, (1 << Action.CONTROL) | (1 << Action.DROP), 0, -1)
    assert ring[8] == TP_STATUS_USER
    assert [ring[o:o + n].tobytes() for o, n in zip(walk_out[0][:5], walk_out[1][:5])] == frames
    assert node.action[:2].tolist() == [Action.CONTROL, Action.DROP]
    assert counts[EngineCounter.RECEIVED] == 4 and counts[EngineCounter.DROPPED] == 3 and drops.sum() == 3


def _rings_everywhere(impl, *, handover: bool, capacity: int = 8):
    spec = SimpleNamespace(node_cap=capacity, handover=handover, tx=[(16, 2048, [], 0)] * 3)
    node, _nc, _buffer, _rings, _heads = make_world(impl, spec)
    return node


@pytest.mark.parametrize("impl", IMPLS)
def test_the_node_finishes_tunnelled_buffered_and_decapsulated_frames_itself(impl):
    """With a buffer, a tunnel and every interface on a TX ring, one block of a frame for a TUNNEL entry, one
    for a PROXY entry, a peer's tunnel and a plain one is done: booked tunnelled, buffered, decapsulated and
    forwarded (the inner packet too), the block handed back."""
    inner = udp(SOURCES[0], FORWARDED_TO[1], 64, b"inner")
    frames = [_fwd(0, TUNNELLED_TO[0]), _fwd(0, BUFFERED_TO[0]),
              build_ethernet(MACS[0], bytes([2, 9, 9, 9, 9, 9]), build_ipv6(PEER, ROUTER, IpProto.IPV6, inner)),
              _fwd(0, FORWARDED_TO[2])]
    ring = np.frombuffer(make_block(frames), np.uint8).copy()
    node = _rings_everywhere(impl, handover=True)
    drops, counts = np.zeros(len(DropReason), np.uint64), np.zeros(len(EngineCounter), np.uint64)
    result, _ = _call(impl, node, ring, drops=drops, counts=counts, now_ns=5_000)
    assert result == (RING_LIMIT, 0, 1, 4, 0, 0, 0, 0, 0, 0, -1) and ring[8] == 0
    c = {e.name: int(counts[e]) for e in EngineCounter if counts[e]}
    assert c == {"RECEIVED": 5, "RECEIVED_INNER": 1, "DECAPSULATED": 1, "TUNNELLED": 1, "BUFFERED": 1,
                 "FORWARDED": 2}
    assert int(np.asarray(node.ring_tx).sum()) == 3 and not drops.any()


@pytest.mark.parametrize("impl", IMPLS)
def test_hold_leaves_a_chunk_with_a_finished_tunnel_to_the_caller(impl):
    """``hold``: a chunk with a DECAPPED frame stops the node (the caller's route-switch holds); the chunk
    before it is done."""
    inner = udp(SOURCES[0], FORWARDED_TO[0], 64, b"inner")
    frames = [_fwd(0), _fwd(0),
              build_ethernet(MACS[0], bytes([2, 9, 9, 9, 9, 9]), build_ipv6(PEER, ROUTER, IpProto.IPV6, inner))]
    finished = (1 << Action.DECAPPED) | (1 << Action.FORWARD)  # the inner packet's action is present too
    for hold, want in ((False, (RING_LIMIT, 0, 1, 3, 0, 0, 0, 0, 0, 0, -1)),
                       (True, (RING_CHUNK, 0, 1, 3, 0, 3, 2, 3, finished, 0, -1))):
        ring = np.frombuffer(make_block(frames), np.uint8).copy()
        node = _rings_everywhere(impl, handover=False, capacity=2)
        counts = np.zeros(len(EngineCounter), np.uint64)
        result, _ = _call(impl, node, ring, counts=counts, hold=hold)
        assert result == want
        assert np.asarray(node.ring_tx).tolist() == [3 - hold, 0, 0]
        assert counts[EngineCounter.FORWARDED] == 3 - hold and counts[EngineCounter.DECAPSULATED] == 1
        if hold:
            assert node.action[0] == Action.DECAPPED and node.inner_action[0] == Action.FORWARD
            assert (node.tx_count[0], node.tx_queued[0]) == (1, 1)  # queued, not kicked nor booked


# ------------------------------------------------------------------------------------------ the kick


def _kick_world(impl, fd: int, *, slots: int = 16):
    """Capacity 2, interface 0 on a TX ring of ``slots`` slots kicked through ``fd``, a block of five frames
    forwarded out of interface 0."""
    spec = SimpleNamespace(node_cap=2, handover=False, tx=[(slots, 256, [], 0), None, None])
    node, _nc, _buffer, rings, heads = make_world(impl, spec)
    node.set_tx_kick(0, fd)
    frames = [_fwd(0, FORWARDED_TO[0], bytes([k]) * 10) for k in range(5)]
    ring = np.frombuffer(make_block(frames), np.uint8).copy()
    drops, counts = np.zeros(len(DropReason), np.uint64), np.zeros(len(EngineCounter), np.uint64)
    result, _ = _call(impl, node, ring, drops=drops, counts=counts)
    return result, node, ring, rings[0], heads[0], drops, counts


def _failed_kick(impl, fd: int) -> dict:
    result, node, ring, tx, head, drops, counts = _kick_world(impl, fd)
    return {"result": result, "ring": ring.tobytes(), "tx": tx.tobytes(), "head": int(head[0]),
            "drops": drops.tolist(), "counts": counts.tolist(), "ring_tx": np.asarray(node.ring_tx).tolist()}


def _check_failed_kick(out: dict, err: int) -> None:
    """The first chunk's two frames were queued, the kick failed: RING_CHUNK at the block, present 0, the
    errno and interface, the frames INTERNAL_ERROR drops, the ledger balanced, the block still user space's."""
    assert out["result"] == (RING_CHUNK, 0, 1, 5, 0, 5, 0, 2, 0, err, 0)
    assert out["ring_tx"] == [2, 0, 0] and out["head"] == 2
    drops, counts = out["drops"], out["counts"]
    assert drops[DropReason.INTERNAL_ERROR] == 2 and sum(drops) == 2
    assert counts[EngineCounter.RECEIVED] == counts[EngineCounter.DROPPED] == 2
    assert counts[EngineCounter.FORWARDED] == 0 and sum(counts[DISPOSITIONS]) == 2
    assert out["ring"][8] == TP_STATUS_USER


@pytest.mark.parametrize("impl", IMPLS)
def test_a_failed_kick_books_the_queued_frames_as_internal_errors(impl):
    """An unconnected UDP socket: send() of nothing fails with EDESTADDRREQ."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        _check_failed_kick(_failed_kick(impl, s.fileno()), errno.EDESTADDRREQ)


@needs_core
def test_a_failed_kick_is_the_same_in_both():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        assert _failed_kick(_core, s.fileno()) == _failed_kick(ref, s.fileno())


@pytest.mark.parametrize("impl", IMPLS)
def test_a_kick_that_succeeds_books_the_frames_forwarded(impl):
    """A connected UDP socket takes send() of nothing: every chunk is done and booked, the block handed
    back; with a ring too small for the second chunk, the node stops there with the frames left in order."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        sink.bind(("127.0.0.1", 0))
        s.connect(sink.getsockname())  # a listener: no ICMP error comes back to fail a later send
        result, node, ring, tx, head, drops, counts = _kick_world(impl, s.fileno())
        assert result == (RING_LIMIT, 0, 1, 5, 0, 0, 0, 0, 0, 0, -1)
        assert ring[8] == 0 and int(head[0]) == 5 and np.asarray(node.ring_tx).tolist() == [5, 0, 0]
        assert counts[EngineCounter.FORWARDED] == counts[EngineCounter.RECEIVED] == 5 and not drops.any()
        result, node, ring, tx, head, drops, counts = _kick_world(impl, s.fileno(), slots=3)
        assert result[:9] == (RING_CHUNK, 0, 1, 5, 0, 5, 2, 4, 1 << Action.FORWARD)
        assert (node.tx_count[0], node.tx_queued[0]) == (2, 1)
        assert np.asarray(node.ring_tx).tolist() == [2, 0, 0] and counts[EngineCounter.FORWARDED] == 2


@pytest.mark.parametrize("impl", IMPLS)
def test_a_failed_kick_on_one_ring_leaves_the_others_booked(impl):
    """A chunk queued on interfaces 0 and 1: every ring is kicked; a ring whose kick succeeds is booked
    forwarded, one whose kick fails INTERNAL_ERROR drops; the first failure is the one reported."""
    frames = [_fwd(0, FORWARDED_TO[0], b"a"), _fwd(0, FORWARDED_TO[1], b"b"), _fwd(0, FORWARDED_TO[0], b"c"),
              _fwd(0, FORWARDED_TO[1], b"d")]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as ok, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as bad, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as bad2:
        sink.bind(("127.0.0.1", 0))
        ok.connect(sink.getsockname())
        for fds, want_err, want_if, forwarded in (((ok, bad), errno.EDESTADDRREQ, 1, 2),
                                                  ((bad, bad2), errno.EDESTADDRREQ, 0, 0)):
            node = _rings_everywhere(impl, handover=False, capacity=4)
            node.set_tx_kick(0, fds[0].fileno())
            node.set_tx_kick(1, fds[1].fileno())
            ring = np.frombuffer(make_block(frames), np.uint8).copy()
            drops, counts = np.zeros(len(DropReason), np.uint64), np.zeros(len(EngineCounter), np.uint64)
            result, _ = _call(impl, node, ring, drops=drops, counts=counts)
            assert result == (RING_CHUNK, 0, 1, 4, 0, 4, 0, 4, 0, want_err, want_if)
            assert np.asarray(node.ring_tx).tolist() == [2, 2, 0]
            assert counts[EngineCounter.FORWARDED] == forwarded
            assert drops[DropReason.INTERNAL_ERROR] == counts[EngineCounter.DROPPED] == 4 - forwarded
            assert counts[EngineCounter.RECEIVED] == sum(counts[DISPOSITIONS]) == 4


_NOT_A_SOCKET = [pytest.param(ref, id="py")]
if HAVE_CORE:
    _NOT_A_SOCKET.append(pytest.param(_core, id="c"))


@pytest.mark.parametrize("impl", _NOT_A_SOCKET)
@pytest.mark.parametrize("what", ["pipe", "closed"])
def test_a_kick_on_a_descriptor_that_is_no_socket_is_a_failed_kick(impl, what):
    """A pipe (ENOTSOCK) or a closed descriptor (EBADF): a failed kick like any other, never an exception."""
    r, w = os.pipe()
    if what == "closed":
        os.close(r)
        os.close(w)
    try:
        _check_failed_kick(_failed_kick(impl, w), errno.ENOTSOCK if what == "pipe" else errno.EBADF)
    finally:
        if what == "pipe":
            os.close(r)
            os.close(w)


@needs_root
@pytest.mark.parametrize("impl", IMPLS)
def test_run_ring_kicks_a_real_tx_ring(impl, veth: Netns):
    """A PacketRing's TX ring on one end of a veth pair given to the node with its socket: the frames of an
    RX block routed out of that interface arrive on the other end, rewritten, without anyone else sending."""
    with veth.enter():
        with PacketRing("va", rx_block_size=1 << 16, rx_block_nr=2, rx_timeout_ms=5, tx_frame_nr=64) as tx_ring:
            spec = SimpleNamespace(node_cap=4, handover=False, tx=[None, None, None])
            node, nc, _buffer, _rings, _heads = make_world(impl, spec)
            node.set_tx_ring(0, tx_ring.tx, tx_ring.tx_frame_size, tx_ring.tx_head)
            node.set_tx_kick(0, tx_ring.sock.fileno())
            frames = [_fwd(0, FORWARDED_TO[0], b"over the veth %d" % k) for k in range(10)]
            rx = np.frombuffer(make_block(frames), np.uint8).copy()
            walk_out = walk_storage(64)
            peer = _raw("vb")
            peer.settimeout(2.0)
            try:
                drops, counts = np.zeros(len(DropReason), np.uint64), np.zeros(len(EngineCounter), np.uint64)
                result, _ = _call(impl, node, rx, walk_out=walk_out, drops=drops, counts=counts)
                assert result == (RING_LIMIT, 0, 1, 10, 0, 0, 0, 0, 0, 0, -1)
                want = [rx[o:o + n].tobytes() for o, n in zip(walk_out[0][:10], walk_out[1][:10])]
                got: list[bytes] = []
                deadline = time.monotonic() + 5
                while len(got) < len(want) and time.monotonic() < deadline:
                    data = peer.recv(4096)
                    if data[12:14] == b"\x86\xdd" and b"over the veth" in data:
                        got.append(data)
            finally:
                peer.close()
            assert got == want
            assert all(g[6:12] == MACS[0] and g[14 + 7] == 63 for g in got)  # rewritten: our MAC, hop limit - 1
            assert counts[EngineCounter.FORWARDED] == np.asarray(node.ring_tx)[0] == len(frames)
            assert counts[EngineCounter.RECEIVED] == len(frames) and not drops.any()
            assert rx[8] == 0  # the RX block handed back
            assert int(node.stats[NODE_STATS.index("frames")]) == 2  # the last chunk: 10 frames in fours
