"""classify: the batch core's frame classification (docs/design.md §5, §7).

Golden frames are built with fmipfast.frames/messages and with scapy (an independent crafter); every
test that takes ``impl`` runs on fmipfast.reference (py) and fmipfast._core (c).  The agreement tests at
the end (only collected when the compiled core is available, conftest.HAVE_CORE) compare every array of
the two implementations on hypothesis-generated batches, and compare both with the per-frame walker
(fmipfast.frames.parse_frame + messages.decode).
"""

from __future__ import annotations

import struct
from ipaddress import IPv6Address

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import TCP, UDP
from scapy.layers.inet6 import (
    ICMPv6EchoRequest,
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6ND_RA,
    ICMPv6ND_Redirect,
    ICMPv6ND_RS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptPrefixInfo,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
)
from scapy.layers.ipsec import AH
from scapy.layers.l2 import Dot1Q, Ether
from scapy.packet import Raw

from fmipfast import frames, messages, reference
from fmipfast.constants import Codepoints, DropReason, FmipCode, Verdict
from fmipfast.messages import (
    AddressOption,
    Attach,
    AuthenticatedMN,
    ForwardingDisable,
    HandoverError,
    HandoverRedirect,
    HandoverRedirectAck,
    IcmpHandover,
    Identifier,
    LinkLayerAddress,
    LkbMessage,
    RouterAdvertisement,
    RouterSolicitation,
    SourceLinkLayerAddress,
    Status,
)
from fmipfast.reference.wire import FIELDS
from tests.conftest import HAVE_CORE

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

MN_MAC = bytes.fromhex("020000000001")
AR_MAC = bytes.fromhex("020000000002")
MN_EUI = MN_MAC[:3] + b"\xff\xfe" + MN_MAC[3:]
R = DropReason
V = Verdict


# ---------------------------------------------------------------------------------------------------
# Helpers


def _arena(frames_: list[bytes], gaps: list[int] | None = None):
    """One uint8 arena holding the frames back to back (with ``gaps[i]`` octets before frame i)."""
    gaps = gaps or [0] * len(frames_)
    buf = bytearray()
    offsets, lengths = [], []
    for frame, gap in zip(frames_, gaps):
        buf += b"\xee" * gap
        offsets.append(len(buf))
        lengths.append(len(frame))
        buf += frame
    return (np.frombuffer(bytes(buf), dtype=np.uint8).copy(), np.array(offsets, dtype=np.int64),
            np.array(lengths, dtype=np.uint32))


def run(impl, frames_: list[bytes], **kwargs):
    return impl.classify(*_arena(frames_), **kwargs)


def one(impl, frame: bytes, **kwargs):
    batch = run(impl, [frame], **kwargs)
    assert batch.n == 1
    return batch


def outcome(impl, frame: bytes, **kwargs) -> tuple[int, int]:
    batch = one(impl, frame, **kwargs)
    return int(batch.verdict[0]), int(batch.drop_reason[0])


def assert_same(a, b) -> None:
    """Every array of two Batches is identical (dtype, shape, values)."""
    assert a.n == b.n
    for name, _dtype, _row in FIELDS:
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and x.shape == y.shape, name
        assert np.array_equal(x, y), (name, x, y)
    assert np.array_equal(a.drop_counts, b.drop_counts)


def eth(pkt: bytes, dst: bytes = AR_MAC, src: bytes = MN_MAC) -> bytes:
    return frames.build_ethernet(dst, src, pkt)


def fmip_frame(message, src="fe80::1", dst="fe80::2", hop_limit=None, codepoints=None, ah=False) -> bytes:
    kw = {} if codepoints is None else {"codepoints": codepoints}
    if not ah:
        return eth(frames.icmp6_packet(message, src, dst, hop_limit, **kw))
    icmp = messages.encode(message, src, dst, **kw)
    ah_hdr = struct.pack("!BBHII", 58, 4, 0, 0x100, 1) + bytes(12)  # RFC 4302 §2: (4 + 2) * 4 = 24 octets
    return eth(frames.build_ipv6(src, dst, 51, ah_hdr + icmp, 64 if hop_limit is None else hop_limit))


def scapy_frame(pkt) -> bytes:
    return bytes(Ether(dst=AR_MAC.hex(":"), src=MN_MAC.hex(":")) / pkt)


def resum(frame: bytes, l4: int) -> bytes:
    """Recompute the ICMPv6 checksum of the message at ``l4`` (after editing it)."""
    buf = bytearray(frame)
    src, dst = bytes(buf[22:38]), bytes(buf[38:54])
    plen = struct.unpack_from("!H", buf, 18)[0]
    msg = bytearray(buf[l4:54 + plen])
    msg[2:4] = b"\0\0"
    reference.icmp6_checksum_fill(src, dst, msg)
    buf[l4:54 + plen] = msg
    return bytes(buf)


LL1, LL2 = "fe80::1", "fe80::2"
G1, G2 = "2001:db8::1", "2001:db8::2"
SOL = "ff02::1:ff00:2"
MN_L, AR_L = "02:00:00:00:00:01", "02:00:00:00:00:02"

NS = scapy_frame(IPv6(src=LL1, dst=SOL, hlim=255) / ICMPv6ND_NS(tgt=G2) / ICMPv6NDOptSrcLLAddr(lladdr=MN_L))
NA = scapy_frame(IPv6(src=LL2, dst=LL1, hlim=255) / ICMPv6ND_NA(tgt=G2, S=1, R=0, O=1)
                 / ICMPv6NDOptDstLLAddr(lladdr=AR_L))
RS = scapy_frame(IPv6(src=LL1, dst="ff02::2", hlim=255) / ICMPv6ND_RS() / ICMPv6NDOptSrcLLAddr(lladdr=MN_L))
RA = scapy_frame(IPv6(src=LL2, dst="ff02::1", hlim=255) / ICMPv6ND_RA() / ICMPv6NDOptSrcLLAddr(lladdr=AR_L)
                 / ICMPv6NDOptPrefixInfo(prefix="2001:db8::", prefixlen=64))
REDIRECT = scapy_frame(IPv6(src=LL2, dst=G1, hlim=255) / ICMPv6ND_Redirect(tgt=LL2, dst="2001:db8:9::9")
                       / ICMPv6NDOptDstLLAddr(lladdr=AR_L))
