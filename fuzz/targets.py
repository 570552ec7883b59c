"""The fuzz targets: one function per target that takes the fuzzer's bytes and raises on a broken contract.

Each target is a :class:`Target` whose ``one(data)`` returns normally when the code under test kept its
contract and raises otherwise: an exception outside the documented family propagates as it is (its
traceback is the report), a wrong answer raises :class:`ContractViolation`.  Nothing here imports atheris:
the same functions replay committed inputs in the test suite without it (``tests/test_fuzz.py``).

fmipfast is imported lazily, in :meth:`Target.setup`, so the runner can import the modules under
atheris's instrumentation first (``fuzz/run.py``).  Contracts are in ``fuzz/README.md``.
"""

from __future__ import annotations

import io
import json
import os
import struct
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ContractViolation", "Reader", "Target", "TARGETS", "KERNEL_TARGETS"]


class ContractViolation(AssertionError):
    """The code under test answered, but not as its contract says."""


class Reader:
    """Takes typed values off the front of a fuzz input; past the end every value is 0 / empty, so any
    input is valid and a short input simply takes the defaults (no atheris FuzzedDataProvider needed)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        chunk = self.data[self.pos:self.pos + n]
        self.pos += len(chunk)
        return chunk

    def u8(self) -> int:
        return int.from_bytes(self.take(1), "big")

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "big")

    def u32(self) -> int:
        return int.from_bytes(self.take(4), "big")

    def rest(self) -> bytes:
        return self.take(len(self.data) - self.pos)


@dataclass
class Target:
    """A named target: ``setup()`` imports what it needs once, ``one(data)`` runs one input."""

    name: str
    doc: str
    make: Callable[[], Callable[[bytes], None]]
    kernel: bool = False
    _fn: Callable[[bytes], None] | None = field(default=None, repr=False)

    def setup(self) -> None:
        if self._fn is None:
            self._fn = self.make()

    def one(self, data: bytes) -> None:
        self.setup()
        assert self._fn is not None
        self._fn(data)


def _outcome(fn: Callable[[], Any]) -> tuple[str, Any]:
    """("ok", value) or ("raise", (type name, message)) of ``fn()``; BaseExceptions that are not
    Exceptions (KeyboardInterrupt, SystemExit) propagate."""
    try:
        return "ok", fn()
    except Exception as exc:  # compared between the two implementations by the caller
        return "raise", (type(exc).__name__, str(exc))


def _compare_outcomes(what: str, core: tuple[str, Any], ref: tuple[str, Any],
                      same: Callable[[Any, Any], str | None]) -> None:
    """Both raised the same exception (type and message), or both answered the same; else a violation."""
    if core[0] != ref[0]:
        raise ContractViolation(f"{what}: compiled {core[0]} {core[1]!r:.300}, reference {ref[0]} {ref[1]!r:.300}")
    if core[0] == "raise":
        if core[1] != ref[1]:
            raise ContractViolation(f"{what}: compiled raised {core[1]!r:.300}, reference raised {ref[1]!r:.300}")
        return
    problem = same(core[1], ref[1])
    if problem:
        raise ContractViolation(f"{what}: {problem}")


# ---------------------------------------------------------------------------------------------------
# (1) classify: compiled vs reference, every Batch array


def _make_classify() -> Callable[[bytes], None]:
    import numpy as np

    from fmipfast import _core, reference
    from fmipfast.constants import Codepoints, DropReason
    from fmipfast.reference.wire import FIELDS

    profile = Codepoints(type=201, attach=9, handover=1, handover_redirect=3)
    n_reasons = len(DropReason)

    def same_batch(c: Any, p: Any) -> str | None:
        if c.n != p.n:
            return f"n {c.n} != {p.n}"
        for name, _dtype, _row in FIELDS:
            x, y = getattr(c, name), getattr(p, name)
            if x.dtype != y.dtype or x.shape != y.shape:
                return f"{name}: dtype/shape {x.dtype}{x.shape} != {y.dtype}{y.shape}"
            if not np.array_equal(x, y):
                bad = int(np.flatnonzero(np.any((x != y).reshape(len(x), -1), axis=1))[0])
                return f"{name}[{bad}]: compiled {x[bad]!r} != reference {y[bad]!r}"
        if not np.array_equal(c.drop_counts, p.drop_counts):
            return f"drop_counts {c.drop_counts} != {p.drop_counts}"
        return None

    def one(data: bytes) -> None:
        r = Reader(data)
        flags = r.u8()
        count = r.u8() % 17
        if flags & 0x20:  # free layout: offsets and lengths from the input, possibly outside the arena
            pairs = [(struct.unpack(">h", r.take(2).rjust(2, b"\0"))[0], r.u16() % 2048) for _ in range(count)]
            arena = r.rest()
            offsets = [o for o, _ in pairs]
            lengths = [n for _, n in pairs]
        else:  # frames back to back, each u16 length-prefixed; what is left is the last frame
            arena, offsets, lengths = b"", [], []
            while r.pos < len(r.data) and len(offsets) < 64:
                n = r.u16()
                frame = r.take(n)
                offsets.append(len(arena))
                lengths.append(len(frame))
                arena += frame
                if flags & 0x40:
                    arena += b"\xee" * (n % 5)  # a gap, so frames do not always abut
        kwargs: dict[str, Any] = {}
        if flags & 0x01:
            kwargs["codepoints"] = profile
        kind = (flags >> 3) & 3

        def args() -> tuple[Any, Any, Any]:
            base = np.frombuffer(arena, dtype=np.uint8).copy()
            if kind == 1:
                a: Any = bytes(arena)
            elif kind == 2:  # a strided (non-contiguous) view: both must refuse it the same way
                a = memoryview(np.repeat(base, 2))[::2] if len(base) else memoryview(base)
            elif kind == 3:
                a = bytearray(arena)
            else:
                a = base
            return a, np.array(offsets, dtype=np.int64), np.array(lengths, dtype=np.uint32)

        counters_c = counters_p = None
        if flags & 0x04:
            counters_c = np.arange(n_reasons, dtype=np.uint64)
            counters_p = counters_c.copy()
        out_c = out_p = None
        if flags & 0x02:
            cap = len(offsets) + (flags >> 7) * 3
            out_c, out_p = _core.Batch(cap), reference.Batch(cap)
        core = _outcome(lambda: _core.classify(*args(), out=out_c, counters=counters_c, **kwargs))
        ref = _outcome(lambda: reference.classify(*args(), out=out_p, counters=counters_p, **kwargs))
        _compare_outcomes("classify", core, ref, same_batch)
        if counters_c is not None and not np.array_equal(counters_c, counters_p):
            raise ContractViolation(f"classify: counters {counters_c} != {counters_p}")

    return one


# ---------------------------------------------------------------------------------------------------
# (1b) the forwarding node: compiled vs reference on the same classified block and tables


#: The forwarding node's world of the node targets (``node``, ``ring_node``): neighbor entries of every kind --
#: address suffix (2001:db8:<net>::<host>), flags, state, ifindex, buffer key, tunnel peer -- and routes
#: (net, prefix length, interface, via).  The frames' destinations and sources come from the input: a world
#: where the addresses the seed corpora carry (the sample handover's 2001:db8:: links) meet every kind of
#: entry and route.
_NODE_SEED = bytes(range(16))
_NODE_MACS = (bytes([2, 0, 0, 0, 0, 1]), bytes([2, 0, 0, 0, 0, 2]))


def _node_addr(net: int, host: int) -> bytes:
    return bytes.fromhex("20010db8") + net.to_bytes(2, "big") + bytes(8) + host.to_bytes(2, "big")


def _node_world(impl: Any, handover: bool = False, capacity: int = 64) -> tuple[Any, Any]:
    """A neighbor cache and a node of ``capacity`` frames over the world's entries and routes, two interfaces,
    peer router 2001:db8:2::1; ``handover``: the node tunnels itself (peer 0 routed via the resolved router)."""
    import numpy as np

    from fmipfast.constants import NeighborFlag, NeighborState

    entries = [
        ((1, 1), NeighborFlag.LOCAL | NeighborFlag.STATIC, NeighborState.REACHABLE, 0, -1, -1),
        ((1, 0xA), 0, NeighborState.REACHABLE, 0, -1, -1),
        ((1, 0xB), NeighborFlag.TUNNEL, NeighborState.STALE, 0, -1, 0),
        ((2, 0xA), NeighborFlag.PROXY, NeighborState.INCOMPLETE, 1, 3, -1),
        ((2, 0xB), NeighborFlag.HOLD, NeighborState.REACHABLE, 1, 4, -1),
        ((2, 1), NeighborFlag.LOCAL | NeighborFlag.STATIC, NeighborState.REACHABLE, 1, -1, -1),
        ((3, 0xA), 0, NeighborState.INCOMPLETE, 1, -1, -1),
        ((0xFF, 0xFF), NeighborFlag.ROUTER, NeighborState.REACHABLE, 1, -1, -1),
    ]
    routes = [(1, 64, 0, None), (2, 64, 1, None), (0xFF, 48, 1, (0xFF, 0xFF)), (4, 32, 1, (5, 5))]
    addr = _node_addr
    nc = impl.NeighborCache(32, seed=_NODE_SEED)
    node = impl.Node(nc, capacity, 2)
    for (net, host), flags, state, ifindex, key, peer in entries:
        e = int(nc.insert(np.frombuffer(addr(net, host), np.uint8).reshape(1, 16),
                          np.array([[2, 0, 0, 0, net, host]], np.uint8), np.array([state], np.uint8),
                          flags=np.array([int(flags)], np.uint8), ifindex=np.array([ifindex], np.uint32))[0])
        node.entry_key[e], node.entry_peer[e] = key, peer
    fib = impl.Fib(np.array([list(addr(n, 0)) for n, *_ in routes], np.uint8),
                   np.array([r[1] for r in routes], np.uint8), np.arange(len(routes), dtype=np.int32),
                   seed=_NODE_SEED)
    via = np.array([list(addr(*r[3]) if r[3] else bytes(16)) for r in routes], np.uint8)
    node.set_routes(fib, np.array([r[2] for r in routes], np.int32), via,
                    np.array([r[3] is not None for r in routes], np.uint8))
    node.set_interfaces(np.array([list(m) for m in _NODE_MACS], np.uint8))
    node.set_peers(np.frombuffer(addr(2, 1), np.uint8).reshape(1, 16))
    if handover:  # the node tunnels itself (peer 0 routed via the resolved router) and buffers (per run)
        node.set_tunnel(np.array([list(addr(1, 1)), list(addr(2, 1))], np.uint8),
                        np.array([1280, 1500], np.uint32))
        node.set_tunnel_peers(np.array([list(addr(0xFF, 7)), list(addr(4, 7))], np.uint8))
    return nc, node


def _make_node() -> Callable[[bytes], None]:
    import numpy as np

    from fmipfast import _core, reference
    from fmipfast.constants import Action, DropReason, EngineCounter

    world = _node_world
    worlds = {"core": world(_core), "reference": world(reference),
              "core-h": world(_core, True), "reference-h": world(reference, True)}

    def run(impl: Any, which: str, arena: bytes, offsets: list[int], lengths: list[int], status: list[int],
            iface: int, from_wire: bool, inner: bool, handover: bool, finish_inner: bool, block: bool) -> tuple:
        nc, node = worlds[which + ("-h" if handover else "")]
        buffer = None
        if handover:  # a fresh small buffer per input, so each input's outcome is its own
            buffer = impl.PacketBuffer(slots=6, slot_size=160, max_keys=4, per_key_packets=3)
            node.set_buffer(buffer)
        a = np.frombuffer(arena, dtype=np.uint8).copy()
        off, ln = np.array(offsets, dtype=np.int64), np.array(lengths, dtype=np.uint32)
        drops = np.zeros(len(DropReason), dtype=np.uint64)
        counts = np.zeros(len(EngineCounter), dtype=np.uint64)  # the engine's ledger: the node books into it
        kw = dict(from_wire=from_wire, inner=inner, drops=drops, now_ns=1, finish_inner=finish_inner, counts=counts)
        st = np.array(status, dtype=np.uint32)
        if block:  # classify and run in the node's one call
            present = node.run_block(impl.Batch(64), a, off, ln, st, iface, **kw)
        else:
            present = node.run(impl.classify(a, off, ln), a, off, ln, st, iface, **kw)
        n = len(offsets)
        finished = tuple((int(node.inner_action[i]), int(node.inner_aux[i]), int(node.inner_entry[i]))
                         for i in range(n) if node.action[i] == Action.DECAPPED)
        tx = tuple((tuple(node.tx_offsets[k, :node.tx_count[k]].tolist()),
                    tuple(node.tx_lengths[k, :node.tx_count[k]].tolist())) for k in range(2))
        t_arena, t_off, t_len = node.tunnel_arena, node.tunnel_offsets, node.tunnel_lengths
        tunnel = tuple(tuple(bytes(t_arena[int(t_off[k, j]):int(t_off[k, j]) + int(t_len[k, j])])
                             for j in range(int(node.tunnel_count[k]))) for k in range(2))
        queued = () if buffer is None else tuple(bytes(buffer.flush(k, 2)[0]) for k in range(4))
        return (present, a.tobytes(), tuple(node.action[:n].tolist()), tuple(node.aux[:n].tolist()),
                tuple(node.entry[:n].tolist()), tuple(node.out_if[:n].tolist()), tx, tuple(node.stats.tolist()),
                tuple(drops.tolist()), tunnel, queued, finished, tuple(counts.tolist()))

    def one(data: bytes) -> None:
        r = Reader(data)
        flags = r.u8()
        r.u8()  # the classify layout's count octet (the seed corpus is classify's)
        arena, offsets, lengths, status = b"", [], [], []
        while r.pos < len(r.data) and len(offsets) < 64:
            n = r.u16()
            frame = r.take(n)
            offsets.append(len(arena))
            lengths.append(len(frame))
            status.append(8 if n & 1 and flags & 0x08 else 0)
            arena += frame
        args = (arena, offsets, lengths, status if flags & 0x10 else [], (flags >> 1) & 1, not flags & 0x04,
                bool(flags & 0x40), bool(flags & 0x80), bool(flags & 0x20), bool(flags & 0x01))
        core = _outcome(lambda: run(_core, "core", *args))
        ref = _outcome(lambda: run(reference, "reference", *args))
        names = ("present", "arena", "action", "aux", "entry", "out_if", "tx", "stats", "drops", "tunnel", "queued",
                 "inner")

        def differ(c: Any, p: Any) -> str | None:
            for name, x, y in zip(names, c, p):
                if x != y:
                    return f"{name}: compiled {x!r:.200} != reference {y!r:.200}"
            return None

        _compare_outcomes("node", core, ref, differ)

    return one


# ---------------------------------------------------------------------------------------------------
# (2) the TPACKET_V3 ring kernels on damaged blocks: compiled vs reference

_NEAR_TOP = 2**63 - 1


def _walk_compare() -> Callable[[dict, dict], str | None]:
    """The comparison of two walk dicts (ring_walk_block's, ring_walk_frames'): every array (dtype and values)
    and every count."""
    import numpy as np

    def same_walk(c: dict, p: dict) -> str | None:
        if set(c) != set(p):
            return f"keys {sorted(c)} != {sorted(p)}"
        for k in c:
            x, y = c[k], p[k]
            if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
                if not (isinstance(x, np.ndarray) and isinstance(y, np.ndarray)) or x.dtype != y.dtype \
                        or not np.array_equal(x, y):
                    return f"{k}: compiled {x!r:.200} != reference {y!r:.200}"
            elif x != y or type(x) is not type(y):
                return f"{k}: compiled {x!r} != reference {y!r}"
        return None

    return same_walk


def _make_ring() -> Callable[[bytes], None]:
    import numpy as np

    from fmipfast import _core
    from fmipfast.reference import ring as ref_ring

    same_walk = _walk_compare()

    def same_value(c: Any, p: Any) -> str | None:
        return None if c == p else f"compiled {c!r} != reference {p!r}"

    def one(data: bytes) -> None:
        r = Reader(data)
        flags, off_v, size_v, max_v = r.u8(), r.u16(), r.u16(), r.u8()
        ring_bytes = r.rest()
        size = len(ring_bytes)
        off_mode, size_mode = flags & 3, (flags >> 2) & 3
        if off_mode == 0:
            block_offset = off_v % (size + 1)
        elif off_mode == 1:  # near the top of Py_ssize_t: block_offset + block_size must not wrap
            block_offset = _NEAR_TOP - off_v
        elif off_mode == 2:
            block_offset = -off_v - 1
        else:
            block_offset = off_v
        if size_mode == 0:
            block_size = max(size - block_offset, 0) if block_offset >= 0 else size
        elif size_mode == 1:
            block_size = size_v
        elif size_mode == 2:
            block_size = _NEAR_TOP - size_v
        else:
            block_size = -size_v - 1
        max_frames = None if not flags & 0x10 else max_v

        def ring() -> Any:
            return np.frombuffer(ring_bytes, dtype=np.uint8).copy()

        _compare_outcomes("ring_walk_block",
                          _outcome(lambda: _core.ring_walk_block(ring(), block_offset, block_size,
                                                                 max_frames=max_frames)),
                          _outcome(lambda: ref_ring.ring_walk_block(ring(), block_offset, block_size,
                                                                    max_frames=max_frames)),
                          same_walk)
        _compare_outcomes("ring_block_status",
                          _outcome(lambda: _core.ring_block_status(ring(), block_offset)),
                          _outcome(lambda: ref_ring.ring_block_status(ring(), block_offset)), same_value)
        rc, rp = ring(), ring()
        _compare_outcomes("ring_release_block",
                          _outcome(lambda: _core.ring_release_block(rc, block_offset)),
                          _outcome(lambda: ref_ring.ring_release_block(rp, block_offset)), same_value)
        if not np.array_equal(rc, rp):
            raise ContractViolation("ring_release_block: the two rings differ afterwards")
        if flags & 0x20:  # TX fill: the walk's frames (reference answer) into a TX ring made of the input
            walk = _outcome(lambda: ref_ring.ring_walk_block(ring(), max(block_offset, 0),
                                                             max(min(block_size, size - max(block_offset, 0)), 0)))
            offs = walk[1]["offsets"] if walk[0] == "ok" else np.zeros(0, np.int64)
            lens = walk[1]["lengths"] if walk[0] == "ok" else np.zeros(0, np.uint32)
            if max_v & 0x80:  # and one frame where the input says, possibly outside the arena
                offs = np.append(offs, np.int64(block_offset)).astype(np.int64)
                lens = np.append(lens, np.uint32(size_v)).astype(np.uint32)
            frame_size = 16 * (1 + (max_v & 15)) + (8 if flags & 0x40 else 0)
            head = size_v % 8 - (1 if flags & 0x80 else 0)
            slots = max(size // max(frame_size, 1), 1)
            tx_len = slots * frame_size
            tc = np.frombuffer(ring_bytes[:tx_len].ljust(tx_len, b"\0"), dtype=np.uint8).copy()
            tp = tc.copy()
            arena = ring()
            _compare_outcomes("ring_tx_fill",
                              _outcome(lambda: _core.ring_tx_fill(tc, frame_size, head, arena, offs, lens)),
                              _outcome(lambda: ref_ring.ring_tx_fill(tp, frame_size, head, arena, offs, lens)),
                              same_value)
            if not np.array_equal(tc, tp):
                raise ContractViolation("ring_tx_fill: the two TX rings differ afterwards")

    return one


# ---------------------------------------------------------------------------------------------------
# (2b) the forwarding node reading a TPACKET_V3 RX ring itself (Node.run_ring): compiled vs reference

#: tpacket_block_desc (version, offset_to_priv, block_status, num_pkts, offset_to_first_pkt, blk_len, seq) and
#: tpacket3_hdr (next, sec, nsec, snaplen, len, status, mac, net, rxhash, vlan_tci, vlan_tpid)
_RING_DESC = struct.Struct("=IIIIIIQ")
_RING_HDR = struct.Struct("=IIIIIIHHIIH")
#: the world's destinations (net, host) a built frame goes to: every entry, on-link and routed, unrouted
_RING_DESTINATIONS = ((1, 0xA), (1, 0xB), (2, 0xA), (2, 0xB), (1, 1), (2, 1), (3, 0xA), (0xFF, 7), (4, 9), (9, 9),
                      (0xFF, 0xFF), (1, 0xC))
_RING_HOPS = (64, 1, 2, 255)
#: TX slot heads: in the ring, and outside it (the node fills nothing then); -1 stands for the slot count
_RING_HEADS = (0, 0, 0, 1, 2, -1, 5, 3, 0, 1, 0, 7, -2, -3, 2**62, -(2**63))


def _ring_frame(r: Reader, iface: int) -> tuple[bytes, int]:
    """One frame as the wire brings it to interface ``iface`` and its tp_status bits: a kind octet, a parameter
    octet, then a payload (an octet of length, its octets)."""
    from fmipfast.frames import build_ethernet, build_ipv6

    kind, param = r.u8(), r.u8()
    payload = r.take(r.u8() % 48)
    status = 1 | (8 if param & 0x80 else 0) | (0x10 if kind & 0x80 and param & 0x40 else 0)  # USER, CSUM, VLAN
    dst = _node_addr(*_RING_DESTINATIONS[param % len(_RING_DESTINATIONS)])
    src, hop = _node_addr(7, 7), _RING_HOPS[(param >> 4) & 3]
    eth_dst, eth_src = _NODE_MACS[iface], bytes([2, 9, 9, 9, 9, 9])
    udp = struct.pack(">HHHH", 4000, 5000, 8 + len(payload), 0) + payload
    kind &= 0x7F
    if kind % 12 == 0:  # a peer's tunnel to the router: decapsulated, the inner packet finished or left
        pkt = build_ipv6(_node_addr(2, 1), _node_addr(1, 1), 41, build_ipv6(src, dst, 17, udp, hop), 64)
    elif kind % 12 == 1:  # another station's frame
        pkt, eth_dst = build_ipv6(src, dst, 17, udp, hop), bytes([2, 0, 0, 0, 0xBB, 0xBB])
    elif kind % 12 == 2:  # a link-layer multicast frame
        pkt, eth_dst = build_ipv6(src, dst, 17, udp, hop), bytes([0x33, 0x33, 0, 0, 0, 1])
    elif kind % 12 == 3:  # a link-local source: never forwarded
        pkt = build_ipv6(bytes.fromhex("fe80" + "00" * 13 + "01"), dst, 17, udp, hop)
    elif kind % 12 == 4:  # ICMPv6 (a neighbor solicitation: control)
        pkt = build_ipv6(src, dst, 58, bytes([135, 0, 0, 0]) + bytes(20) + payload, 255)
    elif kind % 12 == 5:  # a Mobility Header (a HOLD entry does not buffer it)
        pkt = build_ipv6(src, dst, 135, bytes([59, 1, 6, 0]) + bytes(12) + payload, hop)
    elif kind % 12 == 6:  # TCP
        pkt = build_ipv6(src, dst, 6, bytes(20) + payload, hop)
    elif kind % 12 == 7:  # anything: the payload is the frame
        return payload, status
    elif kind % 12 == 8:  # an 802.1Q tag in band
        frame = build_ethernet(eth_dst, eth_src, build_ipv6(src, dst, 17, udp, hop))
        return frame[:12] + b"\x81\x00\x00\x05" + frame[12:], status
    elif kind % 12 == 9:  # a tunnel not from the peer, or not to the router
        pkt = build_ipv6(src, _node_addr(1, 1) if param & 1 else dst, 41, build_ipv6(src, dst, 17, udp, hop), 64)
    else:  # UDP, the common case
        pkt = build_ipv6(src, dst, 17, udp, hop)
    return build_ethernet(eth_dst, eth_src, pkt), status


def _ring_block(r: Reader, block_size: int, iface: int) -> bytes:
    """One block of the ring from the input: a mode octet, then either ``block_size`` raw octets, or frames laid
    out as the kernel lays them out (8-aligned, tp_mac from the input), each frame's header its own, and some
    damage; then the block status word and patches (32-bit words at 4-aligned places)."""
    mode = r.u8()
    if mode & 3 == 0:
        block = bytearray(r.take(block_size).ljust(block_size, b"\0"))
    else:
        block = bytearray(block_size)
        mac_off = (82, 66, 90, 32)[(mode >> 2) & 3]
        pos = first = 48
        frames = []
        for _ in range(r.u8() % 25):
            if r.pos >= len(r.data):
                break
            data, status = _ring_frame(r, iface)
            span = -(-(mac_off + len(data)) // 8) * 8
            if pos + span > block_size:
                break
            frames.append((pos, data, status))
            pos += span
        for i, (start, data, status) in enumerate(frames):
            nxt = frames[i + 1][0] - start if i + 1 < len(frames) else 0
            _RING_HDR.pack_into(block, start, nxt, 1_700_000_000, 123 + i, len(data), len(data), status, mac_off,
                                mac_off + 14, 0, 5 if status & 0x10 else 0, 0x8100 if status & 0x10 else 0)
            block[start + mac_off:start + mac_off + len(data)] = data
        _RING_DESC.pack_into(block, 0, 3, 0, 0, len(frames), first, pos, 7)
        damage = (mode >> 4) & 7
        if damage == 1:  # blk_len past the block
            struct.pack_into("=I", block, 20, block_size + 8)
        elif damage == 2 and frames:  # the first tp_next_offset not 8-aligned
            struct.pack_into("=I", block, frames[0][0], 4)
        elif damage == 3:  # more frames announced than the block holds
            struct.pack_into("=I", block, 12, len(frames) + 1 + r.u8())
        elif damage == 4 and frames:  # the last frame's snaplen past the block
            struct.pack_into("=I", block, frames[-1][0] + 12, block_size)
    user = (mode >> 7) | (mode >> 1 & 1)  # mostly the user's
    struct.pack_into("=I", block, 8, (1 | r.u8() << 24) if user else r.u8() & 0xFE)
    for _ in range(r.u8() % 4 if mode & 0x40 else 0):
        at = r.u16() % (block_size // 4) * 4
        struct.pack_into("=I", block, at, r.u32())
    return bytes(block)


def _ring_node_run(impl: Any, ring_bytes: bytes, args: dict[str, Any], tx: list[tuple[bytes, int, int] | None],
                   handover: bool, capacity: int, batch_cap: int, rows: int, keys: int) -> dict[str, Any]:
    """``impl``'s node over the ``node`` target's world reading ``ring_bytes`` with ``run_ring(**args)``: its
    return, the RX ring, the TX rings and heads, drops, ledger, ``ring_tx``, the stopped chunk's walk rows and
    outputs and what the buffer holds (compared by :func:`_ring_node_differ`)."""
    import numpy as np

    from fmipfast.constants import DropReason, EngineCounter

    nc, node = _node_world(impl, handover, capacity)
    buffer = None
    if handover:  # a fresh small buffer, so that blocks meet its caps (4 keys: the HOLD entry's key is past them)
        buffer = impl.PacketBuffer(slots=6, slot_size=160, max_keys=keys, per_key_packets=3)
        node.set_buffer(buffer)
    rings, heads = [], []
    for k, t in enumerate(tx):
        node.set_tx_kick(k, -1)
        if t is None:
            rings.append(None)
            heads.append(None)
            continue
        content, slot, head = t
        rings.append(np.frombuffer(content, np.uint8).copy())
        heads.append(np.array([head], np.int64))
        node.set_tx_ring(k, rings[k], slot, heads[k])
    ring = np.frombuffer(ring_bytes, np.uint8).copy()
    walk_out = (np.full(rows, -7, np.int64), np.full(rows, 7, np.uint32), np.full(rows, 7, np.uint32),
                np.full(rows, -7, np.int64), np.full(rows, 7, np.uint32))
    drops = np.zeros(len(DropReason), np.uint64)
    counts = np.full(len(EngineCounter), 1000, np.uint64)  # the engine's ledger, already counting
    result = tuple(int(v) for v in node.run_ring(impl.Batch(batch_cap), ring, walk_out=walk_out, drops=drops,
                                                 counts=counts, **args))
    out: dict[str, Any] = {
        "result": result, "ring": ring.tobytes(), "drops": drops.tolist(), "counts": counts.tolist(),
        "ring_tx": np.asarray(node.ring_tx).tolist(),
        "tx_rings": [None if x is None else (x.tobytes(), int(h[0])) for x, h in zip(rings, heads)]}
    if result[0] == 3:  # RING_CHUNK: the block's walk, and the chunk the node left to the caller
        walked, start, stop, present = result[5:9]
        out["walk"] = [a[:walked].tolist() for a in walk_out]
        if present:
            m = stop - start
            out["chunk"] = (node.action[:m].tolist(), node.aux[:m].tolist(), node.entry[:m].tolist(),
                            node.out_if[:m].tolist(), node.stats.tolist(),
                            [(node.tx_offsets[k, :node.tx_count[k]].tolist(),
                              node.tx_lengths[k, :node.tx_count[k]].tolist()) for k in range(2)],
                            node.tx_queued.tolist(), node.tunnel_queued.tolist(), node.decap_count)
    if buffer is not None:
        out["queued"] = [bytes(buffer.flush(key, 6_000)[0]) for key in range(keys)]
    return out


def _ring_node_differ(c: dict[str, Any], p: dict[str, Any]) -> str | None:
    for name in sorted(set(c) | set(p)):
        if c.get(name) != p.get(name):
            return f"{name}: compiled {c.get(name)!r:.300} != reference {p.get(name)!r:.300}"
    return None


def _ring_node_tx(r: Reader) -> list[tuple[bytes, int, int] | None]:
    """Two interfaces' TX rings from the input (two octets each): none, or 1-16 slots of 64-2048 octets, some
    the kernel's still, the head in the ring or outside it."""
    tx: list[tuple[bytes, int, int] | None] = []
    for _k in range(2):
        t, u = r.u8(), r.u8()
        if t & 3 == 0:
            tx.append(None)
            continue
        slots, slot = 1 + u % 16, (256, 2048, 128, 64)[t >> 2 & 3]
        content = bytearray(slots * slot)
        for j in range(5):  # slots the kernel still owns (sending): any status but AVAILABLE
            if t >> 3 + j & 1 and j < slots:
                struct.pack_into("=I", content, (3 * j + (u >> 4)) % slots * slot + 20, 1 << (j % 4))
        head = _RING_HEADS[u >> 4]
        tx.append((bytes(content), slot, slots + head + 1 if head in (-1, -2, -3) else head))
    return tx


