"""TPACKET_V2 rings: the frame walk and release (``ring_walk_frames`` / ``ring_release_frames``) and the forwarding
node over such a ring (``Node.run_ring(..., per_frame=True)``).

The walk: random rings of random slot sizes whose slots hold every status (the kernel's, user space's with
TP_STATUS_CSUMNOTREADY / TP_STATUS_VLAN_VALID, junk) and every tp_mac / tp_snaplen (inside, on and past the
slot's edges, 0xFFFF, 0xFFFFFFFF), from any cursor, bounded or not, into fresh or the caller's storage: the
compiled walk and release give what the reference gives, and both give what the layout says (checked against the
slots as they were built, not by reading the ring again).  Wrong arguments: the same exception and message in
both.  The node: compiled against the reference over several calls in a row (the caller handing back what the
node left it, the kernel filling the slots it got back, the cursor wrapping round), against the reference's walk
and ``run_block`` chunk by chunk, with the ledger balanced at every return, and the runs it leaves whole."""

from __future__ import annotations

import struct
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fmipfast import reference as ref
from fmipfast.constants import Action, DropReason, EngineCounter
from fmipfast.reference.node import RING_BLOCK, RING_CHUNK, RING_IDLE, RING_LIMIT
from tests.conftest import HAVE_CORE, IMPLS
from tests.test_node_ring import (
    DISPOSITIONS,
    FORWARDED_TO,
    NO_TAG,
    Ledger,
    _dropped,
    _fwd,
    _plain,
    chunk_outputs,
    make_world,
    now_of,
    outputs,
    ring_frame,
    run_chunks,
    tx_ring,
    undisposed,
    walk_storage,
)

if HAVE_CORE:
    from fmipfast import _core

needs_core = pytest.mark.skipif(not HAVE_CORE, reason="the compiled core is not built (FMIPFAST_PUREPYTHON=1 or "
                                                      "no extension): nothing to compare the reference with")

USER, CSUM, VLAN = 1, 8, 0x10
HDR2 = struct.Struct("=IIIHHIIHH")  # status, len, snaplen, mac, net, sec, nsec, vlan_tci, vlan_tpid
KEYS = ("offsets", "lengths", "status", "ts_ns", "vlan_tci")
DTYPES = (np.int64, np.uint32, np.uint32, np.int64, np.uint32)


def storage(rows: int) -> tuple[np.ndarray, ...]:
    """Walk storage of ``rows`` rows, every row a value no walk writes there."""
    return walk_storage(rows)


def same_walk(got: dict, want: dict) -> None:
    assert set(got) == set(want)
    for k in want:
        if isinstance(want[k], np.ndarray):
            assert isinstance(got[k], np.ndarray) and got[k].dtype == want[k].dtype, k
            assert got[k].tolist() == want[k].tolist(), k
        else:
            assert type(got[k]) is type(want[k]) and got[k] == want[k], k


# ------------------------------------------------------------------------------------------ the walk


@st.composite
def v2_slot(draw, fs: int):
    """One slot's header: (status, tp_len, tp_snaplen, tp_mac, tp_net, sec, nsec, tci, tpid)."""
    status = draw(st.sampled_from([0, USER, USER, USER, USER | CSUM, USER | VLAN, USER | CSUM | VLAN, 2,
                                   0x20000000, 0xFFFFFFFF, 0xFFFFFFFE, USER | 0x80000000]))
    mac = draw(st.one_of(st.sampled_from([32, 33, 34, 66, fs - 2, fs - 1, fs, fs + 1, fs + 16, 31, 0, 16, 0xFFFF]),
                         st.integers(32, fs), st.integers(0, 0xFFFF)))
    room = fs - mac
    snap = draw(st.one_of(st.sampled_from([0, 1, 0xFFFF, 0xFFFFFFFF, 2**31, fs]),
                          st.sampled_from([x for x in (room, room + 1, room - 1) if 0 <= x < 2**32] or [0]),
                          st.integers(0, max(room, 0)), st.integers(0, 2**32 - 1)))
    u32 = st.integers(0, 2**32 - 1)
    return (status, draw(u32), snap, mac, draw(st.integers(0, 0xFFFF)), draw(u32), draw(u32),
            draw(st.integers(0, 0xFFFF)), draw(st.integers(0, 0xFFFF)))


@st.composite
def v2_ring(draw):
    """A V2 ring: slot size, slots, the headers, the octets after the last slot, the filler's seed."""
    fs = 16 * draw(st.integers(2, 32))
    nr = draw(st.integers(1, 10))
    slots = draw(st.lists(v2_slot(fs), min_size=nr, max_size=nr))
    tail = draw(st.sampled_from([0, 0, 0, 16, fs - 16, fs, 2 * fs + 8]))
    return SimpleNamespace(fs=fs, nr=nr, slots=slots, tail=tail, seed=draw(st.integers(0, 2**32 - 1)))


