"""Neighbor Discovery, echo and ICMPv6 error messages of the control path, checked against scapy both ways."""

from __future__ import annotations

from ipaddress import IPv6Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet6 import (
    ICMPv6DestUnreach,
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptSrcLLAddr,
    ICMPv6PacketTooBig,
    ICMPv6TimeExceeded,
    IPv6,
)
from scapy.packet import Raw

from fmipfast import errors, frames
from fmipfast.constants import Icmp6Type
from fmipfast.messages import (
    ICMP_ERROR_MAX_INVOKING,
    EchoReply,
    EchoRequest,
    IcmpError,
    NeighborAdvertisement,
    NeighborSolicitation,
    RouterAdvertisement,
    RouterSolicitation,
    SourceLinkLayerAddress,
    TargetLinkLayerAddress,
    decode,
    encode,
)

MAC = bytes.fromhex("02005e100001")
SRC, DST = "fe80::1", "ff02::1:ff00:2"


def test_ns_from_scapy_and_to_scapy():
    sp = (IPv6(src=SRC, dst=DST, hlim=255) / ICMPv6ND_NS(tgt="2001:db8::2")
          / ICMPv6NDOptSrcLLAddr(lladdr="02:00:5e:10:00:01"))
    raw = bytes(sp)
    ns = decode(raw[40:], SRC, DST)
    assert ns == NeighborSolicitation("2001:db8::2", (SourceLinkLayerAddress(MAC),))
    ours = frames.icmp6_packet(ns, SRC, DST)
    assert ours == raw  # byte-identical to scapy's, checksum included
    assert frames.requires_hop_limit_255(ns)


def test_na_flags_and_tlla_against_scapy():
    na = NeighborAdvertisement("2001:db8::2", router=True, solicited=True, override=False,
                               options=(TargetLinkLayerAddress(MAC),))
    pkt = frames.icmp6_packet(na, "2001:db8::2", "2001:db8::9")
    sp = IPv6(pkt)
    assert (sp[ICMPv6ND_NA].R, sp[ICMPv6ND_NA].S, sp[ICMPv6ND_NA].O) == (1, 1, 0)
    assert sp[ICMPv6ND_NA].tgt == "2001:db8::2" and sp[ICMPv6NDOptDstLLAddr].lladdr == "02:00:5e:10:00:01"
    sp2 = IPv6(src="fe80::2", dst="fe80::1", hlim=255) / ICMPv6ND_NA(tgt="fe80::2", R=0, S=1, O=1)
    assert decode(bytes(sp2)[40:], "fe80::2", "fe80::1") == NeighborAdvertisement("fe80::2", False, True, True)


def test_echo_against_scapy():
    req = IPv6(src="2001:db8::1", dst="2001:db8::2") / ICMPv6EchoRequest(id=7, seq=9, data=b"ping")
    msg = decode(bytes(req)[40:], "2001:db8::1", "2001:db8::2")
    assert msg == EchoRequest(7, 9, b"ping")
    rep = frames.icmp6_packet(EchoReply(7, 9, b"ping"), "2001:db8::2", "2001:db8::1")
    sp = IPv6(rep)
    assert sp[ICMPv6EchoReply].id == 7 and sp[ICMPv6EchoReply].seq == 9 and bytes(sp[ICMPv6EchoReply].data) == b"ping"


@pytest.mark.parametrize("kind, code, value, scapy_cls", [
    (Icmp6Type.DEST_UNREACH, 3, 0, ICMPv6DestUnreach),
    (Icmp6Type.PACKET_TOO_BIG, 0, 1400, ICMPv6PacketTooBig),
    (Icmp6Type.TIME_EXCEEDED, 0, 0, ICMPv6TimeExceeded),
])
def test_errors_against_scapy(kind, code, value, scapy_cls):
    invoking = frames.build_ipv6("2001:db8::1", "2001:db8::99", 17, bytes(2000))
    err = IcmpError(kind, code, value, invoking)
    assert len(err.invoking) == ICMP_ERROR_MAX_INVOKING  # RFC 4443 §2.4(c): fits the minimum MTU
    pkt = frames.icmp6_packet(err, "2001:db8::fe", "2001:db8::1")
    assert len(pkt) == 1280
    sp = IPv6(pkt)
    assert sp.haslayer(scapy_cls) and sp[scapy_cls].code == code
    if kind == Icmp6Type.PACKET_TOO_BIG:
        assert sp[scapy_cls].mtu == value
    assert decode(pkt[40:], "2001:db8::fe", "2001:db8::1") == err


