"""The router engine: a user-space IPv6 access router over ports (docs/design.md §5), composed of the parts of
this package, each holding the shared state it needs and nothing more:

* the tables — the neighbor cache, the forwarding node over it, the handover buffer, the resolution queue,
  the buffer keys — made here and handed to the parts that use them;
* :class:`~fmipfast.dataplane.fib.Routes` (the FIB), :class:`~fmipfast.dataplane.handover.Handover` (the
  protocol layer's hooks), :class:`~fmipfast.dataplane.nd.Resolver` and
  :class:`~fmipfast.dataplane.nd.Responder` (Neighbor Discovery), :class:`~fmipfast.dataplane.icmp.Emitter`
  and :class:`~fmipfast.dataplane.icmp.IcmpErrors` (what the router originates),
  :class:`~fmipfast.dataplane.deliver.LocalDelivery` (the control frames) and
  :class:`~fmipfast.dataplane.pipeline.Pipeline` (the per-block data path);
* :class:`~fmipfast.dataplane.counters.Books` (the counters).

The engine itself runs the loop: it polls the ports, books what the kernel dropped before a frame reached it,
and runs the timers.

Conservation (checked by tests): every frame received gets exactly one disposition when processed::

    received = forwarded + tunnelled + decapsulated + buffered + queued_resolve + delivered + dropped

``dropped`` is the sum of ``drops`` by DropReason (kernel ring drops and malformed ring blocks included);
frames later leaving a queue are counted apart (``flushed``, ``resolved_sent``, queue drops).  Frames the
engine originates (ND, RA, ICMPv6 errors, echo replies) are counted as ``originated``.

Ownership: one thread (the asyncio loop of ``run``) drives an Engine; the tables have a single writer.
Kernels take ``now_ns`` from the engine's clock; nothing else reads a clock, but for ``Node.run_ring``, which
reads CLOCK_MONOTONIC per chunk when the engine's clock is ``time.monotonic_ns`` (the same clock).

May import: ports, backend, messages, frames, keys, config, errors, constants (tests/test_imports.py holds
the rules; never fmipfast.reference).
"""

from __future__ import annotations

import asyncio
import ipaddress
import select
import time
from collections.abc import Callable, Iterable, Mapping
from ipaddress import IPv6Address
from typing import TYPE_CHECKING

import numpy as np
import numpy.ma  # noqa: F401  -- np.unique imports it lazily on first use: 13 ms, in the first handover's flush

from fmipfast import backend
from fmipfast.config import InterfaceConfig, RouterConfig
from fmipfast.constants import DEFAULT_CODEPOINTS, Codepoints, DropReason, NeighborFlag, NeighborState
from fmipfast.dataplane.counters import RECEIVED, Books, Faults
from fmipfast.dataplane.deliver import LocalDelivery
from fmipfast.dataplane.fib import Route, Routes
from fmipfast.dataplane.handover import Handover, Hold
from fmipfast.dataplane.icmp import Emitter, IcmpErrors
from fmipfast.dataplane.nd import Resolver, Resolving, Responder
from fmipfast.dataplane.pipeline import TUNNEL_HOP_LIMIT, Pipeline
from fmipfast.dataplane.tables import access_iface, set_neighbor
from fmipfast.dataplane.types import ControlFrame, Interface
from fmipfast.keys import KeyPool
from fmipfast.messages import RouterAdvertisement
from fmipfast.ports import FrameBatch, Port, RingPort

if TYPE_CHECKING:
    from fmipfast.backend import Batch

__all__ = ["Engine", "EXPIRY_INTERVAL_NS"]

#: How often the neighbor cache and the buffers are scanned for expired entries.
EXPIRY_INTERVAL_NS = 100_000_000
#: Ring blocks one ``run_ring`` call takes at most when no control descriptor is watched between blocks.
_RING_BLOCKS_A_CALL = 4