def build_v2(spec) -> np.ndarray:
    """The ring: random octets, each slot's header at its start."""
    ring = np.random.default_rng(spec.seed).integers(0, 256, spec.fs * spec.nr + spec.tail, dtype=np.uint8)
    for i, h in enumerate(spec.slots):
        HDR2.pack_into(ring, i * spec.fs, *h)
    return ring


def check_walk_against_the_layout(spec, cursor: int, max_frames, w: dict) -> None:
    """The walk is the run of USER slots from ``cursor`` (wrapping, at most the bound), each reported frame inside
    its slot where its header puts it, a slot whose packet is not inside it ending the run as a drop."""
    fs, nr = spec.fs, spec.nr
    limit = nr if max_frames is None else min(nr, max_frames)
    n = len(w["offsets"])
    assert [w[k].dtype for k in KEYS] == [np.dtype(d) for d in DTYPES]
    assert w["error"] in (0, 4) and w["dropped"] == (w["error"] == 4) and w["announced"] == n + w["dropped"]
    assert w["announced"] <= limit
    for i in range(n):
        slot = (cursor + i) % nr
        status, _len, snap, mac, _net, sec, nsec, tci, _tpid = spec.slots[slot]
        assert status & USER and 32 <= mac <= fs and snap <= fs - mac
        assert int(w["offsets"][i]) == slot * fs + mac and int(w["lengths"][i]) == snap
        assert slot * fs + 32 <= int(w["offsets"][i]) <= int(w["offsets"][i]) + snap <= (slot + 1) * fs
        assert int(w["status"][i]) == status and int(w["ts_ns"][i]) == sec * 10**9 + nsec
        assert int(w["vlan_tci"][i]) == (tci if status & VLAN else NO_TAG)
    assert w["csum_not_ready"] == sum(1 for s in w["status"].tolist() if s & CSUM)
    if n < limit:  # the run ended before the bound: at a slot the kernel owns, or a damaged one (taken, dropped)
        status, _len, snap, mac = spec.slots[(cursor + n) % nr][:4]
        damaged = bool(status & USER) and not (32 <= mac <= fs and snap <= fs - mac)
        assert (w["error"] == 4) == damaged and (damaged or not status & USER)


@st.composite
def walk_case(draw):
    spec = draw(v2_ring())
    cursor = draw(st.integers(0, spec.nr - 1))
    max_frames = draw(st.one_of(st.none(), st.integers(0, spec.nr + 3), st.sampled_from([2**31, 2**63 - 1, 2**64])))
    limit = spec.nr if max_frames is None else min(spec.nr, max_frames)
    rows = draw(st.one_of(st.none(), st.integers(limit, limit + 4)))
    return spec, cursor, max_frames, rows


@pytest.mark.parametrize("impl", IMPLS)
@settings(max_examples=250)
@given(case=walk_case())
def test_the_walk_is_the_run_of_ready_slots(impl, case):
    """Either implementation, fresh or caller's storage: the run the layout says, the ring untouched, the caller's
    rows past the run untouched and the dict's arrays views of the caller's storage."""
    spec, cursor, max_frames, rows = case
    ring = build_v2(spec)
    before = ring.tobytes()
    out = None if rows is None else storage(rows)
    w = impl.ring_walk_frames(ring, cursor, spec.fs, spec.nr, max_frames=max_frames, out=out)
    assert ring.tobytes() == before
    check_walk_against_the_layout(spec, cursor, max_frames, w)
    if out is not None:
        n = len(w["offsets"])
        for k, a, blank in zip(KEYS, out, storage(rows)):
            assert (n == 0 or np.shares_memory(w[k], a)) and a[n:].tolist() == blank[n:].tolist(), k


@needs_core
@settings(max_examples=400)
@given(case=walk_case())
def test_core_walk_equals_the_reference(case):
    spec, cursor, max_frames, rows = case
    ring = build_v2(spec)
    outs = [None if rows is None else storage(rows) for _ in range(2)]
    got = _core.ring_walk_frames(ring, cursor, spec.fs, spec.nr, max_frames=max_frames, out=outs[0])
    want = ref.ring_walk_frames(ring, cursor, spec.fs, spec.nr, max_frames=max_frames, out=outs[1])
    same_walk(got, want)
    if rows is not None:
        assert [a.tolist() for a in outs[0]] == [a.tolist() for a in outs[1]]


@st.composite
def release_case(draw):
    spec = draw(v2_ring())
    return spec, draw(st.integers(0, spec.nr - 1)), draw(st.sampled_from([0, spec.nr, 1]) | st.integers(0, spec.nr))


@pytest.mark.parametrize("impl", IMPLS)
@settings(max_examples=200)
@given(case=release_case())
def test_release_hands_back_count_slots_from_the_cursor(impl, case):
    """Exactly the status words of the ``count`` slots from the cursor (wrapping) become TP_STATUS_KERNEL; every
    other octet stays as it was (and the compiled release leaves what the reference leaves)."""
    spec, cursor, count = case
    ring = build_v2(spec)
    want = ring.copy()
    for i in range(count):
        struct.pack_into("=I", want, (cursor + i) % spec.nr * spec.fs, 0)
    impl.ring_release_frames(ring, cursor, spec.fs, spec.nr, count)
    assert ring.tobytes() == want.tobytes()
    if HAVE_CORE:
        other = build_v2(spec)
        (ref if impl is not ref else _core).ring_release_frames(other, cursor, spec.fs, spec.nr, count)
        assert other.tobytes() == ring.tobytes()


