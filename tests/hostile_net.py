"""A live access router for hostile-input tests: one engine and its RouterAgent (both roles: the PAR of an MN
attached here, the NAR of a handover from a peer router) on the in-memory wire, with real light-weight
Kerberos (AP-REQs opened with the router's key) and real AH (RFC 4302) from the peer router.  Time is a
simulated clock (``fmipfast.lab.simulated.sim.Sim``) so every run is the same; the agent's asynchronous verification
runs through the demo's scheduler (a real ``ApVerifier``, answered after ``VERIFY_DELAY_NS`` of that clock).

Topology::

    peer router (PAR, 2001:db8:1::1 behind 2001:db8:ff::1) --- core --- up0 [ROUTER] acc0 --- access --- MN
    attacker "evil_up" on core                                                       attacker "evil" on access

``World.legit_state()`` builds what an attacker would like to disturb: an authenticated MN (a session, a
neighbor entry), a NAR handover of another MN in PROXYING (proxy entries for its NCoA and PCoA, buffering),
and a PAR handover of the attached MN (HRD sent).  ``Snapshot`` records every table an unauthenticated frame
must not grow; :func:`check_unauthenticated` compares two of them.

The frame builders (``nd``, ``icmp``, ``ipv6``, ...) build well-formed frames that individual tests then
break one field at a time.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from ipaddress import IPv6Address

import numpy as np
import pytest

from fmipfast import backend, config, frames
from fmipfast.constants import AddressKind, IpProto, NeighborFlag, NeighborState
from fmipfast.engine import Engine, solicited_node
from fmipfast.lab.simulated.handover import SimScheduler
from fmipfast.lab.simulated.sim import MS, Sim
from fmipfast.messages import (
    AddressOption,
    Attach,
    HandoverControl,
    IcmpHandover,
    Identifier,
    LinkLayerAddress,
    LkbMessage,
    MessageAuthCode,
    encode,
)
from fmipfast.ports import MemoryLink, MemoryPort
from fmipfast.protocol import sign
from fmipfast.router import RouterAgent
from fmipfast.security import ah
from fmipfast.security import lwkerb as L

#: The long variants: marked ``slow`` and run only with FMIPFAST_SLOW=1 (the plain ``pytest`` of CI skips them).
SLOW = [pytest.mark.slow]

ROUTER = IPv6Address("2001:db8:2::1")  # the router under test (its access address: the NAR of the peer's HIs)
ROUTER_UP = IPv6Address("2001:db8:ff::2")
PAR = IPv6Address("2001:db8:1::1")  # the peer router's access address (the AH peer)
PAR_UP = IPv6Address("2001:db8:ff::1")  # the peer router on the core link: next hop and tunnel endpoint
CN = IPv6Address("2001:db8:77::10")  # a correspondent behind the peer router
NCOA, PCOA = IPv6Address("2001:db8:2::a"), IPv6Address("2001:db8:1::a")  # the MN handed over to us
MN_MAC = bytes.fromhex("001b638445e6")
MN_EUI64 = bytes.fromhex("001b63fffe8445e6")
MN_COA = IPv6Address("2001:db8:2::21b:63ff:fe84:45e6")  # the MN attached here
MAC_ACC, MAC_UP, MAC_PAR = bytes.fromhex("02005e000201"), bytes.fromhex("02005e000202"), bytes.fromhex("02005e0000ff")
EVIL_MAC = bytes.fromhex("02bad0000001")
EVIL = IPv6Address("2001:db8:2::666")
P_ROUTER, P_MN = L.Principal("host/nar", "B.EXAMPLE"), L.Principal("mn1", "HOME")
P_PAR = L.Principal("host/par", "A.EXAMPLE")
K_IN, K_OUT = bytes(range(32)), bytes(range(32, 64))  # AH: peer -> router, router -> peer
SPI_IN, SPI_OUT = 0x2001, 0x2002
ROUTER_KEY = L.Key(4, bytes(range(100, 132)))
VERIFY_DELAY_NS = 1 * MS
EPOCH_S = 1_800_000_000
NCACHE_CAPACITY = 256
ALL_NODES, ALL_ROUTERS = IPv6Address("ff02::1"), IPv6Address("ff02::2")

TOML = f"""
[router]
name = "r"
peers = ["{PAR_UP}"]
ncache_capacity = {NCACHE_CAPACITY}
buffer_lifetime_ms = 60000
[[router.interfaces]]
name = "acc0"
addresses = ["{ROUTER}/64"]
ra_min_interval_ms = 600000
ra_max_interval_ms = 600000
[[router.interfaces]]
name = "up0"
role = "upstream"
addresses = ["{ROUTER_UP}/64"]
[[router.routes]]
prefix = "2001:db8:1::/64"
via = "{PAR_UP}"
interface = "up0"
[[router.routes]]
prefix = "::/0"
via = "{PAR_UP}"
interface = "up0"
[[router.neighbors]]
address = "{PAR_UP}"
mac = "{MAC_PAR.hex(':')}"
interface = "up0"
"""


def link_local(mac: bytes) -> IPv6Address:
    return IPv6Address(backend.link_local_from_mac48(mac))


ROUTER_LL = link_local(MAC_ACC)


# ------------------------------------------------------------------------------------------- frame builders
def icmp6_checksum(src: IPv6Address, dst: IPv6Address, body: bytes) -> bytes:
    """``body`` (an ICMPv6 message, checksum field ignored) with its RFC 4443 §2.3 checksum filled in."""
    raw = bytearray(body)
    raw[2:4] = b"\0\0"
    backend.icmp6_checksum_fill(src.packed, dst.packed, raw)
    return bytes(raw)


def ipv6(src, dst, nh: int, payload: bytes, hlim: int = 64, plen: int | None = None) -> bytes:
    """An IPv6 header and ``payload``; ``plen`` overrides the Payload Length field (to lie with it)."""
    packet = frames.build_ipv6(IPv6Address(src), IPv6Address(dst), nh, payload, hlim)
    if plen is not None:
        packet = packet[:4] + struct.pack("!H", plen) + packet[6:]
    return packet


def eth(dst_mac: bytes, src_mac: bytes, payload: bytes, ethertype: int = 0x86DD) -> bytes:
    return frames.build_ethernet(dst_mac, src_mac, payload, ethertype)


def icmp(src, dst, body: bytes, *, hlim: int = 255, csum: bool = True, src_mac: bytes = EVIL_MAC,
         dst_mac: bytes | None = None, ext: bytes = b"", ext_nh: int = IpProto.ICMPV6) -> bytes:
    """An Ethernet frame with an ICMPv6 message ``body`` (type, code, 2 checksum octets, rest), the checksum
    computed unless ``csum`` is False; ``ext`` is put between the IPv6 header and the message (its first
    header's type is the IPv6 header's next header, ``ext_nh``)."""
    src, dst = IPv6Address(src), IPv6Address(dst)
    if csum:
        body = icmp6_checksum(src, dst, body)
    if dst_mac is None:
        dst_mac = frames.multicast_mac(dst) if dst.is_multicast else MAC_ACC
    return eth(dst_mac, src_mac, ipv6(src, dst, ext_nh if ext else IpProto.ICMPV6, ext + body, hlim))


def opt(kind: int, units: int, value: bytes = b"") -> bytes:
    """An ND option: type, length in 8-octet units, ``value`` padded/cut to fill the length (units 0: just the
    2-octet header and ``value``)."""
    if units == 0:
        return bytes((kind, 0)) + value
    return bytes((kind, units)) + value.ljust(units * 8 - 2, b"\0")[:units * 8 - 2]


def slla(mac: bytes = EVIL_MAC) -> bytes:
    return opt(1, 1, mac)


def tlla(mac: bytes = EVIL_MAC) -> bytes:
    return opt(2, 1, mac)


def rs(options: bytes = b"") -> bytes:
    return bytes((133, 0, 0, 0)) + bytes(4) + options


def ns(target, options: bytes = b"") -> bytes:
    return bytes((135, 0, 0, 0)) + bytes(4) + IPv6Address(target).packed + options


def na(target, options: bytes = b"", flags: int = 0x20) -> bytes:
    return bytes((136, 0, 0, 0, flags, 0, 0, 0)) + IPv6Address(target).packed + options


def echo(ident: int = 1, seq: int = 1, data: bytes = b"ping") -> bytes:
    return bytes((128, 0, 0, 0)) + struct.pack("!HH", ident, seq) + data


def ns_frame(target=ROUTER, src=EVIL, options: bytes | None = None, **kw) -> bytes:
    """An NS to the solicited-node group of ``target`` (its SLLA: the attacker's MAC unless given)."""
    return icmp(src, solicited_node(IPv6Address(target)), ns(target, slla() if options is None else options), **kw)


def rs_frame(src=EVIL, options: bytes | None = None, **kw) -> bytes:
    return icmp(src, ALL_ROUTERS, rs(slla() if options is None else options), **kw)


def udp(src, dst, payload: bytes = b"data", *, sport: int = 1000, dport: int = 2000, hlim: int = 64) -> bytes:
    """An IPv6 packet with a UDP datagram (checksum computed)."""
    src, dst = IPv6Address(src), IPv6Address(dst)
    body = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    value = backend.upper_layer_checksum(src.packed, dst.packed, IpProto.UDP, body, 6)
    body = body[:6] + value.to_bytes(2, "big") + body[8:]
    return ipv6(src, dst, IpProto.UDP, body, hlim)


# ------------------------------------------------------------------------------------------- the peer's HI
def credentials(server: L.Principal, key: L.Key, epoch: float, client: L.Principal = P_MN, seed: int = 7):
    skey = L.Key(0, bytes(range(seed, seed + 32)))
    part = L.EncTicketPart(L.TicketFlag.PRE_AUTHENT, int(epoch) - 60, int(epoch) - 60, int(epoch) + 3600,
                           skey.value, client)
    return L.Credentials(client, server, L.Ticket.issue(server, key, part), skey, part.flags, int(epoch) - 60,
                         int(epoch) - 60, int(epoch) + 3600)


def hi_packet(epoch: float, *, identifier: int = 7, ncoa=NCOA, pcoa=PCOA, ap_req: bytes | None = None,
              buffer: bool = True, lifetime_ms: int = 60000) -> bytes:
    """The peer router's ICMP Handover (draft §6) as an IPv6 packet, not yet under AH: a valid AP-REQ for this
    router bound to (ncoa, pcoa, router, identifier) unless ``ap_req`` is given."""
    if ap_req is None:
        creds = credentials(P_ROUTER, ROUTER_KEY, epoch)
        binding = L.HandoverBinding(str(ncoa), str(pcoa), str(ROUTER), identifier)
        ap_req = L.build_ap_req(creds, binding, now=epoch)[0].encode()
    hi = IcmpHandover(64, IPv6Address(ncoa), MN_EUI64, (LkbMessage(ap_req), HandoverControl(buffer, 64, lifetime_ms),
                                                        AddressOption(AddressKind.PCOA, IPv6Address(pcoa)),
                                                        Identifier(identifier)))
    return frames.build_ipv6(PAR, ROUTER, IpProto.ICMPV6, encode(hi, PAR, ROUTER), 64)


def under_ah(packet: bytes, seq: int, key: bytes = K_IN, spi: int = SPI_IN) -> bytes:
    return ah.protect(packet, ah.SecurityAssociation(spi, key, peer=str(ROUTER), seq=seq - 1))


def from_peer(packet: bytes) -> bytes:
    """``packet`` as the peer router's frame on the core link."""
    return eth(MAC_UP, MAC_PAR, packet)


# ------------------------------------------------------------------------------------------- the world
@dataclass
class Snapshot:
    """What an unauthenticated frame must not create: sessions, handover records, the engine's proxy/tunnel/
    hold tables, neighbor entries (address -> (state, flags, mac))."""

    sessions: set
    par: dict
    nar: dict
    proxy: set
    tunnel: set
    hold: set
    neighbors: dict = field(default_factory=dict)


class World:
    """The router under test, its peer, an MN, attackers; ``sim`` is the clock."""

    def __init__(self, **agent_options) -> None:
        self.sim = Sim(1_000 * MS)
        clock = self.sim.clock
        self.access, self.core = MemoryLink("access"), MemoryLink("core")
        ports = {"acc0": MemoryPort("acc0", MAC_ACC, self.access, clock=clock),
                 "up0": MemoryPort("up0", MAC_UP, self.core, clock=clock)}
        self.engine = Engine(config.loads(TOML).router, ports, clock=clock, seed=bytes(16))
        self.peer = MemoryPort("peer", MAC_PAR, self.core)  # the PAR (AH keys) and the CN behind it
        self.mn = MemoryPort("mn", MN_MAC, self.access)
        self.evil = MemoryPort("evil", EVIL_MAC, self.access)
        self.evil_up = MemoryPort("evil_up", EVIL_MAC, self.core)
        keytab = L.Keytab()
        keytab.add(P_ROUTER, ROUTER_KEY)
        sad = ah.SADatabase()
        sad.add_inbound(ah.SecurityAssociation(SPI_IN, K_IN, peer=str(PAR)))
        self.notes: list[tuple[str, dict]] = []
        self.agent = RouterAgent(self.engine, SimScheduler(self.sim, VERIFY_DELAY_NS), principal=P_ROUTER,
                                 keytab=keytab, sad=sad,
                                 sa_out={PAR: ah.SecurityAssociation(SPI_OUT, K_OUT, peer=str(PAR))},
                                 epoch_s=EPOCH_S - self.sim.now / 1e9,
                                 on_note=lambda what, fields: self.notes.append((what, fields)), **agent_options)
        self.ah_seq = 0
        self.settle()
        self.drain()

    # ---------------------------------------------------------------- time and the wire
    @property
    def epoch(self) -> float:
        return self.agent.epoch_s + self.sim.now / 1e9

    def poll(self) -> int:
        return self.engine.poll()

    def settle(self, ms: float = 5.0) -> None:
        """Let ``ms`` of simulated time pass in 1 ms steps, polling the engine (timers, verifications)."""
        end = self.sim.now + int(ms * MS)
        while True:
            self.poll()
            if self.sim.now >= end:
                break
            self.sim.run(min(end, self.sim.now + MS))
        self.poll()

    def inject(self, port: MemoryPort, frame_list: list[bytes]) -> int:
        """Send ``frame_list`` from ``port`` and let the engine handle them (one batch per 256 frames)."""
        if frame_list:
            port.send_frames(frame_list)
        return self.poll()

    def drain(self, port: MemoryPort | None = None) -> list[bytes]:
        """The frames waiting at ``port`` (default: every host port), sent by the router."""
        out = []
        for p in [port] if port is not None else [self.peer, self.mn, self.evil, self.evil_up]:
            out += [f for b in p.receive() for f in b.frames() if f[6:12] in (MAC_ACC, MAC_UP)]
        return out

    def next_seq(self) -> int:
        self.ah_seq += 1
        return self.ah_seq

    # ---------------------------------------------------------------- legitimate state
    def mn_ns(self) -> None:
        """The MN solicits the router (an ordinary NS with its SLLA): the router learns the MN's entry."""
        self.inject(self.mn, [icmp(MN_COA, solicited_node(ROUTER), ns(ROUTER, slla(MN_MAC)), src_mac=MN_MAC)])

    def attach_frame(self, identifier: int = 1) -> bytes:
        """The MN's initial Attach (AP-REQ for this router bound to (coa, coa, router, identifier))."""
        creds = credentials(P_ROUTER, ROUTER_KEY, self.epoch, seed=50)
        req = L.build_ap_req(creds, L.HandoverBinding(str(MN_COA), str(MN_COA), str(ROUTER), identifier),
                             now=self.epoch)[0]
        att = Attach((LinkLayerAddress(MN_EUI64), LkbMessage(req.encode()), Identifier(identifier)))
        return eth(MAC_ACC, MN_MAC, frames.build_ipv6(MN_COA, ROUTER, IpProto.ICMPV6, encode(att, MN_COA, ROUTER),
                                                      255))

    def send_hi(self, identifier: int = 7, **kw) -> None:
        self.inject(self.peer, [from_peer(under_ah(hi_packet(self.epoch, identifier=identifier, **kw),
                                                   self.next_seq()))])

    def legit_state(self) -> None:
        """An attached MN (session + neighbor entry), a NAR handover in PROXYING, a PAR handover (HRD sent)."""
        self.mn_ns()
        self.inject(self.mn, [self.attach_frame()])
        self.settle()
        self.send_hi()
        self.settle()
        self.agent.trigger({"pcoa": str(MN_COA), "nar": str(PAR), "nar_principal": str(P_PAR)})
        self.settle()
        ar = self.agent.ar
        assert MN_COA in ar.sessions, ar.counters
        assert [h.state.value for h in ar.nar.values() if not h.initial] == ["proxying"], ar.counters
        assert MN_COA in ar.par
        self.drain()

    def nar_record(self, identifier: int = 7):
        return self.agent.ar.nar[(PAR, identifier)]

    def signed_attach(self, identifier: int = 7) -> bytes:
        """The handed-over MN's Attach at this NAR, from its NCoA, MAC'd with the session key the HI's AP-REQ
        established (read from the NAR's record: the MN would have it from its ticket)."""
        h = self.nar_record(identifier)
        att = Attach((LinkLayerAddress(MN_EUI64), Identifier(identifier), MessageAuthCode()))
        icmp_raw = sign(att, h.context.mac_key, NCOA, ROUTER)
        return eth(MAC_ACC, MN_MAC, frames.build_ipv6(NCOA, ROUTER, IpProto.ICMPV6, icmp_raw, 255))

    # ---------------------------------------------------------------- observation
    def snapshot(self) -> Snapshot:
        e, ar = self.engine, self.agent.ar
        nc = e.ncache
        neighbors = {}
        for i in np.flatnonzero(np.asarray(nc.in_use)):
            neighbors[IPv6Address(bytes(nc.keys[i]))] = (int(nc.states[i]), int(nc.flags[i]), bytes(nc.macs[i]))
        return Snapshot(set(ar.sessions), {k: h.state for k, h in ar.par.items()},
                        {k: h.state for k, h in ar.nar.items()}, set(e._proxy_key), set(e._tunnel_peer),
                        set(e._hold), neighbors)

    def check(self, before: Snapshot, sent: int, received_before: int, *, attach_records: bool = False) -> None:
        """After a hostile batch: everything received got a disposition (conservation), and no state."""
        c = self.engine.conservation()
        assert c["holds"], c
        assert self.engine.counters["received"] - received_before >= sent, (self.engine.counters, sent)
        check_unauthenticated(before, self.snapshot(), max_records=self.agent.ar.max_handovers,
                              attach_records=attach_records)


_PROTECTED = NeighborFlag.LOCAL | NeighborFlag.PROXY | NeighborFlag.TUNNEL | NeighborFlag.STATIC | NeighborFlag.HOLD


def check_unauthenticated(before: Snapshot, after: Snapshot, *, max_records: int, attach_records: bool) -> None:
    """The tables an unauthenticated frame may not touch, ``before`` and ``after`` it.

    * sessions, PAR records, proxy, tunnel and hold entries: nothing new;
    * NAR records: nothing new, except (``attach_records``) initial-attach records of an AP-REQ that did not
      verify, never in PROXYING or ATTACHED, at most ``max_records`` of them;
    * neighbor entries: an entry of the router's (LOCAL, STATIC, PROXY, TUNNEL, HOLD) keeps its state, flags
      and MAC; a new entry carries none of those flags and is STALE (RFC 4861 §7.2.3: learnt from an NS/RS
      with a source link-layer option) or INCOMPLETE (being resolved for a forwarded packet, RFC 4861 §7.2.2).
    """
    assert after.sessions <= before.sessions, after.sessions - before.sessions
    assert set(after.par) <= set(before.par), set(after.par) - set(before.par)
    assert after.proxy <= before.proxy and after.tunnel <= before.tunnel and after.hold <= before.hold
    new_records = {k: s for k, s in after.nar.items() if k not in before.nar}
    if attach_records:
        assert all(s.value in ("verifying", "refused") for s in new_records.values()), new_records
        assert len(new_records) <= max_records, len(new_records)
    else:
        assert not new_records, new_records
    for address, (state, flags, mac) in before.neighbors.items():
        if flags & _PROTECTED:
            assert after.neighbors.get(address) == (state, flags, mac), (address, after.neighbors.get(address))
    for address, (state, flags, _mac) in after.neighbors.items():
        if address not in before.neighbors:
            assert not flags & _PROTECTED, (address, flags)
            assert state in (NeighborState.STALE, NeighborState.INCOMPLETE), (address, state)
    assert len(after.neighbors) <= NCACHE_CAPACITY
