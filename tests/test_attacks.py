"""Attacks from outside the router: what a host on the access link or on the core link can send, what a client
of the metrics endpoint can do, and what each must get -- a counted drop with its reason, no state, no frame
the router should not send, no resource held past its bound.

The in-memory tests run the router of ``tests/hostile_net.py`` (engine + RouterAgent, both roles, real
light-weight Kerberos and AH, a simulated clock) with its legitimate state built first (an attached MN, a NAR
handover in PROXYING, a PAR handover): an attack must not disturb it.
"""

from __future__ import annotations

import asyncio
import os
import socket
from ipaddress import IPv6Address

import pytest

from fmipfast import frames
from fmipfast.constants import DropReason, IpProto
from fmipfast.engine import solicited_node
from tests.hostile_net import (
    CN,
    EVIL,
    EVIL_MAC,
    MAC_ACC,
    MAC_PAR,
    MAC_UP,
    MN_COA,
    MN_MAC,
    NCOA,
    PAR_UP,
    ROUTER,
    ROUTER_LL,
    ROUTER_UP,
    World,
    echo,
    eth,
    icmp,
    icmp6_checksum,
    ipv6,
    link_local,
    na,
    ns,
    rs,
    slla,
    tlla,
    udp,
)

BCAST = b"\xff" * 6
MCAST_MAC = b"\x33\x33\x00\x00\x00\x01"
EVIL_LL = link_local(EVIL_MAC)
MN_LL = link_local(MN_MAC)
V4MAPPED = IPv6Address("::ffff:192.0.2.1")
_MOVED = ("forwarded", "tunnelled", "buffered", "queued_resolve", "delivered", "icmp_errors_sent", "originated")


def _mcast(group: str, src=EVIL) -> bytes:
    return eth(frames.multicast_mac(IPv6Address(group)), EVIL_MAC, udp(src, group))


def _tagged(frame: bytes, tags: int = 1) -> bytes:
    """``frame`` with ``tags`` IEEE 802.1Q tags (VLAN 5) after its MAC addresses."""
    return frame[:12] + b"\x81\x00\x00\x05" * tags + frame[12:]


def _tunnel_from_peer(inner: bytes) -> bytes:
    return eth(MAC_UP, MAC_PAR, ipv6(PAR_UP, ROUTER_UP, IpProto.IPV6, inner))


# (name, side, frame, reason): packets a router must not forward, whatever its tables say of the destination
# (a PROXY entry would buffer it, a TUNNEL entry tunnel it, the FIB's default route forward it)
NOT_FORWARDED = [
    # RFC 4291 §2.5.6: link-local source or destination never leaves its link
    ("link_local_source_upstream", "access", eth(MAC_ACC, EVIL_MAC, udp(EVIL_LL, CN)), "ADDRESS_NOT_FORWARDED"),
    ("link_local_destination_upstream", "access", eth(MAC_ACC, EVIL_MAC, udp(EVIL, "fe80::99")),
     "ADDRESS_NOT_FORWARDED"),
    ("link_local_source_to_the_mn", "core", eth(MAC_UP, MAC_PAR, udp("fe80::1", MN_COA)), "ADDRESS_NOT_FORWARDED"),
    ("link_local_source_to_a_proxied_ncoa", "core", eth(MAC_UP, MAC_PAR, udp("fe80::1", NCOA)),
     "ADDRESS_NOT_FORWARDED"),
    ("to_the_mns_link_local_address", "core", eth(MAC_UP, MAC_PAR, udp(CN, MN_LL)), "ADDRESS_NOT_FORWARDED"),
    ("link_local_source_inside_a_tunnel", "core", _tunnel_from_peer(udp("fe80::1", MN_COA)), "ADDRESS_NOT_FORWARDED"),
    # RFC 4291 §2.5.5.2: IPv4-mapped addresses are a socket API's, never a packet's on the wire
    ("v4_mapped_source", "access", eth(MAC_ACC, EVIL_MAC, udp(V4MAPPED, CN)), "ADDRESS_NOT_FORWARDED"),
    ("v4_mapped_destination", "access", eth(MAC_ACC, EVIL_MAC, udp(EVIL, V4MAPPED)), "ADDRESS_NOT_FORWARDED"),
    ("v4_mapped_source_to_the_mn", "core", eth(MAC_UP, MAC_PAR, udp(V4MAPPED, MN_COA)), "ADDRESS_NOT_FORWARDED"),
    # the router does no multicast routing: a multicast destination of wider scope than the link stays here
    ("site_multicast", "access", _mcast("ff05::1:3"), "ADDRESS_NOT_FORWARDED"),
    ("global_multicast", "access", _mcast("ff0e::101"), "ADDRESS_NOT_FORWARDED"),
    ("global_multicast_to_the_routers_mac", "access", eth(MAC_ACC, EVIL_MAC, udp(EVIL, "ff0e::101")),
     "ADDRESS_NOT_FORWARDED"),
    ("site_multicast_from_the_core", "core", eth(frames.multicast_mac(IPv6Address("ff05::1:3")), MAC_PAR,
                                                 udp(CN, "ff05::1:3")), "ADDRESS_NOT_FORWARDED"),
    # a unicast packet in a link-layer broadcast or multicast frame: every router on the link would forward it
    ("broadcast_frame_upstream", "access", eth(BCAST, EVIL_MAC, udp(EVIL, CN)), "LINK_MULTICAST_NOT_FORWARDED"),
    ("multicast_frame_upstream", "access", eth(MCAST_MAC, EVIL_MAC, udp(EVIL, CN)), "LINK_MULTICAST_NOT_FORWARDED"),
    ("broadcast_frame_to_the_mn", "core", eth(BCAST, MAC_PAR, udp(CN, MN_COA)), "LINK_MULTICAST_NOT_FORWARDED"),
    ("broadcast_frame_to_a_proxied_ncoa", "core", eth(BCAST, MAC_PAR, udp(CN, NCOA)), "LINK_MULTICAST_NOT_FORWARDED"),
    ("broadcast_frame_hop_limit_1", "access", eth(BCAST, EVIL_MAC, udp(EVIL, CN, hlim=1)),
     "LINK_MULTICAST_NOT_FORWARDED"),
    # the links are untagged: a tag kept on the way out would put the packet in a VLAN its sender chose
    ("tagged_frame_upstream", "access", _tagged(eth(MAC_ACC, EVIL_MAC, udp(EVIL, CN))), "VLAN_TAGGED"),
    ("double_tagged_frame_to_the_mn", "core", _tagged(eth(MAC_UP, MAC_PAR, udp(CN, MN_COA)), 2),
     "VLAN_TAGGED"),
    ("tagged_frame_to_a_proxied_ncoa", "core", _tagged(eth(MAC_UP, MAC_PAR, udp(CN, NCOA))), "VLAN_TAGGED"),
    ("tagged_frame_hop_limit_1", "access", _tagged(eth(MAC_ACC, EVIL_MAC, udp(EVIL, CN, hlim=1))),
     "VLAN_TAGGED"),
]


