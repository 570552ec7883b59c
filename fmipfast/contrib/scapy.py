"""scapy layers for the fmipfast messages and their sub-options, for crafting and dissecting with scapy.

Optional: needs scapy (``pip install scapy``); ``import fmipfast`` never imports this module.  The layers
follow the wire format of :mod:`fmipfast.messages` octet for octet (tests dissect what our codec encodes
and decode what these layers build, both ways, checksums included)::

    >>> from scapy.layers.inet6 import IPv6
    >>> from fmipfast.contrib.scapy import FmipHandoverRedirect, FmipOptIdentifier
    >>> pkt = IPv6(src="fe80::1", dst="fe80::2") / FmipHandoverRedirect(
    ...     prefix_size=64, nar_address="2001:db8:2::1", options=[FmipOptIdentifier(identifier=7)])
    >>> IPv6(bytes(pkt))[FmipHandoverRedirect].options[0].identifier
    7

Importing the module binds the layers to ICMPv6 type 200 with the default codes
(:data:`~fmipfast.constants.DEFAULT_CODEPOINTS`), so ``IPv6(raw)`` dissects fmipfast messages.  A
deployment with another codepoint profile calls :func:`bind` with it; layers built without an explicit
``type``/``code`` take them from the profile bound last.

What scapy computes when a field is left ``None``: the ICMPv6 type and code (from the bound profile), the
checksum (RFC 4443 §2.3, over the IPv6 pseudo-header of the layer below), the sub-option Length octets, the
Handover Redirect's M/C/S flags and the Handover's M flag (from which fields/sub-options are present), and
the 16-bit Length of the options-only messages (HRA, AMN, Attach, Forwarding Disable).  Set any of them to
craft a message that disagrees with itself.

An LKB PDU over 253 octets travels as several type-2 sub-options; here each is its own
:class:`FmipOptLkb` (that is the wire).  :func:`lkb_fragments` splits a PDU, :func:`lkb_pdu` joins them.
"""

from __future__ import annotations

import struct
from typing import Any

try:
    from scapy.fields import (
        ByteEnumField,
        ByteField,
        ConditionalField,
        FieldLenField,
        FlagsField,
        IntField,
        IP6Field,
        PacketLenField,
        PacketListField,
        ShortField,
        StrFixedLenField,
        StrLenField,
        XShortField,
        XStrFixedLenField,
    )
    from scapy.layers import inet6 as _inet6
    from scapy.layers.inet6 import ICMPv6Unknown, IPv6, in6_chksum
    from scapy.layers.ipsec import AH
    from scapy.packet import Packet, bind_layers
except ImportError as exc:  # pragma: no cover - exercised by a subprocess test without scapy
    raise ImportError(
        "fmipfast.contrib.scapy needs scapy, which is not installed: `pip install scapy` "
        "(or install fmipfast with its [test] extra)"
    ) from exc

from fmipfast.constants import (
    DEFAULT_CODEPOINTS,
    LKB_FRAGMENT_MAX,
    AddressKind,
    Codepoints,
    HandoverControlFlag,
    HandoverStatus,
    HiFlag,
    HrdFlag,
    IpProto,
    SubOptType,
)

__all__ = [
    # sub-options
    "FmipSubOption",
    "FmipOptPrincipal",
    "FmipOptLkb",
    "FmipOptHandoverControl",
    "FmipOptAddress",
    "FmipOptEncapsulated",
    "FmipOptIdentifier",
    "FmipOptMac",
    "FmipOptStatus",
    "FmipOptLinkLayerAddress",
    "FmipOptUnknown",
    "SUBOPTION_LAYERS",
    # messages
    "FmipMessage",
    "FmipHandoverRedirect",
    "FmipHandoverRedirectAck",
    "FmipHandover",
    "FmipAuthenticatedMN",
    "FmipAttach",
    "FmipHandoverError",
    "FmipForwardingDisable",
    "MESSAGE_LAYERS",
    # binding and helpers
    "bind",
    "unbind",
    "bound",
    "lkb_fragments",
    "lkb_pdu",
    "EUI64Field",
]

