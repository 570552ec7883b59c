"""The rtnetlink message layouts the MN agent and the lab speak: their one home on the Python side.

Numbers and layouts of <linux/netlink.h> (``nlmsghdr``, the request flags, NLMSG_ERROR), <linux/rtnetlink.h>
(the link messages and their multicast group), <linux/if_link.h> (IFLA_MASTER) and <linux/if.h> (IFF_UP,
IFF_LOWER_UP), and the parser of the kernel's link notifications, which both the MN agent (its carrier) and
the lab's layer-2 switch (the instant the MN's link came up) read.  Input from the kernel is still parsed as
untrusted bytes: a message whose length is short or runs past the datagram stops the walk.

Imports nothing from fmipfast.
"""

from __future__ import annotations

import struct

__all__ = ["NLMSG_HDR", "IFINFOMSG", "RTA_HDR", "NLMSG_ERROR", "NLM_F_REQUEST", "NLM_F_ACK", "NLM_F_REPLACE",
           "NLM_F_CREATE", "RTMGRP_LINK", "RTM_NEWLINK", "RTM_DELLINK", "RTM_SETLINK", "IFLA_MASTER", "IFF_UP",
           "IFF_LOWER_UP", "parse_links", "link_messages", "link_master", "carrier_up"]

NLMSG_HDR = struct.Struct("=IHHII")  # nlmsghdr: len, type, flags, seq, pid
IFINFOMSG = struct.Struct("=BxHiII")  # ifinfomsg: family, pad, type, index, flags, change
RTA_HDR = struct.Struct("=HH")  # rtattr: len, type
NLMSG_ERROR = 2
NLM_F_REQUEST, NLM_F_ACK, NLM_F_REPLACE, NLM_F_CREATE = 0x1, 0x4, 0x100, 0x400
RTMGRP_LINK = 0x1
RTM_NEWLINK, RTM_DELLINK, RTM_SETLINK = 16, 17, 19
IFLA_MASTER = 10
IFF_UP, IFF_LOWER_UP = 0x1, 0x10000


def link_messages(data: bytes, ifindex: int) -> list[tuple[int, int, bytes]]:
    """(message type, ifi_flags, the message's attributes) of each RTM_NEWLINK/RTM_DELLINK for ``ifindex`` in
    the datagram ``data``, the attributes not walked (a link message carries some fifty of them: walking them
    in Python is most of the cost of reading a carrier change; :func:`link_master` does it when asked)."""
    out = []
    off = 0
    while off + NLMSG_HDR.size <= len(data):
        length, mtype, _flags, _seq, _pid = NLMSG_HDR.unpack_from(data, off)
        if length < NLMSG_HDR.size or off + length > len(data):
            break
        body = off + NLMSG_HDR.size
        if mtype in (RTM_NEWLINK, RTM_DELLINK) and length >= NLMSG_HDR.size + IFINFOMSG.size:
            _fam, _type, index, flags, _change = IFINFOMSG.unpack_from(data, body)
            if index == ifindex:
                out.append((mtype, flags, data[body + IFINFOMSG.size:off + length]))
        off += (length + 3) & ~3
    return out


def link_master(attrs: bytes) -> int | None:
    """IFLA_MASTER among a link message's attributes (:func:`link_messages`), or None."""
    master = None
    a = 0
    while a + RTA_HDR.size <= len(attrs):
        alen, atype = RTA_HDR.unpack_from(attrs, a)
        if alen < RTA_HDR.size:
            break
        if atype == IFLA_MASTER and alen >= 8 and a + 8 <= len(attrs):
            master = struct.unpack_from("=I", attrs, a + 4)[0]
        a += (alen + 3) & ~3
    return master


def parse_links(data: bytes, ifindex: int) -> list[tuple[int, int, int | None]]:
    """(message type, ifi_flags, IFLA_MASTER or None) of each RTM_NEWLINK/RTM_DELLINK for ``ifindex`` in the
    datagram ``data``."""
    return [(mtype, flags, link_master(attrs)) for mtype, flags, attrs in link_messages(data, ifindex)]


def carrier_up(mtype: int, flags: int) -> bool:
    """A link notification that says the link can carry frames: RTM_NEWLINK with IFF_UP and IFF_LOWER_UP."""
    return mtype == RTM_NEWLINK and bool(flags & IFF_UP) and bool(flags & IFF_LOWER_UP)
