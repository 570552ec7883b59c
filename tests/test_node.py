"""The forwarding node: the compiled ``Node`` against its pure-Python reference, output for output, on blocks
mixing every verdict, handover state and table miss; its edges (stale table values, foreign batches, wrong
arguments) and what it does to the frames it forwards, checked against an independent reading of the bytes."""

from __future__ import annotations

import struct
from ipaddress import IPv6Address

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy import all as scapy  # a test dependency: an independent reading of the node's frames

from fmipfast import reference as ref
from fmipfast.constants import Action, DropReason, EngineCounter, IpProto, NeighborFlag, NeighborState
from fmipfast.frames import build_ethernet, build_ipv6
from fmipfast.ports import pack_frames
from fmipfast.reference.node import NODE_STATS, TP_STATUS_CSUMNOTREADY
from tests.conftest import HAVE_CORE

IMPLS = [pytest.param(ref, id="reference")]
if HAVE_CORE:
    from fmipfast import _core

    IMPLS.append(pytest.param(_core, id="core"))

SEED = bytes(range(16))
MACS = [bytes([2, 0, 0, 0, 0, k]) for k in range(3)]  # the router's interfaces
OTHER_MAC = bytes([2, 0, 0, 0, 0, 0x77])
PEER = IPv6Address("2001:db8:ffff::1")
ROUTER = IPv6Address("2001:db8:1::1")

# neighbor entries: (address, flags, state, ifindex, entry_key, entry_peer)
ENTRIES = [
    (ROUTER, NeighborFlag.LOCAL | NeighborFlag.STATIC, NeighborState.REACHABLE, 0, -1, -1),
    (IPv6Address("2001:db8:1::10"), 0, NeighborState.REACHABLE, 0, -1, -1),  # an on-link host
    (IPv6Address("2001:db8:1::11"), 0, NeighborState.INCOMPLETE, 0, -1, -1),  # being resolved
    (IPv6Address("2001:db8:1::12"), NeighborFlag.TUNNEL, NeighborState.STALE, 0, -1, 3),  # PAR mid-handover
    (IPv6Address("2001:db8:1::13"), NeighborFlag.PROXY, NeighborState.INCOMPLETE, 0, 7, -1),  # NAR proxy
    (IPv6Address("2001:db8:1::14"), NeighborFlag.PROXY, NeighborState.INCOMPLETE, 0, -1, -1),  # U flag clear
    (IPv6Address("2001:db8:1::15"), NeighborFlag.HOLD, NeighborState.REACHABLE, 0, 9, -1),  # route switch
    (IPv6Address("2001:db8:2::1"), NeighborFlag.ROUTER | NeighborFlag.STATIC, NeighborState.REACHABLE, 1, -1, -1),
    (IPv6Address("2001:db8:1::16"), 0, NeighborState.REACHABLE, 2, -1, -1),  # a host on interface 2
    (IPv6Address("2001:db8:1::17"), 0, NeighborState.REACHABLE, 9, -1, -1),  # an ifindex past the interfaces
    (IPv6Address("2001:db8:1::18"), NeighborFlag.TUNNEL, NeighborState.STALE, 0, -1, 0),  # NAR behind no entry
    (IPv6Address("2001:db8:1::19"), NeighborFlag.TUNNEL, NeighborState.STALE, 0, -1, 1),  # NAR without a route
    (IPv6Address("2001:db8:1::1a"), NeighborFlag.TUNNEL, NeighborState.STALE, 0, -1, 7),  # peer past the table
    (IPv6Address("2001:db8:1::1b"), NeighborFlag.TUNNEL, NeighborState.STALE, 0, -1, 2),  # NAR on interface 0
    (IPv6Address("2001:db8:1::1c"), NeighborFlag.PROXY, NeighborState.INCOMPLETE, 0, 20, -1),  # key past the buffer
    (IPv6Address("2001:db8:1::1d"), NeighborFlag.PROXY, NeighborState.INCOMPLETE, 0, 3, -1),  # a second MN
]
#: the NARs the node tunnels to (``entry_peer`` rows): behind an unresolved router, without a route, resolved
#: through the upstream router (interface 1), on-link on interface 0 (MTU 1280)
TUNNEL_PEERS = [IPv6Address("2001:db8:200::9"), IPv6Address("2001:db9::5"), IPv6Address("2001:db8:1::16"),
                IPv6Address("2001:db8:100::7")]
TUNNEL_SOURCES = [IPv6Address("2001:db8:1::1"), IPv6Address("2001:db8:2::2"), IPv6Address("2001:db8:3::3")]
TUNNEL_MTUS = [1280, 1500, 1500]
BUFFER_KEYS = 16
#: each interface's MTU (Node.set_mtus)
LINK_MTUS = [1500, 1280, 1300]
# routes: (prefix, length, interface, via or None)
ROUTES = [
    ("2001:db8:1::", 64, 0, None),
    ("2001:db8:2::", 64, 1, None),
    ("2001:db8:100::", 40, 1, IPv6Address("2001:db8:2::1")),  # via a resolved router
    ("2001:db8:200::", 48, 2, IPv6Address("2001:db8:3::99")),  # via a router without an entry
    ("2001:db8:100:8000::", 50, 2, IPv6Address("2001:db8:1::16")),
]
DESTINATIONS = [e[0] for e in ENTRIES] + [
    IPv6Address("2001:db8:1::99"),  # on-link, no entry
    IPv6Address("2001:db8:100::5"), IPv6Address("2001:db8:100:8000::5"), IPv6Address("2001:db8:200::5"),
    IPv6Address("2001:db9::1"),  # no route
    IPv6Address("ff02::1"), IPv6Address("ff05::2"),
    IPv6Address("fe80::99"), IPv6Address("::ffff:192.0.2.7"),  # never forwarded
]
SOURCES = [IPv6Address("2001:db8:50::1"), PEER, IPv6Address("fe80::1"), IPv6Address("2001:db8:1::10"),
           IPv6Address("::ffff:192.0.2.1")]


def handover_world(impl, node, *, slot_size=128, per_key_packets=3, slots=8):
    """The node finishing BUFFER and TUNNEL itself: a small buffer (so blocks meet its caps) and a tunnel."""
    buffer = impl.PacketBuffer(slots=slots, slot_size=slot_size, max_keys=BUFFER_KEYS,
                               per_key_packets=per_key_packets, per_key_bytes=1 << 16, lifetime_ns=10**9)
    node.set_buffer(buffer)
    node.set_tunnel(np.array([list(a.packed) for a in TUNNEL_SOURCES], np.uint8), np.array(TUNNEL_MTUS, np.uint32),
                    hop_limit=61)
    node.set_tunnel_peers(np.array([list(a.packed) for a in TUNNEL_PEERS], np.uint8))
    return buffer


def world(impl):
    nc = impl.NeighborCache(64, seed=SEED)
    for addr, flags, state, ifindex, _k, _p in ENTRIES:
        nc.insert(np.frombuffer(addr.packed, np.uint8).reshape(1, 16),
                  np.frombuffer(bytes([0xAA, 0, 0, 0, 0, ifindex + len(addr.packed) % 7]), np.uint8).reshape(1, 6),
                  np.array([state], np.uint8), flags=np.array([int(flags)], np.uint8),
                  ifindex=np.array([ifindex], np.uint32))
    prefixes = np.array([list(IPv6Address(p).packed) for p, *_ in ROUTES], dtype=np.uint8)
    fib = impl.Fib(prefixes, np.array([r[1] for r in ROUTES], np.uint8), np.arange(len(ROUTES), dtype=np.int32),
                   seed=SEED)
    node = impl.Node(nc, 64, 3)
    node.set_interfaces(np.array([list(m) for m in MACS], np.uint8))
    via = np.zeros((len(ROUTES), 16), np.uint8)
    for k, r in enumerate(ROUTES):
        if r[3] is not None:
            via[k] = np.frombuffer(r[3].packed, np.uint8)
    node.set_routes(fib, np.array([r[2] for r in ROUTES], np.int32), via,
                    np.array([r[3] is not None for r in ROUTES], np.uint8))
    node.set_peers(np.frombuffer(PEER.packed, np.uint8).reshape(1, 16))
    node.set_mtus(np.array(LINK_MTUS, np.uint32))  # the "big" frames cross the last two
    for addr, _f, _s, _i, key, peer in ENTRIES:
        e = int(nc.lookup(np.frombuffer(addr.packed, np.uint8).reshape(1, 16))[0])
        node.entry_key[e] = key
        node.entry_peer[e] = peer
    return nc, fib, node


