"""Bounds checks at the extremes: every offset, length, size, index and key a kernel checks is drawn from 0,
the size, size +- 1, 2**31, 2**32, 2**63 - 1, negatives (and anything in between), and the compiled core
must give the reference's result or raise the reference's exception class.  An unchecked sum such as
``offset + length`` in a signed C type wraps near 2**63 and lets a wild pointer through; here that shows
as a crash (or an ASan report under the debug build) instead of the reference's ValueError."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fmipfast import reference
from fmipfast.reference.wire import FIELDS
from tests.conftest import HAVE_CORE, _core

pytestmark = pytest.mark.skipif(not HAVE_CORE, reason="compares the compiled core with the reference")

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

I64_MIN, I64_MAX, U32_MAX = -(2**63), 2**63 - 1, 2**32 - 1
BLOCK = 4096
FRAME = bytes(14) + bytes([0x60, 0, 0, 0, 0, 8, 59, 64]) + bytes(range(32)) + bytes(8)


def extremes(size: int) -> st.SearchStrategy[int]:
    """Python ints at and around every boundary a bounds check can get wrong."""
    points = [0, 1, size - 1, size, size + 1, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**32 + 1, 2**62,
              I64_MAX - size, I64_MAX - 1, I64_MAX, 2**63, 2**64 - 1, 2**64, -1, -size, -(2**31), -(2**32),
              I64_MIN + 1, I64_MIN, -(2**64)]
    return st.sampled_from(points) | st.integers(-(2**65), 2**65) | st.integers(-2 * size - 2, 2 * size + 2)


def in_int64(size: int) -> st.SearchStrategy[int]:
    return extremes(size).filter(lambda v: I64_MIN <= v <= I64_MAX)


def in_uint32(size: int) -> st.SearchStrategy[int]:
    return extremes(size).filter(lambda v: 0 <= v <= U32_MAX)


def _norm(value):
    """A comparable form of a kernel result (numpy arrays by dtype, shape and content)."""
    if isinstance(value, np.ndarray):
        return ("array", value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, dict):
        return {k: _norm(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return tuple(_norm(v) for v in value)
    if isinstance(value, (reference.Batch, _core.Batch if _core is not None else reference.Batch)):
        return {name: _norm(getattr(value, name)) for name, _dtype, _row in FIELDS} | {
            "drop_counts": _norm(value.drop_counts)}
    if isinstance(value, (np.integer, np.bool_)):
        return int(value)
    return value


def _outcome(fn, *args, **kwargs):
    try:
        return ("ok", _norm(fn(*args, **kwargs)))
    except Exception as exc:  # noqa: BLE001 - the class is what is compared
        return ("raise", type(exc).__name__)


def _agree(call):
    """``call(impl)`` on both implementations: the same result, or the same exception class."""
    ref, comp = call(reference), call(_core)
    assert comp == ref
    return ref


def _ring(size: int = 2 * BLOCK) -> np.ndarray:
    ring = np.zeros(size, np.uint8)
    ring[8:12] = [1, 0, 0, 0]  # block_status of block 0
    return ring


# ---- rings ---------------------------------------------------------------------------------------------


@SETTINGS
@given(offset=extremes(2 * BLOCK), size=extremes(2 * BLOCK), max_frames=st.none() | extremes(2 * BLOCK))
def test_ring_walk_block_extremes(offset, size, max_frames):
    def call(impl):
        ring = _ring()
        return _outcome(impl.ring_walk_block, ring, offset, size, max_frames=max_frames)

    _agree(call)


@SETTINGS
@given(offset=extremes(2 * BLOCK), ring_size=st.sampled_from([0, 47, 48, 49, 2 * BLOCK]))
def test_ring_block_status_and_release_extremes(offset, ring_size):
    def call(impl):
        ring = _ring(max(ring_size, 12))[:ring_size].copy()
        status = _outcome(impl.ring_block_status, ring, offset)
        released = _outcome(impl.ring_release_block, ring, offset)
        return status, released, ring.tobytes()

    _agree(call)


@SETTINGS
@given(offsets=st.lists(in_int64(len(FRAME)), min_size=1, max_size=3),
       lengths=st.lists(in_uint32(len(FRAME)), min_size=1, max_size=3),
       frame_size=st.sampled_from([256, 512]) | extremes(1024), head=extremes(4))
def test_ring_tx_fill_extremes(offsets, lengths, frame_size, head):
    n = min(len(offsets), len(lengths))

    def call(impl):
        tx = np.zeros(1024, np.uint8)
        arena = np.frombuffer(FRAME, np.uint8)
        got = _outcome(impl.ring_tx_fill, tx, frame_size, head, arena, np.array(offsets[:n], np.int64),
                       np.array(lengths[:n], np.uint32))
        return got, tx.tobytes()

    _agree(call)


def test_ring_offsets_near_2_63_are_value_errors(impl):
    """The campaign's reproducers: each was a wild read or write in the compiled core."""
    ring = _ring()
    for offset, size in [(I64_MAX, 2), (8, I64_MAX), (I64_MAX - 10, 20), (2**62, 2**62)]:
        with pytest.raises(ValueError):
            impl.ring_walk_block(ring, offset, size)
    for offset in (I64_MAX, I64_MAX - 47, 2**63 - 40):
        with pytest.raises(ValueError):
            impl.ring_block_status(ring, offset)
        with pytest.raises(ValueError):
            impl.ring_release_block(ring, offset)
    arena = np.frombuffer(FRAME, np.uint8)
    for off in (I64_MAX, I64_MAX - 3):
        with pytest.raises(ValueError):
            impl.ring_tx_fill(np.zeros(512, np.uint8), 256, 0, arena, np.array([off], np.int64),
                              np.array([5], np.uint32))


