"""The fmipfast messages: frozen dataclasses, ``encode()`` and ``decode()``.

Implements the seven messages of docs/design.md §2 (draft-koodli-mobileip-fastv6-02 §5, §6, §6.1, §7, Fig. 4,
App. A), their sub-options, and the Router Solicitation / Advertisement of RFC 4861 §4.1-§4.2 with the
project's ND option 253 (draft §6.1.1 adjacent realms).  ``decode(encode(m)) == m`` for every message
(the ``checksum`` field is excluded from equality: it is an output of encoding).

Every decode failure is a :class:`fmipfast.errors.MalformedPacket` subclass naming the field and the
octet offset (counted from the ICMPv6 Type octet):

* :class:`~fmipfast.errors.Truncated` — the message ends before a fixed field;
* :class:`~fmipfast.errors.BadChecksum` — the RFC 4443 §2.3 checksum fails (only when ``src`` and
  ``dst`` are given, since the pseudo-header needs them);
* :class:`~fmipfast.errors.BadOption` — sub-option/ND option length below its header, past the end, of
  the wrong size for its type, or bad LKB fragmentation;
* :class:`~fmipfast.errors.UnsupportedType` — an ICMPv6 type or Code this codepoint profile lacks;
* :class:`~fmipfast.errors.InvalidField` — a field value the draft forbids, or flags that disagree with
  what is present (M, C, S; the Length field of HRA-shaped messages).

Exception contract (hostile octets are the normal case):

* :func:`decode` (and :func:`mac_value_offset`, which decodes) raises, for *any* octets, only
  :class:`~fmipfast.errors.MalformedPacket` or one of the subclasses above — never ``IndexError``,
  ``struct.error``, ``UnicodeDecodeError``, an enum's ``ValueError`` or a constructor's ``ValueError``.
  Every field is length-checked before it is sliced and range-checked before it becomes an enum or a
  dataclass.  As a last line of defence, an unexpected exception inside a parser is re-raised as a bare
  ``MalformedPacket`` naming the message, chained (``__cause__``) to the original: that is a bug to fix
  (the fuzz tests fail on it), never a crash of the receiver.  Only the *arguments* can raise otherwise:
  ``TypeError`` when ``data`` is a ``str`` or an ``int`` (``bytes(5)`` would be five zero octets), and
  ``ValueError`` (not ``MalformedPacket``) for an unparseable ``src``/``dst`` or only one of them.
* :meth:`BindingUpdate.decode_mh`, :meth:`BindingUpdate.decode_packet`, :meth:`BindingAck.decode_mh` and
  :meth:`BindingAck.decode_packet` (what a raw Mobility Header socket hands over) raise only
  ``Truncated`` (shorter than the MH type's minimum or than its Header Len), ``InvalidField`` (not IPv6,
  not next header 135, Payload Proto not 59, Header Len below the minimum) or ``UnsupportedType`` (another
  MH Type) — all ``MalformedPacket``, hence still ``ValueError`` for older callers.
* Construction and :func:`encode` raise ``ValueError`` for any value that could never be encoded (out of
  range integers, wrong-size octets, text that is not encodable as UTF-8, a non-iterable or wrong-typed
  ``options``, a message over 65535 octets); never ``struct.error``, ``OverflowError`` or ``TypeError``
  for a value of the wrong type.  ``encode`` without ``src``/``dst`` and without a ``checksum`` is a
  ``ValueError`` too.

ND options on the wire (RFC 4861 §4.6): a length of 0 or one past the end is :class:`BadOption`, and so
is option type 0 (no ND option has it; it is what zeroed or shifted octets look like).  The Source and
Target Link-Layer Address options (types 1 and 2) are decoded for **Ethernet only** (RFC 2464 §8, RFC 4861
§4.6.1): exactly one 8-octet unit holding a 6-octet MAC; any other length is :class:`BadOption`, and
:class:`SourceLinkLayerAddress`/:class:`TargetLinkLayerAddress` only hold 6 octets — so ``.address`` of a
decoded option is always a usable MAC.  (Linux drops an NS/NA/RS/RA whose link-layer option has the wrong
length the same way, "invalid link-layer address length".)

Reserved fields are sent as zero and ignored on receipt (RFC 4861 §4 convention); see docs/spec-notes.md
for every such choice.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from ipaddress import IPv6Address
from typing import Any, ClassVar, Iterator, Union

from fmipfast import backend
from fmipfast.constants import (
    ADDR_LEN,
    DEFAULT_CODEPOINTS,
    EUI64_LEN,
    ICMP6_HDR_LEN,
    IP6_HDR_LEN,
    LKB_FRAGMENT_MAX,
    MAC48_LEN,
    MAC_VALUE_LEN,
    SUBOPT_HDR_LEN,
    SUBOPT_MAX_LEN,
    AddressKind,
    Codepoints,
    HandoverControlFlag,
    HandoverStatus,
    HiFlag,
    HrdFlag,
    Icmp6Type,
    IpProto,
    MhType,
    NdFmipSubtype,
    NdOptType,
    SubOptType,
    lkb_mechanism,
)
from fmipfast.errors import BadChecksum, BadOption, InvalidField, MalformedPacket, Truncated, UnsupportedType

__all__ = [
    "AddressLike",
    # sub-options
    "SubOption",
    "Principal",
    "LkbMessage",
    "HandoverControl",
    "AddressOption",
    "EncapsulatedPacket",
    "Identifier",
    "MessageAuthCode",
    "Status",
    "LinkLayerAddress",
    "UnknownSubOption",
    # fmipfast messages
    "Message",
    "FmipMessage",
    "HandoverRedirect",
    "HandoverRedirectAck",
    "IcmpHandover",
    "AuthenticatedMN",
    "Attach",
    "HandoverError",
    "ForwardingDisable",
    "MESSAGE_CLASSES",
    # ND
    "NdOption",
    "SourceLinkLayerAddress",
    "TargetLinkLayerAddress",
    "PrefixInformation",
    "Mtu",
    "AdjacentRealmsRequest",
    "AdjacentRealms",
    "UnknownNdOption",
    "PlainIcmp",
    "RouterSolicitation",
    "RouterAdvertisement",
    "NeighborSolicitation",
    "NeighborAdvertisement",
    "EchoRequest",
    "EchoReply",
    "IcmpError",
    "ICMP_ERROR_MAX_INVOKING",
    # Mobility header
    "BindingUpdate",
    "BindingAck",
    # functions
    "encode",
    "decode",
    "mac_value_offset",
    "mac_offset_of",
    "refill_checksum",
    "MAX_MESSAGE_LEN",
]

AddressLike = Union[IPv6Address, str, bytes, int]

#: Largest ICMPv6 message we encode or accept: the IPv6 Payload Length limit (no jumbograms).
MAX_MESSAGE_LEN = 0xFFFF


def _addr(value: AddressLike, name: str) -> IPv6Address:
    if isinstance(value, IPv6Address):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        if len(raw) != ADDR_LEN:
            raise ValueError(f"{name}: an IPv6 address is 16 octets, got {len(raw)}")
        return IPv6Address(raw)
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        try:
            return IPv6Address(value)
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
    raise ValueError(f"{name}: not an IPv6 address: {value!r}")


def _set(obj: Any, name: str, value: Any) -> None:
    object.__setattr__(obj, name, value)


def _uint(value: Any, bits: int, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < (1 << bits):
        raise ValueError(f"{name}: {value!r} is not an unsigned {bits}-bit integer")
    return int(value)


def _octets(value: Any, name: str, size: int | None = None) -> bytes:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise ValueError(f"{name}: expected bytes, got {type(value).__name__}")
    raw = bytes(value)
    if size is not None and len(raw) != size:
        raise ValueError(f"{name}: expected {size} octets, got {len(raw)}")
    return raw


def _utf8(value: Any, name: str) -> bytes:
    """``value`` (a ``str``) as UTF-8; a lone surrogate, which Python strings may hold and UTF-8 cannot,
    is a ``ValueError`` naming the field (not a bare ``UnicodeEncodeError`` from deep in ``encode``)."""
    if not isinstance(value, str):
        raise ValueError(f"{name}: expected a string, got {type(value).__name__}")
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"{name}: not encodable as UTF-8 ({exc.reason})") from None


def _tuple(values: Any, name: str) -> tuple:
    """``tuple(values)`` for a list/tuple of options; anything else (``None``, an int, a single option, a
    string) is a ``ValueError`` rather than a ``TypeError`` or a tuple of characters."""
    if isinstance(values, (str, bytes, bytearray, memoryview)) or not hasattr(values, "__iter__"):
        raise ValueError(f"{name}: expected a sequence, got {type(values).__name__}")
    return tuple(values)


def _need(data: bytes, offset: int, size: int, field_name: str) -> None:
    if len(data) < offset + size:
        raise Truncated(f"need {size} octets, have {max(0, len(data) - offset)}", field=field_name,
                        offset=offset)


# ================================================================================================
# Sub-options (docs/design.md §2): type (1), length in octets including the 2-octet header (1), value.
# ================================================================================================


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


def _iter_suboptions(data: bytes, start: int) -> Iterator[tuple[int, int, bytes]]:
    """Yield ``(type, offset, value)`` for each sub-option in data[start:]; checks framing only."""
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
    for opt_type, offset, value in _iter_suboptions(data, start):
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


# ================================================================================================
# fmipfast messages (ICMPv6 type from the codepoint profile, Code tells them apart)
# ================================================================================================


class Message:
    """Base of everything :func:`decode` returns."""

    __slots__ = ()
    NAME: ClassVar[str]

    def to_json(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError


class FmipMessage(Message):
    """Base of the seven fmipfast messages.  ``KEY`` names the message in :class:`Codepoints`."""

    __slots__ = ()
    KEY: ClassVar[str]
    options: tuple[SubOption, ...]
    checksum: int | None

    def find(self, cls: type[SubOption]) -> SubOption | None:
        """The first sub-option of class ``cls``, or None."""
        for opt in self.options:
            if isinstance(opt, cls):
                return opt
        return None

    def find_all(self, cls: type[SubOption]) -> tuple[SubOption, ...]:
        return tuple(opt for opt in self.options if isinstance(opt, cls))

    @property
    def identifier(self) -> int | None:
        opt = self.find(Identifier)
        return opt.identifier if isinstance(opt, Identifier) else None

    @property
    def lkb(self) -> bytes | None:
        opt = self.find(LkbMessage)
        return opt.pdu if isinstance(opt, LkbMessage) else None

    def _body(self) -> bytes:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def _parse(cls, data: bytes) -> "FmipMessage":  # pragma: no cover - abstract
        raise NotImplementedError

    def _fields_json(self) -> dict[str, Any]:
        return {}

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"message": self.NAME}
        out.update(self._fields_json())
        out["options"] = [opt.to_json() for opt in self.options]
        return out


def _check_checksum(checksum: Any) -> int | None:
    return None if checksum is None else _uint(checksum, 16, "checksum")


@dataclass(frozen=True, slots=True)
class HandoverRedirect(FmipMessage):
    """Handover Redirect (HRD), draft §5, PAR -> MN, hop limit 255.

    Layout after the ICMPv6 header: Prefix Size (1), flags M|C|S (1), Reserved (2), Access Router IPv6
    Address (16), [Access Router MAC, 8, if M], [New Care-of Address, 16, if C], sub-options.  M and C
    follow from ``nar_mac``/``ncoa`` being set; S from the presence of a :class:`Principal` sub-option.
    """

    KEY: ClassVar[str] = "handover_redirect"
    NAME: ClassVar[str] = "HandoverRedirect"
    FIXED_LEN: ClassVar[int] = 24
    prefix_size: int
    nar_address: IPv6Address
    nar_mac: bytes | None = None
    ncoa: IPv6Address | None = None
    options: tuple[SubOption, ...] = ()
    checksum: int | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if _uint(self.prefix_size, 8, "prefix_size") > 128:
            raise ValueError(f"prefix_size: {self.prefix_size} is above 128")
        _set(self, "nar_address", _addr(self.nar_address, "nar_address"))
        if self.nar_mac is not None:
            _set(self, "nar_mac", _octets(self.nar_mac, "nar_mac", EUI64_LEN))
        if self.ncoa is not None:
            _set(self, "ncoa", _addr(self.ncoa, "ncoa"))
        _set(self, "options", _check_options(self.options, "handover_redirect"))
        _set(self, "checksum", _check_checksum(self.checksum))

    @property
    def flags(self) -> HrdFlag:
        flags = HrdFlag(0)
        if self.nar_mac is not None:
            flags |= HrdFlag.M
        if self.ncoa is not None:
            flags |= HrdFlag.C
        if self.find(Principal) is not None:
            flags |= HrdFlag.S
        return flags

    @property
    def principal(self) -> Principal | None:
        opt = self.find(Principal)
        return opt if isinstance(opt, Principal) else None

    def _body(self) -> bytes:
        out = bytes((self.prefix_size, int(self.flags), 0, 0)) + self.nar_address.packed
        if self.nar_mac is not None:
            out += self.nar_mac
        if self.ncoa is not None:
            out += self.ncoa.packed
        return out + _encode_suboptions(self.options)

    @classmethod
    def _parse(cls, data: bytes) -> "HandoverRedirect":
        _need(data, 4, 1, "prefix_size")
        _need(data, 5, 1, "flags")
        _need(data, 8, ADDR_LEN, "nar_address")
        prefix_size, flags = data[4], data[5]
        if prefix_size > 128:
            raise InvalidField(f"{prefix_size} is above 128", field="prefix_size", offset=4)
        pos = 24
        nar_mac = ncoa = None
        if flags & HrdFlag.M:
            _need(data, pos, EUI64_LEN, "nar_mac")
            nar_mac = data[pos:pos + EUI64_LEN]
            pos += EUI64_LEN
        if flags & HrdFlag.C:
            _need(data, pos, ADDR_LEN, "ncoa")
            ncoa = IPv6Address(data[pos:pos + ADDR_LEN])
            pos += ADDR_LEN
        options = _decode_suboptions(data, pos)
        has_principal = any(isinstance(o, Principal) for o in options)
        if bool(flags & HrdFlag.S) != has_principal:
            state = "set" if flags & HrdFlag.S else "clear"
            have = "present" if has_principal else "absent"
            raise InvalidField(f"S flag {state} but the principal sub-option is {have}", field="flags.S",
                               offset=5)
        return cls(prefix_size, IPv6Address(data[8:24]), nar_mac, ncoa, options)

    def _fields_json(self) -> dict[str, Any]:
        return {"prefix_size": self.prefix_size, "flags": _flag_names(self.flags),
                "nar_address": str(self.nar_address),
                "nar_mac": None if self.nar_mac is None else _fmt_eui64(self.nar_mac),
                "ncoa": None if self.ncoa is None else str(self.ncoa)}


def _flag_names(flags: HrdFlag | HiFlag) -> str:
    """"MCS"-style rendering of a flags octet, most significant flag first."""
    return "".join(f.name or "" for f in type(flags) if flags & f)


class _OptionsOnly(FmipMessage):
    """The draft §6.1 shape shared by HRA, AMN, Attach and Forwarding Disable:
    Reserved (4), Length (2, the whole ICMPv6 message in octets), sub-options."""

    __slots__ = ()
    FIXED_LEN: ClassVar[int] = 10

    def _init(self) -> None:
        _set(self, "options", _check_options(self.options, self.KEY))
        _set(self, "checksum", _check_checksum(self.checksum))

    def _body(self) -> bytes:
        opts = _encode_suboptions(self.options)
        total = ICMP6_HDR_LEN + 6 + len(opts)
        if total > MAX_MESSAGE_LEN:
            raise ValueError(f"{self.KEY}: message of {total} octets does not fit the 16-bit Length field")
        return bytes(4) + struct.pack("!H", total) + opts

    @classmethod
    def _parse(cls, data: bytes) -> "FmipMessage":
        _need(data, 4, 4, "reserved")
        _need(data, 8, 2, "length")
        (length,) = struct.unpack_from("!H", data, 8)
        if length != len(data):
            raise InvalidField(f"Length says {length} octets, the message has {len(data)}", field="length",
                               offset=8)
        return cls(options=_decode_suboptions(data, 10))  # type: ignore[call-arg]


@dataclass(frozen=True, slots=True)
class HandoverRedirectAck(_OptionsOnly):
    """Handover Redirect Ack (HRA), draft §6.1, MN -> PAR, hop limit 255: carries the AP-REQ for the NAR."""

    KEY: ClassVar[str] = "handover_redirect_ack"
    NAME: ClassVar[str] = "HandoverRedirectAck"
    options: tuple[SubOption, ...] = ()
    checksum: int | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        self._init()


@dataclass(frozen=True, slots=True)
class AuthenticatedMN(_OptionsOnly):
    """Authenticated-MN (AMN), draft §6.1 / Fig. 4 message 4, NAR -> MN, hop limit 255: the AP-REP."""

    KEY: ClassVar[str] = "authenticated_mn"
    NAME: ClassVar[str] = "AuthenticatedMN"
    options: tuple[SubOption, ...] = ()
    checksum: int | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        self._init()


@dataclass(frozen=True, slots=True)
class Attach(_OptionsOnly):
    """Attach (project-defined, draft Fig. 4 message 5), MN -> NAR, hop limit 255: link-layer address,
    AP-REQ or MAC, and the encapsulated Binding Update."""

    KEY: ClassVar[str] = "attach"
    NAME: ClassVar[str] = "Attach"
    options: tuple[SubOption, ...] = ()
    checksum: int | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        self._init()


@dataclass(frozen=True, slots=True)
class ForwardingDisable(_OptionsOnly):
    """Forwarding Disable (project-defined, draft App. A), MN -> PAR after a link reversal."""

    KEY: ClassVar[str] = "forwarding_disable"
    NAME: ClassVar[str] = "ForwardingDisable"
    options: tuple[SubOption, ...] = ()
    checksum: int | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        self._init()


@dataclass(frozen=True, slots=True)
class IcmpHandover(FmipMessage):
    """ICMP Handover (HI), draft §6, PAR -> NAR under AH.

    Layout after the ICMPv6 header: Prefix Size (1), flags M (1), Reserved (2), Mobile Node's New Care-of
    Address (16), [Mobile Node MAC, 8, if M], sub-options (LKB AP-REQ, handover control, PCoA, identifier).
    """

    KEY: ClassVar[str] = "handover"
    NAME: ClassVar[str] = "IcmpHandover"
    FIXED_LEN: ClassVar[int] = 24
    prefix_size: int
    ncoa: IPv6Address
    mn_mac: bytes | None = None
    options: tuple[SubOption, ...] = ()
    checksum: int | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if _uint(self.prefix_size, 8, "prefix_size") > 128:
            raise ValueError(f"prefix_size: {self.prefix_size} is above 128")
        _set(self, "ncoa", _addr(self.ncoa, "ncoa"))
        if self.mn_mac is not None:
            _set(self, "mn_mac", _octets(self.mn_mac, "mn_mac", EUI64_LEN))
        _set(self, "options", _check_options(self.options, "handover"))
        _set(self, "checksum", _check_checksum(self.checksum))

    @property
    def flags(self) -> HiFlag:
        return HiFlag.M if self.mn_mac is not None else HiFlag(0)

    def address(self, kind: AddressKind) -> IPv6Address | None:
        """The address sub-option of ``kind`` (e.g. the PCoA), or None."""
        for opt in self.options:
            if isinstance(opt, AddressOption) and opt.kind == kind:
                return opt.address
        return None

    def _body(self) -> bytes:
        out = bytes((self.prefix_size, int(self.flags), 0, 0)) + self.ncoa.packed
        if self.mn_mac is not None:
            out += self.mn_mac
        return out + _encode_suboptions(self.options)

    @classmethod
    def _parse(cls, data: bytes) -> "IcmpHandover":
        _need(data, 4, 1, "prefix_size")
        _need(data, 5, 1, "flags")
        _need(data, 8, ADDR_LEN, "ncoa")
        prefix_size, flags = data[4], data[5]
        if prefix_size > 128:
            raise InvalidField(f"{prefix_size} is above 128", field="prefix_size", offset=4)
        pos = 24
        mn_mac = None
        if flags & HiFlag.M:
            _need(data, pos, EUI64_LEN, "mn_mac")
            mn_mac = data[pos:pos + EUI64_LEN]
            pos += EUI64_LEN
        return cls(prefix_size, IPv6Address(data[8:24]), mn_mac, _decode_suboptions(data, pos))

    def _fields_json(self) -> dict[str, Any]:
        return {"prefix_size": self.prefix_size, "flags": _flag_names(self.flags), "ncoa": str(self.ncoa),
                "mn_mac": None if self.mn_mac is None else _fmt_eui64(self.mn_mac)}


@dataclass(frozen=True, slots=True)
class HandoverError(FmipMessage):
    """Handover Error (HE), draft §7, NAR -> PAR under AH: Reserved (4), New Care-of Address (16), then
    sub-options (Status, Identifier; docs/design.md §2)."""

    KEY: ClassVar[str] = "handover_error"
    NAME: ClassVar[str] = "HandoverError"
    FIXED_LEN: ClassVar[int] = 24
    ncoa: IPv6Address
    options: tuple[SubOption, ...] = ()
    checksum: int | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        _set(self, "ncoa", _addr(self.ncoa, "ncoa"))
        _set(self, "options", _check_options(self.options, "handover_error"))
        _set(self, "checksum", _check_checksum(self.checksum))

    @property
    def status(self) -> int | None:
        opt = self.find(Status)
        return opt.reason if isinstance(opt, Status) else None

    def _body(self) -> bytes:
        return bytes(4) + self.ncoa.packed + _encode_suboptions(self.options)

    @classmethod
    def _parse(cls, data: bytes) -> "HandoverError":
        _need(data, 4, 4, "reserved")
        _need(data, 8, ADDR_LEN, "ncoa")
        return cls(IPv6Address(data[8:24]), _decode_suboptions(data, 24))

    def _fields_json(self) -> dict[str, Any]:
        return {"ncoa": str(self.ncoa)}


#: The seven fmipfast messages by codepoint key (docs/conventions.md §5).
MESSAGE_CLASSES: dict[str, type[FmipMessage]] = {
    cls.KEY: cls
    for cls in (HandoverRedirect, HandoverRedirectAck, IcmpHandover, AuthenticatedMN, Attach, HandoverError,
                ForwardingDisable)
}


# ================================================================================================
# Router Solicitation / Advertisement and their ND options (RFC 4861 §4.1, §4.2, §4.6)
# ================================================================================================


class NdOption:
    """Base of ND options: type (1), length in units of 8 octets (1), value (RFC 4861 §4.6)."""

    __slots__ = ()
    TYPE: ClassVar[int]
    NAME: ClassVar[str]

    def value(self) -> bytes:  # pragma: no cover - abstract
        raise NotImplementedError

    def encode(self) -> bytes:
        value = self.value()
        total = 2 + len(value)
        if total % 8:
            value += bytes(8 - total % 8)
            total = 2 + len(value)
        if total > 255 * 8:
            raise ValueError(f"{self.NAME}: option of {total} octets exceeds 2040")
        return bytes((self.TYPE, total // 8)) + value

    def to_json(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class _LinkLayerOption(NdOption):
    """RFC 4861 §4.6.1 on Ethernet (RFC 2464 §8): one 8-octet unit, ``address`` the 6-octet MAC.  Other
    link layers' lengths are not ours to send or accept (module docstring): decoding any other length is
    :class:`BadOption`, so every decoded option's ``address`` is exactly 6 octets."""

    address: bytes

    def __post_init__(self) -> None:
        _set(self, "address", _octets(self.address, f"{self.NAME}.address", MAC48_LEN))

    @classmethod
    def from_value(cls, value: bytes, offset: int) -> "_LinkLayerOption":
        if len(value) != MAC48_LEN:
            raise BadOption(f"length {(len(value) + 2) // 8}, a link-layer address option on Ethernet is 1 "
                            f"(a 6-octet MAC, RFC 2464 §8)", field=f"{cls.NAME}.length", offset=offset + 1)
        return cls(value)

    def value(self) -> bytes:
        return self.address

    def to_json(self) -> dict[str, Any]:
        return {"type": self.NAME, "address": ":".join(f"{b:02x}" for b in self.address)}


