"""RFC 4302 AH (transport mode, IPv6) with HMAC-SHA-256-128: fmipfast.security.ah against scapy's independent
implementation, the anti-replay window, mutable fields, bit flips, truncation and sequence exhaustion."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet6 import (
    HBHOptUnknown,
    ICMPv6EchoRequest,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    RouterAlert,
)
from scapy.layers.ipsec import AH as ScapyAH
from scapy.layers.ipsec import IPSecIntegrityError
from scapy.layers.ipsec import SecurityAssociation as ScapySA

from fmipfast.errors import MalformedPacket, SecurityError, Truncated
from fmipfast.security import ah

KEY = bytes(range(32))
SPI = 0x1234
PAR = "2001:db8:a::1"
NAR = "2001:db8:b::1"


def hi_like(size: int = 150, **kw) -> bytes:
    """An ICMPv6 packet of about ``size`` octets (the size of a HI with an AP-REQ is larger; this is the
    bench size)."""
    pkt = IPv6(src=PAR, dst=NAR, hlim=64, tc=0x28, fl=0x12345, **kw) / ICMPv6EchoRequest(
        id=7, seq=1, data=bytes(range(256))[: max(0, size - 48)])
    return bytes(pkt)


def scapy_sa() -> ScapySA:
    return ScapySA(ScapyAH, spi=SPI, auth_algo="SHA2-256-128", auth_key=KEY)


def rx_sad(**kw) -> tuple[ah.SADatabase, ah.SecurityAssociation]:
    sad = ah.SADatabase()
    sa = ah.SecurityAssociation(SPI, KEY, peer=PAR, **kw)
    sad.add_inbound(sa)
    return sad, sa


def tx_sa(**kw) -> ah.SecurityAssociation:
    return ah.SecurityAssociation(SPI, KEY, peer=NAR, **kw)


def arrive(raw: bytes) -> bytes:
    """What a packet with a routing header looks like at its final destination (RH0 processing)."""
    p = IPv6(raw)
    rh = p[IPv6ExtHdrRouting]
    addrs = list(rh.addresses)
    dst = p.dst
    n = len(addrs)
    for k in range(n - rh.segleft, n):
        addrs[k], dst = dst, addrs[k]
    rh.addresses, rh.segleft, p.dst = addrs, 0, dst
    return bytes(p)


# ------------------------------------------------------------------------------------------ layout


def test_constants_rfc4868_sizes():
    assert ah.ICV_LEN == 16 and ah.AH_HEADER_LEN == 32 and ah.AH_HEADER_LEN % 8 == 0


def test_protect_layout_and_payload_length():
    plain = hi_like()
    out = ah.protect(plain, tx_sa())
    assert len(out) == len(plain) + 32
    assert out[6] == 51  # next header now AH
    assert int.from_bytes(out[4:6], "big") == len(out) - 40
    a = out[40:72]
    assert a[0] == 58 and a[1] == 6 and a[2:4] == b"\0\0"
    assert int.from_bytes(a[4:8], "big") == SPI and int.from_bytes(a[8:12], "big") == 1
    assert a[28:32] == b"\0\0\0\0"  # padding to 64-bit alignment
    assert out[72:] == plain[40:]


def test_key_never_in_repr():
    sa = tx_sa()
    assert KEY.hex() not in repr(sa) and repr(KEY) not in repr(sa) and "key" not in repr(sa)
    sad, _ = rx_sad()
    assert KEY.hex() not in repr(sad)


@pytest.mark.parametrize("bad", [{"spi": 255}, {"spi": 2**32}, {"key": b"short"}])
def test_sa_validation(bad):
    kw = {"spi": SPI, "key": KEY, "peer": NAR} | bad
    with pytest.raises(ValueError):
        ah.SecurityAssociation(**kw)


# ------------------------------------------------------------------------------------------ scapy interop


PACKETS = {
    "plain": lambda: hi_like(),
    "hbh": lambda: bytes(IPv6(src=PAR, dst=NAR, hlim=9) / IPv6ExtHdrHopByHop(
        options=[RouterAlert(), HBHOptUnknown(otype=0x3E, optdata=b"mutable!")]) / ICMPv6EchoRequest(data=b"x" * 60)),
    "dstopt": lambda: bytes(IPv6(src=PAR, dst=NAR) / IPv6ExtHdrDestOpt(
        options=[HBHOptUnknown(otype=0x1E, optdata=b"fixed"), HBHOptUnknown(otype=0x3F, optdata=b"chg")])
        / ICMPv6EchoRequest(data=b"y" * 30)),
}


@pytest.mark.parametrize("name", sorted(PACKETS))
def test_ours_equals_scapy_byte_for_byte(name):
    plain = PACKETS[name]()
    ours = ah.protect(plain, tx_sa(seq=41))
    theirs = bytes(scapy_sa().encrypt(IPv6(plain), seq_num=42))
    assert ours == theirs


@pytest.mark.parametrize("name", sorted(PACKETS))
def test_scapy_verifies_ours(name):
    ours = ah.protect(PACKETS[name](), tx_sa())
    p = IPv6(ours)
    p.hlim = 3  # mutable: changes en route
    p.tc, p.fl = 0xFF, 0xABCDE
    out = scapy_sa().decrypt(IPv6(bytes(p)))
    assert ScapyAH not in out


@pytest.mark.parametrize("name", sorted(PACKETS))
def test_ours_verifies_scapy(name):
    plain = PACKETS[name]()
    sad, sa = rx_sad()
    counters = ah.AhCounters()
    for seq in (1, 5, 3):
        pkt = bytes(scapy_sa().encrypt(IPv6(plain), seq_num=seq))
        assert ah.verify(pkt, sad, counters) == plain
    assert counters["verified"] == 3 and sa.replay_top == 5


def test_scapy_rejects_flipped_icv_of_ours():
    ours = bytearray(ah.protect(hi_like(), tx_sa()))
    ours[40 + 12] ^= 1
    with pytest.raises(IPSecIntegrityError):
        scapy_sa().decrypt(IPv6(bytes(ours)))


def test_routing_header_mutable_but_predictable_both_ways():
    mids = ["2001:db8:1::1", "2001:db8:2::1"]
    plain = bytes(IPv6(src=PAR, dst="2001:db8:9::9")
                  / IPv6ExtHdrDestOpt(options=[HBHOptUnknown(otype=0x1E, optdata=b"ab")])
                  / IPv6ExtHdrRouting(addresses=mids + [NAR], segleft=3)
                  / IPv6ExtHdrDestOpt(options=[HBHOptUnknown(otype=0x1E, optdata=b"cd")])
                  / ICMPv6EchoRequest(data=b"z" * 20))
    ours = ah.protect(plain, tx_sa(seq=6))
    theirs = bytes(scapy_sa().encrypt(IPv6(plain), seq_num=7))
    assert ours == theirs
    # AH sits after the routing header, before the destination options that follow it (RFC 4302 §3.1.1)
    p = IPv6(ours)
    assert isinstance(p[IPv6ExtHdrRouting].payload, ScapyAH)
    assert p[ScapyAH].nh == 60  # scapy does not dissect past AH(nh=60); check the octet
    # in flight (segleft 3) and at the final destination (segleft 0) the ICV is the same
    sad, _ = rx_sad()
    ah.verify(ours, sad)
    at_dst = arrive(ours)
    assert IPv6(at_dst).dst == NAR
    sad, _ = rx_sad()
    ah.verify(at_dst, sad)
    scapy_sa().decrypt(IPv6(at_dst))  # scapy's receiver does not reorder: must see the arrived form


# ------------------------------------------------------------------------------------------ replay window


def _stream(seqs, plain=None):
    plain = plain or hi_like()
    return {s: ah.protect(plain, tx_sa(seq=s - 1)) for s in seqs}


def test_replay_duplicate_too_old_out_of_order():
    pk = _stream([1, 2, 3, 64, 65, 100, 37])
    sad, sa = rx_sad()
    c = ah.AhCounters()
    ah.verify(pk[3], sad, c)
    with pytest.raises(ah.AhReplay) as ei:
        ah.verify(pk[3], sad, c)
    assert ei.value.code == "replay_duplicate" and c["replay_duplicate"] == 1
    ah.verify(pk[1], sad, c)  # out of order inside the window
    ah.verify(pk[100], sad, c)  # window moves: top 100, covers 37..100
    ah.verify(pk[37], sad, c)  # left edge of the window (100 - 63)
    with pytest.raises(ah.AhReplay) as ei:
        ah.verify(pk[2], sad, c)  # 2 is left of the window
    assert ei.value.code == "replay_too_old" and c["replay_too_old"] == 1
    ah.verify(pk[64], sad, c)
    ah.verify(pk[65], sad, c)
    with pytest.raises(ah.AhReplay):
        ah.verify(pk[65], sad, c)
    assert c["verified"] == 6 and c["replay_duplicate"] == 2
    assert sa.replay_top == 100


def test_window_exact_left_edge():
    pk = _stream([64, 65, 1, 2])
    sad, _ = rx_sad()
    ah.verify(pk[64], sad)
    ah.verify(pk[1], sad)  # 64 - 1 = 63 < 64: inside
    ah.verify(pk[65], sad)
    with pytest.raises(ah.AhReplay) as ei:
        ah.verify(pk[1], sad)  # 65 - 1 = 64: outside
    assert ei.value.code == "replay_too_old"


def test_window_moves_only_after_icv_verifies():
    pk = _stream([1, 1000])
    forged = bytearray(pk[1000])
    forged[-1] ^= 0x40  # payload bit: ICV fails
    sad, sa = rx_sad()
    c = ah.AhCounters()
    ah.verify(pk[1], sad, c)
    with pytest.raises(ah.AhBadIcv):
        ah.verify(bytes(forged), sad, c)
    assert sa.replay_top == 1 and c["bad_icv"] == 1
    ah.verify(pk[1000], sad, c)  # the genuine one is still accepted
    assert sa.replay_top == 1000 and c["verified"] == 2


def test_sequence_zero_refused():
    b = bytearray(ah.protect(hi_like(), tx_sa()))
    b[48:52] = bytes(4)
    b[52:68] = ah.compute_icv(KEY, bytes(b), 40)  # a validly signed packet with sequence number 0
    pkt = bytes(b)
    sad, _ = rx_sad()
    c = ah.AhCounters()
    with pytest.raises(ah.AhReplay) as ei:
        ah.verify(pkt, sad, c)
    assert ei.value.code == "replay_zero" and c["replay_zero"] == 1


# ------------------------------------------------------------------------------------------ failures


def test_unknown_spi_and_peer_mismatch_and_missing():
    pkt = ah.protect(hi_like(), ah.SecurityAssociation(0x9999, KEY, peer=NAR))
    sad, _ = rx_sad()
    c = ah.AhCounters()
    with pytest.raises(ah.AhUnknownSpi):
        ah.verify(pkt, sad, c)
    assert c["unknown_spi"] == 1
    other = bytes(IPv6(src="2001:db8:c::1", dst=NAR) / ICMPv6EchoRequest())
    with pytest.raises(ah.AhPeerMismatch):
        ah.verify(ah.protect(other, tx_sa()), sad, c)
    assert c["peer_mismatch"] == 1
    with pytest.raises(ah.AhMissing):
        ah.verify(hi_like(), sad, c)
    assert c["no_ah"] == 1 and c["verified"] == 0
    assert all(isinstance(e, SecurityError) for e in (ah.AhUnknownSpi("x"), ah.AhMissing("x")))


def test_the_sad_holds_outbound_sas_by_peer_in_any_spelling():
    """A router's one home for its SAs: the send path finds the outbound SA by the destination address (text,
    16 octets or an ``IPv6Address``, any spelling of it), gets None for an unknown peer; the inbound table,
    keyed by SPI, is separate."""
    sad, rx = rx_sad()
    to_nar, to_c = tx_sa(), ah.SecurityAssociation(0x5678, KEY, peer="2001:db8:c::1")
    sad.add_outbound(to_nar)
    sad.add_outbound(to_c)
    nar = ipaddress.IPv6Address(NAR)
    for spelling in (NAR, "2001:0db8:000b:0000::0001", nar, nar.packed):
        assert sad.find_outbound(spelling) is to_nar and sad.outbound(spelling) is to_nar
    assert sad.find_outbound(PAR) is None and sad.find_outbound("2001:db8:d::1") is None
    with pytest.raises(KeyError, match="no outbound SA for peer 2001:db8:a::1"):
        sad.outbound(PAR)
    assert sad.outbound_sas() == [to_nar, to_c] and sad.inbound_sas() == [rx] and len(sad) == 3
    again = tx_sa()  # one outbound SA per peer: a new one replaces the old
    sad.add_outbound(again)
    assert sad.find_outbound(NAR) is again and sad.outbound_sas() == [again, to_c]
    with pytest.raises(ValueError, match="needs a peer"):
        sad.add_outbound(ah.SecurityAssociation(0x9999, KEY))
    assert ah.verify(ah.protect(hi_like(), tx_sa()), sad) == hi_like()  # the inbound side, as before
    assert "key" not in repr(sad) and KEY.hex() not in repr(sad)


def _mutable_bits(pkt: bytes) -> set[int]:
    bits = set(range(4, 32)) | set(range(56, 64))  # traffic class, flow label, hop limit
    return bits


def test_every_bit_flip_fails_except_mutable_fields():
    plain = PACKETS["hbh"]()
    pkt = ah.protect(plain, tx_sa())
    # mutable option data: the 8 octets of the 0x3E option in the hop-by-hop header
    hbh = 40
    i = hbh + 2
    mutable = _mutable_bits(pkt)
    while i < hbh + (pkt[hbh + 1] + 1) * 8:
        t = pkt[i]
        if t == 0:
            i += 1
            continue
        if t & 0x20:
            mutable |= set(range((i + 2) * 8, (i + 2 + pkt[i + 1]) * 8))
        i += 2 + pkt[i + 1]
    c = ah.AhCounters()
    failed = ok = 0
    for bit in range(len(pkt) * 8):
        b = bytearray(pkt)
        b[bit // 8] ^= 0x80 >> (bit % 8)
        sad, _ = rx_sad()
        if bit in mutable:
            assert ah.verify(bytes(b), sad, c)[40:] != b""  # still verifies
            ok += 1
        else:
            with pytest.raises(ah.AhError):
                ah.verify(bytes(b), sad, c)
            failed += 1
    assert ok == len(mutable) and c["verified"] == ok
    assert sum(v for k, v in c.items() if k != "verified") == failed
    assert c["bad_icv"] > 0 and c["unknown_spi"] == 32


def test_hop_limit_change_still_verifies():
    pkt = bytearray(ah.protect(hi_like(), tx_sa()))
    pkt[7] = 1
    sad, _ = rx_sad()
    assert ah.verify(bytes(pkt), sad)[7] == 1


def test_every_prefix_is_truncated():
    pkt = ah.protect(PACKETS["hbh"](), tx_sa())
    c = ah.AhCounters()
    sad, _ = rx_sad()
    for n in range(len(pkt)):
        with pytest.raises(ah.AhTruncated) as ei:
            ah.verify(pkt[:n], sad, c)
        assert isinstance(ei.value, Truncated) and isinstance(ei.value, SecurityError)
    assert c["truncated"] == len(pkt)


def test_trailing_link_padding_ignored():
    pkt = ah.protect(hi_like(), tx_sa())
    sad, _ = rx_sad()
    assert ah.verify(pkt + b"\0" * 6, sad) == hi_like()


def test_sequence_exhaustion():
    sa = tx_sa(seq=ah.SEQ_MAX - 1)
    c = ah.AhCounters()
    last = ah.protect(hi_like(), sa, c)
    assert int.from_bytes(last[48:52], "big") == ah.SEQ_MAX
    with pytest.raises(ah.AhSequenceExhausted):
        ah.protect(hi_like(), sa, c)
    assert c["seq_exhausted"] == 1 and c["protected"] == 1 and sa.seq == ah.SEQ_MAX
    sad, rsa = rx_sad()
    ah.verify(last, sad)
    assert rsa.replay_top == ah.SEQ_MAX


def test_protect_refuses_fragment_and_double_ah():
    frag = bytearray(hi_like())
    frag[6] = 44
    with pytest.raises(ah.AhMalformed):
        ah.protect(bytes(frag), tx_sa())
    once = ah.protect(hi_like(), tx_sa())
    with pytest.raises(ah.AhMalformed):
        ah.protect(once, tx_sa())


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_ah_errors(data):
    sad, _ = rx_sad()
    try:
        ah.verify(data, sad)
    except ah.AhError as exc:
        assert isinstance(exc, SecurityError)
        if isinstance(exc, MalformedPacket):
            assert isinstance(exc, ah.AhMalformed)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=120), st.integers(0, 255))
def test_mutated_valid_packet_raises_only_ah_errors(tail, pos):
    pkt = bytearray(ah.protect(hi_like(), tx_sa()))
    pkt[40 + pos % 32] ^= 0xFF
    sad, _ = rx_sad()
    with pytest.raises(ah.AhError):
        ah.verify(bytes(pkt) + tail, sad)


# ------------------------------------------------------------------------------ counters across restarts


def _restart_pair(path, **kw) -> tuple[ah.SecurityAssociation, ah.SADatabase, ah.SecurityAssociation]:
    """A sender SA (with a store on ``path``) and its peer's inbound SA."""
    sad, rx = rx_sad()
    return tx_sa(store=ah.SequenceStore(path, **kw)), sad, rx