UDP6 = scapy_frame(IPv6(src=G1, dst=G2, hlim=64) / UDP(sport=1000, dport=2000) / b"payload")
TCP6 = scapy_frame(IPv6(src=G1, dst=G2, hlim=64) / TCP(sport=1000, dport=80) / b"x")
ECHO = scapy_frame(IPv6(src=G1, dst=G2, hlim=64) / ICMPv6EchoRequest(id=1, seq=2, data=b"ping"))
TUNNEL = scapy_frame(IPv6(src="2001:db8:1::1", dst="2001:db8:2::1", hlim=64) / IPv6(src=G1, dst=G2) / UDP() / b"in")
HRD = fmip_frame(HandoverRedirect(64, "2001:db8:2::1", nar_mac=MN_EUI, ncoa="2001:db8:2::99",
                                  options=(Identifier(77),)))
HRA = fmip_frame(HandoverRedirectAck(options=(LkbMessage(b"k" * 40), Identifier(77))))
HI = fmip_frame(IcmpHandover(64, "2001:db8:2::99", mn_mac=MN_EUI,
                             options=(AddressOption(1, "2001:db8:1::99"), Identifier(78))),
                src="2001:db8:1::1", dst="2001:db8:2::1", ah=True)
HE = fmip_frame(HandoverError("2001:db8:2::99", options=(Status(1), Identifier(78))),
                src="2001:db8:2::1", dst="2001:db8:1::1", ah=True)
ATTACH = fmip_frame(Attach(options=(LinkLayerAddress(MN_EUI), Identifier(5))))
AMN = fmip_frame(AuthenticatedMN(options=(LkbMessage(b"r" * 10),)))
FD = fmip_frame(ForwardingDisable(options=(Identifier(9),)))
RS_FMIP = fmip_frame(RouterSolicitation(), dst="ff02::2")
RA_FMIP = fmip_frame(RouterAdvertisement(options=(SourceLinkLayerAddress(AR_MAC),)), src=LL2, dst="ff02::1")

GOLDEN = [NS, NA, RS, RA, REDIRECT, UDP6, TCP6, ECHO, TUNNEL, HRD, HRA, HI, HE, ATTACH, AMN, FD, RS_FMIP, RA_FMIP]


# ---------------------------------------------------------------------------------------------------
# Golden frames: verdicts and every parsed field


def test_neighbor_solicitation_fields(impl):
    b = one(impl, NS)
    assert (b.verdict[0], b.drop_reason[0]) == (V.CONTROL, R.NONE)
    assert b.icmp_type[0] == 135 and b.icmp_code[0] == 0 and b.fmip_code[0] == 0
    assert b.next_header[0] == 58 and b.hop_limit[0] == 255 and not b.has_ah[0] and b.checksum_ok[0]
    assert (b.l3_offset[0], b.l4_offset[0], b.l4_length[0]) == (14, 54, 32)
    assert bytes(b.src[0]) == IPv6Address(LL1).packed and bytes(b.dst[0]) == IPv6Address(SOL).packed
    assert bytes(b.target[0]) == IPv6Address(G2).packed and not b.ncoa[0].any()
    assert bytes(b.eth_src[0]) == MN_MAC and bytes(b.eth_dst[0]) == AR_MAC
    assert b.has_lladdr[0] and bytes(b.lladdr[0]) == MN_MAC and b.identifier[0] == -1
    assert b.drop_counts.sum() == 0 and b.drop_counts.dtype == np.uint64 and len(b.drop_counts) == len(DropReason)


@pytest.mark.parametrize("frame, icmp_type, target, lladdr", [
    (NA, 136, G2, AR_MAC),
    (RS, 133, None, MN_MAC),
    (RA, 134, None, AR_MAC),
    (REDIRECT, 137, LL2, AR_MAC),
    (RS_FMIP, 133, None, None),
    (RA_FMIP, 134, None, AR_MAC),
])
def test_nd_messages_are_control(impl, frame, icmp_type, target, lladdr):
    b = one(impl, frame)
    assert (b.verdict[0], b.drop_reason[0]) == (V.CONTROL, R.NONE)
    assert b.icmp_type[0] == icmp_type and b.checksum_ok[0]
    assert bytes(b.target[0]) == (bytes(16) if target is None else IPv6Address(target).packed)
    assert bool(b.has_lladdr[0]) == (lladdr is not None)
    assert bytes(b.lladdr[0]) == (bytes(6) if lladdr is None else lladdr)


@pytest.mark.parametrize("frame, code, ncoa, lladdr, identifier, has_ah", [
    (HRD, FmipCode.HANDOVER_REDIRECT, "2001:db8:2::99", MN_MAC, 77, False),
    (HRA, FmipCode.HANDOVER_REDIRECT_ACK, None, None, 77, False),
    (HI, FmipCode.HANDOVER, "2001:db8:2::99", MN_MAC, 78, True),
    (HE, FmipCode.HANDOVER_ERROR, "2001:db8:2::99", None, 78, True),
    (ATTACH, FmipCode.ATTACH, None, MN_MAC, 5, False),
    (AMN, FmipCode.AUTHENTICATED_MN, None, None, -1, False),
    (FD, FmipCode.FORWARDING_DISABLE, None, None, 9, False),
])
def test_fmip_messages_are_control(impl, frame, code, ncoa, lladdr, identifier, has_ah):
    b = one(impl, frame)
    assert (b.verdict[0], b.drop_reason[0]) == (V.CONTROL, R.NONE)
    assert b.icmp_type[0] == 200 and b.icmp_code[0] == code and b.fmip_code[0] == code
    assert bytes(b.ncoa[0]) == (bytes(16) if ncoa is None else IPv6Address(ncoa).packed)
    assert bytes(b.lladdr[0]) == (bytes(6) if lladdr is None else lladdr) and b.has_lladdr[0] == (lladdr is not None)
    assert b.identifier[0] == identifier and b.has_ah[0] == has_ah and b.next_header[0] == 58
    assert b.l4_offset[0] == 54 + (24 if has_ah else 0)


def test_codepoint_profile_maps_wire_codes(impl):
    profile = Codepoints(type=201, attach=9, handover_redirect=5)
    frame = fmip_frame(Attach(options=(Identifier(1),)), codepoints=profile)
    b = one(impl, frame, codepoints=profile)
    assert (b.verdict[0], b.icmp_type[0], b.icmp_code[0], b.fmip_code[0]) == (V.CONTROL, 201, 9, FmipCode.ATTACH)
    # Under the default profile type 201 is just another ICMPv6 message, forwarded.
    assert outcome(impl, frame) == (V.FORWARD, R.NONE)
    # And code 5 (the default Attach) means HRD in this profile: too short for one.
    wire5 = fmip_frame(Attach(), codepoints=Codepoints(type=201))
    assert outcome(impl, wire5, codepoints=profile) == (V.DROP, R.FMIP_BAD_LENGTH)


