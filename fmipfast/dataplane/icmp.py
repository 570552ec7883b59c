"""The ICMPv6 messages the router originates: :class:`Emitter` builds and sends one (Neighbor Discovery,
Router Advertisements, echo replies, errors; counted ``originated``), and :class:`IcmpErrors` answers a
forwarded packet that cannot go on with the error RFC 4443 asks for, under a token bucket.

Ownership: the engine's thread calls both; the bucket is theirs alone (docs/conventions.md §3).

May import: frames, messages, ports, config, constants (tests/test_imports.py holds the rules).
"""

from __future__ import annotations

import struct
from ipaddress import IPv6Address

import numpy as np

from fmipfast import frames
from fmipfast.config import RouterConfig
from fmipfast.constants import Codepoints, IpProto
from fmipfast.dataplane.counters import ICMP_ERRORS_LIMITED, ICMP_ERRORS_SENT, ORIGINATED, Books
from fmipfast.dataplane.types import Interface, TokenBucket
from fmipfast.messages import IcmpError, Message
from fmipfast.ports import pack_frames

__all__ = ["Emitter", "IcmpErrors"]

_ICMPV6 = int(IpProto.ICMPV6)


class Emitter:
    """Sends the ICMPv6 messages the router originates on one of its interfaces."""

    def __init__(self, codepoints: Codepoints, books: Books) -> None:
        self.codepoints = codepoints
        self.books = books

    def send(self, iface: Interface, msg: Message, src: IPv6Address, dst: IPv6Address, dst_mac: bytes) -> None:
        frame = frames.icmp6_frame(msg, src, dst, iface.mac, bytes(dst_mac), codepoints=self.codepoints)
        iface.port.send(*pack_frames([frame]))
        self.books.now.c[ORIGINATED] += 1


class IcmpErrors:
    """ICMPv6 errors about forwarded packets (Destination Unreachable, Packet Too Big, Time Exceeded), at most
    ``icmp_error_rate`` per second with bursts of ``icmp_error_burst`` (RFC 4443 §2.4 (f))."""

    def __init__(self, cfg: RouterConfig, emit: Emitter, books: Books) -> None:
        self.emit = emit
        self.books = books
        self.bucket = TokenBucket(cfg.icmp_error_rate, cfg.icmp_error_burst, cfg.icmp_error_burst)

    def error(self, iface: Interface, arena: np.ndarray, offsets: np.ndarray, lengths: np.ndarray, i: int,
              kind: int, code: int, value: int, now: int, l3: int, upper: int, l4: int) -> None:
        """RFC 4443 §2.4 (e): never about an ICMPv6 error, a link-layer or IPv6 multicast destination, a
        multicast or unspecified source; rate-limited.  ``l3`` is where the frame's IPv6 header starts (after
        any VLAN tags), ``upper`` and ``l4`` the upper-layer protocol and where it starts, behind any extension
        headers (classify's ``l3_offset``, ``next_header``, ``l4_offset``: of a fragment, its payload's)."""
        o, n = int(offsets[i]), int(lengths[i])
        frame = np.asarray(arena[o:o + n]).tobytes()
        if l3 < 14 or len(frame) < l3 + 40 or frame[0] & 1:
            return
        src = IPv6Address(frame[l3 + 8:l3 + 24])
        if src.is_multicast or src.is_unspecified or IPv6Address(frame[l3 + 24:l3 + 40]).is_multicast:
            return
        if upper == _ICMPV6 and l3 + 40 <= l4 < len(frame) and frame[l4] < 128:
            return
        if not self.bucket.take(now):
            self.books.now.c[ICMP_ERRORS_LIMITED] += 1
            return
        plen = struct.unpack_from("!H", frame, l3 + 4)[0]
        err = IcmpError(kind, code, value, frame[l3:l3 + 40 + plen])
        self.emit.send(iface, err, iface.source, src, frame[6:12])
        self.books.now.c[ICMP_ERRORS_SENT] += 1
