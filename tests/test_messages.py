"""The message codec against golden bytes (the scapy quartet: default build, valued build, default parse,
valued parse), its error paths (each names the field and the offset), and its hypothesis properties."""

from __future__ import annotations

import re
import struct
from ipaddress import IPv6Address

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fmipfast import errors
from fmipfast.constants import AddressKind, Codepoints, HandoverStatus, HrdFlag
from fmipfast.messages import (
    MESSAGE_CLASSES,
    AddressOption,
    AdjacentRealms,
    AdjacentRealmsRequest,
    Attach,
    AuthenticatedMN,
    BindingAck,
    BindingUpdate,
    EncapsulatedPacket,
    ForwardingDisable,
    HandoverControl,
    HandoverError,
    HandoverRedirect,
    HandoverRedirectAck,
    IcmpHandover,
    Identifier,
    LinkLayerAddress,
    LkbMessage,
    MessageAuthCode,
    Mtu,
    PrefixInformation,
    Principal,
    RouterAdvertisement,
    RouterSolicitation,
    SourceLinkLayerAddress,
    Status,
    TargetLinkLayerAddress,
    UnknownNdOption,
    UnknownSubOption,
    decode,
    encode,
    mac_value_offset,
)
from tests.golden.messages import VECTORS

NCOA = "2001:db8:2:0:21b:63ff:fe84:45e6"
PCOA = "2001:db8:1:0:21b:63ff:fe84:45e6"
MN_EUI64 = bytes.fromhex("001b63fffe8445e6")

EXPECTED = {
    "hrd_default": HandoverRedirect(64, "2001:db8:2::1"),
    "hrd_values": HandoverRedirect(64, "2001:db8:2::1", bytes.fromhex("02005efffe100002"), NCOA,
                                   (Principal("nar1", "B.EXAMPLE"), Identifier(0x1234))),
    "hra_default": HandoverRedirectAck(),
    "hra_values": HandoverRedirectAck((LkbMessage(bytes(range(1, 9))), Identifier(0x1234))),
    "hi_default": IcmpHandover(64, NCOA),
    "hi_values": IcmpHandover(64, NCOA, MN_EUI64, (LkbMessage(bytes.fromhex("deadbeef")),
                                                   HandoverControl(True, 32, 2000),
                                                   AddressOption(AddressKind.PCOA, PCOA), Identifier(0x1234))),
    "amn_values": AuthenticatedMN((LkbMessage(bytes.fromhex("a1a2a3")), MessageAuthCode(b"\xaa" * 16))),
    "attach_values": Attach((LinkLayerAddress(MN_EUI64), MessageAuthCode())),
    "he_values": HandoverError(NCOA, (Status(HandoverStatus.NCOA_IN_USE), Identifier(0x1234))),
    "fd_values": ForwardingDisable((Identifier(0x1234),)),
    "rs_realms": RouterSolicitation((AdjacentRealmsRequest(),)),
    "ra_realms": RouterAdvertisement(64, 0, 1800, 0, 0, (AdjacentRealms(("A.EX", "C.EX")),)),
}


def golden(name: str) -> tuple[str, str, bytes]:
    src, dst, text = VECTORS[name]
    return src, dst, bytes.fromhex(re.sub(r"\s+", "", text))


def test_every_message_class_has_golden_vectors():
    covered = {type(m) for m in EXPECTED.values()}
    assert set(MESSAGE_CLASSES.values()) | {RouterSolicitation, RouterAdvertisement} <= covered
    assert set(EXPECTED) == set(VECTORS)


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_build_matches_golden(name):
    src, dst, wire = golden(name)
    assert encode(EXPECTED[name], src, dst) == wire


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_parse_golden(name):
    src, dst, wire = golden(name)
    msg = decode(wire, src, dst)
    assert msg == EXPECTED[name]
    assert msg.checksum == struct.unpack_from("!H", wire, 2)[0]


def test_default_build_fields():
    """The defaults of a Handover Redirect are what the draft's layout implies: no flags, no options."""
    m = HandoverRedirect(64, "2001:db8:2::1")
    assert m.flags == HrdFlag(0) and m.options == () and m.checksum is None
    hv = decode(golden("hrd_values")[2])
    assert hv.flags == HrdFlag.M | HrdFlag.C | HrdFlag.S
    assert hv.principal == Principal("nar1", "B.EXAMPLE") and hv.identifier == 0x1234