@pytest.mark.parametrize("name,side,frame,reason", NOT_FORWARDED, ids=[c[0] for c in NOT_FORWARDED])
def test_packets_a_router_never_forwards_are_dropped_under_their_reason(name, side, frame, reason):
    """Each is dropped and counted under ``reason``: nothing goes out (not forwarded, tunnelled, buffered for a
    later flush, resolved, nor answered with an ICMPv6 error), nothing is created, the books balance."""
    w = World()
    w.legit_state()
    before, c0 = w.snapshot(), dict(w.engine.counters)
    d0 = int(w.engine.drops[DropReason[reason]])
    w.inject(w.evil if side == "access" else w.evil_up, [frame])
    w.settle(3)
    w.check(before, 1, c0["received"])
    c = w.engine.counters
    assert {k: c[k] - c0[k] for k in _MOVED if c[k] != c0[k]} == {}
    assert int(w.engine.drops[DropReason[reason]]) == d0 + 1
    assert w.drain() == []


def test_the_same_addresses_still_reach_the_router_itself_and_ordinary_traffic_still_flows():
    """The refusals are about forwarding: an echo to the router's link-local address from a link-local source
    is answered, an ordinary packet upstream and one to the MN are forwarded."""
    w = World()
    w.legit_state()
    c0 = dict(w.engine.counters)
    w.inject(w.evil, [icmp(EVIL_LL, ROUTER_LL, echo()), eth(MAC_ACC, EVIL_MAC, udp(EVIL, CN))])
    w.inject(w.evil_up, [eth(MAC_UP, MAC_PAR, udp(CN, MN_COA))])
    c = w.engine.counters
    assert c["echo_replies"] - c0["echo_replies"] == 1
    assert c["forwarded"] - c0["forwarded"] == 2
    assert w.engine.conservation()["holds"]


def _icmp_error(src, dst, kind: int = 1) -> bytes:
    """An ICMPv6 error message (type ``kind``) quoting a packet of ``dst``'s to ``src``."""
    return icmp6_checksum(IPv6Address(src), IPv6Address(dst), bytes((kind, 0, 0, 0)) + bytes(4)
                          + udp(dst, src)[:48])


