"""Check-then-use races: the compiled kernels are safe from any thread, including a thread that writes the
caller's arrays while a kernel runs without the GIL.

For each kernel a writer thread keeps planting hostile values (offsets and indexes near 2**62 / 2**63,
negative indexes, lengths of 2**32 - 1, keys out of range) into the very arrays the main thread passes, and
puts the good values back, while the main thread calls the kernel in a loop for ``DURATION`` seconds.  A
kernel that validates an array and then reads it again in its nogil loop uses an unchecked value: a wild
read or write (a crash in the normal build, an ASan report in the debug one).  A correct kernel reads each
value once, so every call either returns a valid result or raises the documented ValueError naming the
frame, index or key it found out of range.
"""

from __future__ import annotations

import random
import struct
import threading
import time

import numpy as np
import pytest

from fmipfast.constants import DropReason, Verdict
from tests.conftest import HAVE_CORE, _core

pytestmark = pytest.mark.skipif(not HAVE_CORE, reason="races the compiled core's nogil kernels")

DURATION = 0.5  # seconds of calls per kernel
N = 2000  # frames per batch: long nogil loops, so the writer lands inside them
FRAME = (bytes.fromhex("020000000002" "020000000001" "86dd") + bytes([0x60, 0, 0, 0, 0, 8, 17, 64])
         + bytes.fromhex("20010db8000000000000000000000001") + bytes.fromhex("20010db8000000000000000000000002")
         + bytes(8))
HUGE = [2**62, 2**63 - 1, 2**63 - 1 - len(FRAME), -1, -(2**62), -(2**63)]
HUGE_U32 = [2**32 - 1, 2**31, 2**32 - 40]


def _batch(n: int = N):
    arena = np.frombuffer(FRAME * n, dtype=np.uint8).copy()
    offsets = np.arange(n, dtype=np.int64) * len(FRAME)
    lengths = np.full(n, len(FRAME), dtype=np.uint32)
    return arena, offsets, lengths


class Hostile:
    """A thread that keeps writing hostile values into arrays, then restoring them, until stopped."""

    def __init__(self, *targets):
        # (array, hostile values); the array's current contents are its good values
        self.targets = [(arr, arr.copy(), values) for arr, values in targets]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.writes = 0

    def _run(self):
        rng = random.Random(7)
        while not self.stop.is_set():
            for arr, good, values in self.targets:
                k = rng.randrange(arr.shape[0])
                arr[k] = rng.choice(values)
                if rng.random() < 0.5:
                    arr[rng.randrange(arr.shape[0]):] = rng.choice(values)  # a whole tail at once
                self.writes += 1
                arr[:] = good

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        for arr, good, _values in self.targets:
            arr[:] = good


def _race(call, check, *targets, duration: float = DURATION):
    """Call ``call()`` for ``duration`` seconds under a Hostile writer; each result goes to ``check``; only
    ValueError (the documented caller-bug error) may be raised.  Returns (calls that returned, ValueErrors)."""
    ok = failed = 0
    with Hostile(*targets) as writer:
        deadline = time.monotonic() + duration
        while time.monotonic() < deadline:
            try:
                result = call()
            except ValueError:
                failed += 1
                continue
            check(result)
            ok += 1
    assert writer.writes > 0
    assert ok + failed > 0
    return ok, failed


VERDICTS = {int(v) for v in Verdict}


def test_classify_under_hostile_offsets_and_lengths():
    arena, offsets, lengths = _batch()
    out = _core.Batch(N)

    def check(batch):
        assert batch is out and len(batch) == N
        assert set(np.unique(batch.verdict).tolist()) <= VERDICTS
        assert int(batch.drop_counts.sum()) == int((batch.verdict == Verdict.DROP).sum())

    _race(lambda: _core.classify(arena, offsets, lengths, out=out), check,
          (offsets, HUGE + [len(arena), len(arena) - 1]), (lengths, HUGE_U32))


def _rewrite_targets(offsets, lengths, l3, sel):
    return [(offsets, HUGE), (lengths, HUGE_U32), (l3, HUGE_U32 + [0, 13]), (sel, HUGE + [N, 2**31])]


def test_encapsulate_under_hostile_arrays():
    arena, offsets, lengths = _batch()
    l3 = np.full(N, 14, np.uint32)
    sel = np.arange(N, dtype=np.int64)
    addr, mac = np.zeros(16, np.uint8), np.zeros(6, np.uint8)
    allowed = {0, DropReason.IP6_TRUNCATED, DropReason.IP6_BAD_VERSION, DropReason.IP6_BAD_PAYLOAD_LENGTH,
               DropReason.HOP_LIMIT_EXCEEDED, DropReason.FRAME_TOO_BIG}

    def check(result):
        out, oo, ol, status = result
        assert status.shape == oo.shape == ol.shape == (N,)
        assert set(np.unique(status).tolist()) <= allowed
        assert np.all(oo.astype(np.int64) + ol <= out.shape[0])
        assert np.all((ol == 0) == (status != 0))

    _race(lambda: _core.encapsulate(arena, offsets, lengths, l3, sel, addr, addr, mac, mac), check,
          *_rewrite_targets(offsets, lengths, l3, sel))