def test_a_release_of_the_whole_ring_after_a_walk_of_it(impl):
    """Every slot ready, the cursor in the middle: one run of the whole ring, in slot order round the end;
    handed back whole, the next walk finds nothing."""
    spec = SimpleNamespace(fs=64, nr=5, tail=0, seed=1,
                           slots=[(USER | (CSUM if i % 2 else 0), 9, 10 + i, 32 + 2 * i, 0, 1, i, 0, 0)
                                  for i in range(5)])
    ring = build_v2(spec)
    w = impl.ring_walk_frames(ring, 3, 64, 5)
    assert w["offsets"].tolist() == [3 * 64 + 38, 4 * 64 + 40, 32, 64 + 34, 128 + 36]
    assert w["lengths"].tolist() == [13, 14, 10, 11, 12] and w["csum_not_ready"] == 2
    assert (w["announced"], w["dropped"], w["error"]) == (5, 0, 0)
    impl.ring_release_frames(ring, 3, 64, 5, 5)
    assert all(struct.unpack_from("=I", ring, i * 64)[0] == 0 for i in range(5))
    assert impl.ring_walk_frames(ring, 3, 64, 5)["announced"] == 0


# ------------------------------------------------------------------------------------------ wrong arguments


def _ring(fs: int = 64, nr: int = 4) -> np.ndarray:
    spec = SimpleNamespace(fs=fs, nr=nr, tail=0, seed=2, slots=[(USER, 60, 60, 32, 46, 0, 0, 0, 0)] * nr)
    return build_v2(spec)


def _readonly(a: np.ndarray) -> np.ndarray:
    a = a.copy()
    a.flags.writeable = False
    return a


_HUGE = [2**62, 2**63 - 1, 2**63, 2**64, 2**64 + 64]

#: (what, walk arguments (ring, cursor, frame_size, frame_nr, keywords), exception)
WALK_ERRORS = [
    ("cursor a str", lambda r: (r, "1", 64, 4, {}), TypeError),
    ("cursor a float", lambda r: (r, 1.0, 64, 4, {}), TypeError),
    ("cursor None", lambda r: (r, None, 64, 4, {}), TypeError),
    ("frame_size a float", lambda r: (r, 0, 64.0, 4, {}), TypeError),
    ("frame_nr a str", lambda r: (r, 0, 64, "4", {}), TypeError),
    ("max_frames a float", lambda r: (r, 0, 64, 4, {"max_frames": 2.0}), TypeError),
    ("max_frames a str", lambda r: (r, 0, 64, 4, {"max_frames": "2"}), TypeError),
    ("cursor -1", lambda r: (r, -1, 64, 4, {}), ValueError),
    ("cursor == frame_nr", lambda r: (r, 4, 64, 4, {}), ValueError),
    ("cursor past the slots", lambda r: (r, 3, 64, 2, {}), ValueError),
    ("frame_size -64", lambda r: (r, 0, -64, 4, {}), ValueError),
    ("frame_size 0", lambda r: (r, 0, 0, 4, {}), ValueError),
    ("frame_size 16", lambda r: (r, 0, 16, 4, {}), ValueError),
    ("frame_size 40", lambda r: (r, 0, 40, 4, {}), ValueError),
    ("frame_size 56", lambda r: (r, 0, 56, 4, {}), ValueError),
    ("frame_nr 0", lambda r: (r, 0, 64, 0, {}), ValueError),
    ("frame_nr -1", lambda r: (r, 0, 64, -1, {}), ValueError),
    ("slots past the ring", lambda r: (r, 0, 64, 5, {}), ValueError),
    ("a slot past the ring", lambda r: (r, 0, 272, 1, {}), ValueError),
    ("max_frames -1", lambda r: (r, 0, 64, 4, {"max_frames": -1}), ValueError),
    ("max_frames -2**63", lambda r: (r, 0, 64, 4, {"max_frames": -(2**63)}), ValueError),
    ("ring uint16", lambda r: (r.view(np.uint16), 0, 64, 2, {}), TypeError),
    ("ring 2-D", lambda r: (r.reshape(4, -1), 0, 64, 1, {}), ValueError),
    ("ring strided", lambda r: (r[::2], 0, 64, 2, {}), ValueError),
    ("ring no buffer", lambda r: (list(r.tobytes()), 0, 64, 4, {}), TypeError),
    ("out four arrays", lambda r: (r, 0, 64, 4, {"out": storage(4)[:4]}), TypeError),
    ("out not a tuple", lambda r: (r, 0, 64, 4, {"out": "five"}), TypeError),
    ("out offsets int32", lambda r: (r, 0, 64, 4, {"out": (np.zeros(4, np.int32),) + storage(4)[1:]}), TypeError),
    ("out ts_ns uint64", lambda r: (r, 0, 64, 4, {"out": storage(4)[:3] + (np.zeros(4, np.uint64),)
                                                  + storage(4)[4:]}), TypeError),
    ("out a row short", lambda r: (r, 0, 64, 4, {"out": storage(4)[:4] + (np.zeros(3, np.uint32),)}), ValueError),
    ("out short for max_frames", lambda r: (r, 0, 64, 4, {"max_frames": 3, "out": storage(2)}), ValueError),
    ("out short for the ring", lambda r: (r, 0, 64, 4, {"max_frames": 2**63, "out": storage(3)}), ValueError),
    ("out read-only", lambda r: (r, 0, 64, 4, {"out": storage(4)[:2] + (_readonly(storage(4)[2]),)
                                              + storage(4)[3:]}), ValueError),
    ("out strided", lambda r: (r, 0, 64, 4, {"out": (np.zeros(8, np.int64)[::2],) + storage(4)[1:]}), ValueError),
] + [(f"frame_nr {v}", lambda r, v=v: (r, 0, 64, v, {}), ValueError) for v in _HUGE] \
  + [(f"frame_size {v}", lambda r, v=v: (r, 0, v, 1, {}), ValueError) for v in _HUGE] \
  + [(f"frame_size {v} times 2", lambda r, v=v: (r, 0, v - v % 16, 2, {}), ValueError) for v in _HUGE] \
  + [(f"cursor {v}", lambda r, v=v: (r, v, 64, 4, {}), ValueError) for v in _HUGE] \
  + [(f"cursor -{v}", lambda r, v=v: (r, -v, 64, 4, {}), ValueError) for v in _HUGE]