@pytest.mark.parametrize("ext", ["none", "destination_options", "hop_by_hop", "two_headers", "first_fragment"])
def test_no_icmpv6_error_answers_an_icmpv6_error_whatever_headers_come_first(ext):
    """RFC 4443 §2.4 (e.1): an ICMPv6 error is never sent about an ICMPv6 error -- the error message being the
    upper layer behind any extension headers, not only the IPv6 header's next header.  An error that would
    leave with hop limit 0 is dropped (HOP_LIMIT_EXCEEDED) and nothing is sent about it."""
    body = _icmp_error(EVIL, CN)
    dopt = bytes((58, 0, 1, 4)) + bytes(4)
    chain = {"none": (58, b""), "destination_options": (60, dopt), "hop_by_hop": (0, dopt),
             "two_headers": (0, bytes((60, 0, 1, 4)) + bytes(4) + dopt),
             "first_fragment": (44, bytes((58, 0, 0, 1)) + bytes(4))}[ext]
    w = World()
    w.legit_state()
    c0 = dict(w.engine.counters)
    d0 = int(w.engine.drops[DropReason.HOP_LIMIT_EXCEEDED])
    w.inject(w.evil, [eth(MAC_ACC, EVIL_MAC, ipv6(EVIL, CN, chain[0], chain[1] + body, hlim=1))])
    assert int(w.engine.drops[DropReason.HOP_LIMIT_EXCEEDED]) == d0 + 1
    assert w.engine.counters["icmp_errors_sent"] == c0["icmp_errors_sent"]
    assert w.drain() == []
    # the same chain carrying a datagram is answered with Time Exceeded: the test above can fail
    nh, headers = chain
    if headers:  # the last header's Next Header: UDP
        headers = headers[:-8] + bytes((IpProto.UDP,)) + headers[-7:]
    else:
        nh = IpProto.UDP
    w.inject(w.evil, [eth(MAC_ACC, EVIL_MAC, ipv6(EVIL, CN, nh, headers + udp(EVIL, CN)[40:], hlim=1))])
    assert w.engine.counters["icmp_errors_sent"] == c0["icmp_errors_sent"] + 1





def test_a_frame_whose_vlan_tag_the_kernel_stripped_is_dropped_before_the_node():
    """With VLAN offload the kernel takes the tag out of the frame and hands it beside it (the ring block's
    ``vlan_tci``): the frame the engine sees looks untagged.  It is another VLAN's all the same -- neither
    forwarded nor answered (an NS in it would teach the neighbor cache) -- and is dropped as VLAN_TAGGED; the
    untagged frames of the same block go on."""
    import numpy as np

    from fmipfast.ports import FrameBatch, pack_frames

    w = World()
    w.legit_state()
    before, c0 = w.snapshot(), dict(w.engine.counters)
    d0 = int(w.engine.drops[DropReason.VLAN_TAGGED])
    block = [eth(MAC_ACC, EVIL_MAC, udp(EVIL, CN)), icmp(EVIL, solicited_node(ROUTER), ns(ROUTER, slla())),
             eth(MAC_ACC, EVIL_MAC, udp(EVIL, CN, b"pass"))]
    arena, offsets, lengths = pack_frames(block)
    n = len(block)
    fb = FrameBatch(None, arena, offsets, lengths,
                    np.zeros(n, np.uint32), np.zeros(n, np.int64), vlan_tci=np.array([5, 5, 0xFFFFFFFF], np.uint32))
    w.engine.process(w.engine.interfaces[0], fb)
    w.check(before, n, c0["received"])
    assert int(w.engine.drops[DropReason.VLAN_TAGGED]) == d0 + 2
    assert [f[-4:] for f in w.drain(w.peer)] == [b"pass"]  # only the untagged datagram, forwarded
    assert w.drain(w.evil) == []  # no NA
    assert EVIL not in w.snapshot().neighbors



@pytest.mark.parametrize("solicited", [False, True])
def test_an_na_without_the_override_flag_never_changes_a_known_link_layer_address(solicited):
    """RFC 4861 §7.2.5: an NA with O clear whose target link-layer address differs from the entry's does not
    update it -- a REACHABLE entry becomes STALE, any other is left alone (a proxy answers with O clear, and
    must not take a host's traffic); with O set the address is updated."""
    from fmipfast.constants import NeighborState

    w = World()
    w.legit_state()
    w.inject(w.mn, [icmp(MN_COA, ROUTER, na(MN_COA, tlla(MN_MAC), flags=0x60), src_mac=MN_MAC)])  # S, O: REACHABLE
    assert w.snapshot().neighbors[MN_COA] == (NeighborState.REACHABLE, 0, MN_MAC)
    w.inject(w.evil, [icmp(EVIL, ROUTER, na(MN_COA, tlla(), flags=0x40 if solicited else 0))])
    assert w.snapshot().neighbors[MN_COA] == (NeighborState.STALE, 0, MN_MAC)
    w.inject(w.evil, [icmp(EVIL, ROUTER, na(MN_COA, tlla(), flags=0x40 if solicited else 0))])
    assert w.snapshot().neighbors[MN_COA] == (NeighborState.STALE, 0, MN_MAC)
    w.inject(w.mn, [icmp(MN_COA, ROUTER, na(MN_COA, tlla(MN_MAC), flags=0x40), src_mac=MN_MAC)])  # same address
    assert w.snapshot().neighbors[MN_COA] == (NeighborState.REACHABLE, 0, MN_MAC)
    w.inject(w.evil, [icmp(EVIL, ROUTER, na(MN_COA, tlla(), flags=0x20))])  # O set: RFC 4861 lets it override
    assert w.snapshot().neighbors[MN_COA] == (NeighborState.STALE, 0, EVIL_MAC)