def udp(src, dst, hop=64, payload=b"x" * 12, bad_sum=False):
    body = struct.pack("!HHHH", 4000, 5000, 8 + len(payload), 0x1234 if bad_sum else 0) + payload
    return build_ipv6(src, dst, IpProto.UDP, body, hop_limit=hop)


@st.composite
def inner_packet(draw):
    """What a peer's tunnel carries: mostly data for any destination, also hop limits that expire, the
    router's own ND, another level of tunnel, and packets decapsulation or classify refuse."""
    kind = draw(st.sampled_from(["udp", "udp", "udp", "hop", "ns", "nested", "short", "bad_version"]))
    src, dst = draw(st.sampled_from(SOURCES)), draw(st.sampled_from(DESTINATIONS))
    if kind == "udp":
        return udp(src, dst, 64, draw(st.binary(max_size=24)))
    if kind == "hop":
        return udp(src, dst, draw(st.sampled_from([0, 1, 2])))
    if kind == "ns":
        return build_ipv6(src, dst, IpProto.ICMPV6, bytes([135, 0, 0, 0]) + bytes(20), hop_limit=255)
    if kind == "nested":
        return build_ipv6(PEER, ROUTER, IpProto.IPV6, udp(src, dst, 64), hop_limit=64)
    pkt = bytearray(udp(src, dst, 64))
    if kind == "short":  # a payload length past the packet
        pkt[4:6] = (len(pkt) - 20).to_bytes(2, "big")
    else:
        pkt[0] = 0x50
    return bytes(pkt)


@st.composite
def frame(draw):
    kind = draw(st.sampled_from(["udp", "udp", "echo", "tunnel", "peer", "peer", "mh", "tcp", "garbage", "ns",
                                 "big"]))
    src = draw(st.sampled_from(SOURCES))
    dst = draw(st.sampled_from(DESTINATIONS))
    hop = draw(st.sampled_from([0, 1, 2, 64, 255]))
    if kind == "udp":
        pkt = udp(src, dst, hop, draw(st.binary(max_size=40)))
    elif kind == "big":  # past a slot of the test's buffer; past the 1280 MTU once encapsulated
        pkt = udp(src, dst, hop, bytes(draw(st.integers(1180, 1300))))
    elif kind == "tcp":
        pkt = build_ipv6(src, dst, IpProto.TCP, bytes(20) + draw(st.binary(max_size=20)), hop_limit=hop)
    elif kind == "echo":
        body = bytes([128, 0, 0, 0]) + draw(st.binary(max_size=16))
        from fmipfast import reference
        pkt = bytearray(build_ipv6(src, dst, IpProto.ICMPV6, body, hop_limit=hop))
        pkt[42:44] = reference.icmp6_checksum(pkt[8:24], pkt[24:40], bytes(pkt[40:])).to_bytes(2, "big")
        pkt = bytes(pkt)
    elif kind == "tunnel":
        inner = draw(inner_packet())
        pkt = build_ipv6(draw(st.sampled_from([PEER, src])), draw(st.sampled_from([ROUTER, dst])), IpProto.IPV6,
                         inner, hop_limit=hop)
    elif kind == "peer":  # a peer's tunnel to the router: decapsulated
        pkt = build_ipv6(PEER, ROUTER, IpProto.IPV6, draw(inner_packet()), hop_limit=hop)
    elif kind == "mh":
        pkt = build_ipv6(src, dst, IpProto.MH, bytes([59, 1, 6, 0]) + bytes(12), hop_limit=hop)
    elif kind == "ns":
        pkt = build_ipv6(src, dst, IpProto.ICMPV6, bytes([135, 0, 0, 0]) + bytes(20), hop_limit=255)
    else:
        return draw(st.binary(max_size=80)), 0
    eth_dst = draw(st.sampled_from([MACS[0], MACS[0], OTHER_MAC, b"\x33\x33\x00\x00\x00\x01", b"\xff" * 6]))
    status = draw(st.sampled_from([0, 0, TP_STATUS_CSUMNOTREADY]))
    eth = build_ethernet(eth_dst, bytes([2, 9, 9, 9, 9, 9]), pkt)
    tags = draw(st.sampled_from([0, 0, 0, 1, 2]))  # IEEE 802.1Q tags
    return eth[:12] + b"\x81\x00\x00\x05" * tags + eth[12:], status


def run_node(impl, frames_and_status, *, iface=0, from_wire=True, inner=False, handover=False, finish_inner=False):
    nc, fib, node = world(impl)
    buffer = handover_world(impl, node) if handover else None
    arena, offsets, lengths = pack_frames([f for f, _ in frames_and_status])
    arena = np.array(arena, dtype=np.uint8)
    status = np.array([s for _, s in frames_and_status], dtype=np.uint32)
    batch = impl.classify(arena, offsets, lengths)
    drops = np.zeros(len(DropReason), dtype=np.uint64)
    counts = np.full(len(EngineCounter), 1000, dtype=np.uint64)  # the engine's ledger, already counting
    present = node.run(batch, arena, offsets, lengths, status, iface, from_wire=from_wire, inner=inner, drops=drops,
                       now_ns=5_000, finish_inner=finish_inner, counts=counts)
    n = len(frames_and_status)
    tunnel_arena = bytes(node.tunnel_arena)
    extra = {}
    if buffer is not None:
        extra["buffer"] = buffer.counters
        extra["queued"] = {}
        for key in range(BUFFER_KEYS):
            out_arena, out_off, out_len = buffer.flush(key, 6_000)
            extra["queued"][key] = [bytes(out_arena[o:o + m]) for o, m in zip(out_off.tolist(), out_len.tolist())]
    return extra | {
        "decap": [(int(node.decap_offsets[j]), int(node.decap_lengths[j])) for j in range(node.decap_count)],
        "tunnel": [[tunnel_arena[o:o + m] for o, m in zip(node.tunnel_offsets[k, :node.tunnel_count[k]].tolist(),
                                                        node.tunnel_lengths[k, :node.tunnel_count[k]].tolist())]
                   for k in range(3)],
        "present": present,
        "arena": arena.tobytes(),
        "action": node.action[:n].tolist(),
        "inner": [(int(node.inner_action[i]), int(node.inner_aux[i]), int(node.inner_entry[i])) for i in range(n)
                  if node.action[i] == Action.DECAPPED],
        "aux": node.aux[:n].tolist(),
        "entry": node.entry[:n].tolist(),
        "out_if": node.out_if[:n].tolist(),
        "next_hop": [bytes(node.next_hop[i]) for i in range(n) if node.out_if[i] >= 0],
        "tx": [(node.tx_offsets[k, :node.tx_count[k]].tolist(), node.tx_lengths[k, :node.tx_count[k]].tolist())
               for k in range(3)],
        "stats": node.stats.tolist(),
        "drops": drops.tolist(),
        "counts": (counts - 1000).tolist(),
        "ncache": {k: v for k, v in nc.counters.items() if k != "max_probe"},  # probe lengths: not compared
    }


@pytest.mark.skipif(not HAVE_CORE, reason="the compiled core is not built: nothing to compare")
@settings(max_examples=300)
@given(st.lists(frame(), min_size=0, max_size=64), st.integers(0, 2), st.booleans(), st.booleans(), st.booleans(),
       st.booleans())