def test_data_frames(impl):
    b = run(impl, [UDP6, TCP6, ECHO, TUNNEL])
    assert list(b.verdict) == [V.FORWARD, V.FORWARD, V.FORWARD, V.DECAP]
    assert list(b.next_header) == [17, 6, 58, 41] and list(b.hop_limit) == [64] * 4
    assert b.checksum_ok.all() and list(b.icmp_type) == [0, 0, 128, 0]
    assert list(b.l4_length) == [15, 21, 12, 40 + 8 + 2]


def test_link_scope_multicast_is_never_forwarded(impl):
    for dst in ("ff02::1", "ff01::5", "ff12::7"):
        frame = scapy_frame(IPv6(src=G1, dst=dst) / UDP() / b"x")
        assert outcome(impl, frame) == (V.CONTROL, R.NONE), dst
    assert outcome(impl, scapy_frame(IPv6(src=G1, dst="ff05::2") / UDP())) == (V.FORWARD, R.NONE)


def test_end_to_end_icmp_checksum_is_reported_not_dropped(impl):
    bad = bytearray(ECHO)
    bad[-1] ^= 0x01
    b = run(impl, [bytes(bad), ECHO])
    assert list(b.verdict) == [V.FORWARD, V.FORWARD] and list(b.checksum_ok) == [False, True]
    assert b.drop_counts.sum() == 0


def test_vlan_tags_and_padding(impl):
    one_tag = bytes(Ether(dst=AR_MAC.hex(":"), src=MN_MAC.hex(":")) / Dot1Q(vlan=5)
                    / IPv6(src=G1, dst=G2) / UDP() / b"x")
    two_tags = bytes(Ether(dst=AR_MAC.hex(":"), src=MN_MAC.hex(":"), type=0x88A8) / Dot1Q(vlan=5) / Dot1Q(vlan=6)
                     / IPv6(src=LL1, dst=SOL, hlim=255) / ICMPv6ND_NS(tgt=G2))
    padded = NS + bytes(20)
    b = run(impl, [one_tag, two_tags, padded])
    assert list(b.verdict) == [V.FORWARD, V.CONTROL, V.CONTROL]
    assert list(b.l3_offset) == [18, 22, 14] and b.l4_length[2] == 32


def test_extension_header_chain_and_ah(impl):
    pkt = (IPv6(src=G1, dst=G2, hlim=9) / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt() / IPv6ExtHdrRouting()
           / AH(nh=17, payloadlen=5, spi=7, seq=1, icv=b"\x00" * 16) / UDP(sport=1, dport=2) / b"data")
    b = one(impl, scapy_frame(pkt))
    assert (b.verdict[0], b.next_header[0], b.has_ah[0], b.hop_limit[0]) == (V.FORWARD, 17, True, 9)
    assert b.l4_offset[0] == 54 + 8 + 8 + 8 + 28 and b.l4_length[0] == 12


def test_sixteen_extension_headers_are_walked(impl):
    b = one(impl, _long_chain(16))
    assert (b.verdict[0], b.next_header[0]) == (V.FORWARD, 17)


def test_fragments(impl):
    later = scapy_frame(IPv6(src=G1, dst=G2) / IPv6ExtHdrFragment(offset=100, m=0, nh=17) / (b"x" * 16))
    first_udp = scapy_frame(IPv6(src=G1, dst=G2) / IPv6ExtHdrFragment(offset=0, m=1, nh=17) / (b"x" * 16))
    first_ns = scapy_frame(IPv6(src=LL1, dst=SOL, hlim=255) / IPv6ExtHdrFragment(offset=0, m=1)
                           / ICMPv6ND_NS(tgt=G2))
    atomic_ns = scapy_frame(IPv6(src=LL1, dst=SOL, hlim=255) / IPv6ExtHdrFragment(offset=0, m=0)
                            / ICMPv6ND_NS(tgt=G2))
    atomic_udp = scapy_frame(IPv6(src=G1, dst=G2) / IPv6ExtHdrFragment(offset=0, m=0) / UDP() / b"x")
    later_icmp = scapy_frame(IPv6(src=G1, dst=G2) / IPv6ExtHdrFragment(offset=5, m=1, nh=58) / (b"\x87" * 16))
    b = run(impl, [later, first_udp, first_ns, atomic_ns, atomic_udp, later_icmp])
    assert list(b.verdict) == [V.FORWARD, V.FORWARD, V.DROP, V.DROP, V.FORWARD, V.FORWARD]
    assert list(b.drop_reason) == [0, 0, R.ND_INVALID, R.ND_INVALID, 0, 0]
    assert list(b.next_header) == [17, 17, 58, 58, 17, 58]
    assert list(b.icmp_type) == [0, 0, 0, 135, 0, 0]  # the upper layer of a fragment is not parsed
    assert list(b.l4_offset) == [62] * 6 and b.l4_length[0] == 16


def test_ipv6_header_fields_of_a_dropped_frame(impl):
    frame = fmip_frame(HandoverRedirectAck(), hop_limit=64)
    b = one(impl, frame)
    assert (b.verdict[0], b.drop_reason[0]) == (V.DROP, R.ICMP6_BAD_HOP_LIMIT)
    assert b.hop_limit[0] == 64 and b.fmip_code[0] == FmipCode.HANDOVER_REDIRECT_ACK and b.l4_offset[0] == 54


# ---------------------------------------------------------------------------------------------------
# Every drop reason classify produces, with drop_counts and the cumulative counters


def _ip(src=G1, dst=G2, nh=17, payload=b"", plen=None, version=6, hlim=64) -> bytes:
    first = version << 28
    plen = len(payload) if plen is None else plen
    return (struct.pack("!IHBB", first, plen, nh, hlim) + IPv6Address(src).packed + IPv6Address(dst).packed
            + payload)


def _flip(frame: bytes, index: int) -> bytes:
    buf = bytearray(frame)
    buf[index] ^= 0x01
    return bytes(buf)


def _set(frame: bytes, index: int, value: int) -> bytes:
    buf = bytearray(frame)
    buf[index] = value
    return bytes(buf)


def _hra_with_length(length: int) -> bytes:
    buf = bytearray(fmip_frame(HandoverRedirectAck(options=(Identifier(1),))))
    struct.pack_into("!H", buf, 54 + 8, length)
    return resum(bytes(buf), 54)


def _with_option(base: bytes, option: bytes) -> bytes:
    """``base`` (an ICMPv6 frame without AH or padding) with ``option`` appended, lengths and checksum fixed."""
    buf = bytearray(base + option)
    struct.pack_into("!H", buf, 18, len(buf) - 54)
    return resum(bytes(buf), 54)