def test_a_flood_of_spoofed_solicitations_leaves_room_for_an_mn_that_arrives_after_it():
    """NSs with a source link-layer option from a thousand spoofed sources, refreshed faster than the entries
    go stale, would fill the neighbor cache with entries nobody authenticated: an MN attaching after them got a
    session but no entry, and every datagram for it was dropped (NEIGHBOR_TABLE_FULL).  Learning from an
    unsolicited NS or RS stops at three quarters of the cache (counted ``nd_learn_limited``); the rest is the
    router's own resolution's: the router solicits the MN, its first datagram is queued, the MN answers, the
    datagram goes out to it."""
    from tests.hostile_net import NCACHE_CAPACITY, ns_frame

    w = World()
    for start in range(0, 1000, 200):
        w.inject(w.evil, [ns_frame(src=IPv6Address(int(EVIL) + 1 + start + i)) for i in range(200)])
    assert len(w.snapshot().neighbors) <= NCACHE_CAPACITY * 3 // 4
    assert w.engine.counters["nd_learn_limited"] > 0
    w.mn_ns()
    w.inject(w.mn, [w.attach_frame()])
    w.settle()
    assert MN_COA in w.agent.ar.sessions
    # the Authenticated-MN waits for the MN's address to be resolved: the router solicits it
    assert [f for f in w.drain(w.mn) if f[54] == 135 and IPv6Address(f[62:78]) == MN_COA]
    w.inject(w.peer, [eth(MAC_UP, MAC_PAR, udp(CN, MN_COA, b"first"))])
    assert w.engine.counters["queued_resolve"] == 1
    w.inject(w.mn, [icmp(MN_COA, ROUTER, na(MN_COA, tlla(MN_MAC), flags=0x60), src_mac=MN_MAC)])
    assert [f[-5:] for f in w.drain(w.mn) if f[:6] == MN_MAC and f[20] == IpProto.UDP] == [b"first"]
    assert w.engine.conservation()["holds"]


# ----------------------------------------------------------------------------- the router's own messages
def _fragment(body: bytes, offset_units: int, more: bool, *, src=EVIL, dst=ROUTER, hlim: int = 64,
              src_mac: bytes = EVIL_MAC) -> bytes:
    """``body`` (an ICMPv6 message, its checksum as computed for the whole message) behind a Fragment header
    of offset ``offset_units`` (8-octet units) and M flag ``more``."""
    header = bytes((IpProto.ICMPV6, 0)) + ((offset_units << 3) | int(more)).to_bytes(2, "big") + bytes(4)
    body = icmp6_checksum(IPv6Address(src), IPv6Address(dst), body)
    return eth(MAC_ACC, src_mac, ipv6(src, dst, IpProto.FRAGMENT, header + body, hlim=hlim))


_FRAGMENT_BODIES = {
    "ns_with_slla": ns(ROUTER_LL, slla()),
    "na_claiming_the_mn": na(MN_COA, tlla(), flags=0x20),
    "rs_with_slla": rs(slla()),
    "echo_request": echo(),
}


@pytest.mark.parametrize("kind", ["later_fragment", "first_fragment"])
@pytest.mark.parametrize("body", list(_FRAGMENT_BODIES))
def test_a_fragment_addressed_to_the_router_is_never_read_as_a_message(body, kind):
    """The router reassembles nothing, and classify validates only a whole packet's upper layer (RFC 4861's
    hop limit 255, checksum and options; RFC 6980's rule against fragmented ND sees only a first fragment's
    type): a fragment for the router -- a later one whose octets happen to read as an NA for the MN's address,
    sent from off the link with hop limit 64 -- is dropped (FRAGMENT_NOT_REASSEMBLED), answers nothing and
    teaches nothing: the MN's neighbor entry keeps the MN's MAC."""
    w = World()
    w.legit_state()
    before, c0 = w.snapshot(), dict(w.engine.counters)
    # a first fragment shows its ICMPv6 type: classify drops fragmented ND itself (RFC 6980 §5)
    reason = DropReason.ND_INVALID if kind == "first_fragment" and body != "echo_request" else \
        DropReason.FRAGMENT_NOT_REASSEMBLED
    d0 = int(w.engine.drops[reason])
    offset, more = (1, False) if kind == "later_fragment" else (0, True)
    w.inject(w.evil, [_fragment(_FRAGMENT_BODIES[body], offset, more)])
    w.settle(3)
    w.check(before, 1, c0["received"])
    assert int(w.engine.drops[reason]) == d0 + 1
    assert w.drain() == []
    assert w.snapshot().neighbors == before.neighbors
    c = w.engine.counters
    assert {k: c[k] - c0[k] for k in _MOVED if c[k] != c0[k]} == {}