def test_lkb_fragmentation_over_253_octets():
    pdu = bytes(i % 251 for i in range(600))
    msg = HandoverRedirectAck((LkbMessage(pdu), Identifier(1)))
    wire = encode(msg, "fe80::1", "fe80::2")
    # 600 = 253 + 253 + 94: three consecutive type-2 sub-options, then the identifier
    assert wire[10:12] == b"\x02\xff" and wire[265:267] == b"\x02\xff" and wire[520:522] == bytes((2, 96))
    assert wire[520 + 96:520 + 98] == b"\x06\x06"
    assert decode(wire, "fe80::1", "fe80::2").lkb == pdu


def test_lkb_of_exactly_253_is_one_suboption():
    wire = encode(HandoverRedirectAck((LkbMessage(b"x" * 253),)), "fe80::1", "fe80::2")
    assert len(wire) == 10 + 255 and decode(wire).lkb == b"x" * 253


def _hra(options: bytes) -> bytes:
    return bytes((200, 2, 0, 0, 0, 0, 0, 0)) + struct.pack("!H", 10 + len(options)) + options


@pytest.mark.parametrize("options, field, offset, exc", [
    (b"\x02\x05abc\x02\x04xy", "lkb", 15, errors.BadOption),  # short fragment followed by another
    (b"\x02\x04ab\x06\x06\x00\x01\x00\x00\x02\x03z", "lkb", 20, errors.BadOption),  # a second LKB PDU
    (b"\x02\x02", "lkb", 10, errors.BadOption),  # empty fragment
    (b"\x06\x01", "options.length", 11, errors.BadOption),  # length below the header
    (b"\x06\x00", "options.length", 11, errors.BadOption),  # zero length
    (b"\x06\x08\x00\x01", "options.length", 11, errors.BadOption),  # past the end
    (b"\x06\x07\x00\x01\x00\x00\x00", "identifier", 10, errors.BadOption),  # wrong size for the type
    (b"\x08\x04\x01\x00", "status", 10, errors.BadOption),
    (b"\x01\x03\x05", "principal.name_length", 12, errors.BadOption),  # name runs past the sub-option
    (b"\x01\x05\x01\xff\xfe", "principal", 12, errors.BadOption),  # not UTF-8
    (b"\x05\x04\x60\x00", "encapsulated_packet", 10, errors.BadOption),  # not an IPv6 packet
    (b"\x06", "options", 10, errors.Truncated),  # half a header
])
def test_bad_suboptions_name_field_and_offset(options, field, offset, exc):
    with pytest.raises(exc) as info:
        decode(_hra(options))
    assert info.value.field == field and info.value.offset == offset
    assert field in str(info.value) and f"offset {offset}" in str(info.value)


def test_unknown_suboption_is_skipped_and_kept():
    msg = decode(_hra(b"\x63\x04hi\x06\x06\x00\x05\x00\x00"))
    assert msg.options == (UnknownSubOption(0x63, b"hi"), Identifier(5))
    assert msg.identifier == 5


def test_bad_checksum_names_both_values():
    src, dst, wire = golden("hi_values")
    bad = bytearray(wire)
    bad[2] ^= 0x01
    with pytest.raises(errors.BadChecksum) as info:
        decode(bytes(bad), src, dst)
    assert info.value.found == struct.unpack_from("!H", bad, 2)[0]
    assert info.value.expected == struct.unpack_from("!H", wire, 2)[0]
    assert info.value.field == "checksum" and info.value.offset == 2
    # Without the pseudo-header addresses the checksum cannot be checked, and decoding succeeds.
    assert decode(bytes(bad)) == EXPECTED["hi_values"]


def test_unknown_code_and_type():
    wire = bytearray(golden("fd_values")[2])
    wire[1] = 99
    with pytest.raises(errors.UnsupportedType) as info:
        decode(bytes(wire))
    assert (info.value.field, info.value.offset) == ("code", 1)
    wire[0] = 201
    with pytest.raises(errors.UnsupportedType) as info:
        decode(bytes(wire))
    assert (info.value.field, info.value.offset) == ("type", 0)