def _long_chain(count: int) -> bytes:
    pkt = IPv6(src=G1, dst=G2)
    for _ in range(count):
        pkt = pkt / IPv6ExtHdrDestOpt()
    return scapy_frame(pkt / UDP())


_NS_BARE = scapy_frame(IPv6(src=LL1, dst=SOL, hlim=255) / ICMPv6ND_NS(tgt=G2))
_HRD_BARE = fmip_frame(HandoverRedirect(64, G2))

DROPS: dict[DropReason, bytes] = {
    R.ETH_TRUNCATED: bytes(13),
    R.NOT_IPV6: bytes(12) + b"\x08\x06" + bytes(28),
    R.TOO_MANY_VLANS: bytes(12) + b"\x81\x00\x00\x01" * 3 + b"\x86\xdd" + _ip(),
    R.IP6_TRUNCATED: eth(_ip()[:39]),
    R.IP6_BAD_VERSION: eth(_ip(version=4)),
    R.IP6_BAD_PAYLOAD_LENGTH: eth(_ip(plen=1)),
    R.IP6_BAD_SOURCE: eth(_ip(src="ff02::1")),
    R.IP6_BAD_DESTINATION: eth(_ip(dst="::")),
    R.EXT_TRUNCATED: eth(_ip(nh=60, payload=b"\x3a\x05" + bytes(6))),
    R.EXT_CHAIN_TOO_LONG: _long_chain(17),
    R.HBH_NOT_FIRST: scapy_frame(IPv6(src=G1, dst=G2) / IPv6ExtHdrDestOpt() / IPv6ExtHdrHopByHop() / UDP()),
    R.ICMP6_TRUNCATED: eth(_ip(nh=58, payload=b"\x80\x00\x00")),
    R.ICMP6_BAD_CHECKSUM: _flip(NS, 60),
    R.ICMP6_BAD_HOP_LIMIT: scapy_frame(IPv6(src=LL1, dst=SOL, hlim=64) / ICMPv6ND_NS(tgt=G2)),
    R.ICMP6_BAD_CODE: scapy_frame(IPv6(src=LL1, dst=SOL, hlim=255) / ICMPv6ND_NS(code=1, tgt=G2)),
    R.ND_BAD_OPTION: _with_option(_NS_BARE, b"\x01\x00" + bytes(6)),
    R.ND_INVALID: scapy_frame(IPv6(src=LL1, dst=SOL, hlim=255) / ICMPv6ND_NS(tgt="ff02::1")),
    R.FMIP_BAD_SUBOPTION: _with_option(_HRD_BARE, b"\x06\x01"),
    R.FMIP_BAD_LENGTH: _hra_with_length(99),
    R.FMIP_NO_AH: fmip_frame(IcmpHandover(64, "2001:db8:2::99"), src="2001:db8:1::1", dst="2001:db8:2::1"),
}
# Reasons of later stages (lookup, buffers, rewrite): classify never produces them.
LATER_STAGES = {R.NONE, R.HOP_LIMIT_EXCEEDED, R.NEIGHBOR_TABLE_FULL, R.BUFFER_FULL, R.BUFFER_EXPIRED,
                R.FRAME_TOO_BIG, R.NO_ROUTE, R.TX_RING_FULL, R.RESOLVE_FAILED, R.DECAP_NOT_FROM_PEER,
                R.KERNEL_RING_DROP, R.RING_WALK_ERROR, R.CONTROL_REJECTED, R.OTHER_HOST, R.NOT_BUFFERED,
                R.CONTROL_ERROR, R.INTERNAL_ERROR, R.DECAP_TOO_DEEP, R.ADDRESS_NOT_FORWARDED,
                R.LINK_MULTICAST_NOT_FORWARDED, R.VLAN_TAGGED, R.FRAGMENT_NOT_REASSEMBLED}


def test_every_reason_is_covered():
    assert set(DROPS) | LATER_STAGES == set(DropReason)


@pytest.mark.parametrize("reason", list(DROPS), ids=[r.name for r in DROPS])
def test_drop_reason_moves_its_counters(impl, reason):
    counters = np.full(len(DropReason), 5, dtype=np.uint64)
    b = run(impl, [UDP6, DROPS[reason], DROPS[reason]], counters=counters)
    assert list(b.verdict) == [V.FORWARD, V.DROP, V.DROP]
    assert list(b.drop_reason) == [R.NONE, reason, reason]
    expected = np.zeros(len(DropReason), dtype=np.uint64)
    expected[reason] = 2
    assert np.array_equal(b.drop_counts, expected)
    assert np.array_equal(counters, expected + 5)
    b2 = run(impl, [DROPS[reason]], counters=counters)  # cumulative across batches; per-batch resets
    assert b2.drop_counts[reason] == 1 and counters[reason] == 8


