"""Whole frames for the control path: build Ethernet / IPv6 / ICMPv6 frames around a message, and walk a
received frame down to its ICMPv6 message.

The walk follows RFC 8200 §4: hop-by-hop (only first), destination options, routing, fragment (only the
first fragment has an upper-layer header) and AH (RFC 4302 §2.2, length in 32-bit words minus 2) are
skipped; ESP, No Next Header or any other header ends the walk.  This is the readable, per-frame path used
by ``fmipfast decode`` and by tests; the batch classifier of the engine lives in ``_core``.

May import: backend, messages, errors, constants (tests/test_imports.py holds the rules).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv6Address
from typing import Any

from fmipfast import backend
from fmipfast.constants import (
    DEFAULT_CODEPOINTS,
    ETH_HDR_LEN,
    IP6_HDR_LEN,
    ND_HOP_LIMIT,
    Codepoints,
    EtherType,
    Icmp6Type,
    IpProto,
)
from fmipfast.errors import InvalidField, Truncated
from fmipfast.messages import (
    AddressLike,
    FmipMessage,
    Message,
    NeighborAdvertisement,
    NeighborSolicitation,
    RouterAdvertisement,
    RouterSolicitation,
    encode,
)

__all__ = [
    "LINKTYPE_ETHERNET",
    "LINKTYPE_RAW",
    "LINKTYPE_IPV6",
    "MAX_EXT_HEADERS",
    "ParsedFrame",
    "parse_frame",
    "build_ipv6",
    "build_ethernet",
    "icmp6_packet",
    "icmp6_frame",
    "requires_hop_limit_255",
    "multicast_mac",
]

LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_IPV6 = 229

#: Longest extension-header chain walked before the frame is called malformed (an attacker's 1000-header
#: chain must not cost more than this).
MAX_EXT_HEADERS = 16

_EXT_HEADERS = (IpProto.HOPOPTS, IpProto.DSTOPTS, IpProto.ROUTING, IpProto.FRAGMENT, IpProto.AH)

#: fmipfast message keys that travel on a link only and must carry hop limit 255 (docs/design.md §2 table).
_HOP255_KEYS = frozenset(("handover_redirect", "handover_redirect_ack", "authenticated_mn", "attach",
                          "forwarding_disable"))


@dataclass(frozen=True, slots=True)
class ParsedFrame:
    """What :func:`parse_frame` found.  Offsets count from the start of the frame."""

    eth_dst: bytes | None
    eth_src: bytes | None
    vlan: int | None
    ethertype: int | None
    src: IPv6Address | None = None
    dst: IPv6Address | None = None
    hop_limit: int | None = None
    headers: tuple[int, ...] = ()  # the next-header values walked, in order (the last is the upper layer)
    upper_layer: int | None = None  # None: not IPv6, or the walk stopped at a non-first fragment
    payload_offset: int | None = None
    payload_length: int | None = None
    has_ah: bool = False
    frame: bytes = b""

    @property
    def payload(self) -> bytes:
        if self.payload_offset is None or self.payload_length is None:
            return b""
        return self.frame[self.payload_offset:self.payload_offset + self.payload_length]

    @property
    def is_icmp6(self) -> bool:
        return self.upper_layer == IpProto.ICMPV6

    def icmp6_checksum_ok(self) -> bool:
        """RFC 4443 §2.3 checksum of the ICMPv6 payload over this packet's pseudo-header."""
        if not self.is_icmp6 or self.src is None or self.dst is None or self.payload_length is None:
            raise ValueError("not an ICMPv6 packet")
        payload = self.payload
        if len(payload) < 4:
            return False
        return bool(backend.icmp6_checksum_ok(self.src.packed, self.dst.packed, payload))