def _outcome(fn) -> tuple:
    try:
        return ("ok", fn())
    except Exception as exc:  # compared between the implementations
        return ("raise", type(exc), str(exc))


@pytest.mark.parametrize("what, args, exc", WALK_ERRORS, ids=[c[0] for c in WALK_ERRORS])
def test_wrong_walk_arguments(what, args, exc):
    """The reference's exception type; the compiled walk's type and message the same; the ring untouched."""
    ring = _ring()
    before = ring.tobytes()
    outcomes = []
    for impl in [p.values[0] for p in IMPLS]:
        r, cursor, fs, nr, kw = args(ring)
        with pytest.raises(exc) as info:
            impl.ring_walk_frames(r, cursor, fs, nr, **kw)
        outcomes.append((info.type, str(info.value)))
    assert ring.tobytes() == before
    assert len(set(outcomes)) == 1, outcomes


#: (what, release arguments (ring, cursor, frame_size, frame_nr, count), exception)
RELEASE_ERRORS = [
    ("ring read-only", lambda r: (_readonly(r), 0, 64, 4, 1), ValueError),
    ("ring bytes", lambda r: (r.tobytes(), 0, 64, 4, 1), ValueError),
    ("ring uint32", lambda r: (r.view(np.uint32), 0, 64, 4, 1), TypeError),
    ("count -1", lambda r: (r, 0, 64, 4, -1), ValueError),
    ("count frame_nr + 1", lambda r: (r, 0, 64, 4, 5), ValueError),
    ("count a float", lambda r: (r, 0, 64, 4, 1.0), TypeError),
    ("count None", lambda r: (r, 0, 64, 4, None), TypeError),
    ("cursor == frame_nr", lambda r: (r, 4, 64, 4, 1), ValueError),
    ("frame_size 24", lambda r: (r, 0, 24, 4, 1), ValueError),
    ("slots past the ring", lambda r: (r, 0, 64, 5, 1), ValueError),
] + [(f"count {v}", lambda r, v=v: (r, 0, 64, 4, v), ValueError) for v in _HUGE] \
  + [(f"count -{v}", lambda r, v=v: (r, 0, 64, 4, -v), ValueError) for v in _HUGE] \
  + [(f"frame_nr {v}", lambda r, v=v: (r, 0, 64, v, 1), ValueError) for v in _HUGE] \
  + [(f"frame_size {v}", lambda r, v=v: (r, 0, v - v % 16, 1, 1), ValueError) for v in _HUGE]


@pytest.mark.parametrize("what, args, exc", RELEASE_ERRORS, ids=[c[0] for c in RELEASE_ERRORS])
def test_wrong_release_arguments(what, args, exc):
    ring = _ring()
    before = ring.tobytes()
    outcomes = []
    for impl in [p.values[0] for p in IMPLS]:
        with pytest.raises(exc) as info:
            impl.ring_release_frames(*args(ring))
        outcomes.append((info.type, str(info.value)))
    assert ring.tobytes() == before
    assert len(set(outcomes)) == 1, outcomes