def test_core_node_equals_the_reference(frames_and_status, iface, from_wire, inner, handover, finish_inner):
    kw = dict(iface=iface, from_wire=from_wire, inner=inner, handover=handover, finish_inner=finish_inner)
    want = run_node(ref, frames_and_status, **kw)
    got = run_node(_core, frames_and_status, **kw)
    assert got == want


@pytest.mark.parametrize("impl", IMPLS)
@given(st.lists(frame(), min_size=1, max_size=32), st.booleans(), st.booleans())
def test_every_frame_has_one_action_and_the_counts_add_up(impl, frames_and_status, handover, finish_inner):
    out = run_node(impl, frames_and_status, handover=handover, finish_inner=finish_inner)
    n = len(frames_and_status)
    actions = out["action"]
    # what the node did to each packet it took: the block's frames, and the inner packets it finished
    done = [a for a in actions if a != Action.DECAPPED] + [a for a, _x, _e in out["inner"]]
    assert out["stats"][NODE_STATS.index("frames")] == n
    assert out["stats"][NODE_STATS.index("decapped")] == actions.count(Action.DECAPPED) == len(out["inner"])
    assert out["stats"][NODE_STATS.index("dropped")] == done.count(Action.DROP) == sum(out["drops"])
    assert sum(len(o) for o, _ in out["tx"]) == done.count(Action.FORWARD)
    assert sum(len(t) for t in out["tunnel"]) == done.count(Action.TUNNELLED)
    assert out["stats"][NODE_STATS.index("buffered")] == done.count(Action.BUFFERED)
    assert out["decap"] == [] or Action.DECAP in actions
    assert {a for a, _x, _e in out["inner"]} <= {Action.FORWARD, Action.TUNNELLED, Action.BUFFERED, Action.DROP}
    if not finish_inner:
        assert Action.DECAPPED not in actions
    if handover:
        assert Action.BUFFER not in actions  # with a buffer the node finishes the class itself
        assert out["buffer"]["queued"] == done.count(Action.BUFFERED)  # nothing evicted that was counted
    else:
        assert Action.BUFFERED not in done and Action.TUNNELLED not in done
    assert out["present"] == sum(1 << a for a in set(actions) | set(done))
    # the engine's counters got the block: each frame and each finished inner packet received, and what the
    # node did itself; the rest of the ledger untouched
    c = out["counts"]
    decapped = len(out["inner"])
    assert c[EngineCounter.RECEIVED] == n + decapped
    assert c[EngineCounter.RECEIVED_INNER] == decapped and c[EngineCounter.DECAPSULATED] == decapped
    assert c[EngineCounter.DROPPED] == done.count(Action.DROP) == out["stats"][NODE_STATS.index("dropped")]
    assert c[EngineCounter.BUFFERED] == out["stats"][NODE_STATS.index("buffered")]
    assert c[EngineCounter.CSUM_COMPLETED] == out["stats"][NODE_STATS.index("csum_completed")]
    assert c[EngineCounter.REORDER_HELD] == out["stats"][NODE_STATS.index("reorder_held")]
    booked = {EngineCounter.RECEIVED, EngineCounter.RECEIVED_INNER, EngineCounter.DECAPSULATED,
              EngineCounter.DROPPED, EngineCounter.BUFFERED, EngineCounter.CSUM_COMPLETED, EngineCounter.REORDER_HELD}
    assert all(v == 0 for k, v in enumerate(c) if k not in booked)


def _one(impl, pkt, *, eth_dst=MACS[0], status=0, **kw):
    out = run_node(impl, [(build_ethernet(eth_dst, bytes([2, 9, 9, 9, 9, 9]), pkt), status)], **kw)
    return out, Action(out["action"][0]), out["aux"][0]


@pytest.mark.skipif(not HAVE_CORE, reason="the compiled core is not built")
def test_compiled_stats_are_in_the_order_constants_names_them():
    from fmipfast.constants import NODE_STATS as names

    assert _core._node_stats() == {**{name: k for k, name in enumerate(names)}, "count": len(names)}


@pytest.mark.parametrize("impl", IMPLS)
def test_forwarding_rewrites_the_frame_as_an_independent_reading_expects(impl):
    pkt = udp(SOURCES[0], "2001:db8:100::5", hop=17)
    out, action, _ = _one(impl, pkt)
    assert action == Action.FORWARD and out["out_if"] == [1]
    frame = out["arena"]
    nc, _fib, _node = world(impl)
    via = int(nc.lookup(np.frombuffer(IPv6Address("2001:db8:2::1").packed, np.uint8).reshape(1, 16))[0])
    assert frame[0:6] == bytes(nc.macs[via]) and frame[6:12] == MACS[1]
    assert frame[14 + 7] == 16  # hop limit - 1
    assert frame[14:14 + 7] == pkt[:7] and frame[14 + 8:] == pkt[8:]  # nothing else changed
    assert out["tx"][1] == ([0], [len(frame)])


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dst, action, aux", [
    ("2001:db8:1::12", Action.TUNNEL, 3),
    ("2001:db8:1::13", Action.BUFFER, 7),
    ("2001:db8:1::14", Action.BUFFER, -1),
    ("2001:db8:1::15", Action.BUFFER, 9),
    ("2001:db8:1::11", Action.RESOLVE, -1),
    ("2001:db8:1::99", Action.RESOLVE, -1),
    ("2001:db8:200::5", Action.RESOLVE, -1),
    ("2001:db9::1", Action.NO_ROUTE, -1),
    ("2001:db8:1::17", Action.NO_ROUTE, -1),  # the entry's interface is not one of ours
    ("2001:db8:1::1", Action.CONTROL, -1),
])
def test_each_table_state_gives_its_action(impl, dst, action, aux):
    out, got, got_aux = _one(impl, udp(SOURCES[0], dst))
    assert (got, got_aux) == (action, aux)


@pytest.mark.parametrize("impl", IMPLS)
def test_the_route_switch_holds_only_direct_frames_from_the_wire(impl):
    dst = "2001:db8:1::15"
    assert _one(impl, udp(SOURCES[0], dst))[1] == Action.BUFFER
    assert _one(impl, udp(SOURCES[0], dst), inner=True)[1] == Action.FORWARD  # what the tunnel delivers
    assert _one(impl, udp(SOURCES[0], dst), from_wire=False)[1] == Action.FORWARD  # a flushed buffer
    mh = build_ipv6(SOURCES[0], dst, IpProto.MH, bytes([59, 1, 6, 0]) + bytes(12))
    assert _one(impl, mh)[1] == Action.FORWARD  # the BAck is not part of a data flow


@pytest.mark.parametrize("impl", IMPLS)
def test_decapsulation_is_in_place_and_gives_the_inner_frame(impl):
    """RFC 2473 §3.2 in place: the inner packet stays where it is, an Ethernet header (zero MACs, 0x86DD) in
    the 14 octets before it, its span in the decap vector in block order; the outer extension headers and any
    Ethernet padding after the inner packet are left out; a malformed inner packet is a drop by its status."""
    inner = udp(SOURCES[0], "2001:db8:1::10", payload=b"the inner datagram")
    dest_opts = bytes([IpProto.IPV6, 0, 1, 4, 0, 0, 0, 0])  # one outer extension header, then next header 41
    with_ext = build_ipv6(PEER, ROUTER, IpProto.DSTOPTS, dest_opts + inner)
    bad = build_ipv6(PEER, ROUTER, IpProto.IPV6, bytes([0x40]) + inner[1:])  # inner version 4
    frames_ = [build_ethernet(MACS[0], OTHER_MAC, p) + pad for p, pad in
               ((build_ipv6(PEER, ROUTER, IpProto.IPV6, inner), b""), (bad, b""), (with_ext, b"\0" * 6))]
    out = run_node(impl, [(f, 0) for f in frames_])
    assert out["action"] == [Action.DECAP, Action.DROP, Action.DECAP]
    assert out["aux"][1] == int(DropReason.IP6_BAD_VERSION)
    arena = out["arena"]
    starts = [0, len(frames_[0]) + len(frames_[1])]
    want = bytes(12) + b"\x86\xdd" + inner
    assert out["decap"] == [(starts[0] + 14 + 40 - 14, len(want)), (starts[1] + 14 + 48 - 14, len(want))]
    for o, m in out["decap"]:
        assert arena[o:o + m] == want
    got = scapy.Ether(arena[out["decap"][1][0]:][:out["decap"][1][1]])
    assert got[scapy.IPv6].dst == "2001:db8:1::10" and bytes(got[scapy.UDP].payload) == b"the inner datagram"


