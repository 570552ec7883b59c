"""Hostile octets are the normal case: property tests of every wire decoder's exception contract.

* ``messages.decode`` (and the Mobility Header decoders) return a message or raise the documented
  ``MalformedPacket`` subclasses — never the bare ``MalformedPacket`` of decode's last line of defence (that
  would be a parser bug), never anything else; what they accept re-encodes to a message that decodes to itself;
  a decoded link-layer address option always holds a 6-octet MAC.
* every light-weight Kerberos decoder returns a PDU (which re-encodes to exactly the input: one encoding per
  PDU) or raises ``LkbMalformed``; the verifier, the client's readers and the OPEN exchange raise only
  ``LkbError`` and accept a mutated PDU only where the layout says a field is not authenticated.
* ``ah.verify`` returns the packet or raises ``AhError`` (``AhMalformed`` being the only ``MalformedPacket``),
  moves exactly one counter, leaves the replay window alone when it refuses, and accepts a mutated packet
  only when just the mutable fields (RFC 4302 §3.3.3.1) changed.

Inputs: arbitrary octets, octets with a valid type octet and random rest, and valid encodings mutated by bit
flips, truncations, length-field edits, option type 0, inserted options (link-layer address options of the
wrong length among them), random insertions and deletions.  Each property runs a bounded number of examples
(``FAST``); its ``_slow`` twin runs ``SLOW`` examples and only under ``-m slow``.
"""

from __future__ import annotations

import dataclasses
import struct
from ipaddress import IPv6Address

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fmipfast import errors
from fmipfast.constants import Icmp6Type
from fmipfast.messages import (
    BindingAck,
    BindingUpdate,
    EchoReply,
    EchoRequest,
    FmipMessage,
    HandoverRedirectAck,
    IcmpError,
    NeighborAdvertisement,
    NeighborSolicitation,
    PlainIcmp,
    SourceLinkLayerAddress,
    TargetLinkLayerAddress,
    decode,
    encode,
    refill_checksum,
)
from fmipfast.security import ah
from fmipfast.security import lwkerb as L
from tests.golden import lwkerb as GOLDEN
from tests.test_ah import PACKETS, rx_sad, tx_sa
from tests.test_lwkerb_golden import BINDING, BUILT, K_ACCESS, K_MN, K_NAR, MN, T0
from tests.test_messages import fmip_messages, nd_messages

