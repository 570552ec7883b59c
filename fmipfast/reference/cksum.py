"""Internet checksums for ICMPv6 and other IPv6 upper layers: the readable oracle of ``_kernels/cksum.pxi``.

Implements
  * RFC 1071 §1 and §4.1: the 16-bit one's-complement sum of big-endian words, an odd trailing octet padded
    with a zero octet, folded with end-around carry and complemented;
  * RFC 8200 §8.1: the IPv6 pseudo-header (source, destination, 32-bit upper-layer packet length, three
    zero octets, next header) that every upper-layer checksum covers, and the UDP rule that a computed
    zero is sent as 0xFFFF;
  * RFC 4443 §2.3: the ICMPv6 checksum (next header 58, checksum field at octet 2 counted as zero).

The draft's messages (draft-koodli-mobileip-fastv6-02 §5-§7) are ICMPv6 messages, so every one of them is
checksummed and verified here.  Speed does not matter in this module; clarity does (docs/conventions.md §4).

The helpers ``_octets`` and ``_need`` are shared with ``reference/derive.py`` so both modules accept the
same bytes-like inputs and word their length errors the same way as the compiled core.
"""

from __future__ import annotations

import operator
from typing import Any

from fmipfast.constants import ADDR_LEN, ICMP6_HDR_LEN, IpProto

__all__ = [
    "icmp6_checksum",
    "icmp6_checksum_fill",
    "icmp6_checksum_ok",
    "internet_checksum",
    "upper_layer_checksum",
]

_ADDR_LEN = ADDR_LEN
_ICMPV6 = int(IpProto.ICMPV6)
_UDP = int(IpProto.UDP)
_ICMP6_HDR_LEN = ICMP6_HDR_LEN  # type, code, checksum
_ICMP6_CKSUM_OFFSET = 2  # RFC 4443 §2.1: checksum is octets 2-3 of the ICMPv6 header
_MAX_UPPER_LEN = 0xFFFFFFFF  # RFC 8200 §8.1: the pseudo-header length field is 32 bits


def _octets(data: Any) -> memoryview:
    """View any bytes-like object as a 1-D, C-contiguous run of unsigned octets.

    Mirrors what the compiled core's ``const uint8_t[::1]`` argument accepts: an object without the
    buffer protocol (``str``, ``int``, ``None``) is a ``TypeError``; a buffer that is not one-dimensional,
    not contiguous or not made of unsigned octets is a ``ValueError``.
    """
    view = memoryview(data)  # TypeError for objects without the buffer protocol
    if view.ndim != 1:
        raise ValueError(f"Buffer has wrong number of dimensions (expected 1, got {view.ndim})")
    if view.format.lstrip("@=<>!") != "B":
        raise ValueError(f"Buffer dtype mismatch, expected unsigned octets but got format {view.format!r}")
    if not view.c_contiguous:
        raise ValueError("Buffer not C contiguous.")
    return view


def _need(view: memoryview, name: str, size: int) -> None:
    """``ValueError`` naming the argument and the length found unless ``len(view) == size``."""
    if len(view) != size:
        raise ValueError(f"{name}: need {size} octets, got {len(view)}")


def _index(value: Any, name: str, low: int, high: int) -> int:
    """An integer argument in ``low..high`` (``TypeError`` for non-integers, ``ValueError`` outside)."""
    value = operator.index(value)
    if not low <= value <= high:
        raise ValueError(f"{name} must be in {low}..{high}, got {value}")
    return value


def _sum16(data: bytes | bytearray | memoryview) -> int:
    """RFC 1071 §1: the plain sum of the big-endian 16-bit words of ``data`` (odd tail padded with zero)."""
    raw = bytes(data)
    if len(raw) % 2:
        raw += b"\x00"
    return sum(int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2))


def _fold(total: int) -> int:
    """RFC 1071 §1: fold carries back into the low 16 bits (end-around carry) until none are left."""
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def _pseudo_header(src: memoryview, dst: memoryview, length: int, next_header: int) -> bytes:
    """RFC 8200 §8.1 pseudo-header: src(16) dst(16) upper-layer length(4) zero(3) next header(1)."""
    return bytes(src) + bytes(dst) + length.to_bytes(4, "big") + b"\x00\x00\x00" + bytes([next_header])


def _addresses(s: memoryview, d: memoryview) -> None:
    _need(s, "src", _ADDR_LEN)
    _need(d, "dst", _ADDR_LEN)


def _message(m: memoryview, name: str = "message") -> None:
    if len(m) < _ICMP6_HDR_LEN:
        raise ValueError(f"{name}: need at least {_ICMP6_HDR_LEN} octets, got {len(m)}")
    if len(m) > _MAX_UPPER_LEN:
        raise ValueError(f"{name}: {len(m)} octets exceed the 32-bit upper-layer length")


def internet_checksum(data: Any) -> int:
    """RFC 1071 Internet checksum of ``data``: the complement of the folded one's-complement sum.

    Parameters
    ----------
    data : bytes-like
        Any number of octets; an odd trailing octet is padded with a zero octet.

    Returns
    -------
    int
        The 16-bit checksum (0xFFFF for empty input).
    """
    return ~_fold(_sum16(_octets(data))) & 0xFFFF