@pytest.mark.parametrize("impl", IMPLS)
def test_decapsulation_only_from_a_peer(impl):
    inner = udp(SOURCES[0], "2001:db8:1::10")
    assert _one(impl, build_ipv6(PEER, ROUTER, IpProto.IPV6, inner))[1] == Action.DECAP
    out, action, aux = _one(impl, build_ipv6(SOURCES[0], ROUTER, IpProto.IPV6, inner))
    assert (action, aux) == (Action.DROP, DropReason.DECAP_NOT_FROM_PEER)
    # a tunnel packet for another router is transit traffic
    assert _one(impl, build_ipv6(PEER, "2001:db8:1::10", IpProto.IPV6, inner))[1] == Action.FORWARD


@pytest.mark.parametrize("impl", IMPLS)
def test_hop_limit_and_link_layer_filter(impl):
    assert _one(impl, udp(SOURCES[0], "2001:db8:1::10", hop=1))[1] == Action.TIME_EXCEEDED
    assert _one(impl, udp(SOURCES[0], "2001:db8:1::10", hop=0))[1] == Action.TIME_EXCEEDED
    out, action, aux = _one(impl, udp(SOURCES[0], "2001:db8:1::10"), eth_dst=OTHER_MAC)
    assert (action, aux) == (Action.DROP, DropReason.OTHER_HOST)
    assert _one(impl, udp(SOURCES[0], "2001:db8:1::10"), eth_dst=OTHER_MAC, from_wire=False)[1] == Action.FORWARD


@pytest.mark.parametrize("impl", IMPLS)
def test_a_packet_larger_than_its_output_link_s_mtu_is_packet_too_big(impl):
    """A router never fragments (RFC 8200 §5): a packet (IPv6 header and payload) larger than its output
    interface's MTU is PACKET_TOO_BIG with that MTU as its aux, untouched; one of exactly the MTU is forwarded."""
    on_if2 = "2001:db8:1::16"  # a host on interface 2, MTU 1300
    for size, want in ((1300, Action.FORWARD), (1301, Action.PACKET_TOO_BIG)):
        pkt = udp(SOURCES[0], on_if2, payload=bytes(size - 48))
        assert len(pkt) == size
        out, action, aux = _one(impl, pkt)
        assert action == want
        if want == Action.PACKET_TOO_BIG:
            assert aux == 1300
            assert out["arena"] == build_ethernet(MACS[0], bytes([2, 9, 9, 9, 9, 9]), pkt)  # not rewritten
    # via the upstream router on interface 1 (MTU 1280); an on-link host of interface 0 (MTU 1500)
    assert _one(impl, udp(SOURCES[0], "2001:db8:100::5", payload=bytes(1281 - 48)))[1:] == (
        Action.PACKET_TOO_BIG, 1280)
    assert _one(impl, udp(SOURCES[0], "2001:db8:1::10", payload=bytes(1500 - 48)))[1] == Action.FORWARD
    # the hop limit is looked at first (RFC 4443 §3.3 before §3.2, as Linux does)
    assert _one(impl, udp(SOURCES[0], on_if2, hop=1, payload=bytes(1400)))[1] == Action.TIME_EXCEEDED


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("mtus, exc", [
    (np.array([1500, 1280], np.uint32), ValueError),  # one per interface
    (np.array([1500, 1279, 1500], np.uint32), ValueError),
    (np.array([1500, 65536, 1500], np.int64), TypeError),
    (np.array([1500, 1500, 1500], np.float64), TypeError),
])
def test_set_mtus_refuses_what_is_not_an_mtu_per_interface(impl, mtus, exc):
    _nc, _fib, node = world(impl)
    with pytest.raises(exc):
        node.set_mtus(mtus)
    assert np.asarray(node.mtus).tolist() == LINK_MTUS


NEVER_FORWARDED = [  # (source, destination, Ethernet destination, tags, reason)
    ("fe80::1", "2001:db8:1::10", MACS[0], 0, DropReason.ADDRESS_NOT_FORWARDED),
    (SOURCES[0], "fe80::99", MACS[0], 0, DropReason.ADDRESS_NOT_FORWARDED),
    ("::ffff:192.0.2.1", "2001:db8:1::10", MACS[0], 0, DropReason.ADDRESS_NOT_FORWARDED),
    (SOURCES[0], "::ffff:192.0.2.7", MACS[0], 0, DropReason.ADDRESS_NOT_FORWARDED),
    (SOURCES[0], "ff05::2", b"\x33\x33\x00\x00\x00\x02", 0, DropReason.ADDRESS_NOT_FORWARDED),
    (SOURCES[0], "ff0e::1", MACS[0], 0, DropReason.ADDRESS_NOT_FORWARDED),
    ("fe80::1", "2001:db8:1::10", b"\xff" * 6, 0, DropReason.ADDRESS_NOT_FORWARDED),  # the address first
    ("fe80::1", "2001:db8:1::10", b"\xff" * 6, 1, DropReason.VLAN_TAGGED),  # the tag before anything
    (SOURCES[0], "2001:db8:1::10", b"\xff" * 6, 0, DropReason.LINK_MULTICAST_NOT_FORWARDED),
    (SOURCES[0], "2001:db8:1::10", b"\x33\x33\x00\x00\x00\x01", 0, DropReason.LINK_MULTICAST_NOT_FORWARDED),
    (SOURCES[0], "2001:db8:1::10", MACS[0], 1, DropReason.VLAN_TAGGED),
    (SOURCES[0], "2001:db8:1::10", MACS[0], 2, DropReason.VLAN_TAGGED),
]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("src,dst,eth_dst,tags,reason", NEVER_FORWARDED)
def test_what_a_router_never_forwards_is_dropped_before_the_tables(impl, src, dst, eth_dst, tags, reason):
    """Transit packets with a link-local, IPv4-mapped or multicast address, and from the wire those in a
    link-layer group frame, are drops by their reason -- before a table is consulted (with a hop limit of 1
    too: no Time Exceeded is due) -- and a tagged frame from the wire is a drop before anything; not from the
    wire, the link-layer reasons do not apply (the frame is forwarded)."""
    for hop in (64, 1):
        eth = build_ethernet(eth_dst, bytes([2, 9, 9, 9, 9, 9]), udp(src, dst, hop=hop))
        out = run_node(impl, [(eth[:12] + b"\x81\x00\x00\x05" * tags + eth[12:], 0)])
        assert (out["action"][0], out["aux"][0]) == (Action.DROP, reason)
        assert out["drops"][reason] == 1 and out["tx"][0] == ([], [])
    if reason != DropReason.ADDRESS_NOT_FORWARDED and not IPv6Address(src).is_link_local:
        eth = build_ethernet(eth_dst, bytes([2, 9, 9, 9, 9, 9]), udp(src, dst))
        out = run_node(impl, [(eth[:12] + b"\x81\x00\x00\x05" * tags + eth[12:], 0)], from_wire=False)
        assert out["action"][0] == Action.FORWARD
    assert _one(impl, udp(SOURCES[0], "2001:db8:1::10"))[1] == Action.FORWARD