_ICMPv6: Any = _inet6._ICMPv6  # scapy's ICMPv6 base: isinstance checks, answers(), the IPerror6 machinery
#: scapy's ICMPv6 type tables that IPv6 dissection consults: type -> layer, type -> minimum length.
_TYPE_LAYERS: dict[int, Any] = _inet6.icmp6typescls
_TYPE_MINLEN: dict[int, Any] = _inet6.icmp6typesminhdrlen


# ================================================================================================
# Fields
# ================================================================================================


class EUI64Field(StrFixedLenField):
    """An 8-octet EUI-64 link-layer address, shown as ``02:11:22:ff:fe:33:44:55``; also accepts that text."""

    __slots__ = ()

    def __init__(self, name: str, default: bytes | None) -> None:
        super().__init__(name, default, length=8)

    def any2i(self, pkt: Packet | None, x: Any) -> Any:
        if isinstance(x, str):
            x = bytes.fromhex(x.replace(":", "").replace("-", ""))
        return super().any2i(pkt, x)

    def i2repr(self, pkt: Packet | None, x: Any) -> str:
        if isinstance(x, bytes):
            return ":".join(f"{b:02x}" for b in x)
        return repr(x)


class _AutoByteField(ByteField):
    """A ByteField whose ``None`` becomes ``compute(pkt)`` when the packet is built."""

    __slots__ = ("_compute",)

    def __init__(self, name: str, compute: Any) -> None:
        super().__init__(name, None)
        self._compute = compute

    def i2m(self, pkt: Packet | None, x: Any) -> int:
        if x is None and pkt is not None:
            x = self._compute(pkt)
        return super().i2m(pkt, x)


class _AutoFlagsField(FlagsField):
    """A FlagsField whose ``None`` becomes ``compute(pkt)`` (the flags the present fields imply)."""

    __slots__ = ("_compute",)

    def __init__(self, name: str, names: list[str], compute: Any) -> None:
        super().__init__(name, None, 8, names)
        self._compute = compute

    def i2m(self, pkt: Packet | None, x: Any) -> int:
        if x is None and pkt is not None:
            x = self._compute(pkt)
        return super().i2m(pkt, x)


def _flag_names(flag_cls: Any) -> list[str]:
    """FlagsField names, least significant bit first, for an 8-bit IntFlag (unnamed bits: ``r0``..)."""
    names = {member.value: member.name for member in flag_cls}
    return [names.get(1 << bit, f"r{bit}") for bit in range(8)]


# ================================================================================================
# Sub-options: type (1), length in octets including the 2-octet header (1), value
# ================================================================================================


class FmipSubOption(Packet):
    """Base of the sub-option layers.  ``FmipSubOption(raw)`` picks the layer from the type octet."""

    name = "fmipfast sub-option"
    fields_desc = [ByteField("type", 0), ByteField("len", None)]

    @classmethod
    def dispatch_hook(cls, _pkt: bytes | None = None, *args: Any, **kargs: Any) -> type[Packet]:
        if _pkt:
            return SUBOPTION_LAYERS.get(_pkt[0], FmipOptUnknown)
        return cls

    def post_build(self, p: bytes, pay: bytes) -> bytes:
        if self.len is None:
            if len(p) > 255:
                raise ValueError(f"{self.name}: {len(p)} octets do not fit a sub-option (at most 255)")
            p = p[:1] + bytes((len(p),)) + p[2:]
        return p + pay

    def extract_padding(self, s: bytes) -> tuple[bytes, bytes]:
        return b"", s  # what follows is the next sub-option


def _value_len(pkt: Packet, fixed: int = 0) -> int:
    """Octets of a variable value field: the sub-option Length minus the header and ``fixed`` octets."""
    return max(0, (pkt.len or 0) - 2 - fixed)