@dataclass(frozen=True, slots=True)
class SourceLinkLayerAddress(_LinkLayerOption):
    """RFC 4861 §4.6.1 Source Link-Layer Address option."""

    TYPE: ClassVar[int] = NdOptType.SOURCE_LL_ADDR
    NAME: ClassVar[str] = "source_ll_address"


@dataclass(frozen=True, slots=True)
class TargetLinkLayerAddress(_LinkLayerOption):
    """RFC 4861 §4.6.1 Target Link-Layer Address option."""

    TYPE: ClassVar[int] = NdOptType.TARGET_LL_ADDR
    NAME: ClassVar[str] = "target_ll_address"


@dataclass(frozen=True, slots=True)
class PrefixInformation(NdOption):
    """RFC 4861 §4.6.2 Prefix Information (32 octets); ``flags`` holds L (0x80), A (0x40) and the rest."""

    TYPE: ClassVar[int] = NdOptType.PREFIX_INFORMATION
    NAME: ClassVar[str] = "prefix_information"
    prefix_length: int
    prefix: IPv6Address
    flags: int = 0xC0
    valid_lifetime: int = 2592000
    preferred_lifetime: int = 604800

    def __post_init__(self) -> None:
        if _uint(self.prefix_length, 8, "prefix_length") > 128:
            raise ValueError(f"prefix_length: {self.prefix_length} is above 128")
        _uint(self.flags, 8, "flags")
        _uint(self.valid_lifetime, 32, "valid_lifetime")
        _uint(self.preferred_lifetime, 32, "preferred_lifetime")
        _set(self, "prefix", _addr(self.prefix, "prefix"))

    def value(self) -> bytes:
        return struct.pack("!BBIII", self.prefix_length, self.flags, self.valid_lifetime,
                           self.preferred_lifetime, 0) + self.prefix.packed

    @classmethod
    def from_value(cls, value: bytes, offset: int) -> "PrefixInformation":
        if len(value) != 30:
            raise BadOption(f"length {(len(value) + 2) // 8}, a prefix information option is 4",
                            field=cls.NAME, offset=offset + 1)
        plen, flags, valid, preferred, _ = struct.unpack_from("!BBIII", value)
        if plen > 128:
            raise InvalidField(f"{plen} is above 128", field="prefix_information.prefix_length",
                               offset=offset + 2)
        return cls(plen, IPv6Address(value[14:30]), flags, valid, preferred)

    def to_json(self) -> dict[str, Any]:
        return {"type": self.NAME, "prefix": f"{self.prefix}/{self.prefix_length}", "flags": self.flags,
                "valid_lifetime": self.valid_lifetime, "preferred_lifetime": self.preferred_lifetime}