@pytest.mark.parametrize("impl", IMPLS)
def test_checksum_completion_gives_a_checksum_that_verifies(impl):
    pkt = udp(SOURCES[0], "2001:db8:1::10", payload=b"hello, world")
    out, action, _ = _one(impl, pkt, status=TP_STATUS_CSUMNOTREADY)
    assert action == Action.FORWARD and out["stats"][NODE_STATS.index("csum_completed")] == 1
    frame = out["arena"]
    udp_bytes = frame[54:]
    value = ref.upper_layer_checksum(frame[22:38], frame[38:54], IpProto.UDP, udp_bytes, 6)
    assert udp_bytes[6:8] == value.to_bytes(2, "big") != b"\0\0"
    # and scapy, an independent implementation, agrees
    p = scapy.Ether(frame)
    want = p[scapy.UDP].chksum
    del p[scapy.UDP].chksum
    assert scapy.Ether(bytes(p))[scapy.UDP].chksum == want


@pytest.mark.parametrize("impl", IMPLS)
def test_stale_table_values_are_bounded(impl):
    """Columns and routes hold what the engine wrote; a value outside its table is a miss, never an access."""
    nc, fib, node = world(impl)
    frames = [build_ethernet(MACS[0], OTHER_MAC, udp(SOURCES[0], "2001:db8:200::5"))]
    arena, offsets, lengths = pack_frames(frames)
    arena = np.array(arena)
    batch = impl.classify(arena, offsets, lengths)
    # routes whose columns are fewer than the FIB's values are refused up front
    with pytest.raises(ValueError):
        node.set_routes(fib, np.zeros(2, np.int32), np.zeros((2, 16), np.uint8), np.zeros(2, np.uint8))
    with pytest.raises(ValueError):
        node.set_routes(fib, np.full(len(ROUTES), 5, np.int32), np.zeros((len(ROUTES), 16), np.uint8),
                        np.zeros(len(ROUTES), np.uint8))
    node.run(batch, arena, offsets, lengths, np.zeros(0, np.uint32), 0)
    assert Action(node.action[0]) == Action.RESOLVE


@pytest.mark.parametrize("impl", IMPLS)
def test_arguments_are_checked_before_anything_is_written(impl):
    nc, fib, node = world(impl)
    frames = [build_ethernet(MACS[0], OTHER_MAC, udp(SOURCES[0], "2001:db8:1::10"))]
    arena, offsets, lengths = pack_frames(frames)
    arena = np.array(arena)
    before = arena.copy()
    batch = impl.classify(arena, offsets, lengths)
    none = np.zeros(0, np.uint32)
    bad = [
        ((batch, arena, offsets.astype(np.int32), lengths, none, 0), TypeError),
        ((batch, arena, offsets, lengths.astype(np.int64), none, 0), TypeError),
        ((batch, arena.astype(np.int8), offsets, lengths, none, 0), TypeError),
        ((batch, arena, offsets, lengths, none, 3), ValueError),
        ((batch, arena, offsets, lengths, none, -1), ValueError),
        ((batch, arena, offsets, lengths, np.zeros(2, np.uint32), 0), ValueError),
        ((batch, arena, offsets + 1, lengths, none, 0), ValueError),
        ((batch, arena, np.array([-1], np.int64), lengths, none, 0), ValueError),
        ((batch, arena, np.array([2**62], np.int64), lengths, none, 0), ValueError),
        ((batch, arena, np.zeros(65, np.int64), np.zeros(65, np.uint32), none, 0), ValueError),
        ((batch, arena, np.zeros(2, np.int64), np.zeros(2, np.uint32), none, 0), ValueError),  # batch has 1
    ]
    for args, exc in bad:
        with pytest.raises(exc):
            node.run(*args)
        assert np.array_equal(arena, before)
    with pytest.raises(TypeError):
        node.run(batch, arena, offsets, lengths, none, 0, drops=np.zeros(len(DropReason), np.int64))
    with pytest.raises(TypeError):
        node.run(batch, arena, offsets, lengths, none, 0, drops=np.zeros(3, np.uint64))
    ro = arena.copy()
    ro.flags.writeable = False
    with pytest.raises((TypeError, ValueError)):
        node.run(batch, ro, offsets, lengths, none, 0)
    with pytest.raises(ValueError):
        impl.Node(nc, 0, 3)
    with pytest.raises(ValueError):
        impl.Node(nc, 16, 0)


# ---------------------------------------------------------------------------------------------- the node's own
# buffer and tunnel


def _block(impl, pkts, **kw):
    return run_node(impl, [(build_ethernet(MACS[0], bytes([2, 9, 9, 9, 9, 9]), p), 0) for p in pkts],
                    handover=True, **kw)


@pytest.mark.parametrize("impl", IMPLS)
def test_tunnelled_frames_are_rfc2473_packets_scapy_reads(impl):
    """The node's encapsulation, read back by scapy (an independent implementation): outer source the output
    interface's address, destination the NAR, hop limit as set, the inner packet forwarded (hop limit - 1)."""
    inner = udp(SOURCES[0], "2001:db8:1::12", hop=40, payload=b"through the tunnel")
    out = _block(impl, [inner])
    assert out["action"] == [Action.TUNNELLED] and out["aux"] == [3]
    assert out["tunnel"][0] == out["tunnel"][2] == [] and len(out["tunnel"][1]) == 1
    frame = scapy.Ether(out["tunnel"][1][0])
    nc, _fib, _node = world(impl)
    via = int(nc.lookup(np.frombuffer(IPv6Address("2001:db8:2::1").packed, np.uint8).reshape(1, 16))[0])
    assert frame.dst == ":".join(f"{b:02x}" for b in bytes(nc.macs[via])) and bytes.fromhex(
        frame.src.replace(":", "")) == MACS[1]
    outer = frame[scapy.IPv6]
    assert (outer.src, outer.dst, outer.hlim, outer.nh) == (str(TUNNEL_SOURCES[1]), str(TUNNEL_PEERS[3]), 61, 41)
    assert outer.plen == len(inner)
    got_inner = bytes(outer.payload)
    assert got_inner[7] == 39 and got_inner[:7] == inner[:7] and got_inner[8:] == inner[8:]
    assert out["tx"] == [([], [])] * 3  # nothing in the forwarding vectors


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dst, action, aux", [
    ("2001:db8:1::18", Action.TUNNEL, 0),  # the NAR's next hop has no entry: punted for resolution
    ("2001:db8:1::19", Action.TUNNEL, 1),  # no route to the NAR: punted (Python drops it, NO_ROUTE)
    ("2001:db8:1::1a", Action.TUNNEL, 7),  # a peer index past the table: punted
    ("2001:db8:1::1b", Action.TUNNELLED, 2),
    ("2001:db8:1::13", Action.BUFFERED, 7),
    ("2001:db8:1::14", Action.DROP, int(DropReason.NOT_BUFFERED)),  # the HI's U flag was clear
    ("2001:db8:1::1c", Action.DROP, int(DropReason.INTERNAL_ERROR)),  # a key outside the buffer
    ("2001:db8:1::15", Action.BUFFERED, 9),  # the route switch
])
def test_each_handover_state_gives_its_action_when_the_node_finishes_it(impl, dst, action, aux):
    out = _block(impl, [udp(SOURCES[0], dst)])
    assert (out["action"][0], out["aux"][0]) == (action, aux)