@pytest.mark.parametrize("mutate, field, offset", [
    (lambda w: w.__setitem__(5, w[5] & ~0x20), "flags.S", 5),  # S clear, principal present
    (lambda w: w.__setitem__(4, 129), "prefix_size", 4),
])
def test_flags_and_fields_inconsistent(mutate, field, offset):
    wire = bytearray(golden("hrd_values")[2])
    mutate(wire)
    with pytest.raises(errors.InvalidField) as info:
        decode(bytes(wire))
    assert (info.value.field, info.value.offset) == (field, offset)


def test_s_flag_without_principal():
    wire = bytearray(golden("hrd_default")[2])
    wire[5] = 0x20
    with pytest.raises(errors.InvalidField, match="S flag set but the principal sub-option is absent"):
        decode(bytes(wire))


def test_m_flag_without_room_is_truncated():
    wire = bytearray(golden("hrd_default")[2])
    wire[5] = 0x80  # M set: 8 more octets promised, none there
    with pytest.raises(errors.Truncated) as info:
        decode(bytes(wire))
    assert (info.value.field, info.value.offset) == ("nar_mac", 24)


def test_length_field_must_match():
    wire = bytearray(golden("hra_values")[2])
    wire[9] += 1
    with pytest.raises(errors.InvalidField) as info:
        decode(bytes(wire))
    assert (info.value.field, info.value.offset) == ("length", 8)


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_truncated_at_every_offset_raises_documented_errors(name):
    wire = golden(name)[2]
    for cut in range(len(wire)):
        try:
            decode(wire[:cut])
        except errors.MalformedPacket as exc:
            assert exc.offset is None or 0 <= exc.offset <= len(wire)
        else:
            # a cut at a sub-option boundary of a message without a Length field is a shorter valid message
            assert name.startswith(("hrd", "hi", "he", "ra", "rs")), (name, cut)


def test_nd_option_rules():
    rs = bytes((133, 0, 0, 0, 0, 0, 0, 0))
    with pytest.raises(errors.BadOption, match="length 0"):
        decode(rs + b"\x01\x00" + bytes(6))
    with pytest.raises(errors.BadOption, match="runs past the end"):
        decode(rs + b"\x01\x02" + bytes(6))
    with pytest.raises(errors.BadOption, match="padding"):
        decode(rs + b"\xfd\x01\x01\x00\x00\x00\x00\x01")
    with pytest.raises(errors.InvalidField, match="code"):
        decode(bytes((133, 1)) + rs[2:])
    ra = RouterAdvertisement(options=(SourceLinkLayerAddress(bytes(range(6))), Mtu(1400),
                                      PrefixInformation(64, "2001:db8:2::"),
                                      UnknownNdOption(24, bytes(14)), AdjacentRealms(("x",))))
    assert decode(encode(ra, "fe80::1", "ff02::1")) == ra


def test_mac_value_offset():
    src, dst, wire = golden("amn_values")
    assert mac_value_offset(wire) == 10 + 5 + 2
    assert wire[17:33] == b"\xaa" * 16
    assert mac_value_offset(golden("hra_values")[2]) is None


def test_codepoint_profile_remaps_type_and_codes():
    profile = Codepoints(type=230, attach=42)
    msg = Attach((Identifier(9),))
    wire = encode(msg, "fe80::1", "fe80::2", codepoints=profile)
    assert wire[:2] == bytes((230, 42))
    assert decode(wire, "fe80::1", "fe80::2", codepoints=profile) == msg
    with pytest.raises(errors.UnsupportedType):
        decode(wire)  # the default profile does not know type 230
    with pytest.raises(ValueError, match="also used"):
        Codepoints(attach=1)
    with pytest.raises(ValueError, match="type"):
        Codepoints(type=135)


def test_binding_update_packet():
    bu = BindingUpdate(sequence=7, lifetime_units=60)
    pkt = bu.packet(NCOA, "2001:db8:ff::1")
    assert BindingUpdate.decode_packet(pkt) == bu
    att = Attach((EncapsulatedPacket(pkt),))
    assert decode(encode(att, NCOA, "fe80::2")) == att