class FmipOptPrincipal(FmipSubOption):
    """Sub-option 1: Kerberos principal name and realm (1-octet name length, name, realm; UTF-8)."""

    name = "fmipfast Principal"
    fields_desc = [
        ByteField("type", SubOptType.PRINCIPAL),
        ByteField("len", None),
        FieldLenField("principal_len", None, length_of="principal", fmt="B"),
        StrLenField("principal", b"", length_from=lambda p: p.principal_len),
        StrLenField("realm", b"", length_from=lambda p: _value_len(p, 1 + (p.principal_len or 0))),
    ]


class FmipOptLkb(FmipSubOption):
    """Sub-option 2: one fragment (at most 253 octets) of a light-weight Kerberos / GSS-API PDU."""

    name = "fmipfast LKB"
    fields_desc = [
        ByteField("type", SubOptType.LKB),
        ByteField("len", None),
        StrLenField("data", b"", length_from=_value_len),
    ]


class FmipOptHandoverControl(FmipSubOption):
    """Sub-option 3: flags (U: buffer at the NAR), max buffered packets, buffer lifetime in ms."""

    name = "fmipfast Handover Control"
    fields_desc = [
        ByteField("type", SubOptType.HANDOVER_CONTROL),
        ByteField("len", None),
        FlagsField("flags", int(HandoverControlFlag.U), 8, _flag_names(HandoverControlFlag)),
        ShortField("max_packets", 0),
        IntField("lifetime_ms", 0),
    ]


class FmipOptAddress(FmipSubOption):
    """Sub-option 4: kind (1 PCoA, 2 NCoA, 3 NAR), reserved, 128-bit address."""

    name = "fmipfast Address"
    fields_desc = [
        ByteField("type", SubOptType.ADDRESS),
        ByteField("len", None),
        ByteEnumField("kind", int(AddressKind.PCOA), {int(k): k.name for k in AddressKind}),
        ByteField("reserved", 0),
        IP6Field("address", "::"),
    ]


class FmipOptEncapsulated(FmipSubOption):
    """Sub-option 5: a whole IPv6 packet (the Binding Update of the Attach), dissected as ``IPv6``."""

    name = "fmipfast Encapsulated Packet"
    fields_desc = [
        ByteField("type", SubOptType.ENCAPSULATED),
        ByteField("len", None),
        PacketLenField("packet", None, IPv6, length_from=_value_len),  # type: ignore[arg-type]
    ]


class FmipOptIdentifier(FmipSubOption):
    """Sub-option 6: 16-bit handover identifier, 16 reserved bits."""

    name = "fmipfast Identifier"
    fields_desc = [
        ByteField("type", SubOptType.IDENTIFIER),
        ByteField("len", None),
        ShortField("identifier", 0),
        ShortField("reserved", 0),
    ]


class FmipOptMac(FmipSubOption):
    """Sub-option 7: 16-octet HMAC-SHA-256-128 (``fmipfast.security`` computes and checks it)."""

    name = "fmipfast MAC"
    fields_desc = [
        ByteField("type", SubOptType.MAC),
        ByteField("len", None),
        XStrFixedLenField("mac", bytes(16), length=16),
    ]


class FmipOptStatus(FmipSubOption):
    """Sub-option 8: the Handover Error reason."""

    name = "fmipfast Status"
    fields_desc = [
        ByteField("type", SubOptType.STATUS),
        ByteField("len", None),
        ByteEnumField("reason", int(HandoverStatus.UNSPECIFIED), {int(s): s.name for s in HandoverStatus}),
    ]


class FmipOptLinkLayerAddress(FmipSubOption):
    """Sub-option 9: 8-octet link-layer address in EUI-64 form."""

    name = "fmipfast Link-Layer Address"
    fields_desc = [
        ByteField("type", SubOptType.LINK_LAYER_ADDRESS),
        ByteField("len", None),
        EUI64Field("eui64", bytes(8)),
    ]