FAST_EXAMPLES = 300
SLOW_EXAMPLES = 20_000
FAST = settings(max_examples=FAST_EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SLOW = settings(FAST, max_examples=SLOW_EXAMPLES)


SRC, DST = IPv6Address("fe80::1"), IPv6Address("fe80::2")

# ============================================================================================ mutations


@dataclasses.dataclass
class Shape:
    """Where a valid encoding's options start, where each one starts, and where its length octets are."""

    wire: bytes
    boundaries: list[int]
    lengths: list[int]
    inserts: list[bytes]


ND_INSERTS = [
    b"\x00\x01" + bytes(6),  # type 0
    b"\x01\x02" + bytes.fromhex("02005e100001") + bytes(8),  # SLLA of two units (a 14-octet "MAC")
    b"\x02\x03" + bytes(22),  # TLLA of three units
    b"\x01\x01" + bytes(6),  # a valid SLLA (may be a second one)
    b"\xfd\x01\x01" + bytes(5),  # adjacent-realms request
    b"\xfd\x01\x01\x00\x00\x00\x00\x01",  # ... with padding that is not zero
    b"\xfd\x01\x02\x02\xff\xfe\x00\x00",  # adjacent realms: one realm that is not UTF-8
    b"\xfd\x02\x02\x09" + b"A.EXAMPLE" + bytes(1),  # a realm running past the option
    b"\x03\x04" + bytes([200, 0xC0]) + bytes(28),  # prefix information, prefix length 200
    b"\x05\x01" + bytes(6),  # MTU
    b"\x05\x02" + bytes(14),  # MTU of the wrong length
    b"\x18\x01" + bytes(6),  # unknown option
]
FMIP_INSERTS = [
    b"\x00\x02",  # sub-option type 0 (unknown, kept)
    b"\x01\x02",  # empty principal
    b"\x01\x04\x05ab",  # principal name length past the end
    b"\x01\x05\x01\xff\xfe",  # principal not UTF-8
    b"\x02\x02",  # empty LKB fragment
    b"\x02\x05abc",  # short LKB fragment (a second LKB PDU if there is one already)
    b"\x03\x08" + bytes(6),  # handover control of the wrong size
    b"\x04\x14\x07\x00" + bytes(16),  # address, unknown kind
    b"\x05\x2a\x60" + bytes(39),  # encapsulated IPv6 packet (no payload)
    b"\x05\x2a\x40" + bytes(39),  # encapsulated IPv4 packet
    b"\x06\x05\x00\x01\x00",  # identifier of the wrong size
    b"\x07\x12" + bytes(16),  # MAC
    b"\x08\x03\xff",  # status 255
    b"\x09\x08" + bytes(6),  # link-layer address (EUI-64) of the wrong size
    b"\x63\x03z",  # unknown
]


def _shape(msg, wire: bytes) -> Shape:
    if not hasattr(msg, "options"):  # echo, ICMPv6 errors: no options to aim at
        return Shape(wire, [len(wire)], [], [])
    start = len(encode(dataclasses.replace(msg, options=()), SRC, DST))
    nd = isinstance(msg, PlainIcmp)
    boundaries, lengths, pos = [start], [], start
    while pos < len(wire):
        lengths.append(pos + 1)
        pos += wire[pos + 1] * 8 if nd else wire[pos + 1]
        boundaries.append(pos)
    if isinstance(msg, FmipMessage) and start == 10:
        lengths += [8, 9]  # the Length field of the options-only messages
    return Shape(wire, boundaries, lengths, ND_INSERTS if nd else FMIP_INSERTS)


addresses = st.binary(min_size=16, max_size=16).map(IPv6Address)
macs = st.binary(min_size=6, max_size=6)
plain_messages = st.one_of(
    st.builds(NeighborSolicitation, addresses,
              st.lists(st.builds(SourceLinkLayerAddress, macs), max_size=2).map(tuple)),
    st.builds(NeighborAdvertisement, addresses, st.booleans(), st.booleans(), st.booleans(),
              st.lists(st.builds(TargetLinkLayerAddress, macs), max_size=2).map(tuple)),
    st.builds(EchoRequest, st.integers(0, 65535), st.integers(0, 65535), st.binary(max_size=64)),
    st.builds(EchoReply, st.integers(0, 65535), st.integers(0, 65535), st.binary(max_size=64)),
    st.builds(IcmpError, st.sampled_from([1, 2, 3, 4]), st.integers(0, 255), st.integers(0, 2**32 - 1),
              st.binary(max_size=120)),
)
all_messages = st.one_of(fmip_messages, nd_messages, plain_messages)

INTERESTING = [0, 1, 2, 3, 4, 6, 7, 8, 9, 0x10, 0x7F, 0x80, 0xFE, 0xFF]


@st.composite
def mutate(draw, shape: Shape) -> bytes:
    """1-3 of: bit flip, truncation, length-field edit, option type 0, inserted option, random insertion,
    deletion — targeted at option boundaries and length octets half the time."""
    wire = bytearray(shape.wire)
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["flip", "cut", "length", "type0", "option", "insert", "delete"]))
        if op == "flip" and wire:
            i = draw(st.integers(0, len(wire) - 1))
            wire[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "cut" and wire:
            del wire[draw(st.integers(0, len(wire) - 1)):]
        elif op == "length" and wire:
            pos = draw(st.sampled_from(shape.lengths)) if shape.lengths and draw(st.booleans()) else \
                draw(st.integers(0, len(wire) - 1))
            if pos < len(wire):
                old = wire[pos]
                wire[pos] = draw(st.sampled_from(INTERESTING + [(old + 1) & 0xFF, (old - 1) & 0xFF]))
        elif op == "type0" and shape.boundaries:
            pos = draw(st.sampled_from(shape.boundaries))
            if pos < len(wire):
                wire[pos] = 0
            else:
                wire += shape.inserts[0] if shape.inserts else b"\x00\x01" + bytes(6)
        elif op == "option" and shape.inserts:
            pos = min(draw(st.sampled_from(shape.boundaries)), len(wire))
            wire[pos:pos] = draw(st.sampled_from(shape.inserts))
        elif op == "insert":
            pos = draw(st.integers(0, len(wire)))
            wire[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete" and wire:
            i = draw(st.integers(0, len(wire) - 1))
            del wire[i:i + draw(st.integers(1, 8))]
    return bytes(wire)


@st.composite
def mutated_messages(draw) -> tuple[object, bytes]:
    msg = draw(all_messages)
    wire = encode(msg, SRC, DST)
    return msg, draw(mutate(_shape(msg, wire)))


# ============================================================================================ messages

DOCUMENTED = (errors.Truncated, errors.BadChecksum, errors.BadOption, errors.UnsupportedType, errors.InvalidField)


def decode_contract(raw: bytes, src=None, dst=None):
    """decode(raw) under the contract: the documented errors only, raised on purpose (not the last line of
    defence); what is accepted re-encodes, renders as JSON and holds only 6-octet link-layer addresses."""
    try:
        msg = decode(raw, src, dst)
    except errors.MalformedPacket as exc:
        assert isinstance(exc, DOCUMENTED), f"bare MalformedPacket (a parser bug): {exc!r} <- {exc.__cause__!r}"
        assert exc.__cause__ is None
        return type(exc)
    msg.to_json()
    for opt in getattr(msg, "options", ()):
        if isinstance(opt, (SourceLinkLayerAddress, TargetLinkLayerAddress)):
            assert len(opt.address) == 6
    again = encode(dataclasses.replace(msg, checksum=None), SRC, DST)
    assert decode(again, SRC, DST) == msg
    return msg


def _prop_arbitrary_octets(data):
    decode_contract(data)


def _prop_octets_behind_a_known_type(head, data):
    decode_contract(bytes(head) + data)


def _prop_mutated_message(case):
    _msg, raw = case
    outcome = decode_contract(raw)
    if len(raw) >= 4:  # the same octets with a valid checksum: the same outcome, through the checksum path
        signed = refill_checksum(bytearray(raw), SRC, DST)
        assert decode_contract(signed, SRC, DST) == outcome


def _prop_round_trip(msg, src, dst):
    wire = encode(msg, src, dst)
    back = decode(wire, src, dst)
    assert back == msg and encode(back, src, dst) == wire


known_heads = st.one_of(
    st.tuples(st.just(200), st.integers(0, 8)),  # fmipfast type, codes around 1-7
    st.tuples(st.sampled_from([133, 134, 135, 136, 128, 129, 1, 2, 3, 4]), st.sampled_from([0, 0, 0, 1])),
)

test_decode_arbitrary_octets = FAST(given(data=st.binary(max_size=400))(_prop_arbitrary_octets))
test_decode_octets_behind_a_known_type = FAST(given(head=known_heads, data=st.binary(max_size=300))(
    _prop_octets_behind_a_known_type))
test_decode_mutated_messages = FAST(given(case=mutated_messages())(_prop_mutated_message))
test_decode_inverts_encode_for_every_message_kind = FAST(given(msg=all_messages, src=addresses, dst=addresses)(
    _prop_round_trip))


@pytest.mark.slow
def test_decode_slow(request):
    SLOW(given(data=st.binary(max_size=400))(_prop_arbitrary_octets))()
    SLOW(given(head=known_heads, data=st.binary(max_size=300))(_prop_octets_behind_a_known_type))()
    SLOW(given(case=mutated_messages())(_prop_mutated_message))()
    SLOW(given(msg=all_messages, src=addresses, dst=addresses)(_prop_round_trip))()


def test_the_mutations_reach_the_option_parsers():
    """The mutation strategy is not vacuous: it produces type-0 options and over-long link-layer options that
    decode() refuses with BadOption (the two defects it was written for)."""
    ns = NeighborSolicitation("2001:db8::2", (SourceLinkLayerAddress(bytes(6)),))
    shape = _shape(ns, encode(ns, SRC, DST))
    assert shape.boundaries == [24, 32] and shape.lengths == [25]
    for insert in ND_INSERTS[:3]:
        with pytest.raises(errors.BadOption):
            decode(shape.wire + insert)
    hra = HandoverRedirectAck()
    assert _shape(hra, encode(hra, SRC, DST)).lengths == [8, 9]


# -------------------------------------------------------------------------------------- Mobility Header

BU_PACKET = BindingUpdate(7, 60).packet("2001:db8:2::99", "2001:db8:ff::1")
BACK_PACKET = BindingAck(0, 7).packet("2001:db8:ff::1", "2001:db8:2::99")


def _mh_contract(raw: bytes) -> None:
    for cls in (BindingUpdate, BindingAck):
        for dec in (cls.decode_mh, cls.decode_packet):
            try:
                got = dec(raw)
            except errors.MalformedPacket as exc:
                assert isinstance(exc, DOCUMENTED)
                continue
            assert isinstance(got, cls)


def _prop_mobility_header(raw):
    _mh_contract(raw)


mh_inputs = st.one_of(
    st.binary(max_size=80),
    mutate(Shape(BU_PACKET, [40, 52], [41, 44], [b"\x01\x00", b"\x00"])),
    mutate(Shape(BACK_PACKET, [40, 52], [41, 44], [b"\x01\x00", b"\x00"])),
    mutate(Shape(BU_PACKET[40:], [0, 12], [1, 4], [b"\x00"])),
)
test_mobility_header_decoders = FAST(given(raw=mh_inputs)(_prop_mobility_header))


@pytest.mark.slow
def test_mobility_header_decoders_slow(request):
    SLOW(given(raw=mh_inputs)(_prop_mobility_header))()


# ============================================================================================ lwkerb

LKB_DECODERS = {
    "pdu": L.decode_pdu,
    "principal": L.Principal.decode,
    "sealed": L.Sealed.decode,
    "ticket": L.Ticket.decode,
    "enc_ticket_part": L.EncTicketPart.decode,
    "binding": L.HandoverBinding.decode,
    "authenticator": L.Authenticator.decode,
    "ap_req": L.ApReq.decode,
    "enc_ap_rep_part": L.EncApRepPart.decode,
    "ap_rep": L.ApRep.decode,
    "as_req": L.AsReq.decode,
    "tgs_req": L.TgsReq.decode,
    "enc_kdc_rep_part": L.EncKdcRepPart.decode,
    "kdc_rep": L.KdcRep.decode,
    "krb_error": L.KrbError.decode,
    "open_req": L.OpenReq.decode,
    "open_rep": L.OpenRep.decode,
}

#: The golden vectors (tests/golden/lwkerb.py) and the decoder of each.
LKB_SEEDS = {name: raw for name, raw in BUILT.items()}
LKB_SEED_DECODER = {
    "tgt.enc_part": "enc_ticket_part", "ticket.enc_part": "enc_ticket_part", "tgt": "ticket", "ticket": "ticket",
    "as_rep.enc_part": "enc_kdc_rep_part", "tgs_rep.enc_part": "enc_kdc_rep_part",
    "ap_req.authenticator": "authenticator", "ap_rep.enc_part": "enc_ap_rep_part",
}


def lkb_decode_contract(dec, raw: bytes) -> None:
    """Any octets: a PDU that re-encodes to exactly ``raw``, or LkbMalformed raised on purpose."""
    try:
        got = dec(raw)
    except L.LkbMalformed as exc:
        assert exc.__cause__ is None and isinstance(exc, errors.MalformedPacket)
        return
    assert got.encode() == raw, "a PDU has exactly one encoding"


def _prop_lkb_arbitrary(raw):
    for dec in LKB_DECODERS.values():
        lkb_decode_contract(dec, raw)


def _prop_lkb_typed(mt, raw):
    for dec in LKB_DECODERS.values():
        lkb_decode_contract(dec, bytes((mt, L.LKB_VERSION)) + raw)


@st.composite
def lkb_mutations(draw) -> tuple[str, bytes]:
    name = draw(st.sampled_from(sorted(LKB_SEEDS)))
    raw = LKB_SEEDS[name]
    # every octet may be a length (2-octet lengths, 1-octet principal lengths): edits anywhere
    lengths = list(range(len(raw)))
    return name, draw(mutate(Shape(raw, [0, len(raw)], lengths, [b"\x00", b"\xff\xff", b"\x00\x00"])))


def _prop_lkb_mutated(case):
    name, raw = case
    lkb_decode_contract(LKB_DECODERS[LKB_SEED_DECODER.get(name, "pdu")], raw)
    lkb_decode_contract(L.decode_pdu, raw)


def _verifier() -> L.ApVerifier:
    keytab = L.Keytab()
    keytab.add(L.Principal("nar1", GOLDEN.REALM_B), K_NAR)
    return L.ApVerifier(GOLDEN.REALM_B, keytab, clock=lambda: T0 + 2)


def _prop_lkb_exchanges(case):
    """The readers of the exchange on mutated PDUs: only LkbError; an accepted mutation changed only what the
    layout leaves unauthenticated (the AP-REQ options octet; the ticket inside a KDC reply, opaque to the client,
    and the AS-REP's kvno octet, checked against the key instead)."""
    name, raw = case
    v = _verifier()
    try:
        v.verify_local(raw, BINDING)
    except L.LkbError as exc:
        assert v.counters[exc.code] == 1 and sum(v.counters.values()) == 1
    else:
        orig = BUILT["ap_req"]
        assert len(raw) == len(orig) and raw[:2] + raw[3:] == orig[:2] + orig[3:]
        assert sum(v.counters.values()) == 2 and v.counters["case1"] == 1
    for reader in (lambda: L.read_kdc_rep(raw, K_MN, GOLDEN.AS_NONCE),
                   lambda: L.read_kdc_rep(raw, L.Key(0, GOLDEN.SK_TGT), GOLDEN.TGS_NONCE),
                   lambda: L.check_ap_rep(raw, L.Key(0, GOLDEN.SK_SVC), L.Authenticator.decode(
                       BUILT["ap_req.authenticator"])),
                   lambda: L.OpenRep.decode(raw).open(K_NAR),
                   lambda: L.OpenReq.decode(raw).ctime_us(K_NAR),
                   lambda: L.Ticket.decode(raw).open(K_ACCESS)):
        try:
            reader()
        except L.LkbError:
            pass
    if raw != BUILT["ap_rep"]:
        with pytest.raises(L.LkbError):
            L.check_ap_rep(raw, L.Key(0, GOLDEN.SK_SVC), L.Authenticator.decode(BUILT["ap_req.authenticator"]))


lkb_types = st.sampled_from([int(t) for t in L.MsgType])
test_lwkerb_arbitrary_octets = FAST(given(raw=st.binary(max_size=300))(_prop_lkb_arbitrary))
test_lwkerb_octets_behind_a_valid_header = FAST(given(mt=lkb_types, raw=st.binary(max_size=300))(_prop_lkb_typed))
test_lwkerb_mutated_golden_pdus = FAST(given(case=lkb_mutations())(_prop_lkb_mutated))
test_lwkerb_readers_on_mutated_pdus = FAST(given(case=lkb_mutations())(_prop_lkb_exchanges))


@pytest.mark.slow
def test_lwkerb_slow(request):
    SLOW(given(raw=st.binary(max_size=300))(_prop_lkb_arbitrary))()
    SLOW(given(mt=lkb_types, raw=st.binary(max_size=300))(_prop_lkb_typed))()
    SLOW(given(case=lkb_mutations())(_prop_lkb_mutated))()
    SLOW(given(case=lkb_mutations())(_prop_lkb_exchanges))()


def test_the_golden_ap_req_verifies_and_its_options_octet_is_not_authenticated():
    """The premise of the accepted-mutation rule above (docs/security.md §3.4, as in RFC 4120)."""
    assert _verifier().verify_local(BUILT["ap_req"], BINDING).client == MN
    flipped = bytearray(BUILT["ap_req"])
    flipped[2] ^= 0x01
    assert _verifier().verify_local(bytes(flipped), BINDING).client == MN


# ============================================================================================ AH

_RH_PACKET = bytes.fromhex(  # IPv6 / routing header type 0 (2 addresses, segments left 2) / ICMPv6 echo
    "6000000000382b40" "20010db8000a00000000000000000001" "20010db8000b00000000000000000001"
    "3a04000200000000" "20010db8000500000000000000000005" "20010db8000600000000000000000006"
    "8000000000010001" "7a7a7a7a7a7a7a7a")
AH_PLAIN = {name: make() for name, make in PACKETS.items()} | {"routing": _RH_PACKET}


def _ah_mutable(pkt: bytes) -> set[int]:
    """Octets of a protected packet an intermediate node may change (RFC 4302 §3.3.3.1): traffic class and flow
    label (octet 0 keeps the version in its high nibble), hop limit, and the data of hop-by-hop / destination
    options whose type has bit 0x20 set."""
    mutable = {0, 1, 2, 3, 7}
    nh, off = pkt[6], 40
    while nh in (0, 60):
        end = off + (pkt[off + 1] + 1) * 8
        i = off + 2
        while i < end:
            if pkt[i] == 0:
                i += 1
                continue
            if pkt[i] & 0x20:
                mutable |= set(range(i + 2, i + 2 + pkt[i + 1]))
            i += 2 + pkt[i + 1]
        nh, off = pkt[off], end
    return mutable


@st.composite
def ah_mutations(draw) -> tuple[str, bytes]:
    name = draw(st.sampled_from(sorted(AH_PLAIN)))
    sa = tx_sa()
    protected = ah.protect(AH_PLAIN[name], sa)
    heads = [6, 40, 41, 4, 5]  # next header, first extension header's next header and length, payload length
    return name, draw(mutate(Shape(protected, [40, len(protected)], heads,
                                   [b"\x00\x00\x00\x00\x00\x00\x00\x00", bytes((51, 6)) + bytes(30)])))


def _prop_ah_verify(case):
    name, raw = case
    protected = ah.protect(AH_PLAIN[name], tx_sa())  # the same octets the mutation started from (seq 1)
    sad, sa = rx_sad()
    counters = ah.AhCounters()
    try:
        out = ah.verify(raw, sad, counters)
    except ah.AhError as exc:
        assert not isinstance(exc, errors.MalformedPacket) or isinstance(exc, ah.AhMalformed)
        assert counters[exc.code] == 1 and sum(counters.values()) == 1
        assert (sa.replay_top, sa.replay_bitmap) == (0, 0)  # refused: the window did not move
        return
    assert counters["verified"] == 1 and sum(counters.values()) == 1 and sa.replay_top == 1
    plen = struct.unpack_from("!H", protected, 4)[0]
    assert len(raw) >= 40 + plen and struct.unpack_from("!H", raw, 4)[0] == plen  # trailing octets are padding
    if name == "routing":  # mutable but predictable: equal after rotation to the final form, not octet by octet
        return
    mutable = _ah_mutable(protected)
    assert all(raw[i] == protected[i] for i in range(40 + plen) if i not in mutable), "immutable octet changed"
    assert raw[0] >> 4 == 6
    if mutable == {0, 1, 2, 3, 7}:  # no mutable option data: what comes back is what was protected
        assert out[40:] == AH_PLAIN[name][40:]


test_ah_verify_on_mutated_packets = FAST(given(case=ah_mutations())(_prop_ah_verify))
test_ah_verify_on_arbitrary_octets = FAST(given(case=st.binary(max_size=200).map(lambda b: ("plain", b)))(
    _prop_ah_verify))


@pytest.mark.slow
def test_ah_slow(request):
    SLOW(given(case=ah_mutations())(_prop_ah_verify))()
    SLOW(given(case=st.binary(max_size=200).map(lambda b: ("plain", b)))(_prop_ah_verify))()


def test_the_routing_seed_is_protected_and_verifies():
    sad, _ = rx_sad()
    assert ah.verify(ah.protect(AH_PLAIN["routing"], tx_sa()), sad)[40:48] == _RH_PACKET[40:48]
    assert Icmp6Type.ECHO_REQUEST == _RH_PACKET[-16]