def test_an_atomic_fragment_is_a_whole_packet_and_is_answered():
    """RFC 8200 §4.5 / RFC 6946: offset 0 and M clear is the whole packet: an echo request in one is answered."""
    w = World()
    w.legit_state()
    c0 = dict(w.engine.counters)
    w.inject(w.evil, [_fragment(echo(), 0, False)])
    assert w.engine.counters["echo_replies"] == c0["echo_replies"] + 1


def test_an_echo_request_with_a_bad_checksum_is_not_answered():
    """RFC 4443 §2.3: the receiver verifies the checksum; classify lets transit ICMPv6 through with
    ``checksum_ok`` false (the endpoint decides), but the router is the endpoint of its own echo requests."""
    w = World()
    w.legit_state()
    c0 = dict(w.engine.counters)
    d0 = int(w.engine.drops[DropReason.ICMP6_BAD_CHECKSUM])
    w.inject(w.evil, [icmp(EVIL, ROUTER, echo(), csum=False), icmp(EVIL, ROUTER_LL, echo(ident=9), csum=False)])
    assert w.engine.counters["echo_replies"] == c0["echo_replies"]
    assert int(w.engine.drops[DropReason.ICMP6_BAD_CHECKSUM]) == d0 + 2
    assert w.drain() == [] and w.engine.conservation()["holds"]


@pytest.mark.parametrize("group", ["ff02::1", "ff02::2", "solicited-node"])
@pytest.mark.parametrize("source", ["global", "link-local"])
def test_an_echo_request_to_a_group_is_answered_from_a_unicast_address_of_the_interface(group, source):
    """RFC 4443 §4.2: the reply to an echo request sent to a multicast address comes from a unicast address of
    the interface it arrived on (a multicast source is never valid, RFC 4291 §2.7): the link-local one to a
    link-local requester, else the interface's address."""
    w = World()
    w.legit_state()
    dst = str(solicited_node(ROUTER)) if group == "solicited-node" else group
    src = EVIL if source == "global" else EVIL_LL
    w.inject(w.evil, [icmp(src, dst, echo())])
    (reply,) = [f for f in w.drain(w.evil) if f[54] == 129]
    assert IPv6Address(reply[22:38]) == (ROUTER if source == "global" else ROUTER_LL)
    assert IPv6Address(reply[38:54]) == IPv6Address(src)




def _on_the_core_link(frame: bytes) -> bytes:
    """``frame`` (to the router's access MAC) as sent to its upstream MAC on the core link."""
    return MAC_UP + frame[6:]


def test_a_link_message_that_arrives_on_the_core_link_never_reaches_the_machine():
    """Attach, HRA and FD are the MN's, over its access link (hop limit 255 proves they come from a link, not
    which one): the MN's own valid Attach relayed onto the core link by a host there is counted
    (``not_access_link``), never verified, and attaches nothing; the same frame on the access link attaches."""
    from fmipfast.messages import ForwardingDisable, HandoverRedirectAck, Identifier, LkbMessage, MessageAuthCode
    from fmipfast.protocol import sign

    w = World()
    w.mn_ns()
    w.drain()
    attach = w.attach_frame()
    hra = HandoverRedirectAck((LkbMessage(b"\x01" * 40), Identifier(1), MessageAuthCode()))
    fd = ForwardingDisable((Identifier(1), MessageAuthCode()))
    signed = [eth(MAC_ACC, MN_MAC, ipv6(MN_COA, ROUTER, IpProto.ICMPV6, sign(m, bytes(32), MN_COA, ROUTER), 255))
              for m in (hra, fd)]
    before, c0 = w.snapshot(), dict(w.engine.counters)
    machine = dict(w.agent.ar.counters)
    w.inject(w.evil_up, [_on_the_core_link(f) for f in [attach] + signed])
    w.settle(5)
    w.check(before, 3, c0["received"])
    assert w.agent.counters["not_access_link"] == 3
    assert w.agent.ar.counters == machine  # the machine saw none of them: no verification was spent
    assert MN_COA not in w.agent.ar.sessions and w.drain() == []
    w.inject(w.mn, [attach])
    w.settle(5)
    assert MN_COA in w.agent.ar.sessions