def parse_frame(data: bytes | bytearray | memoryview, linktype: int = LINKTYPE_ETHERNET) -> ParsedFrame:
    """Walk Ethernet (with up to two VLAN tags) and IPv6 down to the upper-layer header.

    Non-IPv6 frames return with ``src`` None.  Malformed IPv6 (truncated header, payload length past the
    frame, extension header past the payload, a chain over :data:`MAX_EXT_HEADERS`) raises
    a :class:`~fmipfast.errors.MalformedPacket` subclass.  Octets after the IPv6 payload (Ethernet padding) are ignored.
    """
    frame = bytes(data)
    eth_dst = eth_src = None
    vlan = None
    ethertype: int | None = None
    if linktype == LINKTYPE_ETHERNET:
        if len(frame) < ETH_HDR_LEN:
            raise Truncated(f"Ethernet header needs 14 octets, have {len(frame)}", field="ethernet", offset=0)
        eth_dst, eth_src = frame[0:6], frame[6:12]
        pos = 12
        (ethertype,) = struct.unpack_from("!H", frame, pos)
        tags = 0
        while ethertype in (EtherType.VLAN, EtherType.QINQ):
            tags += 1
            if tags > 2:
                raise InvalidField("more than two VLAN tags", field="ethernet.vlan", offset=pos)
            if len(frame) < pos + 6:
                raise Truncated("VLAN tag needs 4 octets", field="ethernet.vlan", offset=pos + 2)
            tci, ethertype = struct.unpack_from("!HH", frame, pos + 2)
            vlan = tci & 0x0FFF if vlan is None else vlan
            pos += 4
        ip_off = pos + 2
        if ethertype != EtherType.IPV6:
            return ParsedFrame(eth_dst, eth_src, vlan, ethertype, frame=frame)
    elif linktype in (LINKTYPE_RAW, LINKTYPE_IPV6):
        ip_off = 0
        if frame and frame[0] >> 4 != 6:
            return ParsedFrame(None, None, None, None, frame=frame)
    else:
        raise ValueError(f"link type {linktype} is not supported (Ethernet 1, raw 101, IPv6 229)")
    return _parse_ipv6(frame, ip_off, eth_dst, eth_src, vlan, ethertype)


def _parse_ipv6(frame: bytes, off: int, eth_dst: bytes | None, eth_src: bytes | None, vlan: int | None,
                ethertype: int | None) -> ParsedFrame:
    if len(frame) < off + IP6_HDR_LEN:
        raise Truncated(f"IPv6 header needs 40 octets, have {len(frame) - off}", field="ipv6", offset=off)
    if frame[off] >> 4 != 6:
        raise InvalidField(f"version {frame[off] >> 4}, expected 6", field="ipv6.version", offset=off)
    payload_len, next_header, hop_limit = struct.unpack_from("!HBB", frame, off + 4)
    end = off + IP6_HDR_LEN + payload_len
    if end > len(frame):
        raise Truncated(f"payload length {payload_len} runs past the frame ({len(frame) - off - 40} octets)",
                        field="ipv6.payload_length", offset=off + 4)
    src = IPv6Address(frame[off + 8:off + 24])
    dst = IPv6Address(frame[off + 24:off + 40])
    pos = off + IP6_HDR_LEN
    headers = [next_header]
    has_ah = False
    upper: int | None = next_header
    while upper in _EXT_HEADERS:
        if len(headers) > MAX_EXT_HEADERS:
            raise InvalidField(f"more than {MAX_EXT_HEADERS} extension headers", field="ipv6.next_header",
                               offset=pos)
        if upper == IpProto.HOPOPTS and len(headers) != 1:
            raise InvalidField("hop-by-hop options not first (RFC 8200 §4.3)", field="ipv6.next_header",
                               offset=pos)
        if end - pos < 8:
            raise Truncated("extension header needs 8 octets", field="ipv6.extension_header", offset=pos)
        nxt, hlen = frame[pos], frame[pos + 1]
        if upper == IpProto.FRAGMENT:
            size = 8
            frag_offset = struct.unpack_from("!H", frame, pos + 2)[0] >> 3
            if frag_offset != 0:
                headers.append(nxt)
                return ParsedFrame(eth_dst, eth_src, vlan, ethertype, src, dst, hop_limit, tuple(headers),
                                   None, pos + size, end - pos - size, has_ah, frame)
        elif upper == IpProto.AH:
            size = (hlen + 2) * 4
            has_ah = True
        else:
            size = (hlen + 1) * 8
        if pos + size > end:
            raise Truncated(f"extension header of {size} octets runs past the payload",
                            field="ipv6.extension_header", offset=pos)
        pos += size
        upper = nxt
        headers.append(nxt)
    return ParsedFrame(eth_dst, eth_src, vlan, ethertype, src, dst, hop_limit, tuple(headers), upper, pos,
                       end - pos, has_ah, frame)


