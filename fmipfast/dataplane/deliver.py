"""Local delivery: the CONTROL frames of a block — addressed to the router or to an address it proxies — one
by one: the fmipfast messages to the protocol layer's hook (``Engine.control``), Neighbor Discovery to the
responder (fmipfast.dataplane.nd), echo requests answered; each frame counted ``delivered``, or dropped
under the reason its handler refused it for (CONTROL_ERROR if the handler failed).

Ownership: the engine's thread runs the stage; the hook runs on it too (docs/conventions.md §3).

May import: messages, ports, config, constants (tests/test_imports.py holds the rules).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from ipaddress import IPv6Address
from typing import TYPE_CHECKING

import numpy as np

from fmipfast.constants import Codepoints, DropReason, Icmp6Type, IpProto
from fmipfast.dataplane.counters import CONTROL_ERRORS, CONTROL_UNHANDLED, DELIVERED, ECHO_REPLIES, Books, Faults
from fmipfast.dataplane.icmp import Emitter
from fmipfast.dataplane.nd import Responder
from fmipfast.dataplane.types import ControlFrame, Interface, Refused
from fmipfast.errors import MalformedPacket
from fmipfast.messages import (
    EchoReply,
    EchoRequest,
    NeighborAdvertisement,
    NeighborSolicitation,
    RouterSolicitation,
    decode,
)

if TYPE_CHECKING:
    from fmipfast.backend import Batch

__all__ = ["LocalDelivery"]

_ICMPV6 = int(IpProto.ICMPV6)
_ND_FIRST, _ND_LAST = int(Icmp6Type.ROUTER_SOLICITATION), int(Icmp6Type.REDIRECT)  # RFC 4861 types 133-137


_FRAGMENT, _AH = int(IpProto.FRAGMENT), int(IpProto.AH)


def _fragment(frame: bytes, l3: int, l4: int) -> bool:
    """Whether the extension headers between the IPv6 header at ``l3`` and the upper layer at ``l4`` (as
    classify walked them: each inside the frame) hold a Fragment header of a packet in pieces -- an offset
    or the M flag (RFC 8200 §4.5; offset 0 with M clear is an atomic fragment, a whole packet)."""
    nh, pos = frame[l3 + 6], l3 + 40
    while pos + 8 <= l4:
        if nh == _FRAGMENT:
            if int.from_bytes(frame[pos + 2:pos + 4], "big") & 0xFFF9:
                return True
            size = 8
        elif nh == _AH:
            size = (frame[pos + 1] + 2) * 4
        else:
            size = (frame[pos + 1] + 1) * 8
        nh, pos = frame[pos], pos + size
    return False


class LocalDelivery:
    """The control stage of the pipeline.  ``control`` receives the fmipfast messages (the protocol layer of
    ``fmipfast.ar``); without it they are counted ``control_unhandled``."""

    def __init__(self, codepoints: Codepoints, responder: Responder, emit: Emitter, books: Books,
                 faults: Faults) -> None:
        self.codepoints = codepoints
        self.responder = responder
        self.emit = emit
        self.books = books
        self.faults = faults
        self.control: Callable[[ControlFrame], None] | None = None

    def stage(self, iface: Interface, arena: np.ndarray, offsets: np.ndarray, lengths: np.ndarray, b: Batch,
              sel: np.ndarray, now: int, inner: bool) -> None:
        """The CONTROL frames ``sel`` of a block, one by one; one frame's failure is that frame's drop."""
        for i in sel:
            try:
                if inner and (int(b.fmip_code[i]) or _ND_FIRST <= int(b.icmp_type[i]) <= _ND_LAST):
                    # a tunnel is not a link: hop limit 255 inside it proves nothing (RFC 4861 §7.1), and the
                    # outer source of a tunnel from a peer is only an address anyone on that link can write
                    raise Refused(DropReason.ND_INVALID if not int(b.fmip_code[i]) else DropReason.CONTROL_REJECTED)
                self.deliver(iface, arena, offsets, lengths, b, int(i), now)
            except Refused as refused:
                self.books.now.drop(refused.reason)
            except Exception as exc:  # noqa: BLE001 -- one frame's failure never stops the batch
                self.books.now.c[CONTROL_ERRORS] += 1
                self.books.now.drop(DropReason.CONTROL_ERROR)
                self.faults.log("control path", now, exc, interface=iface.name)
            else:
                self.books.now.c[DELIVERED] += 1

    def deliver(self, iface: Interface, arena: np.ndarray, offsets: np.ndarray, lengths: np.ndarray, b: Batch,
                i: int, now: int) -> None:
        """Frame ``i``: to the protocol hook, the ND responder or the echo responder."""
        o, n = int(offsets[i]), int(lengths[i])
        frame = np.asarray(arena[o:o + n]).tobytes()
        cf = ControlFrame(iface, frame, IPv6Address(bytes(b.src[i])), IPv6Address(bytes(b.dst[i])),
                          int(b.hop_limit[i]), bool(b.has_ah[i]), int(b.l3_offset[i]), int(b.l4_offset[i]),
                          int(b.icmp_type[i]), int(b.icmp_code[i]), int(b.fmip_code[i]), now)
        if cf.fmip_code:
            if self.control is not None:
                self.control(cf)
            else:
                self.books.now.c[CONTROL_UNHANDLED] += 1
            return
        if _fragment(frame, cf.l3_offset, cf.l4_offset):
            # only a whole packet's upper layer was validated by classify (hop limit, checksum, options); the
            # octets after a fragment header are part of a packet this router never reassembles
            raise Refused(DropReason.FRAGMENT_NOT_REASSEMBLED)
        if int(b.next_header[i]) != _ICMPV6:
            self.books.now.c[CONTROL_UNHANDLED] += 1
            return
        if not b.checksum_ok[i]:  # classify lets end-to-end ICMPv6 through with it false: here is its end
            raise Refused(DropReason.ICMP6_BAD_CHECKSUM)
        try:
            msg = decode(frame[cf.l4_offset:cf.l3_offset + 40 + struct.unpack_from("!H", frame, cf.l3_offset + 4)[0]],
                         codepoints=self.codepoints)
        except MalformedPacket:
            raise Refused(DropReason.CONTROL_REJECTED) from None
        if isinstance(msg, NeighborSolicitation):
            self.responder.on_ns(cf, msg)
        elif isinstance(msg, NeighborAdvertisement):
            self.responder.on_na(cf, msg)
        elif isinstance(msg, RouterSolicitation):
            self.responder.on_rs(cf, msg)
        elif isinstance(msg, EchoRequest):
            # RFC 4443 §4.2: the reply to a request sent to a group comes from a unicast address of the interface
            src = cf.dst
            if src.is_multicast:
                src = iface.link_local if cf.src.is_link_local else iface.source
            self.emit.send(iface, EchoReply(msg.identifier, msg.sequence, msg.data), src, cf.src, frame[6:12])
            self.books.now.c[ECHO_REPLIES] += 1
        else:
            self.books.now.c[CONTROL_UNHANDLED] += 1
