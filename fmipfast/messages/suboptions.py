"""The fmipfast sub-options (docs/design.md §2; draft-koodli-mobileip-fastv6-02 §5.1, §6, §6.1, §7): type
(1), length in octets including the 2-octet header (1), value.  ``_SUBOPT_CLASSES`` is the one type -> class
dict (docs/conventions.md §5); ``iter_suboptions`` frames them (a length below the header or past the end is
:class:`~fmipfast.errors.BadOption`) and ``_decode_suboptions`` reassembles the LKB PDU from its fragments and
decodes the rest, keeping unknown types as :class:`UnknownSubOption`.

Sub-option 5 carries a Binding Update, which :meth:`EncapsulatedPacket.to_json` shows decoded: hence the import
of :mod:`fmipfast.messages.mobility_header` (which imports nothing from here).

"The module docstring" in the docstrings below is the package's (``fmipfast/messages/__init__.py``):
it states the exception contract every parser here keeps.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv6Address
from typing import Any, ClassVar, Iterator

from fmipfast.constants import (
    EUI64_LEN,
    IP6_HDR_LEN,
    LKB_FRAGMENT_MAX,
    MAC_VALUE_LEN,
    SUBOPT_HDR_LEN,
    SUBOPT_MAX_LEN,
    AddressKind,
    HandoverControlFlag,
    HandoverStatus,
    SubOptType,
    lkb_mechanism,
)
from fmipfast.errors import BadOption, Truncated
from fmipfast.messages.base import _addr, _octets, _set, _tuple, _uint, _utf8
from fmipfast.messages.mobility_header import BindingUpdate


class SubOption:
    """Base of the fmipfast sub-options.  ``TYPE`` is the sub-option type octet."""

    __slots__ = ()
    TYPE: ClassVar[int]
    NAME: ClassVar[str]

    def value(self) -> bytes:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def from_value(cls, value: bytes, offset: int) -> "SubOption":  # pragma: no cover - abstract
        raise NotImplementedError

    def to_json(self) -> dict[str, Any]:
        raise NotImplementedError  # pragma: no cover - abstract

    def encode(self) -> bytes:
        value = self.value()
        if len(value) + SUBOPT_HDR_LEN > SUBOPT_MAX_LEN:
            raise ValueError(f"{self.NAME}: value of {len(value)} octets does not fit a sub-option (max 253)")
        return bytes((self.TYPE, len(value) + SUBOPT_HDR_LEN)) + value


def _fixed_size(cls_name: str, value: bytes, size: int, offset: int) -> None:
    if len(value) != size:
        raise BadOption(f"length {len(value) + SUBOPT_HDR_LEN}, a {cls_name} sub-option is "
                        f"{size + SUBOPT_HDR_LEN} octets", field=cls_name, offset=offset)


@dataclass(frozen=True, slots=True)
class Principal(SubOption):
    """Sub-option 1, draft §5.1: Kerberos principal name and realm (S bit of the Handover Redirect).

    Value: 1-octet name length, name (UTF-8), realm (UTF-8, the rest) — docs/design.md §2.
    """

    TYPE: ClassVar[int] = SubOptType.PRINCIPAL
    NAME: ClassVar[str] = "principal"
    name: str
    realm: str

    def __post_init__(self) -> None:
        for attr in ("name", "realm"):
            text = getattr(self, attr)
            if not isinstance(text, str) or not text:
                raise ValueError(f"principal.{attr}: a non-empty string is required")
        n = len(_utf8(self.name, "principal.name"))
        if n > 255 or 1 + n + len(_utf8(self.realm, "principal.realm")) > LKB_FRAGMENT_MAX:
            raise ValueError("principal: name and realm do not fit one sub-option (253 octets)")

    def value(self) -> bytes:
        name = self.name.encode()
        return bytes((len(name),)) + name + self.realm.encode()

    @classmethod
    def from_value(cls, value: bytes, offset: int) -> "Principal":
        if len(value) < 1:
            raise BadOption("empty principal sub-option", field="principal", offset=offset)
        n = value[0]
        if n == 0 or 1 + n >= len(value):
            raise BadOption(f"name length {n} leaves no room for name and realm in {len(value)} octets",
                            field="principal.name_length", offset=offset + 2)
        try:
            name = value[1:1 + n].decode("utf-8")
            realm = value[1 + n:].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadOption(f"not UTF-8: {exc.reason}", field="principal", offset=offset + 2) from None
        return cls(name, realm)

    def to_json(self) -> dict[str, Any]:
        return {"type": self.NAME, "name": self.name, "realm": self.realm}


@dataclass(frozen=True, slots=True)
class LkbMessage(SubOption):
    """Sub-option 2, draft §6.1: a light-weight Kerberos PDU (AP-REQ / AP-REP).

    A PDU over 253 octets is split over consecutive type-2 sub-options of 253 value octets each, the last
    one shorter or equal (docs/design.md §2); a message carries at most one LKB PDU.
    """

    TYPE: ClassVar[int] = SubOptType.LKB
    NAME: ClassVar[str] = "lkb"
    pdu: bytes

    def __post_init__(self) -> None:
        _set(self, "pdu", _octets(self.pdu, "lkb.pdu"))
        if not self.pdu:
            raise ValueError("lkb.pdu: an LKB PDU cannot be empty")

    def value(self) -> bytes:  # pragma: no cover - LkbMessage encodes as fragments
        return self.pdu

    def encode(self) -> bytes:
        out = bytearray()
        for start in range(0, len(self.pdu), LKB_FRAGMENT_MAX):
            chunk = self.pdu[start:start + LKB_FRAGMENT_MAX]
            out += bytes((self.TYPE, len(chunk) + SUBOPT_HDR_LEN)) + chunk
        return bytes(out)

    @classmethod
    def from_value(cls, value: bytes, offset: int) -> "LkbMessage":
        return cls(value)

    def to_json(self) -> dict[str, Any]:
        # the first octet names the mechanism: an lwkerb message type, or a GSS-API sub-type (0x80 and up)
        return {"type": self.NAME, "length": len(self.pdu), "mechanism": lkb_mechanism(self.pdu),
                "subtype": self.pdu[0], "pdu": self.pdu.hex()}


@dataclass(frozen=True, slots=True)
class HandoverControl(SubOption):
    """Sub-option 3: flags (U = buffer for the MN at the NAR), max buffered packets, lifetime (ms)."""

    TYPE: ClassVar[int] = SubOptType.HANDOVER_CONTROL
    NAME: ClassVar[str] = "handover_control"
    buffer: bool = True
    max_packets: int = 0
    lifetime_ms: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.buffer, bool):
            raise ValueError("handover_control.buffer: must be a bool")
        _uint(self.max_packets, 16, "handover_control.max_packets")
        _uint(self.lifetime_ms, 32, "handover_control.lifetime_ms")

    def value(self) -> bytes:
        flags = HandoverControlFlag.U if self.buffer else 0
        return struct.pack("!BHI", flags, self.max_packets, self.lifetime_ms)

    @classmethod
    def from_value(cls, value: bytes, offset: int) -> "HandoverControl":
        _fixed_size(cls.NAME, value, 7, offset)
        flags, max_packets, lifetime = struct.unpack("!BHI", value)
        return cls(bool(flags & HandoverControlFlag.U), max_packets, lifetime)

    def to_json(self) -> dict[str, Any]:
        return {"type": self.NAME, "buffer": self.buffer, "max_packets": self.max_packets,
                "lifetime_ms": self.lifetime_ms}


@dataclass(frozen=True, slots=True)
class AddressOption(SubOption):
    """Sub-option 4: 1-octet kind (1 PCoA, 2 NCoA, 3 NAR address), 1 reserved, 16-octet address."""

    TYPE: ClassVar[int] = SubOptType.ADDRESS
    NAME: ClassVar[str] = "address"
    kind: int
    address: IPv6Address

    def __post_init__(self) -> None:
        kind = _uint(self.kind, 8, "address.kind")
        _set(self, "kind", AddressKind(kind) if kind in AddressKind._value2member_map_ else kind)
        _set(self, "address", _addr(self.address, "address.address"))

    def value(self) -> bytes:
        return bytes((self.kind, 0)) + self.address.packed

    @classmethod
    def from_value(cls, value: bytes, offset: int) -> "AddressOption":
        _fixed_size(cls.NAME, value, 18, offset)
        return cls(value[0], IPv6Address(value[2:18]))

    def to_json(self) -> dict[str, Any]:
        kind = self.kind.name.lower() if isinstance(self.kind, AddressKind) else self.kind
        return {"type": self.NAME, "kind": kind, "address": str(self.address)}


@dataclass(frozen=True, slots=True)
class EncapsulatedPacket(SubOption):
    """Sub-option 5: a whole IPv6 packet (the Binding Update of the Attach message, draft §2)."""

    TYPE: ClassVar[int] = SubOptType.ENCAPSULATED
    NAME: ClassVar[str] = "encapsulated_packet"
    packet: bytes

    def __post_init__(self) -> None:
        pkt = _octets(self.packet, "encapsulated_packet.packet")
        if len(pkt) < IP6_HDR_LEN or pkt[0] >> 4 != 6:
            raise ValueError("encapsulated_packet.packet: not an IPv6 packet (version 6, >= 40 octets)")
        if len(pkt) > LKB_FRAGMENT_MAX:
            raise ValueError(f"encapsulated_packet.packet: {len(pkt)} octets, at most 253 fit")
        _set(self, "packet", pkt)

    def value(self) -> bytes:
        return self.packet

    @classmethod
    def from_value(cls, value: bytes, offset: int) -> "EncapsulatedPacket":
        if len(value) < IP6_HDR_LEN or value[0] >> 4 != 6:
            raise BadOption("not an IPv6 packet (version 6, >= 40 octets)", field=cls.NAME, offset=offset)
        return cls(value)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.NAME, "length": len(self.packet),
                               "src": str(IPv6Address(self.packet[8:24])),
                               "dst": str(IPv6Address(self.packet[24:40])),
                               "next_header": self.packet[6]}
        try:
            bu = BindingUpdate.decode_packet(self.packet)
        except ValueError:
            out["packet"] = self.packet.hex()
        else:
            out["binding_update"] = bu.to_json()
        return out


@dataclass(frozen=True, slots=True)
class Identifier(SubOption):
    """Sub-option 6: 2-octet handover identifier, 2 reserved (matches replies, spots duplicates)."""

    TYPE: ClassVar[int] = SubOptType.IDENTIFIER
    NAME: ClassVar[str] = "identifier"
    identifier: int

    def __post_init__(self) -> None:
        _uint(self.identifier, 16, "identifier")

    def value(self) -> bytes:
        return struct.pack("!HH", self.identifier, 0)

    @classmethod
    def from_value(cls, value: bytes, offset: int) -> "Identifier":
        _fixed_size(cls.NAME, value, 4, offset)
        return cls(struct.unpack("!H", value[:2])[0])

    def to_json(self) -> dict[str, Any]:
        return {"type": self.NAME, "identifier": self.identifier}


@dataclass(frozen=True, slots=True)
class MessageAuthCode(SubOption):
    """Sub-option 7: 16-octet HMAC-SHA-256-128 over src, dst and the message with checksum and this value
    zeroed (docs/design.md §2).  Computed and verified in ``fmipfast.security``; see :func:`mac_value_offset`."""

    TYPE: ClassVar[int] = SubOptType.MAC
    NAME: ClassVar[str] = "mac"
    mac: bytes = bytes(MAC_VALUE_LEN)

    def __post_init__(self) -> None:
        _set(self, "mac", _octets(self.mac, "mac", MAC_VALUE_LEN))

    def value(self) -> bytes:
        return self.mac

    @classmethod
    def from_value(cls, value: bytes, offset: int) -> "MessageAuthCode":
        _fixed_size(cls.NAME, value, MAC_VALUE_LEN, offset)
        return cls(value)

    def to_json(self) -> dict[str, Any]:
        return {"type": self.NAME, "mac": self.mac.hex()}


@dataclass(frozen=True, slots=True)
class Status(SubOption):
    """Sub-option 8: 1-octet Handover Error reason (``HandoverStatus``; other values kept as ints)."""

    TYPE: ClassVar[int] = SubOptType.STATUS
    NAME: ClassVar[str] = "status"
    reason: int

    def __post_init__(self) -> None:
        reason = _uint(self.reason, 8, "status.reason")
        if reason in HandoverStatus._value2member_map_:
            _set(self, "reason", HandoverStatus(reason))
        else:
            _set(self, "reason", reason)

    def value(self) -> bytes:
        return bytes((self.reason,))

    @classmethod
    def from_value(cls, value: bytes, offset: int) -> "Status":
        _fixed_size(cls.NAME, value, 1, offset)
        return cls(value[0])

    def to_json(self) -> dict[str, Any]:
        name = self.reason.name.lower() if isinstance(self.reason, HandoverStatus) else None
        return {"type": self.NAME, "reason": int(self.reason), "reason_name": name}


@dataclass(frozen=True, slots=True)
class LinkLayerAddress(SubOption):
    """Sub-option 9: 8-octet link-layer address in EUI-64 form (docs/design.md §3)."""

    TYPE: ClassVar[int] = SubOptType.LINK_LAYER_ADDRESS
    NAME: ClassVar[str] = "link_layer_address"
    eui64: bytes

    def __post_init__(self) -> None:
        _set(self, "eui64", _octets(self.eui64, "link_layer_address", EUI64_LEN))

    def value(self) -> bytes:
        return self.eui64

    @classmethod
    def from_value(cls, value: bytes, offset: int) -> "LinkLayerAddress":
        _fixed_size(cls.NAME, value, EUI64_LEN, offset)
        return cls(value)

    def to_json(self) -> dict[str, Any]:
        return {"type": self.NAME, "eui64": _fmt_eui64(self.eui64)}


@dataclass(frozen=True, slots=True)
class UnknownSubOption(SubOption):
    """A sub-option whose type this version does not know: skipped by receivers, kept for round trips."""

    NAME: ClassVar[str] = "unknown"
    type: int
    data: bytes = b""

    def __post_init__(self) -> None:
        t = _uint(self.type, 8, "unknown.type")
        if t in _SUBOPT_CLASSES:
            raise ValueError(f"unknown.type: {t} is a known sub-option type ({_SUBOPT_CLASSES[t].__name__})")
        data = _octets(self.data, "unknown.data")
        if len(data) > LKB_FRAGMENT_MAX:
            raise ValueError(f"unknown.data: {len(data)} octets, at most 253 fit")
        _set(self, "data", data)

    @property
    def TYPE(self) -> int:  # type: ignore[override]
        return self.type

    def value(self) -> bytes:
        return self.data

    def encode(self) -> bytes:
        return bytes((self.type, len(self.data) + SUBOPT_HDR_LEN)) + self.data

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "data": self.data.hex()}


#: One type -> class dict for sub-options (docs/conventions.md §5).
_SUBOPT_CLASSES: dict[int, type[SubOption]] = {
    cls.TYPE: cls
    for cls in (Principal, LkbMessage, HandoverControl, AddressOption, EncapsulatedPacket, Identifier,
                MessageAuthCode, Status, LinkLayerAddress)
}


def _fmt_eui64(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def _encode_suboptions(options: tuple[SubOption, ...]) -> bytes:
    return b"".join(opt.encode() for opt in options)


def iter_suboptions(data: bytes, start: int) -> Iterator[tuple[int, int, bytes]]:
    """Yield ``(type, offset, value)`` for each sub-option in data[start:]; checks framing only (``Truncated``
    or ``BadOption``, both ``MalformedPacket``, for a sub-option that does not fit)."""
    pos = start
    end = len(data)
    while pos < end:
        if end - pos < SUBOPT_HDR_LEN:
            raise Truncated(f"sub-option header needs 2 octets, have {end - pos}", field="options",
                            offset=pos)
        opt_type, length = data[pos], data[pos + 1]
        if length < SUBOPT_HDR_LEN:
            raise BadOption(f"sub-option type {opt_type} has length {length}, below its 2-octet header",
                            field="options.length", offset=pos + 1)
        if pos + length > end:
            raise BadOption(f"sub-option type {opt_type} of length {length} runs past the end "
                            f"({end - pos} octets left)", field="options.length", offset=pos + 1)
        yield opt_type, pos, data[pos + SUBOPT_HDR_LEN:pos + length]
        pos += length


def _decode_suboptions(data: bytes, start: int) -> tuple[SubOption, ...]:
    options: list[SubOption] = []
    lkb_parts: list[bytes] | None = None  # open LKB PDU being reassembled
    lkb_seen = False
    for opt_type, offset, value in iter_suboptions(data, start):
        if opt_type == SubOptType.LKB:
            if not value:
                raise BadOption("empty LKB fragment", field="lkb", offset=offset)
            if lkb_parts is None:
                if lkb_seen:
                    raise BadOption("a second LKB PDU (at most one per message)", field="lkb", offset=offset)
                lkb_parts = []
                lkb_seen = True
                options.append(LkbMessage(b"\x00"))  # placeholder, replaced when the PDU closes
            elif len(lkb_parts[-1]) != LKB_FRAGMENT_MAX:
                raise BadOption(f"LKB fragment of {len(lkb_parts[-1])} octets before another one; "
                                f"every fragment but the last carries {LKB_FRAGMENT_MAX}",
                                field="lkb", offset=offset)
            lkb_parts.append(value)
            options[-1] = LkbMessage(b"".join(lkb_parts))
            continue
        lkb_parts = None
        cls = _SUBOPT_CLASSES.get(opt_type)
        if cls is None:
            options.append(UnknownSubOption(opt_type, value))
        else:
            options.append(cls.from_value(value, offset))
    return tuple(options)


def _check_options(options: Any, name: str) -> tuple[SubOption, ...]:
    opts = _tuple(options, f"{name}.options")
    for opt in opts:
        if not isinstance(opt, SubOption):
            raise ValueError(f"{name}.options: {opt!r} is not a sub-option")
    if sum(isinstance(o, LkbMessage) for o in opts) > 1:
        raise ValueError(f"{name}.options: at most one LKB message per message")
    return opts