@pytest.mark.parametrize("value", [True, False, np.int64(2), np.uint8(1), np.int32(-1)])
def test_bools_and_numpy_integers_are_taken_alike(value):
    """Integers that are not ``int`` (bools, numpy scalars) as any argument: both implementations agree (an index
    or the same error)."""
    ring = _ring()
    for call in (lambda impl: impl.ring_walk_frames(ring.copy(), value, 64, 4),
                 lambda impl: impl.ring_walk_frames(ring.copy(), 0, 64, value),
                 lambda impl: impl.ring_walk_frames(ring.copy(), 0, 64, 4, max_frames=value),
                 lambda impl: impl.ring_release_frames(ring.copy(), 0, 64, 4, value),
                 lambda impl: impl.ring_release_frames(ring.copy(), value, 64, 4, 1)):
        outcomes = []
        for impl in [p.values[0] for p in IMPLS]:
            o = _outcome(lambda call=call, impl=impl: call(impl))
            outcomes.append(o if o[0] == "raise" else ("ok", None if o[1] is None else
                                                       {k: (v.tolist() if isinstance(v, np.ndarray) else v)
                                                        for k, v in o[1].items()}))
        assert all(o == outcomes[0] for o in outcomes), outcomes


# ------------------------------------------------------------------------------------------ the node


TAG = 5  # the VLAN tag of a "vlan" slot


@st.composite
def node_slot(draw, iface: int, calm: bool, fs: int):
    """A slot as the kernel leaves it: ready (a frame of the oracle's mix, tp_mac as the kernel sets it or close),
    the kernel's (the same, not ready), damaged (tp_mac or tp_snaplen out of the slot) or with a stripped tag."""
    data, status = draw(ring_frame(iface, calm))
    state = draw(st.sampled_from(["ready"] * 14 + ["kernel", "kernel", "damaged", "vlan"]))
    mac = draw(st.sampled_from([66, 66, 66, 32, 82, 48]))
    return state, data, status, mac


def put_slot(ring: np.ndarray, fs: int, i: int, slot) -> None:
    """Write ``slot`` into slot ``i``: the header, the frame at tp_mac (cut to the slot: tp_len the whole)."""
    state, data, status, mac = slot
    base = i * fs
    snap = min(len(data), fs - mac)
    ring[base:base + fs] = 0
    ring[base + mac:base + mac + snap] = np.frombuffer(data[:snap], np.uint8)
    if state == "kernel":
        status = 0
    elif state == "vlan":
        status |= VLAN
    tci = TAG if status & VLAN else 0
    if state == "damaged":  # the packet past the slot's end, by tp_snaplen or by tp_mac
        mac, snap = (mac, fs - mac + 1) if len(data) % 2 else (fs + 2, 0)
    HDR2.pack_into(ring, base, status, len(data), snap, mac, mac + 14, 1_700_000_000, 1000 + i, tci, 0x8100)


@st.composite
def frames_world(draw):
    iface, calm = draw(st.integers(0, 2)), draw(st.booleans())
    fs = draw(st.sampled_from([256, 2048]))
    slots = draw(st.lists(node_slot(iface, calm, fs), min_size=1, max_size=8))
    nr = len(slots)
    return SimpleNamespace(
        iface=iface, fs=fs, slots=slots, nr=nr, cursor=draw(st.integers(0, nr - 1)),
        max_blocks=draw(st.integers(1, nr)), hold=draw(st.booleans()), node_cap=draw(st.integers(2, 8)),
        batch_cap=draw(st.integers(2, 8)), handover=draw(st.booleans()),
        rows=draw(st.sampled_from([nr, 64, 64, 1, 2, 3])), tail=draw(st.sampled_from([0, 0, 16, fs])),
        tx=[draw(tx_ring(calm)) for _ in range(3)], calls=draw(st.integers(1, 4)),
        refill=draw(st.lists(node_slot(iface, True, fs), max_size=8)))


def frames_ring_of(spec) -> np.ndarray:
    ring = np.zeros(spec.nr * spec.fs + spec.tail, np.uint8)
    ring[spec.nr * spec.fs:] = 0xEE
    for i, slot in enumerate(spec.slots):
        put_slot(ring, spec.fs, i, slot)
    return ring


def _status(ring: np.ndarray, fs: int, i: int) -> int:
    return struct.unpack_from("=I", ring, i * fs)[0]


def check_ledger(result: tuple, counts: np.ndarray, node) -> None:
    """After RING_IDLE, RING_LIMIT or RING_BLOCK every packet received is disposed of; after RING_CHUNK the gap is
    the chunk's packets left to the caller; the frames received are those of the runs taken, less the stopped run's
    frames after the chunk."""
    reason, walked, start, stop, present = result[0], *result[5:9]
    c = (counts - 1000).tolist()
    gap = c[EngineCounter.RECEIVED] - sum(c[DISPOSITIONS])
    if reason == RING_CHUNK and present:
        assert gap == undisposed(node, stop - start)
        assert 0 <= gap <= stop - start <= walked - start
    else:
        assert gap == 0
    received = c[EngineCounter.RECEIVED] - c[EngineCounter.RECEIVED_INNER]
    assert received == result[3] - (walked - stop if reason == RING_CHUNK else 0)


