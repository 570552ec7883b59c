""":func:`encode` and :func:`decode` of every message in :mod:`fmipfast.messages` as an ICMPv6 message (RFC 4443
§2.1 header, §2.3 checksum over the pseudo-header): the one dispatch from ICMPv6 type and Code to class
(docs/conventions.md §5) over :mod:`.fmipv6` and :mod:`.nd`, the MAC sub-option locators
:func:`mac_value_offset` and :func:`mac_offset_of` (the MAC of docs/design.md §2) and :func:`refill_checksum`.
The codec depends on the message modules; none of them imports it.

"The module docstring" in the docstrings below is the package's (``fmipfast/messages/__init__.py``):
it states the exception contract every parser here keeps.
"""

from __future__ import annotations

import struct
from typing import Any

from fmipfast import backend
from fmipfast.constants import (
    ADDR_LEN,
    DEFAULT_CODEPOINTS,
    EUI64_LEN,
    ICMP6_HDR_LEN,
    SUBOPT_HDR_LEN,
    Codepoints,
    Icmp6Type,
    SubOptType,
)
from fmipfast.errors import BadChecksum, InvalidField, MalformedPacket, Truncated, UnsupportedType
from fmipfast.messages.base import MAX_MESSAGE_LEN, AddressLike, Message, _addr, _set
from fmipfast.messages.fmipv6 import MESSAGE_CLASSES, FmipMessage, HandoverError, HandoverRedirect, IcmpHandover
from fmipfast.messages.nd import _PLAIN_CLASSES, IcmpError, PlainIcmp
from fmipfast.messages.suboptions import iter_suboptions


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
    for opt_type, offset, _value in iter_suboptions(raw, start):
        if opt_type == SubOptType.MAC:
            return offset + SUBOPT_HDR_LEN
    return None


def mac_offset_of(message: FmipMessage, raw: bytes | bytearray) -> int | None:
    """:func:`mac_value_offset` for ``raw`` whose decoded (or about to be encoded) ``message`` is at hand: the
    sub-options are walked from where ``message``'s fixed part ends, without decoding ``raw`` again (a
    receiver has just decoded it; a sender has just encoded it)."""
    for opt_type, offset, _value in iter_suboptions(bytes(raw), _options_start(message)):
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