class FmipOptUnknown(FmipSubOption):
    """A sub-option type fmipfast does not define (receivers skip it): raw value octets."""

    name = "fmipfast unknown sub-option"
    fields_desc = [
        ByteField("type", 0),
        ByteField("len", None),
        StrLenField("data", b"", length_from=_value_len),
    ]


#: Sub-option type -> layer (types not listed dissect as :class:`FmipOptUnknown`).
SUBOPTION_LAYERS: dict[int, type[FmipSubOption]] = {
    SubOptType.PRINCIPAL: FmipOptPrincipal,
    SubOptType.LKB: FmipOptLkb,
    SubOptType.HANDOVER_CONTROL: FmipOptHandoverControl,
    SubOptType.ADDRESS: FmipOptAddress,
    SubOptType.ENCAPSULATED: FmipOptEncapsulated,
    SubOptType.IDENTIFIER: FmipOptIdentifier,
    SubOptType.MAC: FmipOptMac,
    SubOptType.STATUS: FmipOptStatus,
    SubOptType.LINK_LAYER_ADDRESS: FmipOptLinkLayerAddress,
}


def lkb_fragments(pdu: bytes) -> list[FmipOptLkb]:
    """``pdu`` as the type-2 sub-options that carry it: 253 octets each, the last one shorter or equal."""
    if not pdu:
        raise ValueError("an LKB PDU cannot be empty")
    return [FmipOptLkb(data=pdu[i:i + LKB_FRAGMENT_MAX]) for i in range(0, len(pdu), LKB_FRAGMENT_MAX)]


def lkb_pdu(options: list[Packet]) -> bytes | None:
    """The LKB PDU the consecutive :class:`FmipOptLkb` fragments in ``options`` carry, or None without one.
    (Framing checks, such as every fragment but the last carrying 253 octets, are the codec's job.)"""
    parts: list[bytes] = []
    for opt in options:
        if isinstance(opt, FmipOptLkb):
            parts.append(bytes(opt.data))
        elif parts:
            break
    return b"".join(parts) if parts else None


# ================================================================================================
# Messages: ICMPv6 type from the codepoint profile, the Code tells them apart
# ================================================================================================

#: ICMPv6 type -> the profile bound to it (see :func:`bind`); the last one bound gives built layers their
#: type and code.
_BOUND: dict[int, Codepoints] = {}
_build_profile: list[Codepoints] = [DEFAULT_CODEPOINTS]


def _type_of(pkt: Packet) -> int:
    return _build_profile[0].type


def _code_of(pkt: Packet) -> int:
    return _build_profile[0].code(type(pkt).KEY)


#: The ICMPv6 header every message layer starts with (type and code from the profile bound last).
_HEADER: list[Any] = [
    _AutoByteField("type", _type_of),
    _AutoByteField("code", _code_of),
    XShortField("cksum", None),
]


class FmipMessage(_ICMPv6):  # type: ignore[misc]
    """Base of the message layers.  ``FmipMessage(raw)`` picks the layer from the type and code octets of
    an ICMPv6 message: through the bound profiles for a bound type (``ICMPv6Unknown`` for a code the profile
    lacks), scapy's own ICMPv6 layer for any other type.  It is also what scapy dissects ICMPv6 after an AH
    header with (HI and HE travel under AH; scapy alone leaves that payload ``Raw``)."""

    name = "fmipfast message"
    KEY = ""
    fields_desc = _HEADER

    @classmethod
    def dispatch_hook(cls, _pkt: bytes | None = None, *args: Any, **kargs: Any) -> type[Packet]:
        if _pkt and len(_pkt) >= 2:
            profile = _BOUND.get(_pkt[0])
            if profile is None:
                other = _TYPE_LAYERS.get(_pkt[0])
                return other if isinstance(other, type) and issubclass(other, Packet) else ICMPv6Unknown
            key = profile.key(_pkt[1])
            return ICMPv6Unknown if key is None else MESSAGE_LAYERS[key]
        return cls

    def _fill_length(self, p: bytes) -> bytes:
        return p

    def post_build(self, p: bytes, pay: bytes) -> bytes:
        p = self._fill_length(p + pay)
        if self.cksum is None:
            checksum = in6_chksum(IpProto.ICMPV6, self.underlayer, p)
            p = p[:2] + struct.pack("!H", checksum) + p[4:]
        return p


