"""Frame building and the per-frame walk: Ethernet/VLAN, IPv6 extension headers, AH, fragments, bounds."""

from __future__ import annotations

import struct
from ipaddress import IPv6Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop, IPv6ExtHdrRouting
from scapy.layers.ipsec import AH
from scapy.layers.l2 import Dot1Q, Ether

from fmipfast import errors, frames
from fmipfast.messages import Attach, HandoverError, HandoverRedirect, Identifier, RouterSolicitation

MAC = bytes.fromhex("02005e100001")


def test_icmp6_frame_hop_limits_follow_design_table():
    hrd = frames.icmp6_packet(HandoverRedirect(64, "2001:db8:2::1"), "fe80::1", "fe80::2")
    he = frames.icmp6_packet(HandoverError("2001:db8::1"), "2001:db8:2::1", "2001:db8:1::1")
    assert hrd[7] == 255 and he[7] == 64
    assert frames.requires_hop_limit_255(Attach()) and frames.requires_hop_limit_255(RouterSolicitation())
    assert not frames.requires_hop_limit_255(HandoverError("::1"))


def test_multicast_destination_mac():
    frame = frames.icmp6_frame(RouterSolicitation(), "fe80::1", "ff02::2", MAC)
    assert frame[:6] == bytes.fromhex("333300000002")
    with pytest.raises(ValueError, match="dst_mac"):
        frames.icmp6_frame(RouterSolicitation(), "fe80::1", "fe80::2", MAC)


def test_parse_frame_walks_extension_headers_and_ah():
    inner = bytes(UDP(sport=1, dport=2) / b"data")
    pkt = (Ether(dst="02:00:00:00:00:02", src="02:00:00:00:00:01") / Dot1Q(vlan=42)
           / IPv6(src="2001:db8::1", dst="2001:db8::2", hlim=9) / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt()
           / IPv6ExtHdrRouting() / AH(nh=17, payloadlen=5, spi=7, seq=1, icv=b"\x00" * 16)
           / UDP(sport=1, dport=2) / b"data")
    p = frames.parse_frame(bytes(pkt))
    assert p.vlan == 42 and p.hop_limit == 9 and p.src == IPv6Address("2001:db8::1")
    assert p.headers == (0, 60, 43, 51, 17) and p.has_ah and p.upper_layer == 17
    assert p.payload == inner


def test_non_first_fragment_has_no_upper_layer():
    pkt = bytes(IPv6(src="::1", dst="::2") / IPv6ExtHdrFragment(offset=100, nh=58) / (b"x" * 16))
    p = frames.parse_frame(pkt, frames.LINKTYPE_RAW)
    assert p.upper_layer is None and p.headers == (44, 58)


def test_non_ipv6_frames_pass_through():
    arp = bytes(12) + b"\x08\x06" + bytes(28)
    assert frames.parse_frame(arp).src is None and frames.parse_frame(arp).ethertype == 0x0806


@pytest.mark.parametrize("frame, exc, field", [
    (bytes(10), errors.Truncated, "ethernet"),
    (bytes(12) + b"\x86\xdd" + bytes(20), errors.Truncated, "ipv6"),
    (bytes(12) + b"\x86\xdd" + b"\x40" + bytes(39), errors.InvalidField, "ipv6.version"),
    (bytes(12) + b"\x86\xdd" + b"\x60\0\0\0\0\x50\x3a\xff" + bytes(32), errors.Truncated, "ipv6.payload_length"),
    (bytes(12) + b"\x86\xdd" + b"\x60\0\0\0\0\x08\x3c\xff" + bytes(32) + b"\x3a\x05" + bytes(6),
     errors.Truncated, "ipv6.extension_header"),
    (bytes(12) + b"\x86\xdd" + b"\x60\0\0\0\0\x10\x3c\xff" + bytes(32) + b"\x00\x00" + bytes(6) + b"\x3a\0" + bytes(6),
     errors.InvalidField, "ipv6.next_header"),
])
def test_malformed_frames_name_the_field(frame, exc, field):
    with pytest.raises(exc) as info:
        frames.parse_frame(frame)
    assert info.value.field == field


def test_long_extension_header_chain_is_bounded():
    chain = b"".join(b"\x3c\x00" + bytes(6) for _ in range(frames.MAX_EXT_HEADERS + 4))
    pkt = frames.build_ipv6("::1", "::2", 60, chain)
    with pytest.raises(errors.InvalidField, match="extension headers"):
        frames.parse_frame(pkt, frames.LINKTYPE_RAW)


def test_checksum_ok_uses_the_pseudo_header():
    pkt = bytearray(frames.icmp6_packet(Attach((Identifier(3),)), "fe80::1", "fe80::2"))
    assert frames.parse_frame(bytes(pkt), frames.LINKTYPE_RAW).icmp6_checksum_ok()
    pkt[23] ^= 1  # change the source address: the pseudo-header no longer matches
    assert not frames.parse_frame(bytes(pkt), frames.LINKTYPE_RAW).icmp6_checksum_ok()


def test_trailing_ethernet_padding_is_ignored():
    pkt = frames.icmp6_frame(Attach(), "fe80::1", "fe80::2", MAC, MAC) + bytes(20)
    p = frames.parse_frame(pkt)
    assert p.payload_length == struct.unpack_from("!H", pkt, 18)[0] and p.icmp6_checksum_ok()


@settings(max_examples=500)
@given(st.binary(max_size=200), st.sampled_from([frames.LINKTYPE_ETHERNET, frames.LINKTYPE_RAW]))
def test_arbitrary_bytes_raise_only_documented_errors(data, linktype):
    try:
        p = frames.parse_frame(data, linktype)
    except errors.MalformedPacket:
        return
    if p.payload_offset is not None:
        assert p.payload_offset + p.payload_length <= len(data)