def drive(impl, spec) -> list[dict]:
    """``spec.calls`` calls of run_ring(per_frame=True) in a row over ``spec``'s ring, the cursor carried over:
    after each, the caller hands back the run the node left it (RING_CHUNK: the ``walked`` slots; RING_BLOCK: the
    run as the walk takes it) and the kernel fills the slots it owns, in slot order, from ``spec.refill``.  Each
    call's return, what it wrote and the chunk it stopped at; the ledger checked at every return."""
    node, nc, buffer, rings, heads = make_world(impl, spec)
    ring = frames_ring_of(spec)
    walk_out = walk_storage(spec.rows)
    refill = list(spec.refill)
    cursor, history = spec.cursor, []
    for _ in range(spec.calls):
        drops = np.zeros(len(DropReason), np.uint64)
        counts = np.full(len(EngineCounter), 1000, np.uint64)
        result = tuple(int(v) for v in node.run_ring(
            impl.Batch(spec.batch_cap), ring, spec.fs, spec.nr, cursor, spec.iface, walk_out, drops=drops,
            counts=counts, now_ns=now_of(spec), max_blocks=spec.max_blocks, hold=spec.hold, per_frame=True))
        check_ledger(result, counts, node)
        out = {"result": result}
        reason, cursor, walked = result[0], result[1], result[5]
        assert 0 <= cursor < spec.nr and result[2] <= spec.max_blocks
        if reason == RING_CHUNK:
            out["walk"] = [a[:walked].tolist() for a in walk_out]
            if result[8]:
                out["chunk"] = chunk_outputs(node, result[7] - result[6])
        out.update(outputs(node, buffer, rings, heads, ring, drops, counts, nc))
        history.append(out)
        if reason == RING_CHUNK:
            taken = walked
        elif reason == RING_BLOCK:
            taken = ref.ring_walk_frames(ring, cursor, spec.fs, spec.nr, max_frames=spec.rows)["announced"]
            assert taken
        else:
            taken = 0
        ref.ring_release_frames(ring, cursor, spec.fs, spec.nr, taken)
        cursor = (cursor + taken) % spec.nr
        for i in range(spec.nr):
            if refill and not _status(ring, spec.fs, i) & USER:
                put_slot(ring, spec.fs, i, refill.pop(0))
    return history


@needs_core
@settings(max_examples=200)
@given(spec=frames_world())
def test_core_run_ring_per_frame_equals_the_reference(spec):
    """Every call's 11-tuple, RX ring, TX rings and heads, drops, ledger, ring_tx, stopped chunk's walk rows and
    outputs, what the buffer holds, the neighbor cache's counters: the same, call after call."""
    assert drive(_core, spec) == drive(ref, spec)


@pytest.mark.parametrize("impl", IMPLS)
@settings(max_examples=100)
@given(spec=frames_world())
def test_calls_in_a_row_keep_the_ledger_and_the_cursor(impl, spec):
    drive(impl, spec)  # the ledger and the cursor are checked at every return


def drive_naively(spec, result) -> dict:
    """The reference's ``ring_walk_frames``, ``run_block`` and ``ring_release_frames`` over ``spec``'s ring, a run
    and a chunk at a time, up to where one ``run_ring(per_frame=True)`` call said it stopped (``result``)."""
    reason, cursor, blocks, frames, csum, walked, start, stop, present, _err, _err_iface = result
    node, _nc, _buffer, rings, heads = make_world(ref, spec)
    ring = frames_ring_of(spec)
    ledger = Ledger()
    cur, seen_frames, seen_csum = spec.cursor, 0, 0
    for b in range(blocks):
        w = ref.ring_walk_frames(ring, cur, spec.fs, spec.nr, max_frames=spec.rows)
        n = len(w["offsets"])
        assert n and w["error"] == 0 and w["announced"] == n and (w["vlan_tci"] == NO_TAG).all()
        seen_frames += n
        seen_csum += w["csum_not_ready"]
        stopped_here = reason == RING_CHUNK and b == blocks - 1
        if run_chunks(node, spec, ring, w, ledger, stopped_here, result):
            break
        assert not stopped_here, "run_ring stopped at a chunk the run does not have"
        ref.ring_release_frames(ring, cur, spec.fs, spec.nr, n)
        cur = (cur + n) % spec.nr
    assert (cur, seen_frames, seen_csum) == (cursor, frames, csum)
    if reason == RING_IDLE:
        assert not _status(ring, spec.fs, cur) & USER
    elif reason == RING_BLOCK:
        w = ref.ring_walk_frames(ring, cur, spec.fs, spec.nr, max_frames=spec.rows)
        assert w["error"] or (w["vlan_tci"] != NO_TAG).any()
    elif reason == RING_LIMIT:
        assert blocks == spec.max_blocks
    return ledger.outputs(ring, rings, heads)


@pytest.mark.parametrize("impl", IMPLS)
@settings(max_examples=120)
@given(spec=frames_world())
def test_run_ring_per_frame_is_the_runs_walked_and_run_one_by_one(impl, spec):
    got = drive(impl, SimpleNamespace(**{**vars(spec), "calls": 1}))[0]
    want = drive_naively(spec, got["result"])
    assert {k: got[k] for k in want} == want