def upper_layer_checksum(src: Any, dst: Any, next_header: Any, payload: Any, checksum_offset: Any) -> int:
    """Checksum of an IPv6 upper-layer packet over the RFC 8200 §8.1 pseudo-header.

    Parameters
    ----------
    src, dst : bytes-like, 16 octets
        IPv6 source and (final) destination address.
    next_header : int
        Upper-layer protocol number, 0..255.
    payload : bytes-like
        The upper-layer packet; its length is the pseudo-header's 32-bit length (may exceed 65535).
    checksum_offset : int
        Offset of the packet's own 16-bit checksum field, whose two octets are counted as zero;
        ``0 <= checksum_offset <= len(payload) - 2``.

    Returns
    -------
    int
        The checksum to store.  For UDP (17) a computed 0 is returned as 0xFFFF (RFC 8200 §8.1).

    Raises
    ------
    ValueError
        Wrong address lengths, ``next_header`` outside 0..255, ``checksum_offset`` out of range, or a
        payload longer than the 32-bit length field.
    """
    # Every buffer is converted before any check, the order in which the compiled core's typed
    # arguments are converted; then the checks run in argument order.
    s, d, p = _octets(src), _octets(dst), _octets(payload)
    _addresses(s, d)
    nh = _index(next_header, "next_header", 0, 255)
    if len(p) > _MAX_UPPER_LEN:
        raise ValueError(f"payload: {len(p)} octets exceed the 32-bit upper-layer length")
    off = operator.index(checksum_offset)
    if not 0 <= off <= len(p) - 2:
        raise ValueError(
            f"checksum_offset {off} out of range for a {len(p)}-octet payload (need 0 <= offset <= len - 2)"
        )
    body = bytearray(p)
    body[off : off + 2] = b"\x00\x00"  # the field being computed counts as zero
    total = _sum16(_pseudo_header(s, d, len(p), nh)) + _sum16(body)
    checksum = ~_fold(total) & 0xFFFF
    if nh == _UDP and checksum == 0:
        checksum = 0xFFFF  # RFC 8200 §8.1: a UDP checksum of zero means "none", so send all ones
    return checksum


def icmp6_checksum(src: Any, dst: Any, message: Any) -> int:
    """RFC 4443 §2.3 checksum of an ICMPv6 ``message`` (its octets 2-3 are counted as zero).

    Parameters
    ----------
    src, dst : bytes-like, 16 octets
        The IPv6 source and destination of the packet carrying the message.
    message : bytes-like, at least 4 octets
        The ICMPv6 message from its Type octet to its end.

    Returns
    -------
    int
        The 16-bit checksum.

    Raises
    ------
    ValueError
        Wrong address lengths or a message shorter than the 4-octet ICMPv6 header.
    """
    s, d, m = _octets(src), _octets(dst), _octets(message)
    _addresses(s, d)
    _message(m)
    return upper_layer_checksum(s, d, _ICMPV6, m, _ICMP6_CKSUM_OFFSET)


def icmp6_checksum_ok(src: Any, dst: Any, message: Any) -> bool:
    """True iff ``message``'s stored checksum verifies (RFC 4443 §2.3, RFC 1071 §2(A) verification).

    The one's-complement sum over the pseudo-header and the whole message, checksum field included,
    must fold to 0xFFFF.  A stored 0x0000 and a stored 0xFFFF are both accepted wherever the
    arithmetic makes them equivalent (they are the two zeros of one's complement).

    Raises
    ------
    ValueError
        Wrong address lengths or a message shorter than 4 octets.
    """
    s, d, m = _octets(src), _octets(dst), _octets(message)
    _addresses(s, d)
    _message(m)
    return _fold(_sum16(_pseudo_header(s, d, len(m), _ICMPV6)) + _sum16(m)) == 0xFFFF


def icmp6_checksum_fill(src: Any, dst: Any, buf: Any) -> int:
    """Compute the ICMPv6 checksum of ``buf`` and store it big-endian in ``buf[2:4]``, in place.

    Parameters
    ----------
    src, dst : bytes-like, 16 octets
    buf : writable bytes-like (bytearray, writable memoryview, numpy uint8), at least 4 octets

    Returns
    -------
    int
        The checksum written.

    Raises
    ------
    TypeError
        ``buf`` is read-only (``bytes``, a read-only memoryview).
    ValueError
        Wrong address lengths or a message shorter than 4 octets.
    """
    s, d = _octets(src), _octets(dst)
    b = _octets(buf)
    if b.readonly:
        raise TypeError("buf: read-only buffer; icmp6_checksum_fill writes the checksum in place")
    _addresses(s, d)
    _message(b, "buf")
    checksum = icmp6_checksum(s, d, b)
    b[_ICMP6_CKSUM_OFFSET : _ICMP6_CKSUM_OFFSET + 2] = checksum.to_bytes(2, "big")
    return checksum