def test_without_a_store_a_restarted_sender_is_dropped_as_a_replay():
    """Why the store exists: the peer's window is far ahead of a sender that started again at 1."""
    sad, _ = rx_sad()
    sa = tx_sa()
    for _ in range(100):
        ah.verify(ah.protect(hi_like(), sa), sad)
    with pytest.raises(ah.AhReplay):
        ah.verify(ah.protect(hi_like(), tx_sa()), sad)  # the "restarted" sender: sequence 1


def test_with_a_store_a_restarted_sender_resumes_above_everything_it_sent(tmp_path):
    path = tmp_path / "ah-seq.json"
    sa, sad, _ = _restart_pair(path, block=16)
    for _ in range(100):
        ah.verify(ah.protect(hi_like(), sa), sad)
    assert sa.seq == 100 and sa.reserved == 112 and sa.store is not None and sa.store.writes == 7
    again = tx_sa(store=ah.SequenceStore(path, block=16))  # the restart: a new process reads the file
    assert again.seq == 112
    out = ah.verify(ah.protect(hi_like(), again), sad)  # accepted by the peer's window
    assert out == hi_like() and again.seq == 113
    assert (path.stat().st_mode & 0o777) == 0o600


def test_a_new_key_or_spi_starts_its_own_counter(tmp_path):
    path = tmp_path / "ah-seq.json"
    sa = tx_sa(store=ah.SequenceStore(path, block=4))
    for _ in range(10):
        sa.next_seq()
    store = ah.SequenceStore(path, block=4)
    assert ah.SecurityAssociation(SPI, bytes(32), peer=NAR, store=store).seq == 0  # another key
    assert ah.SecurityAssociation(SPI + 1, KEY, peer=NAR, store=store).seq == 0  # another SPI
    assert ah.SecurityAssociation(SPI, KEY, peer=NAR, store=store).seq == 12
    assert "KEY" not in path.read_text() and KEY.hex() not in path.read_text()


