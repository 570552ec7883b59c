"""The simulated world of ``fmipfast demo`` (docs/design.md §6-§7): the demo topology's plan and scenario, the
world built on the discrete-event simulator (:mod:`fmipfast.lab.simulated.sim`) -- two router engines, the CN
and the MN hosts, the links -- with the CN's UDP stream and binding cache, the layer-2 move, and the
measurements of one run.

Topology (addresses in :class:`Plan`)::

      CN ----- core link ----- PAR (engine) ---- access link A ---- MN (before)
                        \\
                         ----- NAR (engine) ---- access link B ---- MN (after)

What runs on it: :mod:`fmipfast.lab.simulated.demo` (the scenario's modes and the report) and
:mod:`fmipfast.lab.simulated.handover` (the protocol drivers of the fast handover); both import this module,
neither imports the other's world.

Ownership: single-threaded; all time is the simulator's.
"""

from __future__ import annotations

import dataclasses
import random
import struct
from dataclasses import dataclass, field
from ipaddress import IPv6Address, IPv6Network
from typing import Any

from fmipfast import backend, config
from fmipfast.constants import IpProto, MhType
from fmipfast.engine import Engine
from fmipfast.lab.simulated.host import Host
from fmipfast.lab.simulated.sim import MS, Sim, SimLink, SimPort
from fmipfast.messages import BindingUpdate, binding_ack, is_binding_ack

__all__ = ["Plan", "Scenario", "Result", "World", "binding_ack", "is_binding_ack"]


def _mac(i: int) -> bytes:
    return bytes((0x02, 0x00, 0x5E, 0x10, 0x00, i))


def _eui_address(prefix: str, mac: bytes) -> IPv6Address:
    iid = backend.link_local_from_mac48(mac)[8:]
    return IPv6Address(IPv6Network(prefix).network_address.packed[:8] + iid)


@dataclass(frozen=True)
class Plan:
    """Addresses and link parameters of the demo topology."""

    core_prefix: str = "2001:db8:ff::/64"
    prefix_a: str = "2001:db8:1::/64"
    prefix_b: str = "2001:db8:2::/64"
    cn_address: str = "2001:db8:ff::10"
    par_mac: bytes = _mac(0x01)
    par_up_mac: bytes = _mac(0x11)
    nar_mac: bytes = _mac(0x02)
    nar_up_mac: bytes = _mac(0x12)
    cn_mac: bytes = _mac(0x20)
    mn_mac: bytes = bytes.fromhex("001b638445e6")
    air_delay_ms: float = 2.0
    core_delay_ms: float = 5.0

    @property
    def par_address(self) -> IPv6Address:
        return _eui_address(self.prefix_a, self.par_mac)

    @property
    def nar_address(self) -> IPv6Address:
        return _eui_address(self.prefix_b, self.nar_mac)

    @property
    def par_up(self) -> IPv6Address:
        return IPv6Address("2001:db8:ff::1")

    @property
    def nar_up(self) -> IPv6Address:
        return IPv6Address("2001:db8:ff::2")

    @property
    def pcoa(self) -> IPv6Address:
        return _eui_address(self.prefix_a, self.mn_mac)

    @property
    def slaac_ncoa(self) -> IPv6Address:
        return _eui_address(self.prefix_b, self.mn_mac)


@dataclass
class Scenario:
    """What to run.  Times in ms from the start of the simulation."""

    mode: str = "fast"  # fast | baseline
    case: int = 1  # the Kerberos key case of the fast handover (1, 2, 3)
    kerberos: str = "lwkerb"  # lwkerb | gssapi (standard Kerberos: real MIT KDCs, key case 1)
    seed: int = 1
    rate_pps: int = 1000  # the CN's stream
    trigger_ms: float = 300.0  # the handover decision
    l2_delay_ms: float = 5.0  # from the MN's "ready" to its link going down (fast mode)
    gap_ms: float = 30.0  # the layer-2 gap: link down to link up on B
    stream_ms: float = 2500.0  # how long the CN streams
    end_ms: float = 3200.0
    ra_interval_ms: tuple[float, float] = (30.0, 70.0)  # RFC 6275 §7.5 MinRtrAdvInterval..MaxRtrAdvInterval
    dad_ms: float = 1000.0  # RFC 4862 RetransTimer x DupAddrDetectTransmits (1 x 1000 ms)
    buffer: bool = True
    reorder_hold_ms: int = 10  # the NAR's route-switch hold ([router] reorder_hold_idle_ms; 0: off)
    plan: Plan = field(default_factory=Plan)