_HOP255 = {IPv6: {"nh": int(IpProto.ICMPV6), "hlim": 255}}  # link-only messages (MN <-> access router)
_UNDER_AH = {IPv6: {"nh": int(IpProto.ICMPV6)}, AH: {"nh": int(IpProto.ICMPV6)}}  # router <-> router, under AH


def _hrd_flags(pkt: Packet) -> int:
    flags = 0
    if pkt.nar_mac is not None:
        flags |= HrdFlag.M
    if pkt.ncoa is not None:
        flags |= HrdFlag.C
    if any(isinstance(o, FmipOptPrincipal) for o in pkt.options):
        flags |= HrdFlag.S
    return flags


def _has(bit: int, field: str) -> Any:
    """Condition of a field the flags announce: the bit when the flags are set, else whether it has a value."""
    def cond(pkt: Packet) -> bool:
        if pkt.flags is None:
            return pkt.getfieldval(field) is not None
        return bool(int(pkt.flags) & bit)
    return cond


def _options_field() -> PacketListField:
    return PacketListField("options", [], FmipSubOption)


class FmipHandoverRedirect(FmipMessage):
    """Handover Redirect (HRD), PAR -> MN: Prefix Size, flags M|C|S, reserved, the NAR's address, [its
    EUI-64 if M], [the New CoA if C], sub-options."""

    name = "fmipfast Handover Redirect"
    KEY = "handover_redirect"
    overload_fields = _HOP255
    fields_desc = [
        *_HEADER,
        ByteField("prefix_size", 64),
        _AutoFlagsField("flags", _flag_names(HrdFlag), _hrd_flags),
        ShortField("reserved", 0),
        IP6Field("nar_address", "::"),
        ConditionalField(EUI64Field("nar_mac", None), _has(HrdFlag.M, "nar_mac")),
        ConditionalField(IP6Field("ncoa", None), _has(HrdFlag.C, "ncoa")),
        _options_field(),
    ]


class FmipHandover(FmipMessage):
    """ICMP Handover (HI), PAR -> NAR under AH: Prefix Size, flags M, reserved, the MN's New CoA, [the MN's
    EUI-64 if M], sub-options."""

    name = "fmipfast Handover"
    KEY = "handover"
    overload_fields = _UNDER_AH
    fields_desc = [
        *_HEADER,
        ByteField("prefix_size", 64),
        _AutoFlagsField("flags", _flag_names(HiFlag), lambda p: HiFlag.M if p.mn_mac is not None else 0),
        ShortField("reserved", 0),
        IP6Field("ncoa", "::"),
        ConditionalField(EUI64Field("mn_mac", None), _has(HiFlag.M, "mn_mac")),
        _options_field(),
    ]


class FmipHandoverError(FmipMessage):
    """Handover Error (HE), NAR -> PAR under AH: reserved, the New CoA, sub-options (Status, Identifier)."""

    name = "fmipfast Handover Error"
    KEY = "handover_error"
    overload_fields = _UNDER_AH
    fields_desc = [
        *_HEADER,
        IntField("reserved", 0),
        IP6Field("ncoa", "::"),
        _options_field(),
    ]


class _FmipOptionsOnly(FmipMessage):
    """The shape of HRA, AMN, Attach and Forwarding Disable: reserved (4), Length (2, the whole ICMPv6
    message in octets), sub-options."""

    fields_desc = [
        *_HEADER,
        IntField("reserved", 0),
        ShortField("length", None),
        _options_field(),
    ]

    def _fill_length(self, p: bytes) -> bytes:
        if self.length is None:
            if len(p) > 0xFFFF:
                raise ValueError(f"{self.name}: {len(p)} octets do not fit the 16-bit Length field")
            p = p[:8] + struct.pack("!H", len(p)) + p[10:]
        return p