@dataclass(frozen=True, slots=True)
class Mtu(NdOption):
    """RFC 4861 §4.6.4 MTU option (8 octets)."""

    TYPE: ClassVar[int] = NdOptType.MTU
    NAME: ClassVar[str] = "mtu"
    mtu: int

    def __post_init__(self) -> None:
        _uint(self.mtu, 32, "mtu")

    def value(self) -> bytes:
        return struct.pack("!HI", 0, self.mtu)

    @classmethod
    def from_value(cls, value: bytes, offset: int) -> "Mtu":
        if len(value) != 6:
            raise BadOption(f"length {(len(value) + 2) // 8}, an MTU option is 1", field=cls.NAME,
                            offset=offset + 1)
        return cls(struct.unpack_from("!I", value, 2)[0])

    def to_json(self) -> dict[str, Any]:
        return {"type": self.NAME, "mtu": self.mtu}


@dataclass(frozen=True, slots=True)
class AdjacentRealmsRequest(NdOption):
    """ND option 253 sub-type 1 (in an RS): ask the router for its adjacent realms (draft §6.1.1)."""

    TYPE: ClassVar[int] = NdOptType.FMIP
    NAME: ClassVar[str] = "adjacent_realms_request"

    def value(self) -> bytes:
        return bytes((NdFmipSubtype.ADJACENT_REALMS_REQUEST,))

    def to_json(self) -> dict[str, Any]:
        return {"type": self.NAME}