# ---- classify ------------------------------------------------------------------------------------------


@SETTINGS
@given(offsets=st.lists(in_int64(len(FRAME)), min_size=1, max_size=3),
       lengths=st.lists(in_uint32(len(FRAME)), min_size=1, max_size=3))
def test_classify_extremes(offsets, lengths):
    n = min(len(offsets), len(lengths))

    def call(impl):
        return _outcome(impl.classify, np.frombuffer(FRAME, np.uint8), np.array(offsets[:n], np.int64),
                        np.array(lengths[:n], np.uint32))

    _agree(call)


# ---- rewrite -------------------------------------------------------------------------------------------


@SETTINGS
@given(offset=in_int64(len(FRAME)), length=in_uint32(len(FRAME)), l3=in_uint32(len(FRAME)),
       l4=in_uint32(len(FRAME)), sel=in_int64(2))
def test_rewrite_extremes(offset, length, l3, l4, sel):
    def call(impl):
        arena = np.frombuffer(FRAME * 2, np.uint8).copy()
        offs = np.array([0, offset], np.int64)
        lens = np.array([len(FRAME), length], np.uint32)
        l3s = np.array([14, l3], np.uint32)
        l4s = np.array([54, l4], np.uint32)
        sels = np.array([1, sel], np.int64)
        mac = np.zeros(6, np.uint8)
        addr = np.zeros(16, np.uint8)
        fwd = _outcome(impl.forward_rewrite, arena, offs, l3s, sels, mac, mac)
        enc = _outcome(impl.encapsulate, arena, offs, lens, l3s, sels, addr, addr, mac, mac)
        dec = _outcome(impl.decapsulate, arena, offs, lens, l3s, l4s, sels)
        return fwd, enc, dec, arena.tobytes()

    _agree(call)


# ---- PacketBuffer and NeighborCache ---------------------------------------------------------------------


@SETTINGS
@given(offset=in_int64(len(FRAME)), length=in_uint32(len(FRAME)),
       key=extremes(4).filter(lambda v: -(2**31) <= v < 2**31), flush_key=extremes(4), now=extremes(10))
def test_packet_buffer_extremes(offset, length, key, flush_key, now):
    def call(impl):
        buf = impl.PacketBuffer(slots=4, slot_size=128, max_keys=4)
        pushed = _outcome(buf.push, np.array([0, key], np.int32), np.frombuffer(FRAME, np.uint8),
                          np.array([0, offset], np.int64), np.array([len(FRAME), length], np.uint32), 5)
        flushed = _outcome(buf.flush, flush_key, now)
        return pushed, flushed, buf.counters

    _agree(call)


@SETTINGS
@given(index=in_int64(4), capacity=st.sampled_from([1, 4]))
def test_neighbor_cache_update_extremes(index, capacity):
    def call(impl):
        nc = impl.NeighborCache(capacity, seed=bytes(16))
        nc.insert(np.zeros((1, 16), np.uint8), np.zeros((1, 6), np.uint8), np.array([1], np.uint8))
        got = _outcome(nc.update, np.array([index], np.int64), states=np.array([2], np.uint8))
        counters = {k: v for k, v in nc.counters.items() if k != "max_probe"}  # the compiled table's own
        return got, _norm(nc.states), counters

    _agree(call)


# ---- checksums and derivations: offsets and prefix lengths ---------------------------------------------


@SETTINGS
@given(offset=extremes(8), prefix_len=extremes(128), n=st.sampled_from([0, 1, 2, 8]))
def test_cksum_and_derive_extremes(offset, prefix_len, n):
    addr = bytes(range(16))

    def call(impl):
        return (_outcome(impl.upper_layer_checksum, addr, addr, 17, bytes(n), offset),
                _outcome(impl.ncoa_from_prefix, addr, prefix_len, addr),
                _outcome(impl.mac48_from_address, addr, prefix_len),
                _outcome(impl.ncoa_batch, np.zeros((2, 16), np.uint8), prefix_len, np.zeros((2, 16), np.uint8)))

    _agree(call)