# ------------------------------------------------------------------------------------------ edges


def _v2(slots: list, fs: int = 256, tail: int = 0) -> np.ndarray:
    ring = np.zeros(len(slots) * fs + tail, np.uint8)
    for i, slot in enumerate(slots):
        put_slot(ring, fs, i, slot)
    return ring


def _ready(data: bytes, state: str = "ready") -> tuple:
    return (state, data, USER, 66)


def _call(impl, node, ring, fs: int = 256, **kw):
    args = dict(cursor=0, walk_out=walk_storage(16), drops=np.zeros(len(DropReason), np.uint64),
                counts=np.zeros(len(EngineCounter), np.uint64), max_blocks=1)
    args.update(kw)
    return node.run_ring(impl.Batch(8), ring, fs, ring.shape[0] // fs, args.pop("cursor"), 0, args.pop("walk_out"),
                         per_frame=True, **args)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("state", ["damaged", "vlan"])
def test_a_run_with_a_damaged_or_tagged_slot_is_left_whole(impl, state):
    """Storage of two rows: the first run (two dropped frames) is done and handed back; the second run holds a
    damaged slot or a stripped tag: RING_BLOCK at its first slot, nothing of it written or counted."""
    slots = [_ready(_dropped(b"a")), _ready(_dropped(b"b")), _ready(_dropped(b"c")), _ready(_dropped(b"d"), state)]
    ring = _v2(slots)
    node = _plain(impl)
    drops, counts = np.zeros(len(DropReason), np.uint64), np.zeros(len(EngineCounter), np.uint64)
    before = ring.tobytes()
    result = _call(impl, node, ring, cursor=2, max_blocks=2, walk_out=walk_storage(2), drops=drops, counts=counts)
    assert tuple(result) == (RING_BLOCK, 2, 0, 0, 0, 0, 0, 0, 0, 0, -1)
    assert ring.tobytes() == before and not drops.any() and not counts.any()
    result = _call(impl, node, ring, cursor=0, max_blocks=2, walk_out=walk_storage(2), drops=drops, counts=counts)
    assert tuple(result) == (RING_BLOCK, 2, 1, 2, 0, 0, 0, 0, 0, 0, -1)
    assert _status(ring, 256, 0) == _status(ring, 256, 1) == 0 and ring.tobytes()[512:] == before[512:]
    assert drops[DropReason.OTHER_HOST] == 2 and counts[EngineCounter.RECEIVED] == counts[EngineCounter.DROPPED] == 2


@pytest.mark.parametrize("impl", IMPLS)
def test_an_idle_cursor_slot_is_ring_idle_and_nothing_is_read(impl):
    """The cursor's slot is the kernel's (the slots after it ready): RING_IDLE, nothing written; a run that ends at
    a kernel slot is done, and the next run, from that slot, is RING_IDLE."""
    slots = [_ready(_dropped(), "kernel"), _ready(_dropped()), _ready(_dropped())]
    ring = _v2(slots)
    node = _plain(impl)
    drops, counts = np.zeros(len(DropReason), np.uint64), np.zeros(len(EngineCounter), np.uint64)
    before = ring.tobytes()
    assert tuple(_call(impl, node, ring, max_blocks=3, drops=drops, counts=counts)) == (
        RING_IDLE, 0, 0, 0, 0, 0, 0, 0, 0, 0, -1)
    assert ring.tobytes() == before and not drops.any() and not counts.any()
    assert tuple(_call(impl, node, ring, cursor=1, max_blocks=3, drops=drops, counts=counts)) == (
        RING_IDLE, 0, 1, 2, 0, 0, 0, 0, 0, 0, -1)
    assert [_status(ring, 256, i) for i in range(3)] == [0, 0, 0] and counts[EngineCounter.DROPPED] == 2


@pytest.mark.parametrize("impl", IMPLS)
def test_max_blocks_bounds_the_runs_and_storage_bounds_a_run(impl):
    """Four ready slots, storage of one row: each run is one slot, max_blocks of them taken (RING_LIMIT); with
    storage for three, a run of three then one; with storage for all, one run round the end of the ring."""
    for rows, max_blocks, cursor, want in ((1, 2, 3, (RING_LIMIT, 1, 2, 2)), (3, 2, 0, (RING_LIMIT, 0, 2, 4)),
                                           (3, 1, 1, (RING_LIMIT, 0, 1, 3)), (16, 2, 2, (RING_IDLE, 2, 1, 4))):
        ring = _v2([_ready(_dropped(bytes([k]))) for k in range(4)])
        counts = np.zeros(len(EngineCounter), np.uint64)
        result = _call(impl, _plain(impl), ring, cursor=cursor, max_blocks=max_blocks, walk_out=walk_storage(rows),
                       counts=counts)
        assert tuple(result)[:4] == want, (rows, max_blocks, cursor)
        ready = [i for i in range(4) if _status(ring, 256, i) & USER]
        taken = [(cursor + k) % 4 for k in range(want[3])]
        assert ready == sorted(set(range(4)) - set(taken))
        assert counts[EngineCounter.RECEIVED] == counts[EngineCounter.DROPPED] == want[3]