def test_a_failed_write_sends_nothing_and_the_next_send_tries_again(tmp_path):
    """The block ahead cannot be written (the directory is gone): the send fails, counted, the counter has not
    moved; once the directory is back the same number goes out."""
    d = tmp_path / "state"
    d.mkdir()
    sa = tx_sa(store=ah.SequenceStore(d / "ah-seq.json", block=8))
    counters = ah.AhCounters()
    for _ in range(8):
        ah.protect(hi_like(), sa, counters)
    (d / "ah-seq.json").unlink()
    d.rmdir()
    with pytest.raises(ah.AhSequenceNotPersisted, match="cannot write"):
        ah.protect(hi_like(), sa, counters)
    assert counters["seq_not_persisted"] == 1 and counters["protected"] == 8 and sa.seq == 8
    d.mkdir()
    ah.protect(hi_like(), sa, counters)
    assert sa.seq == 9 and counters["protected"] == 9
    assert ah.SequenceStore(d / "ah-seq.json").marks[sa.key_id()] == 16


@pytest.mark.parametrize("content, named", [
    (b"not json", "not JSON"), (b'{"format": "other"}', "not an AH sequence file"),
    (b'{"format": "fmipfast-ah-seq/1", "counters": {"x": -1}}', "not an AH sequence file"),
    (b'{"format": "fmipfast-ah-seq/1", "counters": {"x": 4294967296}}', "not an AH sequence file"),
    (b'{"format": "fmipfast-ah-seq/1", "counters": {"x": true}}', "not an AH sequence file"),
])
def test_a_damaged_sequence_file_is_refused_at_start_naming_it(tmp_path, content, named):
    """Never a silent restart of the counters: a file that cannot be read stops the router from starting."""
    path = tmp_path / "ah-seq.json"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=named) as exc:
        ah.SequenceStore(path)
    assert str(path) in str(exc.value)


def test_a_missing_sequence_file_is_an_empty_store(tmp_path):
    store = ah.SequenceStore(tmp_path / "none.json")
    assert store.marks == {} and tx_sa(store=store).seq == 0
    with pytest.raises(ValueError, match="block"):
        ah.SequenceStore(tmp_path / "none.json", block=0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 40), min_size=1, max_size=8), st.integers(1, 16))
def test_numbers_only_grow_across_any_restarts(tmp_path_factory, bursts, block):
    """Any number of sends between any number of restarts (a crash may come right after a write or right
    before one): every sequence number on the wire is larger than all before it, and the peer accepts all."""
    path = tmp_path_factory.mktemp("seq") / "ah-seq.json"
    sad, _ = rx_sad()
    sent: list[int] = []
    for n in bursts:
        sa = tx_sa(store=ah.SequenceStore(path, block=block))  # a restart before each burst
        for _ in range(n):
            ah.verify(ah.protect(hi_like(60), sa), sad)
            sent.append(sa.seq)
    assert sent == sorted(set(sent))
