"""PacketBuffer (docs/design.md §5 "Buffers"; RFC 4861 §7.2.2 drop-oldest): behaviour on both implementations
(``impl`` fixture, ids py/c), every bound and its counter, the conservation equation, argument errors, and
a hypothesis state machine that drives fmipfast._core and fmipfast.reference side by side through random
push/flush/drop/expire sequences and compares every output array and every counter."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from fmipfast import reference
from fmipfast.constants import DropReason
from tests.conftest import HAVE_CORE, _core

BATCH_SIZES = [0, 1, 2, 3, 4, 5, 255, 256, 257]
DROPS = ("dropped_oldest", "refused_global", "dropped_too_big", "dropped_expired", "dropped_by_drop")
FULL = DropReason.BUFFER_FULL


def batch(frames: list[bytes]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pack frames into (arena, offsets, lengths)."""
    lengths = np.array([len(f) for f in frames], dtype=np.uint32)
    offsets = np.zeros(len(frames), dtype=np.int64)
    if frames:
        offsets[1:] = np.cumsum(lengths[:-1], dtype=np.int64)
    return np.frombuffer(b"".join(frames), dtype=np.uint8).copy(), offsets, lengths


def unpack(arena, offsets, lengths) -> list[bytes]:
    return [arena[o : o + n].tobytes() for o, n in zip(offsets.tolist(), lengths.tolist())]


def push(buf, keys, frames, now=0):
    arena, offsets, lengths = batch(frames)
    return buf.push(np.array(keys, dtype=np.int32), arena, offsets, lengths, now)


def conserved(buf) -> None:
    c = buf.counters
    assert c["pushed"] == c["queued"] + c["flushed"] + sum(c[d] for d in DROPS), c
    assert c["queued"] == len(buf)


def frame(tag: int, size: int = 100) -> bytes:
    return bytes([tag & 0xFF]) * size


# --------------------------------------------------------------------------------------------------
# Behaviour, both implementations


@pytest.mark.parametrize("n", BATCH_SIZES)
def test_push_flush_roundtrip_in_order(impl, n):
    buf = impl.PacketBuffer(slots=512, slot_size=300, max_keys=8, per_key_packets=512, per_key_bytes=10**6)
    frames = [bytes([i & 0xFF, i >> 8]) * (i % 7 + 1) for i in range(n)]  # incl. different sizes
    keys = [i % 3 for i in range(n)]
    status = push(buf, keys, frames, now=5)
    assert status.dtype == np.uint8 and status.shape == (n,) and not status.any()
    assert len(buf) == n
    for key in range(3):
        mine = [f for f, k in zip(frames, keys) if k == key]
        assert buf.queued(key) == len(mine)
        assert buf.queued_bytes(key) == sum(map(len, mine))
        arena, offsets, lengths = buf.flush(key, 5)
        assert arena.dtype == np.uint8 and offsets.dtype == np.int64 and lengths.dtype == np.uint32
        assert unpack(arena, offsets, lengths) == mine
        assert arena.shape[0] == sum(map(len, mine))  # packed
        assert buf.queued(key) == 0
    c = buf.counters
    assert c["pushed"] == c["flushed"] == n and len(buf) == 0
    conserved(buf)


def test_per_key_packet_cap_drops_the_oldest(impl):
    buf = impl.PacketBuffer(slots=64, slot_size=200, max_keys=4, per_key_packets=3)
    assert not push(buf, [1, 1, 1], [frame(1), frame(2), frame(3)]).any()
    status = push(buf, [1, 2], [frame(4), frame(9)])
    assert status.tolist() == [0, 0]  # the new frame is queued; the oldest of key 1 went
    assert buf.counters["dropped_oldest"] == 1
    assert unpack(*buf.flush(1, 0)) == [frame(2), frame(3), frame(4)]
    assert unpack(*buf.flush(2, 0)) == [frame(9)]
    conserved(buf)


def test_eviction_inside_one_call_reports_the_evicted_frame(impl):
    buf = impl.PacketBuffer(slots=64, slot_size=200, max_keys=4, per_key_packets=2)
    status = push(buf, [0, 0, 3, 0, 0], [frame(i) for i in range(5)])
    assert status.tolist() == [FULL, FULL, 0, 0, 0]
    assert int((status == 0).sum()) == len(buf) == 3
    assert unpack(*buf.flush(0, 0)) == [frame(3), frame(4)]
    conserved(buf)