@dataclass(frozen=True, slots=True)
class AdjacentRealms(NdOption):
    """ND option 253 sub-type 2 (in an RA): the adjacent realms, each a 1-octet length then the realm
    (UTF-8), zero-padded to a multiple of 8 octets (draft §6.1.1, docs/design.md §2)."""

    TYPE: ClassVar[int] = NdOptType.FMIP
    NAME: ClassVar[str] = "adjacent_realms"
    realms: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        realms = _tuple(self.realms, "adjacent_realms.realms")
        for realm in realms:
            if not isinstance(realm, str) or not realm or len(_utf8(realm, "adjacent_realms")) > 255:
                raise ValueError(f"adjacent_realms: realm {realm!r} must be a string of 1-255 octets")
        _set(self, "realms", realms)

    def value(self) -> bytes:
        out = bytearray((NdFmipSubtype.ADJACENT_REALMS,))
        for realm in self.realms:
            raw = realm.encode()
            out += bytes((len(raw),)) + raw
        return bytes(out)

    @classmethod
    def from_value(cls, value: bytes, offset: int) -> "AdjacentRealms":
        realms = []
        pos = 1
        while pos < len(value) and value[pos] != 0:
            n = value[pos]
            if pos + 1 + n > len(value):
                raise BadOption(f"realm of {n} octets runs past the option", field="adjacent_realms",
                                offset=offset + 2 + pos)
            try:
                realms.append(value[pos + 1:pos + 1 + n].decode("utf-8"))
            except UnicodeDecodeError as exc:
                raise BadOption(f"realm not UTF-8: {exc.reason}", field="adjacent_realms",
                                offset=offset + 2 + pos) from None
            pos += 1 + n
        if any(value[pos:]):
            raise BadOption("non-zero octets in the padding", field="adjacent_realms", offset=offset + 2 + pos)
        return cls(tuple(realms))

    def to_json(self) -> dict[str, Any]:
        return {"type": self.NAME, "realms": list(self.realms)}