def test_binding_ack_round_trip_and_mobility_header_checks():
    back = BindingAck(status=0, sequence=7)
    pkt = back.packet("2001:db8:ff::1", NCOA)
    assert BindingAck.decode_packet(pkt) == back and back.accepted and not BindingAck(129, 7).accepted
    assert BindingAck.decode_mh(pkt[40:]) == back
    mh = BindingUpdate(sequence=9, lifetime_units=1).encode_mh(NCOA, "2001:db8:ff::1")
    assert BindingUpdate.decode_mh(mh).sequence == 9
    with pytest.raises(ValueError, match="not a Binding Acknowledgement: MH Type 5"):
        BindingAck.decode_mh(mh)
    with pytest.raises(ValueError, match="Payload Proto 6, must be 59"):
        BindingUpdate.decode_mh(b"\x06" + mh[1:])
    with pytest.raises(ValueError, match="Header Len says 24 octets, have 16"):
        BindingUpdate.decode_mh(mh[:1] + b"\x02" + mh[2:])
    for cut in range(12):
        with pytest.raises(ValueError):
            BindingUpdate.decode_mh(mh[:cut])
    with pytest.raises(ValueError, match="status"):
        BindingAck(256, 1)
    with pytest.raises(ValueError, match="multiple of 8"):
        BindingAck(0, 1, mobility_options=b"\x00")


@pytest.mark.parametrize("build", [
    lambda: HandoverRedirect(129, "::1"),
    lambda: HandoverRedirect(64, "::1", nar_mac=b"\x00" * 6),
    lambda: HandoverRedirect(64, "not-an-address"),
    lambda: IcmpHandover(64, "::1", options=(LkbMessage(b"a"), LkbMessage(b"b"))),
    lambda: Identifier(70000),
    lambda: LkbMessage(b""),
    lambda: Principal("", "R"),
    lambda: HandoverControl(True, -1, 0),
    lambda: EncapsulatedPacket(b"\x60" + bytes(300)),
    lambda: UnknownSubOption(6, b""),
    lambda: AdjacentRealms(("",)),
])
def test_construction_rejects_unencodable_values(build):
    with pytest.raises(ValueError):
        build()


def test_mobility_header_errors_are_the_documented_malformed_packet_subclasses():
    mh = BindingUpdate(sequence=9, lifetime_units=1).encode_mh(NCOA, "2001:db8:ff::1")
    with pytest.raises(errors.UnsupportedType) as info:
        BindingAck.decode_mh(mh)
    assert (info.value.field, info.value.offset) == ("mh_type", 2)
    with pytest.raises(errors.InvalidField, match="Payload Proto 6"):
        BindingUpdate.decode_mh(b"\x06" + mh[1:])
    with pytest.raises(errors.Truncated, match="Header Len says 24"):
        BindingUpdate.decode_mh(mh[:1] + b"\x02" + mh[2:])
    with pytest.raises(errors.InvalidField, match="Header Len says 8"):
        BindingUpdate.decode_mh(mh[:1] + b"\x00" + mh[2:])
    for cut in range(12):
        with pytest.raises(errors.Truncated):
            BindingUpdate.decode_mh(mh[:cut])
    pkt = BindingUpdate(sequence=9, lifetime_units=1).packet(NCOA, "2001:db8:ff::1")
    for cut in (0, 39, 40, 51):
        with pytest.raises(errors.Truncated):
            BindingUpdate.decode_packet(pkt[:cut])
    with pytest.raises(errors.InvalidField, match="next header 6"):
        BindingUpdate.decode_packet(pkt[:6] + b"\x06" + pkt[7:])
    with pytest.raises(errors.InvalidField, match="version 4"):
        BindingAck.decode_packet(b"\x40" + pkt[1:])


@pytest.mark.parametrize("build, match", [
    (lambda: Principal("mn\udc80", "R"), "principal.name: not encodable as UTF-8"),
    (lambda: Principal("mn", "\ud800"), "principal.realm: not encodable as UTF-8"),
    (lambda: AdjacentRealms(("B.EX", "\udfff")), "adjacent_realms: not encodable as UTF-8"),
    (lambda: AdjacentRealms("B.EXAMPLE"), "adjacent_realms.realms: expected a sequence, got str"),
    (lambda: AdjacentRealms(None), "adjacent_realms.realms: expected a sequence"),
    (lambda: HandoverRedirectAck(options=None), "handover_redirect_ack.options: expected a sequence"),
    (lambda: HandoverRedirectAck(options=Identifier(1)), "expected a sequence, got Identifier"),
    (lambda: IcmpHandover(64, NCOA, options=5), "handover.options: expected a sequence, got int"),
    (lambda: RouterSolicitation(options=None), "router_solicitation.options: expected a sequence"),
    (lambda: SourceLinkLayerAddress(bytes(14)), "source_ll_address.address: expected 6 octets, got 14"),
    (lambda: TargetLinkLayerAddress(bytes(8)), "target_ll_address.address: expected 6 octets, got 8"),
])
def test_hostile_construction_values_are_plain_value_errors(build, match):
    """A value from a configuration or a peer that cannot be encoded is a ValueError naming the field, not a
    TypeError, a UnicodeEncodeError from deep inside, or a silently wrong message (a realm string taken as
    a tuple of one-letter realms)."""
    with pytest.raises(ValueError, match=match) as info:
        build()
    assert type(info.value) is ValueError