def test_per_key_byte_cap_drops_the_oldest_until_it_fits(impl):
    buf = impl.PacketBuffer(slots=64, slot_size=500, max_keys=2, per_key_packets=64, per_key_bytes=350)
    push(buf, [0, 0, 0], [frame(1), frame(2), frame(3)])  # 300 octets
    status = push(buf, [0], [frame(4, 200)])  # needs 200 more: the two oldest go
    assert status.tolist() == [0]
    assert buf.counters["dropped_oldest"] == 2
    assert buf.queued_bytes(0) == 300
    assert unpack(*buf.flush(0, 0)) == [frame(3), frame(4, 200)]
    conserved(buf)


def test_frame_too_big(impl):
    buf = impl.PacketBuffer(slots=8, slot_size=128, max_keys=2, per_key_bytes=1000)
    status = push(buf, [0, 0, 1], [frame(1, 128), frame(2, 129), frame(3, 0)])
    assert status.tolist() == [0, DropReason.FRAME_TOO_BIG, 0]
    assert buf.counters["dropped_too_big"] == 1
    assert unpack(*buf.flush(1, 0)) == [b""]  # a zero-length frame is a frame
    # Longer than the per-key byte cap: it could never be queued either.
    small = impl.PacketBuffer(slots=8, slot_size=128, max_keys=2, per_key_bytes=64)
    assert push(small, [0], [frame(1, 65)]).tolist() == [DropReason.FRAME_TOO_BIG]
    conserved(buf)
    conserved(small)


def test_global_cap_takes_the_same_keys_oldest_or_refuses(impl):
    buf = impl.PacketBuffer(slots=4, slot_size=128, max_keys=4, per_key_packets=64)
    assert not push(buf, [0, 0, 0, 1], [frame(1), frame(2), frame(3), frame(4)]).any()
    # Arena full.  Key 0 makes room from its own queue; key 2 holds nothing and is refused.
    status = push(buf, [0, 2, 1], [frame(5), frame(6), frame(7)])
    assert status.tolist() == [0, FULL, 0]
    c = buf.counters
    assert c["dropped_oldest"] == 2 and c["refused_global"] == 1
    assert unpack(*buf.flush(0, 0)) == [frame(2), frame(3), frame(5)]
    assert unpack(*buf.flush(1, 0)) == [frame(7)]  # key 1's own frame 4 made room
    assert buf.queued(2) == 0
    conserved(buf)


def test_lifetime_at_flush_and_expire(impl):
    buf = impl.PacketBuffer(slots=16, slot_size=128, max_keys=4, lifetime_ns=1000)
    push(buf, [0, 1], [frame(1), frame(2)], now=0)
    push(buf, [0, 1], [frame(3), frame(4)], now=600)
    # At 1000 nothing is older than the lifetime yet (age == lifetime is still alive).
    assert buf.expire(1000) == 0
    arena, offsets, lengths = buf.flush(0, 1001)  # frame 1 is 1001 ns old: dropped, frame 3 returned
    assert unpack(arena, offsets, lengths) == [frame(3)]
    assert buf.counters["dropped_expired"] == 1
    # Key 1 still holds frame 2 (stamped 0) and frame 4 (stamped 600): both are over 1000 ns old at 1601.
    assert buf.expire(1601) == 2
    assert buf.counters["dropped_expired"] == 3 and len(buf) == 0
    conserved(buf)


def test_expire_drops_every_old_frame_of_every_key(impl):
    buf = impl.PacketBuffer(slots=16, slot_size=128, max_keys=4, lifetime_ns=100)
    push(buf, [0, 1, 2], [frame(1), frame(2), frame(3)], now=500)
    push(buf, [0, 1], [frame(4), frame(5)], now=50)  # older time stamps behind newer ones in a queue
    push(buf, [1], [frame(6)], now=700)
    # At 599: stamped 50 -> 549 old (gone, though they sit behind younger frames); 500 -> 99 (kept);
    # 700 -> stamped in the future (kept).
    assert buf.expire(599) == 2
    assert unpack(*buf.flush(0, 599)) == [frame(1)]
    assert unpack(*buf.flush(1, 599)) == [frame(2), frame(6)]
    assert buf.queued(2) == 1
    assert buf.counters["dropped_expired"] == 2
    conserved(buf)


