"""A router's first handover, rehearsed at start on throwaway state (docs/operations.md, "Scheduling and the
first handover").

A freshly started router runs the NAR's side of a handover -- the HI under AH, the AP-REQ's verification, the
proxy entry, the buffered datagrams, the Attach with its MAC, the flush, the Authenticated-MN -- for the first
time on the MN that hands over to it first, and pays for it there: CPython specialises a function's bytecode
only after it has run a few times, and numpy, the crypto backend and the engine's code paths have their own
first-call costs.  On a fresh NAR in the lab, the machine took 0.4-0.5 ms from the agent's hook to the phase
that flushes, against ~0.1 ms for the same handover in memory once warm (BENCHMARKS.md, "The fast handover on
real links").

:func:`warm_up` runs those steps ``handovers`` times on a world of its own (:func:`rehearsal`: one handover at
a time, which ``fmipfast router`` runs one per turn of its loop once it serves): a
:class:`~fmipfast.engine.Engine` over :class:`~fmipfast.ports.MemoryPort` s on two private in-memory links,
with the router's data-plane geometry (batch size, buffer slot size) but small tables, and a
:class:`~fmipfast.router.RouterAgent` with a keytab, AH SAs and tickets made up here and forgotten after.  The
real engine, agent, tables, keys, counters and sockets are not touched, nothing is sent on a real link and
nothing the rehearsal makes is reachable from the network: when it returns, all of it is garbage.  What it
leaves behind is what it is for -- specialised bytecode and loaded code paths of the functions the real
router then runs.

Ownership: the caller's thread (the router's loop, between its other callbacks); nothing here is shared with
the router.

May import: engine, ports, router, protocol, security, frames, messages, config, constants, errors.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from ipaddress import IPv6Address
from typing import Any

from fmipfast import frames
from fmipfast.config import InterfaceConfig, NeighborConfig, RouteConfig, RouterConfig
from fmipfast.constants import DEFAULT_CODEPOINTS, AddressKind, Codepoints, IpProto
from fmipfast.engine import Engine
from fmipfast.messages import (
    AddressOption,
    Attach,
    EncapsulatedPacket,
    HandoverControl,
    IcmpHandover,
    Identifier,
    LinkLayerAddress,
    LkbMessage,
    MessageAuthCode,
    encode,
)
from fmipfast.ports import FrameBatch, MemoryLink, MemoryPort
from fmipfast.protocol import ROUTER_HOP_LIMIT, eui64_from_mac48, sign
from fmipfast.router import RouterAgent
from fmipfast.security import ah
from fmipfast.security import lwkerb as L

__all__ = ["warm_up", "rehearsal"]

log = logging.getLogger("fmipfast.router")

# The rehearsal's world: documentation addresses (RFC 3849) and locally administered MACs, on links of its own.
_NAR = IPv6Address("2001:db8:ffff:2::1")
_PAR = IPv6Address("2001:db8:ffff:ff::1")
_CN = IPv6Address("2001:db8:ffff:c::1")
_UPLINK = IPv6Address("2001:db8:ffff:ff::2")
_MAC_ACCESS, _MAC_UP = bytes.fromhex("020000fff201"), bytes.fromhex("020000fff202")
_MAC_PAR = bytes.fromhex("020000fff2ff")
_P_NAR, _P_MN = L.Principal("host/warm-up", "WARM-UP.INVALID"), L.Principal("mn", "WARM-UP.INVALID")
_DATAGRAMS = 4  # per handover: direct to the NCoA and tunnelled to the PCoA, each


class _Immediate:
    """A scheduler whose asynchronous work (a case-1 AP-REQ verification, which awaits nothing) runs at once,
    and whose timers never fire: the rehearsal ends long before any deadline of its handovers."""

    def now(self) -> int:
        return time.monotonic_ns()

    def call_at(self, when_ns: int, fn: Callable[[], None]) -> None:
        return None

    def run_async(self, coro: Awaitable[Any], done: Callable[[Any], None]) -> None:
        step = coro.__await__()
        try:
            next(step)
        except StopIteration as finished:
            done(finished.value)
            return
        close = getattr(step, "close", None)
        if close is not None:
            close()
        raise RuntimeError("the rehearsal's verification waited for something")


def _config(cfg: RouterConfig, handovers: int) -> RouterConfig:
    """``cfg``'s data-plane geometry with small tables and the rehearsal's own interfaces, routes and peer."""
    quiet = 1_800_000  # no Router Advertisement during the rehearsal
    return dataclasses.replace(
        cfg, name="warm-up",
        interfaces=(InterfaceConfig("warm-acc", "access", ((str(_NAR), 64),), ra_min_interval_ms=quiet,
                                    ra_max_interval_ms=quiet),
                    InterfaceConfig("warm-up", "upstream", ((str(_UPLINK), 64),))),
        routes=(RouteConfig(("::", 0), str(_PAR), "warm-up"),),
        neighbors=(NeighborConfig(str(_PAR), _MAC_PAR, "warm-up"),),
        ncache_capacity=64, buffer_slots=64, buffer_keys=handovers + 4, peers=(str(_PAR),), security=None,
        buffer_per_mn_packets=max(2 * _DATAGRAMS, 8), buffer_per_mn_bytes=max(2 * _DATAGRAMS, 8) * cfg.buffer_slot_size)


def _udp(src: IPv6Address, dst: IPv6Address, seq: int) -> bytes:
    payload = seq.to_bytes(8, "big")
    header = (40000).to_bytes(2, "big") + (40001).to_bytes(2, "big") + (8 + len(payload)).to_bytes(2, "big")
    return frames.build_ipv6(src, dst, IpProto.UDP, header + b"\xff\xff" + payload, 64)


class _AccessPort(MemoryPort):
    """The rehearsal's access port: what arrives on it (the MN's Attach) comes as control frames kept apart, as a
    ring port's control socket hands an Attach to the engine, so the rehearsal takes that path (the agent's
    early look included, ``Engine.early_control``)."""

    def receive_control(self) -> Iterator[FrameBatch]:
        return MemoryPort.receive(self)

    def receive(self) -> Iterator[FrameBatch]:
        return iter(())


def warm_up(cfg: RouterConfig, codepoints: Codepoints = DEFAULT_CODEPOINTS, handovers: int | None = None) -> int:
    """Rehearse the NAR's side of ``handovers`` handovers (default: ``cfg.warm_up_handovers``; CPython 3.11
    quickens a function after 8 calls, and a few more let its specialised instructions settle) on throwaway
    state, see the module's docstring; returns how many reached the Authenticated-MN.  Of ``cfg``, the router's
    configuration, only the geometry of its data plane is used."""
    return max(rehearsal(cfg, codepoints, handovers), default=0)


def rehearsal(cfg: RouterConfig, codepoints: Codepoints = DEFAULT_CODEPOINTS,
              handovers: int | None = None) -> Iterator[int]:
    """:func:`warm_up` one handover at a time: yields, after each, how many reached the Authenticated-MN so far
    (a daemon runs one step per turn of its loop, so a rehearsal never holds the loop for more than one
    handover, ~2-3 ms).  The world is made at the first step and is garbage once the iterator is."""
    if handovers is None:
        handovers = cfg.warm_up_handovers
    if handovers <= 0:
        return
    core, access = MemoryLink("warm-core"), MemoryLink("warm-access")
    ports = {"warm-acc": _AccessPort("warm-acc", _MAC_ACCESS, access), "warm-up": MemoryPort("warm-up", _MAC_UP, core)}
    par = MemoryPort("warm-par", _MAC_PAR, core)
    engine = Engine(_config(cfg, handovers), ports, codepoints=codepoints)
    key = L.Key(1, bytes(range(64, 96)))
    keytab = L.Keytab()
    keytab.add(_P_NAR, key)
    ah_key = bytes(range(96, 128))
    sad = ah.SADatabase()
    sad.add_inbound(ah.SecurityAssociation(0x100, ah_key, peer=str(_PAR)))
    sad.add_outbound(ah.SecurityAssociation(0x101, ah_key, peer=str(_PAR)))
    agent = RouterAgent(engine, _Immediate(), principal=_P_NAR, keytab=keytab, sad=sad, access_iface="warm-acc",
                        buffer_packets=max(2 * _DATAGRAMS, 8))
    to_nar = ah.SecurityAssociation(0x100, ah_key, peer=str(_NAR))
    mn = MemoryPort("warm-mn", bytes.fromhex("020000f30000"), access)
    nar_ll = engine.interfaces[0].link_local
    now = agent.epoch_s + agent.scheduler.now() / 1e9
    for i in range(handovers):
        mac = bytes((0x02, 0, 0, 0xF3, i >> 8 & 0xFF, i & 0xFF))
        eui64 = eui64_from_mac48(mac)
        ncoa = IPv6Address(int(_NAR) & ~((1 << 64) - 1) | int.from_bytes(eui64, "big") ^ (1 << 57))
        pcoa = IPv6Address(int(IPv6Address("2001:db8:ffff:1::")) | int.from_bytes(eui64, "big") ^ (1 << 57))
        identifier = 1 + i
        skey = L.Key(0, bytes((i + j) & 0xFF for j in range(32)))
        part = L.EncTicketPart(L.TicketFlag.PRE_AUTHENT, int(now) - 60, int(now) - 60, int(now) + 3600, skey.value,
                               _P_MN)
        creds = L.Credentials(_P_MN, _P_NAR, L.Ticket.issue(_P_NAR, key, part), skey, part.flags, int(now) - 60,
                              int(now) - 60, int(now) + 3600)
        binding = L.HandoverBinding(str(ncoa), str(pcoa), str(_NAR), identifier)
        ap_req = L.build_ap_req(creds, binding, now=now + i * 1e-3)[0].encode()
        # the PAR's HI under AH, then what the PAR and the CN send on while the MN moves
        hi = IcmpHandover(64, ncoa, eui64, (LkbMessage(ap_req), HandoverControl(True, max(2 * _DATAGRAMS, 8), 3000),
                                            AddressOption(AddressKind.PCOA, pcoa), Identifier(identifier)))
        packet = frames.build_ipv6(_PAR, _NAR, IpProto.ICMPV6, encode(hi, _PAR, _NAR, codepoints=codepoints),
                                   ROUTER_HOP_LIMIT)
        par.send_frames([frames.build_ethernet(_MAC_UP, _MAC_PAR, ah.protect(packet, to_nar))])
        engine.poll()
        data = []
        for q in range(_DATAGRAMS):
            data.append(frames.build_ethernet(_MAC_UP, _MAC_PAR, _udp(_CN, ncoa, q)))
            inner = _udp(_CN, pcoa, q)
            data.append(frames.build_ethernet(_MAC_UP, _MAC_PAR,
                                              frames.build_ipv6(_PAR, _NAR, IpProto.IPV6, inner, 64)))
        par.send_frames(data)
        engine.poll()
        # the MN on the new link: its Attach (MAC keyed from the session key, the BU inside) from the NCoA
        bu = _udp(ncoa, _CN, 0)
        attach = Attach((LinkLayerAddress(eui64), EncapsulatedPacket(bu), Identifier(identifier), MessageAuthCode()))
        icmp = sign(attach, L.derive_key(skey, L.LABEL_MAC), ncoa, nar_ll, codepoints)
        frame = frames.build_ethernet(_MAC_ACCESS, mac, frames.build_ipv6(ncoa, nar_ll, IpProto.ICMPV6, icmp, 255))
        mn.send_frames([frame])
        engine.poll()
        for port in (mn, par):
            for batch in port.receive():
                batch.release()
        yield int(agent.ar.counters["attached"])