@dataclass(frozen=True, slots=True)
class UnknownNdOption(NdOption):
    """An ND option (or option-253 sub-type) this version does not interpret: kept as raw value octets."""

    NAME: ClassVar[str] = "unknown"
    type: int
    data: bytes = bytes(6)

    def __post_init__(self) -> None:
        t = _uint(self.type, 8, "nd_option.type")
        if t == 0:
            raise ValueError("nd_option.type: 0 is not a valid option type")
        data = _octets(self.data, "nd_option.data")
        if len(data) % 8 != 6 or len(data) > 255 * 8 - 2:
            raise ValueError(f"nd_option.data: {len(data)} octets; the option holds 8n-2 octets")
        if t in _ND_CLASSES:
            raise ValueError(f"nd_option.type: {t} is a known option ({_ND_CLASSES[t].__name__})")
        if t == NdOptType.FMIP and data[0] in (NdFmipSubtype.ADJACENT_REALMS_REQUEST,
                                              NdFmipSubtype.ADJACENT_REALMS):
            raise ValueError(f"nd_option.data: sub-type {data[0]} of option 253 is a known option")
        _set(self, "data", data)

    @property
    def TYPE(self) -> int:  # type: ignore[override]
        return self.type

    def value(self) -> bytes:
        return self.data

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "data": self.data.hex()}


_ND_CLASSES: dict[int, Any] = {
    NdOptType.SOURCE_LL_ADDR: SourceLinkLayerAddress,
    NdOptType.TARGET_LL_ADDR: TargetLinkLayerAddress,
    NdOptType.PREFIX_INFORMATION: PrefixInformation,
    NdOptType.MTU: Mtu,
}