def test_bad_codes_and_construction():
    wire = bytearray(encode(EchoRequest(1, 2), "::1", "::2"))
    wire[1] = 5
    with pytest.raises(errors.InvalidField):
        decode(bytes(wire))
    with pytest.raises(ValueError):
        IcmpError(128)
    with pytest.raises(ValueError):
        NeighborAdvertisement("::1", router=1)  # type: ignore[arg-type]


@pytest.mark.parametrize("msg", [
    RouterSolicitation(),
    RouterAdvertisement(),
    NeighborSolicitation("2001:db8::2", (SourceLinkLayerAddress(MAC),)),
    NeighborAdvertisement("2001:db8::2"),
])
def test_nd_option_type_0_is_a_bad_option_not_a_value_error(msg):
    """No ND option has type 0; an option carrying it makes the message malformed (BadOption, at the type
    octet), the documented error, where it used to escape as the constructor's plain ValueError."""
    wire = encode(msg, SRC, DST) + b"\x00\x01" + bytes(6)
    with pytest.raises(errors.BadOption) as info:
        decode(wire)
    assert (info.value.field, info.value.offset) == ("options.type", len(wire) - 8)


@pytest.mark.parametrize("cls", [SourceLinkLayerAddress, TargetLinkLayerAddress])
@pytest.mark.parametrize("units", [2, 3, 255])
def test_link_layer_address_option_longer_than_one_unit_is_a_bad_option(cls, units):
    """On Ethernet (RFC 2464 §8, RFC 4861 §4.6.1) the option is one unit holding a 6-octet MAC; a longer one
    used to decode into a 14-octet "MAC" the router then used as a frame's destination."""
    ns = encode(NeighborSolicitation("2001:db8::2"), SRC, DST)
    option = bytes((cls.TYPE, units)) + MAC + bytes(units * 8 - 8)
    with pytest.raises(errors.BadOption) as info:
        decode(ns + option)
    assert (info.value.field, info.value.offset) == (f"{cls.NAME}.length", len(ns) + 1)
    ok = decode(ns + bytes((cls.TYPE, 1)) + MAC)
    assert ok.options == (cls(MAC),) and len(ok.options[0].address) == 6


def test_scapy_link_layer_option_of_two_units_is_refused():
    sp = (IPv6(src=SRC, dst=DST, hlim=255) / ICMPv6ND_NS(tgt="2001:db8::2")
          / ICMPv6NDOptSrcLLAddr(len=2, lladdr="02:00:5e:10:00:01") / Raw(bytes(8)))  # the second unit
    raw = bytes(sp)
    assert raw[40 + 24:40 + 26] == b"\x01\x02" and len(raw) == 40 + 24 + 16
    with pytest.raises(errors.BadOption, match="link-layer address option on Ethernet is 1"):
        decode(raw[40:], SRC, DST)  # checksum verified first: scapy computed it over both units


addresses = st.binary(min_size=16, max_size=16).map(IPv6Address)


@settings(max_examples=200)
@given(msg=st.one_of(
    st.builds(NeighborSolicitation, addresses,
              st.lists(st.builds(SourceLinkLayerAddress, st.binary(min_size=6, max_size=6)), max_size=2).map(tuple)),
    st.builds(NeighborAdvertisement, addresses, st.booleans(), st.booleans(), st.booleans()),
    st.builds(EchoRequest, st.integers(0, 65535), st.integers(0, 65535), st.binary(max_size=64)),
    st.builds(EchoReply, st.integers(0, 65535), st.integers(0, 65535), st.binary(max_size=64)),
    st.builds(IcmpError, st.sampled_from([1, 2, 3, 4]), st.integers(0, 255), st.integers(0, 2**32 - 1),
              st.binary(max_size=300)),
), src=addresses, dst=addresses)
def test_round_trip(msg, src, dst):
    assert decode(encode(msg, src, dst), src, dst) == msg