def test_a_principal_name_from_the_wire_cannot_forge_or_colour_a_log_line(capsys):
    """An Attach whose ticket names a server principal with a newline and a terminal escape in it: the router
    refuses it (no key), and its failure note -- whose reason quotes the name -- is one log line in the text
    format, the newline and the escape written as escapes; the JSON format keeps the name as it came."""
    import json
    import logging

    from fmipfast.config import LoggingConfig
    from fmipfast.logsetup import setup_logging
    from fmipfast.messages import Attach, Identifier, LinkLayerAddress, LkbMessage, encode
    from fmipfast.routerd import log_router_note
    from fmipfast.security import lwkerb as L
    from tests.hostile_net import MN_EUI64, ROUTER_KEY, credentials

    forged = "host/nar\n2026-12-02 16:00:00,000 fmipfast.router INFO ar:attached\x1b[2J\u202e"
    w = World()
    w.mn_ns()
    creds = credentials(L.Principal(forged, "B.EXAMPLE"), ROUTER_KEY, w.epoch, seed=50)
    req = L.build_ap_req(creds, L.HandoverBinding(str(MN_COA), str(MN_COA), str(ROUTER), 1), now=w.epoch)[0]
    att = Attach((LinkLayerAddress(MN_EUI64), LkbMessage(req.encode()), Identifier(1)))
    w.inject(w.mn, [eth(MAC_ACC, MN_MAC, ipv6(MN_COA, ROUTER, IpProto.ICMPV6, encode(att, MN_COA, ROUTER), 255))])
    w.settle()
    (fail,) = [fields for what, fields in w.notes if what == "ar:fail"]
    assert forged in fail["reason"] and MN_COA not in w.agent.ar.sessions
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        setup_logging(LoggingConfig("info", "text"))
        capsys.readouterr()
        log_router_note("ar:fail", fail)
        text = capsys.readouterr().err
        setup_logging(LoggingConfig("info", "json"))
        log_router_note("ar:fail", fail)
        doc = capsys.readouterr().err
    finally:
        root.handlers[:], root.level = handlers, level
    assert text.count("\n") == 1 and "\x1b" not in text and "\u202e" not in text, text
    assert "host/nar\\x0a2026" in text and "\\x1b[2J" in text
    assert json.loads(doc)["reason"] == fail["reason"]


# ----------------------------------------------------------------------------- the real daemon
def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def _barrage(n: int, seed: int) -> list[bytes]:
    """``n`` hostile frames for the access link, from as many spoofed sources: NS, RS and NA with link-layer
    options (the neighbor cache's bound), fragments at random offsets to the router and upstream, datagrams
    to random addresses of the access prefix (resolutions), fmipfast messages of random codes and bodies,
    echo requests, and the transit packets a router never forwards."""
    import random
    import struct

    rnd = random.Random(seed)
    prefix = int(IPv6Address("2001:db8:2::"))
    out = []
    for i in range(n):
        src = IPv6Address(prefix + rnd.getrandbits(64))
        kind = i % 9
        if kind == 0:
            out.append(icmp(src, solicited_node(ROUTER), ns(ROUTER, slla(bytes((2, 0, 0)) + rnd.randbytes(3)))))
        elif kind == 1:
            out.append(icmp(src, "ff02::2", rs(slla())))
        elif kind == 2:
            out.append(icmp(src, "ff02::1", na(src, tlla(), flags=0x20)))
        elif kind == 3:
            offset = struct.pack("!H", rnd.getrandbits(16))
            out.append(eth(MAC_ACC, EVIL_MAC, ipv6(src, rnd.choice([ROUTER, CN]), IpProto.FRAGMENT,
                                                    bytes((rnd.choice([17, 58]), 0)) + offset + rnd.randbytes(
                                                        4 + rnd.randrange(64)))))
        elif kind == 4:
            out.append(eth(MAC_ACC, EVIL_MAC, udp(src, IPv6Address(prefix + rnd.getrandbits(32)))))
        elif kind == 5:
            out.append(icmp(src, ROUTER, bytes((200, rnd.randrange(10), 0, 0)) + rnd.randbytes(rnd.randrange(4, 100))))
        elif kind == 6:
            out.append(icmp(src, ROUTER, echo(data=rnd.randbytes(rnd.randrange(200)))))
        else:
            out.append(rnd.choice(_ACCESS_NOT_FORWARDED))
    return out


_ACCESS_NOT_FORWARDED = [f for _n, side, f, _r in NOT_FORWARDED if side == "access"]


_CORE_NOT_FORWARDED = [  # from the core link to a host the router knows on the access link (EVIL, learnt first)
    eth(MAC_UP, MAC_PAR, udp("fe80::1", EVIL)), eth(MAC_UP, MAC_PAR, udp(V4MAPPED, EVIL)),
    eth(MAC_UP, MAC_PAR, udp(CN, "fe80::99")), eth(BCAST, MAC_PAR, udp(CN, EVIL)),
    eth(MCAST_MAC, MAC_PAR, udp(CN, EVIL)), _tagged(eth(MAC_UP, MAC_PAR, udp(CN, EVIL))),
    _tunnel_from_peer(udp("fe80::1", EVIL)), eth(MAC_UP, MAC_PAR, udp(CN, "ff0e::101")),
]