def link_mtu(iface: Interface) -> int:
    """The MTU the engine forwards and tunnels by on ``iface``: its configured ``mtu``, bounded by the
    device's own where the port knows it (``link_mtu``, a ring port) -- the kernel refuses to send a larger
    frame -- and never below IPv6's minimum of 1280 (RFC 8200 §5)."""
    mtu = iface.cfg.mtu
    device = getattr(iface.port, "link_mtu", None)
    if isinstance(device, int) and device > 0:
        mtu = min(mtu, device)
    return max(1280, min(mtu, 65535))


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
        self.peers = {IPv6Address(p) for p in (*cfg.peers, *peers)}
        self._books = Books()
        self._faults = Faults(self._books, clock)
        self._kernel_seen: dict[int, tuple[int, int]] = {}
        self._next_expiry_ns = 0
        # ---- the tables
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
        self.interfaces: list[Interface] = []
        by_name = {i.name: i for i in cfg.interfaces}
        for name, port in ports.items():
            icfg = by_name.get(name) or InterfaceConfig(name)
            mac = bytes(port.mac)
            ll = IPv6Address(backend.link_local_from_mac48(mac))
            addrs = [(IPv6Address(a), plen) for a, plen in icfg.addresses]
            self.interfaces.append(Interface(len(self.interfaces), icfg, port, mac, ll, addrs))
        self._iface_by_name = {i.name: i for i in self.interfaces}
        routes: list[Route] = []
        for iface in self.interfaces:
            self._add_local(iface.link_local, iface)
            for addr, plen in iface.addresses:
                self._add_local(addr, iface)
                routes.append(Route.to(ipaddress.IPv6Network((addr, plen), strict=False), iface.index, None))
        for route in cfg.routes:
            routes.append(Route.to(ipaddress.IPv6Network(route.prefix), self._iface_by_name[route.interface].index,
                                   IPv6Address(route.via)))
        for nb in cfg.neighbors:
            self._set_neighbor(IPv6Address(nb.address), nb.mac, self._iface_by_name[nb.interface].index,
                               NeighborState.REACHABLE, NeighborFlag.STATIC | NeighborFlag.ROUTER)
        #: The forwarding node (``Node``): the per-block data path over the neighbor cache, the FIB and the
        #: handover columns (``entry_key``, ``entry_peer``) that the handover hooks keep in step with their dicts.
        self._node = backend.impl.Node(self.ncache, cfg.batch_size, max(1, len(self.interfaces)))
        macs = np.zeros((max(1, len(self.interfaces)), 6), dtype=np.uint8)
        for iface in self.interfaces:
            macs[iface.index] = np.frombuffer(iface.mac, dtype=np.uint8)
        self._node.set_interfaces(macs)
        self._node.set_peers(np.array([list(p.packed) for p in self.peers], dtype=np.uint8).reshape(-1, 16))
        # the node finishes the handover's buffering and tunnelling itself
        self._node.set_buffer(self.buffer)
        sources = np.zeros((max(1, len(self.interfaces)), 16), dtype=np.uint8)
        mtus = np.full(max(1, len(self.interfaces)), 1280, dtype=np.uint32)
        for iface in self.interfaces:
            sources[iface.index] = iface.source_array
            mtus[iface.index] = link_mtu(iface)
        self._node.set_tunnel(sources, mtus, hop_limit=TUNNEL_HOP_LIMIT)
        # a packet larger than its next link's MTU is PACKET_TOO_BIG: dropped, its source told (RFC 4443 §3.2);
        # never handed to a TX ring the kernel would refuse it from
        self._node.set_mtus(mtus[:len(self.interfaces)] if self.interfaces else mtus)
        # ---- the parts, each with the shared state it needs
        self._routes = Routes(self._node, routes)
        self._emit = Emitter(codepoints, self._books)
        self._icmp = IcmpErrors(cfg, self._emit, self._books)
        # frames leaving a queue go back through the pipeline, made last: the parts reach it through here
        self._resolver = Resolver(cfg, clock, self.ncache, self.unresolved, self.interfaces, self._iface_by_name,
                                  self._routes, self._emit, self._books, self._reinject)
        self._responder = Responder(cfg, clock, self.ncache, self.interfaces, self._resolver, self._emit,
                                    self._books)
        self._handover = Handover(cfg, clock, self.ncache, self._node, self.buffer, self.buffer_keys,
                                  self.interfaces, self._iface_by_name, self._books, self._reinject)
        self._delivery = LocalDelivery(codepoints, self._responder, self._emit, self._books, self._faults)
        self._delivery.control = control
        #: Called as ``early_control(iface, batch, now_ns)`` with each batch of control frames a port keeps
        #: apart (``receive_control``), before the pipeline's pass over it: the protocol layer's look at what
        #: must not wait for the pass (an Attach that releases an MN's buffered packets).  It may only act on
        #: what it can authenticate; the batch then goes through the pass as always, so the hook sees the
        #: frames first, never instead.  Whatever it raises is counted and logged as an internal error.
        self.early_control: Callable[[Interface, FrameBatch, int], None] | None = None
        # the ports that keep their control frames apart, and the descriptors that say some are waiting
        self._control_ports: list[tuple[Interface, Callable[[], Iterable[FrameBatch]]]] = []
        self._control_poller = select.poll()
        self._control_fds: list[int] = []
        for iface in self.interfaces:
            receive_control = getattr(iface.port, "receive_control", None)
            if receive_control is not None:
                self._control_ports.append((iface, receive_control))
            control_fileno = getattr(iface.port, "control_fileno", None)
            fd = control_fileno() if control_fileno is not None else None
            if isinstance(fd, int) and fd >= 0:
                self._control_poller.register(fd, select.POLLIN)
                self._control_fds.append(fd)
        self._pipeline = Pipeline(cfg, codepoints, clock, self.interfaces, self._node, self.ncache, self.buffer,
                                  self._routes, self._handover, self._resolver, self._delivery, self._icmp,
                                  self._books, self._faults)
        #: The interfaces whose RX ring the node reads itself (``Pipeline.ring_pass``: one compiled call per
        #: ready block, walk to kick), by index: every ring port that does not change how its blocks are read.
        #: Emptying it sends their blocks the way of the other ports' (a ``FrameBatch`` each, ``process``).
        self.ring_interfaces: set[int] = {
            iface.index for iface in self.interfaces
            if type(iface.port).receive is RingPort.receive and getattr(iface.port, "ring", None) is not None
            and iface.port.ring.rx is not None}  # type: ignore[attr-defined]

    # ------------------------------------------------------------------ hooks set after construction
    @property
    def control(self) -> Callable[[ControlFrame], None] | None:
        """The protocol layer's hook for the fmipfast messages (None: they are counted control_unhandled)."""
        return self._delivery.control

    @control.setter
    def control(self, hook: Callable[[ControlFrame], None] | None) -> None:
        self._delivery.control = hook

    @property
    def on_event(self) -> Callable[[str, dict[str, object]], None] | None:
        """Called as ``on_event(name, fields)`` for what the engine does on its own (a route-switch hold
        released); the router agent turns these into its notes."""
        return self._handover.on_event

    @on_event.setter
    def on_event(self, hook: Callable[[str, dict[str, object]], None] | None) -> None:
        self._handover.on_event = hook

    # ------------------------------------------------------------------ counters
    @property
    def counters(self) -> dict[str, int]:
        """Every counter by name (``fmipfast.constants.EngineCounter``, lower case): a live dict over the
        ledger frames are booked in (the main one, except inside the second pass of frames leaving a queue)."""
        return self._books.now.view

    @property
    def drops(self) -> np.ndarray:
        """Frames dropped, int64 per DropReason (the ledger frames are booked in, as ``counters``)."""
        return self._books.now.drops

    @property
    def requeue_counters(self) -> dict[str, int]:
        """What became of frames leaving a queue (a flushed buffer, a resolved next hop), booked apart."""
        return self._books.requeue.view

    @property
    def requeue_drops(self) -> np.ndarray:
        return self._books.requeue.drops

    def conservation(self) -> dict[str, int]:
        """The terms of the conservation equation, and whether it holds."""
        return self._books.now.conservation()

    def drop_counts(self) -> dict[str, int]:
        return self._books.now.drop_counts()

    # ------------------------------------------------------------------ tables
    def _add_local(self, address: IPv6Address, iface: Interface) -> None:
        self._set_neighbor(address, iface.mac, iface.index, NeighborState.REACHABLE,
                           NeighborFlag.LOCAL | NeighborFlag.STATIC)

    def _set_neighbor(self, address: IPv6Address, mac: bytes, iface: int, state: int, flags: int,
                      expiry: int = 0) -> int:
        return set_neighbor(self.ncache, address, mac, iface, state, flags, expiry)

    def lookup_route(self, dst: IPv6Address) -> tuple[int, IPv6Address] | None:
        """(output interface index, next hop) for ``dst``, or None."""
        return self._routes.lookup_route(dst)

    def _route_batch(self, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Longest-prefix match of a batch: output interface (-1 = no route) and next hop [n,16]."""
        return self._routes.route_batch(dst)

    def _peer_route(self, p: int, peer: IPv6Address) -> tuple[int, IPv6Address] | None:
        return self._routes.peer_route(p, peer)

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
        return self._handover.proxy_add(address, key, lifetime_ms, iface, also=also, buffer=buffer)

    def proxy_complete(self, address: str | IPv6Address, mac: bytes) -> int:
        """NAR, on Attach: the PROXY entries (the NCoA and its aliases) become REACHABLE with ``mac``;
        returns the number of buffered frames flushed, in arrival order."""
        return self._handover.proxy_complete(address, mac)

    def proxy_remove(self, address: str | IPv6Address) -> None:
        """NAR: the handover ended without the MN: remove the PROXY entries and drop their buffer."""
        self._handover.proxy_remove(address)

    def drop_buffer(self, key: int) -> int:
        """Drop what is buffered under ``key`` (the NAR machine's ``BufferDrop``); the key goes back to the
        pool if nothing refers to it any more.  A key not in use is ignored (it may already serve another
        handover's buffer, which is not this caller's to drop).  Returns the frames dropped."""
        return self._handover.drop_buffer(key)

    def flush_buffer(self, key: int) -> int:
        """Send what is buffered under ``key`` through the pipeline again, in arrival order; returns the frames
        flushed."""
        return self._handover.flush_buffer(key)

    def holds(self) -> list[dict[str, object]]:
        """The NCoAs whose direct traffic is held at the route switch (the control API's view)."""
        return self._handover.holds()

    def tunnel_add(self, pcoa: str | IPv6Address, nar: str | IPv6Address) -> int:
        """PAR: tunnel traffic for ``pcoa`` to ``nar`` (docs/design.md §1 step 4).  Returns the PCoA's
        neighbor index, or -1 if nothing was installed: the neighbor table is full, or ``nar`` would be a NAR
        beyond ``[router] tunnel_peers`` (a NAR's row is reused once no tunnel leads to it)."""
        return self._handover.tunnel_add(pcoa, nar)

    def tunnel_remove(self, pcoa: str | IPv6Address) -> None:
        self._handover.tunnel_remove(pcoa)

    def probe_neighbor(self, address: str | IPv6Address, done: Callable[[bool], None],
                       iface: str | None = None) -> bool:
        """Neighbor Unreachability Detection of ``address`` on ``iface`` (default: the access interface), RFC
        4861 §7.3.3: up to ``resolve_retries`` unicast Neighbor Solicitations ``resolve_interval_ms`` apart;
        ``done(True)`` when a solicited Neighbor Advertisement for it arrives on that link, ``done(False)``
        after the last went unanswered (called from the engine's loop: a poll or a tick).  False, and no probe,
        when ``ncache_capacity`` probes are running.  The neighbor cache is not changed by the probe."""
        out = self._iface_by_name[iface] if iface else access_iface(self.interfaces)
        return self._resolver.probe(IPv6Address(address), out, done)

    # the handover tables, for tests and the bench (the Handover part owns them)
    @property
    def _proxy_key(self) -> dict[int, int]:
        return self._handover.proxy_key

    @property
    def _proxy_aliases(self) -> dict[IPv6Address, tuple[IPv6Address, ...]]:
        return self._handover.proxy_aliases

    @property
    def _tunnel_peer(self) -> dict[int, IPv6Address]:
        return self._handover.tunnel_peer

    @property
    def _hold(self) -> dict[int, Hold]:
        return self._handover.hold

    @property
    def _hold_alias(self) -> dict[int, int]:
        return self._handover.hold_alias

    @property
    def _resolving(self) -> dict[int, Resolving]:
        return self._resolver.resolving

    @property
    def _originated(self) -> dict[int, list[bytes]]:
        return self._resolver.originated

    # ------------------------------------------------------------------ what the router originates
    def router_advertisement(self, iface: Interface, *, with_realms: bool = True) -> RouterAdvertisement:
        return self._responder.router_advertisement(iface, with_realms=with_realms)

    def send_packet(self, packet: bytes, *, iface: str | None = None) -> bool:
        """Originate an IPv6 packet built by the control path (e.g. an fmipfast message): route it, fill the
        Ethernet header from the neighbor cache (link-local/multicast destinations need ``iface``).  A next
        hop without a usable entry is resolved as for forwarded packets (RFC 4861 §7.2.2: an INCOMPLETE entry,
        Neighbor Solicitations) while the packet waits, up to ``ORIGINATED_QUEUE`` per next hop (drop-oldest,
        ``originated_dropped``; ``originated_unresolved`` if resolution fails).  False if it cannot be sent
        or queued: no route, or a full neighbor table."""
        return self._resolver.send_packet(packet, iface)

    # ------------------------------------------------------------------ timers
    def tick(self) -> None:
        """Periodic work: Router Advertisements, NS retransmissions, expiry of buffers and entries, the end
        of route-switch holds."""
        now = self.clock()
        if self._handover.hold:
            self._handover.holds_due(now)
        self._responder.advertise(now)
        self._resolver.retransmit(now)
        if now < self._next_expiry_ns:
            return
        # the table scans run at most every EXPIRY_INTERVAL_NS, not on every batch (poll ticks per batch)
        self._next_expiry_ns = now + EXPIRY_INTERVAL_NS
        self.buffer.expire(now)
        self.unresolved.expire(now)
        if self.ncache.expire(now):
            self._handover.forget_expired()

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

    def poll(self) -> int:
        """Process everything the ports have now, then run due timers; returns frames received.

        The control frames of every port that keeps them apart (``receive_control``, a ring port's control
        socket) come first, and again between any two blocks of the other frames when their descriptors
        (``control_fileno``) say some arrived meanwhile: an Attach on the access link does not wait behind the
        core link's ring blocks (the tunnelled burst the NAR buffers at 20 000 datagrams/s is milliseconds of
        them).  Each port's own frames keep their order: its control frames came first before too."""
        total = self._drain_control()
        between = self._control_between if self._control_fds else None
        for iface in self.interfaces:
            if iface.index in self.ring_interfaces:
                total += self._drain_ring(iface, between)
            else:
                total += self._drain(iface, iface.port.receive, between)
            self._guarded("kernel drops", self._account_kernel_drops, iface)
        self._guarded("timers", self.tick)
        return total

    def _drain_control(self) -> int:
        total = 0
        for iface, receive_control in self._control_ports:
            total += self._drain(iface, receive_control, early=self.early_control)
        return total

    def _control_between(self) -> int:
        """The control frames that arrived while a block was processed (one poll of their descriptors)."""
        try:
            ready = self._control_poller.poll(0)
        except OSError as exc:
            self._internal_error("control poll", exc)
            return 0
        return self._drain_control() if ready else 0

    def _drain(self, iface: Interface, receive: Callable[[], Iterable[FrameBatch]],
               between: Callable[[], int] | None = None,
               early: Callable[[Interface, FrameBatch, int], None] | None = None) -> int:
        total = 0
        try:
            blocks = receive()
        except Exception as exc:  # noqa: BLE001 -- a port that fails to read is logged, the others go on
            self._internal_error("receive", exc, interface=iface.name)
            return 0
        for fb in blocks:
            try:
                if early is not None:
                    self._guarded("early control", early, iface, fb, self.clock())
                total += self.process(iface, fb)
            finally:
                fb.release()
            if between is not None:
                total += between()
        return total

    def _drain_ring(self, iface: Interface, between: Callable[[], int] | None) -> int:
        """A ring port's frames: its control socket's first (as its ``receive`` yields them), then its ring's
        blocks through the node's ``run_ring``; with control descriptors to watch, one block a call and their
        frames between any two (as ``_drain``)."""
        port = iface.port
        total = self._drain(iface, port.receive_control, between)  # type: ignore[attr-defined]
        max_blocks = 1 if between is not None else min(_RING_BLOCKS_A_CALL, port.ring.rx_units)  # type: ignore
        more = True
        while more:
            try:
                got, more = self._pipeline.ring_pass(iface, max_blocks)
            except Exception as exc:  # noqa: BLE001 -- a port that fails to read is logged, the others go on
                self._internal_error("receive", exc, interface=iface.name)
                return total
            total += got
            if between is not None:
                total += between()
        return total

    def process(self, iface: Interface, fb: FrameBatch, *, inner: bool = False, from_wire: bool = True) -> int:
        """Run one block of frames received on ``iface`` through the pipeline.  ``from_wire`` False for
        frames the engine made itself (decapsulated, flushed from a queue): no link-layer filter.

        Frames that re-enter the pipeline get passes of their own, each with a classify Batch of its own (the
        pass that started them still reads its Batch, and took copies of the node's outputs before its control
        stage): what the control stage releases (a buffer flushed by an Attach, the queue of a next hop resolved
        by an NA; ``process`` called from a control hook) goes out at once, before the chunk's other frames
        (it is older), and before the rest of the control step (the MN's first packets do not wait for the
        Authenticated-MN to be built); passes asked for ``MAX_NESTED_PASSES`` deep wait, on a copy, until the
        outermost pass is done.  A peer's tunnelled packets are finished by the forwarding node at their place
        in the block; the inner packets it leaves to Python (control, resolution, ICMPv6 errors, another level
        of tunnel) get a pass at the DECAP stage, before the chunk's direct frames, nested at most
        ``MAX_DECAP_DEPTH`` deep.
        Nothing raised while handling the frames leaves this method: a frame whose control-path handling fails
        is dropped as CONTROL_ERROR, a pass that fails books its frames without a disposition as INTERNAL_ERROR;
        both are logged, rate-limited, and the conservation equation holds."""
        return self._pipeline.process(iface, fb, inner=inner, from_wire=from_wire)

    def _reinject(self, iface: Interface, arena: np.ndarray, offsets: np.ndarray, lengths: np.ndarray) -> None:
        """Frames leaving a queue, back through the pipeline (the parts that release them call this)."""
        self._pipeline.reinject(iface, arena, offsets, lengths)

    @property
    def _depth(self) -> int:
        """How many passes are running, one inside the other (0: none)."""
        return self._pipeline.depth

    @property
    def _batches(self) -> list[Batch]:
        return self._pipeline.batches

    def _internal_error(self, kind: str, exc: BaseException, **fields: object) -> None:
        self._faults.internal(kind, exc, **fields)

    def _guarded(self, kind: str, work: Callable[..., object], *args: object) -> None:
        """Run periodic or bookkeeping ``work``; whatever it raises is counted and logged, never propagated:
        the next poll runs it again."""
        try:
            work(*args)
        except Exception as exc:  # noqa: BLE001
            self._internal_error(kind, exc)

    def _account_kernel_drops(self, iface: Interface) -> None:
        """Frames the kernel dropped (ring full) or a damaged block hid count as received and dropped."""
        # the port's counts are cumulative (a ring port is the one reader of PACKET_STATISTICS, which resets on
        # read): what grew since the last poll is new
        drops, walk = iface.port.receive_losses()
        seen_drops, seen_walk = self._kernel_seen.get(iface.index, (0, 0))
        self._kernel_seen[iface.index] = (drops, walk)
        ledger = self._books.now
        for new, reason in ((drops - seen_drops, DropReason.KERNEL_RING_DROP),
                            (walk - seen_walk, DropReason.RING_WALK_ERROR)):
            if new > 0:
                ledger.c[RECEIVED] += new
                ledger.drop(reason, new)

