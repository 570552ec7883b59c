"""The seven fmipfast messages of docs/design.md §2 — draft-koodli-mobileip-fastv6-02 §5 (Handover Redirect),
§6 (ICMP Handover), §6.1 (Handover Redirect Ack; Authenticated-MN, Fig. 4 message 4), §7 (Handover Error), and the
project-defined Attach (Fig. 4 message 5) and Forwarding Disable (App. A).  All share one ICMPv6 type from the
codepoint profile (:class:`fmipfast.constants.Codepoints`, type 200 by default); the Code tells them apart, and
:data:`MESSAGE_CLASSES` maps each codepoint key to its class (docs/conventions.md §5).  Their sub-options are in
:mod:`fmipfast.messages.suboptions`.

"The module docstring" in the docstrings below is the package's (``fmipfast/messages/__init__.py``):
it states the exception contract every parser here keeps.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from ipaddress import IPv6Address
from typing import Any, ClassVar

from fmipfast.constants import ADDR_LEN, EUI64_LEN, ICMP6_HDR_LEN, AddressKind, HiFlag, HrdFlag
from fmipfast.errors import InvalidField
from fmipfast.messages.base import MAX_MESSAGE_LEN, Message, _addr, _check_checksum, _need, _octets, _set, _uint
from fmipfast.messages.suboptions import (
    AddressOption,
    Identifier,
    LkbMessage,
    Principal,
    Status,
    SubOption,
    _check_options,
    _decode_suboptions,
    _encode_suboptions,
    _fmt_eui64,
)


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
