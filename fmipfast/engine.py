"""The router engine: a user-space IPv6 access router over ports (docs/design.md §5).

Per block of frames from a port the engine makes two compiled calls — ``classify``, then the forwarding node
(``Node.run``, ``_kernels/node.pxi``: the link-layer filter, checksum completion for TP_STATUS_CSUMNOTREADY,
the neighbor-cache and FIB lookups, the handover columns, the in-place rewrite of what is forwarded and one
TX vector per output interface) — and then runs Python only for the classes the node hands over: CONTROL
(ND for our and proxied addresses, Router Advertisements, echo, fmipfast messages handed to a protocol hook),
BUFFER (the PacketBuffer of the MN mid-handover, keys from the node's ``entry_key`` column), TUNNEL
(``encapsulate`` to the NAR in the node's ``entry_peer`` column, RFC 2473), DECAP (``decapsulate`` tunnel
frames from peer routers; the inner packets get a pass of their own), RESOLVE (a bounded per-next-hop queue
and Neighbor Solicitations, RFC 4861 §7.2.2) and the ICMPv6 errors (no route, hop limit), then sends the TX
vectors.  A block of forwarded and dropped frames only costs the two calls and one ``send`` per interface.

Conservation (checked by tests): every frame received gets exactly one disposition when processed::

    received = forwarded + tunnelled + decapsulated + buffered + queued_resolve + delivered + dropped

``dropped`` is the sum of ``drops`` by DropReason (kernel ring drops and malformed ring blocks included);
frames later leaving a queue are counted apart (``flushed``, ``resolved_sent``, queue drops).  Frames the
engine originates (ND, RA, ICMPv6 errors, echo replies) are counted as ``originated``.

Ownership: one thread (the asyncio loop of ``run``) drives an Engine; the tables have a single writer.
Kernels take ``now_ns`` from the engine's clock; nothing else reads a clock.

May import: rings, ports, backend, messages, frames, ar, config, errors, constants, security.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import struct
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv6Address

import numpy as np
import numpy.ma  # noqa: F401  -- np.unique imports it lazily on first use: 13 ms, in the first handover's flush

from fmipfast import backend, frames
from fmipfast._linux import TP_STATUS_CSUMNOTREADY
from fmipfast.config import InterfaceConfig, RouterConfig
from fmipfast.constants import (
    DEFAULT_CODEPOINTS,
    NODE_STATS,
    Action,
    Codepoints,
    DropReason,
    Icmp6Type,
    IpProto,
    NeighborFlag,
    NeighborState,
    Verdict,
)
from fmipfast.errors import MalformedPacket
from fmipfast.keys import KeyPool
from fmipfast.messages import (
    AdjacentRealms,
    AdjacentRealmsRequest,
    EchoReply,
    EchoRequest,
    IcmpError,
    Message,
    Mtu,
    NeighborAdvertisement,
    NeighborSolicitation,
    PrefixInformation,
    RouterAdvertisement,
    RouterSolicitation,
    SourceLinkLayerAddress,
    TargetLinkLayerAddress,
    decode,
)
from fmipfast.ports import FrameBatch, Port, pack_frames

__all__ = ["Engine", "Interface", "ControlFrame", "TP_STATUS_CSUMNOTREADY", "ERROR_LOG_INTERVAL_NS"]

log = logging.getLogger("fmipfast.engine")

ALL_NODES = IPv6Address("ff02::1")
ALL_ROUTERS = IPv6Address("ff02::2")
_MASK64 = (1 << 64) - 1
#: How often the neighbor cache and the buffers are scanned for expired entries.
EXPIRY_INTERVAL_NS = 100_000_000
# Plain ints for the per-batch path (an enum attribute lookup costs more than the comparison it feeds).
_V_DROP, _V_FORWARD, _V_TUNNEL = int(Verdict.DROP), int(Verdict.FORWARD), int(Verdict.TUNNEL)
_V_DECAP, _V_BUFFER, _V_CONTROL = int(Verdict.DECAP), int(Verdict.BUFFER), int(Verdict.CONTROL)
_F_LOCAL, _F_PROXY, _F_TUNNEL = int(NeighborFlag.LOCAL), int(NeighborFlag.PROXY), int(NeighborFlag.TUNNEL)
_F_HOLD = int(NeighborFlag.HOLD)
_P_MH = int(IpProto.MH)
_S_INCOMPLETE = int(NeighborState.INCOMPLETE)
_R_OTHER_HOST = int(DropReason.OTHER_HOST)
_ND_FIRST, _ND_LAST = int(Icmp6Type.ROUTER_SOLICITATION), int(Icmp6Type.REDIRECT)  # RFC 4861 types 133-137
#: Neighbor entries whose address and MAC only configuration or the handover protocol may change: ND from the
#: wire never rewrites them (an NA or an NS/RS's link-layer address claiming one is ignored).
_PROTECTED = int(NeighborFlag.LOCAL | NeighborFlag.PROXY | NeighborFlag.STATIC | NeighborFlag.TUNNEL
                 | NeighborFlag.HOLD)
#: Offset of the checksum field in the upper-layer header, by protocol.
# the forwarding node's actions, as ints and as bits of the set ``Node.run`` returns
_A_DROP, _A_CONTROL, _A_BUFFER = int(Action.DROP), int(Action.CONTROL), int(Action.BUFFER)
_A_TUNNEL, _A_DECAP, _A_RESOLVE = int(Action.TUNNEL), int(Action.DECAP), int(Action.RESOLVE)
_A_NO_ROUTE, _A_TIME_EXCEEDED = int(Action.NO_ROUTE), int(Action.TIME_EXCEEDED)
_B_FORWARD, _B_CONTROL, _B_BUFFER = 1 << int(Action.FORWARD), 1 << _A_CONTROL, 1 << _A_BUFFER
_B_TUNNEL, _B_DECAP, _B_RESOLVE = 1 << _A_TUNNEL, 1 << _A_DECAP, 1 << _A_RESOLVE
_B_NO_ROUTE, _B_TIME_EXCEEDED = 1 << _A_NO_ROUTE, 1 << _A_TIME_EXCEEDED
_SLOW = ~((1 << _A_DROP) | _B_FORWARD)  # every action Python has work for after the node
_S_DROPPED, _S_HELD, _S_CSUM = NODE_STATS.index("dropped"), NODE_STATS.index("reorder_held"), \
    NODE_STATS.index("csum_completed")


ORIGINATED_QUEUE = 16  # control-path packets waiting per next hop for its resolution
#: Router Advertisements answering solicitations, per interface (token bucket): an RS flood is not answered
#: one for one.  Multicast answers are also spaced by MIN_DELAY_BETWEEN_RAS_NS (RFC 6275 §7.5's 30 ms).
SOLICITED_RA_RATE = 100.0
SOLICITED_RA_BURST = 20.0
MIN_DELAY_BETWEEN_RAS_NS = 30_000_000
#: Levels of IPv6-in-IPv6 the engine decapsulates in one frame (RFC 2473 §4.1.1: default limit 4).
MAX_DECAP_DEPTH = 4
#: Passes started from a control stage run at once, each with a Batch of its own, up to this nesting depth
#: (deeper ones wait until the stage that started them is done).
MAX_NESTED_PASSES = 8
#: Passes waiting for the outermost one to finish (see Engine._wait).
MAX_WAITING_PASSES = 64
#: At most one log line per this interval for each kind of unexpected error (the rest are counted).
ERROR_LOG_INTERVAL_NS = 1_000_000_000


class _Refused(Exception):
    """Raised by a control-path handler that finds the frame invalid after the data plane's checks: the frame
    is dropped under ``reason`` instead of being counted as delivered."""

    def __init__(self, reason: DropReason) -> None:
        super().__init__(reason.name)
        self.reason = reason


class _RateLimitedLog:
    """One ``log.error`` per kind per interval; what it held back is said in the next line of that kind."""

    def __init__(self, interval_ns: int = ERROR_LOG_INTERVAL_NS) -> None:
        self.interval_ns = interval_ns
        self._last: dict[str, int] = {}
        self._held: dict[str, int] = {}

    def __call__(self, kind: str, now_ns: int, exc: BaseException, **fields: object) -> None:
        last = self._last.get(kind)
        if last is not None and now_ns - last < self.interval_ns:
            self._held[kind] = self._held.get(kind, 0) + 1
            return
        self._last[kind] = now_ns
        held = self._held.pop(kind, 0)
        log.error("%s: %s: %s%s%s", kind, type(exc).__name__, exc,
                  "".join(f" {k}={v}" for k, v in fields.items()),
                  f" ({held} more since the last report)" if held else "",
                  exc_info=exc if last is None else None)


def solicited_node(address: IPv6Address) -> IPv6Address:
    """RFC 4291 §2.7.1: ff02::1:ffXX:XXXX from the low 24 bits."""
    return IPv6Address(b"\xff\x02" + bytes(9) + b"\x01\xff" + address.packed[13:])


@dataclass
class Interface:
    """An interface the engine owns: its port, addresses and Router Advertisement state."""

    index: int
    cfg: InterfaceConfig
    port: Port
    mac: bytes
    link_local: IPv6Address
    addresses: list[tuple[IPv6Address, int]]
    next_ra_ns: int = 0
    last_multicast_ra_ns: int = -(1 << 62)
    solicited_ra_bucket: "_TokenBucket" = field(
        default_factory=lambda: _TokenBucket(SOLICITED_RA_RATE, SOLICITED_RA_BURST, SOLICITED_RA_BURST))

    @property
    def name(self) -> str:
        return self.cfg.name

    @property
    def source(self) -> IPv6Address:
        """The address this router speaks from on the link: the first global one, else link-local."""
        return self.addresses[0][0] if self.addresses else self.link_local

    def __post_init__(self) -> None:
        # the kernels' forms of what the data path hands them per block (uint8 arrays, made once)
        self.mac_array = np.frombuffer(self.mac, dtype=np.uint8)
        self.source_array = np.frombuffer(self.source.packed, dtype=np.uint8)


@dataclass
class ControlFrame:
    """A frame the data plane handed to the control path, with what classify found."""

    iface: Interface
    frame: bytes
    src: IPv6Address
    dst: IPv6Address
    hop_limit: int
    has_ah: bool
    l3_offset: int
    l4_offset: int
    icmp_type: int
    icmp_code: int
    fmip_code: int
    now_ns: int


@dataclass
class _Route:
    hi: int
    lo: int
    mask_hi: int
    mask_lo: int
    plen: int
    iface: int
    via: IPv6Address | None  # None: on-link


@dataclass
class _Resolving:
    next_hop: IPv6Address
    iface: int
    attempts: int
    next_ns: int


@dataclass(slots=True)
class _Hold:
    """NAR, after an Attach: direct traffic to the NCoA ``address`` waits in buffer ``key`` while the PAR's
    tunnel still delivers packets for the MN's other addresses (``aliases``: ncache indexes, the PCoA's)."""

    address: IPv6Address
    aliases: tuple[int, ...]
    key: int
    started_ns: int
    last_inner_ns: int


@dataclass
class _TokenBucket:
    rate: float
    burst: float
    tokens: float
    last_ns: int = 0

    def take(self, now_ns: int) -> bool:
        self.tokens = min(self.burst, self.tokens + (now_ns - self.last_ns) / 1e9 * self.rate)
        self.last_ns = now_ns
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


COUNTERS = ("received", "forwarded", "tunnelled", "decapsulated", "buffered", "queued_resolve", "delivered",
            "dropped", "originated", "flushed", "resolved_sent", "csum_completed", "icmp_errors_sent",
            "icmp_errors_limited", "ns_sent", "na_sent", "ra_sent", "echo_replies", "control_unhandled",
            "received_inner", "reorder_held", "reorder_released", "originated_queued", "originated_dropped",
            "originated_unresolved", "control_errors", "internal_errors", "ra_limited")


class Engine:
    """A user-space IPv6 access router over ``ports`` (interface name -> Port) configured by ``cfg``.

    ``control`` receives the fmipfast messages (a callable taking a :class:`ControlFrame`), the protocol
    layer of ``fmipfast.ar``; without it they are counted as ``control_unhandled``.  ``peers`` are the
    addresses of routers whose IPv6-in-IPv6 packets are decapsulated (docs/design.md §1 step 4).
    """

    def __init__(self, cfg: RouterConfig, ports: Mapping[str, Port], *, codepoints: Codepoints = DEFAULT_CODEPOINTS,
                 clock: Callable[[], int] = time.monotonic_ns, control: Callable[[ControlFrame], None] | None = None,
                 peers: Iterable[str] = (), seed: bytes | None = None) -> None:
        self.cfg = cfg
        self.codepoints = codepoints
        self.clock = clock
        self.control = control
        #: Called as ``on_event(name, fields)`` for what the engine does on its own (a route-switch hold
        #: released); the router agent turns these into its notes.
        self.on_event: Callable[[str, dict[str, object]], None] | None = None
        self.peers = {IPv6Address(p) for p in (*cfg.peers, *peers)}
        self.counters: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self.drops = np.zeros(len(DropReason), dtype=np.uint64)
        # Second passes of queued frames (see _reinject): what became of them, booked apart.
        self.requeue_counters: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self.requeue_drops = np.zeros(len(DropReason), dtype=np.uint64)
        self._kernel_seen: dict[int, tuple[int, int]] = {}
        self._next_expiry_ns = 0
        self.ncache = backend.impl.NeighborCache(cfg.ncache_capacity, seed=seed)
        #: The handover buffer's key space (fmipfast.keys): the NAR machine acquires, the engine releases.
        self.buffer_keys = KeyPool(cfg.buffer_keys)
        self.buffer = backend.impl.PacketBuffer(
            slots=cfg.buffer_slots, slot_size=cfg.buffer_slot_size, max_keys=cfg.buffer_keys,
            per_key_packets=cfg.buffer_per_mn_packets, per_key_bytes=cfg.buffer_per_mn_bytes,
            lifetime_ns=cfg.buffer_lifetime_ms * 1_000_000)
        self.unresolved = backend.impl.PacketBuffer(
            slots=max(16, cfg.resolve_queue_packets * 256), slot_size=cfg.buffer_slot_size,
            max_keys=cfg.ncache_capacity, per_key_packets=max(1, cfg.resolve_queue_packets),
            per_key_bytes=max(1, cfg.resolve_queue_packets) * cfg.buffer_slot_size,
            lifetime_ns=cfg.resolve_retries * cfg.resolve_interval_ms * 1_000_000 * 2)
        # One classify Batch per nesting level of passes (a pass started while another still reads its Batch:
        # the control stage's releases, decapsulated packets), made when first needed.
        self._batches = [backend.impl.Batch(cfg.batch_size)]
        self._depth = 0
        # Passes asked for MAX_NESTED_PASSES deep wait here (on a copy) and run when the outermost pass is done,
        # at most MAX_WAITING_PASSES of them.  Entries: (iface, batch, inner, from_wire, requeue ledger).
        self._waiting: deque[tuple[Interface, FrameBatch, bool, bool, bool]] = deque()
        self._waited = 0  # passes the current outermost pass has queued so far
        self._decap_depth = 0
        self._log_error = _RateLimitedLog()
        self._icmp_bucket = _TokenBucket(cfg.icmp_error_rate, cfg.icmp_error_burst, cfg.icmp_error_burst)
        self._resolving: dict[int, _Resolving] = {}
        #: Packets the control path originated towards a next hop being resolved (by neighbor index).
        self._originated: dict[int, list[bytes]] = {}
        self._proxy_key: dict[int, int] = {}  # ncache index of a PROXY entry -> buffer key
        self._proxy_aliases: dict[IPv6Address, tuple[IPv6Address, ...]] = {}  # NCoA -> also-proxied (PCoA)
        self._tunnel_peer: dict[int, IPv6Address] = {}  # ncache index of a TUNNEL entry -> NAR address
        self._hold: dict[int, _Hold] = {}  # ncache index of a HOLD entry (an NCoA) -> its hold
        self._hold_alias: dict[int, int] = {}  # ncache index of a held NCoA's alias (PCoA) -> the NCoA's index
        self.interfaces: list[Interface] = []
        by_name = {i.name: i for i in cfg.interfaces}
        for name, port in ports.items():
            icfg = by_name.get(name) or InterfaceConfig(name)
            mac = bytes(port.mac)
            ll = IPv6Address(backend.link_local_from_mac48(mac))
            addrs = [(IPv6Address(a), plen) for a, plen in icfg.addresses]
            self.interfaces.append(Interface(len(self.interfaces), icfg, port, mac, ll, addrs))
        self._iface_by_name = {i.name: i for i in self.interfaces}
        self._routes: list[_Route] = []
        for iface in self.interfaces:
            self._add_local(iface.link_local, iface)
            for addr, plen in iface.addresses:
                self._add_local(addr, iface)
                self._add_route(ipaddress.IPv6Network((addr, plen), strict=False), iface.index, None)
        for route in cfg.routes:
            self._add_route(ipaddress.IPv6Network(route.prefix), self._iface_by_name[route.interface].index,
                            IPv6Address(route.via))
        for nb in cfg.neighbors:
            self._set_neighbor(IPv6Address(nb.address), nb.mac, self._iface_by_name[nb.interface].index,
                               NeighborState.REACHABLE, NeighborFlag.STATIC | NeighborFlag.ROUTER)
        self._routes.sort(key=lambda r: -r.plen)
        #: The forwarding node (``Node``): the per-block data path over the neighbor cache, the FIB and the
        #: handover columns (``entry_key``, ``entry_peer``) that the hooks below keep in step with their dicts.
        self._node = backend.impl.Node(self.ncache, cfg.batch_size, max(1, len(self.interfaces)))
        macs = np.zeros((max(1, len(self.interfaces)), 6), dtype=np.uint8)
        for iface in self.interfaces:
            macs[iface.index] = np.frombuffer(iface.mac, dtype=np.uint8)
        self._node.set_interfaces(macs)
        self._node.set_peers(np.array([list(p.packed) for p in self.peers], dtype=np.uint8).reshape(-1, 16))
        self._no_status = np.zeros(cfg.batch_size, dtype=np.uint32)  # read-only use: frames the engine made
        self._no_ts = np.zeros(cfg.batch_size, dtype=np.int64)
        # views of the node's outputs, taken once (its arrays are never reallocated)
        self._node_out = (self._node.stats, self._node.action, self._node.aux, self._node.entry, self._node.out_if,
                          self._node.next_hop, self._node.tx_count, self._node.tx_offsets, self._node.tx_lengths)
        #: NAR addresses of tunnels, by the index the ``entry_peer`` column holds (interned, never reused).
        self._peer_table: list[IPv6Address] = []
        self._peer_index: dict[IPv6Address, int] = {}
        self._peer_arrays: list[np.ndarray] = []
        self._peer_routes: dict[int, tuple[int, IPv6Address] | None] = {}  # by peer index; FIB changes clear it
        self._build_fib()

    # ------------------------------------------------------------------ tables
    def _key(self, address: IPv6Address) -> np.ndarray:
        return np.frombuffer(address.packed, dtype=np.uint8).reshape(1, 16)

    def _add_local(self, address: IPv6Address, iface: Interface) -> None:
        self._set_neighbor(address, iface.mac, iface.index, NeighborState.REACHABLE,
                           NeighborFlag.LOCAL | NeighborFlag.STATIC)

    def _set_neighbor(self, address: IPv6Address, mac: bytes, iface: int, state: int, flags: int,
                      expiry: int = 0) -> int:
        idx = int(self.ncache.insert(self._key(address), np.frombuffer(mac, dtype=np.uint8).reshape(1, 6),
                                     np.array([state], dtype=np.uint8), flags=np.array([flags], dtype=np.uint8),
                                     ifindex=np.array([iface], dtype=np.uint32),
                                     expiry=np.array([expiry], dtype=np.int64))[0])
        return idx

    def _add_route(self, net: ipaddress.IPv6Network, iface: int, via: IPv6Address | None) -> None:
        value = int(net.network_address)
        mask = int(net.netmask)
        self._routes.append(_Route(value >> 64, value & _MASK64, mask >> 64, mask & _MASK64, net.prefixlen, iface,
                                   via))

    def _build_fib(self) -> None:
        """The routes as a longest-prefix-match table (``Fib``: at most ceil(log2(lengths + 1)) probes a
        destination, whatever the number of routes) over columns a lookup indexes: output interface, next hop,
        whether the route has one.  Of two routes for the same prefix the first configured wins (an interface's
        own prefix before a route)."""
        first: dict[tuple[int, int, int], int] = {}
        for i, r in enumerate(self._routes):
            first.setdefault((r.hi, r.lo, r.plen), i)
        rows = sorted(first.values())
        routes = [self._routes[i] for i in rows]
        prefixes = np.zeros((len(routes), 16), dtype=np.uint8)
        for k, r in enumerate(routes):
            prefixes[k] = np.frombuffer(((r.hi << 64) | r.lo).to_bytes(16, "big"), dtype=np.uint8)
        self._fib = backend.impl.Fib(prefixes, np.array([r.plen for r in routes], dtype=np.uint8),
                                     np.arange(len(routes), dtype=np.int32))
        self._fib_iface = np.array([r.iface for r in routes] + [-1], dtype=np.int64)  # [-1]: no route
        self._fib_via = np.zeros((len(routes) + 1, 16), dtype=np.uint8)
        self._fib_has_via = np.zeros(len(routes) + 1, dtype=bool)
        self._fib_routes = routes
        for k, r in enumerate(routes):
            if r.via is not None:
                self._fib_via[k] = np.frombuffer(r.via.packed, dtype=np.uint8)
                self._fib_has_via[k] = True
        self._peer_routes = {}
        m = len(routes)
        self._node.set_routes(self._fib, self._fib_iface[:m].astype(np.int32), self._fib_via[:m],
                              self._fib_has_via[:m].astype(np.uint8))

    def _peer_route(self, p: int, peer: IPv6Address) -> tuple[int, IPv6Address] | None:
        """The route to tunnel peer ``p`` (cached: the FIB only changes in _build_fib, which clears it)."""
        if p not in self._peer_routes:
            self._peer_routes[p] = self.lookup_route(peer)
        return self._peer_routes[p]

    def lookup_route(self, dst: IPv6Address) -> tuple[int, IPv6Address] | None:
        """(output interface index, next hop) for ``dst``, or None."""
        k = int(self._fib.lookup(np.frombuffer(dst.packed, dtype=np.uint8).reshape(1, 16))[0])
        if k < 0:
            return None
        r = self._fib_routes[k]
        return r.iface, (r.via if r.via is not None else dst)

    def _route_batch(self, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Longest-prefix match of a batch: output interface (-1 = no route) and next hop [n,16]."""
        k = self._fib.lookup(np.ascontiguousarray(dst, dtype=np.uint8))
        k = np.where(k < 0, len(self._fib_routes), k)  # the sentinel row: no route
        next_hop = dst.copy()
        via = self._fib_has_via[k]
        if via.any():
            next_hop[via] = self._fib_via[k[via]]
        return self._fib_iface[k], next_hop

    # ------------------------------------------------------------------ handover hooks (used by fmipfast.ar)
    def proxy_add(self, address: str | IPv6Address, key: int | None, lifetime_ms: int, iface: str | None = None,
                  *, also: Iterable[str | IPv6Address] = (), buffer: bool = True) -> int:
        """NAR: proxy ``address`` (an NCoA) for an MN mid-handover; its traffic is buffered under ``key``.
        ``also`` (the PCoA) is buffered under the same key: the PAR tunnels the PCoA's packets here, and
        after decapsulation they wait for the MN with the rest (docs/design.md §1 step 5).  ``buffer`` False (the
        HI's U flag clear): the entries answer Neighbor Solicitations but traffic before the Attach is dropped
        and counted (NOT_BUFFERED).

        ``key`` comes from :attr:`buffer_keys` (the NAR machine acquired it; None: the engine takes one) and
        belongs to the engine from here on: it goes back to the pool when the buffer is no longer used
        (removed, expired, flushed after the Attach, or at the end of the route-switch hold).  Returns the
        NCoA's neighbor index, or -1 if no entry could be made (table full: the key is returned at once) or
        no key was free.  A key outside the pool's range, or a lifetime outside 1..2**32-1 ms, is a
        ``ValueError`` (the caller's mistake, raised before anything changes)."""
        if isinstance(lifetime_ms, bool) or not isinstance(lifetime_ms, int) or not 0 < lifetime_ms < 1 << 32:
            raise ValueError(f"lifetime_ms: need an integer in 1..{(1 << 32) - 1}, got {lifetime_ms!r}")
        if key is None:
            key = self.buffer_keys.acquire()
            if key is None:
                return -1
        elif isinstance(key, bool) or not isinstance(key, int) or not 0 <= key < self.buffer_keys.capacity:
            raise ValueError(f"key: need an integer in 0..{self.buffer_keys.capacity - 1}, got {key!r}")
        else:
            self.buffer_keys.claim(key)
        ifc = self._iface_by_name[iface] if iface else self._access_iface()
        expiry = self.clock() + lifetime_ms * 1_000_000
        first = -1
        replaced: set[int] = set()
        for n, addr in enumerate((address, *also)):
            idx = self._set_neighbor(IPv6Address(addr), bytes(6), ifc.index, NeighborState.INCOMPLETE,
                                     NeighborFlag.PROXY, expiry)
            if idx >= 0:
                old = self._proxy_key.get(idx)
                if old is not None and old >= 0 and old != key:
                    replaced.add(old)
                self._proxy_key[idx] = key if buffer else -1
                self._sync(idx)
            if n == 0:
                first = idx
        self._proxy_aliases[IPv6Address(address)] = tuple(IPv6Address(a) for a in also)
        for old in replaced:
            self._key_done(old)
        self._key_done(key)  # returned at once unless an entry now buffers under it
        return first

    def _sync(self, *entries: int) -> None:
        """Write the handover state of neighbor ``entries`` (their buffer key, their tunnel's NAR) into the
        node's columns; every hook that changes ``_proxy_key``, ``_hold`` or ``_tunnel_peer`` calls it."""
        for idx in entries:
            if not 0 <= idx < self._node.entry_key.shape[0]:
                continue
            key = self._proxy_key.get(idx)
            if key is None:
                h = self._hold.get(idx)
                key = -1 if h is None else h.key
            self._node.entry_key[idx] = key
            peer = self._tunnel_peer.get(idx)
            if peer is not None and peer not in self._peer_index:
                self._peer_index[peer] = len(self._peer_table)
                self._peer_table.append(peer)
                self._peer_arrays.append(np.frombuffer(peer.packed, dtype=np.uint8))
            self._node.entry_peer[idx] = -1 if peer is None else self._peer_index[peer]

    def _key_referenced(self, key: int) -> bool:
        return key in self._proxy_key.values() or any(h.key == key for h in self._hold.values())

    def _key_done(self, key: int | None) -> None:
        """A user of ``key`` let it go: once no proxy entry and no hold refers to it, what it still buffers
        is dropped and the key returns to :attr:`buffer_keys`."""
        if key is None or key < 0 or self._key_referenced(key):
            return
        if self.buffer_keys.in_use(key):
            self.buffer.drop(key)
            self.buffer_keys.release(key)

    def drop_buffer(self, key: int) -> int:
        """Drop what is buffered under ``key`` (the NAR machine's ``BufferDrop``); the key goes back to the
        pool if nothing refers to it any more.  A key not in use is ignored (it may already serve another
        handover's buffer, which is not this caller's to drop).  Returns the frames dropped."""
        if isinstance(key, bool) or not isinstance(key, int) or not self.buffer_keys.in_use(key):
            return 0
        if self._key_referenced(key):
            return 0
        dropped = int(self.buffer.drop(key))
        self.buffer_keys.release(key)
        return dropped

    def proxy_complete(self, address: str | IPv6Address, mac: bytes) -> int:
        """NAR, on Attach: the PROXY entries (the NCoA and its aliases) become REACHABLE with ``mac``;
        returns the number of buffered frames flushed, in arrival order."""
        a = IPv6Address(address)
        keys = []
        entries = []
        for addr in (a, *self._proxy_aliases.pop(a, ())):
            idx = int(self.ncache.lookup(self._key(addr))[0])
            if idx < 0:
                continue
            keys.append(self._proxy_key.pop(idx, None))
            self._sync(idx)
            entries.append(self._set_neighbor(addr, mac, int(self.ncache.ifindex[idx]), NeighborState.REACHABLE,
                                              0, self.clock() + self.cfg.reachable_time_ms * 1_000_000))
        key = next((k for k in keys if k is not None and k >= 0), None)
        flushed = 0 if key is None else self.flush_buffer(key)
        if key is not None and len(entries) > 1 and entries[0] >= 0 and self.cfg.reorder_hold_idle_ms > 0:
            self._hold_start(a, entries[0], tuple(e for e in entries[1:] if e >= 0), key)
        for k in set(keys):
            self._key_done(k)
        return flushed

    # The route switch.  Packets the CN sent to the PCoA reach the MN through the PAR's tunnel, one path
    # longer than the direct one its packets to the NCoA take once the binding has moved: without care the
    # first direct packets overtake the last tunnelled ones.  Nothing on the wire says "the tunnel is empty"
    # (the CN is outside the draft), so the NAR holds direct traffic to the NCoA until the tunnel has been idle
    # for reorder_hold_idle_ms — every packet the CN sent before switching has then arrived, as long as the
    # idle time exceeds the two paths' delay difference — and never longer than reorder_hold_max_ms.
    def _hold_start(self, address: IPv6Address, ncoa: int, aliases: tuple[int, ...], key: int) -> None:
        now = self.clock()
        self.ncache.update(np.array([ncoa], dtype=np.int64),
                           flags=np.array([int(self.ncache.flags[ncoa]) | _F_HOLD], dtype=np.uint8))
        self._hold[ncoa] = _Hold(address, aliases, key, now, now)
        self._sync(ncoa)
        for alias in aliases:
            self._hold_alias[alias] = ncoa

    def _hold_end(self, ncoa: int) -> int:
        """Release a hold: the NCoA's entry forwards again and what was held is sent, in arrival order."""
        h = self._hold.pop(ncoa)
        self._sync(ncoa)
        for alias in h.aliases:
            self._hold_alias.pop(alias, None)
        if self.ncache.in_use[ncoa]:
            self.ncache.update(np.array([ncoa], dtype=np.int64),
                               flags=np.array([int(self.ncache.flags[ncoa]) & ~_F_HOLD], dtype=np.uint8))
        released = self.flush_buffer(h.key) if h.key not in self._proxy_key.values() else 0
        self._key_done(h.key)
        self.counters["reorder_released"] += released
        if self.on_event is not None:
            now = self.clock()
            self.on_event("route_switch_released", {"ncoa": str(h.address), "count": released,
                                                    "held_ms": (now - h.started_ns) / 1e6,
                                                    "tunnel_idle_ms": (now - h.last_inner_ns) / 1e6})
        return released

    def holds(self) -> list[dict[str, object]]:
        """The NCoAs whose direct traffic is held at the route switch (the control API's view)."""
        now = self.clock()
        return [{"ncoa": str(h.address), "held": int(self.buffer.queued(h.key)),
                 "age_ms": (now - h.started_ns) / 1e6, "tunnel_idle_ms": (now - h.last_inner_ns) / 1e6}
                for h in self._hold.values()]

    def _holds_due(self, now: int) -> None:
        idle = self.cfg.reorder_hold_idle_ms * 1_000_000
        most = self.cfg.reorder_hold_max_ms * 1_000_000
        for ncoa in [n for n, h in self._hold.items() if now - h.last_inner_ns >= idle or now - h.started_ns >= most]:
            self._hold_end(ncoa)

    def proxy_remove(self, address: str | IPv6Address) -> None:
        """NAR: the handover ended without the MN: remove the PROXY entries and drop their buffer."""
        a = IPv6Address(address)
        for addr in (a, *self._proxy_aliases.pop(a, ())):
            idx = int(self.ncache.lookup(self._key(addr))[0])
            if idx >= 0 and idx in self._proxy_key:
                key = self._proxy_key.pop(idx)
                self._sync(idx)
                self.ncache.delete(self._key(addr))
                self._key_done(key)

    def flush_buffer(self, key: int) -> int:
        arena, offsets, lengths = self.buffer.flush(key, self.clock())
        if offsets.shape[0] == 0:
            return 0
        arena = np.array(arena, dtype=np.uint8)  # writable copy: frames are re-run through the pipeline
        self.counters["flushed"] += int(offsets.shape[0])
        self._reinject(self.interfaces[0], arena, offsets, lengths, count_as="flushed")
        return int(offsets.shape[0])

    def tunnel_add(self, pcoa: str | IPv6Address, nar: str | IPv6Address) -> int:
        """PAR: tunnel traffic for ``pcoa`` to ``nar`` (docs/design.md §1 step 4)."""
        a = IPv6Address(pcoa)
        idx = int(self.ncache.lookup(self._key(a))[0])
        if idx < 0:
            ifc = self._access_iface()
            idx = self._set_neighbor(a, bytes(6), ifc.index, NeighborState.STALE, NeighborFlag.TUNNEL)
        else:
            self.ncache.update(np.array([idx], dtype=np.int64),
                               flags=np.array([int(self.ncache.flags[idx]) | NeighborFlag.TUNNEL], dtype=np.uint8))
        if idx >= 0:
            self._tunnel_peer[idx] = IPv6Address(nar)
            self._sync(idx)
        return idx

    def tunnel_remove(self, pcoa: str | IPv6Address) -> None:
        idx = int(self.ncache.lookup(self._key(IPv6Address(pcoa)))[0])
        if idx >= 0 and idx in self._tunnel_peer:
            del self._tunnel_peer[idx]
            self._sync(idx)
            self.ncache.update(np.array([idx], dtype=np.int64),
                               flags=np.array([int(self.ncache.flags[idx]) & ~NeighborFlag.TUNNEL], dtype=np.uint8))

    def _access_iface(self) -> Interface:
        for i in self.interfaces:
            if i.cfg.role == "access":
                return i
        return self.interfaces[0]

    # ------------------------------------------------------------------ counters
    def _drop(self, reason: int, n: int = 1) -> None:
        if n:
            self.drops[int(reason)] += n
            self.counters["dropped"] += n

    def _drop_statuses(self, statuses: np.ndarray) -> None:
        """Count frames a kernel refused, by its status (a DropReason value: the kernels' statuses are)."""
        if statuses.size:
            d = self.drops.shape[0]
            counts = np.bincount(statuses, minlength=d)
            if counts.shape[0] > d:  # not a DropReason: a kernel out of step with this engine
                counts[int(DropReason.INTERNAL_ERROR)] += counts[d:].sum()
            self.drops += counts[:d].astype(np.uint64)
            self.counters["dropped"] += int(statuses.size)

    def conservation(self) -> dict[str, int]:
        """The terms of the conservation equation, and whether it holds."""
        c = self.counters
        dispositions = (c["forwarded"] + c["tunnelled"] + c["decapsulated"] + c["buffered"] + c["queued_resolve"]
                        + c["delivered"] + int(self.drops.sum()))
        return {"received": c["received"], "dispositions": dispositions, "holds": c["received"] == dispositions,
                "dropped": int(self.drops.sum())}

    def drop_counts(self) -> dict[str, int]:
        return {r.name.lower(): int(self.drops[r]) for r in DropReason if self.drops[r]}

    # ------------------------------------------------------------------ the pipeline
    def poll(self) -> int:
        """Process everything the ports have now, then run due timers; returns frames received."""
        total = 0
        for iface in self.interfaces:
            try:
                blocks = iface.port.receive()
            except Exception as exc:  # noqa: BLE001 -- a port that fails to read is logged, the others go on
                self._internal_error("receive", exc, interface=iface.name)
                continue
            for fb in blocks:
                try:
                    total += self.process(iface, fb)
                finally:
                    fb.release()
            self._guarded("kernel drops", self._account_kernel_drops, iface)
        self._guarded("timers", self.tick)
        return total

    def _internal_error(self, kind: str, exc: BaseException, **fields: object) -> None:
        self.counters["internal_errors"] += 1
        self._log_error(kind, self.clock(), exc, **fields)

    def _guarded(self, kind: str, work: Callable[..., object], *args: object) -> None:
        """Run periodic or bookkeeping ``work``; whatever it raises is counted and logged, never propagated:
        the next poll runs it again."""
        try:
            work(*args)
        except Exception as exc:  # noqa: BLE001
            self._internal_error(kind, exc)

    def _account_kernel_drops(self, iface: Interface) -> None:
        """Frames the kernel dropped (ring full) or a damaged block hid count as received and dropped."""
        ring = getattr(iface.port, "ring", None)
        if ring is None:
            return
        # the one reader of PACKET_STATISTICS (it resets on read): the ring's, and the control socket's
        kernel_drops = getattr(iface.port, "kernel_drops", None)
        drops = kernel_drops() if kernel_drops is not None else ring.statistics()["drops"]
        walk = ring.counters.get("rx_walk_dropped", 0)
        seen_drops, seen_walk = self._kernel_seen.get(iface.index, (0, 0))
        self._kernel_seen[iface.index] = (drops, walk)
        for new, reason in ((drops - seen_drops, DropReason.KERNEL_RING_DROP),
                            (walk - seen_walk, DropReason.RING_WALK_ERROR)):
            if new > 0:
                self.counters["received"] += new
                self._drop(reason, new)

    def process(self, iface: Interface, fb: FrameBatch, *, inner: bool = False, from_wire: bool = True) -> int:
        """Run one block of frames received on ``iface`` through the pipeline.  ``from_wire`` False for
        frames the engine made itself (decapsulated, flushed from a queue): no link-layer filter.

        Frames that re-enter the pipeline get passes of their own, each with a classify Batch of its own (the
        pass that started them still reads its Batch, and took copies of the node's outputs before its control
        stage): what the control stage releases (a buffer flushed by an Attach, the queue of a next hop resolved
        by an NA; ``process`` called from a control hook) goes out at once, before the chunk's other frames
        (it is older), and before the rest of the control step (the MN's first packets do not wait for the
        Authenticated-MN to be built); passes asked for ``MAX_NESTED_PASSES`` deep wait, on a copy, until the
        outermost pass is done.  Decapsulated inner packets get theirs at the DECAP stage, before the
        chunk's direct frames (tunnelled packets are the older ones), nested at most ``MAX_DECAP_DEPTH`` deep.  Nothing
        raised while handling the frames leaves this method: a frame whose control-path handling fails is
        dropped as CONTROL_ERROR, a pass that fails books its frames without a disposition as INTERNAL_ERROR;
        both are logged, rate-limited, and the conservation equation holds."""
        n_total = len(fb)
        if self._depth >= MAX_NESTED_PASSES:
            self._wait(iface, fb, inner, from_wire, False)
            return n_total
        self._pass(iface, fb, inner, from_wire)
        return n_total

    def _wait(self, iface: Interface, fb: FrameBatch, inner: bool, from_wire: bool, requeue: bool) -> None:
        """A pass asked for too deep: it runs, on a copy, once the outermost pass is done; beyond
        MAX_WAITING_PASSES queued by one outermost pass its frames are refused (INTERNAL_ERROR, in their
        ledger), so a loop of re-entries can neither grow the stack nor run forever."""
        if self._waited >= MAX_WAITING_PASSES:
            counters, drops = (self.requeue_counters, self.requeue_drops) if requeue else (self.counters, self.drops)
            if not requeue:
                counters["received"] += len(fb)
            drops[int(DropReason.INTERNAL_ERROR)] += len(fb)
            counters["dropped"] += len(fb)
            self._internal_error("nested passes", RuntimeError(f"more than {MAX_WAITING_PASSES} passes waiting"))
            return
        copy = FrameBatch(fb.port, np.array(fb.arena, dtype=np.uint8), np.array(fb.offsets, dtype=np.int64),
                          np.array(fb.lengths, dtype=np.uint32), np.array(fb.status, dtype=np.uint32),
                          np.array(fb.ts_ns, dtype=np.int64))
        self._waiting.append((iface, copy, inner, from_wire, requeue))
        self._waited += 1

    def _run(self, iface: Interface, fb: FrameBatch, inner: bool, from_wire: bool, requeue: bool) -> None:
        """One pass; ``requeue``: frames leaving a queue, booked in the second-pass ledger (see _reinject)."""
        if not requeue:
            self._pass(iface, fb, inner, from_wire)
            return
        main = self.counters, self.drops
        self.counters, self.drops = self.requeue_counters, self.requeue_drops
        try:
            self._pass(iface, fb, inner, from_wire)
        finally:
            self.requeue_counters, self.requeue_drops = self.counters, self.drops
            self.counters, self.drops = main

    def _pass(self, iface: Interface, fb: FrameBatch, inner: bool, from_wire: bool) -> None:
        self._depth += 1
        if self._depth == 1:
            self._waited = 0
        try:
            if len(self._batches) < self._depth:
                self._batches.append(backend.impl.Batch(self.cfg.batch_size))
            self._chunks(iface, fb, inner, from_wire)
            while self._depth == 1 and self._waiting:
                self._run(*self._waiting.popleft())
        finally:
            self._depth -= 1

    def _chunks(self, iface: Interface, fb: FrameBatch, inner: bool, from_wire: bool) -> None:
        for start in range(0, len(fb), self.cfg.batch_size):
            stop = min(len(fb), start + self.cfg.batch_size)
            received = self.counters["received"]
            before = self._dispositions()
            try:
                self._process_chunk(iface, fb, start, stop, inner, from_wire)
            except Exception as exc:  # noqa: BLE001 -- the data plane goes on; the frames are accounted for
                self._internal_error("engine pass", exc, interface=iface.name, frames=stop - start)
                if self.counters["received"] == received:
                    self.counters["received"] += stop - start
                missing = (self.counters["received"] - received) - (self._dispositions() - before)
                if missing > 0:
                    self._drop(DropReason.INTERNAL_ERROR, missing)

    def _dispositions(self) -> int:
        c = self.counters
        return (c["forwarded"] + c["tunnelled"] + c["decapsulated"] + c["buffered"] + c["queued_resolve"]
                + c["delivered"] + c["dropped"])

    def _process_chunk(self, iface: Interface, fb: FrameBatch, start: int, stop: int, inner: bool,
                       from_wire: bool) -> None:
        now = self.clock()
        arena = fb.arena
        offsets = np.ascontiguousarray(fb.offsets[start:stop], dtype=np.int64)
        lengths = np.ascontiguousarray(fb.lengths[start:stop], dtype=np.uint32)
        status = np.ascontiguousarray(fb.status[start:stop], dtype=np.uint32)
        n = int(offsets.shape[0])
        c = self.counters
        c["received"] += n
        if inner:
            c["received_inner"] += n
        b = backend.impl.classify(arena, offsets, lengths, codepoints=self.codepoints,
                                  out=self._batches[self._depth - 1])
        # the forwarding node: classify's drops, the link-layer filter, checksum completion, the lookups, the
        # handover columns, the rewrite of what is forwarded and its TX vectors -- one compiled call
        present = self._node.run(b, arena, offsets, lengths, status, iface.index, from_wire=from_wire, inner=inner,
                                 drops=self.drops)
        stats, n_action, n_aux, n_entry, n_out_if, n_next_hop, tx_count, tx_offsets, tx_lengths = self._node_out
        dropped, held, completed, _frames = stats.tolist()
        if dropped:
            c["dropped"] += dropped
        if held:
            c["reorder_held"] += held
        if completed:
            c["csum_completed"] += completed
        if inner and self._hold:  # the tunnel still delivers: the holds of these MNs go on
            hits = n_entry[:n][n_action[:n] != _A_DROP]
            for alias in set(hits[hits >= 0].tolist()) & self._hold_alias.keys():
                self._hold[self._hold_alias[alias]].last_inner_ns = now
        if present & _SLOW == 0:  # the common block: forwarded and dropped frames only
            if present & _B_FORWARD:
                self._transmit_vectors(arena, tx_count, tx_offsets, tx_lengths)
            return
        # Everything below may start passes of its own (the control stage's releases, decapsulated packets),
        # which reuse the node's and classify's outputs: take copies of what this chunk still needs first.
        action = n_action[:n].copy()
        aux = n_aux[:n].copy()
        if present & _B_RESOLVE:
            out_if = n_out_if[:n].copy()
            next_hop = n_next_hop[:n].copy()
        if present & (_B_TUNNEL | _B_DECAP):
            l3 = np.array(b.l3_offset, dtype=np.uint32)
            l4 = np.array(b.l4_offset, dtype=np.uint32)
        tx = None
        if present & _B_FORWARD:
            tx = (tx_count.copy(), tx_offsets.copy(), tx_lengths.copy())
        if present & _B_CONTROL:
            sel = np.flatnonzero(action == _A_CONTROL)
            # what it releases (a buffer flushed by an Attach, a resolved next hop's queue) goes out at once, in
            # passes of their own (process): before the rest of this chunk, which is newer
            self._control_stage(iface, arena, offsets, lengths, b, sel, now, inner)
        if present & _B_BUFFER:
            sel = np.flatnonzero(action == _A_BUFFER)
            self._buffer(arena, offsets, lengths, sel, aux[sel], now)
        if present & _B_TUNNEL:
            sel = np.flatnonzero(action == _A_TUNNEL)
            self._tunnel(arena, offsets, lengths, l3, sel, aux[sel])
        if present & _B_DECAP:
            self._decap(iface, arena, offsets, lengths, l3, l4, np.flatnonzero(action == _A_DECAP))
        if present & _B_NO_ROUTE:
            sel = np.flatnonzero(action == _A_NO_ROUTE)
            for i in sel:
                self._icmp_error(iface, arena, offsets, lengths, int(i), Icmp6Type.DEST_UNREACH, 0, 0, now)
            self._drop(DropReason.NO_ROUTE, int(sel.size))
        if present & _B_TIME_EXCEEDED:
            # a packet that would leave with hop limit 0 is answered with Time Exceeded (RFC 4443 §3.3)
            sel = np.flatnonzero(action == _A_TIME_EXCEEDED)
            for i in sel:
                self._icmp_error(iface, arena, offsets, lengths, int(i), Icmp6Type.TIME_EXCEEDED, 0, 0, now)
            self._drop(DropReason.HOP_LIMIT_EXCEEDED, int(sel.size))
        if present & _B_RESOLVE:
            sel = np.flatnonzero(action == _A_RESOLVE)
            self._resolve(arena, offsets, lengths, sel, out_if[sel].astype(np.int64), next_hop[sel], now)
        if tx is not None:
            self._transmit_vectors(arena, *tx)

    def _control_stage(self, iface: Interface, arena, offsets, lengths, b, sel, now: int, inner: bool) -> None:
        """The CONTROL frames of a chunk, one by one; one frame's failure is that frame's drop."""
        for i in sel:
            try:
                if inner and (int(b.fmip_code[i]) or _ND_FIRST <= int(b.icmp_type[i]) <= _ND_LAST):
                    # a tunnel is not a link: hop limit 255 inside it proves nothing (RFC 4861 §7.1), and the
                    # outer source of a tunnel from a peer is only an address anyone on that link can write
                    raise _Refused(DropReason.ND_INVALID if not int(b.fmip_code[i]) else DropReason.CONTROL_REJECTED)
                self._control(iface, arena, offsets, lengths, b, int(i), now)
            except _Refused as refused:
                self._drop(refused.reason)
            except Exception as exc:  # noqa: BLE001 -- one frame's failure never stops the batch
                self.counters["control_errors"] += 1
                self._drop(DropReason.CONTROL_ERROR)
                self._log_error("control path", now, exc, interface=iface.name)
            else:
                self.counters["delivered"] += 1

    # ------------------------------------------------------------------ FORWARD and RESOLVE
    def _transmit_vectors(self, arena, tx_count, tx_offsets, tx_lengths) -> None:
        """Send the node's TX vectors: frame ``j`` of interface ``k`` at ``tx_offsets[k, j]``."""
        for k, m in enumerate(tx_count.tolist()):
            if m:
                self._transmit(self.interfaces[k], arena, tx_offsets[k, :m], tx_lengths[k, :m], "forwarded")

    def _transmit(self, out: Interface, arena, offsets, lengths, counter: str) -> None:
        if not offsets.shape[0]:
            return
        sent = out.port.send(arena, offsets, lengths)
        self.counters[counter] += sent
        lost = int(offsets.shape[0]) - sent
        if lost:
            self._drop(DropReason.TX_RING_FULL, lost)

    def _resolve(self, arena, offsets, lengths, sel, out_if, next_hop, now) -> None:
        keys = np.empty(sel.size, dtype=np.int32)
        ok = np.ones(sel.size, dtype=bool)
        for j in range(sel.size):
            hop_addr = IPv6Address(bytes(next_hop[j]))
            idx = int(self.ncache.lookup(next_hop[j:j + 1])[0])
            if idx < 0:
                idx = self._set_neighbor(hop_addr, bytes(6), int(out_if[j]), NeighborState.INCOMPLETE, 0)
                if idx < 0:
                    ok[j] = False
                    continue
            keys[j] = idx
            if idx not in self._resolving:
                self._resolving[idx] = _Resolving(hop_addr, int(out_if[j]), 0, now)
                self._solicit(idx, now)
        if (~ok).any():
            self._drop(DropReason.NEIGHBOR_TABLE_FULL, int((~ok).sum()))
        if ok.any():
            st = self.unresolved.push(keys[ok], arena, offsets[sel[ok]], lengths[sel[ok]], now)
            queued = int((st == 0).sum())
            self.counters["queued_resolve"] += queued
            self._drop_statuses(st[st != 0])

    def _solicit(self, idx: int, now: int) -> None:
        r = self._resolving[idx]
        iface = self.interfaces[r.iface]
        target = r.next_hop
        ns = NeighborSolicitation(target, (SourceLinkLayerAddress(iface.mac),))
        dst = solicited_node(target)
        self._send_control(iface, ns, iface.source, dst, frames.multicast_mac(dst))
        self.counters["ns_sent"] += 1
        r.attempts += 1
        r.next_ns = now + self.cfg.resolve_interval_ms * 1_000_000

    def _resolved(self, idx: int) -> None:
        """The next hop answered: send what waited for it."""
        if self._resolving.pop(idx, None) is None:
            return
        waiting = self._originated.pop(idx, [])
        if waiting:
            out = self.interfaces[int(self.ncache.ifindex[idx])]
            mac = bytes(self.ncache.macs[idx])
            out.port.send_frames([frames.build_ethernet(mac, out.mac, p) for p in waiting])
            self.counters["originated"] += len(waiting)
        arena, offsets, lengths = self.unresolved.flush(idx, self.clock())
        if offsets.shape[0]:
            arena = np.array(arena, dtype=np.uint8)
            self.counters["resolved_sent"] += int(offsets.shape[0])
            self._reinject(self.interfaces[int(self.ncache.ifindex[idx])], arena, offsets, lengths,
                           count_as="resolved_sent")

    def _reinject(self, iface: Interface, arena, offsets, lengths, *, count_as: str) -> None:
        """Frames leaving a queue (a flushed handover buffer, a resolved next hop) go through the pipeline
        again.  They got their disposition when they were queued, so this second pass is booked in a
        separate ledger (:attr:`requeue_counters`, :attr:`requeue_drops`), keeping the main equation exact."""
        fb = FrameBatch(iface.port, arena, offsets, lengths, np.zeros(offsets.shape[0], dtype=np.uint32),
                        np.zeros(offsets.shape[0], dtype=np.int64))
        if self._depth >= MAX_NESTED_PASSES:
            self._wait(iface, fb, False, False, True)
        else:
            self._run(iface, fb, False, False, True)

    # ------------------------------------------------------------------ BUFFER, TUNNEL, DECAP
    def _buffer(self, arena, offsets, lengths, sel, keys, now) -> None:
        """Buffer the selected frames under their keys (the node's ``entry_key`` column); -1: this handover
        does not buffer (the HI's U flag was clear)."""
        keys = keys.astype(np.int32, copy=False)
        known = keys >= 0
        if not known.all():
            self._drop(DropReason.NOT_BUFFERED, int((~known).sum()))
            sel, keys = sel[known], keys[known]
        if sel.size:
            st = self.buffer.push(keys, arena, offsets[sel], lengths[sel], now)
            ok = st == 0
            self.counters["buffered"] += int(ok.sum())
            if not ok.all():
                self._drop_statuses(st[~ok])

    def _tunnel(self, arena, offsets, lengths, l3, sel, peers) -> None:
        """Encapsulate the selected frames toward their NAR (the node's ``entry_peer`` column: an index into
        :attr:`_peer_table`) per RFC 2473, one kernel call per NAR; the outer Ethernet destination is the next
        hop's, filled by the kernel.  Tunnel packets are this router's own: no hop-limit decrement, and an
        unresolved next hop queues them like forwarded traffic (counted ``queued_resolve``, not ``tunnelled``)."""
        single = bool((peers == peers[0]).all())  # one NAR: the common case
        for p in [int(peers[0])] if single else np.unique(peers).tolist():
            group = sel if single else sel[peers == p]
            peer = self._peer_table[p] if 0 <= p < len(self._peer_table) else None
            route = None if peer is None else self._peer_route(p, peer)
            if peer is None or route is None:
                self._drop(DropReason.NO_ROUTE, int(group.size))
                continue
            out = self.interfaces[route[0]]
            hop = route[1]
            idx = int(self.ncache.lookup(self._key(hop))[0])
            resolved = idx >= 0 and int(self.ncache.states[idx]) != _S_INCOMPLETE
            dst_mac = np.asarray(self.ncache.macs[idx], dtype=np.uint8) if resolved else np.zeros(6, dtype=np.uint8)
            out_arena, out_off, out_len, st = backend.impl.encapsulate(
                arena, offsets, lengths, l3, group, out.source_array, self._peer_arrays[p], dst_mac,
                out.mac_array, hop_limit=64, mtu=out.cfg.mtu)
            ok = st == 0
            if not ok.all():
                self._drop_statuses(st[~ok])
                out_off, out_len = out_off[ok], out_len[ok]
            m = int(out_off.shape[0])
            if not m:
                continue
            if resolved:
                self._transmit(out, out_arena, out_off, out_len, "tunnelled")
            else:
                self._resolve(out_arena, out_off, out_len, np.arange(m, dtype=np.int64),
                              np.full(m, route[0], dtype=np.int64),
                              np.tile(np.frombuffer(hop.packed, dtype=np.uint8), (m, 1)), self.clock())

    def _decap(self, iface, arena, offsets, lengths, l3, l4, sel) -> None:
        """Decapsulate the selected IPv6-in-IPv6 packets (the node checked that a peer sent them)."""
        out_arena, out_off, out_len, st = backend.impl.decapsulate(arena, offsets, lengths, l3, l4, sel)
        ok = st == 0
        if not ok.all():
            self._drop_statuses(st[~ok])
            out_off, out_len = out_off[ok], out_len[ok]
        m = int(out_off.shape[0])
        if not m:
            return
        # the inner packets' own pass, now (the Batch of this chunk is no longer read), so that what the
        # tunnel delivered goes out before this chunk's direct frames (they are newer).  Nested tunnels are
        # decapsulated up to MAX_DECAP_DEPTH levels (RFC 2473 §4.1.1's default encapsulation limit).
        if self._decap_depth >= MAX_DECAP_DEPTH:
            self._drop(DropReason.DECAP_TOO_DEEP, m)
            return
        self.counters["decapsulated"] += m
        # the kernel's output arena is new and writable: the inner pass rewrites it in place
        inner = FrameBatch(iface.port, out_arena, out_off, out_len, self._no_status[:m] if m <= self.cfg.batch_size
                           else np.zeros(m, dtype=np.uint32), self._no_ts[:m] if m <= self.cfg.batch_size
                           else np.zeros(m, dtype=np.int64))
        self._decap_depth += 1
        try:
            self._pass(iface, inner, True, False)
        finally:
                self._decap_depth -= 1

    # ------------------------------------------------------------------ CONTROL
    def _control(self, iface: Interface, arena, offsets, lengths, b, i: int, now: int) -> None:
        o, n = int(offsets[i]), int(lengths[i])
        frame = np.asarray(arena[o:o + n]).tobytes()
        cf = ControlFrame(iface, frame, IPv6Address(bytes(b.src[i])), IPv6Address(bytes(b.dst[i])),
                          int(b.hop_limit[i]), bool(b.has_ah[i]), int(b.l3_offset[i]), int(b.l4_offset[i]),
                          int(b.icmp_type[i]), int(b.icmp_code[i]), int(b.fmip_code[i]), now)
        if cf.fmip_code:
            if self.control is not None:
                self.control(cf)
            else:
                self.counters["control_unhandled"] += 1
            return
        if int(b.next_header[i]) != IpProto.ICMPV6:
            self.counters["control_unhandled"] += 1
            return
        try:
            msg = decode(frame[cf.l4_offset:cf.l3_offset + 40 + struct.unpack_from("!H", frame, cf.l3_offset + 4)[0]],
                         codepoints=self.codepoints)
        except MalformedPacket:
            raise _Refused(DropReason.CONTROL_REJECTED) from None
        if isinstance(msg, NeighborSolicitation):
            self._on_ns(cf, msg)
        elif isinstance(msg, NeighborAdvertisement):
            self._on_na(cf, msg)
        elif isinstance(msg, RouterSolicitation):
            self._on_rs(cf, msg)
        elif isinstance(msg, EchoRequest):
            self._send_control(iface, EchoReply(msg.identifier, msg.sequence, msg.data), cf.dst, cf.src,
                               frame[6:12])
            self.counters["echo_replies"] += 1
        else:
            self.counters["control_unhandled"] += 1

    def _answers_for(self, target: IPv6Address) -> tuple[int, int] | None:
        idx = int(self.ncache.lookup(self._key(target))[0])
        if idx < 0:
            return None
        flags = int(self.ncache.flags[idx])
        if flags & (NeighborFlag.LOCAL | NeighborFlag.PROXY):
            return idx, flags
        return None

    def _learn(self, iface: Interface, address: IPv6Address, mac: bytes, *, solicited: bool) -> None:
        if address.is_unspecified or address.is_multicast:
            return
        idx = int(self.ncache.lookup(self._key(address))[0])
        if idx >= 0 and (int(self.ncache.flags[idx]) & _PROTECTED or (
                int(self.ncache.ifindex[idx]) != iface.index and self.ncache.states[idx] != NeighborState.INCOMPLETE)):
            return  # configured or the protocol's, or a neighbor of another link: not for this frame to move
        state = NeighborState.REACHABLE if solicited else NeighborState.STALE
        new = self._set_neighbor(address, mac, iface.index, state, 0,
                                 self.clock() + self.cfg.reachable_time_ms * 1_000_000)
        if new >= 0 and new in self._resolving:
            self._resolved(new)

    def _link_address(self, cf: ControlFrame, options: Iterable[object],
                      kind: type[SourceLinkLayerAddress] | type[TargetLinkLayerAddress]) -> bytes | None:
        """The message's link-layer address option of ``kind`` as a 6-octet MAC, or None without one.  On
        Ethernet the option carries exactly 6 octets (RFC 2464 §6): another length, or the option twice, makes
        the message invalid (as Linux's ndisc has it), and so does a source link-layer address from the
        unspecified address (RFC 4861 §6.1.1, §7.1.1): such a message is dropped as ND_INVALID."""
        found: list[bytes] = [o.address for o in options if isinstance(o, (SourceLinkLayerAddress,
                                                                             TargetLinkLayerAddress))
                              and type(o) is kind]
        if not found:
            return None
        if len(found) > 1 or len(found[0]) != 6 or (kind is SourceLinkLayerAddress and cf.src.is_unspecified):
            raise _Refused(DropReason.ND_INVALID)
        return bytes(found[0])

    def _on_ns(self, cf: ControlFrame, ns: NeighborSolicitation) -> None:
        slla = self._link_address(cf, ns.options, SourceLinkLayerAddress)
        if slla is not None:
            self._learn(cf.iface, cf.src, slla, solicited=False)  # RFC 4861 §7.2.3
        found = self._answers_for(ns.target)
        if found is None:
            return
        _idx, flags = found
        proxy = bool(flags & NeighborFlag.PROXY)
        if cf.src.is_unspecified:  # DAD: answer to all-nodes, S=0 (RFC 4861 §7.2.4)
            dst, dst_mac, solicited = ALL_NODES, frames.multicast_mac(ALL_NODES), False
        else:
            dst, dst_mac, solicited = cf.src, slla or cf.frame[6:12], True
        na = NeighborAdvertisement(ns.target, router=True, solicited=solicited, override=not proxy,
                                   options=(TargetLinkLayerAddress(cf.iface.mac),))
        self._send_control(cf.iface, na, ns.target if not proxy else cf.iface.link_local, dst, dst_mac)
        self.counters["na_sent"] += 1

    def _on_na(self, cf: ControlFrame, na: NeighborAdvertisement) -> None:
        tlla = self._link_address(cf, na.options, TargetLinkLayerAddress)
        idx = int(self.ncache.lookup(self._key(na.target))[0])
        if idx < 0 or tlla is None:
            return
        if int(self.ncache.flags[idx]) & _PROTECTED:
            return  # a claim on our address, a configured neighbor or an MN mid-handover: not ND's to change
        if int(self.ncache.ifindex[idx]) != cf.iface.index:
            return  # the neighbor lives on another link: an NA from this one says nothing about it
        self._set_neighbor(na.target, tlla, int(self.ncache.ifindex[idx]),
                           NeighborState.REACHABLE if na.solicited else NeighborState.STALE,
                           NeighborFlag.ROUTER if na.router else 0,
                           self.clock() + self.cfg.reachable_time_ms * 1_000_000)
        self._resolved(idx)

    def router_advertisement(self, iface: Interface, *, with_realms: bool = True) -> RouterAdvertisement:
        opts: list = [SourceLinkLayerAddress(iface.mac), Mtu(iface.cfg.mtu)]
        for addr, plen in iface.addresses:
            net = ipaddress.IPv6Network((addr, plen), strict=False)
            opts.append(PrefixInformation(plen, net.network_address, 0xC0, 2592000, 604800))
        if with_realms and iface.cfg.adjacent_realms:
            opts.append(AdjacentRealms(iface.cfg.adjacent_realms))
        return RouterAdvertisement(64, 0, iface.cfg.ra_lifetime_s, 0, 0, tuple(opts))

    def _on_rs(self, cf: ControlFrame, rs: RouterSolicitation) -> None:
        if cf.iface.cfg.role != "access":
            return
        slla = self._link_address(cf, rs.options, SourceLinkLayerAddress)
        if slla is not None:
            self._learn(cf.iface, cf.src, slla, solicited=False)
        wants_realms = any(isinstance(o, AdjacentRealmsRequest) for o in rs.options)
        if cf.src.is_unspecified or slla is None:
            dst, mac = ALL_NODES, frames.multicast_mac(ALL_NODES)
            # RFC 4861 §6.2.6: multicast answers are rate-limited (RFC 6275 §7.5: 30 ms on mobility links);
            # the solicitor gets the one just sent to all nodes
            if cf.now_ns - cf.iface.last_multicast_ra_ns < MIN_DELAY_BETWEEN_RAS_NS:
                self.counters["ra_limited"] += 1
                return
            cf.iface.last_multicast_ra_ns = cf.now_ns
        else:
            dst, mac = cf.src, slla
        if not cf.iface.solicited_ra_bucket.take(cf.now_ns):  # a flood of RS is not answered RA for RS
            self.counters["ra_limited"] += 1
            return
        ra = self.router_advertisement(cf.iface, with_realms=wants_realms)
        self._send_control(cf.iface, ra, cf.iface.link_local, dst, mac)
        self.counters["ra_sent"] += 1

    def _icmp_error(self, iface: Interface, arena, offsets, lengths, i: int, kind: int, code: int, value: int,
                    now: int) -> None:
        """RFC 4443 §2.4: never about an error, a multicast or an unspecified source; rate-limited."""
        o, n = int(offsets[i]), int(lengths[i])
        frame = np.asarray(arena[o:o + n]).tobytes()
        l3 = 14
        if len(frame) < l3 + 40:
            return
        src = IPv6Address(frame[l3 + 8:l3 + 24])
        if src.is_multicast or src.is_unspecified or IPv6Address(frame[l3 + 24:l3 + 40]).is_multicast:
            return
        if frame[l3 + 6] == IpProto.ICMPV6 and len(frame) > l3 + 40 and frame[l3 + 40] < 128:
            return
        if not self._icmp_bucket.take(now):
            self.counters["icmp_errors_limited"] += 1
            return
        plen = struct.unpack_from("!H", frame, l3 + 4)[0]
        err = IcmpError(kind, code, value, frame[l3:l3 + 40 + plen])
        self._send_control(iface, err, iface.source, src, frame[6:12])
        self.counters["icmp_errors_sent"] += 1

    def _send_control(self, iface: Interface, msg: Message, src: IPv6Address, dst: IPv6Address,
                      dst_mac: bytes) -> None:
        frame = frames.icmp6_frame(msg, src, dst, iface.mac, bytes(dst_mac), codepoints=self.codepoints)
        iface.port.send(*pack_frames([frame]))
        self.counters["originated"] += 1

    def send_packet(self, packet: bytes, *, iface: str | None = None) -> bool:
        """Originate an IPv6 packet built by the control path (e.g. an fmipfast message): route it, fill the
        Ethernet header from the neighbor cache (link-local/multicast destinations need ``iface``).  A next
        hop without a usable entry is resolved as for forwarded packets (RFC 4861 §7.2.2: an INCOMPLETE entry,
        Neighbor Solicitations) while the packet waits, up to ``ORIGINATED_QUEUE`` per next hop (drop-oldest,
        ``originated_dropped``; ``originated_unresolved`` if resolution fails).  False if it cannot be sent
        or queued: no route, or a full neighbor table."""
        dst = IPv6Address(packet[24:40])
        if dst.is_multicast:
            out = self._iface_by_name[iface] if iface else self._access_iface()
            out.port.send_frames([frames.build_ethernet(frames.multicast_mac(dst), out.mac, packet)])
            self.counters["originated"] += 1
            return True
        if dst.is_link_local:
            out = self._iface_by_name[iface] if iface else self._access_iface()
            hop = dst
        else:
            route = self.lookup_route(dst)
            if route is None:
                return False
            out, hop = self.interfaces[route[0]], route[1]
        idx = int(self.ncache.lookup(self._key(hop))[0])
        if idx < 0 or self.ncache.states[idx] == NeighborState.INCOMPLETE:
            return self._originate_after_resolution(out, hop, idx, packet)
        out.port.send_frames([frames.build_ethernet(bytes(self.ncache.macs[idx]), out.mac, packet)])
        self.counters["originated"] += 1
        return True

    def _originate_after_resolution(self, out: Interface, hop: IPv6Address, idx: int, packet: bytes) -> bool:
        now = self.clock()
        where = self.interfaces.index(out)
        if idx < 0:
            idx = self._set_neighbor(hop, bytes(6), where, NeighborState.INCOMPLETE, 0)
            if idx < 0:
                self._drop(DropReason.NEIGHBOR_TABLE_FULL, 1)
                return False
        queue = self._originated.setdefault(idx, [])
        if len(queue) >= ORIGINATED_QUEUE:
            queue.pop(0)
            self.counters["originated_dropped"] += 1
        queue.append(packet)
        self.counters["originated_queued"] += 1
        if idx not in self._resolving:
            self._resolving[idx] = _Resolving(hop, where, 0, now)
            self._solicit(idx, now)
        return True

    # ------------------------------------------------------------------ timers
    def tick(self) -> None:
        """Periodic work: Router Advertisements, NS retransmissions, expiry of buffers and entries, the end
        of route-switch holds."""
        now = self.clock()
        if self._hold:
            self._holds_due(now)
        for iface in self.interfaces:
            if iface.cfg.role == "access" and now >= iface.next_ra_ns:
                self._send_control(iface, self.router_advertisement(iface), iface.link_local, ALL_NODES,
                                   frames.multicast_mac(ALL_NODES))
                self.counters["ra_sent"] += 1
                span = iface.cfg.ra_max_interval_ms - iface.cfg.ra_min_interval_ms
                jitter = (now // 7919) % (span + 1) if span else 0
                iface.next_ra_ns = now + (iface.cfg.ra_min_interval_ms + jitter) * 1_000_000
        for idx, r in list(self._resolving.items()):
            if now < r.next_ns:
                continue
            if r.attempts >= self.cfg.resolve_retries:
                del self._resolving[idx]
                unsent = len(self._originated.pop(idx, []))
                if unsent:
                    self.counters["originated_unresolved"] += unsent
                lost = self.unresolved.drop(idx)
                self.ncache.delete(self._key(r.next_hop))
                if lost:  # queued frames already had their disposition (queued_resolve): the second ledger
                    self.requeue_drops[int(DropReason.RESOLVE_FAILED)] += int(lost)
                    self.requeue_counters["dropped"] += int(lost)
            else:
                self._solicit(idx, now)
        if now < self._next_expiry_ns:
            return
        # the table scans run at most every EXPIRY_INTERVAL_NS, not on every batch (poll ticks per batch)
        self._next_expiry_ns = now + EXPIRY_INTERVAL_NS
        self.buffer.expire(now)
        self.unresolved.expire(now)
        expired = self.ncache.expire(now)
        if expired:
            live = set(np.flatnonzero(np.asarray(self.ncache.in_use)).tolist())
            for idx in [k for k in self._tunnel_peer if k not in live]:
                del self._tunnel_peer[idx]
                self._sync(idx)
            for idx in [k for k in self._proxy_key if k not in live]:
                self._key_done(self._proxy_key.pop(idx))
                self._sync(idx)
            for idx in [k for k in self._hold if k not in live]:
                self._hold_end(idx)

    # ------------------------------------------------------------------ the loop
    async def run(self, stop: asyncio.Event, *, tick_s: float = 0.01) -> None:
        """Serve until ``stop`` is set: readers on ring ports, a periodic tick for timers and pull ports."""
        loop = asyncio.get_running_loop()
        fds = []
        for iface in self.interfaces:
            for fd in iface.port.filenos():
                loop.add_reader(fd, self.poll)
                fds.append(fd)
        try:
            while not stop.is_set():
                self.poll()
                try:
                    await asyncio.wait_for(stop.wait(), tick_s)
                except asyncio.TimeoutError:
                    pass
        finally:
            for fd in fds:
                loop.remove_reader(fd)