MORE_DROPS = [
    ("vlan cut", bytes(12) + b"\x81\x00\x00", R.ETH_TRUNCATED),
    ("src loopback", eth(_ip(src="::1")), R.IP6_BAD_SOURCE),
    ("dst loopback", eth(_ip(dst="::1")), R.IP6_BAD_DESTINATION),
    ("ns truncated", eth(_ip(src=LL1, dst=SOL, nh=58, hlim=255, payload=bytes(NS[54:74]))), R.ICMP6_TRUNCATED),
    ("nd option past end", _with_option(_NS_BARE, b"\x01\x02" + bytes(6)), R.ND_BAD_OPTION),
    ("nd option 1 octet", _with_option(_NS_BARE, b"\x01"), R.ND_BAD_OPTION),
    ("dad ns with slla", scapy_frame(IPv6(src="::", dst=SOL, hlim=255) / ICMPv6ND_NS(tgt=G2)
                                     / ICMPv6NDOptSrcLLAddr(lladdr=MN_L)), R.ND_INVALID),
    ("dad ns not solicited-node", scapy_frame(IPv6(src="::", dst="ff02::1", hlim=255) / ICMPv6ND_NS(tgt=G2)),
     R.ND_INVALID),
    ("na solicited to multicast", scapy_frame(IPv6(src=LL2, dst="ff02::1", hlim=255) / ICMPv6ND_NA(tgt=G2, S=1)),
     R.ND_INVALID),
    ("na target multicast", scapy_frame(IPv6(src=LL2, dst=LL1, hlim=255) / ICMPv6ND_NA(tgt="ff02::9")), R.ND_INVALID),
    ("rs from :: with slla", scapy_frame(IPv6(src="::", dst="ff02::2", hlim=255) / ICMPv6ND_RS()
                                         / ICMPv6NDOptSrcLLAddr(lladdr=MN_L)), R.ND_INVALID),
    ("ra from global", scapy_frame(IPv6(src=G1, dst="ff02::1", hlim=255) / ICMPv6ND_RA()), R.ND_INVALID),
    ("redirect from global", scapy_frame(IPv6(src=G1, dst=G2, hlim=255) / ICMPv6ND_Redirect(tgt=LL2, dst=G2)),
     R.ND_INVALID),
    ("fmip unknown code", fmip_frame(Attach(), codepoints=Codepoints(attach=42)), R.ICMP6_BAD_CODE),
    ("hrd too short for M", resum(_set(fmip_frame(HandoverRedirect(64, G2)), 54 + 5, 0x80), 54), R.FMIP_BAD_LENGTH),
    ("hrd bare truncated", eth(_ip(src=LL1, dst=LL2, nh=58, hlim=255,
                                   payload=bytes(HRD[54:54 + 20]))), R.FMIP_BAD_LENGTH),
    ("hra length short", _hra_with_length(10), R.FMIP_BAD_LENGTH),
    ("hrd hop limit", fmip_frame(HandoverRedirect(64, G2), hop_limit=64), R.ICMP6_BAD_HOP_LIMIT),
    ("hrd bad checksum", _flip(HRD, 70), R.ICMP6_BAD_CHECKSUM),
    ("sub-option past end", _with_option(_HRD_BARE, b"\x06\x09\x00"), R.FMIP_BAD_SUBOPTION),
    ("sub-option 1 octet", _with_option(_HRD_BARE, b"\x06"), R.FMIP_BAD_SUBOPTION),
    ("he without ah", fmip_frame(HandoverError(G2), src=G1, dst=G2), R.FMIP_NO_AH),
    ("inner truncated", eth(_ip(nh=41, payload=bytes(39))), R.IP6_TRUNCATED),
    ("inner version", eth(_ip(nh=41, payload=_ip(version=4))), R.IP6_BAD_VERSION),
    ("ah past payload", eth(_ip(nh=51, payload=b"\x11\x07" + bytes(10))), R.EXT_TRUNCATED),
]


@pytest.mark.parametrize("frame, reason", [pytest.param(f, r, id=n) for n, f, r in MORE_DROPS])
def test_more_drops(impl, frame, reason):
    assert outcome(impl, frame) == (V.DROP, reason)


def test_bad_checksum_clears_checksum_ok(impl):
    b = run(impl, [_flip(NS, 60), NS])
    assert list(b.checksum_ok) == [False, True]


def test_hop_limit_is_not_required_of_hi_and_he(impl):
    assert outcome(impl, HI)[0] == V.CONTROL and HI[21] == 64
    assert outcome(impl, HE)[0] == V.CONTROL


def test_dad_ns_to_solicited_node_is_control(impl):
    frame = scapy_frame(IPv6(src="::", dst=SOL, hlim=255) / ICMPv6ND_NS(tgt=G2))
    assert outcome(impl, frame) == (V.CONTROL, R.NONE)


def test_non_ff_fe_eui64_gives_no_lladdr(impl):
    frame = fmip_frame(Attach(options=(LinkLayerAddress(bytes(range(8))),)))
    b = one(impl, frame)
    assert b.verdict[0] == V.CONTROL and not b.has_lladdr[0] and not b.lladdr[0].any()


# ---------------------------------------------------------------------------------------------------
# Batch shapes, reuse and argument errors


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 5, 255, 256, 257])
def test_batch_sizes(impl, n):
    batch_frames = [GOLDEN[i % len(GOLDEN)] for i in range(n)]
    b = run(impl, batch_frames)
    assert b.n == n == len(b) and b.verdict.shape == (n,) and b.src.shape == (n, 16) and b.lladdr.shape == (n, 6)
    singles = [outcome(impl, f) for f in GOLDEN]
    assert [(int(v), int(r)) for v, r in zip(b.verdict, b.drop_reason)] == [singles[i % len(GOLDEN)]
                                                                            for i in range(n)]
    for name, dtype, row in FIELDS:
        assert getattr(b, name).dtype == dtype and getattr(b, name).shape == (n, *row), name


def test_out_reuse_leaves_no_stale_rows(impl):
    out = impl.Batch(300)
    big = [GOLDEN[i % len(GOLDEN)] for i in range(257)]
    assert run(impl, big, out=out) is out and out.n == 257
    small = [UDP6, DROPS[R.ETH_TRUNCATED], ECHO]
    b = run(impl, small, out=out)
    assert b is out and b.n == 3
    assert_same(b, run(impl, small))
    assert b.drop_counts.sum() == 1


CLASS_COLUMNS = ("target", "ncoa", "lladdr", "has_lladdr", "identifier", "fmip_code")


@pytest.mark.parametrize("read_between", [False, True], ids=["unread", "read"])
@pytest.mark.parametrize("profile", [Codepoints(), Codepoints(type=201)], ids=["same-profile", "other-profile"])
def test_class_columns_of_a_reused_batch_show_no_stale_rows(impl, read_between, profile):
    # The compiled Batch fills the class columns (docs/api/batch.md) of the frames that do not carry them
    # when they are first read: rows that held an NS, an HRD or an Attach in the first classify hold data
    # frames, drops, ND or fmipfast frames of another kind (or, under another profile, an ICMPv6 type that is
    # no longer fmipfast) in the second, and every column reads as a fresh reference Batch's.
    first = [HRD, NS, HI, ATTACH, NA, REDIRECT, HE, FD, HRA, RA] * 4
    second = [UDP6, ECHO, TUNNEL, DROPS[R.IP6_BAD_SOURCE], TCP6, RS, AMN, NS, HRD, _flip(NA, 60)] * 4
    out = impl.Batch(64)
    run(impl, first, out=out)
    if read_between:
        for name in CLASS_COLUMNS:
            getattr(out, name)
    b = run(impl, second, out=out, codepoints=profile)
    expected = reference.classify(*_arena(second), codepoints=profile)
    for name in CLASS_COLUMNS:
        assert np.array_equal(getattr(b, name), getattr(expected, name)), name
    assert_same(b, expected)
    assert not b.target[0].any() and b.identifier[0] == -1 and not b.has_lladdr[3] and b.fmip_code[5] == 0


def test_capacity_exceeded(impl):
    with pytest.raises(ValueError, match="capacity"):
        run(impl, [UDP6] * 3, out=impl.Batch(2))
    with pytest.raises(ValueError):
        impl.Batch(-1)
    assert impl.Batch(0).n == 0 and run(impl, [], out=impl.Batch(0)).n == 0