@pytest.mark.parametrize("impl", IMPLS)
def test_the_buffer_gets_the_block_in_order_and_its_caps_are_drops(impl):
    """One push per block in block order: the per-key cap (3) evicts the oldest of the same block (a drop by
    BUFFER_FULL of that earlier frame), a frame past the slot size is FRAME_TOO_BIG, another key is untouched."""
    pkts = [udp(SOURCES[0], "2001:db8:1::13", payload=bytes([k]) * 4) for k in range(5)]
    pkts.insert(2, udp(SOURCES[0], "2001:db8:1::1d", payload=b"other MN"))
    pkts.append(udp(SOURCES[0], "2001:db8:1::13", payload=bytes(200)))  # past the 128-octet slot
    out = _block(impl, pkts)
    assert out["action"] == [Action.DROP, Action.DROP, Action.BUFFERED, Action.BUFFERED, Action.BUFFERED,
                             Action.BUFFERED, Action.DROP]
    assert out["aux"][:2] == [int(DropReason.BUFFER_FULL)] * 2 and out["aux"][6] == int(DropReason.FRAME_TOO_BIG)
    assert [q[14 + 48:] for q in out["queued"][7]] == [bytes([k]) * 4 for k in (2, 3, 4)]
    assert [q[14 + 48:] for q in out["queued"][3]] == [b"other MN"]
    assert out["stats"][NODE_STATS.index("buffered")] == 4
    assert out["drops"][DropReason.BUFFER_FULL] == 2 and out["drops"][DropReason.FRAME_TOO_BIG] == 1
    assert out["present"] == (1 << Action.DROP) | (1 << Action.BUFFERED)


@pytest.mark.parametrize("impl", IMPLS)
def test_the_tunnel_refuses_what_rfc2473_refuses(impl):
    """The tunnel entry point forwards the inner packet first (RFC 2473 §3.1: Time Exceeded when its hop limit
    runs out) and never fragments: a packet larger than 1280 that does not fit the tunnel gets Packet Too Big
    with the tunnel MTU, at least 1280 (§7.1 (b)); a smaller one that does not fit would have to be fragmented
    (§7.1 (a)) and is dropped."""
    big = udp(SOURCES[0], "2001:db8:1::1b", payload=bytes(1250))  # 40 + 1298 > the 1280 MTU of interface 0
    small = udp(SOURCES[0], "2001:db8:1::1b", payload=bytes(1280 - 48))  # exactly 1280: 40 + 1280 does not fit
    out = _block(impl, [big, udp(SOURCES[0], "2001:db8:1::1b", hop=1), small])
    assert out["action"] == [Action.PACKET_TOO_BIG, Action.TIME_EXCEEDED, Action.DROP]
    assert out["aux"] == [1280, -1, int(DropReason.FRAME_TOO_BIG)]
    assert out["tunnel"] == [[], [], []]
    # through interface 1 (MTU 1280 for forwarding, 1500 for the tunnel): the tunnel MTU is 1500 - 40
    too_big = udp(SOURCES[0], "2001:db8:1::12", payload=bytes(1461 - 48))
    out = _block(impl, [too_big])
    assert (out["action"], out["aux"]) == ([Action.PACKET_TOO_BIG], [1460])


@pytest.mark.parametrize("impl", IMPLS)
def test_a_full_block_of_the_largest_frames_fits_the_tunnel_arena(impl):
    """The arena bound: capacity frames, each as large as the output MTU allows, all tunnelled."""
    pkt = udp(SOURCES[0], "2001:db8:1::12", payload=bytes(1500 - 40 - 48))  # 40 + inner: exactly the MTU
    out = _block(impl, [pkt] * 64)
    assert out["action"] == [Action.TUNNELLED] * 64
    assert [len(f) for f in out["tunnel"][1]] == [14 + 1500] * 64


@pytest.mark.parametrize("impl", IMPLS)
def test_handover_setters_check_their_arguments(impl):
    nc, fib, node = world(impl)
    src = np.zeros((3, 16), np.uint8)
    with pytest.raises(TypeError):
        node.set_buffer(object())
    with pytest.raises(ValueError):
        node.set_tunnel(src, np.array([1500, 1500, 1279], np.uint32))
    with pytest.raises(ValueError):
        node.set_tunnel(src, np.array([1500, 1500, 65536], np.uint32))
    with pytest.raises(ValueError):
        node.set_tunnel(src[:2], np.array([1500, 1500], np.uint32))
    with pytest.raises(TypeError):
        node.set_tunnel(src, np.array([1500, 1500, 1500], np.int64))
    with pytest.raises(ValueError):
        node.set_tunnel(src, np.array([1500] * 3, np.uint32), hop_limit=0)
    with pytest.raises(ValueError):
        node.set_tunnel_peers(np.zeros((2, 15), np.uint8))
    handover_world(impl, node)
    frames = [build_ethernet(MACS[0], OTHER_MAC, udp(SOURCES[0], "2001:db8:1::13"))]
    arena, offsets, lengths = pack_frames(frames)
    arena = np.array(arena)
    batch = impl.classify(arena, offsets, lengths)
    for bad in (None, -1, 1.5, True):  # a node with a buffer needs the buffer's clock
        with pytest.raises(ValueError):
            node.run(batch, arena, offsets, lengths, np.zeros(0, np.uint32), 0, now_ns=bad)
    node.set_buffer(None)  # and without one it punts again
    node.run(batch, arena, offsets, lengths, np.zeros(0, np.uint32), 0)
    assert Action(node.action[0]) == Action.BUFFER


def _tunnelled(pkt, pad=b""):
    """A peer's IPv6-in-IPv6 packet for the router carrying ``pkt``, as a frame for interface 0."""
    return build_ethernet(MACS[0], OTHER_MAC, build_ipv6(PEER, ROUTER, IpProto.IPV6, pkt)) + pad


@pytest.mark.parametrize("impl", IMPLS)
def test_finished_inner_packets_go_out_at_their_outer_frames_place(impl):
    """finish_inner: a decapsulated data packet is forwarded in the same run, in block order between the
    direct frames around it, rewritten as a direct one would be; without it the same block leaves the inner
    packet in the decap vector, as before."""
    direct = [build_ethernet(MACS[0], OTHER_MAC, udp(SOURCES[0], "2001:db8:1::10", payload=bytes([k]) * 8))
              for k in range(2)]
    inner = udp(SOURCES[0], "2001:db8:1::10", payload=b"through the tunnel")
    frames_ = [direct[0], _tunnelled(inner, b"\0" * 6), direct[1]]
    off = [0, len(frames_[0]), len(frames_[0]) + len(frames_[1])]
    out = run_node(impl, [(f, 0) for f in frames_], finish_inner=True)
    assert out["action"] == [Action.FORWARD, Action.DECAPPED, Action.FORWARD]
    nc, _fib, _node = world(impl)
    entry = int(nc.lookup(np.frombuffer(IPv6Address("2001:db8:1::10").packed, np.uint8).reshape(1, 16))[0])
    assert out["inner"] == [(Action.FORWARD, -1, entry)]
    inner_at = off[1] + 14 + 40 - 14
    assert out["tx"][0] == ([off[0], inner_at, off[2]], [len(direct[0]), 14 + len(inner), len(direct[1])])
    assert out["decap"] == []
    assert out["stats"][NODE_STATS.index("decapped")] == 1
    assert out["present"] == (1 << Action.FORWARD) | (1 << Action.DECAPPED)
    arena = out["arena"]
    rewritten = arena[inner_at:inner_at + 14 + len(inner)]
    assert rewritten[:12] == arena[off[0]:off[0] + 12]  # the same next hop and interface as the direct frame
    assert rewritten[14 + 7] == 63 and rewritten[14 + 8:] == inner[8:]
    got = scapy.Ether(rewritten)
    assert got[scapy.IPv6].hlim == 63 and bytes(got[scapy.UDP].payload) == b"through the tunnel"
    before = run_node(impl, [(f, 0) for f in frames_])
    assert before["action"] == [Action.FORWARD, Action.DECAP, Action.FORWARD]
    assert before["decap"] == [(inner_at, 14 + len(inner))]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("inner", [
    udp(SOURCES[0], ROUTER),  # for the router itself
    udp(SOURCES[0], "2001:db8:1::11"),  # next hop being resolved
    udp(SOURCES[0], "2001:db8:1::99"),  # on-link, no entry: resolution
    udp(SOURCES[0], "2001:db9::1"),  # no route: Destination Unreachable due
    udp(SOURCES[0], "2001:db8:1::10", hop=1),  # Time Exceeded due
    udp(SOURCES[0], "2001:db8:1::18"),  # a tunnel toward an unresolved NAR: punted
    build_ipv6(PEER, ROUTER, IpProto.IPV6, udp(SOURCES[0], "2001:db8:1::10")),  # another level of tunnel
], ids=["router", "incomplete", "no-entry", "no-route", "hop-limit", "tunnel-punted", "nested"])
def test_inner_packets_python_finishes_are_left_untouched(impl, inner):
    """An inner packet whose action needs Python (control, resolution, an ICMPv6 error, a punted tunnel,
    another decapsulation) is in the decap vector exactly as without finish_inner: same octets, no count."""
    frames_ = [(_tunnelled(inner), 0)]
    with_, without = (run_node(impl, frames_, handover=True, finish_inner=f) for f in (True, False))
    assert with_["action"] == without["action"] == [Action.DECAP]
    assert with_["decap"] == without["decap"] == [(14 + 40 - 14, 14 + len(inner))]
    assert with_["arena"] == without["arena"]
    assert with_["tx"] == without["tx"] and with_["tunnel"] == without["tunnel"]
    assert with_["stats"] == without["stats"] and with_["stats"][NODE_STATS.index("decapped")] == 0


