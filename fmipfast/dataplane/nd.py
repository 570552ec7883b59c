"""Neighbor Discovery for the router (RFC 4861): :class:`Responder` answers Neighbor Solicitations for the
router's own and proxied addresses, Router Solicitations, and learns link-layer addresses; :class:`Resolver`
resolves next hops — a bounded queue per next hop and Neighbor Solicitations (RFC 4861 §7.2.2) — for the
frames the forwarding node could not send yet and for the packets the control path originates
(:meth:`Resolver.send_packet`).

Ownership: the engine's thread calls both and is the one writer of the neighbor cache and of the resolution
queue (docs/conventions.md §3); time comes from the engine's clock.

May import: frames, messages, ports, config, keys, backend, constants (tests/test_imports.py holds the rules).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv6Address
from typing import TYPE_CHECKING

import numpy as np

from fmipfast import frames
from fmipfast.config import RouterConfig
from fmipfast.constants import DropReason, NeighborFlag, NeighborState
from fmipfast.dataplane.counters import (
    NA_SENT,
    ND_LEARN_LIMITED,
    NS_SENT,
    ORIGINATED,
    ORIGINATED_DROPPED,
    ORIGINATED_QUEUED,
    ORIGINATED_UNRESOLVED,
    QUEUED_RESOLVE,
    RA_LIMITED,
    RA_SENT,
    RESOLVED_SENT,
    Books,
)
from fmipfast.dataplane.fib import Routes
from fmipfast.dataplane.icmp import Emitter
from fmipfast.dataplane.tables import access_iface, address_key, find_neighbor, set_neighbor
from fmipfast.dataplane.types import ALL_NODES, ControlFrame, Interface, Refused, Reinject
from fmipfast.messages import (
    AdjacentRealms,
    AdjacentRealmsRequest,
    Mtu,
    NdOption,
    NeighborAdvertisement,
    NeighborSolicitation,
    PrefixInformation,
    RouterAdvertisement,
    RouterSolicitation,
    SourceLinkLayerAddress,
    TargetLinkLayerAddress,
)

if TYPE_CHECKING:
    from fmipfast.backend import NeighborCache, PacketBuffer

__all__ = ["Resolver", "Resolving", "Probe", "Responder", "solicited_node", "MIN_DELAY_BETWEEN_RAS_NS",
           "ORIGINATED_QUEUE"]

#: Control-path packets waiting per next hop for its resolution.
ORIGINATED_QUEUE = 16
#: Multicast Router Advertisements answering solicitations are at least this far apart (RFC 6275 §7.5's 30 ms).
MIN_DELAY_BETWEEN_RAS_NS = 30_000_000
#: Neighbor entries whose address and MAC only configuration or the handover protocol may change: ND from the
#: wire never rewrites them (an NA or an NS/RS's link-layer address claiming one is ignored).
PROTECTED = int(NeighborFlag.LOCAL | NeighborFlag.PROXY | NeighborFlag.STATIC | NeighborFlag.TUNNEL
                | NeighborFlag.HOLD)
_INCOMPLETE = int(NeighborState.INCOMPLETE)


def solicited_node(address: IPv6Address) -> IPv6Address:
    """RFC 4291 §2.7.1: ff02::1:ffXX:XXXX from the low 24 bits."""
    return IPv6Address(b"\xff\x02" + bytes(9) + b"\x01\xff" + address.packed[13:])


@dataclass
class Resolving:
    next_hop: IPv6Address
    iface: int
    attempts: int
    next_ns: int


@dataclass
class Probe:
    """Neighbor Unreachability Detection of one address (RFC 4861 §7.3.3, PROBE): unicast Neighbor
    Solicitations, ``done(True)`` on a solicited Neighbor Advertisement, ``done(False)`` when none came."""

    target: IPv6Address
    iface: int
    mac: bytes | None  # the entry's link-layer address; None: none known, the solicited-node group is asked
    attempts: int
    next_ns: int
    done: Callable[[bool], None]


class Resolver:
    """Next-hop resolution.  A next hop without a usable entry gets an INCOMPLETE one and Neighbor
    Solicitations every ``resolve_interval_ms``, at most ``resolve_retries``; the frames for it wait in the
    ``unresolved`` buffer (bounded per next hop, drop-oldest) and the control path's packets in a list of
    ``ORIGINATED_QUEUE``.  When it answers, both leave (frames through ``reinject``: another pass of the
    pipeline); when it does not, both are dropped and counted."""

    def __init__(self, cfg: RouterConfig, clock: Callable[[], int], ncache: NeighborCache,
                 unresolved: PacketBuffer, interfaces: Sequence[Interface], by_name: Mapping[str, Interface],
                 routes: Routes, emit: Emitter, books: Books, reinject: Reinject) -> None:
        self.cfg = cfg
        self.clock = clock
        self.ncache = ncache
        self.unresolved = unresolved
        self.interfaces = interfaces
        self.by_name = by_name
        self.routes = routes
        self.emit = emit
        self.books = books
        self.reinject = reinject
        self.resolving: dict[int, Resolving] = {}
        #: Packets the control path originated towards a next hop being resolved (by neighbor index).
        self.originated: dict[int, list[bytes]] = {}
        #: Reachability probes by address (at most the neighbor cache's capacity; :meth:`probe`).
        self.probes: dict[IPv6Address, Probe] = {}

    def resolve(self, arena: np.ndarray, offsets: np.ndarray, lengths: np.ndarray, sel: np.ndarray,
                out_if: np.ndarray, next_hop: np.ndarray, now: int) -> None:
        """Queue the selected frames for their next hops (``next_hop[j]`` on interface ``out_if[j]``)."""
        keys = np.empty(sel.size, dtype=np.int32)
        ok = np.ones(sel.size, dtype=bool)
        for j in range(sel.size):
            hop_addr = IPv6Address(bytes(next_hop[j]))
            idx = int(self.ncache.lookup(next_hop[j:j + 1])[0])
            if idx < 0:
                idx = set_neighbor(self.ncache, hop_addr, bytes(6), int(out_if[j]), NeighborState.INCOMPLETE, 0)
                if idx < 0:
                    ok[j] = False
                    continue
            keys[j] = idx
            if idx not in self.resolving:
                self.resolving[idx] = Resolving(hop_addr, int(out_if[j]), 0, now)
                self.solicit(idx, now)
        if (~ok).any():
            self.books.now.drop(DropReason.NEIGHBOR_TABLE_FULL, int((~ok).sum()))
        if ok.any():
            st = self.unresolved.push(keys[ok], arena, offsets[sel[ok]], lengths[sel[ok]], now)
            queued = int((st == 0).sum())
            ledger = self.books.now
            ledger.c[QUEUED_RESOLVE] += queued
            ledger.drop_statuses(st[st != 0])

    def solicit(self, idx: int, now: int) -> None:
        r = self.resolving[idx]
        iface = self.interfaces[r.iface]
        target = r.next_hop
        ns = NeighborSolicitation(target, (SourceLinkLayerAddress(iface.mac),))
        dst = solicited_node(target)
        self.emit.send(iface, ns, iface.source, dst, frames.multicast_mac(dst))
        self.books.now.c[NS_SENT] += 1
        r.attempts += 1
        r.next_ns = now + self.cfg.resolve_interval_ms * 1_000_000

    def resolved(self, idx: int) -> None:
        """The next hop answered: send what waited for it."""
        if self.resolving.pop(idx, None) is None:
            return
        waiting = self.originated.pop(idx, [])
        if waiting:
            out = self.interfaces[int(self.ncache.ifindex[idx])]
            mac = bytes(self.ncache.macs[idx])
            out.port.send_frames([frames.build_ethernet(mac, out.mac, p) for p in waiting])
            self.books.now.c[ORIGINATED] += len(waiting)
        arena, offsets, lengths = self.unresolved.flush(idx, self.clock())
        if offsets.shape[0]:
            arena = np.array(arena, dtype=np.uint8)
            self.books.now.c[RESOLVED_SENT] += int(offsets.shape[0])
            self.reinject(self.interfaces[int(self.ncache.ifindex[idx])], arena, offsets, lengths)

    def probe(self, address: IPv6Address, iface: Interface, done: Callable[[bool], None]) -> bool:
        """Is ``address`` still on ``iface``'s link?  Neighbor Unreachability Detection (RFC 4861 §7.3.3):
        a Neighbor Solicitation to the address (to its entry's link-layer address, or to its solicited-node
        group when the cache has none), again every ``resolve_interval_ms``, ``resolve_retries`` in all;
        ``done(True)`` at the first solicited Neighbor Advertisement for it on that link, ``done(False)`` when
        none came.  A probe of an address already probed starts over with the new ``done`` (the old one is not
        called).  False, with nothing started, when ``cfg.ncache_capacity`` probes are running."""
        if address not in self.probes and len(self.probes) >= self.cfg.ncache_capacity:
            return False
        idx = find_neighbor(self.ncache, address)
        mac = None
        if idx >= 0 and int(self.ncache.ifindex[idx]) == iface.index and self.ncache.states[idx] != _INCOMPLETE:
            mac = bytes(self.ncache.macs[idx])
            if mac == bytes(6):
                mac = None
        now = self.clock()
        p = self.probes[address] = Probe(address, iface.index, mac, 0, now, done)
        self._probe_solicit(p, now)
        return True

    def _probe_solicit(self, p: Probe, now: int) -> None:
        iface = self.interfaces[p.iface]
        ns = NeighborSolicitation(p.target, (SourceLinkLayerAddress(iface.mac),))
        if p.mac is not None:
            self.emit.send(iface, ns, iface.source, p.target, p.mac)
        else:
            dst = solicited_node(p.target)
            self.emit.send(iface, ns, iface.source, dst, frames.multicast_mac(dst))
        self.books.now.c[NS_SENT] += 1
        p.attempts += 1
        p.next_ns = now + self.cfg.resolve_interval_ms * 1_000_000

    def confirmed(self, iface: Interface, target: IPv6Address) -> None:
        """A solicited Neighbor Advertisement for ``target`` came in on ``iface``: its probe, if any, ends."""
        p = self.probes.get(target)
        if p is not None and p.iface == iface.index:
            del self.probes[target]
            p.done(True)

    def retransmit(self, now: int) -> None:
        """Due Neighbor Solicitations; the next hops that never answered give up their entry and their queue
        (the frames had their disposition when queued: their loss goes to the second ledger); the probes that
        had no answer end (``done(False)``)."""
        for address, p in list(self.probes.items()):
            if now < p.next_ns or self.probes.get(address) is not p:
                continue
            if p.attempts >= self.cfg.resolve_retries:
                del self.probes[address]
                p.done(False)
            else:
                self._probe_solicit(p, now)
        for idx, r in list(self.resolving.items()):
            if now < r.next_ns:
                continue
            if r.attempts >= self.cfg.resolve_retries:
                del self.resolving[idx]
                unsent = len(self.originated.pop(idx, []))
                if unsent:
                    self.books.now.c[ORIGINATED_UNRESOLVED] += unsent
                lost = self.unresolved.drop(idx)
                self.ncache.delete(address_key(r.next_hop))
                if lost:  # queued frames already had their disposition (queued_resolve): the second ledger
                    self.books.requeue.drop(DropReason.RESOLVE_FAILED, int(lost))
            else:
                self.solicit(idx, now)

    def send_packet(self, packet: bytes, iface: str | None = None) -> bool:
        """Originate an IPv6 packet built by the control path (see ``Engine.send_packet``)."""
        dst = IPv6Address(packet[24:40])
        if dst.is_multicast:
            out = self.by_name[iface] if iface else access_iface(self.interfaces)
            out.port.send_frames([frames.build_ethernet(frames.multicast_mac(dst), out.mac, packet)])
            self.books.now.c[ORIGINATED] += 1
            return True
        if dst.is_link_local:
            out = self.by_name[iface] if iface else access_iface(self.interfaces)
            hop = dst
        else:
            route = self.routes.lookup_route(dst)
            if route is None:
                return False
            out, hop = self.interfaces[route[0]], route[1]
        idx = find_neighbor(self.ncache, hop)
        if idx < 0 or self.ncache.states[idx] == NeighborState.INCOMPLETE:
            return self._originate_after_resolution(out, hop, idx, packet)
        out.port.send_frames([frames.build_ethernet(bytes(self.ncache.macs[idx]), out.mac, packet)])
        self.books.now.c[ORIGINATED] += 1
        return True

    def _originate_after_resolution(self, out: Interface, hop: IPv6Address, idx: int, packet: bytes) -> bool:
        now = self.clock()
        where = self.interfaces.index(out)
        if idx < 0:
            idx = set_neighbor(self.ncache, hop, bytes(6), where, NeighborState.INCOMPLETE, 0)
            if idx < 0:
                self.books.now.drop(DropReason.NEIGHBOR_TABLE_FULL, 1)
                return False
        queue = self.originated.setdefault(idx, [])
        if len(queue) >= ORIGINATED_QUEUE:
            queue.pop(0)
            self.books.now.c[ORIGINATED_DROPPED] += 1
        queue.append(packet)
        self.books.now.c[ORIGINATED_QUEUED] += 1
        if idx not in self.resolving:
            self.resolving[idx] = Resolving(hop, where, 0, now)
            self.solicit(idx, now)
        return True


class Responder:
    """Answers Neighbor and Router Solicitations, takes in Neighbor Advertisements, learns the link-layer
    addresses solicitations carry, and sends the periodic Router Advertisements of the access interfaces.

    A solicitation creates a new entry only while the neighbor cache holds fewer than ``learn_limit`` (three
    quarters of its capacity): what nobody authenticated cannot fill the table (``nd_learn_limited``)."""

    def __init__(self, cfg: RouterConfig, clock: Callable[[], int], ncache: NeighborCache,
                 interfaces: Sequence[Interface], resolver: Resolver, emit: Emitter, books: Books) -> None:
        self.cfg = cfg
        self.clock = clock
        self.ncache = ncache
        self.interfaces = interfaces
        self.resolver = resolver
        self.emit = emit
        self.books = books
        self.learn_limit = ncache.capacity * 3 // 4

    def _answers_for(self, target: IPv6Address) -> tuple[int, int] | None:
        idx = find_neighbor(self.ncache, target)
        if idx < 0:
            return None
        flags = int(self.ncache.flags[idx])
        if flags & (NeighborFlag.LOCAL | NeighborFlag.PROXY):
            return idx, flags
        return None

    def learn(self, iface: Interface, address: IPv6Address, mac: bytes, *, solicited: bool) -> None:
        if address.is_unspecified or address.is_multicast:
            return
        idx = find_neighbor(self.ncache, address)
        if idx >= 0 and (int(self.ncache.flags[idx]) & PROTECTED or (
                int(self.ncache.ifindex[idx]) != iface.index and self.ncache.states[idx] != _INCOMPLETE)):
            return  # configured or the protocol's, or a neighbor of another link: not for this frame to move
        if idx < 0 and not solicited and len(self.ncache) >= self.learn_limit:
            # entries nobody authenticated take at most this share of the table: a flood of spoofed NS/RS
            # cannot fill it, the rest stays for the router's own resolution (an MN that arrives after it)
            self.books.now.c[ND_LEARN_LIMITED] += 1
            return
        state = NeighborState.REACHABLE if solicited else NeighborState.STALE
        new = set_neighbor(self.ncache, address, mac, iface.index, state, 0,
                           self.clock() + self.cfg.reachable_time_ms * 1_000_000)
        if new >= 0 and new in self.resolver.resolving:
            self.resolver.resolved(new)

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
            raise Refused(DropReason.ND_INVALID)
        return bytes(found[0])

    def on_ns(self, cf: ControlFrame, ns: NeighborSolicitation) -> None:
        slla = self._link_address(cf, ns.options, SourceLinkLayerAddress)
        if slla is not None:
            self.learn(cf.iface, cf.src, slla, solicited=False)  # RFC 4861 §7.2.3
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
        self.emit.send(cf.iface, na, ns.target if not proxy else cf.iface.link_local, dst, dst_mac)
        self.books.now.c[NA_SENT] += 1

    def on_na(self, cf: ControlFrame, na: NeighborAdvertisement) -> None:
        tlla = self._link_address(cf, na.options, TargetLinkLayerAddress)
        if na.solicited and self.resolver.probes:
            self.resolver.confirmed(cf.iface, na.target)  # RFC 4861 §7.3.1: only S=1 confirms reachability
        idx = find_neighbor(self.ncache, na.target)
        if idx < 0 or tlla is None:
            return
        if int(self.ncache.flags[idx]) & PROTECTED:
            return  # a claim on our address, a configured neighbor or an MN mid-handover: not ND's to change
        if int(self.ncache.ifindex[idx]) != cf.iface.index:
            return  # the neighbor lives on another link: an NA from this one says nothing about it
        state = int(self.ncache.states[idx])
        if not na.override and state != NeighborState.INCOMPLETE and bytes(self.ncache.macs[idx]) != tlla:
            # RFC 4861 §7.2.5: without O, another link-layer address only makes a REACHABLE entry STALE
            if state == NeighborState.REACHABLE:
                set_neighbor(self.ncache, na.target, bytes(self.ncache.macs[idx]), int(self.ncache.ifindex[idx]),
                             NeighborState.STALE, int(self.ncache.flags[idx]), int(self.ncache.expiry[idx]))
            return
        set_neighbor(self.ncache, na.target, tlla, int(self.ncache.ifindex[idx]),
                     NeighborState.REACHABLE if na.solicited else NeighborState.STALE,
                     NeighborFlag.ROUTER if na.router else 0,
                     self.clock() + self.cfg.reachable_time_ms * 1_000_000)
        self.resolver.resolved(idx)

    def router_advertisement(self, iface: Interface, *, with_realms: bool = True) -> RouterAdvertisement:
        opts: list[NdOption] = [SourceLinkLayerAddress(iface.mac), Mtu(iface.cfg.mtu)]
        for addr, plen in iface.addresses:
            net = ipaddress.IPv6Network((addr, plen), strict=False)
            opts.append(PrefixInformation(plen, net.network_address, 0xC0, 2592000, 604800))
        if with_realms and iface.cfg.adjacent_realms:
            opts.append(AdjacentRealms(iface.cfg.adjacent_realms))
        return RouterAdvertisement(64, 0, iface.cfg.ra_lifetime_s, 0, 0, tuple(opts))

    def on_rs(self, cf: ControlFrame, rs: RouterSolicitation) -> None:
        if cf.iface.cfg.role != "access":
            return
        slla = self._link_address(cf, rs.options, SourceLinkLayerAddress)
        if slla is not None:
            self.learn(cf.iface, cf.src, slla, solicited=False)
        wants_realms = any(isinstance(o, AdjacentRealmsRequest) for o in rs.options)
        if cf.src.is_unspecified or slla is None:
            dst, mac = ALL_NODES, frames.multicast_mac(ALL_NODES)
            # RFC 4861 §6.2.6: multicast answers are rate-limited (RFC 6275 §7.5: 30 ms on mobility links);
            # the solicitor gets the one just sent to all nodes
            if cf.now_ns - cf.iface.last_multicast_ra_ns < MIN_DELAY_BETWEEN_RAS_NS:
                self.books.now.c[RA_LIMITED] += 1
                return
            cf.iface.last_multicast_ra_ns = cf.now_ns
        else:
            dst, mac = cf.src, slla
        if not cf.iface.solicited_ra_bucket.take(cf.now_ns):  # a flood of RS is not answered RA for RS
            self.books.now.c[RA_LIMITED] += 1
            return
        ra = self.router_advertisement(cf.iface, with_realms=wants_realms)
        self.emit.send(cf.iface, ra, cf.iface.link_local, dst, mac)
        self.books.now.c[RA_SENT] += 1

    def advertise(self, now: int) -> None:
        """The periodic Router Advertisements of the access interfaces that are due."""
        for iface in self.interfaces:
            if iface.cfg.role == "access" and now >= iface.next_ra_ns:
                self.emit.send(iface, self.router_advertisement(iface), iface.link_local, ALL_NODES,
                               frames.multicast_mac(ALL_NODES))
                self.books.now.c[RA_SENT] += 1
                span = iface.cfg.ra_max_interval_ms - iface.cfg.ra_min_interval_ms
                jitter = (now // 7919) % (span + 1) if span else 0
                iface.next_ra_ns = now + (iface.cfg.ra_min_interval_ms + jitter) * 1_000_000