@dataclass
class Result:
    """One run's measurements (``fmipfast demo --json`` prints it).  Every time in it -- ``steps`` and each
    ``timeline`` entry's ``t_ms`` -- is in ms from the handover trigger; what came before is negative."""

    mode: str
    sent: int
    received: int
    lost: int
    duplicated: int
    reordered: int
    interruption_ms: float | None
    link_up_to_first_packet_ms: float | None
    buffered: int
    flushed: int
    held_at_route_switch: int  # direct packets to the NCoA held until the tunnel drained (engine.py)
    steps: dict[str, float]
    timeline: list[dict[str, Any]]
    counters: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_ROUTER_TOML = """
[router]
name = "{name}"
buffer_per_mn_packets = 512
buffer_lifetime_ms = 5000
reorder_hold_idle_ms = {hold}
peers = ["{peer}"]
[[router.interfaces]]
name = "{name}-acc"
addresses = ["{acc}/64"]
ra_min_interval_ms = {ra_min}
ra_max_interval_ms = {ra_max}
adjacent_realms = ["{realm}"]
[[router.interfaces]]
name = "{name}-up"
role = "upstream"
addresses = ["{up}/64"]
[[router.routes]]
prefix = "{other_prefix}"
via = "{peer}"
interface = "{name}-up"
[[router.routes]]
prefix = "::/0"
via = "{cn}"
interface = "{name}-up"
[[router.neighbors]]
address = "{peer}"
mac = "{peer_mac}"
interface = "{name}-up"
[[router.neighbors]]
address = "{cn}"
mac = "{cn_mac}"
interface = "{name}-up"
"""