def _decode_nd_options(data: bytes, start: int) -> tuple[NdOption, ...]:
    """RFC 4861 §4.6 option walk: a zero length or one past the end invalidates the message."""
    options: list[NdOption] = []
    pos = start
    end = len(data)
    while pos < end:
        if end - pos < 2:
            raise Truncated(f"ND option header needs 2 octets, have {end - pos}", field="options", offset=pos)
        opt_type, units = data[pos], data[pos + 1]
        if units == 0:
            raise BadOption(f"ND option type {opt_type} has length 0 (RFC 4861 §4.6)", field="options.length",
                            offset=pos + 1)
        if opt_type == 0:
            raise BadOption("ND option type 0 (no option has it)", field="options.type", offset=pos)
        if pos + units * 8 > end:
            raise BadOption(f"ND option type {opt_type} of {units * 8} octets runs past the end "
                            f"({end - pos} left)", field="options.length", offset=pos + 1)
        value = data[pos + 2:pos + units * 8]
        opt: NdOption
        if opt_type in _ND_CLASSES:
            opt = _ND_CLASSES[opt_type].from_value(value, pos)
        elif opt_type == NdOptType.FMIP and value[0] == NdFmipSubtype.ADJACENT_REALMS_REQUEST:
            if any(value[1:]):
                raise BadOption("non-zero octets in the padding", field="adjacent_realms_request",
                                offset=pos + 3)
            if units != 1:
                raise BadOption(f"length {units}, an adjacent-realms request is 1", field="options.length",
                                offset=pos + 1)
            opt = AdjacentRealmsRequest()
        elif opt_type == NdOptType.FMIP and value[0] == NdFmipSubtype.ADJACENT_REALMS:
            opt = AdjacentRealms.from_value(value, pos)
            if len(opt.encode()) != units * 8:
                raise BadOption(f"length {units}: more padding than needed", field="adjacent_realms",
                                offset=pos + 1)
        else:
            opt = UnknownNdOption(opt_type, value)
        options.append(opt)
        pos += units * 8
    return tuple(options)


def _check_nd_options(options: Any, name: str) -> tuple[NdOption, ...]:
    opts = _tuple(options, f"{name}.options")
    for opt in opts:
        if not isinstance(opt, NdOption):
            raise ValueError(f"{name}.options: {opt!r} is not an ND option")
    return opts


class PlainIcmp(Message):
    """Base of the non-fmipfast ICMPv6 messages the engine speaks (ND, echo, errors): fixed type."""

    __slots__ = ()
    TYPE: ClassVar[int]
    checksum: int | None

    def wire_code(self) -> int:
        return 0

    def _body(self) -> bytes:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class RouterSolicitation(PlainIcmp):
    """RFC 4861 §4.1 Router Solicitation: Reserved (4), ND options (e.g. the adjacent-realms request)."""

    NAME: ClassVar[str] = "RouterSolicitation"
    TYPE: ClassVar[int] = Icmp6Type.ROUTER_SOLICITATION
    options: tuple[NdOption, ...] = ()
    checksum: int | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        _set(self, "options", _check_nd_options(self.options, "router_solicitation"))
        _set(self, "checksum", _check_checksum(self.checksum))

    def _body(self) -> bytes:
        return bytes(4) + b"".join(o.encode() for o in self.options)

    @classmethod
    def _parse(cls, data: bytes) -> "RouterSolicitation":
        _need(data, 4, 4, "reserved")
        return cls(_decode_nd_options(data, 8))

    def to_json(self) -> dict[str, Any]:
        return {"message": self.NAME, "options": [o.to_json() for o in self.options]}


@dataclass(frozen=True, slots=True)
class RouterAdvertisement(PlainIcmp):
    """RFC 4861 §4.2 Router Advertisement: Cur Hop Limit, flags (M 0x80, O 0x40, ...), Router Lifetime,
    Reachable Time, Retrans Timer, ND options (e.g. the adjacent-realms list)."""

    NAME: ClassVar[str] = "RouterAdvertisement"
    TYPE: ClassVar[int] = Icmp6Type.ROUTER_ADVERTISEMENT
    cur_hop_limit: int = 64
    flags: int = 0
    router_lifetime: int = 1800
    reachable_time: int = 0
    retrans_timer: int = 0
    options: tuple[NdOption, ...] = ()
    checksum: int | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        _uint(self.cur_hop_limit, 8, "cur_hop_limit")
        _uint(self.flags, 8, "flags")
        _uint(self.router_lifetime, 16, "router_lifetime")
        _uint(self.reachable_time, 32, "reachable_time")
        _uint(self.retrans_timer, 32, "retrans_timer")
        _set(self, "options", _check_nd_options(self.options, "router_advertisement"))
        _set(self, "checksum", _check_checksum(self.checksum))

    def _body(self) -> bytes:
        return struct.pack("!BBHII", self.cur_hop_limit, self.flags, self.router_lifetime, self.reachable_time,
                           self.retrans_timer) + b"".join(o.encode() for o in self.options)

    @classmethod
    def _parse(cls, data: bytes) -> "RouterAdvertisement":
        _need(data, 4, 12, "router_advertisement")
        hop, flags, lifetime, reachable, retrans = struct.unpack_from("!BBHII", data, 4)
        return cls(hop, flags, lifetime, reachable, retrans, _decode_nd_options(data, 16))

    def to_json(self) -> dict[str, Any]:
        return {"message": self.NAME, "cur_hop_limit": self.cur_hop_limit, "flags": self.flags,
                "router_lifetime": self.router_lifetime, "reachable_time": self.reachable_time,
                "retrans_timer": self.retrans_timer, "options": [o.to_json() for o in self.options]}


@dataclass(frozen=True, slots=True)
class NeighborSolicitation(PlainIcmp):
    """RFC 4861 §4.3 Neighbor Solicitation: Reserved (4), Target Address (16), ND options (SLLA)."""

    NAME: ClassVar[str] = "NeighborSolicitation"
    TYPE: ClassVar[int] = Icmp6Type.NEIGHBOR_SOLICITATION
    target: IPv6Address
    options: tuple[NdOption, ...] = ()
    checksum: int | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        _set(self, "target", _addr(self.target, "target"))
        _set(self, "options", _check_nd_options(self.options, "neighbor_solicitation"))
        _set(self, "checksum", _check_checksum(self.checksum))

    def _body(self) -> bytes:
        return bytes(4) + self.target.packed + b"".join(o.encode() for o in self.options)

    @classmethod
    def _parse(cls, data: bytes) -> "NeighborSolicitation":
        _need(data, 4, 4, "reserved")
        _need(data, 8, ADDR_LEN, "target")
        return cls(IPv6Address(data[8:24]), _decode_nd_options(data, 24))

    def to_json(self) -> dict[str, Any]:
        return {"message": self.NAME, "target": str(self.target), "options": [o.to_json() for o in self.options]}