def _core_barrage(n: int, seed: int) -> list[bytes]:
    """``n`` hostile frames for the core link: IPv6-in-IPv6 from non-peers and from the peer's address nested
    up to 8 deep, fmipfast messages without AH, fragments, datagrams to random addresses of the access prefix,
    the packets a router never forwards."""
    import random

    rnd = random.Random(seed)
    prefix = int(IPv6Address("2001:db8:2::"))
    out = []
    for i in range(n):
        src = IPv6Address(int(CN) + rnd.getrandbits(32))
        kind = i % 6
        if kind == 0:
            out.append(eth(MAC_UP, EVIL_MAC, ipv6(src, ROUTER_UP, IpProto.IPV6, udp(CN, EVIL))))
        elif kind == 1:
            packet = udp(CN, IPv6Address(prefix + rnd.getrandbits(16)))
            for _ in range(rnd.randrange(1, 9)):
                packet = ipv6(PAR_UP, ROUTER_UP, IpProto.IPV6, packet)
            out.append(eth(MAC_UP, MAC_PAR, packet))
        elif kind == 2:
            out.append(eth(MAC_UP, EVIL_MAC, ipv6(src, ROUTER, IpProto.ICMPV6, icmp6_checksum(
                src, ROUTER, bytes((200, rnd.randrange(10), 0, 0)) + rnd.randbytes(rnd.randrange(4, 100))))))
        elif kind == 3:
            out.append(eth(MAC_UP, EVIL_MAC, ipv6(src, rnd.choice([ROUTER, ROUTER_UP, EVIL]), IpProto.FRAGMENT,
                                                   bytes((rnd.choice([17, 58]), 0)) + rnd.randbytes(
                                                       6 + rnd.randrange(64)))))
        elif kind == 4:
            out.append(eth(MAC_UP, EVIL_MAC, udp(src, IPv6Address(prefix + rnd.getrandbits(32)))))
        else:
            out.append(rnd.choice(_CORE_NOT_FORWARDED))
    return out


def _sniff(ns_, dev: str) -> socket.socket:
    with ns_.enter():
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    s.bind((dev, 0))
    s.setblocking(False)
    return s


def _sniffed(s: socket.socket, from_mac: bytes) -> list[bytes]:
    """What ``s`` saw the router (``from_mac``) send, then closed."""
    import time

    time.sleep(0.2)
    got = []
    while True:
        try:
            f = s.recv(65536)
        except BlockingIOError:
            break
        if f[6:12] == from_mac:
            got.append(f)
    s.close()
    return got


