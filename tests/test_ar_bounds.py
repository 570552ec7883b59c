"""The access router's bounds against hostile and heavy input: the buffer key space shared with the engine,
the NAR records an unauthenticated sender can make, the deadline heap and the session table.

Failed before the fixes they guard: the NAR handed out buffer keys 1, 2, 3 ... forever (the engine's buffer
raised at 1 024); every Attach carrying any AP-REQ bytes left a record for ``answer_cache_ms`` with no bound."""

from __future__ import annotations

import random
from collections.abc import MutableMapping
from ipaddress import IPv6Address
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fmipfast.ar import AccessRouter, NarState, Session, SessionTable
from fmipfast.constants import HandoverStatus
from fmipfast.errors import CapacityError
from fmipfast.keys import KeyPool
from fmipfast.messages import Attach, Identifier, LinkLayerAddress, LkbMessage, MessageAuthCode, encode
from fmipfast.protocol import BufferDrop, ProxyAdd, ProxyRemove, Received, Tick, Verified, Verify, sign
from tests.test_ar import PAR2, he_status, hi_bytes, names, real, rx
from tests.test_handover_fsm import AR_B, MS, T0

NCOAS = [IPv6Address(f"2001:db8:b::{i + 0x100:x}") for i in range(64)]


def _hi(ar: AccessRouter, ident: int, ncoa: IPv6Address, now: int):
    return real(ar.handle(rx(hi_bytes(ident=ident, ncoa=ncoa)), now))


def test_an_exhausted_key_pool_is_a_handover_error_insufficient_resources_never_an_exception():
    pool = KeyPool(2)
    ar = AccessRouter(AR_B, buffer_keys=pool)
    keys = []
    for i in range(2):
        out = _hi(ar, i + 1, NCOAS[i], T0)
        (add,) = [a for a in out if isinstance(a, ProxyAdd)]
        keys.append(add.key)
    assert sorted(keys) == [0, 1] and len(pool) == 2
    out = _hi(ar, 3, NCOAS[2], T0)
    assert names(out) == ["Send"] and he_status(out[0]) == HandoverStatus.INSUFFICIENT_RESOURCES
    assert ar.counters["refused_no_buffer_key"] == 1 and ar.counters["refused_insufficient_resources"] == 1
    # the driver (the engine) returns a key when the buffer is gone; the next HI gets it
    pool.release(keys[0])
    out = _hi(ar, 4, NCOAS[3], T0 + MS)
    assert [a.key for a in out if isinstance(a, ProxyAdd)] == [keys[0]]


def test_thousands_of_handovers_through_a_small_pool_the_machine_owns():
    """Without a driver's pool the machine returns keys itself when it forgets a record: handovers far past
    any fixed key count go on (the 1 024th raised before)."""
    ar = AccessRouter(AR_B, max_handovers=4, answer_cache_ms=10)
    now = T0
    for i in range(3000):
        ncoa = NCOAS[i % len(NCOAS)]
        out = _hi(ar, i % 60000 + 1, ncoa, now)
        assert any(isinstance(a, ProxyAdd) for a in out), f"handover {i} refused: {ar.counters}"
        (verify,) = [a for a in out if isinstance(a, Verify)]
        out = real(ar.handle(Verified(verify.request_id, None, "bad ticket"), now))
        assert {"ProxyRemove", "BufferDrop"} <= set(names(out))
        now += 20 * MS
        ar.handle(Tick(), now)
    assert len(ar.buffer_keys) == 0 and not ar.nar


def test_a_flood_of_garbage_attach_is_bounded_rate_limited_and_leaves_nothing():
    ar = AccessRouter(AR_B, max_handovers=8, answer_cache_ms=5000, attach_rate=2, attach_burst=2,
                      attach_global_rate=100)
    rng = random.Random(7)
    now = T0
    verifies = 0
    for i in range(10_000):
        src = IPv6Address(f"2001:db8:b::{rng.randrange(1, 1 << 16):x}")
        att = encode(Attach((LinkLayerAddress(bytes(8)), Identifier(i & 0xFFFF), LkbMessage(rng.randbytes(40)))),
                     src, AR_B)
        out = real(ar.handle(Received(att, src, AR_B, 255, "B"), now))
        for v in (a for a in out if isinstance(a, Verify)):
            verifies += 1
            assert not ar.handle(Verified(v.request_id, None, "garbage"), now) or True
        assert len(ar.nar) <= ar.max_records and len(ar._attach_buckets) <= ar.max_records
        now += 100_000  # 10 000 Attach/s
    # 1 s of flood: the global bucket admits about its rate (plus its burst), the rest is dropped unverified
    assert verifies <= 100 + 10 + 2
    assert ar.counters["attach_rate_limited"] >= 10_000 - verifies - ar.counters["refused_insufficient_resources"]
    assert ar.counters["initial_refused"] == verifies
    assert not ar.nar and not ar.sessions, "refused initial attaches leave no record"
    assert ar.next_deadline() is None