@dataclass(frozen=True, slots=True)
class NeighborAdvertisement(PlainIcmp):
    """RFC 4861 §4.4 Neighbor Advertisement: flags R (router), S (solicited), O (override), Target, options."""

    NAME: ClassVar[str] = "NeighborAdvertisement"
    TYPE: ClassVar[int] = Icmp6Type.NEIGHBOR_ADVERTISEMENT
    target: IPv6Address
    router: bool = False
    solicited: bool = False
    override: bool = True
    options: tuple[NdOption, ...] = ()
    checksum: int | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        _set(self, "target", _addr(self.target, "target"))
        for name in ("router", "solicited", "override"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"neighbor_advertisement.{name}: must be a bool")
        _set(self, "options", _check_nd_options(self.options, "neighbor_advertisement"))
        _set(self, "checksum", _check_checksum(self.checksum))

    def _body(self) -> bytes:
        flags = (0x80 if self.router else 0) | (0x40 if self.solicited else 0) | (0x20 if self.override else 0)
        return bytes((flags, 0, 0, 0)) + self.target.packed + b"".join(o.encode() for o in self.options)

    @classmethod
    def _parse(cls, data: bytes) -> "NeighborAdvertisement":
        _need(data, 4, 4, "flags")
        _need(data, 8, ADDR_LEN, "target")
        flags = data[4]
        return cls(IPv6Address(data[8:24]), bool(flags & 0x80), bool(flags & 0x40), bool(flags & 0x20),
                   _decode_nd_options(data, 24))

    def to_json(self) -> dict[str, Any]:
        return {"message": self.NAME, "target": str(self.target), "router": self.router,
                "solicited": self.solicited, "override": self.override,
                "options": [o.to_json() for o in self.options]}


@dataclass(frozen=True, slots=True)
class _Echo(PlainIcmp):
    identifier: int = 0
    sequence: int = 0
    data: bytes = b""
    checksum: int | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        _uint(self.identifier, 16, "identifier")
        _uint(self.sequence, 16, "sequence")
        _set(self, "data", _octets(self.data, "data"))
        _set(self, "checksum", _check_checksum(self.checksum))

    def _body(self) -> bytes:
        return struct.pack("!HH", self.identifier, self.sequence) + self.data

    @classmethod
    def _parse(cls, data: bytes) -> "_Echo":
        _need(data, 4, 4, "identifier")
        ident, seq = struct.unpack_from("!HH", data, 4)
        return cls(ident, seq, data[8:])

    def to_json(self) -> dict[str, Any]:
        return {"message": self.NAME, "identifier": self.identifier, "sequence": self.sequence,
                "data_length": len(self.data)}


@dataclass(frozen=True, slots=True)
class EchoRequest(_Echo):
    """RFC 4443 §4.1 Echo Request."""

    NAME: ClassVar[str] = "EchoRequest"
    TYPE: ClassVar[int] = Icmp6Type.ECHO_REQUEST


@dataclass(frozen=True, slots=True)
class EchoReply(_Echo):
    """RFC 4443 §4.2 Echo Reply."""

    NAME: ClassVar[str] = "EchoReply"
    TYPE: ClassVar[int] = Icmp6Type.ECHO_REPLY


#: RFC 4443 §2.4(c): an error message carries as much of the invoking packet as fits in the minimum MTU.
ICMP_ERROR_MAX_INVOKING = 1280 - IP6_HDR_LEN - 8


@dataclass(frozen=True, slots=True)
class IcmpError(PlainIcmp):
    """RFC 4443 §3 error messages: Destination Unreachable (1), Packet Too Big (2, ``value`` = MTU), Time
    Exceeded (3), Parameter Problem (4, ``value`` = pointer); ``invoking`` is the start of the offending
    packet, cut to what fits the minimum MTU (§2.4(c)) when encoded."""

    NAME: ClassVar[str] = "IcmpError"
    TYPE: ClassVar[int] = 0  # per instance: see ``kind``
    kind: int
    code: int = 0
    value: int = 0
    invoking: bytes = b""
    checksum: int | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in (Icmp6Type.DEST_UNREACH, Icmp6Type.PACKET_TOO_BIG, Icmp6Type.TIME_EXCEEDED,
                             Icmp6Type.PARAM_PROBLEM):
            raise ValueError(f"icmp_error.kind: {self.kind!r} is not an ICMPv6 error type (1-4)")
        _set(self, "kind", Icmp6Type(self.kind))
        _uint(self.code, 8, "icmp_error.code")
        _uint(self.value, 32, "icmp_error.value")
        _set(self, "invoking", _octets(self.invoking, "icmp_error.invoking")[:ICMP_ERROR_MAX_INVOKING])
        _set(self, "checksum", _check_checksum(self.checksum))

    def wire_type(self) -> int:
        return int(self.kind)

    def wire_code(self) -> int:
        return self.code

    def _body(self) -> bytes:
        return struct.pack("!I", self.value) + self.invoking

    @classmethod
    def _parse(cls, data: bytes) -> "IcmpError":
        _need(data, 4, 4, "value")
        return cls(data[0], data[1], struct.unpack_from("!I", data, 4)[0], data[8:])

    def to_json(self) -> dict[str, Any]:
        return {"message": self.NAME, "kind": Icmp6Type(self.kind).name.lower(), "code": self.code, "value": self.value,
                "invoking_length": len(self.invoking)}


_PLAIN_CLASSES: dict[int, Any] = {
    Icmp6Type.ROUTER_SOLICITATION: RouterSolicitation,
    Icmp6Type.ROUTER_ADVERTISEMENT: RouterAdvertisement,
    Icmp6Type.NEIGHBOR_SOLICITATION: NeighborSolicitation,
    Icmp6Type.NEIGHBOR_ADVERTISEMENT: NeighborAdvertisement,
    Icmp6Type.ECHO_REQUEST: EchoRequest,
    Icmp6Type.ECHO_REPLY: EchoReply,
}


# ================================================================================================
# Binding Update (RFC 6275 §6.1.7) in a Mobility Header (RFC 6275 §6.1.1) — carried in sub-option 5
# ================================================================================================


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


# ================================================================================================
# encode / decode
# ================================================================================================

def _addresses(src: AddressLike | None, dst: AddressLike | None) -> tuple[bytes, bytes] | None:
    if src is None and dst is None:
        return None
    if src is None or dst is None:
        raise ValueError("the checksum pseudo-header needs both src and dst")
    return _addr(src, "src").packed, _addr(dst, "dst").packed


