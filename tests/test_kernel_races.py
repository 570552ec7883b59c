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