def test_one_source_cannot_spend_the_whole_verification_budget():
    ar = AccessRouter(AR_B, attach_rate=1, attach_burst=3, attach_global_rate=1000)
    src = IPv6Address("2001:db8:b::99")
    admitted = 0
    for i in range(100):
        att = encode(Attach((Identifier(i), LkbMessage(b"\x0e\x01junk"))), src, AR_B)
        out = real(ar.handle(Received(att, src, AR_B, 255, "B"), T0 + i * MS))
        for v in (a for a in out if isinstance(a, Verify)):
            admitted += 1
            ar.handle(Verified(v.request_id, None, "garbage"), T0 + i * MS)
    assert admitted <= 3 + 1  # the burst, and 100 ms at 1/s refills less than one more
    other = IPv6Address("2001:db8:b::98")  # another source is still served
    att = encode(Attach((Identifier(1), LkbMessage(b"\x0e\x01junk"))), other, AR_B)
    assert "Verify" in names(ar.handle(Received(att, other, AR_B, 255, "B"), T0 + 100 * MS))


def test_records_are_capped_and_an_hi_beyond_is_answered_without_a_record():
    ar = AccessRouter(AR_B, max_handovers=1000, max_records=5)
    for i in range(5):
        out = _hi(ar, i + 1, NCOAS[i], T0)
        (verify,) = [a for a in out if isinstance(a, Verify)]
        ar.handle(Verified(verify.request_id, None, "bad"), T0)  # refused: the record answers duplicates
    assert len(ar.nar) == 5 and all(h.state == NarState.REFUSED for h in ar.nar.values())
    out = _hi(ar, 6, NCOAS[6], T0)
    assert names(out) == ["Send"] and he_status(out[0]) == HandoverStatus.INSUFFICIENT_RESOURCES
    assert len(ar.nar) == 5 and ar.counters["records_full"] == 1


def test_deadlines_come_from_a_heap_in_order_and_moved_deadlines_are_not_fired_early():
    ar = AccessRouter(AR_B, max_handovers=100, answer_cache_ms=50)
    reqs = []
    for i in range(20):
        out = _hi(ar, i + 1, NCOAS[i], T0 + i * MS)
        reqs += [a.request_id for a in out if isinstance(a, Verify)]
    assert ar.next_deadline() == T0 + 1000 * MS  # the HI's lifetime (hi_bytes: 1000 ms), the first record's
    for r in reqs[:10]:  # refused now: their records only answer duplicates for answer_cache_ms
        ar.handle(Verified(r, None, "bad"), T0 + 30 * MS)
    assert ar.next_deadline() == T0 + 80 * MS
    out = real(ar.handle(Tick(), T0 + 80 * MS))
    assert out == [] and len(ar.nar) == 10  # the refused ones are forgotten, the verifying ones stay
    assert ar.next_deadline() == T0 + (1000 + 10) * MS
    out = real(ar.handle(Tick(), T0 + 1010 * MS))  # one verification times out
    assert names(out) == ["ProxyRemove", "BufferDrop"] and len(ar.nar) == 9
    assert isinstance(out[0], ProxyRemove) and isinstance(out[1], BufferDrop)
    assert len(ar._deadlines) <= 3 * 20, "the heap holds one entry per arming, popped as they come due"


# ============================================================================================ the session table


class _Context:
    """What the NAR reads of a verified AP-REQ (fmipfast.security.lwkerb.ApContext)."""

    def __init__(self, mac_key: bytes, endtime: int | None = None) -> None:
        self.mac_key, self.endtime = mac_key, endtime

    def ap_rep(self):
        return SimpleNamespace(encode=lambda: b"\x0f\x01rep")


def _eui(i: int) -> bytes:
    return bytes.fromhex("021b63fffe8445") + bytes((i,))


def _attach(ar: AccessRouter, i: int, key: bytes, now: int, *, lkb: bytes | None = None) -> list:
    opts = (LinkLayerAddress(_eui(i)), Identifier(i + 1)) + ((LkbMessage(lkb),) if lkb else ()) + (MessageAuthCode(),)
    raw = sign(Attach(opts), key, NCOAS[i], AR_B)
    return real(ar.handle(Received(raw, NCOAS[i], AR_B, 255, "B"), now))