def encode(message: Message, src: AddressLike | None = None, dst: AddressLike | None = None, *,
           codepoints: Codepoints = DEFAULT_CODEPOINTS) -> bytes:
    """Encode ``message`` as an ICMPv6 message (Type octet onwards).

    The checksum is ``message.checksum`` when set (e.g. to craft a bad one), else it is computed over the
    RFC 4443 §2.3 pseudo-header from ``src`` and ``dst``; without them a ``ValueError`` is raised.
    """
    if isinstance(message, FmipMessage):
        head = bytes((codepoints.type, codepoints.code(message.KEY), 0, 0))
    elif isinstance(message, IcmpError):
        head = bytes((message.wire_type(), message.wire_code(), 0, 0))
    elif isinstance(message, PlainIcmp):
        head = bytes((message.TYPE, message.wire_code(), 0, 0))
    else:
        raise ValueError(f"not an fmipfast message: {message!r}")
    buf = bytearray(head + message._body())
    if len(buf) > MAX_MESSAGE_LEN:
        raise ValueError(f"{message.NAME}: {len(buf)} octets exceed the IPv6 payload limit of 65535")
    if message.checksum is not None:
        struct.pack_into("!H", buf, 2, message.checksum)
    else:
        addrs = _addresses(src, dst)
        if addrs is None:
            raise ValueError(f"{message.NAME}: checksum is None and no src/dst given to compute it")
        backend.icmp6_checksum_fill(addrs[0], addrs[1], buf)
    return bytes(buf)


def decode(data: bytes | bytearray | memoryview, src: AddressLike | None = None,
           dst: AddressLike | None = None, *, codepoints: Codepoints = DEFAULT_CODEPOINTS) -> Message:
    """Decode one ICMPv6 message (from its Type octet to the end of the IPv6 payload).

    With ``src`` and ``dst`` the checksum is verified first (``BadChecksum`` carries ``expected`` and
    ``found``).  Returns an :class:`FmipMessage` subclass, a :class:`RouterSolicitation` or a
    :class:`RouterAdvertisement`; the result's ``checksum`` is the value found on the wire.
    """
    if isinstance(data, (str, int)):
        raise TypeError(f"decode() needs bytes, got {type(data).__name__}")
    raw = bytes(data)
    if len(raw) < ICMP6_HDR_LEN:
        raise Truncated(f"ICMPv6 header needs 4 octets, have {len(raw)}", field="icmpv6", offset=0)
    if len(raw) > MAX_MESSAGE_LEN:
        raise InvalidField(f"{len(raw)} octets exceed the IPv6 payload limit", field="length", offset=0)
    icmp_type, code = raw[0], raw[1]
    found = struct.unpack_from("!H", raw, 2)[0]
    addrs = _addresses(src, dst)
    if addrs is not None and not backend.icmp6_checksum_ok(addrs[0], addrs[1], raw):
        expected = backend.icmp6_checksum(addrs[0], addrs[1], raw)
        raise BadChecksum(f"checksum 0x{found:04x} does not verify, expected 0x{expected:04x}",
                          expected=expected, found=found)
    cls: Any
    if icmp_type == codepoints.type:
        key = codepoints.key(code)
        if key is None:
            raise UnsupportedType(f"code {code} is not an fmipfast message in this profile "
                                  f"(type {codepoints.type})", field="code", offset=1)
        cls = MESSAGE_CLASSES[key]
    elif icmp_type in _PLAIN_CLASSES:
        if code != 0:
            raise InvalidField(f"code {code}; RFC 4861 §6.1 / RFC 4443 §4 require 0", field="code", offset=1)
        cls = _PLAIN_CLASSES[icmp_type]
    elif icmp_type in (Icmp6Type.DEST_UNREACH, Icmp6Type.PACKET_TOO_BIG, Icmp6Type.TIME_EXCEEDED,
                       Icmp6Type.PARAM_PROBLEM):
        cls = IcmpError
    else:
        raise UnsupportedType(f"ICMPv6 type {icmp_type} is not an fmipfast message (type {codepoints.type})",
                              field="type", offset=0)
    try:
        message = cls._parse(raw)
    except MalformedPacket:
        raise
    except Exception as exc:  # a parser bug: still the documented class for the caller (module docstring)
        raise MalformedPacket(f"undecodable {cls.NAME}: {type(exc).__name__}: {exc}", field=cls.NAME) from exc
    _set(message, "checksum", found)
    return message


def mac_value_offset(data: bytes | bytearray | memoryview, *,
                     codepoints: Codepoints = DEFAULT_CODEPOINTS) -> int | None:
    """Offset of the 16-octet value of the MAC sub-option (type 7) in an encoded fmipfast message, or
    None when it has none.  The message is decoded first, so a malformed one raises as :func:`decode`."""
    raw = bytes(data)
    message = decode(raw, codepoints=codepoints)
    if not isinstance(message, FmipMessage):
        return None
    start = _options_start(message)
    for opt_type, offset, _value in _iter_suboptions(raw, start):
        if opt_type == SubOptType.MAC:
            return offset + SUBOPT_HDR_LEN
    return None


def mac_offset_of(message: FmipMessage, raw: bytes | bytearray) -> int | None:
    """:func:`mac_value_offset` for ``raw`` whose decoded (or about to be encoded) ``message`` is at hand: the
    sub-options are walked from where ``message``'s fixed part ends, without decoding ``raw`` again (a
    receiver has just decoded it; a sender has just encoded it)."""
    for opt_type, offset, _value in _iter_suboptions(bytes(raw), _options_start(message)):
        if opt_type == SubOptType.MAC:
            return offset + SUBOPT_HDR_LEN
    return None


def refill_checksum(raw: bytearray, src: AddressLike, dst: AddressLike) -> bytes:
    """``raw`` (an encoded message changed in place, e.g. its MAC value filled in) with its ICMPv6 checksum
    computed again over the RFC 4443 §2.3 pseudo-header."""
    addrs = _addresses(src, dst)
    if addrs is None:
        raise ValueError("refill_checksum needs src and dst for the pseudo-header")
    if len(raw) < ICMP6_HDR_LEN:
        raise ValueError(f"refill_checksum: {len(raw)} octets is not an ICMPv6 message")
    raw[2:4] = b"\0\0"
    backend.icmp6_checksum_fill(addrs[0], addrs[1], raw)
    return bytes(raw)


def _options_start(message: FmipMessage) -> int:
    if isinstance(message, HandoverRedirect):
        return 24 + (EUI64_LEN if message.nar_mac is not None else 0) + (ADDR_LEN if message.ncoa is not None else 0)
    if isinstance(message, IcmpHandover):
        return 24 + (EUI64_LEN if message.mn_mac is not None else 0)
    if isinstance(message, HandoverError):
        return 24
    return 10
