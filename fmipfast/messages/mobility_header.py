"""Binding Update (RFC 6275 §6.1.7) and Binding Acknowledgement (RFC 6275 §6.1.8) in a Mobility Header
(RFC 6275 §6.1.1, with its checksum over the pseudo-header): what sub-option 5 of the Attach message carries
(draft-koodli-mobileip-fastv6-02 Fig. 4 message 5, docs/design.md §2) and what a raw Mobility Header socket sends
and receives.

"The module docstring" in the docstrings below is the package's (``fmipfast/messages/__init__.py``):
it states the exception contract every parser here keeps.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from fmipfast import backend
from fmipfast.constants import IP6_HDR_LEN, IpProto, MhType
from fmipfast.errors import InvalidField, Truncated, UnsupportedType
from fmipfast.messages.base import AddressLike, _addr, _octets, _set, _uint


@dataclass(frozen=True, slots=True)
class BindingUpdate:
    """RFC 6275 Binding Update: Sequence #, flags A H L K (0x8000 0x4000 0x2000 0x1000), Lifetime in
    4-second units, mobility options (raw, already padded)."""

    sequence: int
    lifetime_units: int
    flags: int = 0x8000
    mobility_options: bytes = b"\x01\x02\x00\x00"  # PadN: the 12-octet BU body padded to 16

    def __post_init__(self) -> None:
        _uint(self.sequence, 16, "binding_update.sequence")
        _uint(self.lifetime_units, 16, "binding_update.lifetime_units")
        _uint(self.flags, 16, "binding_update.flags")
        _set(self, "mobility_options", _mh_options(self.mobility_options, "binding_update.mobility_options"))

    def encode_mh(self, src: AddressLike, dst: AddressLike) -> bytes:
        """The Mobility Header (next header 135) with its RFC 6275 §6.1.1 checksum over the pseudo-header."""
        body = struct.pack("!HHH", self.sequence, self.flags, self.lifetime_units) + self.mobility_options
        return _mh_encode(MhType.BINDING_UPDATE, body, src, dst)

    def packet(self, src: AddressLike, dst: AddressLike, hop_limit: int = 64) -> bytes:
        """A whole IPv6 packet carrying this BU (what the Attach message encapsulates)."""
        return _mh_packet(self.encode_mh(src, dst), src, dst, hop_limit)

    @classmethod
    def decode_packet(cls, packet: bytes) -> "BindingUpdate":
        """Parse an IPv6 packet whose next header is a Mobility Header BU; a :class:`MalformedPacket`
        subclass (module docstring) otherwise."""
        return cls.decode_mh(_mh_of_packet(packet))

    @classmethod
    def decode_mh(cls, mh: bytes) -> "BindingUpdate":
        """Parse a Mobility Header (what a raw IPPROTO_MH socket receives); a :class:`MalformedPacket`
        subclass names the problem.  The checksum is not checked here: it needs the addresses (a raw MH
        socket's kernel checks it)."""
        body = _mh_body(mh, MhType.BINDING_UPDATE, 12, "Binding Update")
        seq, flags, lifetime = struct.unpack_from("!HHH", body, 6)
        return cls(seq, lifetime, flags, bytes(body[12:]))

    def to_json(self) -> dict[str, Any]:
        return {"sequence": self.sequence, "flags": self.flags, "lifetime_s": self.lifetime_units * 4}


def _mh_options(opts: bytes, what: str) -> bytes:
    opts = _octets(opts, what)
    if (12 + len(opts)) % 8:
        raise ValueError(f"{what}: a Mobility Header is a multiple of 8 octets (RFC 6275 §6.1.1); "
                         f"12 + {len(opts)} is not")
    return opts


def _mh_encode(mh_type: int, body: bytes, src: AddressLike, dst: AddressLike) -> bytes:
    """Payload Proto 59, Header Len, MH Type, the body, and the checksum over the RFC 6275 §6.1.1 pseudo-header."""
    mh = bytearray(struct.pack("!BBBBH", IpProto.NONE, (6 + len(body)) // 8 - 1, mh_type, 0, 0) + body)
    cksum = backend.upper_layer_checksum(_addr(src, "src").packed, _addr(dst, "dst").packed, IpProto.MH, bytes(mh), 4)
    struct.pack_into("!H", mh, 4, cksum)
    return bytes(mh)


def _mh_packet(mh: bytes, src: AddressLike, dst: AddressLike, hop_limit: int) -> bytes:
    hdr = struct.pack("!IHBB", 6 << 28, len(mh), IpProto.MH, hop_limit)
    return hdr + _addr(src, "src").packed + _addr(dst, "dst").packed + mh


def _mh_of_packet(packet: bytes) -> bytes:
    """The Mobility Header of an IPv6 packet whose next header is 135 (no extension headers before it)."""
    if not isinstance(packet, (bytes, bytearray, memoryview)):
        raise TypeError(f"expected bytes, got {type(packet).__name__}")
    if len(packet) < IP6_HDR_LEN:
        raise Truncated(f"not an IPv6 packet with a Mobility Header: {len(packet)} octets, the IPv6 header "
                        f"is {IP6_HDR_LEN}", field="ipv6", offset=0)
    if packet[0] >> 4 != 6 or packet[6] != IpProto.MH:
        raise InvalidField(f"not an IPv6 packet with a Mobility Header (version {packet[0] >> 4}, next header "
                           f"{packet[6]})", field="ipv6", offset=0)
    return bytes(packet[IP6_HDR_LEN:])


def _mh_body(mh: bytes, mh_type: int, minimum: int, name: str) -> bytes:
    """The Mobility Header ``mh`` up to its Header Len, after the RFC 6275 §6.1.1 / §9.2 checks; raises
    only :class:`MalformedPacket` subclasses (offsets from the Payload Proto octet)."""
    if not isinstance(mh, (bytes, bytearray, memoryview)):
        raise TypeError(f"expected bytes, got {type(mh).__name__}")
    if len(mh) < minimum:
        raise Truncated(f"{name}: {len(mh)} octets, a Mobility Header of this type has at least {minimum}",
                        field="mobility_header", offset=0)
    hdr_len = (mh[1] + 1) * 8
    if mh[0] != IpProto.NONE:
        raise InvalidField(f"{name}: Payload Proto {mh[0]}, must be 59 (RFC 6275 §6.1.1)", field="payload_proto",
                           offset=0)
    if mh[2] != mh_type:
        raise UnsupportedType(f"not a {name}: MH Type {mh[2]}", field="mh_type", offset=2)
    if hdr_len < minimum:
        raise InvalidField(f"{name}: Header Len says {hdr_len} octets, have {len(mh)} (minimum {minimum})",
                           field="header_len", offset=1)
    if hdr_len > len(mh):
        raise Truncated(f"{name}: Header Len says {hdr_len} octets, have {len(mh)} (minimum {minimum})",
                        field="header_len", offset=1)
    return bytes(mh[:hdr_len])


@dataclass(frozen=True, slots=True)
class BindingAck:
    """RFC 6275 §6.1.8 Binding Acknowledgement: Status (0 = accepted, >= 128 rejected), flag K (0x80),
    Sequence # of the BU it answers, Lifetime in 4-second units, mobility options (raw, already padded)."""

    status: int
    sequence: int
    lifetime_units: int = 60
    flags: int = 0
    mobility_options: bytes = b"\x01\x02\x00\x00"  # PadN: the 12-octet BAck body padded to 16

    def __post_init__(self) -> None:
        _uint(self.status, 8, "binding_ack.status")
        _uint(self.flags, 8, "binding_ack.flags")
        _uint(self.sequence, 16, "binding_ack.sequence")
        _uint(self.lifetime_units, 16, "binding_ack.lifetime_units")
        _set(self, "mobility_options", _mh_options(self.mobility_options, "binding_ack.mobility_options"))

    @property
    def accepted(self) -> bool:
        return self.status < 128

    def encode_mh(self, src: AddressLike, dst: AddressLike) -> bytes:
        """The Mobility Header (MH Type 6) with its checksum over the pseudo-header."""
        body = struct.pack("!BBHH", self.status, self.flags, self.sequence, self.lifetime_units) + self.mobility_options
        return _mh_encode(MhType.BINDING_ACK, body, src, dst)

    def packet(self, src: AddressLike, dst: AddressLike, hop_limit: int = 64) -> bytes:
        return _mh_packet(self.encode_mh(src, dst), src, dst, hop_limit)

    @classmethod
    def decode_mh(cls, mh: bytes) -> "BindingAck":
        body = _mh_body(mh, MhType.BINDING_ACK, 12, "Binding Acknowledgement")
        status, flags, seq, lifetime = struct.unpack_from("!BBHH", body, 6)
        return cls(status, seq, lifetime, flags, bytes(body[12:]))

    @classmethod
    def decode_packet(cls, packet: bytes) -> "BindingAck":
        """As :meth:`BindingUpdate.decode_packet`, for a Binding Acknowledgement."""
        return cls.decode_mh(_mh_of_packet(packet))

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "sequence": self.sequence, "flags": self.flags,
                "lifetime_s": self.lifetime_units * 4}


def binding_ack(src: AddressLike, dst: AddressLike, sequence: int, status: int = 0) -> bytes:
    """An RFC 6275 §6.1.8 Binding Acknowledgement in an IPv6 packet (:class:`BindingAck`)."""
    return BindingAck(status, sequence).packet(src, dst)


def is_binding_ack(packet: bytes) -> bool:
    """Whether the IPv6 packet ``packet`` (no extension headers) carries a Mobility Header of type Binding
    Acknowledgement (RFC 6275 §6.1.8); nothing else is checked."""
    return len(packet) >= 48 and packet[6] == IpProto.MH and packet[42] == MhType.BINDING_ACK
