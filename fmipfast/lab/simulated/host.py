"""A minimal IPv6 host for the in-process demo: the correspondent node and the mobile node's stack.

It owns a :class:`~fmipfast.lab.simulated.sim.SimPort`, a set of addresses, a neighbor table and a default router;
answers Neighbor Solicitations for its addresses (and learns from them), learns routers from Router
Advertisements, receives UDP, and hands fmipfast ICMPv6 messages and RAs to callbacks.  It sends with the
link-layer address it knows (neighbor, else the default router): like a kernel whose neighbor entries were
preloaded — which is exactly what the fast handover gives the MN (docs/design.md §5, "the NAR's neighbor entry
and default route preloaded").  Frames for other hosts are ignored; everything is counted.

Ownership: driven by the simulator's single thread.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from ipaddress import IPv6Address

from fmipfast import backend, frames
from fmipfast.constants import DEFAULT_CODEPOINTS, Codepoints, Icmp6Type, IpProto
from fmipfast.errors import MalformedPacket
from fmipfast.lab.simulated.sim import Sim, SimPort
from fmipfast.messages import (
    NeighborAdvertisement,
    NeighborSolicitation,
    RouterAdvertisement,
    SourceLinkLayerAddress,
    TargetLinkLayerAddress,
    decode,
)

__all__ = ["Host"]

UdpHandler = Callable[[IPv6Address, IPv6Address, int, int, bytes, int], None]
IcmpHandler = Callable[[bytes, IPv6Address, IPv6Address, int], None]


class Host:
    def __init__(self, sim: Sim, name: str, port: SimPort, addresses: Iterable[str | IPv6Address] = (), *,
                 codepoints: Codepoints = DEFAULT_CODEPOINTS) -> None:
        self.sim, self.name, self.port = sim, name, port
        self.codepoints = codepoints
        self.link_local = IPv6Address(backend.link_local_from_mac48(port.mac))
        self.addresses: set[IPv6Address] = {self.link_local, *(IPv6Address(a) for a in addresses)}
        self.neighbors: dict[IPv6Address, bytes] = {}
        self.default_router: IPv6Address | None = None
        self.routes: list[tuple[object, IPv6Address]] = []  # (IPv6Network, router address), longest first
        self.on_udp: UdpHandler | None = None
        self.on_fmip: IcmpHandler | None = None
        self.on_ra: Callable[[RouterAdvertisement, IPv6Address, int], None] | None = None
        self.on_packet: Callable[[bytes, int], None] | None = None  # every IPv6 packet addressed to us
        self.counters = dict.fromkeys(("rx", "tx", "udp_rx", "ns_answered", "not_for_us", "malformed",
                                       "no_neighbor", "ra_rx", "fmip_rx"), 0)
        port.on_receive = self.poll

    # ---------------------------------------------------------------- configuration (MN actions)
    def add_address(self, address: str | IPv6Address) -> None:
        self.addresses.add(IPv6Address(address))

    def remove_address(self, address: str | IPv6Address) -> None:
        self.addresses.discard(IPv6Address(address))

    def set_neighbor(self, address: str | IPv6Address, mac: bytes) -> None:
        self.neighbors[IPv6Address(address)] = bytes(mac)

    def set_default_router(self, address: str | IPv6Address) -> None:
        self.default_router = IPv6Address(address)

    def add_route(self, prefix: str, router: str | IPv6Address) -> None:
        from ipaddress import IPv6Network

        self.routes.append((IPv6Network(prefix), IPv6Address(router)))
        self.routes.sort(key=lambda r: -r[0].prefixlen)  # type: ignore[attr-defined]

    # ---------------------------------------------------------------- receive
    def poll(self) -> None:
        for batch in self.port.receive():
            for frame in batch.frames():
                self.counters["rx"] += 1
                try:
                    self._frame(frame)
                except MalformedPacket:
                    self.counters["malformed"] += 1

    def _frame(self, frame: bytes) -> None:
        p = frames.parse_frame(frame)
        if p.src is None or p.dst is None:
            return
        if not (p.dst in self.addresses or (p.dst.is_multicast and self._joined(p.dst))):
            self.counters["not_for_us"] += 1
            return
        now = self.sim.now
        ip = frame[14:]
        if self.on_packet is not None:
            self.on_packet(ip[:40 + struct.unpack_from("!H", ip, 4)[0]], now)
        payload = p.payload
        if p.upper_layer == IpProto.UDP and len(payload) >= 8:
            sport, dport = struct.unpack_from("!HH", payload)
            self.counters["udp_rx"] += 1
            if self.on_udp is not None:
                self.on_udp(p.src, p.dst, sport, dport, payload[8:], now)
            return
        if p.upper_layer != IpProto.ICMPV6 or len(payload) < 4:
            return
        if payload[0] == self.codepoints.type:
            self.counters["fmip_rx"] += 1
            if self.on_fmip is not None:
                self.on_fmip(payload, p.src, p.dst, int(p.hop_limit or 0))
            return
        if payload[0] not in (Icmp6Type.NEIGHBOR_SOLICITATION, Icmp6Type.NEIGHBOR_ADVERTISEMENT,
                              Icmp6Type.ROUTER_ADVERTISEMENT):
            return
        msg = decode(payload, p.src, p.dst, codepoints=self.codepoints)
        if isinstance(msg, NeighborSolicitation):
            for o in msg.options:
                if isinstance(o, SourceLinkLayerAddress) and not p.src.is_unspecified:
                    self.neighbors[p.src] = o.address
            if msg.target in self.addresses:
                dst = p.src if not p.src.is_unspecified else IPv6Address("ff02::1")
                na = NeighborAdvertisement(msg.target, solicited=not p.src.is_unspecified,
                                           options=(TargetLinkLayerAddress(self.port.mac),))
                self._send_frame(frames.icmp6_frame(na, msg.target, dst, self.port.mac,
                                                    p.eth_src if not dst.is_multicast else None))
                self.counters["ns_answered"] += 1
        elif isinstance(msg, NeighborAdvertisement):
            for o in msg.options:
                if isinstance(o, TargetLinkLayerAddress):
                    self.neighbors[msg.target] = o.address
        elif isinstance(msg, RouterAdvertisement):
            self.counters["ra_rx"] += 1
            for o in msg.options:
                if isinstance(o, SourceLinkLayerAddress):
                    self.neighbors[p.src] = o.address
            if self.on_ra is not None:
                self.on_ra(msg, p.src, now)

    def _joined(self, group: IPv6Address) -> bool:
        if group in (IPv6Address("ff02::1"),):
            return True
        return any(group == IPv6Address(b"\xff\x02" + bytes(9) + b"\x01\xff" + a.packed[13:])
                   for a in self.addresses)

    # ---------------------------------------------------------------- send
    def _send_frame(self, frame: bytes) -> None:
        self.port.send_frames([frame])
        self.counters["tx"] += 1

    def next_hop_mac(self, dst: IPv6Address) -> bytes | None:
        if dst.is_multicast:
            return frames.multicast_mac(dst)
        mac = self.neighbors.get(dst)
        if mac is not None:
            return mac
        for net, router in self.routes:
            if dst in net:  # type: ignore[operator]
                return self.neighbors.get(router)
        if self.default_router is not None:
            return self.neighbors.get(self.default_router)
        return None

    def send_packet(self, packet: bytes) -> bool:
        """Send an IPv6 packet; False (counted) when no link-layer address is known for it."""
        mac = self.next_hop_mac(IPv6Address(packet[24:40]))
        if mac is None:
            self.counters["no_neighbor"] += 1
            return False
        self._send_frame(frames.build_ethernet(mac, self.port.mac, packet))
        return True

    def send_udp(self, src: str | IPv6Address, dst: str | IPv6Address, sport: int, dport: int,
                 payload: bytes, hop_limit: int = 64) -> bool:
        s, d = IPv6Address(src), IPv6Address(dst)
        udp = bytearray(struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload)
        struct.pack_into("!H", udp, 6, backend.upper_layer_checksum(s.packed, d.packed, IpProto.UDP, bytes(udp), 6))
        return self.send_packet(frames.build_ipv6(s, d, IpProto.UDP, bytes(udp), hop_limit))

    def send_icmp(self, icmp: bytes, src: str | IPv6Address, dst: str | IPv6Address, hop_limit: int = 255) -> bool:
        return self.send_packet(frames.build_ipv6(src, dst, IpProto.ICMPV6, icmp, hop_limit))