class FmipHandoverRedirectAck(_FmipOptionsOnly):
    """Handover Redirect Ack (HRA), MN -> PAR: carries the AP-REQ for the NAR."""

    name = "fmipfast Handover Redirect Ack"
    KEY = "handover_redirect_ack"
    overload_fields = _HOP255


class FmipAuthenticatedMN(_FmipOptionsOnly):
    """Authenticated-MN (AMN), NAR -> MN: the AP-REP."""

    name = "fmipfast Authenticated MN"
    KEY = "authenticated_mn"
    overload_fields = _HOP255


class FmipAttach(_FmipOptionsOnly):
    """Attach, MN -> NAR: link-layer address, AP-REQ or MAC, the encapsulated Binding Update."""

    name = "fmipfast Attach"
    KEY = "attach"
    overload_fields = _HOP255


class FmipForwardingDisable(_FmipOptionsOnly):
    """Forwarding Disable, MN -> PAR after a link reversal."""

    name = "fmipfast Forwarding Disable"
    KEY = "forwarding_disable"
    overload_fields = _HOP255


#: Message key (as in :class:`~fmipfast.constants.Codepoints`) -> layer.
MESSAGE_LAYERS: dict[str, type[FmipMessage]] = {
    cls.KEY: cls
    for cls in (FmipHandoverRedirect, FmipHandoverRedirectAck, FmipHandover, FmipAuthenticatedMN, FmipAttach,
                FmipHandoverError, FmipForwardingDisable)
}


# ================================================================================================
# Binding to ICMPv6
# ================================================================================================


_MISSING = object()
#: What scapy's ICMPv6 tables held for a type before :func:`bind` took it, restored by :func:`unbind`.
_saved: dict[int, tuple[Any, Any]] = {}


def bind(codepoints: Codepoints = DEFAULT_CODEPOINTS) -> None:
    """Dissect ICMPv6 messages of ``codepoints.type`` as fmipfast messages, told apart by its codes, and
    build layers with that type and those codes (unless a layer sets them).

    Several types may be bound at once (each with its own codes); binding a type again replaces its codes.
    """
    if not isinstance(codepoints, Codepoints):
        raise TypeError(f"bind() needs a fmipfast.constants.Codepoints, got {type(codepoints).__name__}")
    t = codepoints.type
    if t not in _BOUND:
        _saved[t] = (_TYPE_LAYERS.get(t, _MISSING), _TYPE_MINLEN.get(t, _MISSING))
    _BOUND[t] = codepoints
    _build_profile[0] = codepoints
    _TYPE_LAYERS[t] = FmipMessage
    _TYPE_MINLEN[t] = 4  # the ICMPv6 header; the layers dissect whatever follows


def unbind(codepoints: Codepoints) -> None:
    """Undo :func:`bind` for ``codepoints``: scapy dissects its type as it did before (``Raw`` for 200), and
    layers are built with the profile bound before it (the default profile when none is left)."""
    t = codepoints.type
    if _BOUND.get(t) != codepoints:
        raise ValueError(f"{codepoints!r} is not bound")
    del _BOUND[t]
    for table, old in zip((_TYPE_LAYERS, _TYPE_MINLEN), _saved.pop(t)):
        if old is _MISSING:
            table.pop(t, None)
        else:
            table[t] = old
    if _build_profile[0] == codepoints:
        _build_profile[0] = next(reversed(_BOUND.values()), DEFAULT_CODEPOINTS)


def bound() -> dict[int, Codepoints]:
    """The bound profiles by ICMPv6 type (a copy)."""
    return dict(_BOUND)


bind_layers(AH, FmipMessage, nh=int(IpProto.ICMPV6))
bind()