@pytest.mark.parametrize("impl", IMPLS)
def test_finished_inner_packets_are_buffered_tunnelled_and_dropped_with_the_block(impl):
    """A NAR's proxied MN: inner packets join the block's one push in block order and the per-key cap
    (3) evicts the oldest, an inner packet to a key-less entry is NOT_BUFFERED, one classify refuses is a
    drop by its reason, and a PAR's tunnel entry re-encapsulates an inner packet toward its NAR."""
    to_mn = [udp(SOURCES[0], "2001:db8:1::13", payload=bytes([k]) * 4) for k in range(4)]
    bad = bytes([0x50]) + to_mn[0][1:]  # version 5
    pkts = [_tunnelled(to_mn[0]), build_ethernet(MACS[0], OTHER_MAC, to_mn[1]), _tunnelled(to_mn[2]),
            _tunnelled(to_mn[3]), _tunnelled(udp(SOURCES[0], "2001:db8:1::14")), _tunnelled(bad),
            _tunnelled(udp(SOURCES[0], "2001:db8:1::1b"))]
    out = run_node(impl, [(f, 0) for f in pkts], handover=True, finish_inner=True)
    assert out["action"] == [Action.DECAPPED, Action.BUFFERED, Action.DECAPPED, Action.DECAPPED,
                             Action.DECAPPED, Action.DROP, Action.DECAPPED]
    assert out["aux"][5] == int(DropReason.IP6_BAD_VERSION)  # the inner version is checked by decapsulation
    acts = [(a, x) for a, x, _e in out["inner"]]
    assert acts == [(Action.DROP, int(DropReason.BUFFER_FULL)), (Action.BUFFERED, 7), (Action.BUFFERED, 7),
                    (Action.DROP, int(DropReason.NOT_BUFFERED)), (Action.TUNNELLED, 2)]
    assert [e for _a, _x, e in out["inner"]][0] == -1  # a dropped inner packet has no entry
    assert [q[14 + 48:] for q in out["queued"][7]] == [bytes([k]) * 4 for k in (1, 2, 3)]
    assert out["stats"][NODE_STATS.index("buffered")] == 3
    assert out["stats"][NODE_STATS.index("decapped")] == 5
    assert len(out["tunnel"][0]) == 1
    assert out["drops"][DropReason.BUFFER_FULL] == 1 and out["drops"][DropReason.NOT_BUFFERED] == 1


@pytest.mark.parametrize("impl", IMPLS)
def test_set_codepoints_takes_codepoints_only(impl):
    from fmipfast.constants import DEFAULT_CODEPOINTS

    _nc, _fib, node = world(impl)
    node.set_codepoints(DEFAULT_CODEPOINTS)
    with pytest.raises(TypeError, match="codepoints"):
        node.set_codepoints("154")


def _run_block(impl, frames_and_status, **kw):
    """run_node's world and outputs, the block classified by the node's own run_block."""
    nc, fib, node = world(impl)
    handover_world(impl, node)
    arena, offsets, lengths = pack_frames([f for f, _ in frames_and_status])
    arena = np.array(arena, dtype=np.uint8)
    status = np.array([s for _, s in frames_and_status], dtype=np.uint32)
    batch = impl.Batch(64)
    drops = np.zeros(len(DropReason), dtype=np.uint64)
    present = node.run_block(batch, arena, offsets, lengths, status, 0, drops=drops, now_ns=5_000, **kw)
    n = len(frames_and_status)
    return (present, arena.tobytes(), node.action[:n].tolist(), node.aux[:n].tolist(), drops.tolist(),
            node.stats.tolist(), [(node.tx_offsets[k, :node.tx_count[k]].tolist()) for k in range(3)],
            batch.verdict.tolist(), batch.drop_reason.tolist(), batch.target.tolist())


@pytest.mark.skipif(not HAVE_CORE, reason="the compiled core is not built: nothing to compare")
@settings(max_examples=150)
@given(st.lists(frame(), min_size=0, max_size=64), st.booleans())
def test_run_block_is_classify_then_run_in_both_implementations(frames_and_status, finish_inner):
    """run_block classifies into the given Batch and runs the node: the same outputs, batch rows included,
    in both implementations, as classify followed by run."""
    got = _run_block(_core, frames_and_status, finish_inner=finish_inner)
    assert got == _run_block(ref, frames_and_status, finish_inner=finish_inner)
    want = run_node(_core, frames_and_status, handover=True, finish_inner=finish_inner)
    assert (got[0], got[1], got[2], got[3], got[4], got[5]) == (
        want["present"], want["arena"], want["action"], want["aux"], want["drops"], want["stats"])


@pytest.mark.parametrize("impl", IMPLS)
def test_run_block_checks_its_arguments_before_writing(impl):
    """The Batch's capacity bounds the block (it is filled, not read); a frame past the arena is refused
    before the batch or any frame is written."""
    _nc, _fib, node = world(impl)
    frames_ = [build_ethernet(MACS[0], OTHER_MAC, udp(SOURCES[0], "2001:db8:1::10"))] * 4
    arena, offsets, lengths = pack_frames(frames_)
    arena = np.array(arena, dtype=np.uint8)
    none = np.zeros(0, np.uint32)
    with pytest.raises(ValueError, match="batch's 3"):
        node.run_block(impl.Batch(3), arena, offsets, lengths, none, 0)
    batch = impl.Batch(4)
    before = arena.copy()
    bad = offsets.copy()
    bad[2] = len(arena)
    with pytest.raises(ValueError, match="frame 2"):
        node.run_block(batch, arena, bad, lengths, none, 0)
    assert (arena == before).all() and len(batch) == 0
    with pytest.raises(TypeError, match="batch"):
        node.run_block(object(), arena, offsets, lengths, none, 0)
    for counts in (np.zeros(len(EngineCounter), np.int64), np.zeros(len(EngineCounter) - 1, np.uint64), [0] * 40,
                   np.zeros(2 * len(EngineCounter), np.uint64)[::2]):
        with pytest.raises(TypeError, match="counts"):
            node.run_block(batch, arena, offsets, lengths, none, 0, counts=counts)
        assert (arena == before).all() and len(batch) == 0
    assert node.run_block(batch, arena, offsets, lengths, none, 0) == 1 << Action.FORWARD
    assert len(batch) == 4


def _argument_forms(arena, offsets, lengths, status):
    """The same block in the forms both implementations take: exact arrays (the compiled node's fast path),
    strided views, lists, a bytearray arena, a numpy integer interface, read-only offsets."""
    strided = _strided

    def ro(a):
        a = a.copy()
        a.flags.writeable = False
        return a

    yield "exact", arena.copy(), offsets, lengths, status, 0
    yield "strided status", arena.copy(), offsets, lengths, strided(status), 0
    yield "bytearray arena", bytearray(arena.tobytes()), offsets, lengths, status, np.int64(0)
    yield "read-only vectors", arena.copy(), ro(offsets), ro(lengths), ro(status), np.uint8(0)
    yield "long long offsets", arena.copy(), offsets.astype(np.longlong), lengths, status, 0