def test_bad_offsets(impl):
    arena, offsets, lengths = _arena([UDP6, UDP6])
    bad = offsets.copy()
    bad[1] = -1
    with pytest.raises(ValueError, match="frame 1"):
        impl.classify(arena, bad, lengths)
    long_ = lengths.copy()
    long_[1] += 1
    with pytest.raises(ValueError, match="frame 1"):
        impl.classify(arena, offsets, long_)
    with pytest.raises(ValueError, match="frame 0"):
        impl.classify(arena[:0], offsets[:1], lengths[:1])


def test_bad_batch_shapes(impl):
    arena, offsets, lengths = _arena([UDP6, UDP6])
    for args in [
        (arena, offsets, lengths[:1]),
        (arena.reshape(1, -1), offsets, lengths),
        (arena[::2], offsets, lengths),
    ]:
        with pytest.raises(ValueError):
            impl.classify(*args)
    # a wrong element type is a TypeError naming the argument, in the words of every kernel
    for args, message in [
        ((arena, offsets.astype(np.int32), lengths), "offsets: need dtype int64, got int32"),
        ((arena, offsets.astype(np.uint64), lengths), "offsets: need dtype int64, got uint64"),
        ((arena, offsets, lengths.astype(np.int64)), "lengths: need dtype uint32, got int64"),
        ((arena.astype(np.int16), offsets, lengths), "arena: need dtype uint8, got int16"),
    ]:
        with pytest.raises(TypeError, match=f"^{message}$"):
            impl.classify(*args)
    with pytest.raises(ValueError):
        impl.classify(arena, offsets, lengths, counters=np.zeros(3, np.uint64))
    with pytest.raises(TypeError, match="^counters: need dtype uint64, got int64$"):
        impl.classify(arena, offsets, lengths, counters=np.zeros(len(DropReason), np.int64))
    with pytest.raises(TypeError):
        impl.classify([1, 2], offsets, lengths)
    with pytest.raises(TypeError):
        impl.classify(arena, offsets, lengths, codepoints=200)


def test_arena_is_not_modified_and_may_be_read_only(impl):
    arena, offsets, lengths = _arena(GOLDEN)
    before = arena.copy()
    arena.setflags(write=False)
    impl.classify(arena, offsets, lengths)
    assert np.array_equal(arena, before)


# ---------------------------------------------------------------------------------------------------
# Agreement with the per-frame walker on well-formed frames


@pytest.mark.parametrize("index", range(len(GOLDEN)))
def test_agrees_with_parse_frame_and_decode(impl, index):
    frame = GOLDEN[index]
    b = one(impl, frame)
    parsed = frames.parse_frame(frame)
    assert bytes(b.src[0]) == parsed.src.packed and bytes(b.dst[0]) == parsed.dst.packed
    assert b.hop_limit[0] == parsed.hop_limit and b.next_header[0] == parsed.upper_layer
    assert b.l4_offset[0] == parsed.payload_offset and b.l4_length[0] == parsed.payload_length
    assert bool(b.has_ah[0]) == parsed.has_ah
    if b.icmp_type[0] != 200:
        return
    msg = messages.decode(parsed.payload, parsed.src, parsed.dst)
    assert isinstance(msg, messages.FmipMessage)
    assert b.fmip_code[0] == FmipCode[msg.KEY.upper()]
    assert b.identifier[0] == (-1 if msg.identifier is None else msg.identifier)
    ncoa = getattr(msg, "ncoa", None)
    assert bytes(b.ncoa[0]) == (bytes(16) if ncoa is None else ncoa.packed)


_EUIS = st.one_of(st.just(MN_EUI), st.binary(min_size=8, max_size=8))
_NCOAS = st.sampled_from(["2001:db8:2::99", "2001:db8:2::1", "2001:db8:7::abcd"])


@st.composite
def _suboptions(draw) -> tuple:
    plain = st.one_of(st.builds(Identifier, st.integers(0, 0xFFFF)), st.builds(Status, st.sampled_from([1, 128, 131])),
                      st.builds(LinkLayerAddress, _EUIS))
    options = draw(st.lists(plain, max_size=4))
    lkb = draw(st.one_of(st.none(), st.binary(min_size=1, max_size=300)))
    if lkb is not None:
        options.insert(draw(st.integers(0, len(options))), LkbMessage(lkb))
    return tuple(options)


@st.composite
def _fmip_messages(draw):
    """A random well-formed fmipfast message and whether it travels under AH (HI, HE)."""
    kind = draw(st.sampled_from(["hrd", "hra", "amn", "attach", "fd", "hi", "he"]))
    options = draw(_suboptions())
    if kind == "hrd":
        return HandoverRedirect(draw(st.integers(0, 128)), draw(_NCOAS), nar_mac=draw(st.none() | _EUIS),
                                ncoa=draw(st.none() | _NCOAS), options=options), False
    if kind == "hi":
        return IcmpHandover(draw(st.integers(0, 128)), draw(_NCOAS), mn_mac=draw(st.none() | _EUIS),
                            options=options), True
    if kind == "he":
        return HandoverError(draw(_NCOAS), options=options), True
    cls = {"hra": HandoverRedirectAck, "amn": AuthenticatedMN, "attach": Attach, "fd": ForwardingDisable}[kind]
    return cls(options=options), False


def _ff_fe(eui: bytes | None) -> bytes | None:
    return eui[:3] + eui[5:] if eui is not None and eui[3:5] == b"\xff\xfe" else None


@SETTINGS
@given(_fmip_messages())
def test_random_fmip_messages_agree_with_decode(impl, drawn):
    message, under_ah = drawn
    frame = fmip_frame(message, src="2001:db8:1::1", dst="2001:db8:2::1", ah=under_ah) if under_ah else \
        fmip_frame(message)
    b = one(impl, frame)
    assert (b.verdict[0], b.drop_reason[0]) == (V.CONTROL, R.NONE)
    parsed = frames.parse_frame(frame)
    decoded = messages.decode(parsed.payload, parsed.src, parsed.dst)
    assert decoded == message
    assert b.fmip_code[0] == FmipCode[message.KEY.upper()] and b.has_ah[0] == under_ah
    assert b.identifier[0] == (-1 if message.identifier is None else message.identifier)
    ncoa = getattr(message, "ncoa", None)
    assert bytes(b.ncoa[0]) == (bytes(16) if ncoa is None else ncoa.packed)
    field_mac = getattr(message, "nar_mac", None) or getattr(message, "mn_mac", None)
    first_lla = next((o.eui64 for o in message.options if isinstance(o, LinkLayerAddress)), None)
    lladdr = _ff_fe(field_mac) or _ff_fe(first_lla)
    assert bool(b.has_lladdr[0]) == (lladdr is not None)
    assert bytes(b.lladdr[0]) == (lladdr or bytes(6))
    assert (b.l4_offset[0], b.l4_length[0]) == (parsed.payload_offset, parsed.payload_length)