@pytest.mark.parametrize("impl", IMPLS)
def test_a_chunk_for_the_caller_keeps_the_run(impl):
    """Capacity 2, a run of five slots round the end: the second chunk holds a frame for the router (CONTROL);
    the node stops there, the run's slots still user space's, the walk's rows the run's frames in slot order."""
    frames = [_dropped(b"1"), _dropped(b"2"), _fwd(0, "2001:db8:1::1"), _dropped(b"3"), _dropped(b"4")]
    order = [3, 4, 0, 1, 2]  # frames[k] in slot order[k]: the run from slot 3 holds them in order
    slots = [None] * 5
    for k, i in enumerate(order):
        slots[i] = _ready(frames[k])
    ring = _v2(slots)
    node = _plain(impl, capacity=2)
    walk_out = walk_storage(16)
    drops, counts = np.zeros(len(DropReason), np.uint64), np.zeros(len(EngineCounter), np.uint64)
    result = _call(impl, node, ring, cursor=3, walk_out=walk_out, drops=drops, counts=counts)
    assert tuple(result) == (RING_CHUNK, 3, 1, 5, 0, 5, 2, 4, (1 << Action.CONTROL) | (1 << Action.DROP), 0, -1)
    assert all(_status(ring, 256, i) & USER for i in range(5))
    assert [ring[o:o + n].tobytes() for o, n in zip(walk_out[0][:5], walk_out[1][:5])] == frames
    assert counts[EngineCounter.RECEIVED] == 4 and counts[EngineCounter.DROPPED] == 3 and drops.sum() == 3


@pytest.mark.parametrize("impl", IMPLS)
def test_forwarded_frames_of_a_run(impl):
    """A run of frames forwarded out of interface 0 onto its TX ring: done, handed back, booked forwarded."""
    spec = SimpleNamespace(node_cap=4, handover=False, tx=[(16, 2048, [], 0), None, None])
    node, _nc, _buffer, rings, heads = make_world(impl, spec)
    ring = _v2([_ready(_fwd(0, FORWARDED_TO[0], bytes([k]) * 9)) for k in range(6)], tail=100)
    counts = np.zeros(len(EngineCounter), np.uint64)
    result = _call(impl, node, ring, cursor=4, counts=counts)
    assert tuple(result) == (RING_LIMIT, 4, 1, 6, 0, 0, 0, 0, 0, 0, -1)
    assert counts[EngineCounter.FORWARDED] == counts[EngineCounter.RECEIVED] == 6 and int(heads[0][0]) == 6
    assert not any(_status(ring, 256, i) for i in range(6))


V2_BAD = [  # (what, keyword changes, exception, message)
    ("slot size 56 (a V3 multiple of 8)", {"block_size": 56, "block_nr": 1}, ValueError, "slots of"),
    ("slot size 16", {"block_size": 16, "block_nr": 1}, ValueError, "slots of"),
    ("slot size 40", {"block_size": 40, "block_nr": 1}, ValueError, "slots of"),
    ("slots past the ring", {"block_nr": 5}, ValueError, "slots of"),
    ("slot size near 2**63", {"block_size": 2**63 - 64, "block_nr": 1}, ValueError, "slots of"),
    ("slot count near 2**63", {"block_nr": 2**63 - 1}, ValueError, "slots of"),
    ("cursor == slots", {"cursor": 4}, ValueError, "cursor"),
    ("max_blocks past the slots", {"max_blocks": 5}, ValueError, "max_blocks"),
    ("walk_out 0 rows", {"walk_out": walk_storage(0)}, ValueError, "at least 1 rows"),
]


@pytest.mark.parametrize("what, change, exc, match", V2_BAD, ids=[b[0] for b in V2_BAD])
def test_per_frame_arguments_are_refused_alike(what, change, exc, match):
    """Each wrong argument: the same exception and message in both implementations, nothing written."""
    outcomes = []
    for impl in [p.values[0] for p in IMPLS]:
        ring = _v2([_ready(_dropped())] * 4, fs=128)
        before = ring.tobytes()
        counts = np.zeros(len(EngineCounter), np.uint64)
        args = dict(block_size=128, block_nr=4, cursor=0, walk_out=walk_storage(8), max_blocks=1) | change
        with pytest.raises(exc, match=match) as info:
            _plain(impl).run_ring(impl.Batch(8), ring, args.pop("block_size"), args.pop("block_nr"),
                                  args.pop("cursor"), 0, args.pop("walk_out"), drops=np.zeros(len(DropReason),
                                                                                              np.uint64),
                                  counts=counts, per_frame=True, **args)
        assert ring.tobytes() == before and not counts.any()
        outcomes.append((info.type, str(info.value)))
    assert len(set(outcomes)) == 1, outcomes
