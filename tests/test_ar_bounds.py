"""The access router's bounds against hostile and heavy input: the buffer key space shared with the engine,
the NAR records an unauthenticated sender can make, and the deadline heap.

Failed before the fixes they guard: the NAR handed out buffer keys 1, 2, 3 ... forever (the engine's buffer
raised at 1 024); every Attach carrying any AP-REQ bytes left a record for ``answer_cache_ms`` with no bound."""

from __future__ import annotations

import random
from ipaddress import IPv6Address

from fmipfast.ar import AccessRouter, NarState
from fmipfast.constants import HandoverStatus
from fmipfast.keys import KeyPool
from fmipfast.messages import Attach, Identifier, LinkLayerAddress, LkbMessage, encode
from fmipfast.protocol import BufferDrop, ProxyAdd, ProxyRemove, Received, Tick, Verified, Verify
from tests.test_ar import he_status, hi_bytes, names, real, rx
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