def test_decapsulate_under_hostile_arrays():
    arena, offsets, lengths = _batch()
    l3 = np.full(N, 14, np.uint32)
    l4 = np.full(N, 54, np.uint32)
    sel = np.arange(N, dtype=np.int64)
    allowed = {0, DropReason.IP6_TRUNCATED, DropReason.IP6_BAD_VERSION, DropReason.IP6_BAD_PAYLOAD_LENGTH}

    def check(result):
        out, oo, ol, status = result
        assert status.shape == (N,) and set(np.unique(status).tolist()) <= allowed
        assert np.all(oo.astype(np.int64) + ol <= out.shape[0])

    _race(lambda: _core.decapsulate(arena, offsets, lengths, l3, l4, sel), check,
          *_rewrite_targets(offsets, lengths, l3, sel), (l4, HUGE_U32 + [0, 54 + 2**31]))


def test_forward_rewrite_under_hostile_arrays():
    arena, offsets, _ = _batch()
    arena[offsets + 14 + 7] = 255  # hop limits that stay above 1 for the whole run
    l3 = np.full(N, 14, np.uint32)
    sel = np.arange(N, dtype=np.int64)
    size = arena.shape[0]
    mac = np.arange(6, dtype=np.uint8)

    def check(status):
        assert status.shape == (N,) and set(np.unique(status).tolist()) <= {0, DropReason.HOP_LIMIT_EXCEEDED}
        assert arena.shape[0] == size

    _race(lambda: _core.forward_rewrite(arena, offsets, l3, sel, mac, mac), check,
          (offsets, HUGE), (l3, HUGE_U32 + [0, 13]), (sel, HUGE + [N]))


def test_packet_buffer_push_under_hostile_arrays():
    arena, offsets, lengths = _batch(256)
    keys = (np.arange(256, dtype=np.int32) % 8).astype(np.int32)
    buf = _core.PacketBuffer(slots=64, slot_size=256, max_keys=8, per_key_packets=8)
    allowed = {0, DropReason.FRAME_TOO_BIG, DropReason.BUFFER_FULL}

    def check(status):
        assert status.shape == (256,) and set(np.unique(status).tolist()) <= allowed
        c = buf.counters
        assert c["pushed"] == c["queued"] + c["flushed"] + c["dropped_oldest"] + c["refused_global"] + \
            c["dropped_too_big"] + c["dropped_expired"] + c["dropped_by_drop"]
        frames, oo, ol = buf.flush(3, 0)
        for o, n in zip(oo.tolist(), ol.tolist()):
            assert frames[o:o + n].tobytes() == FRAME

    _race(lambda: buf.push(keys, arena, offsets, lengths, 0), check,
          (keys, [-1, 8, 2**31 - 1, -(2**31)]), (offsets, HUGE), (lengths, HUGE_U32))


def test_neighbor_cache_update_under_hostile_indices():
    nc = _core.NeighborCache(64, seed=bytes(16))
    keys = np.zeros((64, 16), np.uint8)
    keys[:, 0] = 0x20
    keys[:, 15] = np.arange(64)
    idx = nc.insert(keys, np.zeros((64, 6), np.uint8), np.full(64, 1, np.uint8))
    assert (idx >= 0).all()
    indices = np.tile(idx, 32)
    states = np.full(indices.shape[0], 2, np.uint8)
    expiry = np.full(indices.shape[0], 5, np.int64)
    macs = np.zeros((indices.shape[0], 6), np.uint8)

    def check(_none):
        assert nc._check_invariants()
        assert set(np.unique(nc.states).tolist()) <= {1, 2}
        assert (nc.expiry >= 0).all()

    _race(lambda: nc.update(indices, macs=macs, states=states, expiry=expiry), check,
          (indices, HUGE + [64, 2**31]), (states, [0, 6, 255]), (expiry, [-1, -(2**63)]))


def test_neighbor_cache_insert_under_hostile_keys():
    nc = _core.NeighborCache(512, seed=bytes(16))
    keys = np.zeros((256, 16), np.uint8)
    keys[:, 0] = 0x20
    keys[:, 14] = np.arange(256) >> 8
    keys[:, 15] = np.arange(256) & 0xFF
    flat = keys.reshape(-1)
    macs = np.zeros((256, 6), np.uint8)
    states = np.full(256, 1, np.uint8)

    def check(idx):
        assert idx.shape == (256,)
        assert nc._check_invariants()
        live = nc.keys[nc.in_use]
        assert len({bytes(k) for k in live}) == len(live)  # every stored key is findable and unique
        for e in np.flatnonzero(nc.in_use)[:16].tolist():
            assert nc.get(nc.keys[e].tobytes()) == e

    _race(lambda: nc.insert(keys, macs, states), check, (flat, [0xFF, 0x00, 0x42]), (states, [0, 9]))