def _make_ring_node() -> Callable[[bytes], None]:
    from fmipfast import _core, reference

    def one(data: bytes) -> None:
        r = Reader(data)
        flags = r.u8()
        nr = 1 + (flags & 3)
        block_size = 16 * (64 + r.u16() % 193)  # 1024..4096, whole TPACKET_ALIGNMENT units
        options = r.u8()
        iface, keys = options & 1, 4 + (options >> 1 & 1)
        sizes = r.u8()
        capacity, batch_cap = 1 + (sizes & 7), 1 + (sizes >> 3 & 7)
        rows = (block_size // 16 + 1, 257, 1, 2, 3, 8, 16, 64)[sizes >> 6 | (flags >> 4 & 4)]
        c, m = r.u8(), r.u8()
        if flags & 0x20:  # a cursor and limit the checks refuse, now and then
            cursor, max_blocks = c % (nr + 2) - 1, m % (nr + 2)
        else:
            cursor, max_blocks = c % nr, 1 + m % nr
        tx = _ring_node_tx(r)
        tail = (0, 8, 100, 0)[flags >> 2 & 3]
        ring_bytes = b"".join(_ring_block(r, block_size, iface) for _ in range(nr)) + bytes(tail)
        handover = bool(flags & 0x80)
        args = dict(block_size=block_size, block_nr=nr, cursor=cursor, iface=iface, max_blocks=max_blocks,
                    hold=bool(flags & 0x10), now_ns=5_000 if handover else None)
        world = (tx, handover, capacity, batch_cap, rows, keys)
        _compare_outcomes("run_ring", _outcome(lambda: _ring_node_run(_core, ring_bytes, args, *world)),
                          _outcome(lambda: _ring_node_run(reference, ring_bytes, args, *world)), _ring_node_differ)

    return one


# ---------------------------------------------------------------------------------------------------
# (2c) TPACKET_V2 rings: the frame walk and release, and the node reading such a ring (run_ring(per_frame=True))

_RING_HDR2 = struct.Struct("=IIIHHIIHH")  # tpacket2_hdr: status, len, snaplen, mac, net, sec, nsec, tci, tpid
#: the slot statuses a built slot can have: user space's (CSUMNOTREADY / VLAN_VALID as the frame says), the
#: kernel's, other bits
_V2_STATUSES = (None, None, None, None, 0, 2, 0x20000000, 0xFFFFFFFF)


def _v2_slot(r: Reader, size: int, iface: int) -> bytes:
    """One slot of ``size`` octets from the input: a mode octet, then raw octets, or a frame of the ``ring_node``
    kinds (``_ring_frame``) at a tp_mac and with a tp_snaplen the mode picks (inside the slot, on its edges, past
    it, 0xFFFF, 0xFFFFFFFF, from the input), the status its own or one of ``_V2_STATUSES``."""
    mode = r.u8()
    if mode & 7 == 0:
        return r.take(size).ljust(size, b"\0")
    data, status = _ring_frame(r, iface)
    pick = _V2_STATUSES[mode >> 3 & 7]
    status = status if pick is None else pick
    mac = (66, 66, 32, 82, size - 2, size, size + 1, 31)[mode >> 5] if mode & 3 == 3 else 66
    fits = max(min(len(data), size - mac), 0)
    damage = r.u8() & 7 if mode & 4 else 0  # tp_snaplen: what fits, or past the slot, or any 32-bit value
    snap = r.u32() if damage == 7 else (fits, fits, fits, fits, size - mac + 1, 0xFFFF, 0xFFFFFFFF)[damage]
    slot = bytearray(size)
    _RING_HDR2.pack_into(slot, 0, status, len(data), snap & 0xFFFFFFFF, mac & 0xFFFF, (mac + 14) & 0xFFFF,
                         1_700_000_000, r.u8(), 5 if status & 0x10 else 0, 0x8100 if status & 0x10 else 0)
    if mac < size:
        slot[mac:mac + fits] = data[:fits]
    return bytes(slot)


def _make_ring_frames() -> Callable[[bytes], None]:
    import numpy as np

    from fmipfast import _core, reference
    from fmipfast.reference import ring as ref_ring

    same_walk = _walk_compare()

    def same_value(c: Any, p: Any) -> str | None:
        return None if c == p else f"compiled {c!r} != reference {p!r}"

    def one(data: bytes) -> None:
        r = Reader(data)
        flags, fs_v, c, m, opt, sizes = r.u8(), r.u8(), r.u8(), r.u8(), r.u8(), r.u8()
        nr = 1 + (flags & 7)
        size = 16 * (2 + fs_v % 31)  # 32..512 octets a slot
        iface, keys = opt >> 6 & 1, 4 + (opt >> 7)
        tx = _ring_node_tx(r)
        tail = (0, 16, size, 8)[flags >> 6]
        ring_bytes = b"".join(_v2_slot(r, size, iface) for _ in range(nr)) + bytes(tail)
        # the geometry the calls get: the ring's own, or one the checks refuse (past the ring, near 2**63, not a
        # multiple of 16, not an integer)
        geometry = flags >> 3 & 7
        fs, frames, cursor, count = size, nr, c % nr, m % (nr + 1)
        if geometry == 4:
            cursor, count = c % (nr + 2) - 1, m % (nr + 3) - 1
        elif geometry == 5:
            huge = (_NEAR_TOP - m, 2**63 + m, 2**64 + m, -(2**63) - m)[c & 3]
            if c >> 2 & 3 == 0:
                fs = huge - huge % 16
            elif c >> 2 & 3 == 1:
                frames = huge
            elif c >> 2 & 3 == 2:
                cursor = huge
            else:
                count = huge
        elif geometry == 6:
            fs, frames = (size + m % 16 - 8, 16, 0, -16, size)[c % 5], nr + (c >> 4) % 3
        elif geometry == 7:
            cursor = (True, np.int64(c % nr), 1.0, "1", None, np.uint8(0), False, np.int32(-1))[m & 7]
        max_frames = (None, m, m % (nr + 2), 2**63 + m)[opt & 3]
        limit = nr if max_frames is None else min(nr, max_frames)
        out_rows = (None, None, limit, limit + 3, limit - 1, 0)[opt >> 2 & 7 if opt >> 2 & 7 < 6 else 0]

        def ring() -> Any:
            return np.frombuffer(ring_bytes, dtype=np.uint8).copy()

        def out() -> Any:
            return None if out_rows is None or out_rows < 0 else tuple(
                np.full(out_rows, v, d) for v, d in zip((-7, 7, 7, -7, 7), (np.int64, np.uint32, np.uint32,
                                                                            np.int64, np.uint32)))

        rc, rp, oc, op = ring(), ring(), out(), out()
        _compare_outcomes("ring_walk_frames",
                          _outcome(lambda: _core.ring_walk_frames(rc, cursor, fs, frames, max_frames=max_frames,
                                                                  out=oc)),
                          _outcome(lambda: ref_ring.ring_walk_frames(rp, cursor, fs, frames, max_frames=max_frames,
                                                                     out=op)),
                          same_walk)
        if rc.tobytes() != ring_bytes or rp.tobytes() != ring_bytes:
            raise ContractViolation("ring_walk_frames: the walk wrote into the ring")
        if oc is not None and any(not np.array_equal(a, b) for a, b in zip(oc, op)):
            raise ContractViolation("ring_walk_frames: the caller's storage differs afterwards")
        _compare_outcomes("ring_release_frames",
                          _outcome(lambda: _core.ring_release_frames(rc, cursor, fs, frames, count)),
                          _outcome(lambda: ref_ring.ring_release_frames(rp, cursor, fs, frames, count)), same_value)
        if not np.array_equal(rc, rp):
            raise ContractViolation("ring_release_frames: the two rings differ afterwards")
        handover = bool(opt & 0x20)
        rows = (nr, 64, 1, 3)[sizes >> 6]
        args = dict(block_size=fs, block_nr=frames, cursor=cursor, iface=iface, max_blocks=1 + m % nr,
                    hold=bool(opt & 0x10), now_ns=5_000 if handover else None, per_frame=True)
        world = (tx, handover, 1 + (sizes & 7), 1 + (sizes >> 3 & 7), rows, keys)
        _compare_outcomes("run_ring(per_frame=True)",
                          _outcome(lambda: _ring_node_run(_core, ring_bytes, args, *world)),
                          _outcome(lambda: _ring_node_run(reference, ring_bytes, args, *world)), _ring_node_differ)

    return one


# ---------------------------------------------------------------------------------------------------
# (3) messages.decode: a message or MalformedPacket

_SRC, _DST = "fe80::1", "fe80::2"


def _make_messages() -> Callable[[bytes], None]:
    from fmipfast import backend, messages
    from fmipfast.constants import Codepoints
    from fmipfast.errors import MalformedPacket

    profile = Codepoints(type=201, attach=9, handover=1, handover_redirect=3)
    src, dst = (bytes.fromhex("fe80" + "00" * 13 + "01"), bytes.fromhex("fe80" + "00" * 13 + "02"))

    def one(data: bytes) -> None:
        if not data:
            return
        mode, raw = data[0], data[1:]
        kwargs: dict[str, Any] = {"codepoints": profile} if mode & 0x04 else {}
        addrs: tuple[Any, ...] = ()
        if mode & 0x01:  # verify the checksum; 0x02: fill it in first so the decoder is reached
            addrs = (_SRC, _DST)
            if mode & 0x02 and len(raw) >= 4:
                buf = bytearray(raw)
                buf[2:4] = b"\0\0"
                buf[2:4] = backend.icmp6_checksum(src, dst, bytes(buf)).to_bytes(2, "big")
                raw = bytes(buf)
        try:
            message = messages.decode(raw, *addrs, **kwargs)
        except MalformedPacket:
            return
        if not isinstance(message, messages.Message):
            raise ContractViolation(f"decode returned {type(message).__name__}, not a Message")
        repr(message)

    return one


# ---------------------------------------------------------------------------------------------------
# (4) the pcap/pcapng reader: records or PcapError


def _make_pcap() -> Callable[[bytes], None]:
    from fmipfast.errors import PcapError
    from fmipfast.pcap import PcapReader, PcapRecord

    def one(data: bytes) -> None:
        try:
            with PcapReader(io.BytesIO(data), max_record=65536) as reader:
                for record in reader:
                    if not isinstance(record, PcapRecord):
                        raise ContractViolation(f"reader yielded {type(record).__name__}")
        except PcapError:
            return

    return one


# ---------------------------------------------------------------------------------------------------
# (5) lwkerb: the PDU decoders, the KDC-reply reader and the case-1 AP-REQ verifier: LkbError only

_LKB_NOW = 1_800_000_000


def _make_lwkerb() -> Callable[[bytes], None]:
    from fmipfast.security import lwkerb as L

    nar = L.Principal("nar1", "REALM-B")
    key = L.Key(3, bytes(range(32)))
    keytab = L.Keytab()
    keytab.add(nar, key)
    binding = L.HandoverBinding("2001:db8:b::99", "2001:db8:a::99", "2001:db8:b::1", 0x0102)
    decoders: list[Callable[[bytes], Any]] = [
        L.decode_pdu, L.Principal.decode, L.Sealed.decode, L.EncTicketPart.decode, L.Ticket.decode,
        L.HandoverBinding.decode, L.Authenticator.decode, L.ApReq.decode, L.EncApRepPart.decode, L.ApRep.decode,
        L.AsReq.decode, L.TgsReq.decode, L.EncKdcRepPart.decode, L.KdcRep.decode, L.KrbError.decode,
        L.OpenReq.decode, L.OpenRep.decode,
    ]

    class Clock:
        def __call__(self) -> float:
            return _LKB_NOW

    def one(data: bytes) -> None:
        if not data:
            return
        mode, raw = data[0], data[1:]
        try:
            if mode < 0x80:
                decoders[mode % len(decoders)](raw)
            elif mode < 0xC0:  # the router's case-1 check of an AP-REQ, with a fresh replay cache
                verifier = L.ApVerifier("REALM-B", keytab, clock=Clock())
                verifier.verify_local(raw, binding if mode & 1 else L.BINDING_NONE)
            else:  # the client reading a KDC reply under its key
                L.read_kdc_rep(raw, key, 0x0102030405060708)
        except L.LkbError:
            return

    return one


# ---------------------------------------------------------------------------------------------------
# (6) AH verify (and protect -> verify round trips): AhError only

_AH_PEER, _AH_LOCAL = "2001:db8:1::1", "2001:db8:2::1"
_AH_KEY = bytes(range(32))
_AH_SPI = 0x2001


def _make_ah() -> Callable[[bytes], None]:
    from fmipfast.security import ah

    def sad() -> Any:
        db = ah.SADatabase()
        db.add_inbound(ah.SecurityAssociation(_AH_SPI, _AH_KEY, peer=_AH_PEER, local=_AH_LOCAL))
        db.add_inbound(ah.SecurityAssociation(_AH_SPI + 1, _AH_KEY))  # no peer/local check
        return db

    def one(data: bytes) -> None:
        if not data:
            return
        mode, raw = data[0], data[1:]
        if mode & 0x80 == 0:  # verify the input as received
            try:
                out = ah.verify(raw, sad())
            except ah.AhError:
                return
            if not isinstance(out, bytes):
                raise ContractViolation(f"verify returned {type(out).__name__}")
            return
        # protect the input, damage one octet of the result (or none), verify it
        sa = ah.SecurityAssociation(_AH_SPI + 1, _AH_KEY, peer=_AH_PEER)
        try:
            protected = ah.protect(raw, sa)
        except ah.AhError:
            return
        damaged = bytearray(protected)
        where = None
        if mode & 0x40 and damaged:
            where = (raw[0] << 8 | raw[1]) % len(damaged)
            damaged[where] ^= 1 << (mode & 7)
        try:
            out = ah.verify(bytes(damaged), sad())
        except ah.AhError:
            if where is None:
                raise ContractViolation("verify rejected what protect just produced") from None
            return
        if where is None:
            plen = int.from_bytes(raw[4:6], "big")
            if out != raw[:40 + plen]:
                raise ContractViolation("protect -> verify does not give the packet back")

    return one


# ---------------------------------------------------------------------------------------------------
# (7) the config loaders (router/MN TOML and the KDC's TOML), from a file: ConfigError only


def _make_config() -> Callable[[bytes], None]:
    from fmipfast import config
    from fmipfast.errors import ConfigError
    from fmipfast.security import kdc

    directory = tempfile.mkdtemp(prefix="fmipfast-fuzz-config-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    path = os.path.join(directory, "fuzz.toml")

    def one(data: bytes) -> None:
        with open(path, "wb") as fh:
            fh.write(data)
        for load in (config.load, kdc.load_config):
            try:
                load(path)
            except ConfigError:
                pass

    return one


# ---------------------------------------------------------------------------------------------------
# (8) the control protocol: a request line into the server's handler; always a JSON reply dict, and a
# failing command fails with the API's own error (FmipError), never with an unvalidated argument's
# TypeError/ValueError/OverflowError from deep inside


def _make_control() -> Callable[[bytes], None]:
    import asyncio
    from ipaddress import IPv6Address

    from fmipfast import config
    from fmipfast.control import ControlServer, RouterControl
    from fmipfast.engine import Engine
    from fmipfast.errors import FmipError
    from fmipfast.ports import MemoryLink, MemoryPort
    from fmipfast.router import LoopScheduler, RouterAgent
    from fmipfast.security import ah
    from fmipfast.security import lwkerb as L

    toml = """
[router]
name = "par"
[[router.interfaces]]
name = "acc0"
addresses = ["2001:db8:1::1/64"]
ra_min_interval_ms = 600000
ra_max_interval_ms = 600000
[[router.interfaces]]
name = "up0"
role = "upstream"
addresses = ["2001:db8:ff::2/64"]
[[router.routes]]
prefix = "2001:db8:2::/48"
via = "2001:db8:ff::1"
interface = "up0"
[[router.neighbors]]
address = "2001:db8:ff::1"
mac = "02:00:5e:00:00:ff"
interface = "up0"
"""
    now = [1_000_000_000]
    clock = lambda: now[0]  # noqa: E731
    access, core = MemoryLink("access"), MemoryLink("core")
    ports = {"acc0": MemoryPort("acc0", bytes.fromhex("02005e000201"), access, clock=clock),
             "up0": MemoryPort("up0", bytes.fromhex("02005e000202"), core, clock=clock)}
    engine = Engine(config.loads(toml).router, ports, clock=clock, peers=("2001:db8:2::1",), seed=bytes(16))
    engine.poll()
    keytab = L.Keytab()
    principal = L.Principal("host/par", "A.EXAMPLE")
    keytab.add(principal, L.Key(4, bytes(range(100, 132))))
    sad = ah.SADatabase()
    sad.add_inbound(ah.SecurityAssociation(0x2001, bytes(range(32)), peer="2001:db8:2::1"))
    loop = asyncio.new_event_loop()  # never run: the agent only schedules timers on it
    agent = RouterAgent(engine, LoopScheduler(loop, clock=clock), principal=principal, keytab=keytab, sad=sad,
                        sa_out={IPv6Address("2001:db8:2::1"): ah.SecurityAssociation(
                            0x2002, bytes(range(32, 64)), peer="2001:db8:2::1")})
    control = RouterControl(engine)
    control.attach_protocol(agent.trigger, agent.handovers, agent.mobile_nodes)

    class Observed:
        """Passes every command to the real RouterControl and keeps the exception it raised, if any."""

        def __init__(self) -> None:
            self.raised: BaseException | None = None

        def dispatch(self, cmd: str, args: dict[str, Any]) -> Any:
            self.raised = None
            try:
                return control.dispatch(cmd, args)
            except BaseException as exc:
                self.raised = exc
                raise

    observed = Observed()
    server = ControlServer(observed, "/nonexistent/fmipfast-fuzz.sock")
    keys = ("pcoa", "nar", "nar_principal", "prefix_size", "nar_mac", "ncoa", "buffer", "lifetime_ms", "id", "x")
    values = ('"2001:db8:1::a"', '"2001:db8:2::1"', '"host/nar@B.EXAMPLE"', "64", '"02:00:5e:00:02:01"',
              '"2001:db8:2::a"', "true", "3000", "0", "-1", "128", "129", "1e999", "-1e999", "NaN", "1.5", "null",
              "18446744073709551616", '""', '"x"', "[]", "{}", '["a"]', '{"a": 1}', '"::"', '"ff02::1"',
              '"@"', '"a@"', '"@B"', '"zz"', '"0"', '"\u0000"', "false", "9" * 400)

    def line_from(data: bytes) -> bytes:
        """0x01 + pairs of octets: a handover request whose arguments are picked from ``values``."""
        r = Reader(data[1:])
        cmd = ("handover", "ping", "counters", "neighbors", "interfaces", "handovers", "mobile-nodes", "metrics")
        args = {}
        command = cmd[r.u8() % len(cmd)]
        while r.pos < len(r.data):
            k, v = r.u8(), r.u8()
            args[keys[k % len(keys)]] = values[v % len(values)]
        body = ", ".join(f'"{k}": {v}' for k, v in args.items())
        return f'{{"id": 1, "cmd": "{command}", "args": {{{body}}}}}'.encode()

    def one(data: bytes) -> None:
        observed.raised = None
        if data[:1] == b"\x01":
            data = line_from(data)
        line = server._handle(data)  # the line the server writes
        if not isinstance(line, bytes) or not line.endswith(b"\n") or line.count(b"\n") != 1:
            raise ContractViolation(f"reply is not one line: {line!r:.300}")
        try:
            reply = json.loads(line)
        except ValueError as exc:
            raise ContractViolation(f"reply is not JSON: {line!r:.300}") from exc
        if not isinstance(reply, dict) or not {"id", "ok"} <= set(reply) or not isinstance(reply["ok"], bool):
            raise ContractViolation(f"reply is not a reply object: {reply!r:.300}")
        if ("result" in reply) != reply["ok"] or ("error" in reply) == reply["ok"]:
            raise ContractViolation(f"reply has neither/both result and error: {reply!r:.300}")
        exc = observed.raised
        if exc is not None and not isinstance(exc, FmipError):
            raise ContractViolation(f"dispatch failed with {type(exc).__name__}, not the API's error: "
                                    f"{reply['error']!r:.300}") from exc

    return one


TARGETS: dict[str, Target] = {t.name: t for t in (
    Target("classify", "classify(): compiled kernel vs reference, every Batch array", _make_classify, kernel=True),
    Target("node", "Node.run: compiled forwarding node vs reference on a classified block", _make_node,
           kernel=True),
    Target("ring", "ring_walk_block / ring_block_status / ring_release_block / ring_tx_fill vs reference",
           _make_ring, kernel=True),
    Target("ring_node", "Node.run_ring: compiled node reading a TPACKET_V3 RX ring vs reference, TX rings and all",
           _make_ring_node, kernel=True),
    Target("ring_frames", "ring_walk_frames / ring_release_frames and Node.run_ring(per_frame=True) over a "
           "TPACKET_V2 RX ring vs reference", _make_ring_frames, kernel=True),
    Target("messages", "messages.decode: a Message or MalformedPacket", _make_messages),
    Target("pcap", "PcapReader: PcapRecords or PcapError", _make_pcap),
    Target("lwkerb", "lwkerb PDU decoders, read_kdc_rep, ApVerifier.verify_local: LkbError only", _make_lwkerb),
    Target("ah", "ah.verify (and protect -> verify): AhError only; round trip gives the packet back", _make_ah),
    Target("config", "config.load and kdc.load_config on a file: ConfigError only", _make_config),
    Target("control", "ControlServer._handle over a real RouterControl: a JSON reply dict, FmipError failures",
           _make_control),
)}

KERNEL_TARGETS = tuple(name for name, t in TARGETS.items() if t.kernel)


def _make_selftest() -> Callable[[bytes], None]:
    def one(data: bytes) -> None:
        if data.startswith(b"boom"):
            raise ContractViolation("selftest: an input starting with 'boom' breaks this contract")

    return one


#: Not a campaign target: the harness's own check that a crash is found, reported and fails the run.
SELFTEST = Target("_selftest", "crashes on inputs starting with b'boom' (tests the harness)", _make_selftest)


def get(name: str) -> Target:
    if name == SELFTEST.name:
        return SELFTEST
    if name not in TARGETS:
        raise SystemExit(f"unknown target {name!r}; targets: {', '.join(TARGETS)}")
    return TARGETS[name]