# ---------------------------------------------------------------------------------------------------
# The compiled core agrees with the reference on every array


def _mutations(frame: bytes, data) -> bytes:
    kind = data.draw(st.sampled_from(["same", "truncate", "flip", "pad", "plen"]))
    if kind == "truncate":
        return frame[:data.draw(st.integers(0, len(frame)))]
    if kind == "flip":
        buf = bytearray(frame)
        for _ in range(data.draw(st.integers(1, 3))):
            i = data.draw(st.integers(0, len(buf) - 1))
            buf[i] ^= 1 << data.draw(st.integers(0, 7))
        return bytes(buf)
    if kind == "pad":
        return frame + data.draw(st.binary(max_size=30))
    if kind == "plen" and len(frame) >= 20:
        buf = bytearray(frame)
        struct.pack_into("!H", buf, 18, data.draw(st.integers(0, 0xFFFF)))
        return bytes(buf)
    return frame


_EXT = st.sampled_from([0, 43, 44, 51, 60])


@st.composite
def _ext_chain(draw) -> bytes:
    """An IPv6 frame with a random extension-header chain (possibly malformed) and a random upper layer."""
    kinds = draw(st.lists(_EXT, max_size=20))
    upper = draw(st.sampled_from([17, 58, 41, 59, 50, 6]))
    body = b""
    nexts = kinds[1:] + [upper]
    for kind, nxt in zip(kinds, nexts):
        if kind == 44:
            body += struct.pack("!BBHI", nxt, 0, draw(st.integers(0, 0xFFFF)), 1)
        elif kind == 51:
            hlen = draw(st.integers(0, 6))
            body += bytes((nxt, hlen)) + bytes((hlen + 2) * 4 - 2)
        else:
            hlen = draw(st.integers(0, 2))
            body += bytes((nxt, hlen)) + bytes((hlen + 1) * 8 - 2)
    body += draw(st.binary(max_size=64))
    first = kinds[0] if kinds else upper
    return eth(_ip(src=draw(st.sampled_from([G1, LL1, "::"])), dst=draw(st.sampled_from([G2, "ff02::1", SOL])),
                   nh=first, payload=body, hlim=draw(st.sampled_from([64, 255]))))


@st.composite
def _frames(draw) -> bytes:
    source = draw(st.sampled_from(["golden", "chain", "random", "icmp"]))
    if source == "golden":
        return _mutations(draw(st.sampled_from(GOLDEN + list(DROPS.values()))), _Drawer(draw))
    if source == "chain":
        return draw(_ext_chain())
    if source == "icmp":
        icmp_type = draw(st.sampled_from([133, 134, 135, 136, 137, 200, 128, 1]))
        body = bytes((icmp_type, draw(st.integers(0, 8)))) + draw(st.binary(max_size=80))
        return eth(_ip(src=LL1, dst=draw(st.sampled_from([LL2, SOL, "ff02::1"])), nh=58, payload=body,
                       hlim=draw(st.sampled_from([64, 255]))))
    return draw(st.binary(max_size=120))


class _Drawer:
    """Adapts a composite's ``draw`` to the ``data.draw`` interface of _mutations."""

    def __init__(self, draw) -> None:
        self.draw = draw