class World:
    """The built topology: simulator, links, the two router engines, the CN and the MN hosts."""

    def __init__(self, sc: Scenario) -> None:
        self.sc = sc
        p = sc.plan
        self.sim = Sim(0)
        # the seed moves the handover decision within a stream period and a few ms (the timing of the
        # trigger relative to the stream and to the NAR's Router Advertisements)
        rng = random.Random(sc.seed)
        self.trigger_ns = int((sc.trigger_ms + rng.uniform(0.0, 10.0)) * MS)
        air, core = int(p.air_delay_ms * MS), int(p.core_delay_ms * MS)
        self.core = SimLink(self.sim, "core", core)
        self.link_a = SimLink(self.sim, "A", air)
        self.link_b = SimLink(self.sim, "B", air)
        self.timeline: list[dict[str, Any]] = []
        for link in (self.core, self.link_a, self.link_b):
            link.taps.append(self._tap)
        self.capture: list[tuple[int, str, bytes]] | None = None
        ra_min, ra_max = (int(x) for x in sc.ra_interval_ms)

        def router(name: str, acc_mac: bytes, up_mac: bytes, acc: IPv6Address, up: IPv6Address, link: SimLink,
                   other_prefix: str, peer: IPv6Address, peer_mac: bytes, realm: str) -> Engine:
            toml = _ROUTER_TOML.format(name=name, acc=acc, up=up, ra_min=ra_min, ra_max=ra_max, realm=realm,
                                       other_prefix=other_prefix, peer=peer, peer_mac=peer_mac.hex(":"),
                                       cn=p.cn_address, cn_mac=p.cn_mac.hex(":"), hold=self.sc.reorder_hold_ms)
            ports = {f"{name}-acc": SimPort(self.sim, f"{name}-acc", acc_mac, link),
                     f"{name}-up": SimPort(self.sim, f"{name}-up", up_mac, self.core)}
            engine = Engine(config.loads(toml).router, ports, clock=self.sim.clock, seed=bytes(16))
            for port in ports.values():
                port.on_receive = engine.poll
            return engine

        self.par = router("par", p.par_mac, p.par_up_mac, p.par_address, p.par_up, self.link_a, p.prefix_b,
                          p.nar_up, p.nar_up_mac, "B.EXAMPLE")
        self.nar = router("nar", p.nar_mac, p.nar_up_mac, p.nar_address, p.nar_up, self.link_b, p.prefix_a,
                          p.par_up, p.par_up_mac, "A.EXAMPLE")
        for engine in (self.par, self.nar):
            self.sim.every(10 * MS, engine.tick)
        self.cn = Host(self.sim, "cn", SimPort(self.sim, "cn0", p.cn_mac, self.core), [p.cn_address])
        self.cn.set_neighbor(p.par_up, p.par_up_mac)
        self.cn.set_neighbor(p.nar_up, p.nar_up_mac)
        self.cn.add_route(p.prefix_a, p.par_up)
        self.cn.add_route(p.prefix_b, p.nar_up)
        self.mn_port = SimPort(self.sim, "mn0", p.mn_mac, self.link_a)
        self.mn = Host(self.sim, "mn", self.mn_port, [p.pcoa])
        par_ll = IPv6Address(backend.link_local_from_mac48(p.par_mac))
        self.mn.set_neighbor(par_ll, p.par_mac)
        self.mn.set_default_router(par_ll)
        # the CN's binding cache: where it sends the MN's traffic (RFC 6275 §9.3)
        self.binding = p.pcoa
        self.cn.on_packet = self._cn_packet
        # the stream and what the MN saw
        self.sent: list[tuple[int, int]] = []  # (seq, t)
        self.arrivals: list[tuple[int, int, str]] = []  # (seq, t, link)
        self.mn.on_udp = self._mn_udp
        self.marks: dict[str, int] = {}

    # ---------------------------------------------------------------- recording
    def mark(self, name: str) -> None:
        """Record when a step happened (the latest occurrence: the initial attach repeats some names)."""
        self.marks[name] = self.sim.now

    def note(self, what: str, src: str, dst: str, size: int = 0, **extra: Any) -> None:
        self.timeline.append({"t_ms": round(self.sim.now / MS, 3), "what": what, "from": src, "to": dst,
                              "size": size, **extra})

    def _tap(self, now: int, frame: bytes, link: str) -> None:
        if self.capture is not None:
            self.capture.append((now, link, frame))

    # ---------------------------------------------------------------- the CN
    def start_stream(self) -> None:
        sc = self.sc
        period = int(MS * 1000 / sc.rate_pps)
        count = int(sc.stream_ms * sc.rate_pps / 1000)
        seq = iter(range(count))

        def send() -> None:
            n = next(seq, None)
            if n is None:
                return
            self.sent.append((n, self.sim.now))
            payload = struct.pack("!IQ", n, self.sim.now) + bytes(32)
            self.cn.send_udp(self.sc.plan.cn_address, self.binding, 5000, 5001, payload)
            self.sim.after(period, send)

        self.sim.after(0, send)

    def _cn_packet(self, packet: bytes, now: int) -> None:
        if packet[6] != IpProto.MH or len(packet) < 52 or packet[42] != MhType.BINDING_UPDATE:
            return
        try:
            bu = BindingUpdate.decode_packet(packet)
        except ValueError:
            return
        self.binding = IPv6Address(packet[8:24])  # the BU's source: the new care-of address
        self.mark("bu_at_cn")
        self.note("Binding Update received", "mn", "cn", len(packet), coa=str(self.binding))
        if bu.flags & 0x8000:  # A: acknowledge (RFC 6275 §9.5.4)
            self.cn.send_packet(binding_ack(IPv6Address(self.sc.plan.cn_address), self.binding, bu.sequence))

    def _mn_udp(self, src: IPv6Address, dst: IPv6Address, sport: int, dport: int, data: bytes, now: int) -> None:
        seq = struct.unpack_from("!I", data)[0]
        self.arrivals.append((seq, now, self.mn_port.link.name if self.mn_port.link else "-"))

    # ---------------------------------------------------------------- layer 2
    def move(self, down_at: int, gap: int, on_up: Any = None) -> None:
        def down() -> None:
            self.mn_port.attach(None)
            self.mark("link_down")
            self.note("link down (layer-2 handover starts)", "mn", "A")

        def up() -> None:
            self.mn_port.attach(self.link_b)
            self.mark("link_up")
            self.note("link up on B", "mn", "B")
            if on_up is not None:
                on_up()

        self.sim.at(down_at, down)
        self.sim.at(down_at + gap, up)

    # ---------------------------------------------------------------- results
    def result(self) -> Result:
        sc = self.sc
        seqs = [s for s, _, _ in self.arrivals]
        unique = set(seqs)
        reordered, top = 0, -1
        for s in seqs:
            if s < top:
                reordered += 1
            top = max(top, s)
        on_a = [t for _, t, link in self.arrivals if link == "A"]
        on_b = [t for _, t, link in self.arrivals if link == "B"]
        interruption = (min(on_b) - max(on_a)) / MS if on_a and on_b else None
        up = self.marks.get("link_up")
        first_b = (min(on_b) - up) / MS if on_b and up is not None else None
        t0 = self.marks.get("trigger", self.trigger_ns)
        steps = {name: round((t - t0) / MS, 3) for name, t in sorted(self.marks.items(), key=lambda kv: kv[1])}
        # one convention for every time in a Result: ms from the handover trigger (before it: negative)
        timeline = [{**e, "t_ms": round(e["t_ms"] - t0 / MS, 3)} for e in self.timeline]
        counters = {"par": self.par.counters, "nar": self.nar.counters,
                    "par_drops": self.par.drop_counts(), "nar_drops": self.nar.drop_counts(),
                    "par_conservation": self.par.conservation(), "nar_conservation": self.nar.conservation(),
                    "nar_buffer": dict(self.nar.buffer.counters)}
        return Result(sc.mode, len(self.sent), len(unique), len(self.sent) - len(unique), len(seqs) - len(unique),
                      reordered, interruption, first_b,
                      int(self.nar.counters["buffered"] - self.nar.counters["reorder_held"]),
                      int(self.nar.counters["flushed"] - self.nar.counters["reorder_released"]),
                      int(self.nar.counters["reorder_held"]), steps, timeline, counters)