def test_ring_tx_fill_under_hostile_arrays():
    arena, offsets, lengths = _batch(N)
    frame_size, slots = 256, 4096
    tx = np.zeros(frame_size * slots, np.uint8)

    def call():
        tx[:] = 0  # every slot TP_STATUS_AVAILABLE again
        return _core.ring_tx_fill(tx, frame_size, 0, arena, offsets, lengths)

    def check(result):
        consumed, sent, head, too_big = result
        assert 0 <= sent <= consumed <= N and too_big == consumed - sent and 0 <= head < slots
        for k in (0, sent // 2, sent - 1) if sent else ():
            base = k * frame_size
            length = struct.unpack_from("=I", tx, base + 16)[0]
            assert length == len(FRAME) and tx[base + 48:base + 48 + length].tobytes() == FRAME

    _race(call, check, (offsets, HUGE), (lengths, HUGE_U32))


def test_ring_walk_block_under_a_hostile_block():
    """The RX ring is shared with the kernel: descriptor and frame headers may change during the walk."""
    block_size = 1 << 16
    ring = np.zeros(block_size, np.uint8)
    desc = struct.Struct("=IIIIII")
    hdr = struct.Struct("=IIIIIIHH")
    pos, starts = 48, []
    for _ in range(400):
        starts.append(pos)
        pos += 160
    for i, start in enumerate(starts):
        nxt = 160 if i + 1 < len(starts) else 0
        hdr.pack_into(ring, start, nxt, 0, 0, 60, 60, 0, 80, 94)
    desc.pack_into(ring, 0, 3, 0, 1, len(starts), 48, pos)
    words = ring.view(np.uint32)  # hostile 32-bit words: num_pkts, offset_to_first_pkt, blk_len and headers
    hot = np.array([3, 4, 5] + [s // 4 + f for s in starts[::7] for f in (0, 3, 6)], np.int64)
    shadow = words[hot].copy()

    def check(w):
        assert w["error"] in range(5)
        ends = w["offsets"].astype(np.int64) + w["lengths"]
        assert ((w["offsets"] >= 48) & (ends <= block_size)).all()

    stop = threading.Event()

    def writer():
        rng = random.Random(3)
        values = [0, 1, 7, 2**31, 2**32 - 1, 2**32 - 8, block_size, block_size + 8, 0xFFFF0050]
        while not stop.is_set():
            k = rng.randrange(hot.shape[0])
            words[hot[k]] = rng.choice(values)
            words[hot[k]] = shadow[k]

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    try:
        deadline = time.monotonic() + DURATION
        while time.monotonic() < deadline:
            check(_core.ring_walk_block(ring, 0, block_size))
    finally:
        stop.set()
        t.join()


def test_forwarding_node_under_hostile_offsets_and_lengths():
    """The node checks every frame's span and then rewrites the frames in place: it must act on the offsets
    and lengths it checked (its own copy), never on the caller's arrays read a second time."""
    arena, offsets, lengths = _batch()
    seed = bytes(range(16))
    nc = _core.NeighborCache(16, seed=seed)
    dst = np.frombuffer(bytes.fromhex("20010db8000000000000000000000002"), np.uint8).reshape(1, 16)
    nc.insert(dst, np.frombuffer(bytes.fromhex("0200000000aa"), np.uint8).reshape(1, 6),
              np.array([2], np.uint8), ifindex=np.array([0], np.uint32))  # REACHABLE, interface 0
    fib = _core.Fib(np.frombuffer(bytes.fromhex("20010db8" + "00" * 12), np.uint8).reshape(1, 16),
                    np.array([32], np.uint8), np.array([0], np.int32), seed=seed)
    node = _core.Node(nc, N, 1)
    node.set_interfaces(np.array([[2, 0, 0, 0, 0, 2]], np.uint8))
    node.set_routes(fib, np.array([0], np.int32), np.zeros((1, 16), np.uint8), np.zeros(1, np.uint8))
    batch = _core.classify(arena, offsets, lengths)
    assert set(batch.verdict.tolist()) == {int(Verdict.FORWARD)}
    status = np.zeros(0, np.uint32)
    drops = np.zeros(len(DropReason), np.uint64)

    def call():
        return node.run(batch, arena, offsets, lengths, status, 0, drops=drops)

    def check(present):
        sent = int(node.tx_count[0])
        assert 0 <= sent <= N
        starts = node.tx_offsets[0, :sent]
        ends = starts + node.tx_lengths[0, :sent]
        assert (starts >= 0).all() and (ends <= arena.shape[0]).all()

    _race(call, check, (offsets, HUGE + [len(arena), len(arena) - 1]), (lengths, HUGE_U32))


# ---------------------------------------------------------------------------------------------------
# The node reading an RX ring itself: the ring is the kernel's memory, written while the node reads it

RING_DURATION = 2.0  # seconds of run_ring calls per test
# The race's writer sleeps briefly after every BURST writes.  Without the pauses it holds the GIL for whole switch
# intervals between a call's restore of the ring and the node's nogil read, so that nearly every call found its first
# block damaged and the deep paths went unraced (no frame at all in a whole run under ASan on a loaded machine).
BURST, PAUSE = 16, 50e-6
RING_BLOCK_SIZE = 1 << 14
RING_BLOCKS = 4
RING_ROWS = RING_BLOCK_SIZE // 16 + 1  # walk storage for the densest block
GUARD = 256  # canary elements either side of every array the node may write
CANARY = 0xA5
TX_SLOTS, TX_SLOT = 1024, 256


def _guarded(n: int, dtype=np.uint8, fill=CANARY):
    """An array of ``n`` elements inside a larger one whose ends hold canaries ``fill``: (array, whole)."""
    whole = np.full(n + 2 * GUARD, fill, dtype)
    return whole[GUARD:GUARD + n], whole


def _ring_block_of(frames: list[bytes], size: int) -> tuple[bytes, list[int]]:
    """A TPACKET_V3 block of ``size`` octets as the kernel lays it out (frames 8-aligned, tp_mac 82, every
    fifth frame TP_STATUS_CSUMNOTREADY), user space's, with as many of ``frames`` as fit; and the offset of
    each frame header in the block."""
    from tests.test_rings import DESC, HDR

    block = bytearray(size)
    pos, starts = 48, []
    for data in frames:
        span = -(-(82 + len(data)) // 8) * 8
        if pos + span > size:
            break
        starts.append(pos)
        pos += span
    for i, start in enumerate(starts):
        data = frames[i]
        nxt = starts[i + 1] - start if i + 1 < len(starts) else 0
        HDR.pack_into(block, start, nxt, 1_700_000_000, i, len(data), len(data), 1 | (8 if i % 5 == 0 else 0), 82,
                      96, 0, 0, 0)
        block[start + 82:start + 82 + len(data)] = data
    DESC.pack_into(block, 0, 3, 0, 1, len(starts), 48, pos, 7)
    return bytes(block), starts


class RingRace:
    """test_node_ring's world (three interfaces, a buffer, a tunnel) with a TX ring on every interface, an RX
    ring of RING_BLOCKS blocks of frames the node forwards, tunnels, buffers, decapsulates and drops itself,
    and every array the node writes inside canaries.  ``hot`` lists (array, index, hostile values) a writer
    thread plants; ``check`` holds the node to its promises after each return."""

    def __init__(self) -> None:
        from types import SimpleNamespace

        from fmipfast.constants import EngineCounter
        from fmipfast.frames import build_ethernet, build_ipv6
        from tests.test_node import MACS, PEER, ROUTER, SOURCES, udp
        from tests.test_node_ring import BUFFERED_TO, FORWARDED_TO, TUNNELLED_TO, make_world

        self.node, _nc, _buffer, _rings, _heads = make_world(_core, SimpleNamespace(node_cap=16, handover=True,
                                                                                     tx=[None, None, None]))
        self.tx, self.heads, self.wholes = [], [], []  # wholes: (array with its guards, canary value)
        for k in range(3):
            ring, whole = _guarded(TX_SLOTS * TX_SLOT)
            ring[:] = 0
            head, head_whole = _guarded(1, np.int64, fill=-77)
            head[0] = 0
            self.node.set_tx_ring(k, ring, TX_SLOT, head)
            self.tx.append(ring)
            self.heads.append(head)
            self.wholes += [(whole, CANARY), (head_whole, -77)]

        def eth(pkt, dst=MACS[0]):
            return build_ethernet(dst, bytes([2, 9, 9, 9, 9, 9]), pkt)

        rng = random.Random(11)
        kinds = ([lambda: eth(udp(SOURCES[0], rng.choice(FORWARDED_TO), 64, b"f" * rng.randrange(40)))] * 6
                 + [lambda: eth(udp(SOURCES[0], rng.choice(TUNNELLED_TO), 64, b"t")),
                    lambda: eth(udp(SOURCES[0], rng.choice(BUFFERED_TO), 64, b"b")),
                    lambda: eth(build_ipv6(PEER, ROUTER, 41, udp(SOURCES[0], rng.choice(FORWARDED_TO), 64, b"i"))),
                    lambda: eth(udp(SOURCES[0], FORWARDED_TO[0], 64, b"d"), bytes([2, 0, 0, 0, 0, 0x77]))])
        blocks, self.starts = [], []
        for b in range(RING_BLOCKS):
            frames = [rng.choice(kinds)() for _ in range(200)]
            frames[50] = eth(udp(SOURCES[0], FORWARDED_TO[0], 64, b"f" * 17))
            block, starts = _ring_block_of(frames, RING_BLOCK_SIZE)
            blocks.append(block)
            self.starts.append([b * RING_BLOCK_SIZE + x for x in starts])
        self.good = np.frombuffer(b"".join(blocks), np.uint8).copy()
        # the same ring with one frame of block 2 for the router itself (a chunk for the caller): every other call
        self.own = self.good.copy()
        mine = np.frombuffer(eth(udp(SOURCES[0], ROUTER, 64, b"f" * 17)), np.uint8)
        at = self.starts[2][50] + 82
        assert struct.unpack_from("=I", self.own, self.starts[2][50] + 12)[0] == len(mine)
        self.own[at:at + len(mine)] = mine
        self.ring, whole = _guarded(self.good.shape[0])
        self.wholes.append((whole, CANARY))
        walk = []
        for dtype in (np.int64, np.uint32, np.uint32, np.int64, np.uint32):
            a, whole = _guarded(RING_ROWS, dtype, fill=0x5A)
            walk.append(a)
            self.wholes.append((whole, 0x5A))
        self.walk_out = tuple(walk)
        self.batch = _core.Batch(16)
        self.drops = np.zeros(len(DropReason), np.uint64)
        self.counts = np.zeros(len(EngineCounter), np.uint64)
        self.disposed = slice(int(EngineCounter.FORWARDED), int(EngineCounter.DROPPED) + 1)
        self.received = int(EngineCounter.RECEIVED)
        self.dropped = int(EngineCounter.DROPPED)
        self.calls = self.frames = 0
        self.reasons = [0, 0, 0, 0]
        self.cursors = RING_BLOCKS  # the cursor a return may hold: a block of the ring

    def kernel_memory(self) -> list:
        """What the kernel writes: the blocks' status words and descriptors (num_pkts, offset_to_first_pkt,
        blk_len), frame headers (tp_next_offset, tp_snaplen, tp_len, tp_status, tp_mac/tp_net), frame octets;
        the TX slots' status words."""
        words = self.ring.view(np.uint32)
        values = [0, 1, 7, 8, 48, 2**31, 2**32 - 1, 2**32 - 8, RING_BLOCK_SIZE, RING_BLOCK_SIZE + 8, 0xFFFF0050,
                  0x00500000]
        hot = []
        for b in range(RING_BLOCKS):
            base = b * RING_BLOCK_SIZE // 4
            hot.append((words, base + 2, [0, 1, 0x80000001, 0xFFFFFFFF, 2]))
            hot += [(words, base + f, values) for f in (3, 4, 5)]
            for start in self.starts[b][::3]:
                hot += [(words, start // 4 + f, values + [0x11, 9]) for f in (0, 3, 4, 5, 6)]
        rng = random.Random(13)
        for _ in range(64):
            hot.append((words, rng.randrange(words.shape[0]), [0, 0xFFFFFFFF, 0x01000000, 0x29, 0x11]))
        for ring in self.tx:
            slot_words = ring.view(np.uint32)
            hot += [(slot_words, j * TX_SLOT // 4 + 5, [1, 2, 4, 0xFFFFFFFF]) for j in range(0, TX_SLOTS, 3)]
        return hot

    def heads_memory(self) -> list:
        """The TX head cells, shared with the rings' sender: indexes outside the ring."""
        return [(head, 0, [-1, TX_SLOTS, TX_SLOTS - 1, 2**62, -(2**63)]) for head in self.heads]

    def walk_memory(self) -> list:
        """The walk's storage, which the node fills and then reads back: offsets and lengths outside the ring."""
        size = self.ring.shape[0]
        per_column = (HUGE + [size, size - 1], HUGE_U32, [0, 8, 0x10, 2**32 - 1], [-1, 2**63 - 1], [0, 5, 2**32 - 1])
        return [(a, k, values) for a, values in zip(self.walk_out, per_column) for k in range(0, 600, 7)]

    def fresh(self) -> None:
        """The ring user space's again (as the kernel wrote it: every other call the ring with the router's own
        frame), the TX rings empty, drops and ledger zero; one call more."""
        self.ring[:] = self.own if self.calls % 2 else self.good
        for k in range(3):
            self.tx[k][:] = 0
            self.heads[k][0] = self.calls % TX_SLOTS
        self.drops[:] = 0
        self.counts[:] = 0
        self.calls += 1

    def call(self):
        """The blocks user space's again, the TX rings empty, then run_ring."""
        self.fresh()
        return self.node.run_ring(self.batch, self.ring, RING_BLOCK_SIZE, RING_BLOCKS, self.calls % RING_BLOCKS, 0,
                                  self.walk_out, drops=self.drops, counts=self.counts, now_ns=5_000,
                                  max_blocks=RING_BLOCKS)

    def check_memory(self) -> None:
        for whole, fill in self.wholes:
            assert (whole[:GUARD] == fill).all() and (whole[-GUARD:] == fill).all(), "written outside an array"

    def check(self, result) -> None:
        from fmipfast.constants import Action
        from fmipfast.reference.node import RING_CHUNK

        self.check_memory()
        reason, cursor, blocks, frames, csum, walked, start, stop, present, err, err_if = result
        self.reasons[reason] += 1
        self.frames += frames
        assert 0 <= cursor < self.cursors and 0 <= blocks <= RING_BLOCKS and (err, err_if) == (0, -1)
        assert 0 <= csum <= frames <= blocks * RING_ROWS
        node, counts = self.node, self.counts
        gap = int(counts[self.received]) - int(counts[self.disposed].sum())
        if reason == RING_CHUNK and present:  # the chunk left to the caller: all that is not disposed of yet
            assert 0 <= start < stop <= walked and 0 <= gap <= stop - start, (result, counts.tolist())
            m = stop - start
            assert set(node.action[:m].tolist()) <= {int(a) for a in Action}
            for k in range(3):
                n = int(node.tx_count[k])
                ends = node.tx_offsets[k, :n] + node.tx_lengths[k, :n]
                assert (node.tx_offsets[k, :n] >= 0).all() and (ends <= self.ring.shape[0]).all()
        else:
            assert gap == 0, (result, counts.tolist())
        assert int(counts[self.dropped]) == int(self.drops.sum())
        assert 0 <= int(np.asarray(node.ring_tx).sum()) <= frames


def _ring_race(race: RingRace, hot: list, tolerate=()) -> list:
    """Call ``race.call()`` for RING_DURATION seconds while a thread plants ``hot``'s values (put back at once,
    or left until the next call restores the ring); every return is checked.  Exceptions of the ``tolerate``
    types are collected (the memory is checked after each) and returned; any other propagates."""
    stop = threading.Event()
    writes = [0]

    def writer():
        rng = random.Random(5)
        while not stop.is_set():
            arr, k, values = hot[rng.randrange(len(hot))]
            was = arr[k]  # what is there now (the node may have written it since)
            arr[k] = rng.choice(values)
            if rng.random() < 0.5:
                arr[k] = was
            writes[0] += 1
            if writes[0] % BURST == 0:
                time.sleep(PAUSE)

    raised = []
    t = threading.Thread(target=writer, daemon=True)
    t.start()
    try:
        deadline = time.monotonic() + RING_DURATION
        while time.monotonic() < deadline:
            try:
                result = race.call()
            except tolerate as exc:
                race.check_memory()
                raised.append(exc)
                continue
            race.check(result)
    finally:
        stop.set()
        t.join()
    assert writes[0] > 0 and race.calls > 0
    return raised


def test_forwarding_node_reading_a_hostile_ring():
    """``Node.run_ring`` reads what the kernel writes -- block status words, descriptors, frame headers --
    without the GIL, and fills TX rings whose slots the kernel hands back.  A writer thread keeps planting
    hostile values there (num_pkts, offset_to_first_pkt, blk_len, tp_next_offset, tp_mac, tp_snaplen,
    tp_status, status words, words of the frames, the TX slots' status words, the TX head cells) while the
    main thread re-marks the blocks user space's and calls run_ring over them in a loop.  The node never
    writes outside the RX ring, the TX rings, the walk storage or the head cells (canaries around each), never
    raises, and its ledger balances at every return: every packet received is disposed of, but for at most
    the chunk it leaves to the caller."""
    race = RingRace()
    # undisturbed, the two rings reach the node's deep paths: blocks done (RING_LIMIT) and a chunk for the
    # caller (RING_CHUNK); how far the disturbed calls get depends on how the writer thread is scheduled
    for _ in range(2):
        race.check(race.call())
    assert race.reasons[1] and race.reasons[3], race.reasons
    frames, before = race.frames, list(race.reasons)
    _ring_race(race, race.kernel_memory() + race.heads_memory())
    # the disturbed calls too reached the deep paths, not only the first block's checks
    assert race.frames > frames and race.reasons[1] > before[1] and race.reasons[3] > before[3], race.reasons


def test_forwarding_node_under_hostile_walk_storage():
    """The walk storage is the caller's: a thread writing offsets and lengths outside the ring into it while
    run_ring runs (with the ring's own hostile writer) must never make the node read or write outside its
    arrays (canaries checked after every call, whatever it raised), and a call either returns with the ledger
    balanced or raises the documented ValueError, as the other kernels do for caller arrays changed under
    them."""
    race = RingRace()
    raised = _ring_race(race, race.kernel_memory() + race.walk_memory(), tolerate=(ValueError,))
    assert race.frames > 0 and race.reasons[1] and race.reasons[3], race.reasons
    for exc in raised:
        if not isinstance(exc, ValueError):
            raise exc


def test_walk_storage_whose_columns_share_memory():
    """The walk storage changing under the node without a thread: the timestamps' column is the offsets'
    own, so the walk overwrites each frame's offset with its timestamp before the node reads it back.  Both
    implementations refuse the call the same way, with the documented error family, writing nothing."""
    from fmipfast import reference as ref
    from fmipfast.constants import EngineCounter
    from tests.test_node_ring import _fwd, _plain, walk_storage
    from tests.test_rings import BLOCK, make_block

    outcomes = []
    for impl in (ref, _core):
        ring = np.frombuffer(make_block([_fwd()]), np.uint8).copy()
        before = ring.tobytes()
        offsets, lengths, status, _ts, vlan = walk_storage(8)
        drops, counts = np.zeros(len(DropReason), np.uint64), np.zeros(len(EngineCounter), np.uint64)
        with pytest.raises((TypeError, ValueError)) as info:
            _plain(impl).run_ring(impl.Batch(8), ring, BLOCK, 1, 0, 0, (offsets, lengths, status, offsets, vlan),
                                  drops=drops, counts=counts)
        assert ring.tobytes() == before and not drops.any() and not counts.any()
        outcomes.append((info.type, str(info.value)))
    assert outcomes[0] == outcomes[1]


# ---------------------------------------------------------------------------------------------------
# TPACKET_V2 rings: a status word and a header per slot, each the kernel's to write while user space reads

V2_SLOT = 256  # octets a slot: tpacket2_hdr, tp_mac 66, the frame
V2_HDR = struct.Struct("=IIIHHIIHH")  # status, len, snaplen, mac, net, sec, nsec, vlan_tci, vlan_tpid


def _v2_ring_of(frames: list[tuple[bytes, int]], slot: int = V2_SLOT) -> np.ndarray:
    """A V2 ring of one slot per (frame, status), every slot user space's, tp_mac 66."""
    ring = np.zeros(len(frames) * slot, np.uint8)
    for i, (data, status) in enumerate(frames):
        V2_HDR.pack_into(ring, i * slot, status, len(data), len(data), 66, 80, 1_700_000_000, i, 0, 0)
        ring[i * slot + 66:i * slot + 66 + len(data)] = np.frombuffer(data, np.uint8)
    return ring


def _v2_hot(words: np.ndarray, slots: int, slot: int = V2_SLOT) -> list:
    """(words, index, hostile values) of every third slot's status word, tp_len, tp_snaplen, tp_mac|tp_net and
    timestamp, and of random words of the frames."""
    values = [0, 1, 2, 8, 0x10, 0x11, 0xFFFFFFFF, 2**31, slot, slot - 65, slot - 66, slot - 67, 0xFFFF0042,
              0x00420000, 0x00FF00FF, 0xFFFFFFFE]
    hot = []
    for s in range(0, slots, 3):
        hot += [(words, s * slot // 4 + f, values) for f in (0, 1, 2, 3, 4, 6)]
    rng = random.Random(17)
    hot += [(words, rng.randrange(words.shape[0]), [0, 0xFFFFFFFF, 0x01000000, 0x29]) for _ in range(64)]
    return hot


def _inside_slots(offsets, lengths, cursor: int, slots: int, slot: int = V2_SLOT) -> None:
    """Row ``i`` of a walk from ``cursor``: a frame after the header of slot ``cursor + i`` (wrapping), inside it."""
    for i, (o, n) in enumerate(zip(offsets.tolist(), lengths.tolist())):
        base = (cursor + i) % slots * slot
        assert base + 32 <= o and o + n <= base + slot, (i, o, n, cursor)


def test_ring_walk_frames_under_hostile_headers():
    """A thread rewrites the slots' status words and headers (tp_snaplen, tp_mac, tp_len, the timestamp) while the
    walk runs without the GIL: every call returns (no exception of any kind), each reported frame inside its own
    slot, a damaged slot at most the one drop that ends the run."""
    slots = 400
    ring = _v2_ring_of([(FRAME, 1 | (8 if i % 5 == 0 else 0)) for i in range(slots)])
    words = ring.view(np.uint32)
    hot = _v2_hot(words, slots)
    stop = threading.Event()
    out = tuple(np.zeros(slots, d) for d in (np.int64, np.uint32, np.uint32, np.int64, np.uint32))
    calls = [0, 0]  # calls, calls that reported frames

    def writer():
        rng = random.Random(19)
        writes = 0
        while not stop.is_set():
            arr, k, values = hot[rng.randrange(len(hot))]
            was = arr[k]
            arr[k] = rng.choice(values)
            arr[k] = was
            writes += 1
            if writes % BURST == 0:
                time.sleep(PAUSE)

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    try:
        deadline = time.monotonic() + DURATION
        while time.monotonic() < deadline:
            cursor = calls[0] % slots
            w = _core.ring_walk_frames(ring, cursor, V2_SLOT, slots, out=out if calls[0] % 2 else None)
            n = len(w["offsets"])
            assert w["error"] in (0, 4) and w["announced"] == n + w["dropped"] and w["dropped"] == (w["error"] == 4)
            assert w["announced"] <= slots and w["csum_not_ready"] <= n
            _inside_slots(w["offsets"], w["lengths"], cursor, slots)
            calls[0] += 1
            calls[1] += n > 0
    finally:
        stop.set()
        t.join()
    assert calls[1] > 0


class FramesRingRace(RingRace):
    """RingRace's world and frames over a TPACKET_V2 ring instead: one slot per frame of the V3 blocks, the node
    reading it with ``run_ring(per_frame=True)``."""

    def __init__(self) -> None:
        super().__init__()

        def frames_of(v3: np.ndarray) -> list[tuple[bytes, int]]:
            got = []
            for starts in self.starts:
                for start in starts:
                    snap, _len, status = struct.unpack_from("=III", v3, start + 12)
                    got.append((v3[start + 82:start + 82 + snap].tobytes(), status))
            return got

        self.good = _v2_ring_of(frames_of(self.good))
        self.own = _v2_ring_of(frames_of(self.own))
        self.slots = self.cursors = self.good.shape[0] // V2_SLOT
        self.mine = sum(len(starts) for starts in self.starts[:2]) + 50  # the slot of the router's own frame
        self.ring, whole = _guarded(self.good.shape[0])
        self.wholes.append((whole, CANARY))

    def kernel_memory(self) -> list:
        hot = _v2_hot(self.ring.view(np.uint32), self.slots)
        for ring in self.tx:
            slot_words = ring.view(np.uint32)
            hot += [(slot_words, j * TX_SLOT // 4 + 5, [1, 2, 4, 0xFFFFFFFF]) for j in range(0, TX_SLOTS, 3)]
        return hot

    def call(self):
        self.fresh()
        # from anywhere on the good ring; on the other, a little before the router's own frame (a chunk it stops at)
        own = self.calls % 2 == 0
        self.cursor = (self.mine - self.calls % 20) % self.slots if own else self.calls * 37 % self.slots
        self.rows = (RING_ROWS, 64, 7)[self.calls % 3]
        return self.node.run_ring(self.batch, self.ring, V2_SLOT, self.slots, self.cursor, 0,
                                  tuple(a[:self.rows] for a in self.walk_out), drops=self.drops, counts=self.counts,
                                  now_ns=5_000, max_blocks=RING_BLOCKS, per_frame=True)

    def check(self, result) -> None:
        from fmipfast.reference.node import RING_CHUNK

        super().check(result)
        reason, cursor, walked = result[0], result[1], result[5]
        assert walked <= self.rows
        if reason == RING_CHUNK:  # the run the node stopped at: its rows, each frame inside its own slot
            _inside_slots(self.walk_out[0][:walked], self.walk_out[1][:walked], cursor, self.slots)


def test_forwarding_node_reading_a_hostile_v2_ring():
    """``Node.run_ring(per_frame=True)`` reads each slot's status word and header as the kernel writes them: a
    writer thread keeps planting hostile status words, tp_snaplen, tp_mac, tp_len and frame words (and TX slot
    status words and heads) while the main thread re-marks the slots user space's and calls run_ring from a
    moving cursor.  Never an exception, never a write outside the arrays (canaries), the ledger balanced at every
    return, and the run a RING_CHUNK stops at all inside its slots."""
    race = FramesRingRace()
    for _ in range(2):  # undisturbed: runs done (RING_LIMIT) and a chunk for the caller (RING_CHUNK)
        race.check(race.call())
    assert race.reasons[1] and race.reasons[3], race.reasons
    frames, before = race.frames, list(race.reasons)
    _ring_race(race, race.kernel_memory() + race.heads_memory())
    # the disturbed calls too reached the deep paths, not only the first block's checks
    assert race.frames > frames and race.reasons[1] > before[1] and race.reasons[3] > before[3], race.reasons