def test_drop_discards_a_queue_and_counts(impl):
    buf = impl.PacketBuffer(slots=16, slot_size=128, max_keys=4)
    push(buf, [2, 2, 3], [frame(1), frame(2), frame(3)])
    assert buf.drop(2) == 2
    assert buf.drop(2) == 0
    assert buf.counters["dropped_by_drop"] == 2
    assert buf.queued(2) == 0 and len(buf) == 1
    # Freed slots are reused.
    assert not push(buf, [2] * 15, [frame(i) for i in range(15)]).any()
    conserved(buf)


def test_flush_of_an_empty_key(impl):
    buf = impl.PacketBuffer(slots=4, slot_size=16, max_keys=2)
    arena, offsets, lengths = buf.flush(1, 0)
    assert arena.shape == offsets.shape == lengths.shape == (0,)
    assert arena.dtype == np.uint8 and offsets.dtype == np.int64 and lengths.dtype == np.uint32


def test_defaults_and_properties(impl):
    buf = impl.PacketBuffer()
    assert (buf.slots, buf.slot_size, buf.max_keys, buf.per_key_packets, buf.per_key_bytes, buf.lifetime_ns) == (
        4096, 2048, 1024, 64, 65536, 3_000_000_000)
    assert set(buf.counters) >= {"pushed", "queued", "flushed", *DROPS}
    assert "PacketBuffer(" in repr(buf)
    with pytest.raises(AttributeError):
        buf.slots = 1  # the arena is sized once


# --------------------------------------------------------------------------------------------------
# Argument errors: raised before anything is queued, naming the argument or the index


def _unchanged(buf, fn):
    before = buf.counters
    fn()
    assert buf.counters == before


@pytest.mark.parametrize("key", [-1, 4, 2**40])
def test_bad_key_in_a_batch_is_a_value_error_and_queues_nothing(impl, key):
    buf = impl.PacketBuffer(slots=8, slot_size=64, max_keys=4)
    arena, offsets, lengths = batch([frame(1, 10), frame(2, 10)])
    keys = np.array([0, key if -(2**31) <= key < 2**31 else 7], dtype=np.int32)
    with pytest.raises(ValueError, match=r"keys\[1\]: key -?\d+ outside 0\.\.3"):
        buf.push(keys, arena, offsets, lengths, 0)
    assert len(buf) == 0 and buf.counters["pushed"] == 0
    with pytest.raises(ValueError, match="outside 0..3"):
        buf.flush(key, 0)
    with pytest.raises(ValueError, match="outside 0..3"):
        buf.drop(key)
    with pytest.raises(ValueError, match="outside 0..3"):
        buf.queued(key)


def test_batch_errors_name_the_argument(impl):
    buf = impl.PacketBuffer(slots=8, slot_size=64, max_keys=4)
    arena, offsets, lengths = batch([frame(1, 10), frame(2, 10)])
    keys = np.zeros(2, dtype=np.int32)
    cases = [
        ((keys.astype(np.int64), arena, offsets, lengths), TypeError, "keys: need dtype int32, got int64"),
        ((keys, arena.astype(np.int16), offsets, lengths), TypeError, "arena: need dtype uint8"),
        ((keys, arena, offsets.astype(np.int32), lengths), TypeError, "offsets: need dtype int64"),
        ((keys, arena, offsets, lengths.astype(np.int64)), TypeError, "lengths: need dtype uint32"),
        ((keys, arena.reshape(2, 10), offsets, lengths), ValueError, r"arena: need a 1-D array"),
        ((keys, arena, offsets, lengths[:1]), ValueError, "lengths: 1 entries, offsets has 2"),
        ((keys[:1], arena, offsets, lengths), ValueError, "keys: 1 entries, offsets has 2"),
        ((keys, arena[:15], offsets, lengths), ValueError, "frame 1: offset 10 \\+ length 10 runs past the 15"),
        ((keys, arena, np.array([-1, 0]), lengths), ValueError, "frame 0: offset -1"),
        ((None, arena, offsets, lengths), TypeError, "keys: need a numpy int32 array, got None"),
        ((keys, "text", offsets, lengths), TypeError, "arena: need a bytes-like object"),
    ]
    for args, exc, message in cases:
        with pytest.raises(exc, match=message):
            _unchanged(buf, lambda args=args: buf.push(*args, 0))
    with pytest.raises(ValueError, match="now_ns: -1 outside"):
        buf.push(keys, arena, offsets, lengths, -1)
    with pytest.raises(TypeError):
        buf.push(keys, arena, offsets, lengths, 1.5)
    # Read-only and bytes arenas are fine: push copies.
    assert not buf.push(keys, arena.tobytes(), offsets, lengths, 0).any()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"slots": 0}, "slots: 0 outside"),
        ({"slot_size": 0}, "slot_size: 0 outside"),
        ({"max_keys": 0}, "max_keys: 0 outside"),
        ({"per_key_packets": 0}, "per_key_packets: 0 outside"),
        ({"per_key_bytes": 0}, "per_key_bytes: 0 outside"),
        ({"lifetime_ns": -1}, "lifetime_ns: -1 outside"),
    ],
)
def test_constructor_bounds(impl, kwargs, message):
    with pytest.raises(ValueError, match=message):
        impl.PacketBuffer(**kwargs)