@pytest.mark.parametrize("impl", IMPLS)
def test_run_block_takes_every_form_the_checks_accept_alike(impl):
    """What the shared argument checks accept, each implementation runs, with the same outputs whatever the
    form (the compiled node takes exact numpy arrays without a typed view, anything else through the checks)."""
    frames_ = [build_ethernet(MACS[0], OTHER_MAC, udp(SOURCES[0], dst))
               for dst in ("2001:db8:1::10", "2001:db8:1::99", "2001:db8:100::5", "2001:db9::1")] * 3
    arena, offsets, lengths = pack_frames(frames_)
    status = np.zeros(len(frames_), np.uint32)
    class Counts(np.ndarray):  # a subclass the checks accept (not the compiled fast path's exact type)
        pass

    got = {}
    for name, ar, off, ln, stt, iface in _argument_forms(np.array(arena, np.uint8), offsets, lengths, status):
        _nc, _fib, node = world(impl)
        drops = np.zeros(len(DropReason), dtype=np.uint64)
        counts = np.zeros(len(EngineCounter), dtype=np.uint64)
        if name == "read-only vectors":
            counts = counts.view(Counts)
        present = node.run_block(impl.Batch(16), ar, off, ln, stt, iface, drops=drops, counts=counts)
        n = len(frames_)
        got[name] = (present, bytes(ar), node.action[:n].tolist(), node.aux[:n].tolist(), drops.tolist(),
                     node.tx_offsets[0, :node.tx_count[0]].tolist(), np.asarray(counts).tolist())
    assert all(v == got["exact"] for v in got.values()), got
    assert got["exact"][0] & (1 << Action.FORWARD)
    # what classify refuses, run_block refuses in both (strided or listed offsets and lengths)
    _nc, _fib, node = world(impl)
    ar = np.array(arena, np.uint8)
    for off, ln in ((_strided(offsets), lengths), (offsets, lengths.tolist())):
        with pytest.raises((TypeError, ValueError)):
            node.run_block(impl.Batch(16), ar, off, ln, status, 0)
    assert ar.tobytes() == bytes(arena)
    # the arguments are checked in the same order: a wrong block before a wrong ledger
    with pytest.raises(ValueError, match="lengths"):
        node.run_block(impl.Batch(16), ar, offsets, lengths[:-1], status, 0, counts=[0])


def _strided(a):
    wide = np.zeros(2 * a.shape[0], dtype=a.dtype)
    wide[::2] = a
    return wide[::2]


def _tx_ring_world(impl, frames_and_status, slots, frame_size, busy, head, *, finish_inner=True):
    """run_node's world with interfaces 0 and 1 on TX rings of ``slots`` slots (``busy``: slots the kernel
    still owns), the node filling them; returns the outputs and the rings' octets and heads."""
    nc, fib, node = world(impl)
    handover_world(impl, node)
    rings, heads = [], []
    for k in (0, 1):
        ring = np.zeros(slots * frame_size, np.uint8)
        for b in busy:
            struct.pack_into("=I", ring, (b % slots) * frame_size + 20, 1)  # TP_STATUS_SEND_REQUEST
        cell = np.array([head % slots], np.int64)
        node.set_tx_ring(k, ring, frame_size, cell)
        rings.append(ring)
        heads.append(cell)
    arena, offsets, lengths = pack_frames([f for f, _ in frames_and_status])
    arena = np.array(arena, dtype=np.uint8)
    status = np.array([s for _, s in frames_and_status], dtype=np.uint32)
    drops = np.zeros(len(DropReason), dtype=np.uint64)
    node.run_block(impl.Batch(64), arena, offsets, lengths, status, 0, drops=drops, now_ns=5_000,
                   finish_inner=finish_inner)
    return {"rings": [r.tobytes() for r in rings], "heads": [int(h[0]) for h in heads],
            "tx_queued": node.tx_queued.tolist(), "tunnel_queued": node.tunnel_queued.tolist(),
            "tx_count": node.tx_count.tolist(), "tunnel_count": node.tunnel_count.tolist()}, node


@pytest.mark.skipif(not HAVE_CORE, reason="the compiled core is not built: nothing to compare")
@settings(max_examples=150)
@given(st.lists(frame(), min_size=0, max_size=48), st.integers(1, 12), st.sampled_from([256, 512, 2048]),
       st.lists(st.integers(0, 11), max_size=4), st.integers(0, 11))
def test_tx_rings_are_filled_as_the_reference_fills_them(frames_and_status, slots, frame_size, busy, head):
    """The node queues each ring interface's tunnel vector, then its TX vector, from the first frame, until a
    slot the kernel still owns or a frame past the slot size: the same slots, octets, heads and counts as the
    reference (which uses ring_tx_fill)."""
    got, _ = _tx_ring_world(_core, frames_and_status, slots, frame_size, busy, head)
    want, _ = _tx_ring_world(ref, frames_and_status, slots, frame_size, busy, head)
    assert got == want


@pytest.mark.parametrize("impl", IMPLS)
def test_a_full_tx_ring_leaves_the_rest_of_the_vector_in_order(impl):
    """Four slots, the third one still the kernel's: the first two frames are queued (tx_queued 2, the head
    moves past them, their octets in the slots as scapy reads them), the rest stays in the vector for the
    ring's sender; a frame past the slot size stops the fill as well."""
    pkts = [build_ethernet(MACS[0], OTHER_MAC, udp(SOURCES[0], "2001:db8:1::10", payload=bytes([k]) * 8))
            for k in range(4)]
    out, node = _tx_ring_world(impl, [(p, 0) for p in pkts], 4, 256, [2], 0, finish_inner=False)
    assert out["tx_count"][0] == 4 and out["tx_queued"] == [2, 0, 0] and out["heads"] == [2, 0]
    ring = out["rings"][0]
    for slot in (0, 1):
        base = slot * 256
        status, length = struct.unpack_from("=I", ring, base + 20)[0], struct.unpack_from("=I", ring, base + 16)[0]
        assert status == 1 and length == len(pkts[slot])
        got = scapy.Ether(ring[base + 48:base + 48 + length])
        assert got[scapy.IPv6].hlim == 63 and bytes(got[scapy.UDP].payload) == bytes([slot]) * 8
    big = [build_ethernet(MACS[0], OTHER_MAC, udp(SOURCES[0], "2001:db8:1::10", payload=bytes(300)))]
    out, _ = _tx_ring_world(impl, [(pkts[0], 0)] + [(big[0], 0)] + [(pkts[1], 0)], 8, 256, [], 5,
                            finish_inner=False)
    assert out["tx_queued"] == [1, 0, 0] and out["heads"] == [6, 5]


@pytest.mark.parametrize("impl", IMPLS)
def test_set_tx_ring_checks_its_arguments(impl):
    _nc, _fib, node = world(impl)
    cell = np.zeros(1, np.int64)
    with pytest.raises(ValueError, match="iface"):
        node.set_tx_ring(3, np.zeros(512, np.uint8), 256, cell)
    with pytest.raises(TypeError, match="ring"):
        node.set_tx_ring(0, np.zeros(512, np.uint16), 256, cell)
    with pytest.raises(ValueError, match="frame_size"):
        node.set_tx_ring(0, np.zeros(512, np.uint8), 48, cell)
    with pytest.raises(ValueError, match="frame_size"):
        node.set_tx_ring(0, np.zeros(500, np.uint8), 256, cell)
    with pytest.raises(TypeError, match="head"):
        node.set_tx_ring(0, np.zeros(512, np.uint8), 256, np.zeros(2, np.int64))
    node.set_tx_ring(0, np.zeros(512, np.uint8), 256, cell)
    node.set_tx_ring(0, None)
