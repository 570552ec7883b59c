"""The other ICMPv6 messages the engine speaks, each of a fixed type (:class:`PlainIcmp`), and the Neighbor
Discovery options: Router Solicitation, Router Advertisement, Neighbor Solicitation and Neighbor Advertisement
(RFC 4861 §4.1-§4.4) with the options of RFC 4861 §4.6 (link-layer addresses on Ethernet only, RFC 2464 §8;
Prefix Information §4.6.2; MTU §4.6.4) and the project's option 253 (draft-koodli-mobileip-fastv6-02 §6.1.1,
adjacent realms); Echo Request and Reply (RFC 4443 §4.1, §4.2); and the error messages (RFC 4443 §3, cut to
the minimum MTU as §2.4(c) says).  ``_ND_CLASSES`` and ``_PLAIN_CLASSES`` are the type -> class dicts
(docs/conventions.md §5).

"The module docstring" in the docstrings below is the package's (``fmipfast/messages/__init__.py``):
it states the exception contract every parser here keeps.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from ipaddress import IPv6Address
from typing import Any, ClassVar

from fmipfast.constants import ADDR_LEN, IP6_HDR_LEN, MAC48_LEN, Icmp6Type, NdFmipSubtype, NdOptType
from fmipfast.errors import BadOption, InvalidField, Truncated
from fmipfast.messages.base import Message, _addr, _check_checksum, _need, _octets, _set, _tuple, _uint, _utf8


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