def _daemon_barrage(tmp_path, frames_total: int, rss_growth_kib: int) -> None:
    from tests.test_hostile_link import _Daemon, _wait_received

    d = _Daemon(tmp_path)
    try:
        c = d.call("counters")
        # the router learns EVIL on the access link (its NS), so a packet for EVIL from the core would go out
        sent = d.send([icmp(EVIL, solicited_node(ROUTER), ns(ROUTER, slla()))])
        c = _wait_received(d, c["counters"]["received"] + sent)
        # the transit packets a router never forwards, then an ordinary datagram that is, on either link
        core_seen, access_seen = _sniff(d.h2, "h2e"), _sniff(d.h1, "h1e")
        sent = d.send(_ACCESS_NOT_FORWARDED + [_fragment(body, 1, False) for body in _FRAGMENT_BODIES.values()]
                      + [eth(MAC_ACC, EVIL_MAC, udp(EVIL, CN, b"pass"))])
        sent += d.send(_CORE_NOT_FORWARDED + [eth(MAC_UP, MAC_PAR, udp(CN, EVIL, b"pass"))], "core")
        c = _wait_received(d, c["counters"]["received"] + sent)
        for seen, mac in ((core_seen, d.macs["up0"]), (access_seen, d.macs["acc0"])):
            out = [f for f in _sniffed(seen, mac) if f[12:14] != b"\x86\xdd" or f[20] != IpProto.ICMPV6]
            assert [f[-4:] for f in out] == [b"pass"], out
        for reason in ("address_not_forwarded", "link_multicast_not_forwarded", "vlan_tagged",
                       "fragment_not_reassembled"):
            assert c["drops"].get(reason, 0) > 0, (reason, c["drops"])
        # a warm-up barrage on either link (the tables fill to their bounds), then the measured ones
        chunk = 20_000
        sent = d.send(_barrage(chunk, 1)) + d.send(_core_barrage(chunk // 4, 1), "core")
        c = _wait_received(d, c["counters"]["received"] + sent, 60)
        rss0 = _rss_kib(d.proc.pid)
        for k in range(max(1, frames_total // chunk)):
            sent = d.send(_barrage(chunk * 3 // 4, 2 + k)) + d.send(_core_barrage(chunk // 4, 2 + k), "core")
            c = _wait_received(d, c["counters"]["received"] + sent, 60)
        rss1 = _rss_kib(d.proc.pid)
        assert d.proc.poll() is None, d.tail()
        assert d.call("ping") == "pong"
        assert c["conservation"]["holds"], c["conservation"]
        assert rss1 - rss0 < rss_growth_kib, (rss0, rss1)
        assert c["drops"].get("neighbor_table_full", 0) > 0  # the cache was filled: its bound was met, not missed
        for reason in ("decap_not_from_peer", "decap_too_deep", "fmip_no_ah"):
            assert c["drops"].get(reason, 0) > 0, (reason, c["drops"])
    finally:
        summary = d.close()
    assert summary is not None and summary["conservation"]["holds"], summary


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces and AF_PACKET (CI runs as root)")
def test_the_daemon_forwards_none_of_it_and_a_barrage_leaves_its_memory_bounded(tmp_path):
    """The real ``fmipfast router`` (AF_PACKET rings, its agent with a keytab and an AH peer): none of the
    transit packets a router never forwards leaves on the other link, from either side (an ordinary datagram
    sent after them does), fragments for the router are dropped by name; then 60 000 hostile frames on both
    links (spoofed sources, tunnels from non-peers and nested from the peer's address, fmipfast messages
    without AH, fragments, scans) after a warm-up of 25 000: the daemon answers, its books balance, its
    resident memory grew by less than 4 MiB."""
    _daemon_barrage(tmp_path, 60_000, 4096)


@pytest.mark.slow
@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces and AF_PACKET (CI runs as root)")
def test_the_daemon_under_a_million_hostile_frames_long(tmp_path):
    """As above with 1 000 000 frames."""
    _daemon_barrage(tmp_path, 1_000_000, 4096)



# ----------------------------------------------------------------------------- the daemons' state files
_DEEP = [b"[" * 200_000, b'{"format": ' + b"[" * 200_000, b'{"a":' * 100_000]


def _state_readers():
    from fmipfast.router import load_sessions
    from fmipfast.security import ah
    from fmipfast.security.ccache import CredentialFileError, load_credentials

    return {"sessions": (load_sessions, ValueError), "ah_sequence": (ah.SequenceStore, ValueError),
            "credentials": (load_credentials, CredentialFileError)}


@pytest.mark.parametrize("deep", range(len(_DEEP)))
@pytest.mark.parametrize("reader", ["sessions", "ah_sequence", "credentials"])
def test_a_state_file_nested_past_the_parsers_depth_is_the_readers_own_error(tmp_path, reader, deep):
    """The router's saved sessions, its AH sequence store and the MN's credentials file are JSON a daemon reads
    at start (the MN's again whenever it changes): one nested deeper than the JSON parser recurses is the
    reader's documented error naming the file -- never a RecursionError out of the daemon's start or loop."""
    read, error = _state_readers()[reader]
    path = tmp_path / "state.json"
    path.write_bytes(_DEEP[deep])
    path.chmod(0o600)
    with pytest.raises(error) as info:
        read(str(path))
    assert str(path) in str(info.value)



def test_ctl_refuses_an_argument_nested_past_the_parsers_depth_in_one_line(tmp_path, capsys):
    """``fmipfast ctl --arg KEY=VALUE`` reads VALUE as JSON: one nested deeper than the parser recurses is a
    one-line refusal naming the argument, status 2, before anything is sent -- not a traceback."""
    from fmipfast.cli import main

    code = main(["ctl", "--socket", str(tmp_path / "none.sock"), "--arg", "pcoa=" + "[" * 100_000, "ping"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1 and "pcoa" in err, err


# ----------------------------------------------------------------------------- the metrics endpoint
def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_metrics_clients_that_never_read_are_cut_off_and_hold_nothing_after_the_timeout():
    """A scrape client that asks and never reads (a tiny receive window, a body larger than the kernel takes)
    holds its connection, its socket and the unsent body only until the endpoint's timeout: then the
    connection is aborted.  Twenty such clients in a row leave no socket open in the server, the ones beyond
    ``max_clients`` at a time are refused, and an ordinary scrape is still answered."""
    from fmipfast.metrics import MetricsServer

    async def scenario() -> tuple[int, dict, bytes]:
        loop = asyncio.get_running_loop()
        srv = MetricsServer(lambda: "x" * 4_000_000, "::1", 0, timeout=0.3, max_clients=4)
        await srv.start()
        base = _open_fds()
        clients = []
        try:
            for _ in range(20):
                s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
                s.setblocking(False)
                await loop.sock_connect(s, srv.address)
                await loop.sock_sendall(s, b"GET /metrics HTTP/1.1\r\n\r\n")
                clients.append(s)
                await asyncio.sleep(0.02)
            await asyncio.sleep(1.5)  # well past 2 x timeout (the reply's drain, then the close)
            held = _open_fds() - base - len(clients)
            srv.collect = lambda: "ok\n"
            reader, writer = await asyncio.open_connection("::1", srv.address[1])
            writer.write(b"GET /metrics HTTP/1.1\r\n\r\n")
            reply = await asyncio.wait_for(reader.read(), 5)
            writer.close()
            return held, dict(srv.counters), reply
        finally:
            for s in clients:
                s.close()
            await srv.close()

    held, counters, reply = asyncio.run(scenario())
    assert held <= 0, (held, counters)
    assert counters["scrapes"] >= 4 and counters["timeouts"] >= 4, counters
    assert reply.startswith(b"HTTP/1.1 200") and reply.endswith(b"ok\n")