if HAVE_CORE:
    from fmipfast import _core

    def _both(batch_frames, gaps=None, **kwargs):
        arena, offsets, lengths = _arena(batch_frames, gaps)
        c = _core.classify(arena, offsets, lengths, **kwargs)
        p = reference.classify(arena, offsets, lengths, **kwargs)
        assert_same(c, p)
        return c

    def test_core_and_reference_export_the_same_api():
        assert _core.Batch.__name__ == reference.Batch.__name__ == "Batch"
        assert {"classify", "Batch"} <= set(_core.__all__) & set(reference.__all__)

    def test_agree_on_golden_frames_and_drops():
        b = _both(GOLDEN + list(DROPS.values()))
        # the per-frame kernel hook gives the same verdicts (docs/conventions.md §10)
        singles = [_core._py_classify_frame(f) for f in GOLDEN + list(DROPS.values())]
        assert singles == [(int(v), int(r)) for v, r in zip(b.verdict, b.drop_reason)]

    def test_agree_on_every_truncation():
        for frame in GOLDEN + [DROPS[R.EXT_CHAIN_TOO_LONG], HI, HE]:
            _both([frame[:k] for k in range(len(frame) + 1)])

    def test_every_truncation_alone_in_an_exact_size_arena():
        # Each prefix gets its own allocation of exactly its size, so a read past the frame is a read past
        # the arena, which the ASan build (FMIPFAST_DEBUG=1) reports.
        for frame in GOLDEN + list(DROPS.values()):
            for k in range(len(frame) + 1):
                arena = np.array(bytearray(frame[:k]), dtype=np.uint8)
                offsets, lengths = np.zeros(1, np.int64), np.array([k], np.uint32)
                assert_same(_core.classify(arena, offsets, lengths), reference.classify(arena, offsets, lengths))

    def test_agree_on_every_payload_length():
        for frame in (NS, HRD, HRA, TUNNEL):
            variants = []
            for plen in range(0, len(frame) - 54 + 3):
                buf = bytearray(frame)
                struct.pack_into("!H", buf, 18, plen)
                variants.append(bytes(buf))
            _both(variants)

    def test_agree_on_every_single_bit_flip_of_an_nd_and_fmip_frame():
        for frame in (NS, HRD):
            variants = []
            for i in range(len(frame)):
                for bit in (0, 7):
                    buf = bytearray(frame)
                    buf[i] ^= 1 << bit
                    variants.append(bytes(buf))
            _both(variants)

    @SETTINGS
    @given(st.lists(_frames(), max_size=12), st.data())
    def test_agree_on_random_batches(batch_frames, data):
        gaps = [data.draw(st.integers(0, 7)) for _ in batch_frames]
        profile = data.draw(st.sampled_from([None, Codepoints(type=201, attach=9, handover=1, handover_redirect=3)]))
        kwargs = {} if profile is None else {"codepoints": profile}
        counters_c = np.arange(len(DropReason), dtype=np.uint64)
        counters_p = counters_c.copy()
        arena, offsets, lengths = _arena(batch_frames, gaps)
        c = _core.classify(arena, offsets, lengths, counters=counters_c, **kwargs)
        p = reference.classify(arena, offsets, lengths, counters=counters_p, **kwargs)
        assert_same(c, p)
        assert np.array_equal(counters_c, counters_p)

    @SETTINGS
    @given(st.lists(_ext_chain(), min_size=1, max_size=8))
    def test_agree_on_extension_header_chains(batch_frames):
        _both(batch_frames)

    @SETTINGS
    @given(arena=st.binary(max_size=64), offsets=st.lists(st.integers(-3, 70), max_size=6),
           lengths=st.lists(st.integers(0, 70), max_size=6))
    def test_only_value_errors_for_bad_batches(arena, offsets, lengths):
        results = []
        for impl in (_core, reference):
            try:
                b = impl.classify(np.frombuffer(arena, np.uint8).copy(), np.array(offsets, np.int64),
                                  np.array(lengths, np.uint32))
            except ValueError as exc:
                results.append(("raise", str(exc)))
            else:
                results.append(("ok", [int(v) for v in b.verdict], [int(r) for r in b.drop_reason]))
        assert results[0] == results[1]

    @settings(max_examples=300, deadline=None)
    @given(st.binary(min_size=16, max_size=16), st.binary(min_size=16, max_size=16),
           st.binary(min_size=4, max_size=300), st.booleans())
    def test_short_checksum_agrees_with_the_reference(src, dst, message, fill):
        # classify verifies with its own one-pass sum (64-bit words, 4/2/1-octet tail): every length and
        # alignment, valid (filled) and random checksums, against the reference's RFC 1071 sum.
        msg = bytearray(message)
        if fill:
            reference.icmp6_checksum_fill(src, dst, msg)
        for shift in range(4):  # the message at each alignment of the buffer it sits in
            buf = bytes(shift) + bytes(msg)
            view = memoryview(buf)[shift:]
            assert _core._py_icmp6_ok_short(src, dst, view) == reference.icmp6_checksum_ok(src, dst, bytes(msg))

    def test_short_checksum_edges():
        src, dst = bytes(15) + b"\x01", bytes.fromhex("ff02") + bytes(13) + b"\x01"
        for n in (4, 5, 7, 8, 9, 15, 16, 17, 23, 24, 25, 31, 32, 33, 1500, 65535):
            for byte in (0x00, 0xFF):
                msg = bytearray([byte]) * n
                msg[2:4] = b"\0\0"
                reference.icmp6_checksum_fill(src, dst, msg)
                assert _core._py_icmp6_ok_short(src, dst, bytes(msg)), (n, byte)
                msg[-1] ^= 1
                assert not _core._py_icmp6_ok_short(src, dst, bytes(msg)), (n, byte)

    @SETTINGS
    @given(st.lists(_frames(), max_size=12), st.integers(0, 255))
    def test_every_field_of_every_row_is_written(batch_frames, junk):
        # The compiled kernel writes the fields all frames have directly (not after a batch-wide memset):
        # rows whose arrays were scribbled over (the views are writable) must still come out exactly as a
        # fresh reference Batch, whatever path each frame takes.
        arena, offsets, lengths = _arena(batch_frames)
        out = _core.classify(*_arena([UDP6] * 16), out=_core.Batch(16))
        for name, _dtype, _row in FIELDS:
            getattr(out, name).view(np.uint8)[...] = junk
        assert_same(_core.classify(arena, offsets, lengths, out=out), reference.classify(arena, offsets, lengths))

    @SETTINGS
    @given(st.lists(_frames(), max_size=12), st.lists(_frames(), max_size=12), st.booleans(), st.booleans())
    def test_class_columns_after_reuse_agree(first, second, read_between, other_profile):
        # Two classify calls into one Batch, the class columns read or not in between: the second's every
        # column (the lazily completed class columns included) is a fresh reference Batch's.
        profile = Codepoints(type=201) if other_profile else Codepoints()
        out = _core.classify(*_arena(first), out=_core.Batch(12))
        if read_between:
            for name in CLASS_COLUMNS:
                getattr(out, name)
        arena, offsets, lengths = _arena(second)
        assert_same(_core.classify(arena, offsets, lengths, out=out, codepoints=profile),
                    reference.classify(arena, offsets, lengths, codepoints=profile))

    @SETTINGS
    @given(st.lists(st.integers(0, len(GOLDEN) + len(DROPS) - 1), min_size=65, max_size=300), st.booleans())
    def test_agree_on_long_mixed_batches(picks, other_profile):
        # Several 64-frame rounds of the batch loop, each mixing data, echo, ND, fmipfast and dropped frames
        # in any order: the second pass takes the ICMPv6 frames of a round grouped by kind, and every row
        # must still be its own frame's.
        pool = GOLDEN + list(DROPS.values())
        profile = Codepoints(type=201, attach=9, handover=1, handover_redirect=3)
        _both([pool[k] for k in picks], **({"codepoints": profile} if other_profile else {}))

    def test_reused_batches_agree():
        out_c, out_p = _core.Batch(64), reference.Batch(64)
        for size in (60, 3, 0, 17):
            batch_frames = [GOLDEN[(i * 7) % len(GOLDEN)] for i in range(size)]
            arena, offsets, lengths = _arena(batch_frames)
            assert_same(_core.classify(arena, offsets, lengths, out=out_c),
                        reference.classify(arena, offsets, lengths, out=out_p))


def test_ipv6_in_ipv6_on_the_one_pass_path_and_its_edges(impl):
    """IPv6-in-IPv6 takes the one-pass path when its inner header is there with version 6 (DECAP, whatever
    the outer destination); anything short of that gets the full walk's drop, in a batch of plain frames as
    alone."""
    inner = bytes(IPv6(src=G1, dst=G2) / UDP() / b"in")
    cases = [
        (inner, (V.DECAP, R.NONE)),
        (inner[:40], (V.DECAP, R.NONE)),  # an inner header and nothing else
        (inner[:39], (V.DROP, R.IP6_TRUNCATED)),
        (bytes([0x50]) + inner[1:], (V.DROP, R.IP6_BAD_VERSION)),
    ]
    for payload, want in cases:
        for dst in ("2001:db8:2::1", "ff02::1"):
            frame = scapy_frame(IPv6(src="2001:db8:1::1", dst=dst, nh=41, hlim=64) / Raw(payload))
            assert outcome(impl, frame) == want, (payload[:1], len(payload), dst)
            b = run(impl, [UDP6, frame, UDP6])
            assert (int(b.verdict[1]), int(b.drop_reason[1])) == want
            assert list(b.verdict[[0, 2]]) == [V.FORWARD, V.FORWARD]
            if want[0] == V.DECAP:
                assert (b.l3_offset[1], b.l4_offset[1], b.next_header[1], b.l4_length[1]) == (14, 54, 41,
                                                                                              len(payload))