def test_constructor_is_keyword_only(impl):
    with pytest.raises(TypeError):
        impl.PacketBuffer(16)


# --------------------------------------------------------------------------------------------------
# Random operation sequences: _core against the reference, every array and every counter


class BufferMachine(RuleBasedStateMachine):
    """Drives one PacketBuffer per implementation with the same operations and compares them."""

    @initialize(
        slots=st.integers(1, 24),
        slot_size=st.integers(1, 80),
        max_keys=st.integers(1, 6),
        per_key_packets=st.integers(1, 10),
        per_key_bytes=st.integers(1, 400),
        lifetime=st.integers(0, 50),
    )
    def setup(self, slots, slot_size, max_keys, per_key_packets, per_key_bytes, lifetime):
        kw = dict(slots=slots, slot_size=slot_size, max_keys=max_keys, per_key_packets=per_key_packets,
                  per_key_bytes=per_key_bytes, lifetime_ns=lifetime)
        self.max_keys = max_keys
        self.bufs = [reference.PacketBuffer(**kw)] + ([_core.PacketBuffer(**kw)] if HAVE_CORE else [])
        self.now = 0
        self.tag = 0

    @rule(data=st.data(), n=st.sampled_from([0, 1, 2, 3, 5, 17]))
    def push(self, data, n):
        sizes = data.draw(st.lists(st.integers(0, 100), min_size=n, max_size=n))
        keys = data.draw(st.lists(st.integers(0, self.max_keys - 1), min_size=n, max_size=n))
        frames = []
        for size in sizes:
            self.tag += 1
            frames.append(bytes([self.tag & 0xFF, (self.tag >> 8) & 0xFF]) * (size // 2) + b"\xee" * (size % 2))
        results = [push(buf, keys, frames, self.now) for buf in self.bufs]
        for other in results[1:]:
            assert np.array_equal(results[0], other)

    @rule(data=st.data())
    def flush(self, data):
        key = data.draw(st.integers(0, self.max_keys - 1))
        results = [buf.flush(key, self.now) for buf in self.bufs]
        for other in results[1:]:
            for a, b in zip(results[0], other):
                assert a.dtype == b.dtype and np.array_equal(a, b)

    @rule(data=st.data())
    def drop(self, data):
        key = data.draw(st.integers(0, self.max_keys - 1))
        assert len({buf.drop(key) for buf in self.bufs}) == 1

    @rule()
    def expire(self):
        assert len({buf.expire(self.now) for buf in self.bufs}) == 1

    @rule(dt=st.integers(0, 30))
    def advance(self, dt):
        self.now += dt

    @invariant()
    def agree_and_conserve(self):
        if not hasattr(self, "bufs"):
            return
        counters = [buf.counters for buf in self.bufs]
        assert all(c == counters[0] for c in counters)
        for buf in self.bufs:
            conserved(buf)
            assert buf.counters["queued"] <= buf.slots
        for key in range(self.max_keys):
            assert len({(buf.queued(key), buf.queued_bytes(key)) for buf in self.bufs}) == 1
            assert self.bufs[0].queued(key) <= self.bufs[0].per_key_packets
            assert self.bufs[0].queued_bytes(key) <= self.bufs[0].per_key_bytes


BufferMachine.TestCase.settings = settings(
    max_examples=60, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestBufferMachine = BufferMachine.TestCase