def test_handovers_admitted_together_never_take_the_session_table_past_its_bound():
    """Two HIs admitted while the table had room, then both MNs attach: the second waits (its Attach dropped,
    counted) instead of making a session past max_sessions, and completes once a place frees."""
    ar = AccessRouter(AR_B, max_sessions=1)
    keys = [bytes((i + 1,)) * 32 for i in range(2)]
    for i in range(2):
        out = real(ar.handle(rx(hi_bytes(ident=i + 1, ncoa=NCOAS[i], lifetime=5000)), T0))
        (verify,) = [a for a in out if isinstance(a, Verify)]
        ar.handle(Verified(verify.request_id, _Context(keys[i], endtime=T0 // 10**9 + 1 if i == 0 else None)), T0)
    assert ar.counters["hi_admitted"] == 2
    assert names(_attach(ar, 0, keys[0], T0 + MS)) == ["ProxyComplete", "Send"]
    assert _attach(ar, 1, keys[1], T0 + 2 * MS) == []
    assert ar.counters["refused_sessions_full"] == 1 and list(ar.sessions) == [NCOAS[0]]
    assert ar.nar[(PAR2, 2)].state == NarState.PROXYING
    # the first MN's ticket ends: its place frees, and the second MN's retransmitted Attach completes
    assert names(_attach(ar, 1, keys[1], T0 + 1500 * MS)) == ["ProxyComplete", "Send"]
    assert list(ar.sessions) == [NCOAS[1]] and ar.counters["session_expired"] == 1


def test_initial_attaches_verified_together_never_take_the_session_table_past_its_bound():
    ar = AccessRouter(AR_B, max_sessions=1)
    keys = [bytes((i + 1,)) * 32 for i in range(2)]
    verifies = [next(a for a in _attach(ar, i, keys[i], T0, lkb=b"\x0e\x01junk") if isinstance(a, Verify))
                for i in range(2)]
    assert names(ar.handle(Verified(verifies[0].request_id, _Context(keys[0])), T0)) == ["Send"]
    assert real(ar.handle(Verified(verifies[1].request_id, _Context(keys[1])), T0)) == []
    assert ar.counters["refused_sessions_full"] == 1 and ar.counters["initial_attached"] == 1
    assert list(ar.sessions) == [NCOAS[0]] and not any(h.ncoa == NCOAS[1] for h in ar.nar.values())


_TABLE_API = {"capacity", "version", "get", "values", "items", "has_room", "put", "remove", "next_expiry", "due"}


def test_the_session_table_is_no_dict_and_no_dict_method_reaches_past_it():
    table = SessionTable(2)
    assert not isinstance(table, dict) and not isinstance(table, MutableMapping)
    assert {n for n in dir(table) if not n.startswith("_")} == _TABLE_API, "a new method: does it hold the bound?"
    for name in ("__setitem__", "__delitem__", "update", "setdefault", "pop", "popitem", "clear", "__ior__",
                 "__or__", "copy", "fromkeys"):
        assert not hasattr(table, name), name
    with pytest.raises(AttributeError):
        table.version = 7  # type: ignore[misc]
    with pytest.raises(AttributeError):
        table.capacity = 7  # type: ignore[misc]
    with pytest.raises(ValueError):
        SessionTable(0)
    assert "mac_key" not in repr(table) and repr(table) == "SessionTable(0/2 sessions)"


_ADDR = st.integers(0, 5).map(lambda i: NCOAS[i])


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 4), st.lists(st.one_of(
    st.tuples(st.just("put"), _ADDR, st.one_of(st.none(), st.integers(0, 20))),
    st.tuples(st.just("remove"), _ADDR, st.none()),
    st.tuples(st.just("due"), st.integers(0, 20), st.none()),
    st.tuples(st.just("next_expiry"), st.none(), st.none())), max_size=40))
def test_the_session_table_bound_holds_through_every_mutating_method(capacity, ops):
    """put, remove and due in any order: never more than ``capacity`` sessions; a refused put changes nothing;
    every change moves the version; due gives each ended session once; next_expiry is the earliest end."""
    table = SessionTable(capacity)
    model: dict[IPv6Address, Session] = {}
    for op, arg, extra in ops:
        version = table.version
        if op == "put":
            session = Session(arg, bytes(32), None, extra)
            if arg in model or len(model) < capacity:
                table.put(session)
                model[arg] = session
                assert table.version == version + 1
            else:
                with pytest.raises(CapacityError):
                    table.put(session)
                assert table.version == version
        elif op == "remove":
            if arg in model:
                assert table.remove(arg) is model.pop(arg) and table.version == version + 1
            else:
                with pytest.raises(KeyError):
                    table.remove(arg)
                assert table.version == version
        elif op == "due":
            ended = table.due(arg)
            assert len({id(s) for s in ended}) == len(ended)
            assert all(model.get(s.address) is s and s.expires_ns is not None and s.expires_ns <= arg for s in ended)
            for s in ended:
                table.remove(s.address)
                del model[s.address]
            assert table.version == version + len(ended)
        else:
            ends = [s.expires_ns for s in model.values() if s.expires_ns is not None]
            assert table.next_expiry() == (min(ends) if ends else None)  # (this test removes what due() gives)
        assert len(table) == len(model) <= capacity
        assert dict(table.items()) == model and set(table) == set(model)
        assert all(table.get(a) is s and table[a] is s and a in table for a, s in model.items())
        assert table.has_room(NCOAS[0]) == (NCOAS[0] in model or len(model) < capacity)