def test_decode_refuses_a_str_or_an_int_instead_of_octets():
    with pytest.raises(TypeError):
        decode(5)  # type: ignore[arg-type]  # bytes(5) would be five zero octets, "decoded" as type 0
    with pytest.raises(TypeError):
        decode("c8020000")  # type: ignore[arg-type]


def test_refill_checksum_needs_addresses_and_a_header():
    from fmipfast.messages import refill_checksum
    with pytest.raises(ValueError, match="src and dst"):
        refill_checksum(bytearray(golden("hra_values")[2]), None, None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not an ICMPv6 message"):
        refill_checksum(bytearray(b"\xc8"), "fe80::1", "fe80::2")
    src, dst, wire = golden("hra_values")
    assert refill_checksum(bytearray(wire[:2] + b"\0\0" + wire[4:]), src, dst) == wire


def test_a_parser_bug_still_reaches_the_caller_as_malformed_packet(monkeypatch):
    """The last line of defence: were a parser to fail with anything but MalformedPacket, decode() re-raises
    it as MalformedPacket chained to the original (the fuzz tests check that it never has to)."""
    def broken(cls, data):
        return data[1000]  # IndexError, as a slice-before-length-check bug would

    monkeypatch.setattr(HandoverRedirectAck, "_parse", classmethod(broken))
    with pytest.raises(errors.MalformedPacket, match="undecodable HandoverRedirectAck: IndexError") as info:
        decode(golden("hra_values")[2])
    assert isinstance(info.value.__cause__, IndexError) and info.value.field == "HandoverRedirectAck"


def test_encode_without_addresses_needs_a_checksum():
    with pytest.raises(ValueError, match="src/dst"):
        encode(HandoverRedirectAck())
    crafted = encode(HandoverRedirectAck(checksum=0xBEEF))
    assert crafted[2:4] == b"\xbe\xef"


# ------------------------------------------------------------------------------------------------
# hypothesis
# ------------------------------------------------------------------------------------------------

addresses = st.binary(min_size=16, max_size=16).map(IPv6Address)
eui64s = st.binary(min_size=8, max_size=8)
u16 = st.integers(0, 0xFFFF)
small_text = st.text(min_size=1, max_size=40).filter(lambda s: len(s.encode()) <= 100)

suboptions = st.one_of(
    st.builds(Principal, small_text, small_text),
    st.builds(HandoverControl, st.booleans(), u16, st.integers(0, 2**32 - 1)),
    st.builds(AddressOption, st.integers(0, 255), addresses),
    st.builds(Identifier, u16),
    st.builds(MessageAuthCode, st.binary(min_size=16, max_size=16)),
    st.builds(Status, st.integers(0, 255)),
    st.builds(LinkLayerAddress, eui64s),
    st.builds(EncapsulatedPacket, st.binary(min_size=0, max_size=200).map(lambda b: b"\x60" + bytes(39) + b)),
    st.builds(UnknownSubOption, st.integers(10, 255), st.binary(max_size=60)),
)


@st.composite
def option_lists(draw, allow_lkb=True):
    opts = draw(st.lists(suboptions, max_size=6))
    if allow_lkb and draw(st.booleans()):
        pos = draw(st.integers(0, len(opts)))
        opts.insert(pos, LkbMessage(draw(st.binary(min_size=1, max_size=800))))
    return tuple(opts)


def _hrd_options(opts):
    return opts


fmip_messages = st.one_of(
    st.builds(HandoverRedirect, st.integers(0, 128), addresses, st.none() | eui64s, st.none() | addresses,
              option_lists()),
    st.builds(IcmpHandover, st.integers(0, 128), addresses, st.none() | eui64s, option_lists()),
    st.builds(HandoverError, addresses, option_lists()),
    *[st.builds(cls, option_lists()) for cls in (HandoverRedirectAck, AuthenticatedMN, Attach, ForwardingDisable)],
)

nd_options = st.one_of(
    st.builds(SourceLinkLayerAddress, st.binary(min_size=6, max_size=6)),
    st.builds(TargetLinkLayerAddress, st.binary(min_size=6, max_size=6)),
    st.builds(PrefixInformation, st.integers(0, 128), addresses, st.integers(0, 255), st.integers(0, 2**32 - 1),
              st.integers(0, 2**32 - 1)),
    st.builds(Mtu, st.integers(0, 2**32 - 1)),
    st.just(AdjacentRealmsRequest()),
    st.builds(AdjacentRealms, st.lists(small_text, max_size=5).map(tuple)),
    st.builds(UnknownNdOption, st.integers(6, 252), st.integers(0, 3).map(lambda n: bytes(6 + 8 * n))),
)
nd_messages = st.one_of(
    st.builds(RouterSolicitation, st.lists(nd_options, max_size=4).map(tuple)),
    st.builds(RouterAdvertisement, st.integers(0, 255), st.integers(0, 255), u16, st.integers(0, 2**32 - 1),
              st.integers(0, 2**32 - 1), st.lists(nd_options, max_size=4).map(tuple)),
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(msg=st.one_of(fmip_messages, nd_messages), src=addresses, dst=addresses)
def test_decode_inverts_encode(msg, src, dst):
    wire = encode(msg, src, dst)
    back = decode(wire, src, dst)
    assert back == msg
    assert back.checksum == struct.unpack_from("!H", wire, 2)[0]
    assert encode(back, src, dst) == wire


@settings(max_examples=400)
@given(data=st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_documented_errors(data):
    try:
        decode(data)
    except errors.MalformedPacket:
        pass


@settings(max_examples=300)
@given(data=st.binary(min_size=4, max_size=300), code=st.integers(1, 7))
def test_arbitrary_fmip_bodies_raise_only_documented_errors(data, code):
    raw = bytes((200, code)) + data[2:]
    try:
        msg = decode(raw)
    except errors.MalformedPacket as exc:
        # the offset names the field's first octet, which for a truncated field may lie past the end
        assert exc.offset is None or 0 <= exc.offset <= max(len(raw), 48)
    else:
        assert decode(encode(msg, "::1", "::2")) == msg


@settings(max_examples=200)
@given(msg=fmip_messages, data=st.data())
def test_bit_flips_raise_only_documented_errors(msg, data):
    wire = bytearray(encode(msg, "fe80::1", "fe80::2"))
    i = data.draw(st.integers(0, len(wire) - 1))
    wire[i] ^= 1 << data.draw(st.integers(0, 7))
    with pytest.raises(errors.MalformedPacket):
        decode(bytes(wire), "fe80::1", "fe80::2")  # at the least the checksum no longer verifies


@given(data=st.binary(max_size=64))
def test_mobility_header_decoders_reject_any_bytes_with_malformed_packet(data):
    """What a raw MH socket hands over is untrusted: any octets decode or raise MalformedPacket, nothing else."""
    for cls in (BindingUpdate, BindingAck):
        try:
            got = cls.decode_mh(data)
        except errors.MalformedPacket:
            continue
        assert got.encode_mh("2001:db8::1", "2001:db8::2")[6:] == data[6:(data[1] + 1) * 8]


@given(seq=st.integers(0, 0xFFFF), status=st.integers(0, 255), flags=st.integers(0, 255),
       lifetime=st.integers(0, 0xFFFF), pad=st.sampled_from([b"\x01\x02\x00\x00", b"\x00" * 12]))
def test_binding_ack_round_trips(seq, status, flags, lifetime, pad):
    back = BindingAck(status, seq, lifetime, flags, pad)
    assert BindingAck.decode_packet(back.packet("2001:db8::1", "2001:db8::2")) == back


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(msg=fmip_messages, src=addresses, dst=addresses)
def test_mac_offset_of_agrees_with_mac_value_offset(msg, src, dst):
    """The no-decode walk (used by sign and by receivers that have just decoded) finds what decoding finds."""
    from fmipfast.messages import mac_offset_of
    wire = encode(msg, src, dst)
    assert mac_offset_of(msg, wire) == mac_value_offset(wire)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(msg=fmip_messages, src=addresses, dst=addresses, key=st.binary(min_size=32, max_size=32),
       flip=st.integers(0, 10_000))
def test_sign_is_the_message_with_its_mac_filled_and_mac_ok_agrees_with_or_without_the_message(msg, src, dst, key,
                                                                                              flip):
    """``sign`` encodes once and fills the MAC in place: the same octets as encoding the message with the MAC
    value as a sub-option (the straightforward way); ``mac_ok`` gives the same answer whether it decodes the
    octets itself or is handed the decoded message, for the signed octets and for any one-bit change."""
    import dataclasses

    from fmipfast.protocol import mac_ok, sign
    from fmipfast.security import mac as M
    msg = dataclasses.replace(msg, options=(*[o for o in msg.options if not isinstance(o, MessageAuthCode)],
                                            MessageAuthCode()))
    signed = sign(msg, key, src, dst)
    draft = encode(msg, src, dst)
    off = mac_value_offset(draft)
    value = M.message_mac(key, src.packed, dst.packed, draft, off)
    straight = encode(dataclasses.replace(msg, options=tuple(
        MessageAuthCode(value) if isinstance(o, MessageAuthCode) else o for o in msg.options)), src, dst)
    assert signed == straight
    bad = bytearray(signed)
    bad[flip % len(bad)] ^= 1 << (flip % 8)
    for octets in (signed, bytes(bad)):
        try:
            decoded = decode(octets, src, dst)
        except errors.MalformedPacket:
            decoded = None
        alone = mac_ok(octets, key, src, dst)
        if isinstance(decoded, type(msg)):
            assert mac_ok(octets, key, src, dst, message=decoded) == alone
        assert alone == (octets[:2] + octets[4:] == signed[:2] + signed[4:])  # the checksum is not MAC'd


# Every name fmipfast.messages exported when it was one module, and the submodule of fmipfast/messages/ that is
# its home now.  The package re-exports them all (the façade): ``from fmipfast.messages import X`` keeps working.
FACADE_HOMES = {
    "base": ["AddressLike", "Message", "MAX_MESSAGE_LEN"],
    "suboptions": ["SubOption", "Principal", "LkbMessage", "HandoverControl", "AddressOption", "EncapsulatedPacket",
                   "Identifier", "MessageAuthCode", "Status", "LinkLayerAddress", "UnknownSubOption"],
    "fmipv6": ["FmipMessage", "HandoverRedirect", "HandoverRedirectAck", "IcmpHandover", "AuthenticatedMN",
               "Attach", "HandoverError", "ForwardingDisable", "MESSAGE_CLASSES"],
    "nd": ["NdOption", "SourceLinkLayerAddress", "TargetLinkLayerAddress", "PrefixInformation", "Mtu",
           "AdjacentRealmsRequest", "AdjacentRealms", "UnknownNdOption", "PlainIcmp", "RouterSolicitation",
           "RouterAdvertisement", "NeighborSolicitation", "NeighborAdvertisement", "EchoRequest", "EchoReply",
           "IcmpError", "ICMP_ERROR_MAX_INVOKING"],
    "mobility_header": ["BindingUpdate", "BindingAck", "binding_ack", "is_binding_ack"],
    "codec": ["encode", "decode", "mac_value_offset", "mac_offset_of", "refill_checksum"],
}


def test_the_package_reexports_every_name_of_the_old_module_as_the_same_object():
    import importlib
    import inspect

    import fmipfast.messages as facade

    names = [n for group in FACADE_HOMES.values() for n in group]
    assert sorted(facade.__all__) == sorted(names) and len(facade.__all__) == len(names) == 49
    for home, group in FACADE_HOMES.items():
        module = importlib.import_module(f"fmipfast.messages.{home}")
        for name in group:
            exported = getattr(facade, name)
            assert exported is getattr(module, name), (name, home)
            if inspect.isclass(exported) or inspect.isfunction(exported):
                assert exported.__module__ == module.__name__, (name, exported.__module__)
    namespace: dict[str, object] = {}
    exec("from fmipfast.messages import *", namespace)  # noqa: S102 - the star import users may write
    assert set(namespace) - {"__builtins__"} == set(names)