def _addr(value: AddressLike) -> IPv6Address:
    if isinstance(value, IPv6Address):
        return value
    return IPv6Address(bytes(value) if isinstance(value, (bytearray, memoryview)) else value)


def build_ipv6(src: AddressLike, dst: AddressLike, next_header: int, payload: bytes, hop_limit: int = 64,
               traffic_class: int = 0, flow_label: int = 0) -> bytes:
    """An IPv6 header (RFC 8200 §3) followed by ``payload``."""
    if len(payload) > 0xFFFF:
        raise ValueError(f"payload of {len(payload)} octets exceeds 65535 (no jumbograms)")
    first = (6 << 28) | ((traffic_class & 0xFF) << 20) | (flow_label & 0xFFFFF)
    return (struct.pack("!IHBB", first, len(payload), next_header, hop_limit) + _addr(src).packed
            + _addr(dst).packed + payload)


def build_ethernet(dst_mac: bytes, src_mac: bytes, payload: bytes, ethertype: int = EtherType.IPV6) -> bytes:
    if len(dst_mac) != 6 or len(src_mac) != 6:
        raise ValueError("Ethernet addresses are 6 octets")
    return bytes(dst_mac) + bytes(src_mac) + struct.pack("!H", ethertype) + payload


def multicast_mac(address: AddressLike) -> bytes:
    """RFC 2464 §7: 33:33 followed by the low 32 bits of an IPv6 multicast address."""
    return b"\x33\x33" + _addr(address).packed[12:]


def requires_hop_limit_255(message: Message) -> bool:
    """True for messages that only travel on one link and are checked at hop limit 255 (docs/design.md §2)."""
    if isinstance(message, (RouterSolicitation, RouterAdvertisement, NeighborSolicitation, NeighborAdvertisement)):
        return True
    return isinstance(message, FmipMessage) and message.KEY in _HOP255_KEYS


def icmp6_packet(message: Message, src: AddressLike, dst: AddressLike, hop_limit: int | None = None, *,
                 codepoints: Codepoints = DEFAULT_CODEPOINTS) -> bytes:
    """An IPv6 packet carrying ``message``; hop limit 255 where docs/design.md §2 requires it, else 64."""
    if hop_limit is None:
        hop_limit = ND_HOP_LIMIT if requires_hop_limit_255(message) else 64
    icmp = encode(message, src, dst, codepoints=codepoints)
    return build_ipv6(src, dst, IpProto.ICMPV6, icmp, hop_limit)


def icmp6_frame(message: Message, src: AddressLike, dst: AddressLike, src_mac: bytes,
                dst_mac: bytes | None = None, hop_limit: int | None = None, *,
                codepoints: Codepoints = DEFAULT_CODEPOINTS) -> bytes:
    """An Ethernet frame carrying ``message``; the destination MAC defaults to the RFC 2464 multicast
    mapping for a multicast ``dst``."""
    dst_addr = _addr(dst)
    if dst_mac is None:
        if not dst_addr.is_multicast:
            raise ValueError("dst_mac is required for a unicast destination")
        dst_mac = multicast_mac(dst_addr)
    return build_ethernet(dst_mac, src_mac, icmp6_packet(message, src, dst, hop_limit, codepoints=codepoints))


def describe_upper_layer(parsed: ParsedFrame) -> dict[str, Any]:
    """A small summary of a non-fmipfast packet for ``fmipfast decode``."""
    out: dict[str, Any] = {"next_header": parsed.upper_layer}
    payload = parsed.payload
    if parsed.upper_layer == IpProto.ICMPV6 and len(payload) >= 4:
        out["icmp_type"], out["icmp_code"] = payload[0], payload[1]
        try:
            out["icmp_name"] = Icmp6Type(payload[0]).name.lower()
        except ValueError:
            out["icmp_name"] = None
    elif parsed.upper_layer in (IpProto.UDP, IpProto.TCP) and len(payload) >= 4:
        out["sport"], out["dport"] = struct.unpack_from("!HH", payload)
    elif parsed.upper_layer == IpProto.IPV6 and len(payload) >= IP6_HDR_LEN and payload[0] >> 4 == 6:
        out["inner_src"] = str(IPv6Address(payload[8:24]))
        out["inner_dst"] = str(IPv6Address(payload[24:40]))
        out["inner_next_header"] = payload[6]
    return out


__all__ += ["describe_upper_layer"]
