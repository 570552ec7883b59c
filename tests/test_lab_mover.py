"""The lab's layer-2 switch process (fmipfast.lab.namespaces.mover): its rtnetlink request, and the reading of
link notifications it shares with the MN agent (fmipfast.rtnetlink), on bytes -- well formed, and hostile
(short, overlong, zero-length messages)."""

from __future__ import annotations

import socket
import struct

from fmipfast import rtnetlink as rt
from fmipfast.lab.namespaces import mover

HDR = struct.Struct("=IHHII")
IFI = struct.Struct("=BxHiII")


def _link(mtype: int, index: int, flags: int, extra: bytes = b"") -> bytes:
    body = IFI.pack(socket.AF_UNSPEC, 1, index, flags, 0) + extra
    return HDR.pack(HDR.size + len(body), mtype, 0, 0, 0) + body


def test_link_request_sets_up_down_and_master():
    up = mover.link_request(7, 42, up=True)
    length, mtype, flags, seq, _ = HDR.unpack_from(up)
    assert (length, mtype, flags, seq) == (len(up), rt.RTM_SETLINK, rt.NLM_F_REQUEST | rt.NLM_F_ACK, 7)
    assert IFI.unpack_from(up, HDR.size) == (socket.AF_UNSPEC, 0, 42, rt.IFF_UP, rt.IFF_UP)
    down = mover.link_request(8, 42, up=False)
    assert IFI.unpack_from(down, HDR.size)[3:] == (0, rt.IFF_UP)  # IFF_UP cleared, and only it changes
    master = mover.link_request(9, 42, master=5)
    assert IFI.unpack_from(master, HDR.size)[3:] == (0, 0)  # the flags untouched
    assert master[HDR.size + IFI.size:] == struct.pack("=HHI", 8, rt.IFLA_MASTER, 5)
    assert mover.link_request(10, 42, master=0)[-4:] == bytes(4)  # nomaster


def test_parse_links_keeps_the_interfaces_notifications_and_survives_garbage():
    up = rt.IFF_UP | rt.IFF_LOWER_UP
    data = (_link(rt.RTM_NEWLINK, 3, up) + _link(rt.RTM_NEWLINK, 4, up, b"\x08\x00\x0a\x00\x05\x00\x00\x00")
            + _link(rt.RTM_DELLINK, 4, 0) + _link(24, 4, up))  # 24: a route message, not a link's
    assert rt.parse_links(data, 4) == [(rt.RTM_NEWLINK, up, 5), (rt.RTM_DELLINK, 0, None)]
    assert rt.parse_links(data, 9) == []
    assert rt.parse_links(b"", 4) == [] and rt.parse_links(b"\x00" * 15, 4) == []
    zero = HDR.pack(0, rt.RTM_NEWLINK, 0, 0, 0) + bytes(16)  # a zero length stops the walk
    assert rt.parse_links(zero + _link(rt.RTM_NEWLINK, 4, up), 4) == []
    overlong = bytearray(_link(rt.RTM_NEWLINK, 4, up))
    struct.pack_into("=I", overlong, 0, 4096)  # runs past the end
    assert rt.parse_links(bytes(overlong), 4) == []
    short = HDR.pack(HDR.size + 4, rt.RTM_NEWLINK, 0, 0, 0) + bytes(4)  # no room for an ifinfomsg
    assert rt.parse_links(short + _link(rt.RTM_NEWLINK, 4, up), 4) == [(rt.RTM_NEWLINK, up, None)]


def test_carrier_up_needs_both_flags_on_a_newlink():
    up = rt.IFF_UP | rt.IFF_LOWER_UP
    assert rt.carrier_up(rt.RTM_NEWLINK, up)
    assert not rt.carrier_up(rt.RTM_NEWLINK, rt.IFF_UP) and not rt.carrier_up(rt.RTM_NEWLINK, rt.IFF_LOWER_UP)
    assert not rt.carrier_up(rt.RTM_DELLINK, up)
